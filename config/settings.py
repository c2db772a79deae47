"""One typed settings schema: embedded TOML defaults < --config file < environment.

Environment overrides are TELEVISIT__SECTION__KEY (nested tables add more ``__`` parts);
values are read as TOML values when they parse (numbers, booleans, arrays) and as plain
strings otherwise.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
ENV_PREFIX = "TELEVISIT__"


class ConfigError(Exception):
    """A setting is wrong; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str
    port: int = Field(ge=0, le=65535)
    public_url: str
    data_dir: Path
    max_body_bytes: int = Field(ge=1024)
    log_level: Literal["debug", "info", "warning", "error"]
    # Logger name -> its own level, over log_level (e.g. {"televisit.adaptation" = "debug"}:
    # the SFU's per-subscriber adaptation trace).
    log_levels: dict[str, Literal["debug", "info", "warning", "error"]] = Field(
        default_factory=dict
    )
    # Reverse proxies whose X-Forwarded-For names the client (control/clientaddr.py).
    trusted_proxies: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _proxies_parse(self) -> ServerSettings:
        for spec in self.trusted_proxies:
            try:
                ipaddress.ip_network(spec, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {spec!r} is not an address or network") from exc
        return self

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(spec, strict=False) for spec in self.trusted_proxies)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


class StoreSettings(_Section):
    backend: Literal["sqlite", "redis"]
    sqlite_path: str
    redis_url: str


class TokenSettings(_Section):
    secrets: dict[str, str]
    active_kid: str
    host_ttl_hours: float = Field(gt=0)

    @model_validator(mode="after")
    def _active_kid_known(self) -> TokenSettings:
        if self.secrets and self.active_kid not in self.secrets:
            raise ValueError("active_kid must name one of tokens.secrets")
        for kid, secret in self.secrets.items():
            if len(secret) < 32:
                raise ValueError(f"secret {kid!r} must be at least 32 characters")
        return self


class PinSettings(_Section):
    digits: int = Field(ge=6, le=12)
    early_minutes: int = Field(ge=0)
    grace_minutes: int = Field(ge=0)
    # Longest appointment: bounds how long its PIN and links stay live.
    max_appointment_hours: float = Field(gt=0, le=24 * 7)


class JoinSettings(_Section):
    """PIN guessing budgets (control/ratelimit.py has what they guarantee)."""

    per_ip_per_minute: int = Field(ge=1)
    failed_per_ip_per_hour: int = Field(ge=1)
    failed_per_minute: int = Field(ge=1)
    fresh_per_minute: int = Field(ge=1)


class SmtpSettings(_Section):
    host: str
    port: int = Field(ge=1, le=65535)
    username: str
    password: str
    starttls: bool
    from_address: str


class SmsSettings(_Section):
    gateway_url: str
    api_key: str
    sender: str
    # The gateway drops a repeated Idempotency-Key (control/notify/sms.py: what changes).
    gateway_dedupes: bool = False


class NotifySettings(_Section):
    poll_seconds: float = Field(gt=0)
    max_attempts: int = Field(ge=1)
    backoff_base_seconds: float = Field(gt=0)
    backoff_max_seconds: float = Field(gt=0)
    send_timeout_seconds: float = Field(gt=0)
    smtp: SmtpSettings
    sms: SmsSettings


class IceServer(_Section):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class MediaSettings(_Section):
    listen_addresses: list[str]
    announce_address: str
    port_min: int = Field(ge=1024, le=65535)
    port_max: int = Field(ge=1024, le=65535)
    ice_servers: list[IceServer]
    connect_timeout_seconds: float = Field(gt=0)
    media_timeout_seconds: float = Field(gt=0)
    reconnect_grace_seconds: float = Field(ge=0)
    chat_max_bytes: int = Field(ge=64)
    join_timeout_seconds: float = Field(gt=0)
    # A PIN join from a second device waits this long for a host to admit it.
    admission_timeout_seconds: float = Field(default=60.0, gt=0)
    signaling_max_bytes: int = Field(ge=4096)
    room_max_participants: int = Field(ge=2, le=64)
    # The send history per subscription (rtpforward.c Outbound): sequence numbers it has slots
    # for (NACKs are answered at most the SRTP replay window, 1024, back), how long a sent
    # packet stays answerable (at least; 3 round trips when longer, as libwebrtc), and the
    # most memory its ring of packet bytes grows to.
    send_history_packets: int = Field(ge=1000, le=65536)
    send_history_ms: int = Field(ge=100, le=60000)
    send_history_max_bytes: int = Field(ge=16384, le=1 << 30)
    video_codecs: list[Literal["VP8", "H264"]] = Field(min_length=1)
    transcode: bool
    transcode_max_per_worker: int = Field(ge=0)
    workers: int = Field(ge=0, le=256)
    signaling_port: int = Field(ge=0, le=65535)
    signaling_url: str
    # Answer a publisher's simulcast offer (a=simulcast:recv): it then sends 2-3 layers and
    # each subscriber gets the one its connection carries. False: one layer (the first).
    simulcast: bool = True
    # Negotiate transport-wide congestion control with publishers (transport-cc header
    # extension and feedback, media_server/feedback.py): their send-side estimator then sees
    # the loss on their uplink. False: REMB only.
    transport_cc: bool = True
    # Negotiate transport-cc on the sections we send to subscribers too: every packet to them
    # carries our transport-wide sequence number and their feedback says when each arrived
    # (rtpforward.Departures), for a delay-based estimate of their downlink. Off until that
    # estimator (estimator.py) is measured: Chrome sends no REMB for packets that carry the
    # element, so turning it on replaces the REMB signal the downlink estimate uses today.
    downlink_transport_cc: bool = False
    # Probe a subscriber's leg with RTX padding before switching its video up to a higher
    # simulcast layer (media_server/prober.py). Off by default: in the impairment harness it
    # froze video more than blind growth did (benchmarks/RESULTS.md, "Probing").
    probing: bool = False

    @model_validator(mode="after")
    def _port_range(self) -> MediaSettings:
        if self.port_max < self.port_min:
            raise ValueError("port_max must be >= port_min")
        return self


Role = Literal["control", "sfu"]


class ClusterSettings(_Section):
    roles: list[Role] = Field(min_length=1)
    node_id: str
    heartbeat_seconds: float = Field(gt=0, le=60)
    heartbeat_ttl_seconds: float = Field(gt=0, le=600)
    drain_deadline_seconds: float = Field(ge=0)

    @model_validator(mode="after")
    def _ttl_covers_beats(self) -> ClusterSettings:
        if self.heartbeat_ttl_seconds < 2 * self.heartbeat_seconds:
            raise ValueError("heartbeat_ttl_seconds must be at least twice heartbeat_seconds")
        return self


class ClinicSettings(_Section):
    request_expiry_seconds: int = Field(ge=5)
    webhook_url: str
    webhook_secret: str
    webhook_timeout_seconds: float = Field(gt=0)
    webhook_max_attempts: int = Field(ge=1, le=20)
    sweep_seconds: float = Field(gt=0, le=60)
    login_hours: float = Field(gt=0)
    station_days: float = Field(gt=0)
    decline_note_max_chars: int = Field(ge=1, le=2000)


class MobileSettings(_Section):
    webhook_url: str
    webhook_secret: str
    login_key_minutes: float = Field(gt=0, le=1440)


class Settings(_Section):
    server: ServerSettings
    store: StoreSettings
    tokens: TokenSettings
    pins: PinSettings
    join: JoinSettings
    notify: NotifySettings
    media: MediaSettings
    cluster: ClusterSettings
    clinic: ClinicSettings
    mobile: MobileSettings

    @model_validator(mode="after")
    def _one_host_on_sqlite(self) -> Settings:
        if self.store.backend == "sqlite" and set(self.cluster.roles) != {"control", "sfu"}:
            raise ValueError(
                "cluster.roles: a node on the embedded SQLite store runs both roles "
                '(split roles across hosts need store.backend = "redis")'
            )
        return self

    @property
    def sqlite_path(self) -> Path:
        if self.store.sqlite_path:
            return Path(self.store.sqlite_path)
        return self.server.data_dir / "televisit.db"


def _merge(base: dict[str, Any], over: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        path = f"{where}{key}"
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and out[key] != {}:
            out[key] = _merge(out[key], value, path + ".")
        else:
            out[key] = value
    return out


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another override")
        node[parts[-1]] = _env_value(raw)
    return tree


def _describe(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"{key}: {e['msg']}")
    return f"invalid settings ({origin}):\n  " + "\n  ".join(lines)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings; raise ConfigError naming the offending key."""
    data = tomllib.loads(DEFAULTS_FILE.read_text())
    origins = ["defaults"]
    if config_file is not None:
        path = Path(config_file)
        try:
            data = _merge(data, tomllib.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        origins.append(str(path))
    env = _env_overrides(os.environ if environ is None else environ)
    if env:
        data = _merge(data, env)
        origins.append("environment")
    if overrides:
        data = _merge(data, overrides)
        origins.append("command line")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, " + ".join(origins))) from exc
