"""Settings: defaults load, file and environment override in that order, bad keys are named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings


def test_defaults_are_valid() -> None:
    s = load_settings(environ={})
    assert s.server.port == 8080
    assert s.store.backend == "sqlite"
    assert s.pins.digits == 11
    assert s.media.ice_servers == []
    assert s.sqlite_path == Path("var/televisit.db")


def test_file_then_environment_override(tmp_path: Path) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        '[server]\nport = 9000\npublic_url = "https://visit.example"\n[pins]\ndigits = 8\n'
    )
    s = load_settings(
        cfg, environ={"TELEVISIT__PINS__DIGITS": "7", "TELEVISIT__NOTIFY__SMTP__PORT": "25"}
    )
    assert s.server.port == 9000
    assert s.server.base_url == "https://visit.example"
    assert s.pins.digits == 7  # environment beats the file
    assert s.notify.smtp.port == 25
    assert s.notify.smtp.host == "127.0.0.1"  # sibling keys of a nested table survive


def test_environment_values_parse_as_toml() -> None:
    s = load_settings(
        environ={
            "TELEVISIT__MEDIA__LISTEN_ADDRESSES": '["10.1.2.3", "::1"]',
            "TELEVISIT__NOTIFY__SMTP__STARTTLS": "true",
            "TELEVISIT__SERVER__PUBLIC_URL": "https://a.example/",
        }
    )
    assert s.media.listen_addresses == ["10.1.2.3", "::1"]
    assert s.notify.smtp.starttls is True
    assert s.server.base_url == "https://a.example"


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"TELEVISIT__MEDIA__PORT_MIN": "abc"}, "media.port_min"),
        ({"TELEVISIT__MEDIA__PORT_MIN": "50000", "TELEVISIT__MEDIA__PORT_MAX": "40000"}, "media"),
        ({"TELEVISIT__MEDIA__BOGUS": "1"}, "media.bogus"),
        ({"TELEVISIT__STORE__BACKEND": "mysql"}, "store.backend"),
        ({"TELEVISIT__PINS__DIGITS": "3"}, "pins.digits"),
        (
            {"TELEVISIT__TOKENS__SECRETS": '{k1 = "short"}', "TELEVISIT__TOKENS__ACTIVE_KID": "k1"},
            "tokens",
        ),
        (
            {
                "TELEVISIT__TOKENS__SECRETS": '{k1 = "' + "x" * 40 + '"}',
                "TELEVISIT__TOKENS__ACTIVE_KID": "k2",
            },
            "tokens",
        ),
    ],
)
def test_bad_settings_name_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(environ=environ)
    assert key in str(exc.value)


def test_bad_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_cli_refuses_to_start_with_bad_settings(tmp_path: Path) -> None:
    env = {"TELEVISIT__SERVER__PORT": "not-a-port", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "control.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == 2
    assert "server.port" in proc.stderr
