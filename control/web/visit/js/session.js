// One participant's connection to the SFU (docs/signaling.md): the signaling socket, the
// peer connection, the chat data channel, and automatic rejoin with the same token.
//
// Events (CustomEvent detail):
//   joined {participant, room, resumed}     room {room_state}      participant {type, participant}
//   track {track, streams}                  remote-reset {}        chat {message}
//   chat-error {code, message}              link {status: connecting|connected|reconnecting}
//   ended {reason, by}                      fatal {code, reason}   (no rejoin after these)
//   stream-unavailable {kind, reason, from, to}  a stream from -> to cannot be shown (codec)
//   video-paused {stream, paused, reason}    the server paused (resumed) a stream's video for
//                                            our connection; its audio goes on

const REJOIN_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
const REJOIN_MAX_ATTEMPTS = 25; // ~3 minutes of trying, then the page offers a button
// A failed SDP exchange is retried by rejoining; one that keeps failing will not heal.
const NEGOTIATION_FAILURES_MAX = 3;
const PING_EVERY_MS = 10000;
const PONG_WITHIN_MS = 20000;
// Close codes after which rejoining cannot help.
const FATAL = new Set([4001, 4003, 4009]);

// Simulcast layers (rid) for a camera of this height, full resolution first (a server that
// answers without a=simulcast gets the first one alone): the SFU forwards each subscriber the
// layer its connection carries (media_server/allocator.py). null: one layer.
export function simulcastLayers(height) {
  if (!height || height < 360) return null;
  const layers = [
    { rid: "f", maxBitrate: 1500000 },
    { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
  ];
  if (height >= 540) layers.push({ rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 });
  return layers;
}

export class Session extends EventTarget {
  // join: the POST /api/v1/join answer; refresh(): asks it again (before every rejoin: the
  // room may have moved to another SFU worker when the one holding it died or drained).
  constructor({ join, media, refresh = null }) {
    super();
    this.join = join;
    this.media = media;
    this.refresh = refresh;
    this.ws = null;
    this.pc = null;
    this.dc = null;
    this.self = null;
    this.ended = false;
    this.stopped = false;
    this.attempts = 0;
    this.rejoinTimer = null;
    this.pingTimer = null;
    this.pendingPing = null;
    this.ops = Promise.resolve();
    this.pendingCandidates = null;
    // Bumped on every new socket: SDP work queued for an older one is dropped.
    this.generation = 0;
    this.negotiationFailures = 0;
  }

  start() {
    this.stopped = false;
    this.attempts = 0;
    this.negotiationFailures = 0;
    this._connect();
  }

  hangup() {
    return this._send({ type: "hangup" });
  }

  admit(request, allow) {
    return this._send({ type: "admit", request, allow });
  }

  sendChat(text) {
    if (this.dc?.readyState === "open") this.dc.send(JSON.stringify({ text }));
    else if (!this._send({ type: "chat", text })) return false;
    return true;
  }

  // Swap a local track (another camera or microphone) without renegotiating.
  replaceTrack(kind, track) {
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === kind);
    return sender ? sender.replaceTrack(track) : Promise.resolve();
  }

  // Leave for good: no rejoin (page closing, ended, fatal refusal).
  stop() {
    this.stopped = true;
    clearTimeout(this.rejoinTimer);
    this._teardown();
    if (this.ws) {
      this.ws.onclose = null;
      if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "leaving");
      this.ws = null;
    }
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _send(message) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  async _connect() {
    this._emit("link", { status: this.attempts ? "reconnecting" : "connecting" });
    if (this.attempts && this.refresh) {
      try {
        this.join = { ...this.join, ...(await this.refresh()) };
      } catch (err) {
        console.warn("join refresh failed; trying the last signaling address", err);
      }
      if (this.stopped || this.ended || this.ws) return;
    }
    let ws;
    try {
      ws = new WebSocket(this.join.signaling_url);
    } catch {
      this._scheduleRejoin();
      return;
    }
    this.ws = ws;
    this.generation += 1;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "join", token: this.join.token, client: "web", room: this.join.room_id }));
      this._startPings();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        console.warn("signaling: not JSON", ev.data);
        return;
      }
      this._onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this._stopPings();
      this._teardown();
      if (this.ended || this.stopped) return;
      if (ev.code === 4000) {
        this._finish({ reason: "closed", by: null });
      } else if (FATAL.has(ev.code)) {
        this.stopped = true;
        this._emit("fatal", { code: ev.code, reason: ev.reason });
      } else {
        this._scheduleRejoin();
      }
    };
  }

  _scheduleRejoin() {
    if (this.stopped || this.ended) return;
    if (this.attempts >= REJOIN_MAX_ATTEMPTS) {
      this.stopped = true;
      this._emit("fatal", { code: 0, reason: "gave up reconnecting" });
      return;
    }
    const base = REJOIN_DELAYS_MS[Math.min(this.attempts, REJOIN_DELAYS_MS.length - 1)];
    this.attempts += 1;
    this._emit("link", { status: "reconnecting" });
    clearTimeout(this.rejoinTimer);
    this.rejoinTimer = setTimeout(() => this._connect(), base + Math.random() * 300);
  }

  // Drop the socket and the peer connection and come back with the same token.
  _rejoin(why) {
    console.info("rejoining:", why);
    const ws = this.ws;
    this.ws = null;
    this._stopPings();
    this._teardown();
    if (ws) {
      ws.onclose = null;
      try {
        ws.close(1000, why.slice(0, 100));
      } catch {
        // already closing
      }
    }
    this._scheduleRejoin();
  }

  _startPings() {
    this._stopPings();
    let n = 0;
    // A dead network often leaves the socket looking open; an unanswered ping tells.
    this.pingTimer = setInterval(() => {
      if (this.pendingPing && Date.now() - this.pendingPing.at > PONG_WITHIN_MS) {
        this._rejoin("no pong");
        return;
      }
      if (!this.pendingPing) {
        n += 1;
        this.pendingPing = { id: n, at: Date.now() };
        this._send({ type: "ping", id: n });
      }
    }, PING_EVERY_MS);
  }

  _stopPings() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.pendingPing = null;
  }

  _onMessage(msg) {
    switch (msg.type) {
      case "joined":
        this.self = msg.participant;
        this._emit("joined", msg);
        this._emit("room", msg.room);
        this._queue(() => this._publish(msg.ice_servers || [], msg.simulcast !== false));
        break;
      case "answer":
        this._queue(() => this.pc?.setRemoteDescription({ type: "answer", sdp: msg.sdp }));
        break;
      case "offer":
        this._queue(() => this._answer(msg.sdp));
        break;
      case "room_state":
        this._emit("room", msg);
        break;
      case "participant_joined":
      case "participant_reconnecting":
      case "participant_left":
        this._emit("participant", msg);
        break;
      case "chat":
        this._emit("chat", { message: msg });
        break;
      case "stream_unavailable":
        this._emit("stream-unavailable", msg);
        break;
      case "admission_pending": // this device waits for the clinic to let it in
      case "admission_request": // (host) another device asks to take a member's place
      case "admission_closed": // (host) that question was answered or withdrawn
        this._emit(msg.type.replace("_", "-"), msg);
        break;
      case "video_paused":
        this._emit("video-paused", msg);
        break;
      case "publish_layers": // the simulcast layers some subscriber needs; the others stop
        this._queue(() => this._sendLayers(msg.rids || []));
        break;
      case "ended":
        this._finish(msg);
        break;
      case "error":
        if (String(msg.code).startsWith("chat_")) this._emit("chat-error", msg);
        else console.warn("signaling error", msg);
        break;
      case "pong":
        this.pendingPing = null;
        break;
      default:
        console.warn("signaling: unknown message", msg.type);
    }
  }

  _finish(msg) {
    if (this.ended) return;
    this.ended = true;
    this.stopped = true;
    this._stopPings();
    this._teardown();
    this._emit("ended", { reason: msg.reason, by: msg.by || null });
  }

  // SDP work runs strictly in order (the protocol asks answers in the order of offers).
  _queue(fn) {
    const generation = this.generation;
    const current = () => generation === this.generation && !this.stopped && !this.ended;
    this.ops = this.ops
      .then(() => (current() ? fn() : undefined))
      .catch((err) => {
        console.error("negotiation failed", err);
        if (!current()) return;
        this.negotiationFailures += 1;
        if (this.negotiationFailures >= NEGOTIATION_FAILURES_MAX) {
          this.stop();
          this._emit("fatal", { code: 0, reason: `negotiation failed: ${err}` });
        } else {
          this._rejoin("negotiation failed");
        }
      });
  }

  // simulcast: the server takes layers (joined.simulcast); else one encoding.
  async _publish(iceServers, simulcast = true) {
    this._teardown();
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    this.pc = pc;
    this.pendingCandidates = [];
    pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      const message = c
        ? { type: "candidate", candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex }
        : { type: "candidate", candidate: "", sdpMid: null, sdpMLineIndex: null };
      if (this.pendingCandidates) this.pendingCandidates.push(message);
      else if (pc === this.pc) this._send(message);
    };
    pc.ontrack = (ev) => {
      if (pc === this.pc) this._emit("track", { track: ev.track, streams: ev.streams });
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") {
        this.attempts = 0;
        this._emit("link", { status: "connected" });
      } else if (pc.connectionState === "failed") {
        this._rejoin("peer connection failed");
      }
    };
    this._openChannel(pc.createDataChannel("chat"));
    for (const track of this.media.stream.getTracks()) {
      const layers = track.kind === "video" && simulcast;
      const sendEncodings = layers ? simulcastLayers(track.getSettings().height) : null;
      if (sendEncodings) pc.addTransceiver(track, { direction: "sendrecv", streams: [this.media.stream], sendEncodings });
      else pc.addTrack(track, this.media.stream);
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this._send({ type: "offer", sdp: pc.localDescription.sdp });
    // Candidates found before the offer left follow it, in order.
    const held = this.pendingCandidates;
    this.pendingCandidates = null;
    for (const message of held) this._send(message);
  }

  // Turn our simulcast encodings on or off (rid in rids: on). A failure only costs uplink,
  // so it is logged, never a reason to renegotiate.
  async _sendLayers(rids) {
    const sender = this.pc?.getSenders().find((s) => s.track && s.track.kind === "video");
    const params = sender?.getParameters();
    if (!params || !params.encodings || params.encodings.length < 2) return;
    let changed = false;
    for (const encoding of params.encodings) {
      const active = rids.includes(encoding.rid);
      if (encoding.active !== active) {
        encoding.active = active;
        changed = true;
      }
    }
    if (!changed) return;
    try {
      await sender.setParameters(params);
    } catch (err) {
      console.warn("simulcast layers not changed", err);
    }
  }

  async _answer(sdp) {
    const pc = this.pc;
    if (!pc) return;
    await pc.setRemoteDescription({ type: "offer", sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (pc === this.pc) this._send({ type: "answer", sdp: pc.localDescription.sdp });
  }

  _openChannel(dc) {
    this.dc = dc;
    dc.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        console.warn("chat: not JSON");
        return;
      }
      if (msg.type === "chat") this._emit("chat", { message: msg });
      else if (msg.type === "error") this._emit("chat-error", msg);
    };
  }

  _teardown() {
    const pc = this.pc;
    this.pc = null;
    this.dc = null;
    this.pendingCandidates = null;
    if (pc) {
      pc.close();
      this._emit("remote-reset");
    }
  }
}
