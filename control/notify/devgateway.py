"""A local SMS gateway for trying Televisit out (and the tests' SMS provider stand-in).

It speaks what ``SmsSender`` sends: ``POST /sms`` with JSON ``{"to", "from", "text"}``, an
``Idempotency-Key`` header and, when it was given a key, ``Authorization: Bearer <key>``.
Like a gateway that honours the key it answers a repeated key with the first answer and
delivers nothing twice; ``dedupe=False`` makes it one that ignores the key. "Delivering" is printing the text (it holds a join link and a PIN: a dev tool only).

    python -m control.notify.devgateway --port 2526 [--api-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web


class DevSmsGateway:
    def __init__(
        self, port: int, api_key: str = "", *, echo: bool = False, dedupe: bool = True
    ) -> None:
        self.port = port
        self.dedupe = dedupe
        self.api_key = api_key
        self.echo = echo
        self.url = f"http://127.0.0.1:{port}/sms"
        self.requests: list[dict[str, Any]] = []  # every POST that passed the checks
        # idempotency key (with dedupe=False: key#n) -> its delivery
        self.delivered: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None

    def keys_seen(self) -> list[str]:
        return [r["key"] for r in self.requests]

    async def before_delivery(self, body: dict[str, Any]) -> web.Response | None:
        """A hook for stand-ins that simulate provider trouble: a response to answer instead."""
        return None

    async def after_delivery(self, key: str) -> None:
        """A hook called after a delivery is recorded, before it is answered."""

    async def _handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        if self.api_key and auth != f"Bearer {self.api_key}":
            return web.json_response({"error": "bad api key"}, status=401)
        key = request.headers.get("Idempotency-Key")
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        fields = ("to", "from", "text")
        if (
            not key
            or not isinstance(body, dict)
            or not all(isinstance(body.get(f), str) for f in fields)
        ):
            return web.json_response(
                {"error": "to, from, text and Idempotency-Key are required"}, status=400
            )
        self.requests.append({"key": key, "body": body, "auth": auth, "at": time.monotonic()})
        trouble = await self.before_delivery(body)
        if trouble is not None:
            return trouble
        if self.dedupe and key in self.delivered:
            return web.json_response({"id": self.delivered[key]["id"], "duplicate": True})
        if not self.dedupe:
            key = f"{key}#{len(self.delivered) + 1}"
        self.delivered[key] = {"id": f"sms-{len(self.delivered) + 1}", "body": body}
        if self.echo:
            print(f"SMS to {body['to']} from {body['from']}: {body['text']}", flush=True)
        await self.after_delivery(key)
        return web.json_response({"id": self.delivered[key]["id"]})

    async def start(self, host: str = "127.0.0.1") -> None:
        app = web.Application()
        app.router.add_post("/sms", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _serve(args: argparse.Namespace) -> None:
    gateway = DevSmsGateway(args.port, args.api_key, echo=True)
    await gateway.start(args.host)
    print(json.dumps({"sms_gateway_url": f"http://{args.host}:{args.port}/sms"}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2526)
    parser.add_argument("--api-key", default="", help="require Authorization: Bearer KEY")
    try:
        asyncio.run(_serve(parser.parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
