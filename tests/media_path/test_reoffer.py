"""Server re-offers keep the client's numbering: Chrome refuses moved extension ids and
follows moved payload types, which the publication would then drop."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media_server import reoffer

# The shape of Chrome's first offer: its own ids and payload types.
CLIENT_OFFER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104",
        "a=extmap:2 urn:ietf:params:rtp-hdrext:toffset",
        "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 nack pli",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:103 H264/90000",
        "a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        "a=rtpmap:104 rtx/90000",
        "a=fmtp:104 apt=103",
        "",
    ]
)


def test_numbering_names_extensions_and_codecs() -> None:
    n = reoffer.numbering(CLIENT_OFFER)
    assert n.extension_ids["urn:ietf:params:rtp-hdrext:sdes:mid"] == 4
    assert n.extension_ids["urn:ietf:params:rtp-hdrext:ssrc-audio-level"] == 1
    assert n.payload_types[("opus", "48000", "2")] == 111
    assert n.payload_types[("vp8", "90000", "1")] == 96
    assert n.payload_types[("rtx", "vp8", "90000", "1")] == 97
    assert n.payload_types[("h264", "90000", "1", "1", "profile_baseline")] == 103
    assert n.payload_types[("rtx", "h264", "90000", "1", "1", "profile_baseline")] == 104
    assert n.fmtp[103] == "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"


def test_align_renumbers_to_the_client_and_gives_new_names_free_numbers() -> None:
    server = "\r\n".join(
        [
            "v=0",
            "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99 100",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            "a=extmap:5/sendonly urn:example:new",
            "a=rtpmap:97 VP8/90000",
            "a=rtcp-fb:97 nack pli",
            "a=rtpmap:98 rtx/90000",
            "a=fmtp:98 apt=97",
            "a=rtpmap:99 H264/90000",
            "a=fmtp:99 packetization-mode=1;profile-level-id=42e01f",
            "a=rtpmap:100 rtx/90000",
            "a=fmtp:100 apt=99",
            "",
        ]
    )
    lines = reoffer.align(server, reoffer.numbering(CLIENT_OFFER)).split("\r\n")
    # 42e01f is a codec the client never named: it gets the first free type (98), its rtx 99.
    assert lines[1] == "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99"
    assert lines[2] == "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"
    assert lines[3] == "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    assert lines[4] == "a=extmap:5/sendonly urn:example:new"  # 5: the first id the client left free
    assert lines[5:13] == [
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 nack pli",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:98 H264/90000",
        "a=fmtp:98 packetization-mode=1;profile-level-id=42e01f",
        "a=rtpmap:99 rtx/90000",
        "a=fmtp:99 apt=98",
    ]


async def test_a_real_renegotiation_keeps_the_clients_numbers() -> None:
    """An aiortc 'client' numbered like Chrome, an aiortc 'server' re-offering: after the
    round trip the server's transceivers carry the client's numbers."""
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        server.addTransceiver("video", direction="sendonly")
        offer = await server.createOffer()
        assert "a=rtpmap:97 VP8/90000" in offer.sdp  # aiortc's own number
        aligned = reoffer.align(offer.sdp, reoffer.numbering(CLIENT_OFFER))
        await server.setLocalDescription(RTCSessionDescription(sdp=aligned, type="offer"))
        local = server.localDescription.sdp
        assert "a=rtpmap:96 VP8/90000" in local
        assert "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid" in local
    finally:
        await server.close()


def test_a_constrained_baseline_at_another_level_keeps_its_number_and_fmtp() -> None:
    """RFC 6184: 42c00c (Constrained Baseline 1.2) and aiortc's 42e01f are one codec. The
    server's offer names it 42e01f; the client's numbering and its own fmtp line win."""
    client = CLIENT_OFFER.replace("profile-level-id=42001f", "profile-level-id=42c00c")
    server = "\r\n".join(
        [
            "v=0",
            "m=video 9 UDP/TLS/RTP/SAVPF 99 100",
            "a=rtpmap:99 H264/90000",
            "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            "a=rtpmap:100 rtx/90000",
            "a=fmtp:100 apt=99",
            "",
        ]
    )
    lines = reoffer.align(server, reoffer.numbering(client)).split("\r\n")
    assert lines[1:6] == [
        "m=video 9 UDP/TLS/RTP/SAVPF 103 104",
        "a=rtpmap:103 H264/90000",
        "a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42c00c",
        "a=rtpmap:104 rtx/90000",
        "a=fmtp:104 apt=103",
    ]
