"""The `televisit` command: serve, admin ..., bench ..."""

from __future__ import annotations

import argparse
import sys

from config import ConfigError, load_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="televisit", description=__doc__)
    p.add_argument("--config", metavar="FILE", help="TOML settings file (over the defaults)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the control plane and SFU in one process")
    admin = sub.add_parser("admin", help="administration")
    asub = admin.add_subparsers(dest="admin_command", required=True)
    co = asub.add_parser("create-org", help="create an organization; prints its id and an API key")
    co.add_argument("--name", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"televisit: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from control.server import serve

        return serve(settings)
    print(f"televisit: {args.command} is not available yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
