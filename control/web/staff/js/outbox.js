// The outbox: notes and stock scans written on the device, kept in IndexedDB until the server
// has answered them, sent one at a time in the order they were made.
//
// Each item has an idempotency key made here. The exact body is saved before the first
// attempt, so a repeat after a lost answer (the app closed, the server restarted) is the same
// request and lands once. An item the server refuses stays with its error ("error") or, for a
// note changed on another device, with the note as it is now ("conflict") for the user to fix.

import { ApiError, Offline, call } from "./api.js";
import * as db from "./db.js";

const RECENT_SCANS = 20;
let running = null;
// The order items were made in: the clock's ms, and a thousandth more for each item made in
// the same ms (a random tiebreak sent two scans queued back to back in either order).
let lastSeq = 0;

function nextSeq() {
  lastSeq = Math.max(Date.now(), lastSeq + 0.001);
  return lastSeq;
}

function newKey() {
  return crypto.randomUUID();
}

export async function items() {
  return (await db.all("outbox")).sort((a, b) => a.seq - b.seq);
}

async function save(item) {
  await db.put("outbox", item);
  return item;
}

function fresh(fields) {
  return { key: newKey(), seq: nextSeq(), state: "pending", sent: null, ...fields };
}

// A note saved in the editor. `base` is the version the user started from (0: a new note).
// An edit not yet attempted is changed in place instead of queueing a second one.
export async function queueNote({ noteId, patientId, appointmentId, text, base }) {
  const waiting = (await items()).find(
    (i) => i.kind === "note" && i.noteId === noteId && i.state === "pending" && !i.sent,
  );
  if (waiting) return save({ ...waiting, text });
  return save(fresh({ kind: "note", noteId, patientId, appointmentId: appointmentId || null, text, base }));
}

export async function queueScan({ barcode, quantity }) {
  return save(fresh({ kind: "scan", barcode, quantity, scannedAt: new Date().toISOString() }));
}

// A refused item, corrected by the user: a new item (new key) in its place.
export async function replace(key, fields) {
  const old = await db.get("outbox", key);
  const kept = { ...old };
  for (const name of ["key", "state", "sent", "error", "current"]) delete kept[name];
  await db.remove("outbox", key);
  return save(fresh({ ...kept, ...fields, seq: old.seq }));
}

export async function discard(key) {
  await db.remove("outbox", key);
}

function body(item) {
  if (item.kind === "note") {
    return {
      idempotency_key: item.key,
      base_version: item.base,
      patient_id: item.patientId,
      appointment_id: item.appointmentId,
      text: item.text,
    };
  }
  return {
    idempotency_key: item.key,
    barcode: item.barcode,
    quantity: item.quantity,
    scanned_at: item.scannedAt,
  };
}

function request(item) {
  return item.kind === "note"
    ? ["PUT", `/app/notes/${encodeURIComponent(item.noteId)}`]
    : ["POST", "/app/stock-scans"];
}

async function accepted(item, data) {
  await db.remove("outbox", item.key);
  if (item.kind === "note") {
    await db.put("notes", data.note);
    // Later edits of the same note made on top of this one now start from its new version.
    for (const later of await items()) {
      if (later.kind === "note" && later.noteId === item.noteId && !later.sent && later.base === item.base) {
        await save({ ...later, base: data.note.version });
      }
    }
  } else {
    const recent = (await db.kv.get("recentScans")) || [];
    await db.kv.set("recentScans", [data.scan, ...recent].slice(0, RECENT_SCANS));
  }
}

// Send what is pending. Resolves to null when all went, or why it stopped:
// "offline", "retry" (the server could not take it now), or the ApiError of a 401/403.
export function flush() {
  running ??= send().finally(() => {
    running = null;
  });
  return running;
}

async function send() {
  for (const item of await items()) {
    if (item.state !== "pending") continue;
    const sent = item.sent || body(item);
    if (!item.sent) await save({ ...item, sent });
    const [method, path] = request(item);
    try {
      const { data } = await call(method, path, sent);
      await accepted(item, data);
    } catch (err) {
      if (err instanceof Offline) return "offline";
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 401 || err.status === 403) return err;
      if (err.status === 429 || err.status >= 500) return "retry";
      const state = err.kind === "note-conflict" ? "conflict" : "error";
      await save({ ...item, sent, state, error: err.problem, current: err.problem.current || null });
    }
  }
  return null;
}
