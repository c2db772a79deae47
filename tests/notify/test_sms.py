"""The SMS: GSM 7-bit only, one 160-character segment in en, fi and sv for ordinary clinic
and client names, the short link, and the clinic's local time with its zone.

Segments are counted by control/notify/gsm.py with the real rules (3GPP TS 23.038 tables from
the gsm0338 codec, TS 23.040 concatenation); the first test pins those rules down."""

from __future__ import annotations

import pytest

from config import load_settings
from control.notify import gsm, templates

from .helpers import appointment, department

BASE_URL = "https://televisit.example.com"
PIN = "7" * load_settings(environ={}).pins.digits  # as long as the PINs the SMS carries
# Ordinary names (up to 28 characters), with the letters Finnish and Swedish need.
CLINICS = [
    "Kallio Vet",
    "Eläinklinikka Kärpänen",
    "Kallion Eläinlääkäriasema Oy",
    "Djursjukhuset Södermalm AB",
    "Åbo Smådjursklinik",
    "ÄÖÅ-klinikka Öljymäki",
]
CLIENTS = ["Anna", "Åsa Öberg", "Matti Meikäläinen", "Ülle Õunapuu", "Seán O'Brien"]


def test_segment_rules():
    seg = gsm.segments
    assert seg("a" * 160) == gsm.Segments("gsm7", 1, 160)
    assert seg("a" * 161) == gsm.Segments("gsm7", 2, 161)
    assert seg("a" * 306).count == 2 and seg("a" * 307).count == 3  # 153 per part
    # ä ö å Ä Ö Å are single septets of the basic set.
    assert seg("äöåÄÖÅ" * 26 + "ab") == gsm.Segments("gsm7", 1, 158)
    # The extension table costs two septets: 80 euro signs fill one segment, 81 do not.
    assert seg("€" * 80) == gsm.Segments("gsm7", 1, 160)
    assert seg("€" * 81).count == 2
    assert seg("{}[]~^|\\").units == 16
    # An ESC pair is not split: 152 + the pair would straddle the 153-septet boundary.
    assert seg("a" * 152 + "€" + "a" * 10).count == 2
    assert seg("a" * 152 + "€" + "a" * 160).count == 3
    # One character outside the alphabet makes the whole message UCS-2 (70 / 67).
    assert seg("a" * 100 + "–") == gsm.Segments("ucs2", 2, 101)
    assert seg("–" * 70) == gsm.Segments("ucs2", 1, 70)
    assert seg("–" * 134).count == 2 and seg("–" * 135).count == 3


def test_names_are_respelled_into_the_gsm_alphabet():
    assert gsm.to_gsm("Äiti Åsa Öberg") == "Äiti Åsa Öberg"
    assert gsm.to_gsm("Łódź – “Vet” … Çelik ç") == 'Lodz - "Vet" ... Çelik c'
    assert gsm.to_gsm("Dog 🐶 clinic") == "Dog ? clinic"
    assert gsm.septet_costs(gsm.to_gsm("Ž Ő ā ø ß € 😀 \u00a0")) is not None


@pytest.mark.parametrize("lang", ["en", "fi", "sv"])
def test_templates_use_only_gsm_characters(lang):
    text = templates.template(lang, "sms.txt").template
    assert gsm.septet_costs(text) is not None, text
    assert gsm.septet_costs(templates.calendar(lang)["sms_when"]) is not None
    for names in ("weekdays_short", "months_short"):
        assert all(gsm.septet_costs(n) is not None for n in templates.calendar(lang)[names])


def _sms(lang: str, clinic: str, client: str, start: str, zone: str) -> str:
    appt = appointment(name=client, language=lang)
    appt["start"], appt["end"] = start, start.replace("T14:", "T15:")
    appt["telemedicine"]["short_url"] = f"{BASE_URL}/v/abcdefghjkmn"
    appt["telemedicine"]["pin"] = PIN
    dep = department(time_zone=zone, contact={"name": clinic, "phone": "+358912345678"})
    return templates.render_sms(lang, templates.values(lang, appt, dep, early_minutes=60))


@pytest.mark.parametrize("lang", ["en", "fi", "sv"])
@pytest.mark.parametrize("clinic", CLINICS)
def test_the_sms_fits_one_gsm_segment(lang, clinic):
    for client in CLIENTS:
        # Summer time has the longest zone name (EEST), and September the longest month.
        for start, zone in [
            ("2026-07-23T14:38:00Z", "Europe/Helsinki"),
            ("2026-09-30T14:38:00Z", "Europe/Stockholm"),
            ("2026-11-23T14:38:00Z", "UTC"),
        ]:
            sms = _sms(lang, clinic, client, start, zone)
            seg = gsm.segments(sms)
            assert seg.encoding == "gsm7" and seg.count == 1, (seg, sms)
            assert f"{BASE_URL}/v/abcdefghjkmn" in sms and PIN in sms


def test_a_name_outside_the_alphabet_keeps_the_sms_in_gsm():
    sms = _sms("fi", "Klinika Łódź – Zwierzęta 🐾", "Zoë", "2026-07-23T14:38:00Z", "UTC")
    assert gsm.segments(sms).encoding == "gsm7", sms
    assert "Klinika Lodz - Zwierzeta ?" in sms


@pytest.mark.parametrize(
    ("lang", "zone", "local"),
    [
        ("fi", "Europe/Helsinki", "to 23.7. klo 17.38 EEST"),
        ("en", "Europe/Helsinki", "Thu 23 Jul 17:38 EEST"),
        ("sv", "Europe/Stockholm", "tor 23 juli kl. 16.38 CEST"),
        ("en", "UTC", "Thu 23 Jul 14:38 UTC"),
        ("en", "Asia/Dubai", "Thu 23 Jul 18:38 UTC+04"),
    ],
)
def test_the_sms_shows_the_clinics_local_time_and_zone(lang, zone, local):
    assert local in _sms(lang, "Kallio Vet", "Anna", "2026-07-23T14:38:00Z", zone)
