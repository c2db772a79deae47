"""`televisit serve --host --port --data-dir --log-level`: flags over the environment over the
settings file over the defaults, a bad flag named by its key, and a real server started with
flags listening where they say."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from config import ConfigError
from control.cli import _parser, settings_from
from tests.conftest import free_port

ROOT = Path(__file__).parents[2]


def settings(argv: list[str], environ: dict[str, str]):
    return settings_from(_parser().parse_args(argv), environ)


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    config = tmp_path / "televisit.toml"
    config.write_text(
        '[server]\nhost = "10.0.0.1"\nport = 1111\ndata_dir = "/from/file"\nlog_level = "debug"\n'
    )
    env = {"TELEVISIT__SERVER__PORT": "2222", "TELEVISIT__SERVER__LOG_LEVEL": "warning"}
    base = ["--config", str(config), "serve"]

    only_file = settings(base, {}).server
    assert (only_file.host, only_file.port, only_file.log_level) == ("10.0.0.1", 1111, "debug")
    with_env = settings(base, env).server
    assert (with_env.host, with_env.port, with_env.log_level) == ("10.0.0.1", 2222, "warning")
    assert with_env.data_dir == Path("/from/file")

    flags = ["--host", "127.0.0.2", "--port", "3333", "--data-dir", str(tmp_path / "d")]
    flagged = settings([*base, *flags, "--log-level", "error"], env).server
    assert (flagged.host, flagged.port, flagged.log_level) == ("127.0.0.2", 3333, "error")
    assert flagged.data_dir == tmp_path / "d"
    # A flag not given leaves the lower layers alone.
    partial = settings([*base, "--port", "4444"], env).server
    assert (partial.host, partial.port, partial.log_level) == ("10.0.0.1", 4444, "warning")
    # No file, no environment: the defaults.
    assert settings(["serve"], {}).server.port == 8080
    # The admin commands take --data-dir too (the store they open).
    admin = settings(["admin", "--data-dir", "/srv/tv", "create-org", "--name", "X"], {})
    assert admin.server.data_dir == Path("/srv/tv")


def test_a_bad_flag_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"(?s)command line.*server\.log_level"):
        settings(["serve", "--log-level", "loud"], {})
    with pytest.raises(ConfigError, match=r"server\.port"):
        settings(["serve", "--port", "70000"], {})
    proc = subprocess.run(
        [sys.executable, "-m", "control.cli", "serve", "--port", "not-a-port"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "--port" in proc.stderr


def test_serve_listens_where_the_flags_say(tmp_path: Path) -> None:
    port, env_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "TELEVISIT__SERVER__PORT": str(env_port),  # the flag wins over this
        "TELEVISIT__MEDIA__LISTEN_ADDRESSES": '["127.0.0.1"]',
    }
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "control.cli", *argv, "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while health is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    health = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
        assert health is not None and health["status"] == "ok", proc.poll()
        assert (data_dir / "televisit.db").exists()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    # --log-level warning: no per-request info lines.
    assert '"level": "info"' not in stderr, stderr[-2000:]


@pytest.mark.parametrize("taken", ["server.port", "media.signaling_port"])
def test_a_taken_port_stops_serve_with_one_line_naming_the_setting(tmp_path: Path, taken) -> None:
    # The signaling port's was two worker tracebacks and "SFU worker 0 did not start
    # (JSONDecodeError(...))".
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        port = held if taken == "server.port" else free_port()
        env = {
            **os.environ,
            "TELEVISIT__MEDIA__WORKERS": "1",
            "TELEVISIT__MEDIA__SIGNALING_PORT": str(held if taken != "server.port" else 0),
        }
        argv = ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
                str(tmp_path / "data"), "--log-level", "warning"]  # fmt: skip
        proc = subprocess.run([sys.executable, "-m", "control.cli", *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("televisit: ")]
    assert lines and str(held) in lines[0], lines
    assert any(taken in line for line in lines), lines
