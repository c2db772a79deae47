"""Transport-wide congestion control feedback to a publisher
(draft-holmer-rmcat-transport-wide-cc-extensions-01, negotiated by ``sdpextras.transport_cc``).

The compiled path records each packet's transport sequence number and arrival time
(``rtpforward.Arrivals``, per transport) and builds the RTCP (RTPFB FMT=15); this decides when:
every ``INTERVAL_SECONDS``, as libwebrtc's RemoteEstimatorProxy sends between 50 and 250 ms.
The publisher's send-side estimator (GoogCC) then sees what its uplink loses and delays, which
our delay-based REMB (uplink.py) cannot see behind a policer; the REMB stays, as the cap the
subscribers' allocators set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from media_server.rtpforward import Arrivals, Leg

INTERVAL_SECONDS = 0.1

log = logging.getLogger("media_server.media_path")


class TransportFeedback:
    """Feedback on what ``leg`` receives with the transport-cc extension id ``ext_id`` (RFC
    8285, 1-255; ValueError otherwise): ``run(sender_ssrc, send)`` sends each feedback packet
    (bytes, unprotected RTCP) through ``send`` (the participant's SRTCP path) every
    ``INTERVAL_SECONDS`` until cancelled; ``sender_ssrc()`` gives the SSRC our RTCP to this
    participant is sent from. ``packets_sent`` counts them; packets whose element is not the
    2-byte transport sequence (``arrivals.malformed``: reported lost, forwarded all the same)
    are logged once."""

    def __init__(self, leg: Leg, ext_id: int) -> None:
        self.arrivals = Arrivals(ext_id)
        leg.arrivals = self.arrivals
        self.packets_sent = 0

    async def run(self, sender_ssrc: Callable[[], int], send: Callable[[bytes], None]) -> None:
        logged = False
        while True:
            await asyncio.sleep(INTERVAL_SECONDS)
            for packet in self.arrivals.feedback(sender_ssrc()):
                send(packet)
                self.packets_sent += 1
            if self.arrivals.malformed and not logged:
                logged = True
                log.warning("transport-cc element (id %d) not 2 bytes: those packets read as lost "
                            "(logged once)", self.arrivals.ext_id)  # fmt: skip
