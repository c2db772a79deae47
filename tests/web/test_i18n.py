"""The strings of the visit page and of the virtual clinic dashboards: English, Finnish and
Swedish have the same keys and placeholders, every key a page uses exists, every key that
exists is used, nothing is left in English."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from control.clinic.pages import WEB_DIR as CLINIC_DIR
from control.mobile.pages import WEB_DIR as STAFF_DIR
from control.web.pages import WEB_DIR as VISIT_DIR

LANGUAGES = ["en", "fi", "sv"]
# app -> (its folder, its markup, its scripts)
APPS = {
    "visit": (VISIT_DIR, ["visit.html"], "js/*.js"),
    "clinic": (
        CLINIC_DIR,
        ["index.html", "provider.html", "requester.html", "admin.html", "profile.html"],
        "*.js",
    ),
    "staff": (STAFF_DIR, ["index.html"], "js/*.js"),
}
# Event types of the clinic's live feed that look like keys to the scan.
NOT_KEYS = {"provider.availability"}
# Words that are the same in English and the other language, checked by hand.
SAME_AS_ENGLISH = {
    ("visit", "fi"): {"controls.chat", "chat.title"},
    ("visit", "sv"): {"header.patient"},
    ("clinic", "fi"): set(),
    ("clinic", "sv"): {"nav.admin"},
    ("staff", "fi"): {"scan.item", "pending.scan", "conflict.by", "agenda.telemedicine"},
    ("staff", "sv"): {"scan.item", "pending.scan", "conflict.by", "note.by", "appt.patient"},
}


def strings(app: str, lang: str) -> dict[str, str]:
    folder = APPS[app][0]
    return json.loads((folder / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def used_keys(app: str) -> set[str]:
    """Keys named in the markup (data-i18n*, data-title) and string literals in the scripts
    that look like keys of a known section (scripts only ever spell keys out literally)."""
    folder, pages, scripts = APPS[app]
    used: set[str] = set()
    for page in pages:
        html = (folder / page).read_text(encoding="utf-8")
        used |= set(re.findall(r'data-(?:i18n(?:-aria|-placeholder)?|title)="([^"]+)"', html))
    sections = {key.split(".")[0] for key in strings(app, "en")}
    literal = re.compile(r'"((?:' + "|".join(map(re.escape, sections)) + r')\.[a-z0-9_]+)"')
    for script in sorted(Path(folder).glob(scripts)):
        used |= set(literal.findall(script.read_text(encoding="utf-8")))
    return used - NOT_KEYS


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("lang", ["fi", "sv"])
def test_same_keys_and_placeholders_as_english(app, lang):
    en, other = strings(app, "en"), strings(app, lang)
    assert sorted(set(en) - set(other)) == [], f"missing in {lang}"
    assert sorted(set(other) - set(en)) == [], f"only in {lang}"
    for key, text in en.items():
        assert placeholders(other[key]) == placeholders(text), f"{lang} {key}: {other[key]!r}"


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("lang", ["fi", "sv"])
def test_translated(app, lang):
    en, other = strings(app, "en"), strings(app, lang)
    same = {key for key in en if en[key] == other[key]}
    assert same == SAME_AS_ENGLISH[(app, lang)], f"{lang} strings still in English: {same}"


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_empty_or_untidy_strings(app, lang):
    for key, text in strings(app, lang).items():
        assert text.strip() == text and text, f"{lang} {key}: {text!r}"
        assert "<" not in text, f"{lang} {key}: strings are text, never markup"


@pytest.mark.parametrize("app", APPS)
def test_every_used_key_exists_and_every_key_is_used(app):
    used, known = used_keys(app), set(strings(app, "en"))
    assert sorted(used - known) == [], "used but not defined"
    assert sorted(known - used) == [], "defined but never used"


def test_the_key_scan_sees_the_pages():
    # Guards the scan itself: keys from markup, from t(...) calls and from key tables.
    assert {"ended.title", "waiting.for_client", "controls.unmute", "prejoin.camera_n"} <= (
        used_keys("visit")
    )
    assert {"title.admin", "login.station_placeholder", "status.away", "error.note"} <= (
        used_keys("clinic")
    )
    assert {"agenda.yesterday", "signedout.revoked", "blocked.disabled", "pending.resolve"} <= (
        used_keys("staff")
    )


def test_dashboards_spell_no_english_in_their_scripts():
    # A sentence typed into a dashboard script would stay English in fi and sv.
    for script in sorted(CLINIC_DIR.glob("*.js")):
        text = re.sub(r"//.*", "", script.read_text(encoding="utf-8"))  # comments may quote
        for quoted in re.findall(r'(?<![\w$])["`]([A-Z][a-z]+(?: [a-z]+){1,})[.!]?["`]', text):
            pytest.fail(f"{script.name}: {quoted!r} is not from the strings")
