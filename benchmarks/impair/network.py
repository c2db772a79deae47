"""Impairing one party's path in a private network namespace: nftables and tc, never netem.

This kernel has no netem (testing-webrtc-here.md, "Impairing the network"). What works:
- random loss: an nftables rule on the **input** hook, ``numgen random mod 100 < N drop``
  (a drop on output would make the sender's sendto fail instead of losing the datagram);
- shaping (a cap with a queue, delay builds up): an htb class on ``lo`` egress holding a
  bfifo sized to ``queue_ms`` of the rate, selected by a u32 filter on the UDP port;
- policing (a cap without a queue), two kinds:
  - by default nftables' ``limit rate over B bytes/second burst K bytes drop`` on input, whose
    bucket is one second of the rate plus K (nft_limit counts in its unit, the second): it
    lets about a second of anything through (a keyframe burst, a probe, a switch up) before
    it drops. Issue 13's figures were measured with it.
  - with ``burst_ms`` set, a strict policer: the htb class above with a token bucket of
    ``burst_ms`` of the rate and a bfifo of one datagram, so what the bucket does not cover
    is dropped (tc's police action, which would police on input, is not in this kernel).
    At 150 kbit/s and 100 ms that is 1,875 bytes: a keyframe's burst is mostly dropped.
Every party and the SFU share 127.0.0.1 inside the namespace, so a direction of one party's
path is its UDP port: ``down`` (what it receives) matches ``udp dport``, ``up`` (what it sends)
``udp sport``. Added delay is not a kernel feature here: parties add it themselves
(``Link.delay_ms``: Chromium's WebRTC-FakeNetwork field trials, see pages.py).

Every command refuses to run in the machine's root network namespace: other work on the same
machine uses it. ``private()`` tells; ``enter_private()`` re-executes the current command
under ``unshare -n`` (root) with only ``lo`` up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

TABLE = "tvimpair"
HTB_DEFAULT = 1  # unshaped traffic: a class at line rate
DATAGRAM_BYTES = 1600  # a strict policer's queue: the datagram being sent, no more
NFT_BURST_MS = 100  # the nftables policer's burst, on top of its second


class NotPrivate(RuntimeError):
    """A network change was asked for outside a private namespace."""


ROOT_NETNS_ENV = "TELEVISIT_IMPAIR_ROOT_NETNS"


def _netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def private() -> bool:
    """True in a network namespace that ``enter_private`` made (its parent's namespace is
    recorded before the switch: /proc/1 is not readable in every container)."""
    root = os.environ.get(ROOT_NETNS_ENV)
    return root is not None and int(root) != _netns()


def enter_private() -> None:
    """Re-run this process's command line inside a new network namespace with ``lo`` up
    (needs root; returns only inside the namespace)."""
    if private():
        return
    if ROOT_NETNS_ENV in os.environ:
        raise NotPrivate("unshare -n did not give this process a namespace of its own")
    if os.geteuid() != 0:
        raise NotPrivate("the impairment harness needs root (unshare -n, nft, tc)")
    os.environ[ROOT_NETNS_ENV] = str(_netns())
    script = 'ip link set lo up && exec "$@"'
    argv = ["unshare", "-n", "sh", "-c", script, "sh", sys.executable, *sys.orig_argv[1:]]
    os.execvp("unshare", argv)


def _run(argv: list[str]) -> None:
    if not private():
        raise NotPrivate(f"refusing to run {argv[0]} in the root network namespace")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Link:
    """What one direction of one party's path does to its packets.

    ``loss_pct``: random loss, percent. ``police_kbps``: packets over this rate are dropped
    (no queue; a bucket of ``burst_ms`` of the rate, or nftables' second and 100 ms when
    None: see the module docstring). ``shape_kbps``: packets over this rate wait in
    a queue of ``queue_ms`` (dropped when it is full). ``delay_ms``: added one-way delay, applied
    by the party itself (fixed for a call).
    """

    loss_pct: float = 0.0
    police_kbps: int | None = None
    shape_kbps: int | None = None
    queue_ms: int = 400
    burst_ms: int | None = None
    delay_ms: int = 0

    def describe(self) -> str:
        parts = []
        if self.loss_pct:
            parts.append(f"{self.loss_pct:g}% loss")
        if self.police_kbps:
            parts.append(f"policed {self.police_kbps} kbit/s")
        if self.shape_kbps:
            parts.append(f"shaped {self.shape_kbps} kbit/s, {self.queue_ms} ms queue")
        if self.delay_ms:
            parts.append(f"+{self.delay_ms} ms")
        return ", ".join(parts) or "clean"


CLEAN = Link()


class Impairments:
    """The nftables table and tc classes of one run; ``set(port, direction, link)`` replaces
    what applies to that port and direction (``CLEAN`` removes it)."""

    def __init__(self, device: str = "lo") -> None:
        self.device = device
        self.links: dict[tuple[int, str], Link] = {}
        self._classes: dict[tuple[int, str], int] = {}
        self._next_class = 10
        _run(["nft", "add", "table", "inet", TABLE])
        _run(["nft", "add", "chain", "inet", TABLE, "input",
              "{ type filter hook input priority 0; policy accept; }"])  # fmt: skip
        _run(["tc", "qdisc", "replace", "dev", device, "root", "handle", "1:", "htb",
              "default", str(HTB_DEFAULT), "r2q", "1000"])  # fmt: skip
        _run(["tc", "class", "add", "dev", device, "parent", "1:", "classid",
              f"1:{HTB_DEFAULT}", "htb", "rate", "10gbit"])  # fmt: skip

    def set(self, port: int, direction: str, link: Link) -> None:
        if direction not in ("up", "down"):
            raise ValueError(f"direction is up or down, not {direction!r}")
        self.links[(port, direction)] = link
        self._apply_nft()
        self._apply_tc(port, direction, link)

    def _apply_nft(self) -> None:
        rules = []
        for (port, direction), link in sorted(self.links.items()):
            match = f"udp {'dport' if direction == 'down' else 'sport'} {port}"
            if link.loss_pct:
                per_mille = round(link.loss_pct * 10)
                rules.append(f"add rule inet {TABLE} input {match} numgen random mod 1000 < {per_mille} drop")  # fmt: skip
            if link.police_kbps and link.burst_ms is None:
                rate = link.police_kbps * 1000 // 8
                burst = max(3000, rate * NFT_BURST_MS // 1000)
                rules.append(f"add rule inet {TABLE} input {match} limit rate over {rate} bytes/second burst {burst} bytes drop")  # fmt: skip
        script = f"flush chain inet {TABLE} input\n" + "\n".join(rules) + "\n"
        if not private():
            raise NotPrivate("refusing to run nft in the root network namespace")
        done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True,
                              timeout=20)  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"nft: {done.stderr.strip()}\n{script}")

    def _apply_tc(self, port: int, direction: str, link: Link) -> None:
        key = (port, direction)
        classid = self._classes.get(key)
        if link.police_kbps and link.shape_kbps:
            raise ValueError("a link is policed or shaped, not both")
        strict = link.police_kbps if link.burst_ms is not None else None
        kbps = strict or link.shape_kbps
        if not kbps:
            if classid is not None:
                _run(["tc", "filter", "del", "dev", self.device, "parent", "1:", "prio",
                      str(classid)])  # fmt: skip
                _run(["tc", "class", "del", "dev", self.device, "classid", f"1:{classid}"])
                del self._classes[key]
            return
        bytes_per_second = kbps * 1000 // 8
        htb = ["htb", "rate", f"{kbps}kbit", "ceil", f"{kbps}kbit"]
        if strict and link.burst_ms is not None:
            bucket = max(DATAGRAM_BYTES, bytes_per_second * link.burst_ms // 1000)
            htb += ["burst", str(bucket), "cburst", str(bucket)]
            limit = DATAGRAM_BYTES  # no queue: over the bucket is dropped
        else:
            limit = max(3000, bytes_per_second * link.queue_ms // 1000)
        verb = "add" if classid is None else "change"
        if classid is None:
            classid = self._classes[key] = self._next_class
            self._next_class += 1
        _run(["tc", "class", verb, "dev", self.device, "parent", "1:", "classid",
              f"1:{classid}", *htb])  # fmt: skip
        _run(["tc", "qdisc", verb, "dev", self.device, "parent", f"1:{classid}", "handle",
              f"{classid}:", "bfifo", "limit", str(limit)])  # fmt: skip
        if verb == "add":
            field = "dport" if direction == "down" else "sport"
            _run(["tc", "filter", "add", "dev", self.device, "parent", "1:", "prio",
                  str(classid), "protocol", "ip", "u32", "match", "ip", field, str(port),
                  "0xffff", "flowid", f"1:{classid}"])  # fmt: skip

    def clear(self) -> None:
        """Remove every impairment (the table and the qdisc)."""
        self.links.clear()
        self._classes.clear()
        if not private():
            return
        subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, timeout=20)
        subprocess.run(["tc", "qdisc", "del", "dev", self.device, "root"], capture_output=True,
                       timeout=20)  # fmt: skip
