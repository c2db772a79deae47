"""RTP headers read and rewritten as bytes (RFC 3550, header extensions RFC 8285).

aiortc's ``RtpPacket.parse``/``serialize`` costs ~4 us and drops every header extension it does
not know, so the forwarding path never builds packet objects. The per-packet parse and rewrite
are compiled (``rtpforward.c``, which accepts exactly what ``parse`` accepts: a property test
checks it); this module serves the paths that are not per packet and plans the extension
rewrite.
"""

from __future__ import annotations

import logging
import struct
from typing import NamedTuple

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap

log = logging.getLogger(__name__)

FIXED = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
EXTENSION_HEADER = struct.Struct("!HH")  # profile, length in 32-bit words
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
URI_TOFFSET = "urn:ietf:params:rtp-hdrext:toffset"
URI_TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
URI_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
URI_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

# Value lengths (bytes) a receiver requires of the fixed-size extensions it knows: aiortc's
# HeaderExtensionsMap.get unpacks each with struct and raises struct.error (not ValueError,
# which its transport would catch) on any other length, which ends its receive task.
# RFC 6464 (audio level), RFC 5450 (toffset), abs-send-time and transport-cc (webrtc.org).
FIXED_LENGTHS = {URI_AUDIO_LEVEL: 1, URI_ABS_SEND_TIME: 3, URI_TOFFSET: 3, URI_TRANSPORT_CC: 2}
# Extensions whose values name a publisher's stream (RFC 8852): they mean nothing on a
# subscriber's leg, and a receiver that knows them refuses a value that is not ASCII.
PUBLISHER_ONLY = frozenset((URI_RID, URI_REPAIRED_RID))


class MalformedRtp(ValueError):
    """The datagram is not a well-formed RTP packet."""


class Header(NamedTuple):
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool
    two_byte: bool  # extension profile 0x100X (RFC 8285 two-byte form)
    ext_offset: int  # first byte of the extension elements, 0 when there is no extension
    ext_end: int
    payload_offset: int


_new_header = tuple.__new__  # NamedTuple's own __new__ is a Python function: ~0.13 us more


def parse(data: bytes) -> Header:
    """The header of one RTP packet; raise MalformedRtp for anything inconsistent."""
    size = len(data)
    if size < 12:
        raise MalformedRtp("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = FIXED.unpack_from(data)
    if b0 >> 6 != 2:
        raise MalformedRtp("RTP version is not 2")
    offset = 12 + 4 * (b0 & 0x0F)
    ext_offset = ext_end = 0
    two_byte = False
    if b0 & 0x10:
        if size < offset + 4:
            raise MalformedRtp("truncated header extension")
        profile, words = EXTENSION_HEADER.unpack_from(data, offset)
        ext_offset = pos = offset + 4
        ext_end = ext_offset + 4 * words
        if size < ext_end:
            raise MalformedRtp("truncated header extension")
        if profile == ONE_BYTE_PROFILE:
            while pos < ext_end:
                byte = data[pos]
                if byte == 0:  # padding between elements
                    pos += 1
                elif byte >> 4 == 15:  # reserved id: stop parsing (RFC 8285 4.2)
                    break
                else:
                    pos += (byte & 0x0F) + 2
                    if pos > ext_end:
                        raise MalformedRtp("header extension element overruns the block")
        elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
            two_byte = True
            _check_two_byte(data, ext_offset, ext_end)
        offset = ext_end
    if offset > size:
        raise MalformedRtp("header longer than the packet")
    if b0 & 0x20 and (size == offset or not data[-1] or data[-1] > size - offset):
        raise MalformedRtp("bad padding")
    return _new_header(
        Header,
        (b1 & 0x7F, seq, ts, ssrc, b1 > 127, two_byte, ext_offset, ext_end, offset),
    )


def _check_two_byte(data: bytes, pos: int, end: int) -> None:
    while pos < end:
        if data[pos] == 0:
            pos += 1
            continue
        if pos + 2 > end or pos + 2 + data[pos + 1] > end:
            raise MalformedRtp("header extension element overruns the block")
        pos += 2 + data[pos + 1]


def elements(data: bytes | bytearray, header: Header) -> list[tuple[int, int, int]]:
    """(offset of the element's first byte, id, value length) for each extension element of a
    packet ``parse`` accepted; the value starts 1 byte (one-byte form) or 2 bytes (two-byte
    form) after that offset."""
    out = []
    pos, end = header.ext_offset, header.ext_end
    if not pos:
        return out
    if data[pos - 4] == 0xBE and data[pos - 3] == 0xDE:  # ONE_BYTE_PROFILE
        while pos < end:
            byte = data[pos]
            if byte == 0:
                pos += 1
                continue
            if byte >> 4 == 15:
                break
            out.append((pos, byte >> 4, (byte & 0x0F) + 1))
            pos += (byte & 0x0F) + 2
    elif header.two_byte:
        while pos < end:
            if data[pos] == 0:
                pos += 1
                continue
            out.append((pos, data[pos], data[pos + 1]))
            pos += 2 + data[pos + 1]
    return out


def element_value(data: bytes, header: Header, ident: int | None) -> bytes | None:
    if ident is None:
        return None
    skip = 2 if header.two_byte else 1
    for offset, element_id, length in elements(data, header):
        if element_id == ident:
            return data[offset + skip : offset + skip + length]
    return None


def abs_send_time(data: bytes, header: Header, ident: int | None) -> int | None:
    value = element_value(data, header, ident)
    if value is None or len(value) != 3:
        return None
    return int.from_bytes(value, "big")


def extension_ids(extensions: list) -> dict[str, int]:
    """uri -> id from negotiated ``RTCRtpHeaderExtensionParameters``."""
    return {ext.uri: ext.id for ext in extensions}


def extension_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    """aiortc's map for uri -> id ``ids`` (the inverse of ``extension_ids``): what aiortc's
    RtpPacket needs to write or read those extensions (benchmarks and tests build packets)."""
    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in ids.items()]
        )
    )
    return m


Plan = tuple["tuple[int, int] | bytes | None", ...]


class ExtensionRewrite:
    """How one publisher leg's extension elements become one subscriber leg's.

    Ids are renumbered (the two legs negotiated them independently), elements the subscriber
    did not negotiate are blanked to padding bytes (zeros are legal between elements), and the
    MID value becomes the subscriber's transceiver MID (a longer one than the publisher's is
    appended to the block, which grows). A sender keeps the same element layout packet after
    packet, so ``plan`` is worked out once per layout and the compiled Outbound replays it
    (``rtpforward.apply_plan`` runs one on its own).

    Nothing goes out that a conforming receiver cannot parse: an element of a fixed-size
    extension with another length (``FIXED_LENGTHS``; RFC 8285 elements carry their length,
    and the layout a plan is cached under includes it), a stream id (``PUBLISHER_ONLY``) and
    every byte after a one-byte element with the reserved id 15 (RFC 8285 4.2: the receiver
    stops there; aiortc does not and reads on) are blanked to padding. Elements of extensions
    aiortc does not know but both legs negotiated pass untouched. Each kind of malformed
    element is logged once per rewrite.

    Where the subscriber's leg negotiated transport-cc (draft-holmer-rmcat-transport-wide-cc-
    extensions-01, ``media.downlink_transport_cc``) every packet leaves with one transport-cc
    element whose value the plan leaves to the compiled send (``None`` in the plan: a 2-byte
    placeholder the Leg stamps with its own transport-wide sequence number): the publisher's
    element, renumbered, where it had one (its value never leaks through as ours), else one
    appended to the block (a packet without a block gets one). ``stamps`` says so.
    """

    __slots__ = ("_ids", "_uris", "_mid_in", "_mid_value", "_owner", "_reported", "_tcc")

    def __init__(
        self, publisher: dict[str, int], subscriber: dict[str, int], mid: str, owner: str = ""
    ) -> None:
        self._ids = {pid: subscriber.get(uri) for uri, pid in publisher.items()}
        self._uris = {pid: uri for uri, pid in publisher.items()}
        self._mid_in = publisher.get(URI_MID)
        self._mid_value = mid.encode()
        self._owner = owner
        self._reported: set[str] = set()
        self._tcc = subscriber.get(URI_TRANSPORT_CC)  # the subscriber leg's id, None: not ours

    @property
    def stamps(self) -> bool:
        """Plans give each packet a transport-cc element for the Leg to stamp (``None``)."""
        return self._tcc is not None

    def plan(self, packet: bytes) -> Plan:
        """The header of ``packet`` up to its payload, rebuilt for the subscriber: a tuple of
        (start, end) - copy those bytes of the packet - and bytes - write them - and, where
        ``stamps``, one None - the transport-cc value, 2 bytes the Leg stamps. It holds for
        every packet with the same element layout (element values are copied, not planned).
        A packet without an extension block gets a one-byte block (RFC 8285) holding the
        transport-cc element; the compiled path sets its X bit."""
        header = parse(packet)
        two_byte = header.two_byte
        skip = 2 if two_byte else 1
        value = self._mid_value
        found = [
            (offset, ident, length)
            for offset, ident, length in elements(packet, header)
            if self._forwardable(ident, length, two_byte)
        ]
        # The first transport-cc element carries ours (an offset; None: none); any other
        # would carry the publisher's value on: blanked.
        tcc_at = next((o for o, i, _ in found if self._uris[i] == URI_TRANSPORT_CC), None)
        found = [f for f in found if f[0] == tcc_at or self._uris[f[1]] != URI_TRANSPORT_CC]
        appended: list[bytes | None] = []  # elements added at the end of the block
        longer = None  # the MID element's new id when the value does not fit in place
        for _, ident, length in found:
            if ident == self._mid_in and len(value) > length:
                longer = self._ids[ident]
                appended.append(_element_header(longer, len(value), two_byte) + value)
        if self._tcc is not None and tcc_at is None and (two_byte or self._tcc <= 14):
            appended += [_element_header(self._tcc, 2, two_byte), None]
        ops: list[tuple[int, int] | bytes | None] = []
        pos = 0
        if appended:
            size = (
                header.ext_end
                - header.ext_offset
                + sum(2 if a is None else len(a) for a in appended)
            )
            appended.append(bytes(-size % 4))
            if not header.ext_offset:  # no block: the header, then a one-byte block's own
                ops += [
                    (0, header.payload_offset),
                    struct.pack("!HH", ONE_BYTE_PROFILE, (size + 3) // 4),
                ]
                return tuple(ops + appended)
            ops += [(0, header.ext_offset - 2), struct.pack("!H", (size + 3) // 4)]
            pos = header.ext_offset
        kept = {offset for offset, _, _ in found}
        for offset, ident, length in elements(packet, header):
            new = self._ids.get(ident)
            end = offset + skip + length
            placeholder = False
            if offset not in kept or (ident == self._mid_in and longer is not None):
                chunk = bytes(skip + length)
            elif ident == self._mid_in:
                chunk = _element_header(new, len(value), two_byte) + value  # type: ignore[arg-type]
                chunk += bytes(length - len(value))
            elif offset == tcc_at:
                chunk, placeholder = _element_header(new, length, two_byte), True  # type: ignore[arg-type]
            elif new != ident:
                chunk, end = _element_header(new, length, two_byte), offset + skip  # type: ignore[arg-type]
            else:
                continue
            if offset > pos:
                ops.append((pos, offset))
            ops.append(chunk)
            if placeholder:
                ops.append(None)
            pos = end
        reserved = _reserved_at(packet, header)
        if reserved is not None:
            self._report("elements after the reserved id 15")
            if reserved > pos:
                ops.append((pos, reserved))
            ops.append(bytes(header.ext_end - reserved))
            pos = header.ext_end
        if header.payload_offset > pos:
            ops.append((pos, header.payload_offset))
        return tuple(ops + appended)

    def _forwardable(self, ident: int, length: int, two_byte: bool) -> bool:
        new = self._ids.get(ident)
        if new is None or (not two_byte and new > 14):
            return False  # the subscriber did not negotiate it (or its id needs two bytes)
        uri = self._uris[ident]
        if uri in PUBLISHER_ONLY:
            return False
        if length != FIXED_LENGTHS.get(uri, length):
            self._report(f"{uri} of {length} bytes")
            return False
        return True

    def _report(self, what: str) -> None:
        if what not in self._reported:
            self._reported.add(what)
            log.warning("%s: malformed header extension (%s) blanked", self._owner, what)


def _reserved_at(data: bytes, header: Header) -> int | None:
    """Where a one-byte block stops at an element with the reserved id 15 (None: it does not)."""
    pos, end = header.ext_offset, header.ext_end
    if header.two_byte or not pos or data[pos - 4 : pos - 2] != b"\xbe\xde":
        return None
    while pos < end:
        byte = data[pos]
        if byte == 0:
            pos += 1
        elif byte >> 4 == 15:
            return pos
        else:
            pos += (byte & 0x0F) + 2
    return None


def _element_header(ident: int, length: int, two_byte: bool) -> bytes:
    return bytes((ident, length)) if two_byte else bytes(((ident << 4) | (length - 1),))
