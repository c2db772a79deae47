"""The `televisit` command: serve, admin ..., bench ..."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from config import ConfigError, Settings, load_settings
from control import cliflags


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="televisit", description=__doc__)
    p.add_argument("--config", metavar="FILE", help="TOML settings file (over the defaults)")
    sub = p.add_subparsers(dest="command", required=True)
    cliflags.add_arguments(
        sub.add_parser("serve", help="run this node: the control plane and/or its SFU workers")
    )
    admin = sub.add_parser("admin", help="administration (prints JSON)")
    cliflags.add_arguments(admin, "data_dir")
    asub = admin.add_subparsers(dest="admin_command", required=True)
    co = asub.add_parser("create-org", help="create an organization; prints its id and an API key")
    co.add_argument("--name", required=True)
    ck = asub.add_parser("create-key", help="another API key for an organization")
    ck.add_argument("--org", required=True, metavar="ORG_ID")
    rk = asub.add_parser("revoke-key", help="revoke an API key (it stops working at once)")
    rk.add_argument("--key-id", required=True)
    asub.add_parser("workers", help="list the live SFU workers and their load")
    dr = asub.add_parser("drain", help="drain an SFU worker or node: no new rooms, exit after")
    target = dr.add_mutually_exclusive_group(required=True)
    target.add_argument("--worker", metavar="WORKER_ID")
    target.add_argument("--node", metavar="NODE_ID")
    from benchmarks.cli import add_arguments as bench_arguments

    bench_arguments(sub.add_parser("bench", help="load benchmarks against Janus and a baseline"))
    return p


class AdminError(Exception):
    pass


async def _admin(settings: Settings, args: argparse.Namespace) -> Any:
    from control import auth, orgs
    from control.cluster import admin
    from control.store.factory import open_store

    store = open_store(settings)
    await store.open()
    try:
        now = time.time()
        if args.admin_command == "workers":
            return await admin.workers(store)
        if args.admin_command == "drain":
            try:
                return await admin.drain(settings, store, worker=args.worker, node=args.node)
            except (admin.NothingToDrain, TimeoutError, OSError) as exc:
                raise AdminError(str(exc)) from exc
        if args.admin_command == "create-org":
            try:
                org, key_record, key = await orgs.create_org(store, args.name, now)
            except ValueError as exc:
                raise AdminError(str(exc)) from exc
            return {
                "org_id": org["id"],
                "name": org["name"],
                "key_id": key_record["id"],
                "api_key": key,
            }
        if args.admin_command == "create-key":
            if await orgs.get_org(store, args.org) is None:
                raise AdminError(f"no organization {args.org}")
            key_record, key = await auth.create_key(store, args.org, now)
            return {"org_id": args.org, "key_id": key_record["id"], "api_key": key}
        try:
            record = await auth.revoke_key(store, args.key_id, now)
        except auth.UnknownKey as exc:
            raise AdminError(f"no API key {args.key_id}") from exc
        return {
            "key_id": record["id"],
            "org_id": record["org_id"],
            "revoked_at": record["revoked_at"],
        }
    finally:
        await store.close()


def settings_from(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """The settings of a command line: flags > environment > --config file > defaults
    (control/cliflags.py). Raises ConfigError naming the key of a bad value."""
    return load_settings(args.config, environ, cliflags.overrides(args))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"televisit: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from control.server import serve

        return serve(settings)
    if args.command == "admin":
        try:
            out = asyncio.run(_admin(settings, args))
        except AdminError as exc:
            print(f"televisit: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(out))
        return 0
    if args.command == "bench":
        from benchmarks.cli import run as bench

        return bench(args)
    print(f"televisit: {args.command} is not available yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
