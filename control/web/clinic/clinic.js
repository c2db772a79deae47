// Shared by the virtual clinic pages: the REST client, the live event feed, the language
// menu, errors as sentences in the reader's language, small DOM helpers.

import {
  LANGUAGES, apply, browserLanguage, formatClinicTime, formatDateTime, language, setLanguage,
  setTimeZone, t, useStrings,
} from "/static/visit/js/i18n.js";
import { el } from "./dom.js";

// Times read in the organization's zone (from /me), as the visit pages and messages show
// them; the zone is named when the reader's clock is in another.
export { el, formatClinicTime, formatDateTime, t };
useStrings("/clinic/static/i18n");
const LANGUAGE_KEY = "televisit.clinic.language";
const LANGUAGE_NAMES = { en: "English", fi: "Suomi", sv: "Svenska" };

// The language of the dashboards: the one picked in the menu (remembered for the next page
// and the next sign-in on this browser), else the browser's. `onChange` re-renders.
export async function setupLanguage(onChange = () => {}) {
  let saved = null;
  try {
    saved = localStorage.getItem(LANGUAGE_KEY);
  } catch {
    // storage refused: the browser's language each time
  }
  await setLanguage(LANGUAGES.includes(saved) ? saved : browserLanguage());
  const menu = document.getElementById("lang");
  if (!menu) return;
  menu.replaceChildren(...LANGUAGES.map((l) => el("option", { value: l }, LANGUAGE_NAMES[l])));
  menu.value = language();
  menu.addEventListener("change", async () => {
    try {
      localStorage.setItem(LANGUAGE_KEY, menu.value);
    } catch {
      // not remembered; still switched
    }
    await setLanguage(menu.value);
    apply(document);
    onChange();
  });
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  // Paths are the clinic API's unless absolute (the mobile app's settings: /api/v1/mobile/...).
  const resp = await fetch(path.startsWith("/api/") ? path : `/api/v1/clinic${path}`, init);
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// Live dashboard events over one WebSocket. `onReady` runs after every (re)subscription, so
// the page reloads its snapshot then and misses nothing; reconnects back off up to 10 s.
export function live(onEvent, onReady, onState) {
  let delay = 500;
  let stopped = false;
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/clinic/events`);
    ws.onmessage = (m) => {
      const event = JSON.parse(m.data);
      if (event.type === "hello") {
        delay = 500;
        onState?.("live");
        onReady();
      } else {
        onEvent(event);
      }
    };
    ws.onclose = (e) => {
      onState?.("offline");
      if (e.code === 4001 || stopped) {
        location.href = "/clinic/";  // signed out (session revoked)
        return;
      }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
  return () => { stopped = true; };
}

export function withService(name, service) {
  return service ? `${name} (${service})` : name;
}

const STATUS_TEXT = {
  not_arrived: () => t("status.not_arrived"),
  waiting: () => t("status.waiting"),
  in_meeting: () => t("status.in_meeting"),
  away: () => t("status.away"),
  left: () => t("status.left"),
};

export function statusText(status) {
  return STATUS_TEXT[status]?.() ?? status;
}

export function liveState(s) {
  const box = document.getElementById("live");
  box.dataset.state = s;
  box.textContent = s === "live" ? t("live.live") : t("live.reconnecting");
}

// Open the room in its own tab. The tab is opened during the click (browsers block pop-ups
// opened later) and pointed at the room once the server has issued the join. `enter`: the
// room page goes straight into the call (#enter), as "Accept and enter" promises.
export async function enterRoom(getJoin, { enter = false } = {}) {
  const tab = window.open("", "_blank");
  try {
    const join = await getJoin();
    const url = enter ? `${join.url}#enter` : join.url;
    if (tab) tab.location.href = url;
    else location.href = url;
  } catch (err) {
    tab?.close();
    throw err;
  }
}

export async function signedIn() {
  try {
    const me = await api("GET", "/me");
    setTimeZone(me.time_zone);
    return me;
  } catch (err) {
    if (err.status === 401) location.href = "/clinic/";
    throw err;
  }
}

export async function logout() {
  await api("POST", "/logout").catch(() => null);
  location.href = "/clinic/";
}

// A refusal as a sentence in the reader's language: by what the problem names (its field,
// its status), never the server's English detail or a Python value.
const FIELD_ERRORS = {
  service: () => t("error.choose_service"),
  username: () => t("error.username"),
  password: () => t("error.password"),
  display_name: () => t("error.display_name"),
  groups: () => t("error.groups"),
  services: () => t("error.services"),
  station: () => t("error.station"),
  note: () => t("error.note"),
};

export function explain(err) {
  if (!(err instanceof ApiError)) return t("error.network");
  const p = err.problem || {};
  if (err.status === 409) {
    if (p.field === "provider_id") {
      return p.state && p.state !== "requested" ? t("error.dismiss_first") : t("error.already_requested");
    }
    if (p.field === "username") return t("error.username_taken");
    if (p.field === "state") return t("error.already_answered");
  }
  if (err.status === 401) return p.field === "password" ? t("error.login_failed") : t("error.signed_out");
  if (err.status === 403) return t("error.forbidden");
  if (err.status === 404) return t("error.gone");
  if (err.status === 429) return t("error.rate_limited");
  if (err.status === 422 && FIELD_ERRORS[p.field]) return FIELD_ERRORS[p.field]();
  return t("error.generic");
}

export function showError(target, err) {
  target.textContent = explain(err);
  target.hidden = false;
}

// A click handler running `fn` with its button disabled; a refusal is shown in `errorBox`
// and the page reloads its snapshot (the refusal usually means someone else acted first).
export function act(errorBox, reload, fn) {
  return async (e) => {
    const button = e.currentTarget;
    errorBox.hidden = true;
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      showError(errorBox, err);
      await reload().catch(() => null);
    } finally {
      button.disabled = false;
    }
  };
}
