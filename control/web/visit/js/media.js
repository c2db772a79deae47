// The local camera and microphone: one MediaStream with at most one track of each kind,
// device choice, and a plain reason when a device is missing or blocked.

// problem: denied | missing | busy | unsupported | null
export class LocalMedia {
  constructor() {
    this.stream = new MediaStream();
    this.problem = null;
    this.missing = { audio: false, video: false };
  }

  track(kind) {
    return this.stream.getTracks().find((t) => t.kind === kind) || null;
  }

  // Ask for both devices; when one kind does not exist, keep the other.
  async open(choice = {}) {
    this.problem = null;
    this.missing = { audio: false, video: false };
    if (!navigator.mediaDevices?.getUserMedia) {
      this.problem = "unsupported";
      return;
    }
    try {
      this._replace(await getUserMedia(choice, { audio: true, video: true }));
      return;
    } catch (err) {
      this.problem = classify(err);
      if (this.problem !== "missing") return;
    }
    // One of the two is missing: find out which, and keep whichever works.
    for (const kind of ["audio", "video"]) {
      try {
        const only = await getUserMedia(choice, { audio: kind === "audio", video: kind === "video" });
        this._replace(only);
      } catch (err) {
        if (classify(err) === "missing") this.missing[kind] = true;
        else this.problem = classify(err);
      }
    }
    if (this.missing.audio || this.missing.video) this.problem = "missing";
  }

  // Switch one kind to another device; the caller swaps the track in a live call.
  async use(kind, deviceId) {
    const got = await getUserMedia({ [kind]: deviceId }, { audio: kind === "audio", video: kind === "video" });
    const old = this.track(kind);
    const fresh = got.getTracks()[0];
    if (old) {
      fresh.enabled = old.enabled;
      old.stop();
      this.stream.removeTrack(old);
    }
    this.stream.addTrack(fresh);
    return fresh;
  }

  async devices() {
    const all = await navigator.mediaDevices.enumerateDevices();
    return {
      audio: all.filter((d) => d.kind === "audioinput" && d.deviceId),
      video: all.filter((d) => d.kind === "videoinput" && d.deviceId),
    };
  }

  setEnabled(kind, on) {
    const track = this.track(kind);
    if (track) track.enabled = on;
  }

  stop() {
    for (const track of this.stream.getTracks()) track.stop();
  }

  _replace(stream) {
    for (const track of stream.getTracks()) {
      const old = this.track(track.kind);
      if (old) {
        old.stop();
        this.stream.removeTrack(old);
      }
      this.stream.addTrack(track);
    }
  }
}

function getUserMedia(choice, want) {
  const constraints = {};
  if (want.audio) {
    constraints.audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    if (choice.audio) constraints.audio.deviceId = { exact: choice.audio };
  } else constraints.audio = false;
  if (want.video) {
    constraints.video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
    if (choice.video) constraints.video.deviceId = { exact: choice.video };
  } else constraints.video = false;
  return navigator.mediaDevices.getUserMedia(constraints);
}

function classify(err) {
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return "denied";
    case "NotFoundError":
    case "OverconstrainedError":
    case "DevicesNotFoundError":
      return "missing";
    case "NotReadableError":
    case "AbortError":
    case "TrackStartError":
      return "busy";
    default:
      return "unsupported";
  }
}

// Microphone level 0..100 for the pre-join meter; returns a stop function.
export function watchLevel(track, onLevel) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!track || !Ctx) return () => {};
  const ctx = new Ctx();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
    onLevel(Math.min(100, Math.round((peak / 128) * 140)));
  }, 100);
  return () => {
    clearInterval(timer);
    ctx.close().catch(() => {});
  };
}
