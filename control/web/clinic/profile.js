// The user's profile: the mobile app section ("Show login credentials", the user's devices).

import {
  act, api, el, formatDateTime, logout, setupLanguage, showError, signedIn, t,
} from "./clinic.js";

const $ = (id) => document.getElementById(id);
const error = $("error");
let expires = null;

function when(iso) {
  return iso ? formatDateTime(new Date(iso)) : t("profile.never");
}

async function listDevices() {
  const { devices } = await api("GET", "/api/v1/mobile/devices");
  $("devices").replaceChildren(...(devices.length ? devices.map((d) => el("li", { "data-device": d.id },
    el("span", { class: "name" }, d.name),
    el("div", { class: "meta" }, t("profile.device_meta", { since: when(d.created_at), sync: when(d.last_sync_at) })),
    el("div", { class: "actions" }, el("button", { class: "danger",
      onclick: act(error, listDevices, async () => {
        await api("DELETE", `/api/v1/mobile/devices/${d.id}`);
        await listDevices();
      }) },
    t("admin.sign_out_device"))))) : [el("li", { class: "empty" }, t("profile.no_devices"))]));
}

function showExpiry() {
  if (expires) $("key-expires").textContent = t("profile.key_expires", { time: when(expires) });
}

function instructionsFor(os) {
  $("howto-android").hidden = os !== "android";
  $("howto-ios").hidden = os !== "ios";
  $("for-android").setAttribute("aria-pressed", String(os === "android"));
  $("for-ios").setAttribute("aria-pressed", String(os === "ios"));
}

$("logout").addEventListener("click", logout);
await setupLanguage(() => {
  showExpiry();
  listDevices().catch((err) => showError(error, err));
});
const me = await signedIn();
$("who").textContent = me.staff.display_name;
const permitted = me.staff.groups.includes("mobile");
const { enabled } = await api("GET", "/api/v1/mobile/settings");
$("mobile-denied").hidden = permitted;
$("mobile-off").hidden = !permitted || enabled;
$("mobile-on").hidden = !(permitted && enabled);
if (permitted && enabled) {
  for (const a of document.querySelectorAll(".app-url")) {
    a.href = `${location.origin}/staff/`;
    a.textContent = `${location.origin}/staff/`;
  }
  instructionsFor(/iPhone|iPad/.test(navigator.userAgent) ? "ios" : "android");
  $("for-android").addEventListener("click", () => instructionsFor("android"));
  $("for-ios").addEventListener("click", () => instructionsFor("ios"));
  $("show-credentials").addEventListener("click", act(error, listDevices, async () => {
    const key = await api("POST", "/api/v1/mobile/login-key");
    $("login-key").textContent = key.key;
    expires = key.expires_at;
    showExpiry();
    $("credentials").hidden = false;
  }));
  listDevices().catch((err) => showError(error, err));
}
