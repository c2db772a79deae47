import { act, api, el, logout, showError, signedIn } from "./clinic.js";

const $ = (id) => document.getElementById(id);
const error = $("error");

async function reload() {
  const [{ policy }, { staff }, { stations }] = await Promise.all([
    api("GET", "/policy"), api("GET", "/staff"), api("GET", "/stations"),
  ]);
  const names = new Map(staff.map((s) => [s.id, s.display_name]));
  $("policy").notes.checked = policy.notes_enabled;
  $("policy").services.value = policy.services.join("\n");
  $("stations").replaceChildren(...(stations.length ? stations.map((s) => el("li", {},
    el("span", { class: "name" }, s.station), ` ${names.get(s.staff_id) || s.staff_id}`,
    el("div", { class: "meta" }, `signed in ${new Date(s.created_at * 1000).toLocaleString()}`),
    el("div", { class: "actions" }, el("button", { class: "danger",
      onclick: act(error, reload, async () => { await api("DELETE", `/sessions/${s.id}`); await reload(); }) },
    "Sign out station")))) : [el("li", { class: "empty" }, "No dedicated stations.")]));
  $("staff").replaceChildren(...staff.map((s) => el("tr", {},
    el("td", {}, s.display_name), el("td", {}, s.username), el("td", {}, s.groups.join(", ")),
    el("td", {}, el("button", { onclick: act(error, reload, async () => {
      await api("PATCH", `/staff/${s.id}`, { disabled: !s.disabled });
      await reload();
    }) }, s.disabled ? "Enable" : "Disable")))));
}

$("policy").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.currentTarget;
  const services = f.services.value.split("\n").map((s) => s.trim()).filter(Boolean);
  try { await api("PUT", "/policy", { notes_enabled: f.notes.checked, services }); await reload(); }
  catch (err) { showError(error, err); }
});
$("new-staff").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.currentTarget;
  const groups = [...f.querySelectorAll("input[name=groups]:checked")].map((c) => c.value);
  try {
    await api("POST", "/staff", { display_name: f.display_name.value, username: f.username.value,
      password: f.password.value, groups });
    f.reset();
    await reload();
  } catch (err) { showError(error, err); }
});
$("logout").addEventListener("click", logout);
const me = await signedIn();
$("who").textContent = me.staff.display_name;
reload().catch((err) => showError(error, err));
