"""Publisher reconnect (switch_source), liveness states and bad negotiation input."""

from __future__ import annotations

import asyncio

import pytest

from .peers import Client, ServerSide, media_settings, wait_for


async def test_publisher_reconnect_continues_the_subscribers_tracks(make_call) -> None:
    call = await make_call()
    a, b = call.a, call.b
    await wait_for(lambda: b.client.frames("video") >= 15, 30, "video before the reconnect")
    tracks_before = len(b.client.received)

    # "a" comes back on a brand-new peer connection (aiortc has no ICE restart).
    a2 = ServerSide("a2", media_settings(), Client("a2"))
    try:
        await a2.connect()
        for subscription in b.participant.subscriptions:
            new = next(p for p in a2.participant.publications if p.kind == subscription.kind)
            subscription.switch_source(new)
        await a.participant.close()
        await a.client.close()
        for publication in b.participant.publications:
            await a2.participant.subscribe(publication)

        frames = b.client.frames("video")
        await wait_for(lambda: b.client.frames("video") >= frames + 30, 30, "video after")
        await wait_for(lambda: a2.client.frames("video") >= 15, 30, "the rejoiner receives")
        # Same receive tracks on b: no renegotiation, the stream simply continued.
        assert len(b.client.received) == tracks_before
        assert b.offers == 1
        video = next(s for s in b.participant.subscriptions if s.kind == "video")
        assert video.switches == 1 and video.source.participant_id == "a2"
    finally:
        await a2.participant.close()
        await a2.client.close()


async def test_connect_timeout_when_the_client_never_connects() -> None:
    client = Client("silent")
    side = ServerSide("silent", media_settings(connect_timeout_seconds=1.0), client)
    try:
        await side.participant.handle_offer(await client.offer())  # answer never applied
        await wait_for(lambda: "connect_timeout" in side.states, 10, "connect_timeout")
    finally:
        await side.participant.close()
        await client.close()


async def test_media_timeout_when_the_publisher_goes_quiet(make_call) -> None:
    call = await make_call(media_timeout_seconds=1.0)
    await wait_for(lambda: call.a.participant.packets_in > 50, 30, "media")
    call.a.client.drop_outgoing_rtp(1.0)
    await wait_for(lambda: "media_timeout" in call.a.states, 15, "media_timeout")
    assert "media_timeout" not in call.b.states
    assert call.a.states.count("media_timeout") == 1


async def test_bad_negotiation_input_raises_value_error() -> None:
    client = Client("x")
    side = ServerSide("x", media_settings(), client)
    p = side.participant
    try:
        with pytest.raises(ValueError, match="no server offer"):
            await p.handle_answer("v=0\r\n")
        with pytest.raises(ValueError, match="candidate before offer"):
            await p.add_ice_candidate({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0})
        with pytest.raises(ValueError):
            await p.handle_offer("this is not sdp")
        audio_only_pcmu = (await client.offer()).replace("opus/48000/2", "PCMU/8000")
        with pytest.raises(ValueError):
            await p.handle_offer(audio_only_pcmu)
    finally:
        await p.close()
        await client.close()


async def test_one_offer_per_connection_and_candidates(make_call) -> None:
    call = await make_call()
    p = call.a.participant
    with pytest.raises(ValueError, match="once per peer connection"):
        await p.handle_offer(call.a.client.pc.localDescription.sdp)
    with pytest.raises(ValueError, match="must be a string"):
        await p.add_ice_candidate({"candidate": 5})
    with pytest.raises(ValueError, match="malformed candidate"):
        await p.add_ice_candidate({"candidate": "candidate:garbage", "sdpMid": "0"})
    await p.add_ice_candidate(
        {
            "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        }
    )
    await p.add_ice_candidate({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0})
    await wait_for(lambda: call.b.client.frames("video") >= 5, 30, "media still flows")


async def test_subscribe_queues_behind_an_offer_in_flight(make_call) -> None:
    """Two subscribe() calls while an offer waits for its answer end in one more offer."""
    call = await make_call()
    await wait_for(lambda: call.a.participant.subscriptions[-1].active, 30, "first subscriptions")
    offers = call.a.offers
    extra = ServerSide("c", media_settings(), Client("c"))
    try:
        await extra.connect()
        for publication in extra.participant.publications:
            await call.a.participant.subscribe(publication)
        await wait_for(lambda: all(s.active for s in call.a.participant.subscriptions), 30, "bound")
        assert call.a.offers == offers + 1
        await wait_for(
            lambda: len([r for r in call.a.client.received if r.frames]) == 4, 30, "both"
        )
    finally:
        await extra.participant.close()
        await extra.client.close()
        await asyncio.sleep(0)


async def test_publisher_without_ssrc_lines_is_routed_by_mid() -> None:
    """An offer without a=ssrc (simulcast-style senders omit them): the first packet's MID
    header extension names the publication, and its SSRC is learned from then on."""
    settings = media_settings()
    publisher, viewer = (
        ServerSide("p", settings, Client("p")),
        ServerSide("v", settings, Client("v")),
    )
    try:
        offer = await publisher.client.offer()
        stripped = "\r\n".join(x for x in offer.split("\r\n") if not x.startswith("a=ssrc"))
        answer = await publisher.participant.handle_offer(stripped)
        await publisher.client.accept_answer(answer)
        assert [p.ssrc for p in publisher.participant.publications] == [None, None]
        await viewer.connect()
        for publication in publisher.participant.publications:
            await viewer.participant.subscribe(publication)
        await wait_for(lambda: viewer.client.frames("video") >= 10, 30, "video routed by MID")
        assert all(p.ssrc is not None for p in publisher.participant.publications)
        assert publisher.participant.dropped.get("unknown_ssrc", 0) == 0
    finally:
        for side in (publisher, viewer):
            await side.participant.close()
            await side.client.close()
