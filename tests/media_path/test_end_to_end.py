"""A consult through ``televisit serve`` in its own process, with aiortc clients in this one:
no decoder is ever opened in the server process, and every payload byte a subscriber receives
is a payload its publisher sent, unchanged.

The server runs with tests/media_path/watched_server.py's watch in each of its processes (the
serve process and its SFU workers), which reports every PyAV decoder a process opens
(tests/decoders.py: aiortc's receivers, a publication that decoded, anything), so the check
does not depend on which class the server uses for its transports. A room that needs
transcoding (an H.264-only subscriber of a VP8-only publisher) decodes by design: a test of
one counts the decoders whose stack runs through the transcoder; the rooms here forward only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from media_server import rtpheader
from tests.conftest import free_port
from tests.media_path import watched_server
from tests.sfu.harness import both_decode
from tests.sfu.sfu_client import SfuClient
from tests.web.server import LiveServer


class WatchedServer(LiveServer):
    @property
    def decoder_log(self) -> Path:
        return self.data_dir / "decoders.jsonl"

    def decoders(self) -> list[dict[str, Any]]:
        """The decoders any process of the server opened (the watch must be live in each)."""
        lines = [json.loads(line) for line in self.decoder_log.read_text().splitlines()]
        watched = {line["pid"] for line in lines if line.get("watch") == "installed"}
        missing = [w for w in self.workers().values() if w["pid"] not in watched]
        assert self.proc is not None and self.proc.pid in watched, "the serve process is unwatched"
        assert not missing, f"SFU workers without the decoder watch: {missing}"
        return [line for line in lines if "decoder" in line]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WatchedServer]:
    data = tmp_path_factory.mktemp("watched")
    live = WatchedServer(data, free_port())
    live.settings = watched_server.environment(data / "decoders.jsonl")
    live.start()
    try:
        live.make_department("en")
        yield live
    finally:
        live.stop()


class Payloads:
    """The RTP payloads one client sends (before its SRTP) and receives (after it), with the
    time each was seen."""

    def __init__(self, client: SfuClient) -> None:
        assert client.pc is not None
        dtls = client.pc.getTransceivers()[0].receiver.transport
        self.sent: list[tuple[float, bytes]] = []
        self.received: list[tuple[float, bytes]] = []
        send, handle = dtls._send_rtp, dtls._handle_rtp_data

        async def send_rtp(data: bytes) -> None:
            if not 192 <= data[1] <= 208:
                self.sent.append((time.monotonic(), payload(data)))
            await send(data)

        async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
            self.received.append((time.monotonic(), payload(data)))
            await handle(data, arrival_time_ms)

        dtls._send_rtp, dtls._handle_rtp_data = send_rtp, handle_rtp


def within(seen: list[tuple[float, bytes]], start: float, end: float) -> list[bytes]:
    return [p for t, p in seen if start <= t <= end]


def payload(data: bytes) -> bytes:
    header = rtpheader.parse(data)
    end = len(data) - (data[-1] if data[0] & 0x20 else 0)
    return data[header.payload_offset : end]


async def consult(
    server: WatchedServer, codecs: tuple[str, str], capabilities: tuple[Any, Any] = (None, None)
) -> tuple[SfuClient, SfuClient]:
    """A guest (by PIN) and a host (by link) who send ``codecs`` and declare ``capabilities``."""
    tele = server.make_appointment(client_language="en")["telemedicine"]
    status, guest = server.call("POST", "/api/v1/join", {"pin": tele["pin"]})
    assert status == 200, guest
    host_token = tele["host_url"].rsplit("/", 1)[1]
    status, host = server.call("POST", "/api/v1/join", {"token": host_token})
    assert status == 200, host
    clients = []
    for grant, codec, declared in zip((guest, host), codecs, capabilities, strict=True):
        client = SfuClient(grant["signaling_url"], grant["token"], video_codec=codec)
        await client.connect()
        await client.join(**({"capabilities": declared} if declared else {}))
        await client.publish()
        clients.append(client)
    return clients[0], clients[1]


def transcoders_started(server: WatchedServer) -> int:
    return int(server.sfu_metrics()["televisit_sfu_transcoders_started_total"])


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_a_forwarding_consult_opens_no_decoder_and_forwards_payloads_unchanged(
    server: WatchedServer, codec: str
) -> None:
    started = transcoders_started(server)
    guest, host = await consult(server, (codec, codec))
    try:
        await both_decode(guest, host, frames=15, seconds=60)
        recorders = [Payloads(guest), Payloads(host)]
        start = time.monotonic()
        await asyncio.sleep(5)
        # Packets in flight at either end of the recording belong to one side only: compare
        # what was seen in an inner window with everything seen on the other side.
        inner, outer = (start + 1, start + 4), (start, start + 5)
        for sender, receiver in (recorders, recorders[::-1]):
            received, sent = within(receiver.received, *inner), within(sender.sent, *outer)
            assert len(received) > 100, len(received)  # audio and video, both ways
            # Every payload that arrived was sent by the other member, byte for byte...
            known = set(sent)
            foreign = [p for p in received if p not in known]
            assert not foreign, f"{len(foreign)} of {len(received)} payloads were not sent"
            # ...and most of what was sent arrived: the comparison covers the stream, not a few
            # packets (not all: a loaded machine drops some on loopback, and the allocator may
            # hold video back).
            sent, arrived = within(sender.sent, *inner), set(within(receiver.received, *outer))
            assert sum(p in arrived for p in sent) >= 0.5 * len(sent)
        assert transcoders_started(server) == started  # forwarding only
        assert server.decoders() == [], "the server process opened a decoder"
    finally:
        for client in (guest, host):
            await client.close()


async def test_decoders_open_only_in_a_transcoder(server: WatchedServer) -> None:
    # A VP8-only app and an H.264-only phone: the app's video is transcoded for the phone (issue
    # 11), which decodes by design. Every decoder the process opens is the transcoder's.
    started = transcoders_started(server)
    before = len(server.decoders())
    h264 = {"codec": "H264", "profile_level_id": "42e01f", "packetization_mode": 1}
    app, phone = await consult(
        server, ("VP8", "H264"), ({"video": [{"codec": "VP8"}, h264]}, {"video": [h264]})
    )
    try:
        await phone.wait_for(lambda: phone.video_frames >= 20, 60, "transcoded video")
        assert transcoders_started(server) == started + 1
        opened = server.decoders()[before:]
        assert opened, "a transcoder ran and the watch saw no decoder"
        for decoder in opened:
            assert "media_server/transcoder.py" in "".join(decoder["stack"]), decoder
    finally:
        for client in (app, phone):
            await client.close()
