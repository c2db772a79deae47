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
