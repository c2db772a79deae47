import {
  act, api, el, formatDateTime, logout, setupLanguage, showError, signedIn, t,
} from "./clinic.js";

const $ = (id) => document.getElementById(id);
const error = $("error");
const GROUPS = {
  request: () => t("group.request"),
  provide: () => t("group.provide"),
  administer: () => t("group.administer"),
  mobile: () => t("group.mobile"),
};

function when(seconds) {
  return formatDateTime(new Date(seconds * 1000));
}

function mobileDevice(d) {
  return el("li", { "data-device": d.id },
    el("span", { class: "name" }, d.name), ` ${d.staff_name || d.staff_id}`,
    el("div", { class: "meta" }, d.last_sync_at
      ? t("admin.last_sync", { time: formatDateTime(new Date(d.last_sync_at)) })
      : t("admin.never_synced")),
    el("div", { class: "actions" }, el("button", { class: "danger",
      onclick: act(error, reload, async () => { await api("DELETE", `/api/v1/mobile/devices/${d.id}`); await reload(); }) },
    t("admin.sign_out_device"))));
}

async function reload() {
  const [{ policy }, { staff }, { stations }, mobile, { devices }] = await Promise.all([
    api("GET", "/policy"), api("GET", "/staff"), api("GET", "/stations"),
    api("GET", "/api/v1/mobile/settings"), api("GET", "/api/v1/mobile/org/devices"),
  ]);
  $("mobile-enabled").checked = mobile.enabled;
  $("mobile-devices").replaceChildren(...(devices.length ? devices.map(mobileDevice)
    : [el("li", { class: "empty" }, t("admin.no_devices"))]));
  const names = new Map(staff.map((s) => [s.id, s.display_name]));
  // Data arriving (the first load, a reload after another action) never overwrites what the
  // user is typing: an edited form keeps its values until it is submitted.
  if (!$("policy").dataset.edited) {
    $("policy").notes.checked = policy.notes_enabled;
    $("policy").services.value = policy.services.join("\n");
  }
  $("stations").replaceChildren(...(stations.length ? stations.map((s) => el("li", {},
    el("span", { class: "name" }, s.station), ` ${names.get(s.staff_id) || s.staff_id}`,
    el("div", { class: "meta" }, t("admin.signed_in", { time: when(s.created_at) })),
    el("div", { class: "actions" }, el("button", { class: "danger",
      onclick: act(error, reload, async () => { await api("DELETE", `/sessions/${s.id}`); await reload(); }) },
    t("admin.sign_out_station"))))) : [el("li", { class: "empty" }, t("admin.no_stations"))]));
  $("staff").replaceChildren(...staff.map((s) => el("tr", {},
    el("td", {}, s.display_name), el("td", {}, s.username),
    el("td", {}, s.groups.map((g) => GROUPS[g]?.() ?? g).join(", ")),
    el("td", {}, el("button", { onclick: act(error, reload, async () => {
      await api("PATCH", `/staff/${s.id}`, { disabled: !s.disabled });
      await reload();
    }) }, s.disabled ? t("admin.enable") : t("admin.disable"))))));
}

// A form's submit: the error banner cleared first, a refusal explained in it.
function submit(form, fn) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      await fn(e.currentTarget);
      await reload();
    } catch (err) {
      showError(error, err);
    }
  });
}

$("policy").addEventListener("input", (e) => { e.currentTarget.dataset.edited = "1"; });
submit($("policy"), async (f) => {
  const services = f.services.value.split("\n").map((s) => s.trim()).filter(Boolean);
  await api("PUT", "/policy", { notes_enabled: f.notes.checked, services });
  delete f.dataset.edited;
});
$("mobile-enabled").addEventListener("change", async (e) => {
  error.hidden = true;
  try {
    await api("PUT", "/api/v1/mobile/settings", { enabled: e.currentTarget.checked });
    await reload();
  } catch (err) {
    showError(error, err);
  }
});
submit($("new-staff"), async (f) => {
  const groups = [...f.querySelectorAll("input[name=groups]:checked")].map((c) => c.value);
  await api("POST", "/staff", { display_name: f.display_name.value, username: f.username.value,
    password: f.password.value, groups });
  f.reset();
});
$("logout").addEventListener("click", logout);
await setupLanguage(() => reload().catch((err) => showError(error, err)));
const me = await signedIn();
$("who").textContent = me.staff.display_name;
reload().catch((err) => showError(error, err));
