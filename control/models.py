"""The API's request and response bodies (pydantic). The OpenAPI document is built from these.

Requests are strict and closed (``extra="forbid"``): an unknown field, a wrong type, a phone
that is not E.164 or an end before the start is a 422 naming the field, never a guess.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

Language = Literal["en", "fi", "sv"]
Channel = Literal["sms", "email"]
Status = Literal["scheduled", "cancelled"]
Role = Literal["host", "guest"]

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Deliberately plain: one @, a dot in the domain, no spaces. Deliverability is the SMTP
# server's call; this only catches what is certainly not an address.
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;.]+$")


def _e164(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("must be an E.164 phone number such as +358401234567")
    return value


def mail_address(value: str) -> str:
    """``value`` as SMTP without SMTPUTF8 (what the notify worker speaks) carries it: an
    internationalized domain in its ASCII form (IDNA, ``exämple.fi`` -> ``xn--exmple-cua.fi``).
    ValueError naming the problem when it has no such form (a local part that is not ASCII)."""
    local, _, domain = value.rpartition("@")
    if not local.isascii():
        raise ValueError(
            "the part before the @ must be ASCII (mail goes out without SMTPUTF8, which such "
            "an address needs)"
        )
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as exc:
        raise ValueError("must be an email address such as name@example.com") from exc


def _email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("must be an email address such as name@example.com")
    mail_address(value)  # stored as given; the worker sends to its ASCII form
    return value


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _time_zone(value: str) -> str:
    # The IANA database as zoneinfo sees it (system tzdata, else the tzdata package): a name
    # outside it would fail later, at the first message rendered in it.
    if value not in _zone_names():
        raise ValueError("must be an IANA time zone name such as Europe/Helsinki")
    return value


# The validators give the friendly messages; the patterns tell generated clients the same rule.
Phone = Annotated[
    str,
    Field(json_schema_extra={"pattern": _E164.pattern}, examples=["+358401234567"]),
    AfterValidator(_e164),
]
TimeZone = Annotated[
    str,
    Field(max_length=64, description="IANA time zone name", examples=["Europe/Helsinki"]),
    AfterValidator(_time_zone),
]
Email = Annotated[
    str,
    Field(json_schema_extra={"pattern": _EMAIL.pattern, "maxLength": 254}),
    AfterValidator(_email),
]
# datetime's years 1-9999 less a year at either end: the server turns every time into UTC
# and shifts it (a PIN's window opens before the start), and a time past either end of the
# range could not be written back (OverflowError, a 500).
EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)


def _instant(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 0002-01-01T00:00:00Z and 9998-12-31T23:59:59Z")
    return value


# Every time a request carries: RFC 3339 with an offset, within EARLIEST..LATEST.
Instant = Annotated[AwareDatetime, AfterValidator(_instant)]
# Ids become store keys, claims and index names; names and one-line texts are shown on pages
# and sent in messages: no control characters, C0 or C1 (NUL cannot even be stored; NEL,
# U+0085, is a line break to str.splitlines and many mail readers), and no line or paragraph
# separator (U+2028, U+2029). Free text (an address, a note) may also hold tabs and line breaks.
#
# Bidirectional formatting (UAX #9): a name is shown inside other text (an SMS, the clinic's
# dashboard), and an override (LRO/RLO, U+202D/U+202E) displays its letters in an order they
# are not stored in ("Trojan Source"), while an embedding or isolate left open (LRE/RLE
# U+202A/B, LRI/RLI/FSI U+2066-8) or a stray closer (PDF U+202C, PDI U+2069) reorders the
# text around the name, e.g. the PIN or the link after it. Both are refused. Right-to-left
# names need none of them (the algorithm orders Arabic and Hebrew letters itself; the marks
# LRM, RLM and ALM, U+200E/U+200F/U+061C, stay allowed), but Android's BidiFormatter and web
# pages wrap names they hand over in one embedding or isolate closed right after, so one
# such closed pair (not nested, within one line) is accepted: it cannot reach past the name.
# Ids (keys, not prose) take no bidirectional formatting at all.
_BREAKS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_BIDI = r"\u202a-\u202e\u2066-\u2069"
_LINE_CHAR = f"[^{_BREAKS}{_BIDI}]"
_TEXT_CHAR = rf"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}]"
_CLOSED = rf"[\u202a\u202b]{_LINE_CHAR}*\u202c|[\u2066-\u2068]{_LINE_CHAR}*\u2069"
ID_PATTERN = f"^{_LINE_CHAR}+$"
NAME_PATTERN = f"^(?:{_LINE_CHAR}|{_CLOSED})+$"
LINE_PATTERN = f"^(?:{_LINE_CHAR}|{_CLOSED})*$"
TEXT_PATTERN = f"^(?:{_TEXT_CHAR}|{_CLOSED})*$"
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]


def line(max_length: int) -> Any:
    """A one-line text field of at most ``max_length`` characters (may be empty)."""
    return Field(max_length=max_length, pattern=LINE_PATTERN)


def text(max_length: int) -> Any:
    """A free-text field (tabs and line breaks allowed) of at most ``max_length`` characters."""
    return Field(max_length=max_length, pattern=TEXT_PATTERN)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- departments --------------------------------------------------------------------------


class Contact(_Request):
    """Clinic contact details shown in link emails."""

    name: Annotated[str, line(200)] = ""
    address: Annotated[str, text(500)] = ""
    phone: Phone | None = None
    email: Email | None = None


class DepartmentCreate(_Request):
    name: Name
    telemedicine_enabled: bool = False
    default_language: Language = "en"
    time_zone: TimeZone = Field(
        default="UTC", description="where the clinic is: messages and pages show its local time"
    )
    contact: Contact = Field(default_factory=Contact)


class DepartmentPatch(_Request):
    name: Name | None = None
    telemedicine_enabled: bool | None = None
    default_language: Language | None = None
    time_zone: TimeZone | None = None
    contact: Contact | None = Field(default=None, description="replaces the whole contact")


class Department(_Response):
    id: str
    org_id: str
    name: str
    telemedicine_enabled: bool
    default_language: Language
    time_zone: str = Field(description="IANA time zone name", examples=["Europe/Helsinki"])
    contact: Contact


class DepartmentList(_Response):
    departments: list[Department]


# --- appointments -------------------------------------------------------------------------


class Provider(_Request):
    id: Id
    name: Name


class Client(_Request):
    id: Id | None = Field(
        default=None, description="the clinic's own client id (PUT /mobile/clients/{id})"
    )
    name: Name
    phone: Phone | None = None
    email: Email | None = None
    language: Language | None = Field(
        default=None, description="language of the client's messages; default: the department's"
    )


class Patient(_Request):
    id: Id | None = Field(
        default=None, description="the clinic's own patient id (PUT /mobile/patients/{id})"
    )
    name: Name
    species: Annotated[str, line(100)] = ""


class AppointmentCreate(_Request):
    department_id: Id
    external_id: Id = Field(description="the clinic's own id; creating twice returns the first")
    start: Instant = Field(description="RFC 3339 time with an offset (years 2-9998 in UTC)")
    end: Instant = Field(
        description="after start, and at most pins.max_appointment_hours (12 by default) "
        "after it (else 422 naming end)"
    )
    provider: Provider
    client: Client
    patient: Patient

    @model_validator(mode="after")
    def _end_after_start(self) -> AppointmentCreate:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AppointmentPatch(_Request):
    start: Instant | None = None
    end: Instant | None = None
    provider: Provider | None = None
    client: Client | None = Field(default=None, description="replaces the whole client")
    patient: Patient | None = Field(default=None, description="replaces the whole patient")


class Delivery(_Response):
    status: Literal["queued", "sending", "sent", "failed"]
    attempts: int
    last_error: str | None
    sent_at: str | None
    queued_at: str | None


class Telemedicine(_Response):
    room_id: str
    pin: str
    join_url: str = Field(
        description="the client's link, what SMS and email carry and what clinic software "
        "sending its own messages should send: the short link /v/<code> (token_url for "
        "appointments booked before short links existed). It resolves to the current guest "
        "token, so it works while token_url does and stops with it (expiry, cancel, a new "
        "client); a re-issue that keeps the client keeps it"
    )
    token_url: str = Field(
        description="the same link in its long form /j/<token>, carrying the guest token "
        "itself (a re-issue replaces it)"
    )
    short_url: str | None = Field(
        description="the short link alone (as join_url); null for appointments booked before "
        "short links existed, until links are re-issued"
    )
    host_url: str = Field(description="'open telemedicine view' for the clinic (host token)")
    links_sent_at: str | None
    valid_from: str = Field(description="the room opens (start - pins.early_minutes)")
    valid_until: str = Field(description="the room closes (end + pins.grace_minutes)")
    delivery: dict[str, Delivery] = Field(description="latest link message per channel")


class AppointmentProvider(_Response):
    id: str
    name: str


class AppointmentClient(_Response):
    id: str | None = None
    name: str
    phone: str | None
    email: str | None
    language: Language | None


class AppointmentPatient(_Response):
    id: str | None = None
    name: str
    species: str


class Appointment(_Response):
    id: str
    org_id: str
    department_id: str
    external_id: str
    start: str
    end: str
    provider: AppointmentProvider
    client: AppointmentClient
    patient: AppointmentPatient
    status: Status
    created_at: str
    updated_at: str
    telemedicine: Telemedicine | None


class AppointmentList(_Response):
    appointments: list[Appointment]
    next_offset: int | None = Field(description="pass as offset for the next page; null: done")


class SendLinks(_Request):
    channels: list[Channel] = Field(
        min_length=1, max_length=2, json_schema_extra={"uniqueItems": True}
    )

    @model_validator(mode="after")
    def _distinct(self) -> SendLinks:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("a channel is listed twice")
        return self


class SendResult(_Response):
    appointment: Appointment
    queued: list[Channel]


# --- join ---------------------------------------------------------------------------------


class JoinRequest(_Request):
    pin: str | None = Field(
        default=None,
        max_length=32,
        description="what native apps send: the digits as typed (spaces and dashes between "
        "them, and any script's decimal digits, are read as the PIN)",
    )
    token: str | None = Field(
        default=None, max_length=2048, description="from a /j/<token> or /h/<token> link"
    )
    code: str | None = Field(default=None, max_length=32, description="from a /v/<code> link")

    @model_validator(mode="after")
    def _one_of(self) -> JoinRequest:
        if sum(x is not None for x in (self.pin, self.token, self.code)) != 1:
            raise ValueError("give exactly one of pin, token and code")
        return self


class IceServer(_Response):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Window(_Response):
    start: str
    end: str


class HostView(_Response):
    """What the clinic's 'open telemedicine view' shows above the call: the client and
    patient of an appointment, the requester and service of a virtual clinic visit."""

    client_name: str
    patient_name: str | None = None
    patient_species: str | None = None
    service: str | None = Field(default=None, description="virtual clinic visits")
    start: str
    end: str | None = Field(default=None, description="appointments (a visit has no end time)")


class ClinicContact(_Response):
    name: str
    phone: str | None


class JoinResponse(_Response):
    room_id: str
    token: str = Field(description="present it in the signaling join message")
    role: Role
    name: str | None = Field(
        default=None,
        description="whom the room knows this member as; absent after a PIN join (and for its "
        "token): a PIN can be guessed, so its holder is never told the client's name",
    )
    signaling_url: str = Field(
        description="the WebSocket of the SFU worker holding the room (docs/signaling.md); ask "
        "again before rejoining: a room moves when its worker dies or drains. 503 "
        "no-media-server while no worker takes rooms"
    )
    ice_servers: list[IceServer]
    appointment: Window
    reconnect_grace_seconds: float = Field(
        description="a member whose connection dropped (or who reloaded the page) keeps its "
        "place this long; the page rejoins by itself within it"
    )
    kind: Literal["vet", "appointment", "clinic"] = Field(
        description="an appointment with an animal patient, one without, a virtual clinic visit"
    )
    language: Language
    time_zone: str | None = Field(
        default=None, description="the department's IANA time zone (absent: the reader's own)"
    )
    clinic: ClinicContact | None = Field(default=None, description="whom the client contacts")
    host_view: HostView | None = None


# --- misc ---------------------------------------------------------------------------------


class Health(_Response):
    status: Literal["ok"]
    store: str


class ProblemBody(_Response):
    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    field: str | None = None


def given(model: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body set to a value, each dumped whole (a nested object given in a
    PATCH replaces the stored one, with its unset fields at their defaults)."""
    out = {}
    for name in model.model_fields_set:
        value = getattr(model, name)
        if value is not None:
            out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out
