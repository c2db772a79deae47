"""How one subscriber's downlink estimate is shared among its subscriptions: audio first.

Named for LiveKit's StreamAllocator (pkg/sfu/streamallocator): per subscriber, at feedback rate
(each receiver report or REMB), it decides what each of its downtracks (Subscriptions) may
carry. Audio is never dropped to make room for video: every audio subscription is reserved
``AUDIO_RESERVE_BPS`` first. What remains, less ``HEADROOM`` (a policer drops audio and video
alike once the link is full), is split between the video subscriptions; each gets it as its
``target_bps``, which its publication turns into the REMB that caps the publisher's encoder
(publication.bitrate_cap: the lowest target of the subscribers it feeds). A video subscription
whose share stays under ``PAUSE_BPS`` (by the estimate from loss too: a REMB dip alone is no
reason) is paused (not forwarded; the subscriber's page says the
video is paused for its connection) and resumes, at a keyframe, once its share has stayed over
``RESUME_BPS`` for ``RESUME_HOLD_SECONDS``: the gap between the two and the hold keep it from
flapping.

Simulcast (``source.primary.layers``, lowest first): the subscription is forwarded the
highest running layer whose cost (Publication.cost: its measured bitrate) fits its share. A
lower layer is taken at once (and when the current one stops running: its publisher shed it);
a higher one only after the share has carried it with ``UP_MARGIN`` for ``UP_HOLD_SECONDS``.
A switch is gapless (Subscription.switch_layer): the old layer is forwarded until the new
one's keyframe, asked for with a PLI, and a switch pending counts as the current layer.
``wanted`` (the highest layer the share fits, running or not) is what the
publisher is asked to send (Publication.bitrate_cap): layers nobody wants are not sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

AUDIO_RESERVE_BPS = 64_000  # Opus with in-band FEC, its RTCP and headers
HEADROOM = 0.85  # video gets this share of what audio leaves
PAUSE_BPS = 120_000  # under this, a video stream freezes more than it plays: pause it
RESUME_BPS = 200_000
PAUSE_AFTER_SECONDS = 3.0  # the share stayed under PAUSE_BPS this long (a burst is not a link)
RESUME_HOLD_SECONDS = 3.0
RUNNING_BPS = 30_000  # a layer sending less is starting or stopping: not one to switch to
UP_MARGIN = 1.1  # a higher layer needs its cost plus this margin ...
UP_HOLD_SECONDS = 2.0  # ... for this long
DOWN_HOLD_SECONDS = 1.0  # a share under the current layer's cost this long: a lower layer
DOWN_SHARP = 0.6  # ... at once under this share of its cost


class Downtrack(Protocol):
    """What the allocator reads and sets on a Subscription."""

    kind: str
    closed: bool
    paused: bool
    target_bps: int | None
    source: Any  # a Publication (its primary's ``layers``: simulcast)
    pending: Any  # the layer a gapless switch waits for (its keyframe), or None
    wanted: Any

    def set_paused(self, paused: bool) -> None: ...

    def switch_layer(self, layer: Any) -> None: ...


class Allocator:
    """One subscriber's allocator; ``allocate(subscriptions)`` after each estimate update."""

    def __init__(self, estimate: Callable[[], int], clock: Callable[[], float] = time.monotonic,
                 lossless: Callable[[], int] | None = None) -> None:  # fmt: skip
        self._estimate = estimate
        # The estimate from loss alone (None: ``estimate``): a pause needs the link to lose
        # packets, not only a receiver's delay-based REMB to dip (a starved CPU does that too).
        self._lossless = lossless or estimate
        self._clock = clock
        self._low_since: dict[int, float] = {}  # id(subscription) -> share under PAUSE_BPS since
        self._high_since: dict[int, float] = {}  # ... over RESUME_BPS since (while paused)
        self._up_since: dict[int, float] = {}  # ... could take a higher layer since
        self._down_since: dict[int, float] = {}  # ... its layer cost more than its share since
        self.layer_switches = 0
        self.pauses = 0
        self.resumes = 0

    def allocate(self, subscriptions: Iterable[Downtrack]) -> None:
        live = [s for s in subscriptions if not s.closed]
        audio = [s for s in live if s.kind == "audio"]
        video = [s for s in live if s.kind == "video"]
        if not video:
            return
        estimate = self._estimate()
        for s in audio:
            s.target_bps = AUDIO_RESERVE_BPS
        left = max(0, estimate - AUDIO_RESERVE_BPS * len(audio)) * HEADROOM
        playing = [s for s in video if not s.paused] or video
        share = int(left / len(playing))
        lossless = self._lossless()
        if lossless > estimate:
            left_by_loss = max(0, lossless - AUDIO_RESERVE_BPS * len(audio)) * HEADROOM
            pause_share = int(left_by_loss / len(playing))
        else:
            pause_share = share
        now = self._clock()
        for s in video:
            key = id(s)
            s.target_bps = share
            self._choose_layer(s, share, now)
            if not s.paused:
                self._high_since.pop(key, None)
                if pause_share >= PAUSE_BPS:
                    self._low_since.pop(key, None)
                elif now - self._low_since.setdefault(key, now) >= PAUSE_AFTER_SECONDS:
                    self._low_since.pop(key, None)
                    self.pauses += 1
                    s.set_paused(True)
            else:
                self._low_since.pop(key, None)
                if share < RESUME_BPS:
                    self._high_since.pop(key, None)
                elif now - self._high_since.setdefault(key, now) >= RESUME_HOLD_SECONDS:
                    self._high_since.pop(key, None)
                    self.resumes += 1
                    s.set_paused(False)

    def _choose_layer(self, s: Downtrack, share: int, now: float) -> None:
        primary = getattr(s.source, "primary", None)
        layers = getattr(primary, "layers", None) or []
        if len(layers) < 2:
            return
        running = [layer for layer in layers if layer.measure(now) >= RUNNING_BPS]
        fits = [layer for layer in layers if layer.cost() <= share]
        s.wanted = fits[-1] if fits else layers[0]
        if not running or s.paused:
            return
        below = [layer for layer in running if layers.index(layer) <= layers.index(s.wanted)]
        target = below[-1] if below else running[0]
        current = s.pending or s.source
        key = id(s)
        if target is current:
            self._up_since.pop(key, None)
            self._down_since.pop(key, None)
            return
        if current not in running:
            self._up_since.pop(key, None)
        elif layers.index(target) < layers.index(current):
            self._up_since.pop(key, None)
            held = now - self._down_since.setdefault(key, now) >= DOWN_HOLD_SECONDS
            if not held and share >= DOWN_SHARP * current.cost():
                return
        elif share < UP_MARGIN * target.cost():
            self._up_since.pop(key, None)
            return
        elif now - self._up_since.setdefault(key, now) < UP_HOLD_SECONDS:
            return
        else:
            self._up_since.pop(key, None)
        self._down_since.pop(key, None)
        self.layer_switches += 1
        s.switch_layer(target)
