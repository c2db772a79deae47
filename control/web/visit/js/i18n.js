// Strings in English, Finnish and Swedish (i18n/<lang>.json, flat keys). Markup names its
// strings with data-i18n (text), data-i18n-aria (aria-label) and data-i18n-placeholder;
// scripts call t("key", {param}). Keys are always literal so tests can check them all.

export const LANGUAGES = ["en", "fi", "sv"];
const cache = new Map();
let strings = {};
let current = "en";

async function load(lang) {
  if (!cache.has(lang)) {
    const resp = await fetch(`/static/visit/i18n/${lang}.json`);
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
  document.title = t("app.title");
}

const locales = { en: "en-GB", fi: "fi-FI", sv: "sv-SE" };

export function formatTime(date) {
  return new Intl.DateTimeFormat(locales[current], { hour: "2-digit", minute: "2-digit" }).format(date);
}

export function formatDateTime(date) {
  return new Intl.DateTimeFormat(locales[current], {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  }).format(date);
}
