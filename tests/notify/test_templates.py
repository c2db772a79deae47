import re
from string import Template

import pytest

from control.notify import templates

from .helpers import appointment, department


def test_every_language_has_every_template_with_the_same_placeholders():
    assert set(templates.LANGUAGES) >= {"en", "fi", "sv"}
    for name in templates.TEMPLATE_FILES:
        found = {
            lang: set(templates.template(lang, name).get_identifiers())
            for lang in templates.LANGUAGES
        }
        assert all(
            t.is_valid() for t in (templates.template(lang, name) for lang in templates.LANGUAGES)
        )
        assert len({frozenset(ids) for ids in found.values()}) == 1, (name, found)
        assert {"join_url", "pin"} <= found["en"] or name == "email_subject.txt"


def test_every_calendar_names_seven_days_and_twelve_months():
    allowed = {"weekday", "wd", "day", "month", "month_name", "mon", "year", "start", "end", "zone"}
    for lang in templates.LANGUAGES:
        cal = templates.calendar(lang)
        assert len(cal["weekdays"]) == 7 and len(cal["months"]) == 12
        assert len(cal["weekdays_short"]) == 7 and len(cal["months_short"]) == 12
        assert set(Template(cal["when"]).get_identifiers()) <= allowed
        assert set(Template(cal["sms_when"]).get_identifiers()) <= allowed
        assert set(Template(cal["time"]).get_identifiers()) == {"hour", "minute"}


@pytest.mark.parametrize(
    ("lang", "expected", "in_utc"),
    [
        ("en", "Monday 23 November 2026, 16:30–17:00 EET", "14:30–15:00 UTC"),
        ("fi", "ma 23.11.2026 klo 16.30–17.00 (EET)", "14.30–15.00 (UTC)"),
        ("sv", "måndag 23 november 2026 kl. 16.30–17.00 (EET)", "14.30–15.00 (UTC)"),
    ],
)
def test_when_reads_in_the_clinics_local_time_with_its_zone(lang, expected, in_utc):
    zone = "Europe/Helsinki"
    assert templates.format_when(lang, "2026-11-23T14:30:00Z", "2026-11-23T15:00:00Z", zone) == (
        expected
    )
    # An offset is the same moment, shown in the clinic's zone rather than as written.
    assert (
        templates.format_when(lang, "2026-11-23T16:30:00+02:00", "2026-11-23T17:00+02:00", zone)
        == expected
    )
    # A department still on the default zone says UTC.
    assert templates.format_when(lang, "2026-11-23T14:30:00Z", "2026-11-23T15:00:00Z").endswith(
        in_utc
    )


def test_language_is_the_clients_then_the_departments_then_english():
    assert (
        templates.choose_language(appointment(language="sv"), department(default_language="fi"))
        == "sv"
    )
    assert (
        templates.choose_language(appointment(language=None), department(default_language="fi"))
        == "fi"
    )
    assert (
        templates.choose_language(appointment(language="de"), department(default_language="fi"))
        == "fi"
    )
    assert (
        templates.choose_language(appointment(language=None), department(default_language=None))
        == "en"
    )


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[^\W\d_]{4,}", text)}


def _static_words(lang: str) -> set[str]:
    words: set[str] = set()
    for name in templates.TEMPLATE_FILES:
        words |= _words(
            re.sub(
                r"<[^>]+>", " ", Template.pattern.sub(" ", templates.template(lang, name).template)
            )
        )
    return words


@pytest.mark.parametrize("lang", ["en", "fi", "sv"])
def test_rendered_messages_hold_the_links_and_only_one_language(lang):
    appt, dep = appointment(language=lang), department()
    vals = templates.values(lang, appt, dep, early_minutes=60)
    sms = templates.render_sms(lang, vals)
    email = templates.render_email(lang, vals)
    assert "\n" not in sms
    for text in (sms, email.text):
        assert appt["telemedicine"]["short_url"] in text and "123456789" in text
    for line in ("Eläinklinikka Kärpänen", "Hämeentie 12, 00530 Helsinki", "+358 9 123 4567"):
        assert line in email.text and line in email.html
    assert "Mörri" in email.text and "60" in email.text
    assert "$" not in sms + email.subject + email.text + email.html
    rendered = _words(sms + " " + email.subject + " " + email.text) - _words(
        " ".join(vals.values())
    )
    own = _static_words(lang)
    for other in templates.LANGUAGES:
        if other != lang:
            foreign = _static_words(other) - own - {"televisit"}
            assert not rendered & foreign, (lang, other, rendered & foreign)


def test_html_part_escapes_every_value_and_text_keeps_them():
    appt = appointment(name='<script>alert("x")</script>', language="en")
    appt["telemedicine"]["short_url"] = 'https://v.example/j?a=1&b="2"'
    dep = department(contact={"name": "A & B <Vets>", "address": "", "phone": "1", "email": ""})
    vals = templates.values("en", appt, dep, early_minutes=60)
    email = templates.render_email("en", vals)
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert 'href="https://v.example/j?a=1&amp;b=&quot;2&quot;"' in email.html
    assert "A &amp; B &lt;Vets&gt;<br>\n1" in email.html
    assert '<script>alert("x")</script>' in email.text
    assert "A & B <Vets>\n1\n" in email.text  # empty contact fields leave no blank lines


def test_names_cannot_break_into_new_lines():
    appt = appointment(name="Eve\r\nBcc: all@example.org", language="en")
    vals = templates.values("en", appt, department(), early_minutes=60)
    assert vals["client_name"] == "Eve Bcc: all@example.org"
    assert "\n" not in templates.render_email("en", vals).subject
