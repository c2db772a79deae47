"""Demo staff of the embedded default's demo organization, printed at start.

Like the demo API key, passwords are stored hashed and cannot be shown again, so each start
gives the demo accounts fresh passwords (their open sessions and stations stay signed in).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from control.clinic import accounts
from control.store import Store

DEMO_STAFF = (
    ("demo.provider", "Dr Demo Provider", ("provide", "mobile")),
    ("demo.station", "Demo exam room (requester)", ("request",)),
    ("demo.admin", "Demo administrator", ("administer", "request", "provide", "mobile")),
)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    groups: tuple[str, ...]


async def ensure_demo_staff(store: Store, org_id: str) -> list[DemoLogin]:
    out = []
    for username, name, groups in DEMO_STAFF:
        password = secrets.token_urlsafe(9)
        rec = await store.get_by_claim(f"staff-username:{username}")
        if rec is None:
            await accounts.create_staff(
                store, org_id, username=username, display_name=name, password=password,
                groups=groups,
            )  # fmt: skip
        elif rec.data["org_id"] == org_id:
            await accounts.update_staff(store, rec.id, password=password, groups=list(groups))
        else:
            continue  # the name belongs to a real account elsewhere: leave it alone
        out.append(DemoLogin(username, password, groups))
    return out


def banner_lines(base_url: str, logins: list[DemoLogin]) -> list[str]:
    lines = [f"  Virtual clinic demo (sign in at {base_url}/clinic/, fresh passwords each start):"]
    lines += [f"    {d.username:<14} {d.password:<14} {', '.join(d.groups)}" for d in logins]
    return lines
