"""Codec negotiation through the signaling server: a refused m-line takes nothing else down."""

from __future__ import annotations

import re

import pytest

from .harness import Sfu, pair


def reject_video(sdp: str) -> str:
    """What an H.264-only device answers to a VP8-only video section: ``m=video 0``."""
    return re.sub(r"m=video \d+ ", "m=video 0 ", sdp)


async def test_a_refused_video_section_keeps_audio_and_both_sides_are_told(sfu: Sfu) -> None:
    guest, host = await pair(sfu, host={"munge_answer": reject_video})
    # The host refused the guest's video; its audio still arrives, and so does everything the
    # guest receives.
    await host.wait_for(lambda: host.audio_frames >= 50, 30, "audio at the host")
    await guest.wait_for(lambda: guest.video_frames >= 20, 30, "video at the guest")
    for client in (guest, host):
        told = await client.wait_for(
            lambda c=client: c.last("stream_unavailable"), 10, "stream_unavailable"
        )
        assert told["kind"] == "video" and told["reason"] == "rejected"
        assert told["from"]["name"] == "Pat Guest" and told["to"]["name"] == "Dr Host"
    assert not [e for e in host.events if e["type"] == "error"], host.events
    assert host.closed is None and guest.closed is None
    room = sfu.worker.rooms["room-1"]
    assert room.counters["stream_unavailable_video"] == 1
    assert not any(k.startswith("drop_") for k in room.counters), room.counters
    host_member = next(m for m in room.members.values() if m.role == "host")
    assert host_member.participant is not None
    refused = [s for s in host_member.participant.subscriptions if s.refused]
    assert [(s.kind, s.refused) for s in refused] == [("video", "rejected")]


def section(sdp: str, mid: str) -> list[str]:
    for block in sdp.split("\r\nm=")[1:]:
        lines = ("m=" + block).split("\r\n")
        if f"a=mid:{mid}" in lines:
            return lines
    raise AssertionError(f"no m-line with mid {mid}")


def fmtp_of(lines: list[str], pt: str) -> str:
    return next(line for line in lines if line.startswith(f"a=fmtp:{pt} "))


async def test_an_h264_level_other_than_42e01f_keeps_its_number_and_fmtp(sfu: Sfu) -> None:
    """A native client offering Constrained Baseline level 1.2 (42c00c): the answer and every
    re-offer name its H.264 with its own payload type and fmtp (RFC 6184: 42c00c and aiortc's
    42e01f are one codec)."""

    def level_1_2(sdp: str) -> str:
        return sdp.replace("profile-level-id=42e01f", "profile-level-id=42c00c")

    guest = await sfu.client(
        sfu.token("room-1", "guest", "Pat Guest"), video_codec="H264", munge_offer=level_1_2
    )
    await guest.join()
    await guest.publish()
    answer = await guest.wait_for(lambda: guest.last("answer"), 20, "the answer")
    assert guest.pc is not None
    offered = level_1_2(guest.pc.localDescription.sdp)
    video_mid = next(t.mid for t in guest.pc.getTransceivers() if t.kind == "video")
    fmtp = next(line for line in section(offered, video_mid) if "42c00c" in line)
    pt = fmtp.split()[0].split(":")[1]
    assert fmtp_of(section(answer["sdp"], video_mid), pt) == fmtp

    host = await sfu.client(sfu.token("room-1", "host", "Dr Host"), video_codec="H264")
    await host.join()
    await host.publish()
    await guest.wait_for(lambda: guest.video_frames >= 15, 30, "video at the guest")
    await host.wait_for(lambda: host.video_frames >= 15, 30, "video at the host")
    offers = guest.of_type("offer")
    assert offers
    for offer in offers:
        assert fmtp_of(section(offer["sdp"], video_mid), pt) == fmtp
    assert not guest.of_type("error") and guest.closed is None


H264_ONLY = {"video": [{"codec": "H264", "profile_level_id": "42e01f", "packetization_mode": 1}]}
VP8_AND_H264 = {"video": [{"codec": "VP8"}, {"codec": "H264"}]}


async def test_a_publisher_joining_an_h264_only_member_sends_h264(sfu: Sfu) -> None:
    """The H.264-only member is there first: the next publisher's answer puts H.264 first,
    so it publishes H.264 from the start (no switch, no transcoder)."""
    host = await sfu.client(sfu.token("room-1", "host", "Dr Host"), video_codec="H264")
    await host.join()
    await host.publish()
    guest = await sfu.client(sfu.token("room-1", "guest", "Pat Guest"))  # VP8 and H.264
    await guest.join()
    await guest.publish()
    await host.wait_for(lambda: host.video_frames >= 20, 30, "video at the H.264-only host")
    await guest.wait_for(lambda: guest.video_frames >= 20, 30, "video at the guest")
    room = sfu.worker.rooms["room-1"]
    guest_member = next(m for m in room.members.values() if m.role == "guest")
    assert guest_member.participant is not None
    video = next(p for p in guest_member.participant.publications if p.kind == "video")
    assert video.codec.name == "H264"
    assert sfu.worker.transcoders.started == 0 and not room.counters["codec_switch_requested"]


async def test_a_vp8_only_app_is_transcoded_for_an_h264_only_member(sfu: Sfu) -> None:
    """A native app that sends only VP8 (it cannot switch), declaring it decodes VP8 and
    H.264; an H.264-only member: the app's video is transcoded once, the member's H.264 is
    forwarded as is, and the transcoder stops when the member leaves."""
    app = await sfu.client(sfu.token("room-1", "guest", "App"), video_codec="VP8")
    await app.join(capabilities=VP8_AND_H264)
    await app.publish()
    phone = await sfu.client(sfu.token("room-1", "host", "Phone"), video_codec="H264")
    await phone.join(capabilities=H264_ONLY)
    await phone.publish()
    await phone.wait_for(lambda: phone.video_frames >= 30, 40, "transcoded video at the phone")
    await app.wait_for(lambda: app.video_frames >= 30, 40, "H.264 at the app")
    room = sfu.worker.rooms["room-1"]
    assert not room.counters["codec_switch_requested"], room.counters  # nothing to ask for
    running = list(sfu.worker.transcoders.running.values())
    assert len(running) == 1 and running[0].codec.name == "H264"
    transcoder = running[0]
    assert transcoder.source.codec.name == "VP8" and transcoder.frames_encoded >= 30
    assert sfu.worker.transcoders.started == 1
    assert not app.of_type("stream_unavailable") and not phone.of_type("stream_unavailable")

    await phone.close()
    await app.wait_for(lambda: not sfu.worker.transcoders.running, 20, "the transcoder to stop")
    transcoder.join()
    decoded = transcoder.frames_decoded
    await app.wait_for(lambda: app.video_frames >= 0, 1, "a second")
    assert transcoder.frames_decoded == decoded


async def test_bad_declared_capabilities_close_the_socket_with_a_reason(sfu: Sfu) -> None:
    client = await sfu.client(sfu.token("room-1", "guest", "App"))
    with pytest.raises(ConnectionError, match="4004: bad capabilities"):
        await client.join(capabilities={"video": [{"codec": "H264", "profile_level_id": "zz"}]})
    assert sfu.worker.signaling_errors["bad_capabilities"] == 1


async def test_a_publisher_that_accepts_a_switch_but_keeps_vp8_is_transcoded(sfu: Sfu) -> None:
    """Two members send VP8 and negotiated H.264 too; an H.264-only member joins: both are
    asked to switch (a re-offer with H.264 first), both answer with H.264 but keep sending VP8
    (aiortc fixes its codec when it starts sending), so after the bounded wait each of their
    videos is transcoded once for the newcomer, and nobody else's stream changes."""
    guest = await sfu.client(sfu.token("room-1", "guest", "Pat Guest"))  # VP8 first
    await guest.join()
    await guest.publish()
    host = await sfu.client(sfu.token("room-1", "host", "Dr Host"))
    await host.join()
    await host.publish()
    await host.wait_for(lambda: host.video_frames >= 10, 30, "VP8 at the host")
    room = sfu.worker.rooms["room-1"]

    phone = await sfu.client(sfu.token("room-1", "guest", "Phone"), video_codec="H264")
    await phone.join()
    await phone.publish()
    await phone.wait_for(
        lambda: len([r for r in phone.received if r.kind == "video" and r.frames >= 20]) == 2,
        40,
        "both videos at the phone",
    )
    assert room.counters["codec_switch_requested"] == 2, room.counters
    assert room.counters["codec_switch_refused"] == 2, room.counters
    assert sfu.worker.transcoders.started == 2
    assert {t.source.codec.name for t in sfu.worker.transcoders.running.values()} == {"VP8"}
    before = host.video_frames
    await host.wait_for(lambda: host.video_frames >= before + 20, 30, "video at the host")
    assert len([r for r in host.received if r.kind == "video"]) == 2  # guest, phone
