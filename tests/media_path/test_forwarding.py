"""Two real aiortc clients see each other through two server Participants (in this process:
that the server decodes nothing is test_end_to_end.py's, where it runs alone)."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import rtcrtpreceiver, rtcrtpsender

from media_server.transport import ForwardingReceiver, ForwardingSender, SfuDtlsTransport

from .peers import wait_for

SIZES = ((320, 240), (640, 480))


@pytest.fixture
def codec_spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count every packet that reaches an aiortc receiver (depayload + decode) and every frame
    an aiortc sender encodes in this process (the clients'). That the server process decodes
    nothing is shown where it runs alone: test_end_to_end.py watches every decoder it opens."""
    seen = {"receive": 0, "encode": 0}
    receive = rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet
    encode = rtcrtpsender.RTCRtpSender._next_encoded_frame

    async def spy_receive(self: Any, packet: Any, arrival_time_ms: int) -> None:
        seen["receive"] += 1
        await receive(self, packet, arrival_time_ms)

    async def spy_encode(self: Any, codec: Any) -> Any:
        seen["encode"] += 1
        return await encode(self, codec)

    monkeypatch.setattr(rtcrtpreceiver.RTCRtpReceiver, "_handle_rtp_packet", spy_receive)
    monkeypatch.setattr(rtcrtpsender.RTCRtpSender, "_next_encoded_frame", spy_encode)
    return seen


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_each_client_decodes_the_other(make_call, codec_spies, codec: str) -> None:
    call = await make_call(codec, SIZES)
    a, b = call.a, call.b
    await wait_for(
        lambda: a.client.frames("video") >= 30 and b.client.frames("video") >= 30, 60, "video"
    )
    await wait_for(
        lambda: a.client.frames("audio") >= 50 and b.client.frames("audio") >= 50, 30, "audio"
    )
    assert a.client.video_size() == SIZES[1]
    assert b.client.video_size() == SIZES[0]

    for side in (a, b):
        participant = side.participant
        assert [p.codec.name for p in participant.publications] == ["opus", codec]
        assert all(p.packets_in > 0 for p in participant.publications)
        assert [s.source.kind for s in participant.subscriptions] == ["audio", "video"]
        assert all(s.packets_out > 0 for s in participant.subscriptions)
        assert participant.faults.count == 0
        sender = participant.pc.getTransceivers()[-1].sender
        assert isinstance(sender, ForwardingSender)
        # aiortc's sender loops ended as they started: no task idles per subscription.
        assert sender._RTCRtpSender__rtp_task.done() and sender._RTCRtpSender__rtcp_task.done()
        # Every sender's loop events, publishing m-lines' too, are one event set for good.
        events = {
            id(getattr(t.sender, f"_RTCRtpSender__{name}"))
            for t in participant.pc.getTransceivers()
            for name in ("rtp_started", "rtp_exited", "rtcp_started", "rtcp_exited")
        }
        assert len(events) == 1
        # No m-line starts a decoder thread or an RTCP task of aiortc's, and none keeps
        # aiortc's per-packet receive state (a video one's RemoteBitrateEstimator is ~97 kB):
        # publishing and subscribing m-lines alike.
        for transceiver in participant.pc.getTransceivers():
            receiver = transceiver.receiver
            assert isinstance(receiver, ForwardingReceiver)
            assert receiver._RTCRtpReceiver__decoder_thread is None
            assert receiver._RTCRtpReceiver__remote_bitrate_estimator is None
            assert receiver._RTCRtpReceiver__jitter_buffer is None
            assert receiver._RTCRtpReceiver__rtcp_started is None  # its RTCP task's events
        # The subscriber's m-line carries the publisher's codec and its RTX, nothing else.
        video_section = participant.pc.localDescription.sdp.split("m=video")[-1]
        names = {
            line.split()[1].split("/")[0]
            for line in video_section.splitlines()
            if line.startswith("a=rtpmap:")
        }
        assert names == {codec, "rtx"}

    # One certificate and one DTLS context serve every participant of the worker.
    assert len({id(side.participant._transport._ssl.get_context()) for side in (a, b)}) == 1

    # The clients' receivers and encoders ran (the frames above came through them).
    assert codec_spies["receive"] > 100
    assert codec_spies["encode"] > 30


async def test_rtcp_per_leg(make_call, monkeypatch: pytest.MonkeyPatch) -> None:
    """Receivers get SRs on our SSRC with our RTP timeline (aiortc clients send SRs ~1/s) and
    report back (RTT); publishers get receiver reports and a REMB capped by the subscribers'."""
    at_clients: list[Any] = []
    handle = rtcrtpsender.RTCRtpSender._handle_rtcp_packet

    async def spy(self: Any, packet: Any) -> None:
        if not isinstance(self.transport, SfuDtlsTransport):
            at_clients.append(packet)
        await handle(self, packet)

    monkeypatch.setattr(rtcrtpsender.RTCRtpSender, "_handle_rtcp_packet", spy)
    call = await make_call()
    subscriptions = call.a.participant.subscriptions + call.b.participant.subscriptions
    await wait_for(lambda: all(s.srs_sent >= 2 for s in subscriptions), 30, "translated SRs")
    await wait_for(lambda: all(s.rtt is not None for s in subscriptions), 30, "RTT from RRs")
    for participant in (call.a.participant, call.b.participant):
        assert all(p.srs_received >= 2 for p in participant.publications)
    video_subs = [s for s in subscriptions if s.kind == "video"]
    await wait_for(lambda: all(s.remb for s in video_subs), 30, "REMB from the subscribers")
    await wait_for(lambda: call.a.participant.rembs_sent > 0, 30, "REMB to the publisher")
    video_pub = call.a.participant.publications[1]
    # What each subscriber's allocator gives the stream (its REMB until one has spoken) caps it.
    allocated = [s.target_bps if s.target_bps is not None else s.remb for s in video_subs
                 if s.source is video_pub]  # fmt: skip
    assert video_pub.bitrate_cap() <= min(allocated)

    def reached_clients() -> set[tuple[str, Any]]:
        return {(type(p).__name__, getattr(p, "fmt", None)) for p in at_clients}

    # Our receiver reports and our REMB reach the publishers' senders.
    await wait_for(lambda: ("RtcpRrPacket", None) in reached_clients(), 30, "RR at a client")
    await wait_for(lambda: ("RtcpPsfbPacket", 15) in reached_clients(), 30, "REMB at a client")


async def test_chat_channel_both_ways(make_call) -> None:
    call = await make_call()
    a, b = call.a, call.b
    await wait_for(lambda: a.client.chat.readyState == "open", 20, "chat open")
    a.client.chat.send('{"text": "hello"}')
    await wait_for(lambda: a.chats == ['{"text": "hello"}'], 20, "chat at the server")
    await wait_for(lambda: b.participant.send_chat({"type": "chat", "text": "hi"}), 20, "b open")
    await wait_for(
        lambda: b.client.chat_received == ['{"type": "chat", "text": "hi"}'], 20, "chat at b"
    )
