"""Garbage at the SFU's media port is dropped and counted; forwarding carries on."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import struct
import time

from aiortc.rtp import RtpPacket

from .peers import Call, keeps_receiving, media_settings, wait_for


def media_address(sdp: str) -> tuple[str, int]:
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and " typ host" in line:
            parts = line.split()
            return parts[4], int(parts[5])
    raise AssertionError("no host candidate in the SDP")


def rtp(ssrc: int, pt: int = 97, seq: int = 1, payload: bytes = b"\x00" * 40) -> bytes:
    packet = RtpPacket(
        payload_type=pt, sequence_number=seq, timestamp=1234, ssrc=ssrc, payload=payload
    )
    return packet.serialize()


async def test_garbage_datagrams_are_counted_and_forwarding_continues(make_call) -> None:
    call = await make_call()
    a, b = call.a, call.b
    server = a.participant
    await wait_for(lambda: b.client.frames("video") >= 10, 30, "video before garbage")
    address = media_address(server.pc.localDescription.sdp)
    rng = random.Random(7)

    # From the client's own address (the only one the media socket takes once the pair is
    # nominated): random bytes, empty datagrams, truncated RTP/RTCP, RTP that looks right but
    # is not SRTP, and forged SRTCP.
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1400))) for _ in range(300)]
    junk += [b""] * 5
    junk += [b"\x80", b"\x80\x60\x00", b"\x80\xc8\x00\x06", b"\x81\xc9\x00\x07\x00\x00"]
    junk += [rtp(0xDEADBEEF), rtp(server.publications[1].ssrc)]
    junk += [b"\x80\xc8\x00\x06" + bytes(rng.randrange(256) for _ in range(40))]  # forged SRTCP
    pair = a.client.dtls().transport._connection._nominated[1]
    assert pair.remote_addr == address
    # A second descriptor of the client's socket: the event loop's transport drops empty sends.
    own = socket.socket(fileno=os.dup(pair.protocol.transport.get_extra_info("socket").fileno()))
    try:
        for datagram in junk:
            own.sendto(datagram, address)
            await asyncio.sleep(0.001)
    finally:
        own.close()

    # A stranger's datagrams do not even reach the SFU: the media socket is connected.
    before = dict(server.dropped)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for datagram in junk[:50]:
            sock.sendto(datagram, address)
    finally:
        sock.close()

    # Through the client's own SRTP session (authenticated, so it reaches our router): RTP
    # from an SSRC nobody announced.
    await a.client.dtls()._send_rtp(rtp(0xDEADBEEF))
    # Straight into the entry points the transport calls after decryption: a known SSRC with
    # a foreign payload type, RTP shorter than its header claims, truncated RTCP.
    video_ssrc = server.publications[1].ssrc
    server.on_rtp(rtp(video_ssrc, pt=120, seq=7))
    truncated = bytearray(rtp(0x01020304))
    truncated[0] |= 0x10  # claims a header extension that is not there
    struct.pack_into("!HH", truncated, 12, 0xBEDE, 200)
    server.on_rtp(bytes(truncated))
    rr_overrun = b"\x81\xc9\x00\x07" + b"\x00" * 8  # RR claiming 7 words, 2 present
    server.on_rtcp(rr_overrun, time.monotonic_ns() // 1000)

    expected = {"unknown_ssrc": 1, "payload_type": 1, "malformed_rtp": 1, "malformed_rtcp": 1}
    await wait_for(
        lambda: all(server.dropped.get(k, 0) >= v for k, v in expected.items()), 20, "drop counters"
    )
    not_media = sum(1 for d in junk if not d or not (19 < d[0] < 64 or 127 < d[0] < 192))
    assert server.dropped["not_dtls_or_srtp"] >= not_media
    assert server.dropped.get("srtp_rejected", 0) > 0
    assert server.dropped.get("srtcp_rejected", 0) > 0
    for reason in ("not_dtls_or_srtp", "srtp_rejected", "srtcp_rejected"):
        assert server.dropped.get(reason, 0) == before.get(reason, 0), reason
    assert server.faults.count == 0

    # Still forwarding both ways, and the DTLS transport is alive.
    await keeps_receiving(a.client, b.client, video=30)
    assert server.pc.connectionState == "connected"


# Issue 12: a binding request whose ICE-CONTROLLED attribute holds 4 bytes instead of 8 made
# aioice raise struct.error into the event loop (a traceback at ERROR per datagram).
TRUNCATED_STUN = bytes.fromhex("000100082112a442" + "00" * 12 + "8029000400000000")


async def test_stun_that_aioice_cannot_read_is_counted_and_logged_once(caplog) -> None:
    caplog.set_level(logging.WARNING)
    call = Call(media_settings(), "VP8")
    server = call.a.participant
    try:
        # Before ICE completes anyone can reach the media port...
        answer = await server.handle_offer(await call.a.client.offer())
        address = media_address(answer)
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(20):
                stranger.sendto(TRUNCATED_STUN, address)
        finally:
            stranger.close()
        await wait_for(lambda: server.dropped.get("malformed_stun") == 20, 10, "counted")
        await call.a.client.accept_answer(answer)
        await call.b.connect()
        for subscriber, publisher in ((call.a, call.b), (call.b, call.a)):
            for publication in publisher.participant.publications:
                await subscriber.participant.subscribe(publication)
        await wait_for(lambda: call.b.client.frames("video") >= 5, 30, "video")
        # ...after it, the nominated client's own socket still can (the Leg passes non-SRTP on).
        pair = call.a.client.dtls().transport._connection._nominated[1]
        own = pair.protocol.transport
        for _ in range(20):
            own.sendto(TRUNCATED_STUN, address)
        await wait_for(lambda: server.dropped.get("malformed_stun") == 40, 10, "counted")
        await keeps_receiving(call.a.client, call.b.client, video=10)
        assert server.faults.count == 0
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], errors[0].getMessage()
        logged = [r for r in caplog.records if "malformed_stun" in r.getMessage()]
        assert len(logged) == 1
    finally:
        await call.close()
