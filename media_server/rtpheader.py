"""RTP headers read and rewritten as bytes (RFC 3550, header extensions RFC 8285).

aiortc's ``RtpPacket.parse``/``serialize`` costs ~4 us and drops every header extension it does
not know, so the forwarding path never builds packet objects: it reads the fixed header with
``struct`` and rewrites it in place on a ``bytearray``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

FIXED = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
SEQ_TS_SSRC = struct.Struct("!HII")
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


class MalformedRtp(ValueError):
    """The datagram is not a well-formed RTP packet."""


class Element(NamedTuple):
    """One header extension element: where its id lives, its id, where its value lives."""

    id_offset: int
    id: int
    value_offset: int
    length: int


class Header(NamedTuple):
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool
    two_byte: bool  # extension profile 0x100X (RFC 8285 two-byte form)
    ext_offset: int  # first byte of the extension elements, 0 when there is no extension
    ext_end: int
    elements: tuple[Element, ...]
    payload_offset: int


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
    elements: tuple[Element, ...] = ()
    if b0 & 0x10:
        if size < offset + 4:
            raise MalformedRtp("truncated header extension")
        profile, words = struct.unpack_from("!HH", data, offset)
        ext_offset = offset + 4
        ext_end = ext_offset + 4 * words
        if size < ext_end:
            raise MalformedRtp("truncated header extension")
        if profile == ONE_BYTE_PROFILE:
            elements = _one_byte_elements(data, ext_offset, ext_end)
        elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
            two_byte = True
            elements = _two_byte_elements(data, ext_offset, ext_end)
        offset = ext_end
    if offset > size:
        raise MalformedRtp("header longer than the packet")
    if b0 & 0x20 and (size == offset or data[-1] > size - offset):
        raise MalformedRtp("bad padding")
    return Header(
        b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), two_byte, ext_offset, ext_end, elements, offset
    )


def _one_byte_elements(data: bytes, pos: int, end: int) -> tuple[Element, ...]:
    out = []
    while pos < end:
        byte = data[pos]
        if byte == 0:  # padding between elements
            pos += 1
            continue
        ident = byte >> 4
        if ident == 15:  # reserved: stop parsing (RFC 8285 4.2)
            break
        length = (byte & 0x0F) + 1
        if pos + 1 + length > end:
            raise MalformedRtp("header extension element overruns the block")
        out.append(Element(pos, ident, pos + 1, length))
        pos += 1 + length
    return tuple(out)


def _two_byte_elements(data: bytes, pos: int, end: int) -> tuple[Element, ...]:
    out = []
    while pos < end:
        ident = data[pos]
        if ident == 0:
            pos += 1
            continue
        if pos + 2 > end:
            raise MalformedRtp("header extension element overruns the block")
        length = data[pos + 1]
        if pos + 2 + length > end:
            raise MalformedRtp("header extension element overruns the block")
        out.append(Element(pos, ident, pos + 2, length))
        pos += 2 + length
    return tuple(out)


def element_value(data: bytes, header: Header, ident: int | None) -> bytes | None:
    if ident is None:
        return None
    for element in header.elements:
        if element.id == ident:
            return data[element.value_offset : element.value_offset + element.length]
    return None


def abs_send_time(data: bytes, header: Header, ident: int | None) -> int | None:
    value = element_value(data, header, ident)
    if value is None or len(value) != 3:
        return None
    return int.from_bytes(value, "big")


def extension_ids(extensions: list) -> dict[str, int]:
    """uri -> id from negotiated ``RTCRtpHeaderExtensionParameters``."""
    return {ext.uri: ext.id for ext in extensions}


class ExtensionRewrite:
    """How one publisher leg's extension elements become one subscriber leg's.

    Ids are renumbered (the two legs negotiated them independently), elements the subscriber
    did not negotiate are blanked to padding bytes (zeros are legal between elements), and the
    MID value becomes the subscriber's transceiver MID. Everything happens in place unless the
    new MID is longer than the old value (then ``rewrite`` returns a rebuilt packet).
    """

    __slots__ = ("_ids", "_mid_in", "_mid_value", "identity")

    def __init__(self, publisher: dict[str, int], subscriber: dict[str, int], mid: str) -> None:
        self._ids = {pid: subscriber.get(uri) for uri, pid in publisher.items()}
        self._mid_in = publisher.get(URI_MID)
        self._mid_value = mid.encode()
        # No renumbering and no MID to patch: the elements pass untouched.
        self.identity = self._mid_in is None and all(k == v for k, v in self._ids.items())

    def rewrite(self, buf: bytearray, header: Header) -> bytearray:
        ids = self._ids
        rebuild = None
        for el in header.elements:
            new = ids.get(el.id)
            if new is None or (header.two_byte is False and new > 14):
                _blank(buf, el, header.two_byte)
                continue
            if el.id == self._mid_in:
                value = self._mid_value
                if len(value) > el.length:
                    rebuild = el
                    continue
                buf[el.value_offset : el.value_offset + len(value)] = value
                if len(value) < el.length:
                    buf[el.value_offset + len(value) : el.value_offset + el.length] = bytes(
                        el.length - len(value)
                    )
                self._set_id(buf, el, new, len(value), header.two_byte)
            elif new != el.id:
                self._set_id(buf, el, new, el.length, header.two_byte)
        if rebuild is not None:
            return self._with_longer_mid(buf, header, rebuild)
        return buf

    @staticmethod
    def _set_id(buf: bytearray, el: Element, ident: int, length: int, two_byte: bool) -> None:
        if two_byte:
            buf[el.id_offset] = ident
            buf[el.id_offset + 1] = length
        else:
            buf[el.id_offset] = (ident << 4) | (length - 1)

    def _with_longer_mid(self, buf: bytearray, header: Header, el: Element) -> bytearray:
        """Drop the old MID element and append the new one at the end of the block."""
        new_id = self._ids[el.id]
        assert new_id is not None
        _blank(buf, el, header.two_byte)
        value = self._mid_value
        if header.two_byte:
            element = bytes((new_id, len(value))) + value
        else:
            element = bytes(((new_id << 4) | (len(value) - 1),)) + value
        block = bytes(buf[header.ext_offset : header.ext_end]) + element
        block += bytes(-len(block) % 4)
        out = bytearray(buf[: header.ext_offset - 2])  # keeps the profile word
        out += struct.pack("!H", len(block) // 4)
        out += block
        out += buf[header.ext_end :]
        return out


def _blank(buf: bytearray, el: Element, two_byte: bool) -> None:
    start = el.id_offset
    buf[start : el.value_offset + el.length] = bytes(el.value_offset + el.length - start)
