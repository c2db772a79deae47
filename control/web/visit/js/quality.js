// Connection quality from RTCPeerConnection.getStats(): packet loss and bitrate of what we
// receive, round-trip time of the selected ICE candidate pair, bitrate of what we send.

export class QualityMeter {
  constructor() {
    this.last = null;
  }

  reset() {
    this.last = null;
  }

  // {lossPct, rttMs, downKbps, upKbps, level: good|fair|poor|unknown}
  async sample(pc) {
    const report = await pc.getStats();
    const now = { at: performance.now(), inbound: 0, received: 0, lost: 0, bytesIn: 0, bytesOut: 0, rtt: null };
    let selectedPair = null;
    let pairRtt = null;
    let remoteRtt = null;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) selectedPair = s.selectedCandidatePairId;
    });
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        now.inbound += 1;
        now.received += s.packetsReceived || 0;
        now.lost += Math.max(0, s.packetsLost || 0);
        now.bytesIn += s.bytesReceived || 0;
      } else if (s.type === "outbound-rtp") {
        now.bytesOut += s.bytesSent || 0;
      } else if (s.type === "candidate-pair" && (selectedPair ? s.id === selectedPair : s.nominated)) {
        if (typeof s.currentRoundTripTime === "number") pairRtt = s.currentRoundTripTime;
      } else if (s.type === "remote-inbound-rtp" && typeof s.roundTripTime === "number") {
        remoteRtt = Math.max(remoteRtt ?? 0, s.roundTripTime);
      }
    });
    now.rtt = pairRtt ?? remoteRtt;
    const prev = this.last;
    this.last = now;
    if (!prev) return { lossPct: null, rttMs: null, downKbps: null, upKbps: null, level: "unknown" };
    const seconds = Math.max(0.001, (now.at - prev.at) / 1000);
    const got = now.received - prev.received;
    const lost = now.lost - prev.lost;
    const out = {
      lossPct: got + lost > 0 ? (100 * Math.max(0, lost)) / (got + lost) : null,
      rttMs: now.rtt === null ? null : Math.round(now.rtt * 1000),
      downKbps: Math.max(0, ((now.bytesIn - prev.bytesIn) * 8) / 1000 / seconds),
      upKbps: Math.max(0, ((now.bytesOut - prev.bytesOut) * 8) / 1000 / seconds),
    };
    // Nothing subscribed yet (waiting alone): only the round trip says anything.
    out.level = level(out, now.inbound ? got : null);
    return out;
  }
}

function level({ lossPct, rttMs }, packets) {
  if (packets === 0) return "poor"; // subscribed, yet nothing arrived in the whole interval
  if (packets === null && rttMs === null) return "unknown";
  const loss = lossPct ?? 0;
  const rtt = rttMs ?? 0;
  if (loss > 5 || rtt > 500) return "poor";
  if (loss > 1.5 || rtt > 250) return "fair";
  return "good";
}
