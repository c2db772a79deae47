"""A client that disconnects in the middle of its request body is an incomplete request (400 in
the access log), not an "unhandled error" with a traceback (issue 12 item 8). The app runs
under web.AppRunner as `televisit serve` runs it (the test server cancels handlers instead)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from control.app import create_app


async def test_a_body_cut_short_is_not_an_unhandled_error(settings, store, caplog):
    caplog.set_level(logging.INFO)
    runner = web.AppRunner(create_app(settings, store, background=False), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        for path in ("/api/v1/join", "/api/v1/clinic/login"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                'Content-Length: 1000\r\n\r\n{"pin": '.encode()
            )
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.close()

        def logged() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.getMessage() == "request"]

        for _ in range(600):  # up to 30 s on a busy machine
            if len(logged()) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    assert [r.status for r in logged()] == [400, 400]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
