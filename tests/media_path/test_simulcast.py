"""Simulcast on the publish leg (issue 13): the answer carries what aiortc drops (a=rid,
a=simulcast, the RID extensions), layers are routed by their RID, each subscriber is forwarded
the layer its share carries, switches are keyframe-gated and damped, and the publisher is asked
for no layer nobody wants."""

from __future__ import annotations

import asyncio
import time

from aiortc.rtp import RtpPacket

from media_server import rtpheader, simulcast
from media_server.participant import Participant
from media_server.publication import LAYER_OFF_SECONDS, LAYERS_HEADROOM, NOMINAL_BPS

from .peers import media_settings
from .test_sdp_fuzz import CHROME_OFFER
from .test_subscription import KEY, Wire, bound

RID_EXT = 10


def simulcast_offer(rids: tuple[str, ...] = ("f", "h", "q")) -> str:
    lines = list(CHROME_OFFER)
    video = next(i for i, line in enumerate(lines) if line.startswith("m=video"))
    end = next((i for i in range(video + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    extra = [f"a=extmap:{RID_EXT} {rtpheader.URI_RID}"]
    extra += [f"a=rid:{r} send" for r in rids] + ["a=simulcast:send " + ";".join(rids)]
    lines[end:end] = extra
    return "\r\n".join(lines) + "\r\n"


def test_offer_is_read_and_answer_gets_the_lines_aiortc_drops() -> None:
    offers = simulcast.offered(simulcast_offer())
    (offer,) = offers.values()
    assert offer.rids == ("f", "h", "q") and offer.rid_ext == RID_EXT
    answer = f"v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:{offer.mid}\r\n"
    out = simulcast.answer(answer, offers)
    video = out.split("m=video")[1]
    assert f"a=extmap:{RID_EXT} {rtpheader.URI_RID}" in video
    assert "a=rid:f recv" in video and "a=simulcast:recv f;h;q" in video
    assert "a=simulcast" not in out.split("m=video")[0]
    assert simulcast.lowest_first(offer.rids) == ["q", "h", "f"]
    # one layer, or no RID extension: no simulcast
    assert simulcast.offered(simulcast_offer(("f",))) == {}
    assert simulcast.offered(simulcast_offer().replace(rtpheader.URI_RID, "urn:x")) == {}


def layer_packet(seq: int, rid: str, ssrc: int, payload: bytes, mid: str) -> bytes:
    ids = {rtpheader.URI_MID: 4, rtpheader.URI_RID: RID_EXT}  # CHROME_OFFER's mid id
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000, ssrc=ssrc,
                  payload=payload)  # fmt: skip
    p.extensions.mid = mid
    p.extensions.rtp_stream_id = rid
    return p.serialize(rtpheader.extension_map(ids))


async def test_layers_are_routed_by_rid_and_only_the_needed_ones_stay_on() -> None:
    participant = Participant(
        "pub", settings=media_settings(), on_offer=lambda sdp: asyncio.sleep(0),
        on_publication=lambda p: None, on_chat=lambda p, t: None, on_state=lambda p, s: None,
    )  # fmt: skip
    try:
        answer = await participant.handle_offer(simulcast_offer())
        assert "a=simulcast:recv f;h;q" in answer
        video = next(p for p in participant.publications if p.kind == "video")
        assert [layer.rid for layer in video.layers] == ["q", "h", "f"]
        assert [p for p in participant.publications if p.kind == "video"] == video.layers
        for layer, ssrc in zip(video.layers, (3001, 3002, 3003), strict=True):
            participant.on_rtp(layer_packet(1, layer.rid, ssrc, KEY, video.mid))
        assert [layer.ssrc for layer in video.layers] == [3001, 3002, 3003], participant.dropped
        assert [layer.packets_in for layer in video.layers] == [1, 1, 1]

        notices: list[list[str]] = []
        video.on_layers = lambda pub, rids: notices.append(rids)
        wire = Wire()
        sub = bound(video, wire)  # forwarded q
        video.cap_changed()
        assert notices == [["q", "h"]]  # q and the one above it: f is not needed now
        # The REMB covers every layer (the page switches layers off by itself; a REMB that
        # did would pull the browser's own estimate down with it).
        assert video.bitrate_cap() == int(LAYERS_HEADROOM * sum(NOMINAL_BPS))
        sub.wanted = video.layers[2]  # the share fits f: it is turned on before the switch
        video.cap_changed()
        assert notices[-1] == ["q", "h", "f"]
        sub.wanted = video.layers[0]
        video.cap_changed()  # not needed any more: off only after LAYER_OFF_SECONDS
        assert notices[-1] == ["q", "h", "f"]
        assert video.active_layers(time.monotonic() + LAYER_OFF_SECONDS + 0.1) == ["q", "h"]
    finally:
        await participant.close()


async def test_a_layer_switch_has_no_gap_the_old_layer_plays_until_the_new_keyframe() -> None:
    from .test_subscription import publication, push, rtp

    low, high = publication([], ssrc=5000), publication([], ssrc=6000)
    primary = low
    low.layers = [low, high]
    high.primary = primary
    wire = Wire()
    sub = bound(low, wire)
    push(low, rtp(100, 0, ssrc=5000, payload=vp8(10, 1, True)))
    sub.switch_layer(high)
    assert sub.pending is high and sub.source is low
    push(high, rtp(7000, 0, ssrc=6000, payload=vp8(500, 9, False)))  # not yet: no keyframe
    push(low, rtp(101, 3000, ssrc=5000, payload=vp8(11, 1, False)))  # the old layer goes on
    push(high, rtp(7001, 3000, ssrc=6000, payload=vp8(501, 10, True)))  # the switch
    push(low, rtp(102, 6000, ssrc=5000, payload=vp8(12, 1, False)))  # no longer forwarded
    push(high, rtp(7002, 6000, ssrc=6000, payload=vp8(502, 10, False)))
    await asyncio.sleep(0)  # the watcher leaves the layer's fan-out
    out = wire.parsed()
    assert [p.payload[5] & 1 for p in out] == [0, 1, 0, 1]  # key, delta, key, delta
    assert [(p.sequence_number - out[0].sequence_number) & 0xFFFF for p in out] == [0, 1, 2, 3]
    assert sub.source is high and sub.pending is None and sub.switches == 1
    assert len(high.inbound.outbounds) == 1 and len(low.inbound.outbounds) == 0
    sub.switch_layer(low)  # back again, but the low layer's keyframe never comes: still high
    sub.switch_layer(high)  # ... and the allocator changed its mind: nothing pending
    assert sub.pending is None and sub.source is high


def vp8(picture_id: int, tl0: int, key: bool) -> bytes:
    """A VP8 payload: descriptor with a 15-bit PictureID and TL0PICIDX (RFC 7741)."""
    return bytes([0x90, 0xC0, 0x80 | picture_id >> 8, picture_id & 0xFF, tl0,
                  0x10 if key else 0x11]) + b"frame"  # fmt: skip


async def test_a_layer_switch_continues_vp8_picture_ids_and_tl0() -> None:
    from media_server.subscription import vp8_numbering

    from .test_subscription import publication, push, rtp

    low, high = publication([], ssrc=5000), publication([], ssrc=6000)
    wire = Wire()
    sub = bound(low, wire)
    for i in range(3):
        push(low, rtp(100 + i, 3000 * i, ssrc=5000, payload=vp8(20000 + i, 7 + i, i == 0)))
    sub.switch_source(high)
    push(high, rtp(900, 50, ssrc=6000, payload=vp8(300, 200, False)))  # held: not a keyframe
    push(high, rtp(901, 3050, ssrc=6000, payload=vp8(301, 201, True)))
    push(high, rtp(902, 6050, ssrc=6000, payload=vp8(302, 201, False)))
    numbering = [vp8_numbering(p.payload) for p in wire.parsed()]
    assert numbering == [(20000, 7), (20001, 8), (20002, 9), (20003, 10), (20004, 10)]


async def test_without_simulcast_the_answer_takes_the_first_layer_alone() -> None:
    # media.simulcast = false: the publisher is answered one rid (RFC 8853 lets the answerer
    # drop the others), so it sends one encoding, routed as a plain video stream.
    participant = Participant(
        "pub", settings=media_settings(simulcast=False), on_offer=lambda sdp: asyncio.sleep(0),
        on_publication=lambda p: None, on_chat=lambda p, t: None, on_state=lambda p, s: None,
    )  # fmt: skip
    try:
        answer = await participant.handle_offer(simulcast_offer())
        assert "a=simulcast:recv f\r\n" in answer and "a=rid:h" not in answer, answer
        (video,) = [p for p in participant.publications if p.kind == "video"]
        assert video.layers == []
        participant.on_rtp(layer_packet(1, "f", 3001, KEY, video.mid))
        assert video.ssrc == 3001 and video.packets_in == 1, participant.dropped
    finally:
        await participant.close()
