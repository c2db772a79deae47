"""Command-line settings of `televisit serve` and `televisit admin`: the usual --host, --port,
--data-dir and --log-level, as overrides of the settings file and environment.

Precedence, highest first: command-line flags, ``TELEVISIT__<SECTION>__<KEY>`` environment
variables, the ``--config`` TOML file, config/defaults.toml. A flag is one more layer of the
same settings (``server.host``, ``server.port``, ``server.data_dir``, ``server.log_level``),
validated by the same schema, so a bad value is refused with the key's name.
"""

from __future__ import annotations

import argparse
from typing import Any

# flag -> the server setting it overrides
SERVER_FLAGS = {
    "host": "listen address (server.host)",
    "port": "HTTP port (server.port)",
    "data_dir": "embedded store and generated secrets (server.data_dir)",
    "log_level": "debug, info, warning or error (server.log_level)",
}
_TYPES: dict[str, type] = {"port": int}


def add_arguments(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add the flags ``names`` (default: all of SERVER_FLAGS) to ``parser``."""
    for name in names or tuple(SERVER_FLAGS):
        flag = "--" + name.replace("_", "-")
        parser.add_argument(
            flag, dest=name, type=_TYPES.get(name, str), default=None, help=SERVER_FLAGS[name]
        )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the given flags set, as a load_settings ``overrides`` mapping."""
    server = {n: getattr(args, n) for n in SERVER_FLAGS if getattr(args, n, None) is not None}
    return {"server": server} if server else {}
