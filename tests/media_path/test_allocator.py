"""The per-subscriber allocator (issue 13, audio first): audio keeps its share whatever the
estimate, video shares what is left, pauses when its share cannot carry it and resumes only
after the estimate has held up (no flapping); a paused stream's publisher is not held down by
it, a resumed one restarts at a keyframe without a sequence gap."""

from __future__ import annotations

from dataclasses import dataclass, field

from media_server import allocator
from media_server.allocator import Allocator

from .test_resend import Clock
from .test_subscription import KEY, Wire, bound, publication, push, rtp


@dataclass
class Track:
    kind: str
    closed: bool = False
    paused: bool = False
    target_bps: int | None = None
    source: object = None
    pending: object = None
    wanted: object = None
    changes: list[bool] = field(default_factory=list)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.changes.append(paused)

    def switch_layer(self, layer: object) -> None:
        self.source = layer


def test_audio_first_and_video_pauses_then_resumes_without_flapping() -> None:
    clock = Clock()
    estimate = [1_000_000]
    alloc = Allocator(lambda: estimate[0], clock=clock)
    audio, video = Track("audio"), Track("video")
    alloc.allocate([audio, video])
    assert audio.target_bps == allocator.AUDIO_RESERVE_BPS
    assert video.target_bps == int((1_000_000 - allocator.AUDIO_RESERVE_BPS) * allocator.HEADROOM)
    estimate[0] = 150_000  # the link cannot carry video any more
    for _ in range(2 * int(allocator.PAUSE_AFTER_SECONDS) + 2):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == [True] and audio.target_bps == allocator.AUDIO_RESERVE_BPS
    for i in range(20):  # an estimate that swings around the resume threshold: stays paused
        estimate[0] = 400_000 if i % 2 else 150_000
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == [True]
    estimate[0] = 1_000_000  # held up long enough: resumed once
    for _ in range(8):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == [True, False]


async def test_a_paused_subscription_drops_video_and_resumes_at_a_keyframe_without_a_gap() -> None:
    upstream: list[bytes] = []
    pub = publication(upstream)
    wire = Wire()
    sub = bound(pub, wire)
    notices: list[bool] = []
    sub.on_paused = lambda s, paused: notices.append(paused)
    push(pub, rtp(10, 0, payload=KEY))
    push(pub, rtp(11, 3000))
    sub.target_bps = 300_000
    assert pub.bitrate_cap() == 300_000
    sub.set_paused(True)
    assert pub.bitrate_cap() is None  # a paused subscriber does not hold the publisher down
    for seq in range(12, 20):
        push(pub, rtp(seq, 3000 * seq))
    assert sub.dropped["paused_for_bandwidth"] == 8 and len(wire.rtp) == 2
    plis = pub.plis_sent
    sub.set_paused(False)
    assert pub.plis_sent == plis + 1 or pub.keyframe_requests_throttled > 0  # asked for one
    push(pub, rtp(20, 60000))  # a delta frame: held back until the keyframe
    push(pub, rtp(21, 63000, payload=KEY))
    push(pub, rtp(22, 63000))
    out = wire.parsed()
    assert len(out) == 4 and notices == [True, False]
    assert [(p.sequence_number - out[0].sequence_number) & 0xFFFF for p in out] == [0, 1, 2, 3]


async def test_the_answer_asks_opus_publishers_for_in_band_fec_and_dtx() -> None:
    from .test_sdp_fuzz import CHROME_OFFER, _answer_or_refuse

    answer, participant = await _answer_or_refuse("\r\n".join(CHROME_OFFER) + "\r\n")
    try:
        assert answer is not None
        opus = next(line.split()[0].split(":")[1] for line in answer.splitlines()
                    if line.startswith("a=rtpmap:") and "opus/48000" in line)  # fmt: skip
        fmtp = next(line for line in answer.splitlines() if line.startswith(f"a=fmtp:{opus} "))
        params = dict(p.split("=") for p in fmtp.split(" ", 1)[1].split(";"))
        assert params["useinbandfec"] == "1" and params["usedtx"] == "1"
    finally:
        await participant.close()


def test_a_remb_dip_without_loss_lowers_the_share_but_does_not_pause() -> None:
    # A starved CPU or a short queue makes a receiver's REMB dip; pausing needs lost packets.
    clock = Clock()
    alloc = Allocator(lambda: 150_000, clock=clock, lossless=lambda: 1_500_000)
    audio, video = Track("audio"), Track("video")
    for _ in range(10):
        alloc.allocate([audio, video])
        clock.now += 1.0
    assert video.changes == [] and video.target_bps < allocator.PAUSE_BPS
