"""PIN guessing budgets (control/ratelimit.py) tried from many client addresses: each loopback
address 127.0.0.x is a client of its own, so a limiter that put everyone in one bucket, never
forgot an address, believed any X-Forwarded-For or throttled link joins fails here
(issue 12 items 10 and 11, "Tests that must be able to fail")."""

from __future__ import annotations

import ipaddress
import logging
from datetime import timedelta
from typing import Any

import pytest

from config import load_settings
from control import clientaddr, ratelimit
from control.services import SERVICES

from .helpers import BASE, appointment_body, token_of

LIMITS = {
    "per_ip_per_minute": 100,
    "failed_per_ip_per_hour": 3,
    "failed_per_minute": 200,
    "fresh_per_minute": 2,
}
SMALL = {"join": {**LIMITS, "failed_per_minute": 12}}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"join": LIMITS}


@pytest.fixture
async def appt(client, auth, department, clock):
    resp = await client.post(
        "/api/v1/appointments", json=appointment_body(department["id"]), headers=auth
    )
    assert resp.status == 201
    clock.set(BASE)
    return await resp.json()


def wrong(settings, n: int, real: str) -> str:
    pin = str(n).zfill(settings.pins.digits)
    assert pin != real
    return pin


async def test_each_address_has_its_own_failure_budget(appt, from_address, settings):
    real = appt["telemedicine"]["pin"]
    for last in (2, 3, 4):
        address = f"127.0.0.{last}"
        statuses = [
            await from_address(address, {"pin": wrong(settings, n, real)}) for n in range(5)
        ]
        assert statuses == [404, 404, 404, 429, 429], (address, statuses)
    # Even the right PIN waits on an address that spent its budget...
    assert await from_address("127.0.0.2", {"pin": real}) == 429
    # ...while an address that never guessed gets in at once.
    assert await from_address("127.0.0.5", {"pin": real}) == 200


async def flood(from_address, settings, real: str, addresses: range) -> list[int]:
    statuses = []
    for last in addresses:
        for n in range(4):
            pin = wrong(settings, n, real)
            statuses.append(await from_address(f"127.0.0.{last}", {"pin": pin}))
    return statuses


async def test_a_guessing_flood_locks_out_neither_pins_nor_links(appt, from_address, settings):
    """Issue 12 item 11: 49 addresses guess until refused (each after its own 3 misses); a
    client with the real PIN gets in on its first try, and link joins from the flooding
    addresses too."""
    real = appt["telemedicine"]["pin"]
    statuses = await flood(from_address, settings, real, range(10, 59))
    assert statuses == [404, 404, 404, 429] * 49
    assert await from_address("127.0.0.201", {"pin": real}) == 200
    link = {"token": token_of(appt["telemedicine"]["token_url"])}
    assert [await from_address(f"127.0.0.{n}", link) for n in (10, 11, 58)] == [200] * 3


@pytest.mark.parametrize("settings_overrides", [SMALL])
async def test_past_the_deployment_budget_only_clean_addresses_are_looked_up(
    appt, from_address, settings
):
    """With the wrong-PIN budget spent (12 a minute here), flooders that missed are refused
    before lookup whatever PIN they send, and clean addresses share a small fresh lane (2 a
    minute): a bounded number of lookups, whatever the number of addresses."""
    real = appt["telemedicine"]["pin"]
    statuses = await flood(from_address, settings, real, range(10, 14))
    assert statuses == [404, 404, 404, 429] * 4  # 12 looked up: the budget is spent
    assert await from_address("127.0.0.10", {"pin": real}) == 429  # it missed: refused
    assert await from_address("127.0.0.201", {"pin": real}) == 200  # fresh lane 1
    assert await from_address("127.0.0.202", {"pin": wrong(settings, 9, real)}) == 404  # 2
    assert await from_address("127.0.0.203", {"pin": real}) == 429  # the lane is spent


@pytest.mark.parametrize("settings_overrides", [SMALL])
async def test_the_budget_is_shared_by_every_node_and_renews_each_minute(
    appt, make_client, store, settings, clock
):
    real = appt["telemedicine"]["pin"]
    nodes = [await make_client(store), await make_client(store)]
    statuses = []
    for n in range(16):
        node = nodes[n % 2]
        # A different (proxy-free, test-client) address per request: only the shared
        # deployment budget can refuse these.
        limiter = node.app[SERVICES].limiter
        limiter.addresses.known.clear()
        resp = await node.post("/api/v1/join", json={"pin": wrong(settings, n, real)})
        statuses.append(resp.status)
    assert statuses.count(404) == 12 + 2  # the wrong-PIN budget, then the fresh lane
    clock.set(BASE + timedelta(minutes=1))
    nodes[0].app[SERVICES].limiter.addresses.known.clear()
    assert (await nodes[0].post("/api/v1/join", json={"pin": real})).status == 200


async def test_old_addresses_are_forgotten(settings, store):
    limiter = ratelimit.JoinLimiter(settings.join, store, max_addresses=3)
    now = BASE.timestamp()
    for last in range(1, 5):
        admitted = await limiter.admit(f"10.0.0.{last}", now)
        await limiter.failed(admitted, now)
    # At most three remembered, the least recently seen gone first.
    assert list(limiter.addresses.known) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    later = now + 3600
    # Once an address's buckets are full again it is dropped as newer ones come, however
    # much room is left (here: a limiter that could remember 100).
    roomy = ratelimit.JoinLimiter(settings.join, store, max_addresses=100)
    for last in range(1, 5):
        await roomy.failed(await roomy.admit(f"10.0.0.{last}", now), now)
    await roomy.admit("10.0.1.1", now + 60)  # within the hour: nobody's budget is full yet
    assert len(roomy.addresses.known) == 5
    await roomy.admit("10.0.1.2", later)
    await roomy.admit("10.0.1.3", later)
    assert list(roomy.addresses.known) == ["10.0.1.1", "10.0.1.2", "10.0.1.3"]
    # A forgotten address starts over with its whole budget.
    for _ in range(3):
        await limiter.failed(await limiter.admit("10.0.0.1", later), later)
    with pytest.raises(ratelimit.Refused):
        await limiter.admit("10.0.0.1", later)


async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted_and_logged(
    appt, from_address, settings, make_client, store, tmp_path, caplog
):
    real = appt["telemedicine"]["pin"]
    behind = load_settings(
        environ={},
        overrides={
            **{k: v for k, v in settings.model_dump(mode="json").items() if k != "server"},
            "server": {
                **settings.model_dump(mode="json")["server"],
                "trusted_proxies": ["127.0.0.1/32", "10.9.0.0/16"],
            },
        },
    )
    proxy = await make_client(store, settings=behind)

    async def via_proxy(forwarded: str, pin: str) -> int:
        resp = await proxy.post(
            "/api/v1/join", json={"pin": pin}, headers={"X-Forwarded-For": forwarded}
        )
        return resp.status

    # Two clients behind the proxy: their own budgets (a spoofed left-most entry is ignored).
    with caplog.at_level(logging.INFO, logger="televisit.access"):
        first = [
            await via_proxy(f"6.6.6.{n}, 203.0.113.5", wrong(settings, n, real)) for n in range(4)
        ]
        assert first == [404, 404, 404, 429]
        assert await via_proxy("203.0.113.6, 10.9.1.1", wrong(settings, 7, real)) == 404
        assert await via_proxy("2001:db8:1:2::7", wrong(settings, 8, real)) == 404
    # The request log names the client the limiter counted, not the proxy (an IPv6 one whole).
    remotes = [r.remote for r in caplog.records if r.name == "televisit.access"]
    assert remotes == ["203.0.113.5"] * 4 + ["203.0.113.6", "2001:db8:1:2::7"]
    # An untrusted sender's X-Forwarded-For is ignored: it cannot pose as many clients.
    statuses = [
        await from_address(
            "127.0.0.7", {"pin": wrong(settings, n, real)}, {"X-Forwarded-For": f"198.51.100.{n}"}
        )
        for n in range(5)
    ]
    assert statuses == [404, 404, 404, 429, 429]


def test_ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4():
    key = clientaddr.key_of
    ip = ipaddress.ip_address
    assert key(ip("2001:db8:1:2::1")) == key(ip("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    assert key(ip("2001:db8:1:3::1")) != key(ip("2001:db8:1:2::1"))
    assert clientaddr._address("::ffff:192.0.2.7") == ip("192.0.2.7")
    assert clientaddr._address("[2001:db8::1]:443") == ip("2001:db8::1")
    assert clientaddr._address("192.0.2.7:80") == ip("192.0.2.7")
    assert clientaddr._address("garbage") is None


def test_the_defaults_meet_the_guessing_target():
    """At 1,000 live PINs, under 1 % a day that any guess hits, however many addresses."""
    defaults = load_settings(environ={})
    risk = ratelimit.risk_per_day(defaults, live_pins=1000)
    assert risk < 0.01
    assert risk == pytest.approx(0.0079, abs=0.0001)
