"""Fuzzing SDP handling: a client's offer or answer, however mangled, is answered or refused
with ValueError (signaling turns that into `error` `bad_offer` / `bad_answer`), and the server's
re-offers can always be aligned to whatever numbering the client's offer set up.

Inputs are a Chrome-shaped offer with lines dropped, repeated, cut, or replaced by hostile
ones (huge or negative numbers, missing fields, every extension id taken...). A short
hypothesis run is part of the suite; a long one by hand:
``FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/media_path/test_sdp_fuzz.py``.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from media_server import reoffer
from media_server.participant import Participant
from tests.fuzzing import fuzz_settings

from .peers import media_settings

CHROME_OFFER = [
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1 2",
    "a=msid-semantic: WMS",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Fz3b",
    "a=ice-pwd:nq0SaCqkMZUiBeUWrzn6mzF5",
    "a=fingerprint:sha-256 1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=sendrecv",
    "a=msid:- a1",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2",
    "a=fmtp:63 111/111",
    "a=ssrc:1001 cname:x",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:Fz3b",
    "a=ice-pwd:nq0SaCqkMZUiBeUWrzn6mzF5",
    "a=fingerprint:sha-256 1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09",
    "a=setup:actpass",
    "a=mid:1",
    "a=extmap:2 urn:ietf:params:rtp-hdrext:toffset",
    "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=sendrecv",
    "a=msid:- v1",
    "a=rtcp-mux",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=rtpmap:103 H264/90000",
    "a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
    "a=rtpmap:104 rtx/90000",
    "a=fmtp:104 apt=103",
    "a=ssrc-group:FID 2001 2002",
    "a=ssrc:2001 cname:x",
    "a=ssrc:2002 cname:x",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:Fz3b",
    "a=ice-pwd:nq0SaCqkMZUiBeUWrzn6mzF5",
    "a=fingerprint:sha-256 1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09:1A:2B:3C:4D:5E:6F:70:81:92:A3:B4:C5:D6:E7:F8:09",
    "a=setup:actpass",
    "a=mid:2",
    "a=sctp-port:5000",
    "a=max-message-size:262144",
]

HOSTILE = [
    "m=video -1 UDP/TLS/RTP/SAVPF 96",
    "m=video 9 UDP/TLS/RTP/SAVPF",
    "m=audio 9 RTP/AVP 0 x",
    "m=video 99999999999999999999 UDP/TLS/RTP/SAVPF 96",
    "a=rtpmap:96 VP8",
    "a=rtpmap:96 VP8/abc",
    "a=rtpmap:300 VP8/90000",
    "a=rtpmap:-1 opus/48000/2",
    "a=rtpmap:96 rtx/90000",
    "a=fmtp:96 apt=",
    "a=fmtp:97 apt=97",
    "a=fmtp:103 profile-level-id=zz;packetization-mode=9",
    "a=fmtp:103 =;;=x",
    "a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:15 urn:x:15",
    "a=extmap:99999 urn:x",
    "a=extmap:abc urn:x",
    "a=extmap:5/bogus urn:x",
    "a=ssrc:notanumber cname:x",
    "a=ssrc:99999999999 cname:x",
    "a=ssrc-group:FID",
    "a=ssrc-group:FID 1",
    "a=ssrc-group:SIM 1 2 3",
    "a=rid:h send",
    "a=simulcast:send h;m;l",
    "a=candidate:1 1 udp 1 127.0.0.1 notaport typ host",
    "a=candidate:garbage",
    "a=fingerprint:sha-256 zz",
    "a=fingerprint:md5 00",
    "a=setup:bogus",
    "a=mid:",
    "a=group:BUNDLE 7 8",
    "a=sctp-port:-5",
    "a=max-message-size:-1",
    "a=rtcp:abc",
    "c=IN IP6",
    "a=" + "x" * 3000,
    "\x00\x01\x02",
]
# Every one-byte extension id the client can take, so the server has none left for its own.
ALL_IDS = [f"a=extmap:{i} urn:example:ext{i}" for i in range(1, 15)]
# ... and every dynamic payload type, for codecs the server never offers.
ALL_PTS = [f"a=rtpmap:{pt} X{pt}/90000" for pt in range(96, 128)]


@st.composite
def mangled_offers(draw: st.DrawFn) -> str:
    lines = list(CHROME_OFFER)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(lines)))
        action = draw(st.sampled_from(["drop", "repeat", "insert", "replace", "cut", "ids", "pts"]))
        if action == "drop" and at < len(lines):
            del lines[at]
        elif action == "repeat" and at < len(lines):
            lines.insert(at, lines[at])
        elif action == "insert":
            lines.insert(at, draw(st.sampled_from(HOSTILE) | st.text(max_size=40)))
        elif action == "replace" and at < len(lines):
            head = lines[at].split(":", 1)[0].split(" ", 1)[0]
            lines[at] = head + draw(st.sampled_from([":", " ", "="])) + draw(st.text(max_size=30))
        elif action == "cut" and at < len(lines):
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
        elif action == "ids":
            video = next((i for i, line in enumerate(lines) if line.startswith("m=video")), at)
            lines[video + 1 : video + 1] = ALL_IDS
        elif action == "pts":
            video = next((i for i, line in enumerate(lines) if line.startswith("m=video")), at)
            lines[video + 1 : video + 1] = ALL_PTS
    return "\r\n".join(lines) + "\r\n"


async def _answer_or_refuse(sdp: str) -> tuple[str | None, Participant]:
    participant = Participant(
        "fuzz",
        settings=media_settings(),
        on_offer=lambda sdp: asyncio.sleep(0),
        on_publication=lambda publication: None,
        on_chat=lambda participant, text: None,
        on_state=lambda participant, state: None,
    )
    try:
        return await participant.handle_offer(sdp), participant
    except ValueError:
        return None, participant


@fuzz_settings(120)
@given(mangled_offers())
def test_any_offer_is_answered_or_refused_with_value_error(sdp: str) -> None:
    async def run() -> None:
        answer, participant = await _answer_or_refuse(sdp)
        try:
            if answer is not None:
                assert answer.startswith("v=0")
                # A second offer on the same connection is always refused, never a crash.
                with pytest.raises(ValueError):
                    await participant.handle_offer(sdp)
            # An answer nobody asked for, and garbage answers, are refused.
            with pytest.raises(ValueError):
                await participant.handle_answer(sdp)
        finally:
            await participant.close()

    asyncio.run(run())


SERVER_OFFER = "\r\n".join(
    [
        "v=0",
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99 100",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:5 urn:example:server-only",
        "a=rtpmap:97 VP8/90000",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "a=rtpmap:99 H264/90000",
        "a=fmtp:99 packetization-mode=1;profile-level-id=42e01f",
        "a=rtpmap:100 rtx/90000",
        "a=fmtp:100 apt=99",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96",
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=rtpmap:96 opus/48000/2",
        "",
    ]
)


@fuzz_settings(400)
@given(mangled_offers())
@example("\r\n".join(["m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=rtpmap:300 VP8/90000", "a=extmap:0 a"]))
def test_server_offers_align_to_any_client_numbering(sdp: str) -> None:
    client = reoffer.numbering(sdp)
    aligned = reoffer.align(SERVER_OFFER, client)
    ids = [line.split()[0] for line in aligned.splitlines() if line.startswith("a=extmap:")]
    assert len(ids) == len(set(ids)), aligned  # one id names one extension in the bundle
    for line in aligned.splitlines():
        if line.startswith("a=extmap:"):
            ext_id = int(line[len("a=extmap:") :].split()[0].split("/")[0])
            assert 1 <= ext_id <= 255, line
        if line.startswith("m="):
            assert all(0 <= int(pt) <= 127 for pt in line.split()[3:]), line
    for section in aligned.split("m=")[1:]:
        formats = section.splitlines()[0].split()[3:]
        assert len(formats) == len(set(formats)), section
        # Every payload-type line names a payload type of its m-line.
        for line in section.splitlines()[1:]:
            if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
                assert line.split(":", 1)[1].split()[0] in formats, (line, section)
