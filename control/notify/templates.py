"""Link messages rendered from per-language template files (templates/<lang>/).

Each language directory holds the same files with the same placeholders (a test checks it):
``sms.txt``, ``email_subject.txt``, ``email.txt``, ``email.html`` and ``calendar.toml`` (how
an appointment time reads). Substitution is ``string.Template.substitute``: values are
inserted as text, never evaluated, and a missing value is an error rather than a silent gap.
In the HTML part every value is HTML-escaped.

Times are the department's local time (``time_zone``, an IANA name) followed by the zone's
abbreviation (EET, CEST, UTC; ``UTC+03`` where the zone has no letters), so a reader in
another zone does not misread them. The SMS is spelled in the GSM 7-bit alphabet
(control/notify/gsm.py) and links with the short ``/v/<code>`` link so it fits one segment.
"""

from __future__ import annotations

import functools
import html
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

from control import appointments
from control.notify import gsm

TEMPLATE_DIR = Path(__file__).with_name("templates")
TEMPLATE_FILES = ("sms.txt", "email_subject.txt", "email.txt", "email.html")
CALENDAR_FILE = "calendar.toml"
LANGUAGES = tuple(sorted(p.name for p in TEMPLATE_DIR.iterdir() if p.is_dir()))
FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str


def choose_language(appointment: dict[str, Any], department: dict[str, Any]) -> str:
    """The client's language, else the department default, else English."""
    for candidate in (
        (appointment.get("client") or {}).get("language"),
        department.get("default_language"),
    ):
        if candidate in LANGUAGES:
            return candidate
    return FALLBACK_LANGUAGE


@functools.cache
def template(language: str, name: str) -> Template:
    return Template((TEMPLATE_DIR / language / name).read_text(encoding="utf-8").strip())


@functools.cache
def calendar(language: str) -> dict[str, Any]:
    return tomllib.loads((TEMPLATE_DIR / language / CALENDAR_FILE).read_text(encoding="utf-8"))


def local(iso: str, time_zone: str) -> datetime:
    """An ISO 8601 time (naive = UTC) in the IANA zone ``time_zone``."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(time_zone))


def zone_label(moment: datetime) -> str:
    """The zone's abbreviation at ``moment`` (EET, EEST, UTC), or ``UTC+03`` when the
    database has only a number for it."""
    name = moment.tzname() or "UTC"
    return name if name.isalpha() else f"UTC{name}"


def format_when(
    language: str, start_iso: str, end_iso: str, time_zone: str = "UTC", form: str = "when"
) -> str:
    """``Monday 23 November 2026, 16:30–17:00 EET`` (``form`` ``when``) or the SMS's
    ``Mon 23 Nov 16:30 EET`` (``sms_when``) in the given language and time zone."""
    cal = calendar(language)
    start, end = local(start_iso, time_zone), local(end_iso, time_zone)

    def clock(moment: datetime) -> str:
        return Template(cal["time"]).substitute(hour=moment.hour, minute=f"{moment.minute:02d}")

    return Template(cal[form]).substitute(
        weekday=cal["weekdays"][start.weekday()],
        wd=cal["weekdays_short"][start.weekday()],
        day=start.day,
        month=start.month,
        month_name=cal["months"][start.month - 1],
        mon=cal["months_short"][start.month - 1],
        year=start.year,
        start=clock(start),
        end=clock(end),
        zone=zone_label(start),
    )


def _contact_lines(department: dict[str, Any]) -> list[str]:
    contact = department.get("contact") or {}
    fields = ("name", "address", "phone", "email")
    return [line for f in fields if (line := _one_line(contact.get(f)))]


def _one_line(text: Any) -> str:
    # Names end up in a mail header and an SMS: no line breaks, no runs of spaces.
    return " ".join(str(text or "").split())


def values(
    language: str, appointment: dict[str, Any], department: dict[str, Any], early_minutes: int
) -> dict[str, str]:
    """The plain-text placeholder values for one appointment."""
    tele = appointment["telemedicine"]
    contact = department.get("contact") or {}
    zone = department.get("time_zone") or "UTC"
    return {
        "client_name": _one_line((appointment.get("client") or {}).get("name")),
        "patient_name": _one_line((appointment.get("patient") or {}).get("name")),
        "clinic_name": _one_line(contact.get("name") or department.get("name")),
        "clinic_contact": "\n".join(_contact_lines(department)),
        "when": format_when(language, appointment["start"], appointment["end"], zone),
        "sms_when": format_when(
            language, appointment["start"], appointment["end"], zone, "sms_when"
        ),
        "join_url": appointments.client_url(tele),
        "pin": str(tele["pin"]),
        "early_minutes": str(early_minutes),
    }


def render_sms(language: str, vals: dict[str, str]) -> str:
    """One line in the GSM 7-bit alphabet (names are respelled: see gsm.to_gsm)."""
    # An SMS is one line: a multi-line contact block has no place in it.
    return gsm.to_gsm(template(language, "sms.txt").substitute(vals))


def render_email(language: str, vals: dict[str, str]) -> EmailContent:
    escaped = {k: html.escape(v, quote=True) for k, v in vals.items()}
    escaped["clinic_contact"] = "<br>\n".join(
        html.escape(line, quote=True) for line in vals["clinic_contact"].splitlines()
    )
    return EmailContent(
        subject=template(language, "email_subject.txt").substitute(vals),
        text=template(language, "email.txt").substitute(vals) + "\n",
        html=template(language, "email.html").substitute(escaped) + "\n",
    )
