import {
  act, api, el, enterRoom, live, liveState, logout, setupLanguage, showError, signedIn, t,
  withService,
} from "./clinic.js";

const state = { staff: null, policy: null, providers: new Map(), outbox: new Map(), visits: new Map() };
const $ = (id) => document.getElementById(id);
const error = $("error");
let chosenService = null;

// An answered request, said once: its title names what happened, its text who and why.
const OUTCOME = {
  declined: (r) => [t("requester.declined_title"), t("requester.declined", { name: r.provider.name })],
  unavailable: (r) => [t("requester.declined_title"), t("requester.unavailable", { name: r.provider.name })],
  "no answer": (r) => [t("requester.expired_title"), t("requester.no_answer", { name: r.provider.name })],
};

function messageItem(r) {
  if (r.state === "requested") {
    return el("li", { "data-request": r.id, class: "pending" },
      el("div", { class: "name" }, withService(t("requester.waiting_for", { name: r.provider.name }), r.service)),
      el("div", { class: "meta" }, t("requester.sent")),
      el("div", { class: "actions" },
        el("button", { onclick: act(error, reload, () => api("POST", `/requests/${r.id}/cancel`, {})) }, t("requester.cancel"))));
  }
  const [title, text] = (OUTCOME[r.state === "expired" ? "no answer" : r.reason] || OUTCOME.declined)(r);
  return el("li", { "data-request": r.id, "data-state": r.state, class: "declined", role: "alert" },
    el("div", { class: "name" }, withService(title, r.service)),
    el("div", { class: "meta" }, text),
    r.note ? el("div", { class: "note" }, r.note) : null,
    el("div", { class: "actions" },
      el("button", { onclick: act(error, reload, () => api("POST", `/requests/${r.id}/dismiss`, {})) }, t("requester.dismiss"))));
}

function visitItem(v) {
  return el("li", { "data-visit": v.id, class: "new" },
    el("div", { class: "name" }, withService(t("requester.session_with", { name: v.provider.name }), v.service)),
    el("div", { class: "actions" },
      el("button", { class: "primary", onclick: act(error, reload, () => enterRoom(async () =>
        (await api("POST", `/visits/${v.id}/enter`, {})).join)) }, t("requester.enter"))));
}

function openTo(providerId) {
  // The server's rule too: one request per provider at a time; an answer is dismissed
  // before asking again.
  return [...state.outbox.values()].some((r) => r.provider.id === providerId);
}

// With several services, nothing is requested before one is picked.
function mustChoose() {
  return state.policy.services.length > 1 && !chosenService;
}

function providerItem(p) {
  return el("li", { "data-provider": p.id },
    el("span", { class: "name" }, p.name),
    el("span", { class: `badge ${p.available ? "on" : "off"}` },
      p.available ? t("requester.available") : t("requester.unavailable_badge")),
    el("div", { class: "actions" },
      el("button", { class: "primary", disabled: openTo(p.id) || mustChoose(),
        "aria-describedby": mustChoose() ? "choose-first" : null,
        onclick: act(error, reload, async () => {
          const body = { provider_id: p.id };
          if (chosenService) body.service = chosenService;
          const out = await api("POST", "/requests", body);
          state.outbox.set(out.request.id, out.request);
          render();
        }) }, t("requester.request"))));
}

function renderServices() {
  const services = state.policy.services;
  $("services").hidden = services.length < 2;  // one service is implied, none means none
  if (!services.includes(chosenService)) chosenService = services.length === 1 ? services[0] : null;
  $("service-choices").replaceChildren(...services.map((s) =>
    el("label", {}, el("input", { type: "radio", name: "service", value: s, checked: s === chosenService,
      onchange: () => { chosenService = s; render(); } }), ` ${s} `)));
}

function render() {
  $("who").textContent = state.staff.display_name;
  $("choose-first").hidden = !mustChoose();
  const outbox = [...state.outbox.values()].sort((a, b) => b.created_at - a.created_at);
  $("messages").replaceChildren(...outbox.map(messageItem));
  const visits = [...state.visits.values()].sort((a, b) => b.created_at - a.created_at);
  $("sessions").replaceChildren(...visits.map(visitItem));
  if (!outbox.length && !visits.length) {
    $("messages").replaceChildren(el("li", { class: "empty" }, t("requester.empty")));
  }
  $("providers").replaceChildren(...(state.providers.size ? [...state.providers.values()].map(providerItem)
    : [el("li", { class: "empty" }, t("requester.no_providers"))]));
}

// Snapshots are applied in the order they were asked for: an older one still on its way must
// not undo what a newer one (or an event after it) showed.
let loads = 0;

async function reload() {
  const mine = ++loads;
  const d = await api("GET", "/dashboard");
  if (mine !== loads) return;
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
  if (e.type === "policy.updated") {
    state.policy = e.policy;
    renderServices();
    reload().catch((err) => showError(error, err));  // and a snapshot newer than the change
  }
  render();
}

$("logout").addEventListener("click", logout);
await setupLanguage(() => state.staff && (renderServices(), render()));
const me = await signedIn();
$("to-provider").hidden = !me.staff.groups.includes("provide");
$("to-admin").hidden = !me.staff.groups.includes("administer");
live(onEvent, () => reload().catch((err) => showError(error, err)), liveState);
