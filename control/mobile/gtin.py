"""GTIN barcodes (EAN-8, UPC-A, EAN-13, GTIN-14): digits with a GS1 mod-10 check digit.

GS1 General Specifications, section 7.9.1: from the right, excluding the check digit, digits
are weighted 3, 1, 3, 1...; the check digit brings the sum to a multiple of 10.
"""

from __future__ import annotations

LENGTHS = (8, 12, 13, 14)


def check_digit(body: str) -> int:
    """The check digit of ``body`` (the GTIN without its last digit)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalize(code: str) -> str:
    """``code`` as GTIN-14 (left-padded with zeros), so one product has one key whichever
    symbology printed it. ValueError says what is wrong: not digits, a length other than 8,
    12, 13 or 14, or a wrong check digit."""
    code = code.strip()
    if not code.isascii() or not code.isdigit():
        raise ValueError("a barcode is digits only (GTIN: EAN-8, UPC-A, EAN-13 or GTIN-14)")
    if len(code) not in LENGTHS:
        raise ValueError(f"a GTIN has 8, 12, 13 or 14 digits, not {len(code)}")
    if check_digit(code[:-1]) != int(code[-1]):
        raise ValueError("the check digit is wrong: mistyped or misread")
    return code.zfill(14)
