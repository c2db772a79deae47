"""Token buckets against guessing: one per client address and one for the whole node."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Bucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    stamp: float | None = None

    def take(self, now: float) -> float:
        """Take one token; return 0 on success, else seconds until one is available."""
        if self.stamp is not None and now > self.stamp:  # a clock stepping back refills nothing
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        if self.stamp is None or now > self.stamp:
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class JoinLimiter:
    """``per_ip_per_minute`` attempts per address (burst the same) and ``global_per_second``
    for everyone (burst one second's worth). Remembers at most ``max_addresses`` addresses;
    the least recently seen are forgotten first, which can only ever give an address a full
    bucket back, never block anyone else."""

    def __init__(
        self, per_ip_per_minute: int, global_per_second: int, *, max_addresses: int = 100_000
    ) -> None:
        self.per_ip_rate = per_ip_per_minute / 60.0
        self.per_ip_burst = float(per_ip_per_minute)
        self.everyone = Bucket(global_per_second, global_per_second, global_per_second)
        self.addresses: OrderedDict[str, Bucket] = OrderedDict()
        self.max_addresses = max_addresses
        self.refused = 0

    def check(self, address: str, now: float) -> int:
        """0 when allowed, else the Retry-After in whole seconds (at least 1)."""
        bucket = self.addresses.get(address)
        if bucket is None:
            bucket = Bucket(self.per_ip_rate, self.per_ip_burst, self.per_ip_burst)
            self.addresses[address] = bucket
            if len(self.addresses) > self.max_addresses:
                self.addresses.popitem(last=False)
        else:
            self.addresses.move_to_end(address)
        wait = bucket.take(now)
        if not wait:
            wait = self.everyone.take(now)
            if wait:
                bucket.tokens += 1.0  # the address did not get through; give its token back
        if wait:
            self.refused += 1
            return max(1, math.ceil(wait))
        return 0
