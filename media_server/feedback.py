"""Transport-wide congestion control feedback to a publisher
(draft-holmer-rmcat-transport-wide-cc-extensions-01, negotiated by ``sdpextras.transport_cc``).

The compiled path records each packet's transport sequence number and arrival time
(``rtpforward.Arrivals``, per transport) and builds the RTCP (RTPFB FMT=15); this decides when:
every ``INTERVAL_SECONDS``, as libwebrtc's RemoteEstimatorProxy sends between 50 and 250 ms.
The publisher's send-side estimator (GoogCC) then sees what its uplink loses and delays, which
our delay-based REMB (uplink.py) cannot see behind a policer; the REMB stays, as the cap the
subscribers' allocators set.

One ``FeedbackClock`` per event loop (per worker process) sends the feedback of all its
publishers on one timer, as mediasoup and LiveKit tick their workers: a task per publisher woke
the loop ten times a second each, which cost an idle participant more CPU than everything else
it did (issue 17: 1.3 ms/s per participant at one consult, 10 wake-ups/s each).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

from media_server.faults import Faults
from media_server.rtpforward import Arrivals, Leg

INTERVAL_SECONDS = 0.1

log = logging.getLogger("media_server.media_path")


class TransportFeedback:
    """Feedback on what ``leg`` receives with the transport-cc extension id ``ext_id`` (RFC
    8285, 1-255; ValueError otherwise). ``start(sender_ssrc, send, faults)`` has the event
    loop's ``FeedbackClock`` send each feedback packet (bytes, unprotected RTCP) through
    ``send`` (the participant's SRTCP path) every ``INTERVAL_SECONDS`` until ``stop()``;
    ``sender_ssrc()`` gives the SSRC our RTCP to this participant is sent from; an exception
    of either is recorded in ``faults`` (place ``transport-cc``) and the next tick tries again.
    ``packets_sent`` counts the packets; packets whose element is not the 2-byte transport
    sequence (``arrivals.malformed``: reported lost, forwarded all the same) are logged once."""

    def __init__(self, leg: Leg, ext_id: int) -> None:
        self.arrivals = Arrivals(ext_id)
        leg.arrivals = self.arrivals
        self.packets_sent = 0
        self._logged = False
        self._clock: FeedbackClock | None = None
        self._sender_ssrc: Callable[[], int] = lambda: 0
        self._send: Callable[[bytes], None] = lambda packet: None
        self._faults = Faults("transport-cc")

    def start(
        self, sender_ssrc: Callable[[], int], send: Callable[[bytes], None], faults: Faults
    ) -> None:
        self._sender_ssrc, self._send, self._faults = sender_ssrc, send, faults
        self._clock = FeedbackClock.of(asyncio.get_running_loop())
        self._clock.add(self)

    def stop(self) -> None:
        if self._clock is not None:
            self._clock.discard(self)
            self._clock = None

    def send_due(self) -> None:
        """Send the feedback on what arrived since the last (nothing when nothing did)."""
        try:
            for packet in self.arrivals.feedback(self._sender_ssrc()):
                self._send(packet)
                self.packets_sent += 1
        except Exception as exc:
            self._faults.record("transport-cc", exc)
        if self.arrivals.malformed and not self._logged:
            self._logged = True
            log.warning("transport-cc element (id %d) not 2 bytes: those packets read as lost "
                        "(logged once)", self.arrivals.ext_id)  # fmt: skip


class FeedbackClock:
    """The one timer of an event loop's ``TransportFeedback``s: while any is started, a tick
    every ``INTERVAL_SECONDS`` (a loop timer, no task) has each send what is due, in the order
    they started; with none, no timer is armed. ``of(loop)`` gives the loop's clock; ``add``
    runs in that loop. The clock keeps no reference to its loop (it is the value of a weak
    mapping from the loop: a reference back would keep every loop alive)."""

    _clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FeedbackClock] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.members: dict[TransportFeedback, None] = {}  # an ordered set
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> FeedbackClock:
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls()
        return clock

    def add(self, feedback: TransportFeedback) -> None:
        self.members[feedback] = None
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(INTERVAL_SECONDS, self._tick)

    def discard(self, feedback: TransportFeedback) -> None:
        self.members.pop(feedback, None)
        if not self.members and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _tick(self) -> None:
        self.timer = None
        for feedback in list(self.members):
            feedback.send_due()
        if self.members and self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(INTERVAL_SECONDS, self._tick)
