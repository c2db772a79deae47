// Going into the call without the Join click: when a dashboard's "Accept and enter" or
// "Enter meeting" opened the page (#enter, read once), and after a reload mid-call.
//
// Rejoining by itself after a reload mid-call. When the page goes away during a call it notes
// the moment in sessionStorage (per tab and per link); the reloaded page goes straight back
// into the call when that was within the server's reconnect grace (the server still holds the
// member's place) and the browser already grants camera and microphone (no prompt to answer,
// so nothing the person has to decide is skipped). Otherwise the usual "Join" screen shows.

const KEY = `televisit.left-call:${location.pathname}`;

// True once when the address asked to enter at once; the mark leaves the address, so a later
// reload follows the reload rule.
export function enterAtOnce() {
  if (location.hash !== "#enter") return false;
  history.replaceState(null, "", location.pathname);
  return true;
}

export function noteLeftCall() {
  try {
    sessionStorage.setItem(KEY, String(Date.now()));
  } catch {
    // storage refused (private mode quota): the reload just shows the Join screen
  }
}

export function forgetCall() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // as above
  }
}

async function granted(name) {
  try {
    return (await navigator.permissions.query({ name })).state === "granted";
  } catch {
    return false; // a browser that cannot say: ask as usual
  }
}

// True when the page should rejoin the call without the Join click (and forgets the note).
export async function mayRejoin(graceSeconds) {
  let left = NaN;
  try {
    left = Number(sessionStorage.getItem(KEY));
  } catch {
    return false;
  }
  forgetCall();
  const within = left > 0 && Date.now() - left < (graceSeconds || 0) * 1000;
  return within && (await granted("camera")) && (await granted("microphone"));
}
