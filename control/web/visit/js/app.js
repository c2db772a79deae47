// The visit page: /j/<token> (client), /v/<code> (client's short link), /h/<token> (clinic,
// "open telemedicine view"), /pin (client with only the SMS code). Views: loading, pin, error,
// prejoin, room, ended.

import { JoinError, join as requestJoin, serverSkewMs } from "./api.js";
import { ChatPanel } from "./chat.js";
import {
  browserLanguage, formatClinicTime, formatDateTime, language, setLanguage, setTimeZone, t,
} from "./i18n.js";
import { LocalMedia, watchLevel } from "./media.js";
import { QualityMeter } from "./quality.js";
import { enterAtOnce, forgetCall, mayRejoin, noteLeftCall } from "./rejoin.js";
import { Session } from "./session.js";

const $ = (id) => document.getElementById(id);
const QUALITY_EVERY_MS = 2000;
const HANGUP_WAIT_MS = 3000;
const NOT_OPEN_RETRY_MAX_MS = 6 * 3600 * 1000;

const state = {
  mode: "guest", // guest | host | pin
  token: null,
  code: null, // a /v/ link: resolved by the server to the client's current token
  join: null,
  room: null, // latest room_state
  self: null,
  link: "connecting",
  session: null,
  media: new LocalMedia(),
  choice: {},
  stopLevel: () => {},
  waitingTimer: null,
  qualityTimer: null,
  hangingUp: false,
};
const quality = new QualityMeter();
const chat = new ChatPanel({
  send: (text) => state.session?.sendChat(text) ?? false,
});

// --- text that depends on the language ----------------------------------------------------

const dynamic = new Map();
function dyn(el, fn) {
  dynamic.set(el, fn);
  el.textContent = fn();
}
document.addEventListener("languagechange", () => {
  for (const [el, fn] of dynamic) el.textContent = fn();
  $("lang").value = language();
  renderControls();
  renderTiles();
  chat.renderBadge();
});

function show(view) {
  document.body.dataset.view = view;
  for (const section of document.querySelectorAll("main > .view")) {
    section.hidden = section.id !== `view-${view}`;
  }
}

// --- opening a link or a PIN ----------------------------------------------------------------

const ERRORS = {
  "token-invalid": () => [t("error.invalid_title"), t("error.invalid_text")],
  "token-expired": () => [t("error.expired_title"), t("error.expired_text")],
  "token-revoked": () => [t("error.revoked_title"), t("error.revoked_text")],
  "appointment-cancelled": () => [t("error.cancelled_title"), t("error.cancelled_text")],
  "room-not-open": (p) => [t("error.not_open_title"), t("error.not_open_text", { time: openTime(p) })],
  "rate-limited": (p) => [t("error.rate_title"), t("error.rate_text", { seconds: p.retry_after ?? 60 })],
  network: () => [t("error.network_title"), t("error.network_text")],
  refused: () => [t("error.refused_title"), t("error.refused_text")],
  "not-admitted": () => [t("error.not_admitted_title"), t("error.not_admitted_text")],
  replaced: () => [t("error.replaced_title"), t("error.replaced_text")],
  lost: () => [t("error.lost_title"), t("error.lost_text")],
  server: () => [t("error.server_title"), t("error.server_text")],
};
const RETRYABLE = new Set(["room-not-open", "rate-limited", "network", "replaced", "lost", "server"]);

function openTime(problem) {
  const at = Date.parse(problem.opens_at || "");
  return Number.isNaN(at) ? "" : formatDateTime(new Date(at));
}

async function showError(kind, problem = {}, retry = null) {
  const texts = ERRORS[kind] || ERRORS.server;
  // A token that does not verify names no appointment, so its answer's language is only
  // the server's default: the browser's own language serves the reader better.
  const lang = kind === "token-invalid" ? null : problem.language;
  if (lang && lang !== language()) await setLanguage(lang);
  if (problem.time_zone) setTimeZone(problem.time_zone);
  dyn($("error-title"), () => texts(problem)[0]);
  dyn($("error-text"), () => texts(problem)[1]);
  const clinic = state.mode === "host" ? null : problem.clinic || state.join?.clinic;
  dyn($("error-hint"), () => (state.mode === "host" ? t("error.hint_host")
    : clinic?.name ? t("error.hint_guest_clinic") : t("error.hint_guest")));
  showClinic(clinic);
  const button = $("error-retry");
  button.hidden = !(retry && RETRYABLE.has(kind));
  dyn(button, () => (kind === "replaced" ? t("error.use_here") : t("error.retry")));
  button.onclick = retry;
  if (kind === "room-not-open" && retry) {
    const wait = Date.parse(problem.opens_at || "") - (Date.now() + serverSkewMs);
    if (wait > 0 && wait < NOT_OPEN_RETRY_MAX_MS) setTimeout(retry, wait + 1000);
  }
  show("error");
}

function showClinic(clinic) {
  $("error-clinic").hidden = !clinic?.name;
  $("error-clinic-name").textContent = clinic?.name || "";
  const phone = $("error-clinic-phone");
  phone.hidden = !clinic?.phone;
  phone.textContent = clinic?.phone || "";
  if (clinic?.phone) phone.href = `tel:${clinic.phone}`;
}

async function openLink() {
  show("loading");
  try {
    const answer = await requestJoin(state.code ? { code: state.code } : { token: state.token });
    state.token = answer.token;
    await enter(answer);
  } catch (err) {
    if (!(err instanceof JoinError)) throw err;
    await showError(err.kind, err.problem, openLink);
  }
}

// What the server reads as a PIN (control/pins.py, typed_pin): the same separators dropped,
// and the decimal digits of any script (an Arabic-Indic or full-width keypad), which are
// sent as typed for the server to read; anything else is told here without a round trip.
const PIN_SEPARATORS = /[ \t\-.\u00a0\u2010-\u2013\u2212]/g;

function typedPin(text) {
  const bare = text.trim().replace(PIN_SEPARATORS, "");
  return /^\p{Nd}+$/u.test(bare) ? bare : null;
}

function setupPinForm() {
  const form = $("pin-form");
  const input = $("pin");
  const error = $("pin-error");
  const fail = (text) => {
    error.textContent = text;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    input.removeAttribute("aria-invalid");
    const pin = typedPin(input.value);
    if (pin === null) {
      fail(t("pin.invalid"));
      return;
    }
    $("pin-submit").disabled = true;
    try {
      const answer = await requestJoin({ pin });
      // The page becomes the client's link, so a reload rejoins without the PIN.
      history.replaceState(null, "", `/j/${encodeURIComponent(answer.token)}`);
      state.token = answer.token;
      state.mode = "guest";
      await enter(answer);
    } catch (err) {
      if (!(err instanceof JoinError)) throw err;
      const texts = {
        "no-room": () => t("pin.not_found"),
        "invalid-input": () => t("pin.not_found"),
        "rate-limited": () => t("pin.rate_limited", { seconds: err.problem.retry_after ?? 60 }),
        network: () => t("error.network_text"),
      };
      fail((texts[err.kind] || (() => t("error.server_text")))());
    } finally {
      $("pin-submit").disabled = false;
    }
  });
}

// --- before joining: camera and microphone --------------------------------------------------

async function enter(join) {
  state.join = join;
  state.mode = join.role === "host" ? "host" : "guest";
  document.body.dataset.role = state.mode;
  document.body.dataset.kind = join.kind || "appointment";
  setTimeZone(join.time_zone);
  await setLanguage(join.language);
  renderHeader();
  await prejoin();
}

function renderHeader() {
  const view = state.join?.host_view;
  $("appointment").hidden = !view;
  if (!view) return;
  // A virtual clinic visit has a requester and maybe a service, and no end time.
  const visit = state.join.kind === "clinic";
  const label = (el, key) => {
    el.dataset.i18n = key;
    el.textContent = t(key);
  };
  label($("appt-client-label"), visit ? "header.requester" : "header.client");
  label($("appt-time-label"), visit ? "header.started" : "header.time");
  $("appt-client").textContent = view.client_name;
  $("appt-patient-row").hidden = visit;
  $("appt-patient").textContent = view.patient_species
    ? `${view.patient_name} (${view.patient_species})` : view.patient_name || "";
  $("appt-service-row").hidden = !(visit && view.service);
  $("appt-service").textContent = view.service || "";
  dyn($("appt-time"), () => (view.end
    ? `${formatDateTime(new Date(view.start))}–${formatClinicTime(new Date(view.end))}`
    : formatClinicTime(new Date(view.start))));
}

const PROBLEMS = {
  denied: () => [t("media.denied_title"), t("media.denied_text")],
  busy: () => [t("media.busy_title"), t("media.busy_text")],
  unsupported: () => [t("media.unsupported_title"), t("media.unsupported_text")],
  missing_both: () => [t("media.missing_title"), t("media.missing_both_text")],
  missing_video: () => [t("media.missing_title"), t("media.missing_camera_text")],
  missing_audio: () => [t("media.missing_title"), t("media.missing_mic_text")],
};

async function prejoin() {
  show("prejoin");
  const join = state.join;
  const view = join.host_view;
  dyn($("prejoin-who"), () => {
    if (join.kind === "clinic") {
      if (!view) return t("prejoin.who_guest_visit");
      return view.service
        ? t("prejoin.who_host_visit_service", { client: view.client_name, service: view.service })
        : t("prejoin.who_host_visit", { client: view.client_name });
    }
    return view
      ? t("prejoin.who_host", { client: view.client_name, patient: view.patient_name })
      : t("prejoin.who_guest", { time: formatClinicTime(new Date(join.appointment.start)) });
  });
  await openMedia();
  if (enterAtOnce() || (await mayRejoin(join.reconnect_grace_seconds))) startCall();
}

async function openMedia() {
  const media = state.media;
  const join = $("join-button");
  state.stopLevel();
  // Joining before the devices answered would publish nothing.
  join.disabled = true;
  try {
    await media.open(state.choice);
  } finally {
    join.disabled = false;
  }
  const box = $("media-problem");
  let key = media.problem;
  if (key === "missing") {
    key = media.missing.audio && media.missing.video ? "missing_both"
      : media.missing.video ? "missing_video" : "missing_audio";
  }
  box.hidden = !key;
  if (key) {
    dyn($("media-problem-title"), () => PROBLEMS[key]()[0]);
    dyn($("media-problem-text"), () => PROBLEMS[key]()[1]);
  }
  $("preview-video").srcObject = media.stream;
  state.stopLevel = watchLevel(media.track("audio"), (level) => {
    $("mic-level").style.width = `${level}%`;
    $("mic-level").parentElement.setAttribute("aria-valuenow", String(level));
  });
  await fillDevices();
  renderControls();
}

async function fillDevices() {
  const media = state.media;
  let found = { audio: [], video: [] };
  try {
    found = await media.devices();
  } catch {
    // no enumeration: the pickers stay empty and disabled
  }
  for (const [kind, select, fallback] of [
    ["video", $("camera-select"), "prejoin.camera_n"],
    ["audio", $("mic-select"), "prejoin.microphone_n"],
  ]) {
    select.replaceChildren();
    const current = media.track(kind)?.getSettings().deviceId;
    found[kind].forEach((device, i) => {
      const option = document.createElement("option");
      option.value = device.deviceId;
      option.textContent = device.label || t(fallback, { n: i + 1 });
      option.selected = device.deviceId === current;
      select.append(option);
    });
    select.disabled = found[kind].length < 2 || !media.track(kind);
    select.closest(".field").hidden = found[kind].length === 0;
  }
}

async function chooseDevice(kind, deviceId) {
  state.choice[kind] = deviceId;
  try {
    const track = await state.media.use(kind, deviceId);
    await state.session?.replaceTrack(kind, track);
    if (kind === "audio") {
      state.stopLevel();
      state.stopLevel = watchLevel(track, (level) => {
        $("mic-level").style.width = `${level}%`;
      });
    }
  } catch (err) {
    console.warn("device switch failed", err);
    await openMedia();
  }
  renderControls();
}

// --- the call ------------------------------------------------------------------------------

function startCall() {
  state.stopLevel();
  show("room");
  $("self-video").srcObject = state.media.stream;
  chat.maxBytes = 4000;
  const session = new Session({
    join: state.join,
    media: state.media,
    refresh: () => requestJoin({ token: state.join.token }),
  });
  state.session = session;
  window.televisit.session = session;
  session.addEventListener("joined", (e) => {
    state.self = e.detail.participant;
    chat.self = { role: state.self.role, name: state.self.name };
  });
  session.addEventListener("room", (e) => {
    state.room = e.detail;
    renderRoom();
  });
  session.addEventListener("participant", (e) => markParticipant(e.detail));
  session.addEventListener("track", (e) => addRemoteTrack(e.detail.track, e.detail.streams));
  session.addEventListener("remote-reset", () => clearRemote());
  session.addEventListener("chat", (e) => chat.add(e.detail.message));
  session.addEventListener("stream-unavailable", (e) => showStreamNotice(e.detail));
  session.addEventListener("admission-pending", () => {
    state.admissionWaiting = true;
    const notice = $("stream-notice");
    notice.hidden = false;
    dyn(notice, () => t("admit.waiting"));
  });
  session.addEventListener("joined", () => {
    if (state.admissionWaiting) $("stream-notice").hidden = true;
    state.admissionWaiting = false;
  });
  session.addEventListener("admission-request", (e) => askAdmission(e.detail));
  session.addEventListener("admission-closed", (e) => {
    const dialog = $("admit-dialog");
    if (dialog.dataset.request === e.detail.request && dialog.open) dialog.close("closed");
  });
  session.addEventListener("video-paused", (e) => setPaused(e.detail.stream, e.detail.paused));
  session.addEventListener("chat-error", (e) => chat.error(e.detail.code));
  session.addEventListener("link", (e) => {
    state.link = e.detail.status;
    renderRoom();
  });
  session.addEventListener("ended", (e) => finish(e.detail));
  session.addEventListener("fatal", (e) => {
    stopCall();
    const { code, reason } = e.detail;
    const kind = code === 4001 ? (/^expired/i.test(reason) ? "token-expired" : /^revoked/i.test(reason) ? "token-revoked" : "token-invalid")
      : code === 4003 ? (/^not admitted/i.test(reason) ? "not-admitted" : "refused")
      : code === 4009 ? "replaced" : "lost";
    showError(kind, {}, () => {
      show("room");
      restartCall();
    });
  });
  session.start();
  clearInterval(state.qualityTimer);
  state.qualityTimer = setInterval(updateQuality, QUALITY_EVERY_MS);
  renderRoom();
}

function restartCall() {
  state.link = "connecting";
  state.session?.start();
  clearInterval(state.qualityTimer);
  state.qualityTimer = setInterval(updateQuality, QUALITY_EVERY_MS);
}

function stopCall() {
  clearInterval(state.qualityTimer);
  clearInterval(state.waitingTimer);
  state.waitingTimer = null;
  state.session?.stop();
}

function others() {
  const selfId = state.self?.id;
  return (state.room?.participants || []).filter((p) => p.id !== selfId);
}

function markParticipant(event) {
  const status = { participant_reconnecting: "reconnecting", participant_joined: "connected" }[event.type];
  const list = state.room?.participants;
  if (!list || !event.participant) return;
  const found = list.find((p) => p.id === event.participant.id);
  if (event.type === "participant_left") {
    state.room.participants = list.filter((p) => p.id !== event.participant.id);
  } else if (found) {
    found.status = status;
  } else if (status === "connected") {
    list.push({ ...event.participant, status });
  }
  renderRoom();
}

function renderRoom() {
  const room = state.room;
  const waiting = !room || room.state === "waiting";
  document.body.dataset.room = room ? room.state : "connecting";
  const dialog = $("waiting");
  dialog.hidden = !room || !waiting;
  if (room && waiting) {
    dyn($("waiting-title"), () =>
      state.mode === "host"
        ? t("waiting.for_client", { name: state.join.host_view?.client_name || t("waiting.the_client") })
        : t("waiting.for_clinic"),
    );
    startWaitingTimer(room.waiting_since);
  } else {
    clearInterval(state.waitingTimer);
    state.waitingTimer = null;
  }
  const present = others().find((p) => p.status !== "reconnecting");
  const noVideo = $("remote-no-video");
  noVideo.hidden = waiting || !present;
  if (present) dyn(noVideo, () => t("room.no_video", { name: present.name }));
  const away = others().find((p) => p.status === "reconnecting");
  const overlay = $("reconnecting");
  if (state.link === "reconnecting") {
    overlay.hidden = false;
    dyn($("reconnecting-text"), () => t("room.reconnecting_self"));
  } else if (!room) {
    overlay.hidden = false;
    dyn($("reconnecting-text"), () => t("room.connecting"));
  } else if (away && !waiting) {
    overlay.hidden = false;
    dyn($("reconnecting-text"), () => t("room.other_reconnecting", { name: away.name }));
  } else {
    overlay.hidden = true;
  }
}

function startWaitingTimer(since) {
  const from = Date.parse(since || "");
  const tick = () => {
    const base = Number.isNaN(from) ? Date.now() : from;
    $("waiting-timer").textContent = clock((Date.now() + serverSkewMs - base) / 1000);
  };
  clearInterval(state.waitingTimer);
  tick();
  state.waitingTimer = setInterval(tick, 1000);
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600);
  const mm = `${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
  return h ? `${h}:${mm}` : mm;
}

// A stream the server cannot deliver (the receiving device decodes none of its codecs).
const UNAVAILABLE = {
  video: { here: "room.video_unavailable_here", there: "room.video_unavailable_there" },
  audio: { here: "room.audio_unavailable_here", there: "room.audio_unavailable_there" },
};
function showStreamNotice({ kind, from, to }) {
  const mine = from?.id === state.self?.id;
  const other = mine ? to : from;
  const key = UNAVAILABLE[kind]?.[mine ? "there" : "here"];
  if (!key) return;
  const notice = $("stream-notice");
  notice.hidden = false;
  dyn(notice, () => t(key, { name: other?.name || "" }));
}

// --- remote media ----------------------------------------------------------------------------

const remotes = new Map(); // stream id -> {stream, tile, video, note}
// Stream ids whose video the server paused because our connection cannot carry it (the audio
// goes on); the tile keeps its last frame under a note saying so.
const paused = new Set();

function setPaused(streamId, on) {
  if (on) paused.add(streamId);
  else paused.delete(streamId);
  renderTiles();
}

function addRemoteTrack(track, streams) {
  const stream = streams[0] || remoteFallback();
  let entry = remotes.get(stream.id);
  if (!entry) {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.setAttribute("role", "button");
    tile.tabIndex = 0;
    tile.addEventListener("click", () => toggleFill(tile));
    tile.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        toggleFill(tile);
      }
    });
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute("aria-label", t("room.remote_video"));
    video.srcObject = stream;
    const note = document.createElement("p");
    note.className = "tile-note";
    note.setAttribute("role", "status");
    dyn(note, () => t("room.video_paused_connection"));
    tile.append(video, note);
    $("remote").append(tile);
    entry = { stream, tile, video, note };
    remotes.set(stream.id, entry);
  }
  if (!stream.getTracks().includes(track)) stream.addTrack(track);
  const update = () => renderTiles();
  track.addEventListener("mute", update);
  track.addEventListener("unmute", update);
  track.addEventListener("ended", update);
  play(entry.video);
  renderTiles();
}

let fallbackStream = null;
function remoteFallback() {
  fallbackStream ||= new MediaStream();
  return fallbackStream;
}

function toggleFill(tile) {
  tile.classList.toggle("fill");
  renderTiles();
}

function renderTiles() {
  let visible = 0;
  for (const { stream, tile } of remotes.values()) {
    const held = paused.has(stream.id);
    const video = held || stream.getVideoTracks().some((tr) => tr.readyState === "live" && !tr.muted);
    tile.classList.toggle("no-video", !video);
    tile.classList.toggle("paused", held);
    const fill = tile.classList.contains("fill");
    tile.setAttribute("aria-pressed", String(fill));
    tile.setAttribute("aria-label", fill ? t("room.fit_whole") : t("room.fit_fill"));
    if (video) visible += 1;
  }
  $("remote").dataset.count = String(visible);
  $("remote-empty").hidden = visible > 0;
}

function clearRemote() {
  for (const { tile, video } of remotes.values()) {
    video.srcObject = null;
    tile.remove();
  }
  remotes.clear();
  paused.clear();
  fallbackStream = null;
  renderTiles();
}

function play(video) {
  video.play().catch(() => {
    // Autoplay with sound refused (no user gesture on this page load): ask for one tap.
    const button = $("play-audio");
    button.hidden = false;
    button.onclick = () => {
      button.hidden = true;
      for (const entry of remotes.values()) entry.video.play().catch(() => {});
    };
  });
}

// --- controls --------------------------------------------------------------------------------

function renderControls() {
  const media = state.media;
  for (const [kind, ids, onKey, offKey] of [
    ["audio", ["btn-mic", "pre-mic"], "controls.mute", "controls.unmute"],
    ["video", ["btn-cam", "pre-cam"], "controls.camera_off", "controls.camera_on"],
  ]) {
    const track = media.track(kind);
    const off = !track || !track.enabled;
    for (const id of ids) {
      const button = $(id);
      button.disabled = !track;
      button.setAttribute("aria-pressed", String(off && !!track));
      button.classList.toggle("is-off", off);
      button.setAttribute("aria-label", t(off && track ? offKey : onKey));
    }
  }
  const camOff = !media.track("video") || !media.track("video").enabled;
  $("self").classList.toggle("camera-off", camOff);
  $("preview-empty").hidden = !camOff;
}

function toggle(kind) {
  const track = state.media.track(kind);
  if (!track) return;
  state.media.setEnabled(kind, !track.enabled);
  renderControls();
}

async function updateQuality() {
  const pc = state.session?.pc;
  const box = $("quality");
  if (!pc) {
    quality.reset();
    box.dataset.level = "unknown";
    dyn($("quality-label"), () => t("quality.unknown"));
    return;
  }
  let q;
  try {
    q = await quality.sample(pc);
  } catch {
    return; // the connection closed between the check and the read
  }
  box.dataset.level = q.level;
  const labels = {
    good: () => t("quality.good"),
    fair: () => t("quality.fair"),
    poor: () => t("quality.poor"),
    unknown: () => t("quality.unknown"),
  };
  dyn($("quality-label"), labels[q.level]);
  $("quality-button").setAttribute("aria-label", `${labels[q.level]()}: ${detail(q)}`);
  $("q-loss").textContent = q.lossPct === null ? "–" : `${q.lossPct.toFixed(1)} %`;
  $("q-rtt").textContent = q.rttMs === null ? "–" : `${q.rttMs} ms`;
  $("q-down").textContent = q.downKbps === null ? "–" : rate(q.downKbps);
  $("q-up").textContent = q.upKbps === null ? "–" : rate(q.upKbps);
}

function detail(q) {
  const parts = [];
  if (q.lossPct !== null) parts.push(`${t("quality.loss")} ${q.lossPct.toFixed(1)} %`);
  if (q.rttMs !== null) parts.push(`${t("quality.rtt")} ${q.rttMs} ms`);
  if (q.downKbps !== null) parts.push(`${t("quality.down")} ${rate(q.downKbps)}`);
  return parts.join(", ");
}

function rate(kbps) {
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(kbps)} kbit/s`;
}

// The clinic decides whether another device may take a member's place (a PIN typed on a
// second phone, or by someone else): the current connection ends if it is let in.
function askAdmission({ request, participant }) {
  const dialog = $("admit-dialog");
  dialog.dataset.request = request;
  dyn($("admit-text"), () => t("admit.text", { name: participant.name }));
  dialog.returnValue = "";
  if (!dialog.open) dialog.showModal();
}

function askHangup() {
  const dialog = $("hangup-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

function hangup() {
  state.hangingUp = true;
  if (state.session?.hangup() === false) {
    finish({ reason: "hangup", by: state.self });
    return;
  }
  // The server answers with `ended`; do not leave the person waiting if it does not come.
  setTimeout(() => {
    if (document.body.dataset.view === "room") finish({ reason: "hangup", by: state.self });
  }, HANGUP_WAIT_MS);
}

// --- the end ---------------------------------------------------------------------------------

function finish({ reason, by }) {
  forgetCall();
  stopCall();
  clearRemote();
  state.media.stop();
  chat.setOpen(false);
  const mine = by && state.self && by.id === state.self.id;
  const texts = {
    hangup: () => (mine || (!by && state.hangingUp) ? t("ended.by_you")
      : by?.name ? t("ended.by_other", { name: by.name }) : t("ended.hangup")),
    cancelled: () => t("ended.cancelled"),
    closed: () => t("ended.closed"),
    left: () => t("ended.left"),
  };
  dyn($("ended-reason"), texts[reason] || texts.closed);
  $("ended-chat").hidden = chat.messages.length === 0;
  $("ended-rejoin").hidden = !(reason === "closed" || reason === "left");
  show("ended");
}

// --- start -----------------------------------------------------------------------------------

function wire() {
  $("lang").addEventListener("change", (e) => setLanguage(e.target.value));
  $("media-retry").addEventListener("click", () => openMedia());
  $("camera-select").addEventListener("change", (e) => chooseDevice("video", e.target.value));
  $("mic-select").addEventListener("change", (e) => chooseDevice("audio", e.target.value));
  $("join-button").addEventListener("click", () => startCall());
  for (const id of ["btn-mic", "pre-mic"]) $(id).addEventListener("click", () => toggle("audio"));
  for (const id of ["btn-cam", "pre-cam"]) $(id).addEventListener("click", () => toggle("video"));
  $("btn-hangup").addEventListener("click", askHangup);
  $("admit-dialog").addEventListener("close", () => {
    const dialog = $("admit-dialog");
    if (dialog.returnValue === "admit" || dialog.returnValue === "refuse") {
      state.session?.admit(dialog.dataset.request, dialog.returnValue === "admit");
    }
  });
  $("hangup-dialog").addEventListener("close", () => {
    if ($("hangup-dialog").returnValue === "end") hangup();
  });
  $("quality-button").addEventListener("click", () => {
    const details = $("quality-details");
    details.hidden = !details.hidden;
    $("quality-button").setAttribute("aria-expanded", String(!details.hidden));
  });
  $("ended-copy").addEventListener("click", () => chat.copy($("ended-copy-status")));
  $("ended-rejoin").addEventListener("click", () => location.reload());
  window.addEventListener("pagehide", () => {
    if (document.body.dataset.view === "room") noteLeftCall();
    state.session?.stop();
  });
}

async function main() {
  window.televisit = { session: null, chat };
  wire();
  setupPinForm();
  await setLanguage(browserLanguage());
  const match = location.pathname.match(/^\/([jhv])\/([^/]+)\/?$/);
  if (match) {
    state.mode = match[1] === "h" ? "host" : "guest";
    const value = decodeURIComponent(match[2]);
    if (match[1] === "v") state.code = value;
    else state.token = value;
    await openLink();
  } else {
    state.mode = "pin";
    show("pin");
    $("pin").focus();
  }
}

main().catch((err) => {
  console.error(err);
  showError("server");
});
