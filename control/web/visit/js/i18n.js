// Strings in English, Finnish and Swedish (i18n/<lang>.json, flat keys). Markup names its
// strings with data-i18n (text), data-i18n-aria (aria-label) and data-i18n-placeholder, and
// the page title with <html data-title="key"> (default app.title); scripts call
// t("key", {param}). Keys are always literal so tests can check them all. The visit page and
// the virtual clinic dashboards (useStrings("/clinic/static/i18n")) share this module.

export const LANGUAGES = ["en", "fi", "sv"];
const cache = new Map();
let strings = {};
let current = "en";
let base = "/static/visit/i18n";

// Where this page's string files are (before the first setLanguage).
export function useStrings(path) {
  base = path;
}

async function load(lang) {
  if (!cache.has(lang)) {
    const resp = await fetch(`${base}/${lang}.json`);
    if (!resp.ok) throw new Error(`language ${lang}: HTTP ${resp.status}`);
    cache.set(lang, await resp.json());
  }
  return cache.get(lang);
}

// The browser's preferred supported language (used before the appointment tells us).
export function browserLanguage() {
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base === "nb" || base === "nn" || base === "da") continue;
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export function language() {
  return current;
}

export async function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) lang = "en";
  strings = await load(lang);
  current = lang;
  document.documentElement.lang = lang;
  apply(document);
  document.dispatchEvent(new CustomEvent("languagechange", { detail: lang }));
}

export function t(key, params = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

export function apply(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
  }
  document.title = t(document.documentElement.dataset.title || "app.title");
}

const locales = { en: "en-GB", fi: "fi-FI", sv: "sv-SE" };
// The clinic's time zone (IANA name from the join answer); undefined: the reader's own.
let timeZone;

export function setTimeZone(zone) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone || undefined });
    timeZone = zone || undefined;
  } catch {
    timeZone = undefined; // a zone this browser does not know: its own is the best guess
  }
}

// The zone is named only when the reader's clock is in another zone: then "10.38" alone
// would be misread.
function zoneShown() {
  return timeZone && Intl.DateTimeFormat().resolvedOptions().timeZone !== timeZone;
}

function format(date, options, zone) {
  const all = { ...options, hourCycle: "h23", timeZone: zone };
  if (zone && zoneShown()) all.timeZoneName = "short";
  return new Intl.DateTimeFormat(locales[current], all).format(date);
}

// The reader's own clock (chat messages: when they came).
export function formatTime(date) {
  return format(date, { hour: "2-digit", minute: "2-digit" });
}

// The appointment's times: the clinic's local time.
export function formatClinicTime(date) {
  return format(date, { hour: "2-digit", minute: "2-digit" }, timeZone);
}

export function formatDateTime(date) {
  const options = { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  return format(date, options, timeZone);
}
