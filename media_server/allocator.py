"""How one subscriber's downlink estimate is shared among its subscriptions: audio first.

Named for LiveKit's StreamAllocator (pkg/sfu/streamallocator): per subscriber, whenever its
estimate moves (a loss window closed, a REMB) and at each report tick, it decides what each of
its downtracks (Subscriptions) may carry. Audio is never dropped to make room for video: every
audio subscription is reserved ``AUDIO_RESERVE_BPS`` first. What remains, less ``HEADROOM`` (a
policer drops audio and video alike once the link is full), is split between the video
subscriptions that play; each gets it as its ``target_bps``.

Simulcast (``source.primary.layers``, lowest first): the subscription is forwarded the
highest running layer whose cost (Publication.cost: its measured bitrate) fits its share (running:
sending ``RUNNING_BPS`` at least, else, when no layer does, sending at all). A
lower layer is taken at once when the share falls under ``DOWN_SHARP`` of the current layer's
cost or the current one stopped (its publisher shed it), and after ``DOWN_HOLD_SECONDS``
under its cost; a higher one after the share has carried it with ``UP_MARGIN`` for
``UP_HOLD_SECONDS``; a layer its publisher stopped within ``FLAP_SECONDS`` is taken only
after it has run ``STEADY_SECONDS`` again (a starved encoder's higher layers come and go, and
every switch waits for a keyframe). Failed upgrades are not retried at once: the estimate itself holds under
the point where loss appeared (estimator.py, its backoff). Every switch is gapless
(Subscription.switch_layer: the old layer is forwarded until the new one's keyframe).
``wanted`` is the highest layer the share fits (running or not): the publisher keeps the layers
up to the highest any subscriber wants or is one step under active (Publication.active_layers).

One layer (no simulcast): the publisher's encoder follows the share (its REMB is the lowest
share among the subscriptions it feeds, Publication.bitrate_cap), so the stream adapts by its
bitrate and is only paused under ``SINGLE_MIN_BPS``.

Pausing: a video whose share stays under ``PAUSE_FRACTION`` of its lowest layer's cost (its
lowest temporal layer's; one layer: ``SINGLE_MIN_BPS``) for ``PAUSE_AFTER_SECONDS``, with loss
having lowered the estimate lately and the leg still losing ``PAUSE_LOSS`` (a REMB dip alone
is no reason: a receiver starved of CPU sends those), is paused (not
forwarded; the subscriber's page says the video is paused for its connection). It resumes on
its lowest layer, at a keyframe, once its share has carried that layer for
``RESUME_HOLD_SECONDS`` (the estimate grows back by itself while only audio flows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

# The adaptation trace: every allocation and every REMB to a publisher at debug level
# (server.log_levels = {"televisit.adaptation" = "debug"}; benchmarks/impair reads it), layer
# switches, pauses and resumes at info.
TRACE = logging.getLogger("televisit.adaptation")

AUDIO_RESERVE_BPS = 64_000  # Opus with in-band FEC, its RTCP and headers
HEADROOM = 0.85  # video gets this share of what audio leaves
SINGLE_MIN_BPS = 80_000  # one-layer video: under this it freezes more than it plays
SINGLE_TOP_BPS = 2_500_000  # what a one-layer 720p publisher sends at most (libwebrtc's max)
PAUSE_FRACTION = 0.6  # paused when the share stays under this part of the lowest layer
PAUSE_AFTER_SECONDS = 3.0
RESUME_HOLD_SECONDS = 2.0
LOSS_RECENT_SECONDS = 10.0  # a pause needs loss to have lowered the estimate this lately
PAUSE_LOSS = 0.10  # ... and the leg to lose this much still (its last loss window)
RUNNING_BPS = 30_000  # a layer sending less is starting or stopping: not one to switch to
UP_MARGIN = 1.1  # a higher layer needs its cost plus this margin ...
UP_HOLD_SECONDS = 1.0  # ... for this long
FLAP_SECONDS = 20.0  # a layer its publisher stopped this lately ...
STEADY_SECONDS = 5.0  # ... is switched to only once it has run this long again
DOWN_HOLD_SECONDS = 1.0  # a share under the current layer's cost this long: a lower layer
DOWN_SHARP = 0.7  # ... at once under this share of its cost
TEMPORAL_ALL = 255  # Downtrack.temporal: every temporal layer (rtpforward.c)


class Downtrack(Protocol):
    """What the allocator reads and sets on a Subscription."""

    kind: str
    closed: bool
    paused: bool
    target_bps: int | None
    source: Any  # a Publication (its primary's ``layers``: simulcast)
    pending: Any  # the layer a gapless switch waits for (its keyframe), or None
    wanted: Any
    temporal: int  # the highest VP8 temporal layer forwarded (TEMPORAL_ALL: every one)

    def set_paused(self, paused: bool) -> None: ...

    def set_temporal(self, tid: int) -> None: ...

    def switch_layer(self, layer: Any) -> None: ...


@dataclass
class _Timers:
    low_since: float | None = None  # share under the pause level since
    high_since: float | None = None  # ... over the resume level since (while paused)
    up_since: float | None = None  # could take a higher layer since
    down_since: float | None = None  # its layer cost more than its share since
    forwarded: tuple[Any, int] | None = None  # (layer, temporal target) forwarded ...
    forwarded_since: float = -1e9  # ... since


@dataclass
class _LayerState:
    running_since: float | None = None
    stopped_at: float | None = None  # when it last stopped after running
    steady_bps: int = 0  # its cost the last time it had run STEADY_SECONDS


class Allocator:
    """One subscriber's allocator: ``allocate(subscriptions)`` after each estimate update;
    returns the demand (bits/s: what the subscriptions could use at their top, for
    DownlinkEstimator.demand) and sets ``constrained`` (a simulcast video is paused, or held
    under a layer its publisher sends, by its share: a probe could free it,
    DownlinkEstimator.probe_goal). ``lost_at()``: when loss last lowered the estimate;
    ``loss()``: the fraction the leg lost in its last loss window (0..1), ``window_began()``:
    when that window began; ``unheld()``: the
    estimate without its hold at a congestion point (DownlinkEstimator.unheld_estimate), which
    the frame rate (temporal layers) follows."""

    def __init__(self, estimate: Callable[[], int], clock: Callable[[], float] = time.monotonic,
                 lost_at: Callable[[], float] | None = None, owner: str = "",
                 loss: Callable[[], float] | None = None,
                 unheld: Callable[[], int] | None = None,
                 window_began: Callable[[], float] | None = None) -> None:  # fmt: skip
        self._estimate = estimate
        self._window_began = window_began or (lambda: clock())
        self._unheld = unheld or estimate
        self._lost_at = lost_at or clock
        self._loss = loss or (lambda: 1.0)
        self._clock = clock
        self._owner = owner
        self._timers: dict[int, _Timers] = {}
        self._layer_states: dict[int, _LayerState] = {}
        self.constrained = False
        self.layer_switches = 0
        self.pauses = 0
        self.resumes = 0

    def allocate(self, subscriptions: Iterable[Downtrack]) -> int:
        self.constrained = False
        live = [s for s in subscriptions if not s.closed]
        audio = [s for s in live if s.kind == "audio"]
        video = [s for s in live if s.kind == "video"]
        for s in audio:
            s.target_bps = AUDIO_RESERVE_BPS
        demand = AUDIO_RESERVE_BPS * len(audio)
        if not video:
            return demand
        estimate = self._estimate()
        playing = [s for s in video if not s.paused] or video

        def share_of(estimate: int) -> int:
            return int(max(0, estimate - AUDIO_RESERVE_BPS * len(audio)) * HEADROOM / len(playing))

        share = share_of(estimate)
        frame_share = max(share, share_of(self._unheld()))
        now = self._clock()
        for key in set(self._timers) - {id(s) for s in video}:
            del self._timers[key]
        for key in set(self._layer_states) - {id(x) for s in video for x in layers_of(s)}:
            del self._layer_states[key]
        for s in video:
            timers = self._timers.setdefault(id(s), _Timers())
            s.target_bps = share
            layers = layers_of(s)
            if layers:
                demand += int(max(layers[-1].cost(), layers[-1].nominal()) / HEADROOM)
                floor = temporal_cost(layers[0], layers[0].cost(), 0)
            else:
                demand += int(SINGLE_TOP_BPS / HEADROOM)
                floor = SINGLE_MIN_BPS
            if s.paused:
                self.constrained = self.constrained or bool(layers)
                self._maybe_resume(s, timers, share, floor, layers, now, estimate)
                continue
            if layers:
                self._choose_layer(s, timers, layers, share, now, estimate)
                self._choose_temporal(s, timers, layers, frame_share, now)
            self._maybe_pause(s, timers, share, floor, now, estimate)
        return demand

    def _maybe_pause(self, s: Downtrack, timers: _Timers, share: int, floor: int, now: float,
                     estimate: int) -> None:  # fmt: skip
        lossy = now - self._lost_at() < LOSS_RECENT_SECONDS
        if share >= PAUSE_FRACTION * floor or not lossy:
            timers.low_since = None
            return
        if timers.low_since is None:
            timers.low_since = now
        # A leg that carries what it is forwarded now (its lowest frame rate, say) without
        # loss keeps it: its share is an estimate (less a guess of audio's), not a measure.
        # On a 150 kbit/s link the lowest layer's TID 0 and audio got through with 2% loss,
        # and a share of 22 kbit/s paused the video for 4 s.
        if now - timers.low_since >= PAUSE_AFTER_SECONDS and self._loss() >= PAUSE_LOSS:
            timers.low_since = None
            self.pauses += 1
            TRACE.info("video paused", extra=self._fields(s, estimate, share))
            s.set_paused(True)

    def _maybe_resume(self, s: Downtrack, timers: _Timers, share: int, floor: int,
                      layers: list[Any], now: float, estimate: int) -> None:  # fmt: skip
        if share < floor:
            timers.high_since = None
            return
        if timers.high_since is None:
            timers.high_since = now
        if now - timers.high_since < RESUME_HOLD_SECONDS:
            return
        timers.high_since = None
        self.resumes += 1
        if layers and s.source is not layers[0]:
            s.switch_layer(layers[0])  # nothing is forwarded: the lowest layer, at its keyframe
        TRACE.info("video resumed", extra=self._fields(s, estimate, share))
        s.set_paused(False)

    def _choose_layer(self, s: Downtrack, timers: _Timers, layers: list[Any], share: int,
                      now: float, estimate: int) -> None:  # fmt: skip
        rates = [layer.measure(now) for layer in layers]
        steady = {id(layer) for layer, rate in zip(layers, rates, strict=True)
                  if self._steady(layer, rate, now)}  # fmt: skip
        cost = self._cost
        fits = [layer for layer in layers if cost(layer) <= share]
        s.wanted = fits[-1] if fits else layers[0]
        # A publisher whose own uplink is starved may send every layer under RUNNING_BPS:
        # whatever it manages to send is still better than a stopped layer (nothing at all).
        running = ([layer for layer, rate in zip(layers, rates, strict=True) if rate >= RUNNING_BPS]
                   or [layer for layer, rate in zip(layers, rates, strict=True) if rate > 0])  # fmt: skip
        if not running:
            return
        current = s.pending or s.source
        rank = layers.index
        # A starved publisher's encoder starts and stops its higher layers every few seconds:
        # each switch to one waits for its keyframe and ends when it stops again (the clinic's
        # view of a client policed at 300 kbit/s froze 20 s of 30 that way). Such a layer is
        # switched to again only once it has run STEADY_SECONDS (``steady``, above).
        choosable = [layer for layer in running
                     if id(layer) in steady or layer is current] or running  # fmt: skip
        below = [layer for layer in choosable if cost(layer) <= share]
        target = below[-1] if below else choosable[0]
        top = choosable[-1]  # by the same margin as an upgrade, or a share in between waits
        self.constrained = self.constrained or (top is not current
                                                and UP_MARGIN * cost(top) > share)  # fmt: skip
        if current not in running:  # its publisher stopped it: the best one running, now
            self._switch(s, timers, target, estimate, share, "layer stopped")
            return
        if rank(target) < rank(current):
            timers.up_since = None
            if timers.down_since is None:
                timers.down_since = now
            if share < DOWN_SHARP * cost(current) or now - timers.down_since >= DOWN_HOLD_SECONDS:
                self._switch(s, timers, target, estimate, share, "down")
            return
        timers.down_since = None
        higher = [layer for layer in choosable
                  if rank(layer) > rank(current) and UP_MARGIN * cost(layer) <= share]  # fmt: skip
        if not higher:
            timers.up_since = None
            return
        if timers.up_since is None:
            timers.up_since = now
        if now - timers.up_since >= UP_HOLD_SECONDS:
            self._switch(s, timers, higher[-1], estimate, share, "up")

    def _choose_temporal(self, s: Downtrack, timers: _Timers, layers: list[Any], share: int,
                         now: float) -> None:  # fmt: skip
        """The frame rate within the layer forwarded: its temporal layers up to the highest
        whose cost fits the share (the lowest one at least), down when the current one no
        longer fits and with ``UP_MARGIN`` to go up. The layer choice stays by whole layers,
        so this bridges a switch down until its keyframe (at once), and lets the lowest layer
        play at a lower frame rate where it would freeze or pause. On the lowest layer it goes
        down only once the leg loses ``PAUSE_LOSS`` of what it is forwarded now (a loss window
        begun since): after a burst of loss (a switch up that failed) the estimate reads far
        under what the link carries, and a 500 kbit/s leg that carried two lowest layers
        whole was given them at 5-10 fps for seconds."""
        layer = s.source
        if timers.forwarded != (layer, s.temporal):
            timers.forwarded, timers.forwarded_since = (layer, s.temporal), now
        levels = len(getattr(layer, "temporal_shares", ()))
        if levels < 2:
            if s.temporal != TEMPORAL_ALL:
                s.set_temporal(TEMPORAL_ALL)
            return
        steady = self._cost(layer)  # a restarting layer at its steady cost, as for switches

        def cost(tid: int) -> int:
            return temporal_cost(layer, steady, tid)

        level = min(s.temporal, levels - 1)
        losing = (self._window_began() >= timers.forwarded_since
                  and self._loss() >= PAUSE_LOSS)  # fmt: skip
        if cost(level) > share and (layer is not layers[0] or s.pending is not None or losing):
            level = max([tid for tid in range(level) if cost(tid) <= share], default=0)
        else:
            level = max([tid for tid in range(level, levels) if UP_MARGIN * cost(tid) <= share],
                        default=level)  # fmt: skip
        target = TEMPORAL_ALL if level == levels - 1 else level
        if target != s.temporal:
            TRACE.info("temporal layer", extra={**self._fields(s, self._estimate(), share),
                                                "to": target})  # fmt: skip
            s.set_temporal(target)

    def _cost(self, layer: Any) -> int:
        """What forwarding ``layer`` takes (bits/s): its measured cost, or, while it ramps up
        again after a stop, what it cost when it last ran steadily (restarting, its encoder
        starts low: a layer the share fitted at 300 kbit/s was at 800 two seconds later, and
        the switch to it froze a policed subscriber's video)."""
        state = self._layer_states.get(id(layer))
        return max(layer.cost(), state.steady_bps if state is not None else 0)

    def _steady(self, layer: Any, rate: int, now: float) -> bool:
        """Track when ``layer`` runs and stops; False while it stopped within FLAP_SECONDS and
        has not run STEADY_SECONDS since."""
        state = self._layer_states.setdefault(id(layer), _LayerState())
        if rate >= RUNNING_BPS:
            if state.running_since is None:
                state.running_since = now
            elif now - state.running_since >= STEADY_SECONDS:
                state.steady_bps = layer.cost()
        elif state.running_since is not None:
            state.running_since = None
            # One we asked its publisher to stop (nobody needed it) did not flap: it is taken
            # as soon as it runs again (a cap lifted waited STEADY_SECONDS more for it).
            if getattr(layer, "requested", lambda: True)():
                state.stopped_at = now
        if state.stopped_at is None or now - state.stopped_at >= FLAP_SECONDS:
            return True
        return state.running_since is not None and now - state.running_since >= STEADY_SECONDS

    def _switch(self, s: Downtrack, timers: _Timers, layer: Any, estimate: int, share: int,
                why: str) -> None:  # fmt: skip
        timers.up_since = timers.down_since = None
        if layer is (s.pending or s.source):
            return
        self.layer_switches += 1
        TRACE.info("layer switch", extra={**self._fields(s, estimate, share), "why": why,
                                          "to": layer.rid})  # fmt: skip
        s.switch_layer(layer)

    def _fields(self, s: Downtrack, estimate: int, share: int) -> dict[str, Any]:
        return {"participant": self._owner, "stream": getattr(s, "stream_id", None),
                "layer": getattr(s.source, "rid", None), "estimate_bps": estimate,
                "share_bps": share}  # fmt: skip


def temporal_cost(layer: Any, cost: int, tid: int) -> int:
    """What forwarding the frames of ``layer``'s temporal layers up to ``tid`` takes (bits/s),
    of ``cost`` for all of them (Publication.temporal_shares: measured shares)."""
    shares = getattr(layer, "temporal_shares", ())
    return int(cost * shares[tid]) if tid < len(shares) - 1 else cost


def layers_of(s: Downtrack) -> list[Any]:
    """The simulcast layers ``s`` chooses among, lowest first; [] for one layer."""
    primary = getattr(s.source, "primary", None)
    layers = getattr(primary, "layers", None) or []
    return layers if len(layers) > 1 else []
