"""The calendar entry attached to a link email: one iCalendar VEVENT (RFC 5545) in the
department's time zone, built with the ``icalendar`` library, which also writes the
VTIMEZONE the entry refers to (RFC 5545 3.6.5) from the zoneinfo database.

The entry's UID is the appointment's, and its SEQUENCE grows with each change of the
appointment, so a calendar that imported an earlier entry replaces it instead of adding a
second one when the links are sent again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from string import Template
from typing import Any
from urllib.parse import urlsplit

from icalendar import Calendar, Event

from control.notify import templates

PRODID = "-//Televisit//Televisit link message//EN"
FILENAME = "invite.ics"


def calendar_entry(
    language: str, appointment: dict[str, Any], time_zone: str, vals: dict[str, str]
) -> str:
    """The ``text/calendar`` body (CRLF lines) for one appointment's link email."""
    cal_strings = templates.calendar(language)
    changed = datetime.fromisoformat(appointment.get("updated_at") or appointment["start"])
    host = urlsplit(vals["join_url"]).hostname or "televisit.local"
    event = Event()
    event.add("uid", f"{appointment['id']}@{host}")
    event.add("sequence", int(changed.timestamp()))
    event.add("dtstamp", changed.astimezone(UTC))
    event.add("dtstart", templates.local(appointment["start"], time_zone))
    event.add("dtend", templates.local(appointment["end"], time_zone))
    event.add("summary", Template(cal_strings["event"]).substitute(vals))
    event.add("description", Template(cal_strings["event_text"]).substitute(vals))
    event.add("location", vals["join_url"])
    event.add("url", vals["join_url"])
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical().decode("utf-8")
