"""How one subscriber's downlink estimate is shared among its subscriptions: audio first.

Named for LiveKit's StreamAllocator (pkg/sfu/streamallocator): per subscriber, at feedback rate
(each receiver report or REMB), it decides what each of its downtracks (Subscriptions) may
carry. Audio is never dropped to make room for video: every audio subscription is reserved
``AUDIO_RESERVE_BPS`` first. What remains, less ``HEADROOM`` (a policer drops audio and video
alike once the link is full), is split between the video subscriptions; each gets it as its
``target_bps``, which its publication turns into the REMB that caps the publisher's encoder
(publication.bitrate_cap: the lowest target of the subscribers it feeds). A video subscription
whose share stays under ``PAUSE_BPS`` is paused (not forwarded; the subscriber's page says the
video is paused for its connection) and resumes, at a keyframe, once its share has stayed over
``RESUME_BPS`` for ``RESUME_HOLD_SECONDS``: the gap between the two and the hold keep it from
flapping.

Simulcast layers will be chosen here the same way (the highest layer whose bitrate fits the
share); today each publication has one layer, so the levers are the publisher's bitrate and
pausing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

AUDIO_RESERVE_BPS = 64_000  # Opus with in-band FEC, its RTCP and headers
HEADROOM = 0.85  # video gets this share of what audio leaves
PAUSE_BPS = 120_000  # under this, a video stream freezes more than it plays: pause it
RESUME_BPS = 200_000
PAUSE_AFTER_SECONDS = 1.0  # the share stayed under PAUSE_BPS this long
RESUME_HOLD_SECONDS = 3.0


class Downtrack(Protocol):
    """What the allocator reads and sets on a Subscription."""

    kind: str
    closed: bool
    paused: bool
    target_bps: int | None

    def set_paused(self, paused: bool) -> None: ...


class Allocator:
    """One subscriber's allocator; ``allocate(subscriptions)`` after each estimate update."""

    def __init__(self, estimate: Callable[[], int], clock: Callable[[], float] = time.monotonic
                 ) -> None:  # fmt: skip
        self._estimate = estimate
        self._clock = clock
        self._low_since: dict[int, float] = {}  # id(subscription) -> share under PAUSE_BPS since
        self._high_since: dict[int, float] = {}  # ... over RESUME_BPS since (while paused)
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
        now = self._clock()
        for s in video:
            key = id(s)
            s.target_bps = share
            if not s.paused:
                self._high_since.pop(key, None)
                if share >= PAUSE_BPS:
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
