"""Server re-offers keep the client's header-extension ids (Chrome rejects reassignment)."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media_server import extmap

CHROME_LIKE = (
    "v=0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "a=extmap:2 urn:ietf:params:rtp-hdrext:toffset\r\n"
    "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
)


def test_extension_ids_reads_the_client_mapping() -> None:
    assert extmap.extension_ids(CHROME_LIKE) == {
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
        "urn:ietf:params:rtp-hdrext:sdes:mid": 4,
        "urn:ietf:params:rtp-hdrext:toffset": 2,
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 3,
    }


def test_align_moves_ids_to_the_clients_and_gives_new_uris_free_ids() -> None:
    server = (
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
        "a=extmap:5/sendonly urn:example:new\r\n"
        "a=mid:0\r\n"
    )
    aligned = extmap.align(server, extmap.extension_ids(CHROME_LIKE))
    assert aligned.split("\r\n")[:-1] == [
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:5/sendonly urn:example:new",  # 5 is the first id the client left free
        "a=mid:0",
    ]


@pytest.mark.asyncio
async def test_aiortc_takes_the_aligned_offer_as_its_local_description() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        offer = await pc.createOffer()
        assert "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid" in offer.sdp
        aligned = extmap.align(offer.sdp, {"urn:ietf:params:rtp-hdrext:sdes:mid": 4,
                                           "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1})
        await pc.setLocalDescription(RTCSessionDescription(sdp=aligned, type="offer"))
        local = pc.localDescription.sdp
        assert "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid" in local
        assert "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level" in local
    finally:
        await pc.close()
