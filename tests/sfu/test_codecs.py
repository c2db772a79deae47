"""Codec negotiation through the signaling server: a refused m-line takes nothing else down."""

from __future__ import annotations

import re

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
