// The agenda: yesterday, today and tomorrow of each department, in its own time zone.

import { el } from "/clinic/static/dom.js";
import { t } from "/static/visit/js/i18n.js";
import * as db from "./db.js";
import { clockIn, dayIn, dayName } from "./time.js";

const DAY_KEYS = ["agenda.yesterday", "agenda.today", "agenda.tomorrow"];

function row(appt, zone) {
  const cancelled = appt.status === "cancelled";
  return el("li", { "data-appointment": appt.id, class: cancelled ? "cancelled" : null },
    el("a", { href: `#/appointment/${encodeURIComponent(appt.id)}` },
      el("span", { class: "time" }, clockIn(appt.start, zone)),
      el("span", { class: "who" },
        el("strong", {}, appt.patient.name),
        appt.patient.species ? ` (${appt.patient.species})` : "",
        el("span", { class: "meta" }, appt.client.name)),
      cancelled ? el("span", { class: "badge danger" }, t("agenda.cancelled")) : null,
      appt.host_url ? el("span", { class: "badge" }, t("agenda.telemedicine")) : null));
}

export async function renderAgenda(root) {
  const [appointments, departments] = await Promise.all([db.all("appointments"), db.kv.get("departments")]);
  if (!departments) {
    root.replaceChildren(el("p", { class: "empty" }, t("agenda.no_data")));
    return;
  }
  const sections = [];
  for (const dept of departments) {
    const mine = appointments
      .filter((a) => a.department_id === dept.id)
      .sort((a, b) => a.start.localeCompare(b.start));
    if (departments.length > 1) sections.push(el("h2", { class: "department" }, dept.name));
    dept.days.forEach((day, i) => {
      const today = mine.filter((a) => dayIn(a.start, dept.time_zone) === day);
      sections.push(el("section", { class: "day", "data-day": day },
        el("h3", {}, `${t(DAY_KEYS[i])} · ${dayName(day)}`),
        today.length
          ? el("ul", { class: "appointments" }, today.map((a) => row(a, dept.time_zone)))
          : el("p", { class: "empty" }, t("agenda.empty"))));
    });
  }
  root.replaceChildren(...sections);
}
