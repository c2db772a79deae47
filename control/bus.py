"""The event bus: live events (dashboards, room state) to every subscriber on every node.

Best effort by design: an event reaches the subscribers that are listening when it is
published, at most once. What must not be lost lives in the store; the bus only says "look".

    async with bus.subscribe("org:o1", "room:*") as feed:
        async for event in feed: ...

A topic ending in ``*`` matches every topic starting with what precedes it. Each subscriber
gets its own copy of each event (JSON round trip, as over Redis), through a bounded queue:
a subscriber that falls behind loses its oldest events, counted in ``Subscription.dropped``
and ``EventBus.dropped``.

InProcessBus serves one node; RedisBus carries events between nodes with Redis pub/sub
(channel ``<prefix><topic>``; ``*`` topics become PSUBSCRIBE patterns), one pub/sub
connection per bus shared by its subscribers.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from control.store.redis import connect

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000
# After the pub/sub connection broke, wait this long before reading again (redis-py reconnects
# and re-subscribes on the next read).
RECONNECT_PAUSE_SECONDS = 1.0
SUBSCRIBE_TIMEOUT_SECONDS = 15.0


def _check_topic(topic: object, *, pattern: bool) -> str:
    if not isinstance(topic, str) or not topic or topic == "*":
        raise ValueError(f"topic must be a non-empty string, got {topic!r}")
    star = topic.find("*")
    if star != -1 and not (pattern and star == len(topic) - 1):
        where = "only as the last character of a subscription" if pattern else "when publishing"
        raise ValueError(f"topic {topic!r}: '*' is allowed {where}")
    return topic


def _encode(event: dict[str, Any]) -> str:
    if not isinstance(event, dict):
        raise TypeError(f"event must be a dict, got {type(event).__name__}")
    try:
        return json.dumps(event, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"event is not JSON-serializable: {exc}") from exc


class Subscription:
    """The events of some topics, in publishing order, as an async iterator of dicts."""

    def __init__(self, bus: EventBus, topics: tuple[str, ...], queue_size: int) -> None:
        self.topics = topics
        self.dropped = 0
        self._bus = bus
        self._queue: asyncio.Queue[str] = asyncio.Queue(queue_size)

    def _offer(self, text: str) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            self._bus.dropped += 1
            if self.dropped == 1:
                log.warning(
                    "bus subscriber of %s falls behind; dropping its oldest events",
                    ", ".join(self.topics),
                )
        self._queue.put_nowait(text)

    def pending(self) -> int:
        return self._queue.qsize()

    async def get(self) -> dict[str, Any]:
        return json.loads(await self._queue.get())

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.get()


class EventBus(abc.ABC):
    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.queue_size = queue_size
        self.dropped = 0  # events dropped by all subscribers of this bus together
        self._subscribers: dict[str, set[Subscription]] = {}

    async def open(self) -> None:  # noqa: B027 - the in-process bus has nothing to open
        pass

    async def close(self) -> None:  # noqa: B027
        pass

    @abc.abstractmethod
    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Send ``event`` to the current subscribers of ``topic`` (ValueError/TypeError if bad)."""

    @contextlib.asynccontextmanager
    async def subscribe(
        self, *topics: str, queue_size: int | None = None
    ) -> AsyncIterator[Subscription]:
        """Events of ``topics`` from the moment the block starts until it ends.

        ``queue_size`` (default: the bus's) bounds the events waiting to be read.
        """
        if not topics:
            raise ValueError("subscribe needs at least one topic")
        if queue_size is not None and queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        keys = tuple(dict.fromkeys(_check_topic(t, pattern=True) for t in topics))
        sub = Subscription(self, keys, queue_size or self.queue_size)
        joined: list[str] = []
        try:
            for key in keys:
                self._subscribers.setdefault(key, set()).add(sub)
                joined.append(key)
                await self._listen(key)
            yield sub
        finally:
            for key in joined:
                holders = self._subscribers[key]
                holders.discard(sub)
                if not holders:
                    del self._subscribers[key]
                    await self._unlisten(key)

    def subscriber_count(self) -> int:
        return len({s for subs in self._subscribers.values() for s in subs})

    def _deliver(self, key: str, text: str) -> None:
        for sub in tuple(self._subscribers.get(key, ())):
            sub._offer(text)

    async def _listen(self, key: str) -> None:  # noqa: B027 - hooks for a remote transport
        """Return once events of ``key`` published from now on will be delivered."""

    async def _unlisten(self, key: str) -> None:  # noqa: B027
        """The last subscriber of ``key`` left."""


class InProcessBus(EventBus):
    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        _check_topic(topic, pattern=False)
        text = _encode(event)
        self._deliver(topic, text)
        for key in tuple(self._subscribers):
            if key.endswith("*") and topic.startswith(key[:-1]):
                self._deliver(key, text)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


class RedisBus(EventBus):
    def __init__(
        self, url: str, *, prefix: str = "tv:bus:", queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        super().__init__(queue_size=queue_size)
        self.url = url
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        # Redis channel or pattern -> (subscription key, set once Redis confirmed it).
        self._channels: dict[str, tuple[str, asyncio.Event]] = {}

    def _channel(self, key: str) -> tuple[bool, str]:
        """(is a pattern, the Redis channel or pattern name) of a subscription key."""
        if key.endswith("*"):
            return True, self.prefix + _glob_escape(key[:-1]) + "*"
        return False, self.prefix + key

    async def open(self) -> None:
        self._redis = connect(self.url)
        self._pubsub = self._redis.pubsub()
        try:
            # A private channel keeps the connection subscribed, so the reader always has a
            # connection to block on, and proves it works before open() returns.
            await self._subscribe_and_wait("", False, f"{self.prefix}_node:{secrets.token_hex(8)}")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        _check_topic(topic, pattern=False)
        if self._redis is None:
            raise RuntimeError("RedisBus is not open")
        await self._redis.publish(self.prefix + topic, _encode(event))

    async def _subscribe_and_wait(self, key: str, pattern: bool, channel: str) -> None:
        entry = self._channels.get(channel)
        if entry is None:
            entry = self._channels[channel] = (key, asyncio.Event())
            if pattern:
                await self._pubsub.psubscribe(channel)
            else:
                await self._pubsub.subscribe(channel)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")
        try:
            await asyncio.wait_for(entry[1].wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ConnectionError(f"Redis did not confirm the subscription to {channel}") from None

    async def _listen(self, key: str) -> None:
        if self._pubsub is None:
            raise RuntimeError("RedisBus is not open")
        await self._subscribe_and_wait(key, *self._channel(key))

    async def _unlisten(self, key: str) -> None:
        pattern, channel = self._channel(key)
        self._channels.pop(channel, None)
        if self._pubsub is None:
            return
        try:
            if pattern:
                await self._pubsub.punsubscribe(channel)
            else:
                await self._pubsub.unsubscribe(channel)
        except (redis.exceptions.ConnectionError, OSError) as exc:
            # Harmless: with nobody listening locally, events of this channel are discarded.
            log.warning("bus: could not unsubscribe %s: %s", channel, exc)

    async def _read(self) -> None:
        failures = 0
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (redis.exceptions.ConnectionError, OSError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("bus: Redis pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_PAUSE_SECONDS)
                continue
            if failures:
                log.info("bus: Redis pub/sub connection back after %d failed reads", failures)
                failures = 0
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("subscribe", "psubscribe"):
            entry = self._channels.get(message["channel"])
            if entry is not None:
                entry[1].set()
        elif kind in ("message", "pmessage"):
            entry = self._channels.get(message["pattern"] or message["channel"])
            if entry is not None:
                self._deliver(entry[0], message["data"])
