"""What senders that speak HTTP (the SMS gateway, webhooks) share: one client session, opened
on first use (senders are built with the worker, before its event loop runs)."""

from __future__ import annotations

import aiohttp


class HttpSender:
    def __init__(self, timeout_seconds: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._http: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
