"""A private network namespace for Janus: only loopback, plus a veth holding 127.0.0.1.

Janus (libnice) skips loopback interfaces when it gathers candidates; a veth whose address is
127.0.0.1 gives it one it accepts while every packet still stays on this machine. Needs root
(CAP_NET_ADMIN). ``Namespace`` is a context manager; it is also removed at exit and on SIGTERM
by the orchestrator's cleanup (cleanup.py) should the with-block never finish.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

VETH = "jv0"


class NamespaceError(RuntimeError):
    pass


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if done.returncode:
        raise NamespaceError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Namespace:
    def __init__(self) -> None:
        self.name = f"tvbench{os.getpid()}"
        self.created = False

    def __enter__(self) -> Namespace:
        if os.geteuid() != 0:
            raise NamespaceError("Janus needs a network namespace: run the benchmark as root")
        _ip("netns", "add", self.name)
        self.created = True
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "link", "add", VETH, "type", "veth", "peer", "name", "jv1")
            _ip("-n", self.name, "addr", "add", "127.0.0.1/32", "dev", VETH)
            _ip("-n", self.name, "link", "set", VETH, "up")
            _ip("-n", self.name, "link", "set", "jv1", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Deleting the namespace deletes its veth pair too."""
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
            self.created = False

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *argv]
