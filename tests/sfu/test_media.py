"""Two real aiortc clients see and hear each other through the SFU (VP8, H.264) and chat."""

from __future__ import annotations

import pytest

from .harness import Sfu, both_decode, pair
from .sfu_client import SfuClient

GUEST_SIZE = (320, 240)
HOST_SIZE = (352, 288)


def sent_codec(client: SfuClient) -> str:
    """The codec the server's offer gives this client's first received video m-line."""
    assert client.pc is not None and client.pc.remoteDescription is not None
    sdp = client.pc.remoteDescription.sdp
    section = [s for s in sdp.split("m=")[1:] if s.startswith("video") and "a=sendonly" in s]
    first_pt = section[-1].split("\r\n")[0].split()[3]
    for line in section[-1].split("\r\n"):
        if line.startswith(f"a=rtpmap:{first_pt} "):
            return line.split()[1].split("/")[0]
    raise AssertionError("no rtpmap for the first video payload type")


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_video_and_audio_both_ways(sfu: Sfu, codec: str) -> None:
    guest, host = await pair(
        sfu,
        guest={"video_codec": codec, "width": GUEST_SIZE[0], "height": GUEST_SIZE[1]},
        host={"video_codec": codec, "width": HOST_SIZE[0], "height": HOST_SIZE[1]},
    )
    await both_decode(guest, host, frames=20)
    assert guest.video_size() == HOST_SIZE
    assert host.video_size() == GUEST_SIZE
    await guest.wait_for(lambda: guest.audio_frames >= 25, 30, "audio at the guest")
    await host.wait_for(lambda: host.audio_frames >= 25, 30, "audio at the host")
    assert sent_codec(guest) == codec
    assert sent_codec(host) == codec


async def test_chat_both_ways_on_the_data_channel(sfu: Sfu) -> None:
    guest, host = await pair(sfu)
    for c in (guest, host):
        await c.wait_for(lambda c=c: c.channel.readyState == "open", 30, "chat channel open")
    guest.chat("hello doctor")
    host.chat("<b>hello</b> <script>alert(1)</script>")
    for c in (guest, host):
        await c.wait_for(lambda c=c: len(c.chats) >= 2, 30, "both chat messages")
        by_text = {m["text"]: m for m in c.chats}
        assert by_text["hello doctor"]["from"] == {"name": "Pat Guest", "role": "guest"}
        # Relayed verbatim as text: rendering it as text is the client's part.
        markup = by_text["<b>hello</b> <script>alert(1)</script>"]
        assert markup["from"] == {"name": "Dr Host", "role": "host"}
        assert all(m["via"] == "datachannel" for m in c.chats)
        assert all(m["id"].startswith("msg_") and m["ts"].endswith("Z") for m in c.chats)
    assert {m["id"] for m in guest.chats} == {m["id"] for m in host.chats}


async def test_chat_over_the_socket_and_its_limits(sfu: Sfu) -> None:
    limit = sfu.settings.media.chat_max_bytes
    guest = await sfu.client(sfu.token("room-c", "guest", "Pat"))
    await guest.join()
    host = await sfu.client(sfu.token("room-c", "host", "Doc"))
    await host.join()
    # No peer connection yet: the relay falls back to the sockets.
    await guest.send({"type": "chat", "text": "  over the socket\u0000  "})
    await guest.send({"type": "chat", "text": "é" * (limit // 2 + 1)})
    await guest.send({"type": "chat", "text": "\u0001\u0002 "})
    for c in (guest, host):
        await c.wait_for(lambda c=c: c.chats, 20, "chat over the socket")
        assert c.chats[0]["text"] == "over the socket"
        assert c.chats[0]["via"] == "ws"
    await guest.wait_for(lambda: len(guest.of_type("error")) >= 2, 20, "chat errors")
    assert [e["code"] for e in guest.of_type("error")] == ["chat_too_long", "chat_empty"]
    assert len(host.chats) == 1
