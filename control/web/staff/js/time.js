// Times on the device are shown in the appointment's department's time zone, whatever the
// phone's own zone is (the visit page's i18n module names the zone when they differ).

import { formatClinicTime, language, setTimeZone } from "/static/visit/js/i18n.js";

const locales = { en: "en-GB", fi: "fi-FI", sv: "sv-SE" };

// "YYYY-MM-DD" of an instant in `zone`.
export function dayIn(iso, zone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date(iso));
}

export function clockIn(iso, zone) {
  setTimeZone(zone);
  return formatClinicTime(new Date(iso));
}

// "Tue 1 Dec" for a "YYYY-MM-DD".
export function dayName(day) {
  return new Intl.DateTimeFormat(locales[language()], { timeZone: "UTC", weekday: "short", day: "numeric", month: "short" })
    .format(new Date(`${day}T12:00:00Z`));
}

// A date and time in the reader's own zone (history, consultations, when a note was saved).
export function dateTime(iso, options = { dateStyle: "medium", timeStyle: "short" }) {
  return new Intl.DateTimeFormat(locales[language()], options).format(new Date(iso));
}

export function date(iso) {
  return dateTime(iso, { dateStyle: "medium" });
}
