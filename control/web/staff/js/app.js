// The staff app: signs the device in with a one-time login key, keeps the agenda of
// yesterday, today and tomorrow on the device (refreshed on pull-down, when the network comes
// back and every hour), and sends notes and stock scans from the outbox whenever it can.
// Screens are chosen by the URL hash: #/agenda, #/appointment/<id>, #/note/<id>?appointment=,
// #/fix/<outbox key>, #/scan, #/pending.

import { browserLanguage, setLanguage, t, useStrings } from "/static/visit/js/i18n.js";
import { renderAgenda } from "./agenda.js";
import { ApiError, Offline, call, setToken } from "./api.js";
import { renderAppointment } from "./appointment.js";
import * as db from "./db.js";
import { editNote, fixNote, setupEditor } from "./editor.js";
import * as outbox from "./outbox.js";
import { renderPending } from "./pending.js";
import { leaveScan, openScan, renderRecent, setupScan } from "./scan.js";
import { forgetAll, sync } from "./sync.js";
import { dateTime } from "./time.js";

const $ = (id) => document.getElementById(id);
const HOUR_MS = 3600 * 1000;
const PULL_PX = 70;
// Why the server refused the device (problem type -> what the app says).
const REASONS = {
  "device-revoked": "signedout.revoked",
  unauthenticated: "signedout.unknown",
  "mobile-disabled": "blocked.disabled",
  "mobile-not-permitted": "blocked.not_permitted",
};

const app = { online: navigator.onLine, busy: false, again: false, blocked: null, outbox };
window.staffApp = app; // for the browser tests and for curious support staff

function show(screen) {
  document.body.dataset.view = screen;
  const signedIn = !["signin", "signedout", "loading"].includes(screen);
  $("tabs").hidden = !signedIn;
  $("refresh").hidden = !signedIn;
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.classList.toggle("active", tab.dataset.tab === screen);
  }
}

async function renderStatus() {
  const at = await db.kv.get("syncedAt");
  const when = at ? dateTime(new Date(at).toISOString(), { timeStyle: "short" }) : null;
  let text = app.busy ? t("sync.updating") : when ? t("sync.updated", { time: when }) : t("sync.never");
  if (!app.online && !app.busy) text = when ? t("sync.offline", { time: when }) : t("sync.offline_never");
  $("status").textContent = text;
  document.body.dataset.online = String(app.online);
  $("offline").hidden = app.online;
  $("blocked").hidden = !app.blocked;
  $("blocked").textContent = app.blocked ? t(REASONS[app.blocked] || "blocked.disabled") : "";
  const waiting = (await outbox.items()).length;
  $("pending-count").hidden = !waiting;
  $("pending-count").textContent = String(waiting);
}

async function route() {
  if (!(await db.kv.get("token"))) {
    if (document.body.dataset.view !== "signedout") show("signin");
    return;
  }
  const [path, query] = location.hash.slice(2).split("?");
  const [screen, arg] = path.split("/").map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  if (screen !== "scan") await leaveScan();
  if (screen === "appointment" && arg) {
    show("appointment");
    await renderAppointment($("appointment"), arg, app.online);
  } else if (screen === "note" && arg) {
    // Forms are filled before they are shown: filled after, they overwrote what was typed.
    await editNote(arg, params.get("appointment"));
    show("note");
  } else if (screen === "fix" && arg) {
    const item = await db.get("outbox", arg);
    if (!item) {
      location.hash = "#/pending";
      return;
    }
    if (item.kind === "note") {
      await fixNote(item);
      show("note");
    } else {
      await openScan(item);
      show("scan");
    }
  } else if (screen === "scan") {
    await openScan();
    show("scan");
  } else if (screen === "pending") {
    show("pending");
    await renderPending($("pending-list"));
  } else {
    show("agenda");
    await renderAgenda($("agenda"));
  }
  await renderStatus();
}

// The device was refused: signed out (401) or not allowed now (403).
async function refused(err) {
  if (err.status === 401) {
    await forgetAll();
    setToken(null);
    app.blocked = null;
    $("signedout-reason").textContent = t(REASONS[err.kind] || "signedout.unknown");
    $("signedout-kept").hidden = !(await outbox.items()).length;
    show("signedout");
    return;
  }
  app.blocked = err.kind;
}

// Send what waits, then sync. Offline or refused: stop quietly and show it.
async function refresh() {
  if (app.busy) {
    app.again = true; // something was queued meanwhile: go once more when this round ends
    return;
  }
  if (!(await db.kv.get("token"))) return;
  app.busy = true;
  app.again = false;
  await renderStatus();
  try {
    const stopped = await outbox.flush();
    if (stopped instanceof ApiError) throw stopped;
    app.online = stopped !== "offline";
    if (app.online) {
      await sync();
      app.blocked = null;
    }
  } catch (err) {
    if (err instanceof Offline) app.online = false;
    else if (err instanceof ApiError && (err.status === 401 || err.status === 403)) await refused(err);
    else console.warn("refresh failed", err);
  } finally {
    app.busy = false;
  }
  // Re-render what shows synced data; never a form the user may be typing in.
  const view = document.body.dataset.view;
  if (["agenda", "appointment", "pending"].includes(view)) await route();
  else if (view === "scan") await renderRecent();
  if (view !== "signedout") await renderStatus();
  if (app.again && app.online) await refresh();
}
app.refresh = refresh;

function deviceName() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return "iPhone";
  if (/iPad/.test(ua)) return "iPad";
  if (/Android/.test(ua)) return "Android";
  return t("signin.default_device");
}

async function signIn(e) {
  e.preventDefault();
  const form = e.currentTarget;
  const error = $("signin-error");
  error.hidden = true;
  try {
    const { data } = await call("POST", "/device-login", { key: form.key.value, name: form.name.value || deviceName() });
    await db.kv.set("token", data.token);
    await db.kv.set("device", data.device);
    await db.kv.set("staff", data.staff);
    setToken(data.token);
    form.reset();
    location.hash = "#/agenda";
    await refresh();
  } catch (err) {
    const key = err instanceof Offline ? "signin.offline"
      : err.kind === "rate-limited" ? "signin.throttled"
        : err.kind === "invalid-login-key" || err.kind === "invalid-input" ? "signin.bad_key"
          : REASONS[err.kind] || "signin.failed";
    error.textContent = t(key);
    error.hidden = false;
  }
}

// Pull down at the top of the agenda to refresh (touch screens).
function setupPull() {
  const main = document.querySelector("main");
  let start = null;
  main.addEventListener("touchstart", (e) => {
    start = window.scrollY === 0 ? e.touches[0].clientY : null;
  }, { passive: true });
  main.addEventListener("touchmove", (e) => {
    if (start !== null) $("pull").classList.toggle("ready", e.touches[0].clientY - start > PULL_PX);
  }, { passive: true });
  main.addEventListener("touchend", () => {
    const ready = $("pull").classList.contains("ready");
    $("pull").classList.remove("ready");
    start = null;
    if (ready) refresh();
  });
}

async function main() {
  useStrings("/staff/i18n");
  const lang = (await db.kv.get("language")) || browserLanguage();
  await setLanguage(lang);
  $("language").value = lang;
  $("language").addEventListener("change", async (e) => {
    await setLanguage(e.target.value);
    await db.kv.set("language", e.target.value);
    await route();
  });
  $("signin-name").value = deviceName();
  $("signin-form").addEventListener("submit", signIn);
  $("signin-again").addEventListener("click", () => show("signin"));
  $("refresh").addEventListener("click", refresh);
  setupEditor();
  setupScan();
  setupPull();
  window.addEventListener("hashchange", route);
  window.addEventListener("online", () => {
    app.online = true;
    refresh();
  });
  window.addEventListener("offline", () => {
    app.online = false;
    renderStatus();
  });
  document.addEventListener("outboxchange", async () => {
    await renderStatus();
    if (document.body.dataset.view === "pending") await renderPending($("pending-list"));
    if (document.body.dataset.view === "scan") await renderRecent();
    refresh();
  });
  setInterval(refresh, HOUR_MS);
  // A phone suspends timers in the background: coming back after an hour refreshes too.
  document.addEventListener("visibilitychange", async () => {
    const at = await db.kv.get("syncedAt");
    if (document.visibilityState === "visible" && (!at || Date.now() - at > HOUR_MS)) refresh();
  });
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/staff/sw.js", { scope: "/staff/" }).catch((err) => {
      console.warn("service worker not registered", err);
    });
  }
  setToken((await db.kv.get("token")) || null);
  await route();
  await refresh();
  app.ready = true;
}

main();
