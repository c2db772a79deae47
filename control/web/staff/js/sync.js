// Sync: ask for what changed since the cursor the device holds (304: nothing), store it, and
// keep only what today's appointments refer to. A full answer replaces everything.

import { call } from "./api.js";
import * as db from "./db.js";

const REMOVABLE = ["appointments", "history", "consultations"];

export async function sync() {
  const cursor = await db.kv.get("cursor");
  const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
  const { status, data } = await call("GET", `/app/sync${query}`);
  if (status !== 304) {
    const changes = {};
    for (const kind of db.DATA) changes[kind] = { clear: data.full, put: data[kind] };
    for (const kind of REMOVABLE) changes[kind].remove = data.removed[kind];
    await db.apply(changes);
    await forgetUnreferenced();
    await db.kv.set("departments", data.departments);
    await db.kv.set("cursor", data.cursor);
  }
  await db.kv.set("syncedAt", Date.now());
  return status !== 304;
}

// Patients, clients and their records that no appointment on the device refers to any more.
async function forgetUnreferenced() {
  const [appointments, patients, clients, history, consultations, notes] = await Promise.all(
    ["appointments", "patients", "clients", "history", "consultations", "notes"].map(db.all),
  );
  const patientIds = new Set(appointments.map((a) => a.patient.id).filter(Boolean));
  const clientIds = new Set(appointments.map((a) => a.client.id).filter(Boolean));
  for (const p of patients) if (patientIds.has(p.id)) clientIds.add(p.client_id);
  const gone = (items, keep) => items.filter((item) => !keep(item)).map((item) => item.id);
  await db.apply({
    patients: { remove: gone(patients, (p) => patientIds.has(p.id)) },
    clients: { remove: gone(clients, (c) => clientIds.has(c.id)) },
    history: { remove: gone(history, (h) => patientIds.has(h.patient_id)) },
    consultations: { remove: gone(consultations, (c) => patientIds.has(c.patient_id)) },
    notes: { remove: gone(notes, (n) => patientIds.has(n.patient_id)) },
  });
}

// Signed out: patient data leaves the device (the outbox of unsent writes stays).
export async function forgetAll() {
  const changes = {};
  for (const kind of db.DATA) changes[kind] = { clear: true };
  await db.apply(changes);
  for (const key of ["token", "cursor", "departments", "device", "staff"]) await db.kv.remove(key);
}
