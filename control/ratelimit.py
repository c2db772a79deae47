"""Throttling PIN guessing without locking out the clients who hold a real PIN.

A link's token needs no guessing protection (it is signed): only PIN joins come here, and the
body is read before anything is decided. Wrong PINs and PIN attempts are separate budgets:

1. ``join.per_ip_per_minute`` PIN attempts per client address, whatever their outcome
   (a token bucket, burst the same).
2. ``join.failed_per_ip_per_hour`` wrong PINs per client address (token bucket, burst the
   same). An address that spent it is refused before its PIN is looked up.
3. ``join.failed_per_minute`` wrong PINs for the whole deployment, counted in the store (every
   node shares it) per clock minute. While a minute's budget lasts, PINs are looked up.
4. Once it is spent, only addresses without a wrong PIN on record (a client arriving with its
   real PIN) are still looked up, ``join.fresh_per_minute`` of them per minute for the whole
   deployment; every other PIN attempt gets 429 until the next minute.

Why this bounds guessing whatever the number of addresses: a guess can only hit when it is
looked up, and a looked-up guess that misses is charged to (3) or (4), whose sums are fixed
per minute. So in a day at most ``(failed_per_minute + fresh_per_minute) * 1440`` wrong
guesses are looked up, and with L live PINs among 10^digits the chance that any of them hits
is ``1 - (1 - L / 10^digits) ** that`` (``risk_per_day``). Defaults: 11 digits, 500 + 50 per
minute: 792,000 looked-up guesses a day, at 1,000 live PINs 1 - (1 - 1e-8)^792000 = 0.79 %.
One address alone gets 5 wrong PINs an hour: 120 a day, 1.2e-6 at 1,000 live PINs.

Why legitimate joins go through: a flood from N addresses spends only their own budgets (2)
once each has 5 misses, so (3) lasts unless N * 5 per hour approaches 500 per minute, i.e.
6,000 addresses (IPv6: /64s) guessing at once; even then a client whose address never missed
is looked up in (4). Only a flood that also burns more than 50 fresh addresses a minute can
keep a PIN-only client waiting (link joins are never affected); it cannot make it hit.

In-flight lookups are charged when they finish, so concurrent requests can overshoot a
minute's budget by at most the requests in flight; per-address records are kept for at most
``MAX_ADDRESSES`` addresses and dropped once their buckets are full again (forgetting an
address only ever gives it its full budget back, it never blocks anyone else).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from config.settings import JoinSettings, Settings
from control.store import AlreadyExists, NotFound, Store, VersionConflict

KIND = "guessbudget"
SLOTS = 60  # one record per minute of the last hour, reused an hour later
WRITE_ATTEMPTS = 8
MAX_ADDRESSES = 100_000


@dataclass
class Bucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    stamp: float | None = None

    def refill(self, now: float) -> None:
        if self.stamp is not None and now > self.stamp:  # a clock stepping back refills nothing
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        if self.stamp is None or now > self.stamp:
            self.stamp = now

    def wait(self, now: float) -> float:
        """0 when a token is there, else seconds until one is."""
        self.refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> float:
        """Take one token; return 0 on success, else seconds until one is available."""
        wait = self.wait(now)
        if not wait:
            self.tokens -= 1.0
        return wait

    def full(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= self.burst


@dataclass
class Address:
    attempts: Bucket
    failures: Bucket

    def idle(self, now: float) -> bool:
        return self.attempts.full(now) and self.failures.full(now)


class Addresses:
    """Per-address buckets (see the module), least recently seen first; bounded memory."""

    def __init__(self, settings: JoinSettings, max_addresses: int = MAX_ADDRESSES) -> None:
        self.settings = settings
        self.max_addresses = max_addresses
        self.known: OrderedDict[str, Address] = OrderedDict()

    def get(self, key: str, now: float) -> Address:
        self._forget(now)
        found = self.known.get(key)
        if found is not None:
            self.known.move_to_end(key)
            return found
        per_minute = float(self.settings.per_ip_per_minute)
        per_hour = float(self.settings.failed_per_ip_per_hour)
        found = Address(
            attempts=Bucket(per_minute / 60.0, per_minute, per_minute),
            failures=Bucket(per_hour / 3600.0, per_hour, per_hour),
        )
        self.known[key] = found
        if len(self.known) > self.max_addresses:
            self.known.popitem(last=False)
        return found

    def _forget(self, now: float) -> None:
        """Drop least recently seen addresses whose buckets are full again (a few per call)."""
        for _ in range(2):
            if not self.known:
                return
            key, oldest = next(iter(self.known.items()))
            if not oldest.idle(now):
                return
            del self.known[key]


class GuessBudget:
    """The deployment's wrong-guess budget per clock minute, kept in the store so every node
    spends the same one: record ``<kind>/<minute % 60>`` = {minute, failed, fresh}."""

    def __init__(self, store: Store, settings: JoinSettings, kind: str = KIND) -> None:
        self.store = store
        self.settings = settings
        self.kind = kind

    async def spent(self, now: float) -> tuple[bool, bool]:
        """(wrong-PIN budget spent, fresh-address budget spent) for this minute."""
        minute = int(now // 60)
        record = await self.store.get(self.kind, str(minute % SLOTS))
        if record is None or record.data["minute"] != minute:
            return False, False
        return (
            record.data["failed"] >= self.settings.failed_per_minute,
            record.data["fresh"] >= self.settings.fresh_per_minute,
        )

    async def charge(self, now: float, what: str) -> None:
        """Count one ``failed`` (a looked-up wrong PIN) or ``fresh`` (a lookup past the spent
        wrong-PIN budget) in this minute."""
        minute = int(now // 60)
        slot = str(minute % SLOTS)
        for _ in range(WRITE_ATTEMPTS):
            record = await self.store.get(self.kind, slot)
            if record is None or record.data["minute"] != minute:
                data = {"minute": minute, "failed": 0, "fresh": 0}
            else:
                data = dict(record.data)
            data[what] += 1
            try:
                if record is None:
                    await self.store.create(self.kind, slot, data)
                else:
                    await self.store.update(self.kind, slot, data, expect_version=record.version)
                return
            except (VersionConflict, NotFound, AlreadyExists):
                continue  # another node counted meanwhile: read again
        # Lost every race: others are counting in the same minute; one missed count stays
        # within the in-flight overshoot the module's docstring allows.


class Refused(Exception):
    """A PIN attempt refused before lookup; ``retry_after`` whole seconds (>= 1)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:g} s")
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class Admitted:
    """A PIN attempt that may be looked up; tell the limiter how it went with ``failed``."""

    key: str
    address: Address


class JoinLimiter:
    """The PIN-guessing budgets of the module's docstring; the staff app's one-time login keys
    have the same shape of guessing and so the same budgets (their own amounts, store ``kind``
    and per-address records: control/mobile/loginkeys.py)."""

    def __init__(
        self,
        settings: JoinSettings,
        store: Store,
        *,
        max_addresses: int = MAX_ADDRESSES,
        kind: str = KIND,
    ) -> None:
        self.settings = settings
        self.addresses = Addresses(settings, max_addresses)
        self.budget = GuessBudget(store, settings, kind)
        self.refused = 0

    async def admit(self, key: str, now: float) -> Admitted:
        """May the client ``key`` have its PIN looked up now? Raises Refused."""
        address = self.addresses.get(key, now)
        try:
            wait = address.attempts.take(now)
            if wait:
                raise Refused(wait)
            wait = address.failures.wait(now)
            if wait:
                raise Refused(wait)
            failed_spent, fresh_spent = await self.budget.spent(now)
            if failed_spent:
                # Past the deployment's wrong-PIN budget only clean addresses are looked up.
                if fresh_spent or not address.failures.full(now):
                    raise Refused(60 - now % 60)
                await self.budget.charge(now, "fresh")
        except Refused:
            self.refused += 1
            raise
        return Admitted(key, address)

    async def failed(self, admitted: Admitted, now: float) -> None:
        """The looked-up PIN was wrong: charge the address and the deployment."""
        admitted.address.failures.take(now)
        await self.budget.charge(now, "failed")


def looked_up_per_day(settings: JoinSettings) -> int:
    """The most wrong PINs the whole deployment looks up in a day (see the module)."""
    return (settings.failed_per_minute + settings.fresh_per_minute) * 1440


def risk_per_day(settings: Settings, live_pins: int) -> float:
    """Chance that at least one guess in a day hits one of ``live_pins`` PINs."""
    p_hit = live_pins / 10**settings.pins.digits
    return 1.0 - (1.0 - p_hit) ** looked_up_per_day(settings.join)
