"""Garbage at the SFU's media port is dropped and counted; forwarding carries on."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct

from aiortc.rtp import RtpPacket

from .peers import keeps_receiving, wait_for


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
    server.on_rtcp(b"\x81\xc9\x00\x07" + b"\x00" * 8)  # RR claiming 7 words, 2 present

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
