"""Preliminary clinical notes written in the app, per patient (and the appointment they were
written for), editable from any of the staff's devices without ever overwriting silently.

Each save names the version it started from (``base_version``; 0 for a new note). If the note
has moved on since, another device saved in between: the save is refused with NoteConflict
carrying the note as it is now, and the app shows both texts for the user to choose. A save
also records the idempotency keys of the last KEYS_KEPT writes it applied, so a repeat whose
first answer was lost is recognized even if the node died before recording its submission.

Record ``mobile_note/<org>:<note id>`` (the id is made on the device), in the change feed and
in ``mobile:notes:<org>:<patient>`` by creation time.
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from control import appointments
from control.clinic.errors import Invalid
from control.clinic.records import Write, upsert
from control.mobile import records
from control.mobile.errors import NoteConflict, UnknownReference
from control.mobile.feed import feed_index
from control.mobile.schemas import NoteBody
from control.mobile.submissions import Writer, request_hash, submit
from control.store import Record, Store
from control.times import epoch, iso_at

KIND = "mobile_note"
KEYS_KEPT = 20
PRIVATE = ("keys",)


def notes_index(org_id: str, patient_id: str) -> str:
    return f"mobile:notes:{org_id}:{patient_id}"


def public(note: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in note.items() if k not in PRIVATE}


async def _check_references(store: Store, org_id: str, body: NoteBody) -> None:
    await records.require(store, records.PATIENT, org_id, body.patient_id, field="patient_id")
    if body.appointment_id is not None:
        appt = await store.get(appointments.KIND, body.appointment_id)
        if appt is None or appt.data["org_id"] != org_id:
            raise UnknownReference(
                f"appointment_id: no appointment {body.appointment_id!r}", field="appointment_id"
            )
        # A note for one patient filed under another's visit would reach the clinic software
        # as that visit's note. (An appointment booked without the patient's id cannot say.)
        booked = appt.data["patient"].get("id")
        if booked is not None and booked != body.patient_id:
            raise Invalid(
                f"appointment_id: appointment {body.appointment_id} is patient {booked!r}'s, "
                f"not {body.patient_id!r}'s",
                field="appointment_id",
            )


async def save(
    store: Store,
    settings: Settings,
    writer: Writer,
    note_id: str,
    body: NoteBody,
    *,
    now: float,
) -> tuple[dict[str, Any], bool]:
    """Create or edit the note: (its submission ``note.saved``, created). Raises
    UnknownReference (422) for a patient or appointment that does not exist, Invalid (422)
    for an appointment booked for another patient, an edit naming another patient or a new
    note not starting from 0, NoteConflict (409) when the note moved on since
    ``base_version``, KeyReused (409)."""
    org_id, key = writer.org_id, body.idempotency_key

    def make(rec: Record | None) -> Write | None:
        if rec is None:
            if body.base_version != 0:
                raise Invalid(
                    f"base_version: note {note_id} does not exist; a new note starts from 0",
                    field="base_version",
                )
            data = {
                "id": note_id,
                "patient_id": body.patient_id,
                "appointment_id": body.appointment_id,
                "text": body.text,
                "version": 1,
                "created_at": iso_at(now),
                "updated_at": iso_at(now),
                "updated_by": writer.author(),
                "keys": [key],
            }
        else:
            data = rec.data
            if key in data["keys"]:
                return None  # applied already; the node died before recording its submission
            if (data["patient_id"], data["appointment_id"]) != (
                body.patient_id,
                body.appointment_id,
            ):
                raise Invalid(
                    "patient_id: a note stays with the patient and appointment it was written for",
                    field="patient_id",
                )
            if data["version"] != body.base_version:
                raise NoteConflict(
                    f"note {note_id} was changed on another device (now version "
                    f"{data['version']}, this edit started from {body.base_version})",
                    field="base_version",
                    current=public(data),
                )
            data = {
                **data,
                "text": body.text,
                "version": data["version"] + 1,
                "updated_at": iso_at(now),
                "updated_by": writer.author(),
                "keys": [*data["keys"], key][-KEYS_KEPT:],
            }
        return data, (), {notes_index(org_id, data["patient_id"]): epoch(data["created_at"])}

    async def produce() -> tuple[str, dict[str, Any]]:
        await _check_references(store, org_id, body)
        rec, _ = await upsert(
            store, KIND, records.record_id(org_id, note_id), make, what="note",
            sequenced=feed_index(org_id),
        )  # fmt: skip
        assert rec is not None
        return "note.saved", {"note": public(rec.data)}

    digest = request_hash(note_id, body.model_dump_json())
    return await submit(store, settings, writer, key, digest, produce, now=now)
