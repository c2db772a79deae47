import { act, api, el, logout, setupLanguage, showError, signedIn, t } from "./clinic.js";

const $ = (id) => document.getElementById(id);
const error = $("error");
const GROUPS = {
  request: () => t("group.request"),
  provide: () => t("group.provide"),
  administer: () => t("group.administer"),
};

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString(document.documentElement.lang, { hourCycle: "h23" });
}

async function reload() {
  const [{ policy }, { staff }, { stations }] = await Promise.all([
    api("GET", "/policy"), api("GET", "/staff"), api("GET", "/stations"),
  ]);
  const names = new Map(staff.map((s) => [s.id, s.display_name]));
  $("policy").notes.checked = policy.notes_enabled;
  $("policy").services.value = policy.services.join("\n");
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

submit($("policy"), async (f) => {
  const services = f.services.value.split("\n").map((s) => s.trim()).filter(Boolean);
  await api("PUT", "/policy", { notes_enabled: f.notes.checked, services });
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
