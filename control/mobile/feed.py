"""The organization's change feed: every record the staff app syncs is written ``sequenced``
into one index per organization (control/store/base.py), so a device holding the number of
the last change it saw asks only for later ones. Appointments (control/appointments.py) and the
mobile records, notes and stock items all write into it."""

from __future__ import annotations


def feed_index(org_id: str) -> str:
    return f"mobile:feed:{org_id}"
