// The app's calls to Televisit with the device token. A call that cannot reach the server
// throws Offline; an answer that is not 2xx/304 throws ApiError carrying the problem+json.

const BASE = "/api/v1/mobile";
let token = null;

export class Offline extends Error {}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  // The problem's type without its URN prefix: "note-conflict", "device-revoked", ...
  get kind() {
    return String(this.problem.type || "").split(":").pop();
  }
}

export function setToken(value) {
  token = value;
}

// {status, data}: data is null for 204 and 304.
export async function call(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(BASE + path, init);
  } catch (err) {
    throw new Offline(String(err));
  }
  if (resp.status === 204 || resp.status === 304) return { status: resp.status, data: null };
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data);
  return { status: resp.status, data };
}
