"""The SFU's SCTP transport (data channels): what a member can make the server buffer is bounded.

aiortc's ``RTCSctpTransport`` advertises a 256 KiB max-message-size (RFC 8841) and a 1 MiB
receive window, and enforces neither: a member that ignores both can have any message
reassembled in full (a 300 KB chat message was, before the chat layer refused it) and can keep
unfinished messages in reassembly without bound. ``bound(sctp, ...)`` turns one peer
connection's SCTP transport, before the answer is created, into a ``BoundedSctpTransport``:

- it advertises ``max_message_bytes`` (SDP ``a=max-message-size``; browsers refuse to send
  more) and a receive window of ``WINDOW_MESSAGES`` such messages;
- a DATA chunk that would take a message past ``max_message_bytes`` or the held data past the
  window it advertised aborts the association (RFC 9260 9.1: ABORT): the member's data
  channels close, counted once as ``data_channel_overrun`` in ``dropped`` and logged once.
  Media is untouched.

``tests/media_path/test_hooks.py`` fails loudly if an aiortc name used here moves.
"""

from __future__ import annotations

import logging

from aiortc.rtcsctptransport import (
    SCTP_DATA_FIRST_FRAG,
    SCTP_DATA_LAST_FRAG,
    DataChunk,
    RTCSctpCapabilities,
    RTCSctpTransport,
    tsn_minus_one,
)
from aiortc.utils import uint32_gte

log = logging.getLogger(__name__)

WINDOW_MESSAGES = 4


class BoundedSctpTransport(RTCSctpTransport):
    """An ``RTCSctpTransport`` that refuses to hold more than it advertised (see the module)."""

    max_message_bytes: int
    dropped: dict[str, int]
    overrun: bool

    def getCapabilities(self) -> RTCSctpCapabilities:  # type: ignore[override]
        return RTCSctpCapabilities(maxMessageSize=self.max_message_bytes)

    async def _receive_data_chunk(self, chunk: DataChunk) -> None:
        if self.overrun:
            return
        duplicate = (
            uint32_gte(self._last_received_tsn, chunk.tsn) or chunk.tsn in self._sack_misordered
        )
        size = len(chunk.user_data)
        if not duplicate and (
            size > self._advertised_rwnd
            or self._message_bytes(chunk) + size > self.max_message_bytes
        ):
            await self._overrun()
            return
        await super()._receive_data_chunk(chunk)

    def _message_bytes(self, chunk: DataChunk) -> int:
        """Bytes already held of the message ``chunk`` continues (a message's fragments have
        consecutive TSNs, RFC 9260 6.9; later fragments held early count in the window)."""
        stream = self._inbound_streams.get(chunk.stream_id)
        if chunk.flags & SCTP_DATA_FIRST_FRAG or stream is None:
            return 0
        held = {c.tsn: c for c in stream.reassembly}
        total, tsn = 0, tsn_minus_one(chunk.tsn)
        while (previous := held.get(tsn)) is not None and not previous.flags & SCTP_DATA_LAST_FRAG:
            total += len(previous.user_data)
            if previous.flags & SCTP_DATA_FIRST_FRAG:
                break
            tsn = tsn_minus_one(tsn)
        return total

    async def _overrun(self) -> None:
        self.overrun = True
        self.dropped["data_channel_overrun"] = self.dropped.get("data_channel_overrun", 0) + 1
        log.warning(
            "data channel: a message past %d bytes or more than the window; association aborted",
            self.max_message_bytes,
        )
        self._inbound_streams.clear()  # what was held goes now, not when the peer is gone
        await self.stop()


def bound(sctp: RTCSctpTransport, max_message_bytes: int, dropped: dict[str, int]) -> None:
    """Make ``sctp`` a BoundedSctpTransport (before the answer: it advertises the size)."""
    if isinstance(sctp, BoundedSctpTransport):
        return
    sctp.__class__ = BoundedSctpTransport
    sctp.max_message_bytes = max_message_bytes
    sctp.dropped = dropped
    sctp.overrun = False
    sctp._advertised_rwnd = WINDOW_MESSAGES * max_message_bytes
