"""Bodies and answers of the mobile API (documented in the OpenAPI file from these models).

Requests are strict and closed like the rest of the API (control/models.py): an unknown field,
a wrong type or a value out of bounds is a 422 naming the field. Times are ISO 8601 with an
offset on the way in and UTC ``...Z`` strings on the way out.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from control.mobile import gtin
from control.models import Email, Id, Instant, Language, Name, Phone, line, text
from control.times import iso

# The longest preliminary note the app may write (characters).
NOTE_MAX_CHARS = 4000
# The largest quantity one scan may add.
SCAN_MAX_QUANTITY = 100_000

UtcTime = Annotated[Instant, PlainSerializer(iso, return_type=str)]
Text = Annotated[str, text(10_000)]
Short = Annotated[str, line(200)]


def _gtin(value: str) -> str:
    gtin.normalize(value)  # ValueError names what is wrong
    return value.strip()


Gtin = Annotated[
    str,
    Field(
        min_length=8, max_length=14, pattern=r"^\s*[0-9]+\s*$",
        description="GTIN (EAN-8, UPC-A, EAN-13 or GTIN-14) with a valid check digit",
        examples=["6414893012345"],
    ),
    AfterValidator(_gtin),
]  # fmt: skip
# Made on the device (a UUID, say): the same key again is the same write, answered as before.
IdempotencyKey = Annotated[
    str,
    Field(
        min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="made on the device, one per write: a repeat with the same key lands "
        "nowhere and gets the first answer's body (status 200)",
    ),
]  # fmt: skip


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what clinic software pushes (PUT /mobile/<kind>/{id}: create or replace) --------------


class ClientIn(_Request):
    name: Name
    phone: Phone | None = None
    email: Email | None = None
    address: Annotated[str, text(500)] = ""
    language: Language | None = None


class PatientIn(_Request):
    client_id: Id = Field(description="the owner, pushed first to /mobile/clients/{id}")
    name: Name
    species: Annotated[str, line(100)] = ""
    breed: Annotated[str, line(100)] = ""
    sex: Annotated[str, line(40)] = ""
    birth_date: date | None = None
    alerts: Annotated[str, text(500)] = Field(default="", description="'bites', 'allergic to X'")


class HistoryIn(_Request):
    patient_id: Id
    at: UtcTime = Field(description="when it happened")
    type: Annotated[str, line(40), Field(min_length=1)] = Field(
        default="note",
        description="the clinic's category: note, diagnosis, medication, lab, vaccination...",
    )
    title: Short = ""
    text: Text = ""


class ConsultationNoteIn(_Request):
    at: UtcTime
    author: Short = ""
    text: Text


class ConsultationIn(_Request):
    patient_id: Id
    started_at: UtcTime
    provider_name: Short = ""
    reason: Annotated[str, text(500)] = ""
    notes: list[ConsultationNoteIn] = Field(default_factory=list, max_length=50)


class StockItemIn(_Request):
    gtin: Gtin
    name: Name
    unit: Annotated[str, line(20), Field(min_length=1)] = Field(
        default="pcs", examples=["pcs", "ml", "box"]
    )


class ClientOut(_Response):
    id: str
    name: str
    phone: str | None
    email: str | None
    address: str
    language: Language | None
    updated_at: str


class PatientOut(_Response):
    id: str
    client_id: str
    name: str
    species: str
    breed: str
    sex: str
    birth_date: str | None
    alerts: str
    updated_at: str


class HistoryOut(_Response):
    id: str
    patient_id: str
    at: str
    type: str
    title: str
    text: str
    updated_at: str


class ConsultationNoteOut(_Response):
    at: str
    author: str
    text: str


class ConsultationOut(_Response):
    id: str
    patient_id: str
    started_at: str
    provider_name: str
    reason: str
    notes: list[ConsultationNoteOut]
    updated_at: str


class StockItemOut(_Response):
    id: str
    gtin: str
    name: str
    unit: str
    updated_at: str


# --- staff: the organization setting, login keys, devices ----------------------------------


class MobileSettingsBody(_Request):
    enabled: bool = Field(description="mobile app enabled for the organization")


class MobileSettingsOut(_Response):
    enabled: bool


class LoginKeyOut(_Response):
    key: str = Field(description="type it into the app once; shown once", examples=["7KQ2M-X9D4T"])
    expires_at: str
    app_url: str = Field(description="where the app is: open it on the phone and install it")


class DeviceOut(_Response):
    id: str
    staff_id: str
    staff_name: str | None = None
    name: str
    created_at: str
    last_sync_at: str | None


class DevicesOut(_Response):
    devices: list[DeviceOut]


# --- the app ------------------------------------------------------------------------------


class DeviceLoginBody(_Request):
    key: Annotated[str, line(32)] = Field(description="the login key from the user's profile")
    name: Annotated[str, line(80), Field(min_length=1)] = Field(
        default="Phone", description="shown in the device list"
    )


class StaffBrief(_Response):
    id: str
    display_name: str


class DeviceBrief(_Response):
    id: str
    name: str


class DeviceLoginOut(_Response):
    token: str = Field(description="the device's bearer token (tvm_...); shown once")
    device: DeviceOut
    staff: StaffBrief


class DeviceMeOut(_Response):
    device: DeviceOut
    staff: StaffBrief


class NoteBody(_Request):
    idempotency_key: IdempotencyKey
    base_version: int = Field(ge=0, description="the version this edit starts from (0: a new note)")
    patient_id: Id
    appointment_id: Id | None = Field(default=None, description="when written for a visit")
    text: Annotated[str, text(NOTE_MAX_CHARS), Field(min_length=1)]


class Author(_Response):
    staff_id: str
    staff_name: str
    device_id: str
    device_name: str


class NoteOut(_Response):
    id: str
    patient_id: str
    appointment_id: str | None
    text: str
    version: int
    created_at: str
    updated_at: str
    updated_by: Author


class ScanBody(_Request):
    idempotency_key: IdempotencyKey
    barcode: Gtin
    quantity: int = Field(gt=0, le=SCAN_MAX_QUANTITY, description="units added to inventory")
    scanned_at: UtcTime


class ScanOut(_Response):
    barcode: str
    gtin: str = Field(description="the barcode as GTIN-14")
    quantity: int
    scanned_at: str
    item: StockItemOut


class NoteSaved(_Response):
    submission_id: str
    note: NoteOut


class ScanSaved(_Response):
    submission_id: str
    scan: ScanOut


class AppointmentParty(_Response):
    id: str | None
    name: str


class AppointmentClientOut(AppointmentParty):
    phone: str | None
    email: str | None


class AppointmentPatientOut(AppointmentParty):
    species: str


class AppointmentOut(_Response):
    id: str
    department_id: str
    start: str
    end: str
    status: Literal["scheduled", "cancelled"]
    provider: AppointmentParty
    client: AppointmentClientOut
    patient: AppointmentPatientOut
    host_url: str | None = Field(description="'Open telemedicine view' (null: no telemedicine)")


class DepartmentWindow(_Response):
    id: str
    name: str
    time_zone: str
    days: list[str] = Field(description="yesterday, today and tomorrow there (YYYY-MM-DD)")
    start: str
    end: str


class Removed(_Response):
    appointments: list[str]
    history: list[str]
    consultations: list[str]


class SyncOut(_Response):
    cursor: str = Field(description="send it back as ?cursor= for the changes since this sync")
    full: bool = Field(description="true: replaces everything the device holds")
    server_time: str
    departments: list[DepartmentWindow]
    appointments: list[AppointmentOut]
    clients: list[ClientOut]
    patients: list[PatientOut]
    history: list[HistoryOut]
    consultations: list[ConsultationOut]
    notes: list[NoteOut]
    stock: list[StockItemOut]
    removed: Removed


# --- clinic software: what staff wrote ----------------------------------------------------


class Submission(_Response):
    id: str = Field(description="also the webhook's Idempotency-Key: drop repeats by it")
    type: Literal["note.saved", "stock.scanned"]
    org_id: str
    created_at: str
    staff: StaffBrief
    device: DeviceBrief
    note: NoteOut | None = None
    scan: ScanOut | None = None


class SubmissionsOut(_Response):
    submissions: list[Submission]
    more: bool = Field(description="more are waiting: acknowledge these, then ask again")


class AckBody(_Request):
    ids: list[Id] = Field(min_length=1, max_length=500)


class AckOut(_Response):
    acknowledged: list[str]
    unknown: list[str] = Field(description="ids of no submission of this organization")
