"""Link messages rendered from per-language template files (templates/<lang>/).

Each language directory holds the same files with the same placeholders (a test checks it):
``sms.txt``, ``email_subject.txt``, ``email.txt``, ``email.html`` and ``calendar.toml`` (how
an appointment time reads). Substitution is ``string.Template.substitute``: values are
inserted as text, never evaluated, and a missing value is an error rather than a silent gap.
In the HTML part every value is HTML-escaped.

The clinic's time zone is not known to Televisit, so times are shown in UTC and say so.
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


def _utc(iso: str) -> datetime:
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_when(language: str, start_iso: str, end_iso: str) -> str:
    """``Monday 23 November 2026, 14:30–15:00 UTC`` in the given language."""
    cal = calendar(language)
    start, end = _utc(start_iso), _utc(end_iso)

    def clock(moment: datetime) -> str:
        return Template(cal["time"]).substitute(hour=moment.hour, minute=f"{moment.minute:02d}")

    return Template(cal["when"]).substitute(
        weekday=cal["weekdays"][start.weekday()],
        day=start.day,
        month=start.month,
        month_name=cal["months"][start.month - 1],
        year=start.year,
        start=clock(start),
        end=clock(end),
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
    return {
        "client_name": _one_line((appointment.get("client") or {}).get("name")),
        "patient_name": _one_line((appointment.get("patient") or {}).get("name")),
        "clinic_name": _one_line(contact.get("name") or department.get("name")),
        "clinic_contact": "\n".join(_contact_lines(department)),
        "when": format_when(language, appointment["start"], appointment["end"]),
        "join_url": tele["join_url"],
        "pin": str(tele["pin"]),
        "early_minutes": str(early_minutes),
    }


def render_sms(language: str, vals: dict[str, str]) -> str:
    # An SMS is one line: a multi-line contact block has no place in it.
    return template(language, "sms.txt").substitute(vals)


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
