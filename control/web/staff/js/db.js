// What the device holds, in IndexedDB: the synced data (one store per kind, keyed by id), the
// outbox of writes not yet accepted (keyed by their idempotency key) and a few settings (kv).
// Everything is written before it is relied on, so closing the app loses nothing.

const NAME = "televisit-staff";
const VERSION = 1;
export const DATA = ["appointments", "clients", "patients", "history", "consultations", "notes", "stock"];

let opened;

function promise(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });
}

export function open() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(NAME, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      for (const name of DATA) db.createObjectStore(name, { keyPath: "id" });
      db.createObjectStore("outbox", { keyPath: "key" });
      db.createObjectStore("kv");
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

export async function get(store, key) {
  const db = await open();
  return promise(db.transaction(store).objectStore(store).get(key));
}

export async function all(store) {
  const db = await open();
  return promise(db.transaction(store).objectStore(store).getAll());
}

export async function put(store, value, key) {
  const db = await open();
  const tx = db.transaction(store, "readwrite");
  tx.objectStore(store).put(value, key);
  return done(tx);
}

export async function remove(store, key) {
  const db = await open();
  const tx = db.transaction(store, "readwrite");
  tx.objectStore(store).delete(key);
  return done(tx);
}

// Several changes to several stores in one transaction: all of them land or none.
// `changes` maps a store to {put: [values], remove: [keys], clear: bool}.
export async function apply(changes) {
  const db = await open();
  const tx = db.transaction(Object.keys(changes), "readwrite");
  for (const [name, change] of Object.entries(changes)) {
    const store = tx.objectStore(name);
    if (change.clear) store.clear();
    for (const key of change.remove || []) store.delete(key);
    for (const value of change.put || []) store.put(value);
  }
  return done(tx);
}

export const kv = {
  get: (key) => get("kv", key),
  set: (key, value) => put("kv", value, key),
  remove: (key) => remove("kv", key),
};
