// One appointment: its client, patient, the patient's history, recent consultations and the
// staff's preliminary notes (with what is still waiting to be sent).

import { el } from "/clinic/static/dom.js";
import { t } from "/static/visit/js/i18n.js";
import * as db from "./db.js";
import * as outbox from "./outbox.js";
import { clockIn, date, dateTime } from "./time.js";

function field(key, value) {
  return value ? el("div", { class: "field" }, el("dt", {}, t(key)), el("dd", {}, value)) : null;
}

function card(titleKey, ...children) {
  return el("section", { class: "card" }, el("h3", {}, t(titleKey)), ...children);
}

function client(c, fallback) {
  if (!c) return card("appt.client", el("p", {}, fallback.name), field("appt.phone", fallback.phone));
  return card("appt.client",
    el("p", { class: "name" }, c.name),
    el("dl", {},
      c.phone ? el("div", { class: "field" }, el("dt", {}, t("appt.phone")),
        el("dd", {}, el("a", { href: `tel:${c.phone}` }, c.phone))) : null,
      field("appt.email", c.email),
      field("appt.address", c.address)));
}

function patient(p, fallback) {
  if (!p) {
    return card("appt.patient", el("p", {}, fallback.name), el("p", { class: "meta" }, t("appt.unknown_patient")));
  }
  return card("appt.patient",
    el("p", { class: "name" }, p.name),
    p.alerts ? el("p", { class: "alert" }, `${t("appt.alerts")}: ${p.alerts}`) : null,
    el("dl", {},
      field("appt.species", [p.species, p.breed].filter(Boolean).join(", ")),
      field("appt.sex", p.sex),
      field("appt.born", p.birth_date && date(p.birth_date))));
}

function notesCard(appt, notes, waiting) {
  const patientId = appt.patient.id;
  const items = notes.map((n) => {
    const queued = waiting.filter((i) => i.noteId === n.id);
    return el("li", { "data-note": n.id },
      el("p", { class: "text" }, queued.length ? queued.at(-1).text : n.text),
      el("p", { class: "meta" }, t("note.by", {
        version: n.version, device: n.updated_by.device_name, time: dateTime(n.updated_at),
      })),
      queued.length ? el("p", { class: "badge" }, t(queued.some((i) => i.state !== "pending") ? "note.refused" : "note.pending")) : null,
      el("a", { class: "button", href: `#/note/${encodeURIComponent(n.id)}?appointment=${encodeURIComponent(appt.id)}` }, t("common.edit")));
  });
  // Notes written here and not yet accepted anywhere.
  const known = new Set(notes.map((n) => n.id));
  for (const item of waiting.filter((i) => !known.has(i.noteId))) {
    items.push(el("li", { "data-note": item.noteId },
      el("p", { class: "text" }, item.text),
      el("p", { class: "badge" }, t(item.state === "pending" ? "note.pending" : "note.refused"))));
  }
  return card("appt.notes",
    items.length ? el("ul", { class: "items" }, items) : el("p", { class: "empty" }, t("appt.none")),
    patientId
      ? el("a", { class: "button primary", id: "add-note", href: `#/note/${crypto.randomUUID()}?appointment=${encodeURIComponent(appt.id)}` }, t("appt.add_note"))
      : null);
}

function historyCard(entries) {
  const sorted = [...entries].sort((a, b) => b.at.localeCompare(a.at));
  return card("appt.history", sorted.length
    ? el("ul", { class: "items history" }, sorted.map((h) => el("li", {},
      el("p", { class: "meta" }, `${date(h.at)} · ${h.type}`),
      h.title ? el("p", { class: "name" }, h.title) : null,
      h.text ? el("p", { class: "text" }, h.text) : null)))
    : el("p", { class: "empty" }, t("appt.none")));
}

function consultationsCard(consultations) {
  const sorted = [...consultations].sort((a, b) => b.started_at.localeCompare(a.started_at));
  return card("appt.consultations", sorted.length
    ? el("ul", { class: "items" }, sorted.map((c) => el("li", {},
      el("p", { class: "meta" }, `${dateTime(c.started_at)}${c.provider_name ? ` · ${c.provider_name}` : ""}`),
      c.reason ? el("p", { class: "name" }, c.reason) : null,
      c.notes.map((n) => el("p", { class: "text" }, n.text)))))
    : el("p", { class: "empty" }, t("appt.none")));
}

export async function renderAppointment(root, id, online) {
  const appt = await db.get("appointments", id);
  if (!appt) {
    root.replaceChildren(el("a", { href: "#/agenda" }, `‹ ${t("appt.back")}`), el("p", { class: "empty" }, t("appt.not_found")));
    return;
  }
  const departments = (await db.kv.get("departments")) || [];
  const zone = departments.find((d) => d.id === appt.department_id)?.time_zone || "UTC";
  const pid = appt.patient.id;
  const [p, history, consultations, notes, waiting] = await Promise.all([
    pid ? db.get("patients", pid) : null,
    db.all("history"), db.all("consultations"), db.all("notes"), outbox.items(),
  ]);
  const clientRecord = appt.client.id ? await db.get("clients", appt.client.id)
    : p ? await db.get("clients", p.client_id) : null;
  const mine = (items) => items.filter((i) => pid && i.patient_id === pid);
  const tele = appt.host_url
    ? (online
      ? el("a", { class: "button primary", id: "telemedicine", href: appt.host_url, target: "_blank", rel: "noopener" }, t("appt.telemedicine"))
      : el("p", { class: "meta", id: "telemedicine" }, `${t("appt.telemedicine")}: ${t("appt.telemedicine_offline")}`))
    : null;
  root.replaceChildren(
    el("a", { href: "#/agenda", class: "back" }, `‹ ${t("appt.back")}`),
    el("h2", {}, `${appt.patient.name} · ${clockIn(appt.start, zone)}–${clockIn(appt.end, zone)}`),
    el("p", { class: "meta" }, t("appt.provider", { name: appt.provider.name }),
      appt.status === "cancelled" ? el("span", { class: "badge danger" }, t("agenda.cancelled")) : null),
    tele,
    notesCard(appt, mine(notes), waiting.filter((i) => i.kind === "note" && i.patientId === pid)),
    patient(p, appt.patient),
    client(clientRecord, appt.client),
    historyCard(mine(history)),
    consultationsCard(mine(consultations)));
}
