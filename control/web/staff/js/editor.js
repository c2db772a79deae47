// The note editor: a new or edited preliminary note goes to the outbox (sent when online);
// a refused one comes back here with its error, a conflicting one with the other device's
// text, for the user to choose.

import { t } from "/static/visit/js/i18n.js";
import * as db from "./db.js";
import * as outbox from "./outbox.js";
import { dateTime } from "./time.js";

const $ = (id) => document.getElementById(id);
let context = null; // {noteId, patientId, appointmentId, base, back, item}

function count() {
  $("note-count").textContent = String($("note-text").value.length);
}

function show(ctx, text, about) {
  context = ctx;
  $("note-text").value = text;
  $("note-about").textContent = about;
  const item = ctx.item;
  $("note-error").hidden = !(item && item.state === "error");
  $("note-error").textContent = item?.error?.detail || "";
  $("note-conflict").hidden = !(item && item.state === "conflict");
  if (item?.state === "conflict") {
    const by = item.current.updated_by;
    $("conflict-by").textContent = t("conflict.by", { device: by.device_name, time: dateTime(item.current.updated_at) });
    $("conflict-theirs").textContent = item.current.text;
  }
  count();
}

async function aboutPatient(patientId, fallback) {
  const p = patientId ? await db.get("patients", patientId) : null;
  return (p && p.name) || fallback || "";
}

export async function editNote(noteId, appointmentId) {
  const appt = await db.get("appointments", appointmentId);
  const note = await db.get("notes", noteId);
  const waiting = (await outbox.items()).filter((i) => i.kind === "note" && i.noteId === noteId);
  const patientId = note?.patient_id || appt?.patient.id;
  const text = waiting.at(-1)?.text ?? note?.text ?? "";
  show(
    { noteId, patientId, appointmentId: note ? note.appointment_id : appointmentId, base: note?.version || 0,
      back: `#/appointment/${encodeURIComponent(appointmentId)}`, item: null },
    text, await aboutPatient(patientId, appt?.patient.name),
  );
}

export async function fixNote(item) {
  show({ noteId: item.noteId, patientId: item.patientId, appointmentId: item.appointmentId, base: item.base,
    back: "#/pending", item }, item.text, await aboutPatient(item.patientId, item.patientId));
}

async function save(changes) {
  const item = context.item;
  if (item) await outbox.replace(item.key, changes);
  else {
    await outbox.queueNote({ noteId: context.noteId, patientId: context.patientId,
      appointmentId: context.appointmentId, text: changes.text, base: context.base });
  }
  const back = context.back;
  context = null;
  document.dispatchEvent(new CustomEvent("outboxchange"));
  location.hash = back;
}

export function setupEditor() {
  $("note-text").addEventListener("input", count);
  $("note-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("note-text").value;
    if (!text.trim()) return;
    // A conflict resolved by saving keeps this text on top of the other device's version.
    const base = context.item?.state === "conflict" ? context.item.current.version : context.base;
    await save({ text, base });
  });
  $("conflict-mine").addEventListener("click", () => $("note-form").requestSubmit());
  $("conflict-theirs-use").addEventListener("click", async () => {
    const item = context.item;
    await db.put("notes", item.current);
    await outbox.discard(item.key);
    context = null;
    document.dispatchEvent(new CustomEvent("outboxchange"));
    location.hash = "#/pending";
  });
  $("note-cancel").addEventListener("click", () => {
    const back = context?.back || "#/agenda";
    context = null;
    location.hash = back;
  });
}
