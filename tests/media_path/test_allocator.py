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
    switches: list[str] = field(default_factory=list)
    temporal: int = allocator.TEMPORAL_ALL
    temporals: list[int] = field(default_factory=list)

    def set_temporal(self, tid: int) -> None:
        self.temporal = tid
        self.temporals.append(tid)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.changes.append(paused)

    def switch_layer(self, layer: object) -> None:
        self.source = layer
        self.switches.append(getattr(layer, "rid", "?"))
        self.temporal = allocator.TEMPORAL_ALL  # as Subscription.switch_source


def test_audio_first_then_a_one_layer_video_pauses_only_on_loss_and_resumes_after_a_hold() -> None:
    clock = Clock()
    estimate = [1_000_000]
    lost_at = [-1e9]
    alloc = Allocator(lambda: estimate[0], clock=clock, lost_at=lambda: lost_at[0])
    audio, video = Track("audio"), Track("video")
    alloc.allocate([audio, video])
    assert audio.target_bps == allocator.AUDIO_RESERVE_BPS
    assert video.target_bps == int((1_000_000 - allocator.AUDIO_RESERVE_BPS) * allocator.HEADROOM)
    estimate[0] = 100_000  # one layer: the publisher follows the share, down to SINGLE_MIN_BPS
    for _ in range(10):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == []  # no loss lately: a low REMB alone pauses nothing
    lost_at[0] = clock.now  # the link loses packets at this rate
    estimate[0] = 140_000  # a 65 kbit/s share: the publisher's encoder goes that low, it plays
    for _ in range(10):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == []
    estimate[0], lost_at[0] = 100_000, clock.now
    for _ in range(2 * int(allocator.PAUSE_AFTER_SECONDS) + 2):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == [True] and audio.target_bps == allocator.AUDIO_RESERVE_BPS
    for i in range(20):  # an estimate that swings around the resume level: stays paused
        estimate[0] = 400_000 if i % 2 else 100_000
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == [True]
    estimate[0] = 400_000  # held up long enough: resumed once
    for _ in range(8):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == [True, False]


@dataclass(eq=False)
class Layer:
    rid: str
    rate: int
    nominal_bps: int
    temporal_shares: tuple[float, ...] = ()

    def cost(self) -> int:
        return self.rate or self.nominal_bps

    def nominal(self) -> int:
        return self.nominal_bps

    def measure(self, now: float) -> int:
        return self.rate


@dataclass(eq=False)
class Primary:
    layers: list[Layer]


def simulcast_track() -> tuple[Track, list[Layer]]:
    layers = [Layer("q", 150_000, 150_000), Layer("h", 500_000, 500_000),
              Layer("f", 1_400_000, 1_500_000)]  # fmt: skip
    primary = Primary(layers)
    for layer in layers:
        layer.primary = primary  # type: ignore[attr-defined]
    track = Track("video", source=layers[0])
    return track, layers


def test_layers_up_after_a_hold_down_at_once_and_the_next_one_when_a_layer_stops() -> None:
    clock = Clock()
    estimate = [3_000_000]
    alloc = Allocator(lambda: estimate[0], clock=clock)
    video, layers = simulcast_track()
    demand = alloc.allocate([Track("audio"), video])
    assert demand == allocator.AUDIO_RESERVE_BPS + int(1_500_000 / allocator.HEADROOM)
    assert video.source is layers[0] and video.wanted is layers[2]  # not before the hold
    clock.now += allocator.UP_HOLD_SECONDS + 0.1
    alloc.allocate([video])
    assert video.switches == ["f"]  # straight to the highest that fits with the margin
    estimate[0] = 1_100_000  # 935k share: under 70% of f's cost: down at once, to h
    alloc.allocate([video])
    assert video.switches == ["f", "h"]
    estimate[0] = 520_000  # 442k: under h's cost but over 70% of it: down after DOWN_HOLD
    alloc.allocate([video])
    assert video.switches == ["f", "h"]
    clock.now += allocator.DOWN_HOLD_SECONDS + 0.1
    alloc.allocate([video])
    assert video.switches == ["f", "h", "q"]
    estimate[0] = 3_000_000
    video.source = layers[2]
    layers[2].rate = 0  # the publisher stopped f (its own uplink): the best running, now
    alloc.allocate([video])
    assert video.switches[-1] == "h"


def test_a_starved_publishers_only_layer_reaches_a_subscriber_on_a_stopped_one() -> None:
    # The publisher's uplink is policed at 300 kbit/s: it stopped h and sends q at 20 kbit/s
    # (under RUNNING_BPS). A subscriber with a clean leg still on h got nothing at all; the
    # lowest layer the publisher manages to send is what it must get.
    clock = Clock()
    alloc = Allocator(lambda: 3_000_000, clock=clock)
    video, layers = simulcast_track()
    video.source = layers[1]
    layers[0].rate, layers[1].rate, layers[2].rate = 20_000, 0, 0
    alloc.allocate([Track("audio"), video])
    assert video.switches == ["q"] and video.changes == []


def test_a_layer_its_publisher_stops_and_restarts_is_taken_again_only_once_steady() -> None:
    # A publisher policed at 300 kbit/s: its encoder starts and stops h every few seconds. Each
    # switch up to h waited for its keyframe and ended when h stopped (the clinic's view of the
    # client froze 20 s of 30); a clean subscriber stays on q until h has run STEADY_SECONDS.
    clock = Clock()
    alloc = Allocator(lambda: 3_000_000, clock=clock)
    video, layers = simulcast_track()
    layers[2].rate = 0
    for _ in range(3):
        alloc.allocate([video])
        clock.now += 0.5
    assert video.switches == ["h"]  # never stopped: up after UP_HOLD_SECONDS as before
    layers[1].rate = 0
    alloc.allocate([video])
    assert video.switches == ["h", "q"]
    layers[1].rate = 120_000  # h is back
    for _ in range(int(allocator.STEADY_SECONDS / 0.5) - 1):
        clock.now += 0.5
        alloc.allocate([video])
    assert video.switches == ["h", "q"]
    clock.now += 1.0  # steady now: up after UP_HOLD_SECONDS as for any layer
    alloc.allocate([video])
    clock.now += allocator.UP_HOLD_SECONDS
    alloc.allocate([video])
    assert video.switches == ["h", "q", "h"]


def test_a_simulcast_video_is_paused_only_when_its_lowest_layer_cannot_be_carried() -> None:
    clock = Clock()
    estimate = [300_000]  # a 300 kbit/s link: q (150k) fits, video keeps playing on it
    alloc = Allocator(lambda: estimate[0], clock=clock, lost_at=lambda: clock.now)
    video, layers = simulcast_track()
    for _ in range(20):
        alloc.allocate([Track("audio"), video])
        clock.now += 0.5
    assert video.changes == [] and video.source is layers[0]
    estimate[0] = 120_000  # 47k share
    for _ in range(10):
        alloc.allocate([Track("audio"), video])
        clock.now += 0.5
    assert video.changes == [True]
    video.source = layers[1]
    estimate[0] = 1_000_000  # h would fit, but a resumed video starts on its lowest layer
    for _ in range(10):
        alloc.allocate([Track("audio"), video])
        clock.now += 0.5
    assert video.changes == [True, False] and video.switches[0] == "q"  # resumes on q


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
    assert pub.bitrate_cap() == allocator.SINGLE_TOP_BPS  # a paused one holds nobody down
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


def estimate_for(share: int) -> int:
    return int(share / allocator.HEADROOM) + allocator.AUDIO_RESERVE_BPS + 1


def test_a_lower_frame_rate_bridges_a_switch_down_and_keeps_the_lowest_layer_playing() -> None:
    # L1T3 layers: TID 0 frames carry 45% of a layer's bitrate, TID 0-1 65% (measured).
    clock = Clock()
    estimate = [3_000_000]
    alloc = Allocator(lambda: estimate[0], clock=clock, lost_at=lambda: clock.now)
    video, layers = simulcast_track()
    for layer in layers:
        layer.temporal_shares = (0.45, 0.65, 1.0)
    audio = Track("audio")
    video.source = layers[2]  # on f (1.4 Mbit/s), every frame
    alloc.allocate([audio, video])
    assert video.temporals == []
    # A 1 Mbit/s share: f no longer fits, but is over DOWN_SHARP of it, so the switch to h
    # waits DOWN_HOLD_SECONDS (and then h's keyframe). Until then: f's TID 0-1 (910k), now.
    estimate[0] = estimate_for(1_000_000)
    alloc.allocate([audio, video])
    assert video.temporals == [1] and video.switches == []
    clock.now += allocator.DOWN_HOLD_SECONDS + 0.1
    alloc.allocate([audio, video])
    assert video.switches == ["h"] and video.temporal == allocator.TEMPORAL_ALL  # h fits whole
    alloc.allocate([audio, video])
    assert video.temporal == allocator.TEMPORAL_ALL
    # The lowest layer at a share under its cost (150k): its lower frame rates, not a pause.
    estimate[0] = estimate_for(100_000)
    for _ in range(2 * int(allocator.PAUSE_AFTER_SECONDS) + 4):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.source is layers[0] and video.temporal == 1  # 97.5k fits
    assert video.changes == []
    estimate[0] = estimate_for(80_000)
    alloc.allocate([audio, video])
    assert video.temporal == 0  # 67.5k
    estimate[0] = estimate_for(100_000)  # TID 1 fits, but not with UP_MARGIN: no flapping
    alloc.allocate([audio, video])
    assert video.temporal == 0
    estimate[0] = estimate_for(110_000)
    alloc.allocate([audio, video])
    assert video.temporal == 1
    estimate[0] = estimate_for(170_000)  # 1.1 x 150k: every frame again
    alloc.allocate([audio, video])
    assert video.temporal == allocator.TEMPORAL_ALL and video.temporals[-3:] == [0, 1, 255]
    # Paused only under PAUSE_FRACTION of the lowest layer's TID 0 cost (67.5k).
    estimate[0] = estimate_for(45_000)
    for _ in range(2 * int(allocator.PAUSE_AFTER_SECONDS) + 2):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == [] and video.temporal == 0
    estimate[0] = estimate_for(35_000)
    for _ in range(2 * int(allocator.PAUSE_AFTER_SECONDS) + 2):
        alloc.allocate([audio, video])
        clock.now += 0.5
    assert video.changes == [True]


def test_a_layer_without_temporal_layers_is_forwarded_whole() -> None:
    clock = Clock()
    alloc = Allocator(lambda: estimate_for(100_000), clock=clock)
    video, layers = simulcast_track()  # no TID (H.264, or VP8 without temporal layers)
    video.temporal = 1  # left from a stream that had them
    alloc.allocate([Track("audio"), video])
    assert video.temporal == allocator.TEMPORAL_ALL


def test_a_video_its_leg_carries_without_loss_is_not_paused_on_a_small_share() -> None:
    # After the loss that lowered the estimate, q and audio get through with 2% loss; the
    # share (the estimate less audio's reserve) says 22 kbit/s.
    clock = Clock()
    loss = [0.02]
    alloc = Allocator(lambda: estimate_for(22_000), clock=clock, lost_at=lambda: clock.now - 1,
                      loss=lambda: loss[0])  # fmt: skip
    video, layers = simulcast_track()
    for layer in layers:
        layer.temporal_shares = (0.3, 0.55, 1.0)
    for _ in range(4 * int(allocator.PAUSE_AFTER_SECONDS)):
        alloc.allocate([Track("audio"), video])
        clock.now += 0.5
    assert video.changes == [] and video.temporal == allocator.TEMPORAL_ALL  # it carries q whole
    loss[0] = 0.15  # the leg loses what it is forwarded: paused at once (the share was low long)
    alloc.allocate([Track("audio"), video])
    assert video.changes == [True]


def test_the_frame_rate_follows_the_estimate_without_its_hold() -> None:
    # Two videos on a 500 kbit/s leg whose estimate a burst of loss lowered to 216 kbit/s and
    # holds there: the unheld estimate grew back to 520 kbit/s without loss, so each lowest
    # layer is forwarded whole (a layer switch up still waits for the held estimate).
    clock = Clock()
    alloc = Allocator(lambda: 216_000, clock=clock, unheld=lambda: 520_000)
    videos = []
    for _ in range(2):
        video, layers = simulcast_track()
        for layer in layers:
            layer.temporal_shares = (0.3, 0.55, 1.0)
        videos.append(video)
    for _ in range(4):
        alloc.allocate([Track("audio"), Track("audio"), *videos])
        clock.now += 0.5
    assert [v.temporal for v in videos] == [allocator.TEMPORAL_ALL] * 2
    assert [v.switches for v in videos] == [[], []]
    alloc = Allocator(lambda: 216_000, clock=clock)  # held: TID 0 only
    for _ in range(2):
        alloc.allocate([Track("audio"), Track("audio"), *videos])
    assert [v.temporal for v in videos] == [0, 0]


def test_the_lowest_layer_loses_frames_only_for_loss_at_what_it_is_forwarded_now() -> None:
    # A switch up to h failed (38% lost) and the leg's estimate fell far under what it carries:
    # back on q, the window that saw h's burst began before the switch and says nothing of q.
    clock = Clock()
    window = [0.0, 0.38]  # (began, fraction lost) of the last loss window
    alloc = Allocator(lambda: estimate_for(60_000), clock=clock, lost_at=lambda: clock.now,
                      loss=lambda: window[1], window_began=lambda: window[0])  # fmt: skip
    video, layers = simulcast_track()
    for layer in layers:
        layer.temporal_shares = (0.3, 0.55, 1.0)
    clock.now = 1.0  # on q from now
    alloc.allocate([Track("audio"), video])
    assert video.temporal == allocator.TEMPORAL_ALL
    window[:] = [1.2, 0.01]  # q is carried: whole
    clock.now = 1.8
    alloc.allocate([Track("audio"), video])
    assert video.temporal == allocator.TEMPORAL_ALL
    window[:] = [1.8, 0.3]  # q is not carried: its lower frame rates
    clock.now = 2.4
    alloc.allocate([Track("audio"), video])
    assert video.temporal == 0 and video.changes == []
    # A layer above the lowest bridges its switch down at once, loss or not.
    alloc = Allocator(lambda: estimate_for(1_200_000), clock=clock, lost_at=lambda: clock.now,
                      loss=lambda: 0.0, window_began=lambda: clock.now)  # fmt: skip
    video, layers = simulcast_track()
    for layer in layers:
        layer.temporal_shares = (0.3, 0.55, 1.0)
    video.source = layers[2]  # f: 1.4 Mbit/s, its TID 0-1 770 kbit/s
    alloc.allocate([Track("audio"), video])
    assert video.temporal == 1 and video.switches == []
