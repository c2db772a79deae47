"""`televisit serve` nodes as child processes for the cluster tests: any roles, on a chosen
loopback address (127.0.0.2, 127.0.0.3 are this machine too), SQLite or a shared Redis, their
worker processes found in the log ("SFU worker started": id, pid, URL)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from tests.web.server import ROOT, START_SECONDS, LiveServer

# Nodes of one cluster verify each other's tokens: one shared secret.
SHARED_SECRETS = {
    "TELEVISIT__TOKENS__SECRETS": '{k1 = "cluster-test-secret-0123456789abcdef"}',
    "TELEVISIT__TOKENS__ACTIVE_KID": "k1",
}


@dataclass
class Node(LiveServer):
    name: str = "node"
    host: str = "127.0.0.1"
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            {
                "TELEVISIT__SERVER__HOST": self.host,
                "TELEVISIT__MEDIA__LISTEN_ADDRESSES": f'["{self.host}"]',
                "TELEVISIT__MEDIA__SIGNALING_PORT": "0",
                "TELEVISIT__CLUSTER__NODE_ID": self.name,
                **SHARED_SECRETS,
                **self.extra,
            }
        )
        return env

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("w"),
            text=True,
        )
        deadline = time.monotonic() + START_SECONDS
        while not self.logged("serving"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)
        if self.env()["TELEVISIT__STORE__BACKEND"] == "sqlite" and "control" in self.roles:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                found = re.search(r"Demo API key:\s+(\S+)", line)
                if found:
                    self.api_key = found.group(1)
                    break

    @property
    def roles(self) -> str:
        return self.extra.get("TELEVISIT__CLUSTER__ROLES", "control,sfu")

    def admin(self, *args: str) -> Any:
        """`televisit admin ...` with this node's settings; its JSON output."""
        out = subprocess.run(
            [sys.executable, "-m", "control.cli", "admin", *args],
            cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its supervisor) is not alive either.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"
