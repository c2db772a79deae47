"""The packets a subscription sent, by sequence number, for answering NACKs."""

from __future__ import annotations


class SendHistory:
    """A ring of the last ``capacity`` (rounded up to a power of two) packets sent.

    A slot holds the RTP packet as sent, before SRTP (never modified after it is stored); a lookup checks the stored sequence
    number so a slot overwritten by a newer packet is never resent for an older one.
    """

    __slots__ = ("_mask", "_packets")

    def __init__(self, capacity: int) -> None:
        size = 1 << max(capacity - 1, 1).bit_length()
        self._mask = size - 1
        self._packets: list[bytes | bytearray | None] = [None] * size

    @property
    def capacity(self) -> int:
        return self._mask + 1

    def store(self, seq: int, packet: bytes | bytearray) -> None:
        self._packets[seq & self._mask] = packet

    def get(self, seq: int) -> bytes | bytearray | None:
        packet = self._packets[seq & self._mask]
        if packet is None or (packet[2] << 8 | packet[3]) != seq:
            return None
        return packet
