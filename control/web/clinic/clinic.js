// Shared by the virtual clinic pages: the REST client, the live event feed, small DOM helpers.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(`/api/v1/clinic${path}`, init);
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// Live dashboard events over one WebSocket. `onReady` runs after every (re)subscription, so
// the page reloads its snapshot then and misses nothing; reconnects back off up to 10 s.
export function live(onEvent, onReady, onState) {
  let delay = 500;
  let stopped = false;
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/clinic/events`);
    ws.onmessage = (m) => {
      const event = JSON.parse(m.data);
      if (event.type === "hello") {
        delay = 500;
        onState?.("live");
        onReady();
      } else {
        onEvent(event);
      }
    };
    ws.onclose = (e) => {
      onState?.("offline");
      if (e.code === 4001 || stopped) {
        location.href = "/clinic/";  // signed out (session revoked)
        return;
      }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
  return () => { stopped = true; };
}

// Element builder: el("button", {class: "x", onclick: f}, "text", child...). Text is text.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function withService(name, service) {
  return service ? `${name} (${service})` : name;
}

export const STATUS_TEXT = {
  not_arrived: "Not arrived yet",
  waiting: "In waiting room",
  in_meeting: "In meeting",
  left: "Left",
};

// Open the room in its own tab. The tab is opened during the click (browsers block pop-ups
// opened later) and pointed at the room once the server has issued the join.
export async function enterRoom(getJoin) {
  const tab = window.open("", "_blank");
  try {
    const join = await getJoin();
    if (tab) tab.location.href = join.url;
    else location.href = join.url;
  } catch (err) {
    tab?.close();
    throw err;
  }
}

export async function signedIn() {
  try {
    return await api("GET", "/me");
  } catch (err) {
    if (err.status === 401) location.href = "/clinic/";
    throw err;
  }
}

export async function logout() {
  await api("POST", "/logout").catch(() => null);
  location.href = "/clinic/";
}

export function showError(target, err) {
  target.textContent = err.message || String(err);
  target.hidden = false;
}

// A click handler running `fn` with its button disabled; a refusal is shown in `errorBox`
// and the page reloads its snapshot (the refusal usually means someone else acted first).
export function act(errorBox, reload, fn) {
  return async (e) => {
    const button = e.currentTarget;
    errorBox.hidden = true;
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      showError(errorBox, err);
      await reload().catch(() => null);
    } finally {
      button.disabled = false;
    }
  };
}
