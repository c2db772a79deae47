"""The visit page's strings: English, Finnish and Swedish have the same keys and placeholders,
every key the page uses exists, every key that exists is used, nothing is left in English."""

from __future__ import annotations

import json
import re

import pytest

from control.web.pages import WEB_DIR

LANGUAGES = ["en", "fi", "sv"]
# Words that are the same in English and the other language, checked by hand.
SAME_AS_ENGLISH = {
    "fi": {"controls.chat", "chat.title"},
    "sv": {"header.patient"},
}


def strings(lang: str) -> dict[str, str]:
    return json.loads((WEB_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def used_keys() -> set[str]:
    """Keys named in the markup (data-i18n*) and string literals in the scripts that look
    like keys of a known section (scripts only ever spell keys out literally)."""
    html = (WEB_DIR / "visit.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-aria|-placeholder)?="([^"]+)"', html))
    sections = {key.split(".")[0] for key in strings("en")}
    literal = re.compile(r'"((?:' + "|".join(map(re.escape, sections)) + r')\.[a-z0-9_]+)"')
    for script in sorted((WEB_DIR / "js").glob("*.js")):
        used |= set(literal.findall(script.read_text(encoding="utf-8")))
    return used


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


@pytest.mark.parametrize("lang", ["fi", "sv"])
def test_same_keys_and_placeholders_as_english(lang):
    en, other = strings("en"), strings(lang)
    assert sorted(set(en) - set(other)) == [], f"missing in {lang}"
    assert sorted(set(other) - set(en)) == [], f"only in {lang}"
    for key, text in en.items():
        assert placeholders(other[key]) == placeholders(text), f"{lang} {key}: {other[key]!r}"


@pytest.mark.parametrize("lang", ["fi", "sv"])
def test_translated(lang):
    en, other = strings("en"), strings(lang)
    same = {key for key in en if en[key] == other[key]}
    assert same == SAME_AS_ENGLISH[lang], f"{lang} strings still in English: {same}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_empty_or_untidy_strings(lang):
    for key, text in strings(lang).items():
        assert text.strip() == text and text, f"{lang} {key}: {text!r}"
        assert "<" not in text, f"{lang} {key}: strings are text, never markup"


def test_every_used_key_exists_and_every_key_is_used():
    used, known = used_keys(), set(strings("en"))
    assert sorted(used - known) == [], "used but not defined"
    assert sorted(known - used) == [], "defined but never used"


def test_the_key_scan_sees_the_page():
    # Guards the scan itself: keys from markup, from t(...) calls and from key tables.
    used = used_keys()
    assert {"ended.title", "waiting.for_client", "controls.unmute", "prejoin.camera_n"} <= used
