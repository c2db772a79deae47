import {
  act, api, el, enterRoom, live, logout, showError, signedIn, withService,
} from "./clinic.js";

const state = { staff: null, policy: null, providers: new Map(), outbox: new Map(), visits: new Map() };
const $ = (id) => document.getElementById(id);
const error = $("error");
let chosenService = null;

const OUTCOME = {
  declined: (r) => `${r.provider.name} declined your request.`,
  unavailable: (r) => `${r.provider.name} is unavailable for sessions.`,
  "no answer": (r) => `${r.provider.name} did not answer (no answer).`,
};

function messageItem(r) {
  if (r.state === "requested") {
    return el("li", { "data-request": r.id, class: "pending" },
      el("div", { class: "name" }, withService(`Waiting for ${r.provider.name}`, r.service)),
      el("div", { class: "meta" }, "Your request has been sent."),
      el("div", { class: "actions" },
        el("button", { onclick: act(error, reload, () => api("POST", `/requests/${r.id}/cancel`, {})) }, "Cancel request")));
  }
  return el("li", { "data-request": r.id, class: "declined", role: "alert" },
    el("div", { class: "name" }, withService("Request declined", r.service)),
    el("div", { class: "meta" }, (OUTCOME[r.reason] || OUTCOME.declined)(r)),
    r.note ? el("div", { class: "note" }, r.note) : null,
    el("div", { class: "actions" },
      el("button", { onclick: act(error, reload, () => api("POST", `/requests/${r.id}/dismiss`, {})) }, "Dismiss")));
}

function visitItem(v) {
  return el("li", { "data-visit": v.id, class: "new" },
    el("div", { class: "name" }, withService(`Session with ${v.provider.name}`, v.service)),
    el("div", { class: "actions" },
      el("button", { class: "primary", onclick: act(error, reload, () => enterRoom(async () =>
        (await api("POST", `/visits/${v.id}/enter`, {})).join)) }, "Enter waiting room")));
}

function openTo(providerId) {
  // One request per provider at a time; a decline is dismissed before asking again.
  return [...state.outbox.values()].some((r) => r.provider.id === providerId);
}

function providerItem(p) {
  const body = { provider_id: p.id };
  return el("li", { "data-provider": p.id },
    el("span", { class: "name" }, p.name),
    el("span", { class: `badge ${p.available ? "on" : "off"}` }, p.available ? "available" : "unavailable"),
    el("div", { class: "actions" },
      el("button", { class: "primary", disabled: openTo(p.id), onclick: act(error, reload, async () => {
        if (chosenService) body.service = chosenService;
        const out = await api("POST", "/requests", body);
        state.outbox.set(out.request.id, out.request);
        render();
      }) }, "Request session now")));
}

function renderServices() {
  const services = state.policy.services;
  const box = $("services");
  box.hidden = services.length < 2;  // one service is implied, none means none
  if (!services.includes(chosenService)) chosenService = services.length === 1 ? services[0] : null;
  box.replaceChildren(el("legend", {}, "Account service"), ...services.map((s) =>
    el("label", {}, el("input", { type: "radio", name: "service", value: s, checked: s === chosenService,
      onchange: () => { chosenService = s; } }), ` ${s} `)));
}

function render() {
  $("who").textContent = state.staff.display_name;
  const outbox = [...state.outbox.values()].sort((a, b) => b.created_at - a.created_at);
  $("messages").replaceChildren(...outbox.map(messageItem));
  const visits = [...state.visits.values()].sort((a, b) => b.created_at - a.created_at);
  $("sessions").replaceChildren(...visits.map(visitItem));
  if (!outbox.length && !visits.length) {
    $("messages").replaceChildren(el("li", { class: "empty" }, "No requests or sessions yet."));
  }
  $("providers").replaceChildren(...(state.providers.size ? [...state.providers.values()].map(providerItem)
    : [el("li", { class: "empty" }, "No providers in your organization.")]));
}

async function reload() {
  const d = await api("GET", "/dashboard");
  state.staff = d.staff;
  state.policy = d.policy;
  state.providers = new Map((d.providers || []).map((p) => [p.id, p]));
  state.outbox = new Map((d.outbox || []).map((r) => [r.id, r]));
  state.visits = new Map(d.visits.filter((v) => v.requester.id === d.staff.id).map((v) => [v.id, v]));
  renderServices();
  render();
}

function onEvent(e) {
  const r = e.request;
  if (r && r.requester.id === state.staff.id) {
    const shown = !r.dismissed && ["requested", "declined", "expired"].includes(r.state);
    if (shown) state.outbox.set(r.id, r);
    else state.outbox.delete(r.id);
  }
  if (e.visit && e.visit.requester.id === state.staff.id) {
    if (e.visit.state === "open") state.visits.set(e.visit.id, e.visit);
    else state.visits.delete(e.visit.id);
  }
  if (e.type === "provider.availability" && state.providers.has(e.provider.id)) {
    state.providers.get(e.provider.id).available = e.provider.available;
  }
  render();
}

$("logout").addEventListener("click", logout);
const me = await signedIn();
$("to-provider").hidden = !me.staff.groups.includes("provide");
$("to-admin").hidden = !me.staff.groups.includes("administer");
live(onEvent, () => reload().catch((err) => showError(error, err)),
  (s) => { $("live").dataset.state = s; $("live").textContent = s === "live" ? "live" : "reconnecting"; });
