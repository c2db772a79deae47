import {
  act, api, el, enterRoom, formatClinicTime, live, liveState, logout, setupLanguage, showError,
  signedIn, statusText, t, withService,
} from "./clinic.js";

const state = { staff: null, policy: null, inbox: new Map(), visits: new Map(), fresh: new Set() };
const $ = (id) => document.getElementById(id);
const error = $("error");

// 24-hour clock of an epoch in seconds, in the organization's zone.
function clock(seconds) {
  return formatClinicTime(new Date(seconds * 1000));
}

function renderAvailability() {
  const on = state.staff.available;
  const toggle = $("availability");
  toggle.setAttribute("aria-checked", String(on));
  toggle.dataset.i18n = on ? "provider.available" : "provider.unavailable";
  toggle.textContent = t(toggle.dataset.i18n);
}

function requestItem(r) {
  const noteBox = el("textarea", { rows: 2, "aria-label": t("provider.note_label"), maxlength: 500 });
  const declineForm = el("div", { class: "decline-form", hidden: true },
    state.policy.notes_enabled ? el("label", {}, t("provider.note"), noteBox) : null,
    el("div", { class: "actions" },
      el("button", { class: "danger", onclick: act(error, reload, async () => {
        const note = state.policy.notes_enabled ? noteBox.value.trim() : "";
        await api("POST", `/requests/${r.id}/decline`, note ? { note } : {});
      }) }, t("provider.send_decline"))));
  return el("li", { class: state.fresh.has(r.id) ? "new" : "", "data-request": r.id },
    el("div", { class: "name" }, withService(r.requester.name, r.service)),
    el("div", { class: "meta" }, t("provider.requested_at", { time: clock(r.created_at) })),
    el("div", { class: "actions" },
      el("button", { class: "primary", onclick: act(error, reload, () => api("POST", `/requests/${r.id}/accept`, {})) }, t("provider.accept")),
      el("button", { onclick: act(error, reload, () => enterRoom(async () =>
        (await api("POST", `/requests/${r.id}/accept`, { enter: true })).join, { enter: true })) }, t("provider.accept_enter")),
      el("button", { class: "danger", onclick: () => { declineForm.hidden = false; noteBox.focus(); } }, t("provider.decline"))),
    declineForm);
}

function visitItem(v) {
  const status = v.requester.status;
  return el("li", { "data-visit": v.id },
    el("div", { class: "name" }, withService(v.requester.name, v.service)),
    el("div", { class: `status ${status}` }, statusText(status)),
    el("div", { class: "actions" },
      el("button", { class: "primary", onclick: act(error, reload, () => enterRoom(async () =>
        (await api("POST", `/visits/${v.id}/enter`, {})).join, { enter: true })) }, t("provider.enter")),
      el("button", { onclick: act(error, reload, () => api("POST", `/visits/${v.id}/end`, {})) }, t("provider.close"))));
}

function render() {
  $("who").textContent = state.staff.display_name;
  renderAvailability();
  const inbox = [...state.inbox.values()].sort((a, b) => b.created_at - a.created_at);
  // The tab title alerts a provider working in another tab.
  document.title = inbox.length ? t("title.provider_alert", { count: inbox.length }) : t("title.provider");
  $("requests").replaceChildren(...(inbox.length ? inbox.map(requestItem)
    : [el("li", { class: "empty" }, state.staff.available ? t("provider.no_requests") : t("provider.no_requests_unavailable"))]));
  const visits = [...state.visits.values()].sort((a, b) => b.created_at - a.created_at);
  $("sessions").replaceChildren(...(visits.length ? visits.map(visitItem)
    : [el("li", { class: "empty" }, t("provider.no_sessions"))]));
}

async function reload() {
  const d = await api("GET", "/dashboard");
  state.staff = d.staff;
  state.policy = d.policy;
  state.inbox = new Map((d.inbox || []).map((r) => [r.id, r]));
  state.visits = new Map(d.visits.filter((v) => v.provider.id === d.staff.id).map((v) => [v.id, v]));
  render();
}

function onEvent(e) {
  if (e.request) {
    if (e.request.state === "requested" && e.request.provider.id === state.staff.id) {
      state.inbox.set(e.request.id, e.request);
      state.fresh.add(e.request.id);
    } else {
      state.inbox.delete(e.request.id);
    }
  }
  if (e.visit && e.visit.provider.id === state.staff.id) {
    if (e.visit.state === "open") state.visits.set(e.visit.id, e.visit);
    else state.visits.delete(e.visit.id);
  }
  if (e.type === "provider.availability" && e.provider.id === state.staff.id) {
    state.staff.available = e.provider.available;
  }
  render();
}

$("availability").addEventListener("click", act(error, reload, async () => {
  const out = await api("PUT", "/me/availability", { available: !state.staff.available });
  state.staff = out.staff;
  render();
}));
$("logout").addEventListener("click", logout);

await setupLanguage(() => state.staff && render());
const me = await signedIn();
$("to-requester").hidden = !me.staff.groups.includes("request");
$("to-admin").hidden = !me.staff.groups.includes("administer");
live(onEvent, () => reload().catch((err) => showError(error, err)), liveState);
