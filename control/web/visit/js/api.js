// POST /api/v1/join: a link's token or a PIN in, the room's join answer out.

export class JoinError extends Error {
  // kind: token-invalid | token-expired | token-revoked | appointment-cancelled | room-not-open | no-room |
  // rate-limited | invalid-input | network | server
  constructor(kind, problem = {}) {
    super(problem.detail || kind);
    this.kind = kind;
    this.problem = problem;
  }
}

const PREFIX = "urn:televisit:problem:";

// Milliseconds the server's clock is ahead of ours, from the Date header (1 s resolution).
// Room times (waiting_since) are the server's; the waiting timer corrects by this.
export let serverSkewMs = 0;

function measureSkew(resp, sentAt, receivedAt) {
  const date = Date.parse(resp.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  const skew = date + 500 - (sentAt + receivedAt) / 2;
  serverSkewMs = Math.abs(skew) > 2000 ? skew : 0;
}

export async function join(body) {
  let resp;
  const sentAt = Date.now();
  try {
    resp = await fetch("/api/v1/join", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new JoinError("network");
  }
  measureSkew(resp, sentAt, Date.now());
  let data = {};
  try {
    data = await resp.json();
  } catch {
    throw new JoinError("server", { status: resp.status });
  }
  if (resp.ok) return data;
  const type = typeof data.type === "string" && data.type.startsWith(PREFIX)
    ? data.type.slice(PREFIX.length) : "server";
  throw new JoinError(type, data);
}
