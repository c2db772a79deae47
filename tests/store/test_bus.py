"""The event bus, in process and over a real redis-server: same behaviour for both."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from control.bus import InProcessBus, RedisBus

WAIT_SECONDS = 30.0


@pytest.fixture(params=["inprocess", "redis"])
def make_bus(request, opened):
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    async def make(**kw):
        return await opened(InProcessBus(**kw) if url is None else RedisBus(url, **kw))

    return make


@pytest.fixture
async def bus(make_bus):
    return await make_bus()


async def next_event(feed):
    return await asyncio.wait_for(feed.get(), WAIT_SECONDS)


async def wait_until(condition, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_subscriber_gets_events_in_order_as_copies(bus):
    async with bus.subscribe("org:o1") as feed, bus.subscribe("org:o1") as other:
        sent = [{"n": i, "name": "Åsa 🐕", "nested": {"ok": [True, None]}} for i in range(20)]
        for event in sent:
            await bus.publish("org:o1", event)
        got = [await next_event(feed) for _ in sent]
        assert got == sent
        got[0]["n"] = "changed"
        assert [await next_event(other) for _ in sent] == sent
        assert sent[0]["n"] == 0


async def test_topics_are_isolated(bus):
    async with bus.subscribe("room:r1") as feed:
        await bus.publish("room:r2", {"wrong": 1})
        await bus.publish("room:r10", {"wrong": 2})
        await bus.publish("room:r1", {"right": 1})
        # Publishing order is kept, so the first event heard proves the others never came.
        assert await next_event(feed) == {"right": 1}
        assert feed.pending() == 0


async def test_one_subscription_of_several_topics(bus):
    async with bus.subscribe("a", "b", "a") as feed:
        assert feed.topics == ("a", "b")
        await bus.publish("a", {"t": "a"})
        await bus.publish("c", {"t": "c"})
        await bus.publish("b", {"t": "b"})
        assert [await next_event(feed) for _ in range(2)] == [{"t": "a"}, {"t": "b"}]


async def test_trailing_star_matches_a_prefix(bus):
    async with bus.subscribe("room:*") as rooms, bus.subscribe("x[1]?*") as odd:
        await bus.publish("org:o1", {"n": 0})
        await bus.publish("room:r1", {"n": 1})
        await bus.publish("room:", {"n": 2})
        await bus.publish("x1?z", {"n": 3})  # glob characters are literal
        await bus.publish("x[1]?z", {"n": 4})
        assert [await next_event(rooms) for _ in range(2)] == [{"n": 1}, {"n": 2}]
        assert await next_event(odd) == {"n": 4}


async def test_exact_and_pattern_subscribers_each_get_one_copy(bus):
    async with bus.subscribe("room:r1") as exact, bus.subscribe("room:*") as pattern:
        await bus.publish("room:r1", {"n": 1})
        await bus.publish("room:r1", {"n": 2})
        for feed in (exact, pattern):
            assert [await next_event(feed) for _ in range(2)] == [{"n": 1}, {"n": 2}]


async def test_events_after_unsubscribe_are_not_delivered(bus):
    async with bus.subscribe("room:r1") as feed:
        await bus.publish("room:r1", {"n": 1})
        assert await next_event(feed) == {"n": 1}
    assert bus.subscriber_count() == 0
    await bus.publish("room:r1", {"n": 2})
    assert feed.pending() == 0
    async with bus.subscribe("room:r1") as again:  # resubscribing works
        await bus.publish("room:r1", {"n": 3})
        assert await next_event(again) == {"n": 3}
    assert feed.pending() == 0


async def test_subscription_ends_when_the_block_is_cancelled(bus):
    started = asyncio.Event()

    async def listener():
        async with bus.subscribe("room:r1") as feed:
            started.set()
            async for _ in feed:
                pass

    task = asyncio.create_task(listener())
    await asyncio.wait_for(started.wait(), WAIT_SECONDS)
    assert bus.subscriber_count() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bus.subscriber_count() == 0


async def test_a_slow_subscriber_loses_its_oldest_events_counted(make_bus):
    bus = await make_bus(queue_size=100)
    async with (
        bus.subscribe("org:o1", queue_size=3) as slow,
        bus.subscribe("org:o1", "org:o2") as marker,
    ):
        for i in range(10):
            await bus.publish("org:o1", {"n": i})
        await bus.publish("org:o2", {"n": "end"})
        # One reader delivers in order: once `marker` has "end", `slow` got all it will get.
        assert [await next_event(marker) for _ in range(11)][-1] == {"n": "end"}
        assert slow.dropped == 7 and marker.dropped == 0 and bus.dropped == 7
        assert slow.pending() == 3
        assert [await next_event(slow) for _ in range(3)] == [{"n": 7}, {"n": 8}, {"n": 9}]


@pytest.mark.parametrize(
    "topic, event, error",
    [
        ("org:o1", {"when": object()}, TypeError),
        ("org:o1", {"x": float("nan")}, ValueError),
        ("org:o1", ["list"], TypeError),
        ("org:*", {}, ValueError),
        ("", {}, ValueError),
    ],
)
async def test_bad_publish_rejected(bus, topic, event, error):
    async with bus.subscribe("org:*") as feed:
        with pytest.raises(error):
            await bus.publish(topic, event)
        await bus.publish("org:o1", {"ok": True})
        assert await next_event(feed) == {"ok": True}


@pytest.mark.parametrize("topics", [(), ("a*b",), ("*",), ("",), (None,)])
async def test_bad_subscribe_rejected(bus, topics):
    with pytest.raises(ValueError):
        async with bus.subscribe(*topics):
            pass
    assert bus.subscriber_count() == 0


# -- several nodes (Redis only) -----------------------------------------------------------


async def test_events_cross_between_redis_buses(redis_url):
    nodes = [RedisBus(redis_url) for _ in range(3)]
    for node in nodes:
        await node.open()
    try:
        async with nodes[1].subscribe("org:o1") as a, nodes[2].subscribe("org:*") as b:
            await nodes[0].publish("org:o1", {"from": 0})
            await nodes[1].publish("org:o1", {"from": 1})
            for feed in (a, b):
                assert [await next_event(feed) for _ in range(2)] == [{"from": 0}, {"from": 1}]
    finally:
        for node in nodes:
            await node.close()


async def test_redis_bus_unsubscribes_from_redis(redis_url):
    bus = RedisBus(redis_url)
    await bus.open()
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:

        async def numsub(channel):
            return dict(await client.pubsub_numsub(channel))[channel]

        async with bus.subscribe("room:r1"), bus.subscribe("room:r1"):
            assert await numsub("tv:bus:room:r1") == 1  # one Redis subscription per bus
            async with bus.subscribe("room:*"):
                assert await client.pubsub_numpat() == 1
        await wait_until(lambda: _gone(client, numsub), "Redis to drop the subscriptions")
    finally:
        await client.aclose()
        await bus.close()


async def _gone(client, numsub) -> bool:
    return await numsub("tv:bus:room:r1") == 0 and await client.pubsub_numpat() == 0


async def test_redis_bus_resubscribes_after_the_server_restarts(make_redis_server):
    server = make_redis_server()
    bus = RedisBus(server.url)
    await bus.open()
    try:
        async with bus.subscribe("room:r1") as feed:
            server.kill()
            server.start(port=server.port)
            publisher = aioredis.from_url(server.url)
            try:
                # Pub/sub is at most once: publish until the re-subscribed bus hears one.
                async def heard() -> bool:
                    await publisher.publish("tv:bus:room:r1", '{"n": 1}')
                    return feed.pending() > 0

                await wait_until(heard, "the bus to resubscribe")
                assert await next_event(feed) == {"n": 1}
            finally:
                await publisher.aclose()
    finally:
        await bus.close()
