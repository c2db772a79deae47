"""Fuzz harness of the compiled media path: bytes in, every consequence checked.

One input drives a small SFU (two Participants, one publishing audio and video, one
subscribed three times over) through its real entry points, with real SRTP keys on both legs:

    fuzz input -> ops -> publisher client's SRTP session (protect) -> Leg.datagram_received
        (decrypt, route, Inbound, Outbound, plan, history, SRTP protect) -> subscriber Leg
        -> the subscriber client's SRTP session (unprotect) -> aiortc's parsers

Ops are RTP packets built from the input's bytes (any SSRC, payload type, sequence and
timestamp steps, CSRCs, extension blocks in both forms with known and unknown elements of any
length, padding, keyframe starts), SRTCP compounds to either leg (well framed or not), raw
datagrams, NACK/PLI/REMB from the subscriber, and a change of the video subscription's VP8
temporal layers. After every op:

- nothing was counted as a media fault or a ``send_error`` (bad input is a drop, never a
  fault: no member can inflate an alerting metric);
- every packet the SFU sent decrypts at the receiver (a repeat of an index is the receiver's
  to drop; an index the send side left behind, ``replay_old``, is a failure);
- every RTP packet sent parses with aiortc's ``RtpPacket.parse`` under the extension map of
  the m-line it belongs to, a video one's VP8 payload descriptor with aiortc's
  ``VpxPayloadDescriptor.parse`` (with VP8 after it), and every RTCP packet with
  ``RtcpPacket.parse``: the receiver's stand-in. Any exception is a finding.

``run(data)`` is the whole harness; ``tests/fuzz/test_media.py`` runs it under hypothesis in
``make test`` and ``python -m tests.fuzz.fuzz_media`` under atheris (README: "Fuzzing").
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from typing import Any

import pylibsrtp
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpPacket, RtpPacket

from config import load_settings
from media_server import publication as publication_module
from media_server import rtpheader
from media_server.faults import Faults
from media_server.participant import Participant
from media_server.publication import Publication
from media_server.rtpforward import Leg
from media_server.subscription import Subscription
from media_server.transport import set_keys
from media_server.uplink import UplinkEstimator

MID, AST, LEVEL = rtpheader.URI_MID, rtpheader.URI_ABS_SEND_TIME, rtpheader.URI_AUDIO_LEVEL
ORIENTATION = "urn:3gpp:video-orientation"
# The publisher's leg negotiated everything aiortc knows and one extension it does not.
PUB_EXT = {
    MID: 1, LEVEL: 2, AST: 3, rtpheader.URI_TOFFSET: 4, rtpheader.URI_TRANSPORT_CC: 5,
    rtpheader.URI_RID: 6, rtpheader.URI_REPAIRED_RID: 7, ORIENTATION: 8,
}  # fmt: skip
AUDIO_EXT = {uri: i for uri, i in PUB_EXT.items() if uri != AST}  # as aiortc's audio m-lines
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
AUDIO_SSRC, VIDEO_SSRC, VIDEO_SSRC_2 = 1111, 2222, 3333  # video is not in the SDP: by MID
# The subscriber's m-lines: (our SSRC, payload type, MID, its extension ids, source index).
SUBSCRIBED = [
    (7001, 109, "3", {MID: 3, LEVEL: 1}, 0),
    (7002, 111, "1", dict(PUB_EXT), 0),  # the same ids as the publisher: an identity layout
    (7003, 120, "4", {MID: 3, AST: 2, ORIENTATION: 9, rtpheader.URI_TOFFSET: 14}, 1),
]
MAPS = {ssrc: rtpheader.extension_map(ids) for ssrc, _, _, ids, _ in SUBSCRIBED}
VIDEO_OUT = {ssrc for ssrc, _, _, _, source in SUBSCRIBED if source == 1}
KEYS = [bytes([i]) * 30 for i in range(4)]
MAX_OPS = 48


_sessions: dict[tuple[bytes, bool], pylibsrtp.Session] = {}
# SSRCs whose libsrtp streams the sessions may hold (every fixed one, and random ones as used).
_KNOWN_SSRCS = {AUDIO_SSRC, VIDEO_SSRC, VIDEO_SSRC_2, 1, 9000, 9001, *(s[0] for s in SUBSCRIBED)}
_streams: set[int] = set(_KNOWN_SSRCS)


def _session(key: bytes, inbound: bool) -> pylibsrtp.Session:
    """An SRTP session as aiortc keys one (one per key and direction, made once: creating
    eight per input cost more than the rest of an input's run)."""
    session = _sessions.get((key, inbound))
    if session is None:
        policy = pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND
            if inbound
            else pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        )
        policy.allow_repeat_tx = True  # as aiortc's
        policy.window_size = 1024
        session = _sessions[(key, inbound)] = pylibsrtp.Session(policy)
    return session


def _fresh_sessions() -> None:
    """Every session forgets the streams earlier inputs made (libsrtp clones one per SSRC from
    the session's template on first use): each input starts on sessions as new as new ones."""
    for session in _sessions.values():
        for ssrc in _streams:
            try:
                session.remove_stream(ssrc)
            except pylibsrtp.Error:
                pass  # this session never saw it
    _streams.clear()
    _streams.update(_KNOWN_SSRCS)


class Reader:
    """The fuzz input read as a stream of choices (zeros once it runs out)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return self.byte() << 8 | self.byte()

    def u32(self) -> int:
        return self.u16() << 16 | self.u16()

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


class Finding(AssertionError):
    """The SFU did something a receiver or an operator must never see."""


_estimator: list[UplinkEstimator] = []


@contextlib.contextmanager
def _shared_estimator() -> Iterator[None]:
    """Publications made inside share one UplinkEstimator (a new one builds aiortc's 1,000
    rate buckets: as long as the rest of an input's run). Its state carries over from input to
    input; it only shapes the REMB values sent, which are checked like any RTCP."""
    if not _estimator:
        _estimator.append(UplinkEstimator())
    made = publication_module.UplinkEstimator
    publication_module.UplinkEstimator = lambda: _estimator[0]  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        publication_module.UplinkEstimator = made  # type: ignore[misc]


_participants: dict[str, Participant] = {}


def _participant(name: str) -> Participant:
    """A Participant in the state a fresh one has before negotiation. One per name is made and
    reset for every input: a peer connection (two certificates) per input would cost more than
    the whole run of ops."""
    p = _participants.get(name)
    if p is None:
        settings = load_settings(environ={}, overrides={"media": {"ice_servers": []}}).media
        p = _participants[name] = Participant(
            name, settings=settings, on_offer=None, on_publication=None,  # type: ignore[arg-type]
            on_chat=None, on_state=None,  # type: ignore[arg-type]
        )  # fmt: skip
    for table in (p.publications, p.subscriptions, p._by_ssrc, p._by_mid, p._by_out_ssrc):
        table.clear()
    p.dropped = {}
    p.faults = Faults(f"participant {name}")
    p.rtcp_packets_in = p.rtcp_packets_out = 0
    return p


class Sfu:
    """Two server Participants wired as the room wires them, without ICE or DTLS: each Leg has
    its keys, and its sends land in a list instead of a socket."""

    def __init__(self) -> None:
        _fresh_sessions()
        self.publisher = _participant("publisher")
        self.subscriber = _participant("subscriber")
        # Client-side sessions: what the publisher encrypts with, what the subscriber decrypts.
        self.publisher_tx = _session(KEYS[0], inbound=False)
        self.publisher_rx = _session(KEYS[1], inbound=True)
        self.subscriber_tx = _session(KEYS[2], inbound=False)
        self.subscriber_rx = _session(KEYS[3], inbound=True)
        self.to_publisher: list[bytes] = []
        self.to_subscriber: list[bytes] = []
        self.publisher_leg = self._leg(self.publisher, KEYS[0], KEYS[1], self.to_publisher)
        self.subscriber_leg = self._leg(self.subscriber, KEYS[2], KEYS[3], self.to_subscriber)
        p = self.publisher
        self.publications = [
            self._publication("audio", "0", OPUS, AUDIO_SSRC, AUDIO_EXT),
            self._publication("video", "1", VP8, None, PUB_EXT),
        ]
        p._mid_ext_id = PUB_EXT[MID]
        self.maps: dict[int, Any] = {}
        s = self.subscriber
        for ssrc, pt, mid, ids, source in SUBSCRIBED:
            sub = Subscription(self.publications[source], history_packets=1024, faults=s.faults)
            s.subscriptions.append(sub)
            s._by_out_ssrc[ssrc] = sub
            sub.bind(ssrc=ssrc, payload_type=pt, mid=mid, extensions=ids,
                     send_rtp=self.subscriber_leg, send_rtcp=s.send_rtcp)  # fmt: skip
            self.maps[ssrc] = MAPS[ssrc]

    @staticmethod
    def _leg(p: Participant, rx: bytes, tx: bytes, sent: list[bytes]) -> Leg:
        leg = Leg(on_rtp=p.on_rtp, on_rtcp=p.on_rtcp, dropped=p.dropped, faults=p.faults)
        rx_session, tx_session = _session(rx, inbound=True), _session(tx, inbound=False)
        set_keys(leg, rx_session, tx_session)
        leg.send_queued = sent.append
        leg.connected = True
        p._leg = leg
        return leg

    def _publication(
        self, kind: str, mid: str, codec: Any, ssrc: int | None, ids: dict[str, int]
    ) -> Publication:
        p = self.publisher
        with _shared_estimator():
            publication = Publication(
                participant_id=p.id, kind=kind, mid=mid, codec=codec, ssrc=ssrc,
                extensions=ids, send_rtcp=p.send_rtcp, rtcp_ssrc=9000 + len(p.publications),
                faults=p.faults,
            )  # fmt: skip
        p.publications.append(publication)
        p._by_mid[mid] = publication
        if ssrc is not None:
            p._route(ssrc, publication)
        return publication

    # ---- checks ---------------------------------------------------------------------------

    def check(self) -> None:
        for p in (self.publisher, self.subscriber):
            if p.faults.count:
                raise Finding(f"media faults at the {p.id}: {p.faults.by_place}")
        for sub in self.subscriber.subscriptions:
            if sub.dropped.get("send_error"):
                raise Finding(f"send_error on {sub.mid}: {sub.dropped}")
        for data in self.to_subscriber:
            self._receive(self.subscriber_rx, data, subscriber=True)
        for data in self.to_publisher:
            self._receive(self.publisher_rx, data, subscriber=False)
        self.to_subscriber.clear()
        self.to_publisher.clear()

    def _receive(self, session: pylibsrtp.Session, data: bytes, subscriber: bool) -> None:
        if len(data) > 1500:  # aiortc unprotects into 1500 bytes; more ends its receive loop
            raise Finding(f"a {len(data)}-byte datagram: over what a receiver takes")
        rtcp = 192 <= data[1] <= 208
        try:
            plain = session.unprotect_rtcp(data) if rtcp else session.unprotect(data)
        except pylibsrtp.Error as exc:
            if "bad index" in str(exc):
                return  # a repeated index (a retransmission, a repeated packet): dropped there
            raise Finding(f"the receiver cannot decrypt what the SFU sent: {exc}") from exc
        if rtcp:
            RtcpPacket.parse(plain)
            return
        if not subscriber:
            raise Finding("RTP sent to the publisher")
        ssrc = struct.unpack_from("!I", plain, 8)[0]
        packet = RtpPacket.parse(plain, self.maps[ssrc])
        if packet.extensions.mid is not None and packet.extensions.mid not in "134":
            raise Finding(f"MID {packet.extensions.mid!r} reached the subscriber")
        if ssrc in VIDEO_OUT and packet.payload:  # padding alone has no descriptor
            _, vp8 = VpxPayloadDescriptor.parse(packet.payload)  # raises on a broken one
            if not vp8:
                raise Finding("a VP8 descriptor with no VP8 after it reached the subscriber")

    # ---- ops ------------------------------------------------------------------------------

    def op(self, r: Reader) -> None:
        kind = r.byte() % 10
        if kind < 4:
            self._send(self.publisher_leg, self.publisher_tx.protect, self._rtp(r))
        elif kind == 4:  # the same, decrypted: exactly the packet's bytes reach the C code
            self.publisher_leg.receive_rtp(self._rtp(r))
        elif kind == 5:
            self.publisher_leg.datagram_received(r.take(r.byte()), None)
        elif kind == 6:
            self._send(self.publisher_leg, self.publisher_tx.protect_rtcp, self._rtcp(r))
        elif kind == 7:
            self._send(self.subscriber_leg, self.subscriber_tx.protect_rtcp, self._feedback(r))
        elif kind == 8:
            # Decrypted bytes of any shape: what a publisher's own SRTP can wrap.
            body = bytes([0x80 | (r.byte() & 0x3F)]) + r.take(r.byte())
            if len(body) >= 12 and not 192 <= body[1] <= 208:
                self.publisher_leg.receive_rtp(body)
        else:
            for publication in self.publications:
                publication.send_nacks(float(r.byte()))
                publication.request_keyframe()
            # a lower frame rate: VP8 temporal layers left out from the next frame start
            self.subscriber.subscriptions[2].set_temporal([0, 1, 2, 255][r.byte() % 4])

    @staticmethod
    def _send(leg: Leg, protect: Any, packet: bytes) -> None:
        try:
            datagram = protect(packet)
        except (pylibsrtp.Error, ValueError):
            return  # the client's own SRTP refuses it (an index it left behind, too long)
        leg.datagram_received(datagram, None)

    _seq = 100
    _ts = 5000

    def _rtp(self, r: Reader) -> bytes:
        stream = r.byte() % 5
        ssrc, pt = [
            (AUDIO_SSRC, 111), (VIDEO_SSRC, 96), (VIDEO_SSRC_2, 96), (r.u32(), r.byte() & 0x7F),
            (AUDIO_SSRC, r.byte() & 0x7F),
        ][stream]  # fmt: skip
        _streams.add(ssrc)
        step = r.byte()
        if step < 200:
            self._seq += step % 8 - 2
        elif step < 250:
            self._seq += r.u16()
        else:
            self._seq = r.u16()
        self._ts += r.byte() * 30
        first = r.byte()
        csrcs = first & 0x03
        marker = first & 0x80
        packet = bytearray(struct.pack("!BBHII", 0x80 | csrcs, marker | pt, self._seq & 0xFFFF,
                                       self._ts & 0xFFFFFFFF, ssrc))  # fmt: skip
        packet += r.take(4 * csrcs).ljust(4 * csrcs, b"\0")
        if first & 0x04:
            packet[0] |= 0x10
            packet += self._extension(r)
        if first & 0x08:  # a VP8 keyframe start: lets video through the keyframe gate
            packet += bytes([0x10, 0x00, 0x9D, 0x01, 0x2A])
        elif first & 0x40:
            packet += self._descriptor(r)
        packet += r.take(r.byte() % 64)
        if first & 0x20:  # near the MTU: a growing rewrite must not take it over
            packet += bytes(1380 + r.byte() % 128)
        if first & 0x10:
            packet[0] |= 0x20
            packet += bytes([r.byte() % 8])
        return bytes(packet)

    @staticmethod
    def _descriptor(r: Reader) -> bytes:
        """A VP8 payload descriptor (RFC 7741 4.2): X with any of I (7- or 15-bit PictureID),
        L, T (any TID, Y) and K, or none, whole or cut short anywhere."""
        flags, ext = r.byte(), r.byte() & 0xF0
        out = bytearray([0x80 | (flags & 0x10) if ext or flags & 0x01 else flags & 0x10])
        if out[0] & 0x80:
            out.append(ext)
            if ext & 0x80:
                out += (
                    bytes([0x80 | r.byte(), r.byte()]) if flags & 0x02 else bytes([r.byte() & 0x7F])
                )
            if ext & 0x40:
                out.append(r.byte())
            if ext & 0x30:
                out.append(r.byte())
        if flags & 0x04:
            out = out[: r.byte() % (len(out) + 1)]
        return bytes(out)

    def _extension(self, r: Reader) -> bytes:
        choice = r.byte()
        profile = [rtpheader.ONE_BYTE_PROFILE, rtpheader.TWO_BYTE_PROFILE, 0x1001, r.u16()][
            choice % 4
        ]
        two_byte = profile & 0xFFF0 == 0x1000
        block = bytearray()
        if choice & 0x80:
            block += r.take(r.byte() % 24)
        else:
            for _ in range(r.byte() % 6):
                what = r.byte()
                if what < 30:
                    block.append(0)  # padding
                    continue
                ident = r.byte() % 9 if what < 200 else r.byte()
                length = r.byte() % (18 if two_byte else 16)
                if two_byte:
                    block += bytes((ident, length))
                else:
                    block.append((ident & 0x0F) << 4 | length)
                    length += 1
                block += r.take(length).ljust(length, b"\0")
        words = (len(block) + 3) // 4
        if choice & 0x40:  # a length field that does not match the block
            words = r.byte() % 8
        block += bytes(-len(block) % 4)
        return struct.pack("!HH", profile, words) + bytes(block)

    def _rtcp(self, r: Reader) -> bytes:
        """A compound: parts framed by their own length fields, or not."""
        out = bytearray()
        for _ in range(1 + r.byte() % 4):
            kind = r.byte()
            pt = [200, 201, 202, 203, 204, 205, 206, 207][kind % 8] if kind < 240 else kind
            body = r.take(4 * (r.byte() % 12))
            first = 0x80 | (r.byte() & 0x3F)
            words = len(body) // 4 if r.byte() < 230 else r.byte()
            ssrc = [AUDIO_SSRC, VIDEO_SSRC, 7001, 7003][r.byte() % 4]
            out += struct.pack("!BBHI", first, pt, words + 1, ssrc) + body
        return bytes(out) if len(out) >= 8 else bytes(out).ljust(8, b"\0")

    def _feedback(self, r: Reader) -> bytes:
        """Feedback from the subscriber about our SSRCs (NACK, PLI, FIR, REMB, RR), or any
        compound."""
        kind = r.byte() % 6
        media = SUBSCRIBED[r.byte() % 3][0]
        if kind == 0:  # NACK: around what was sent, or anywhere
            items = b"".join(struct.pack("!HH", r.u16(), r.u16()) for _ in range(1 + r.byte() % 3))
            return struct.pack("!BBHII", 0x81, 205, 2 + len(items) // 4, 1, media) + items
        if kind == 1:
            return struct.pack("!BBHII", 0x81, 206, 2, 1, media)  # PLI
        if kind == 2:  # REMB, possibly claiming more SSRCs than it carries
            fci = b"REMB" + bytes([r.byte() % 4, r.byte(), r.byte(), r.byte()])
            fci += struct.pack("!I", media) * (r.byte() % 3)
            return struct.pack("!BBHII", 0x8F, 206, 2 + len(fci) // 4, 1, 0) + fci
        if kind == 3:  # FIR
            fci = struct.pack("!IB3x", media, r.byte())
            return struct.pack("!BBHII", 0x84, 206, 4, 1, 0) + fci
        if kind == 4:  # RR about our SSRC
            block = struct.pack("!IB3sIIII", media, r.byte(), r.take(3).ljust(3, b"\0"),
                                r.u32(), r.u32(), r.u32(), r.u32())  # fmt: skip
            return struct.pack("!BBHI", 0x81, 201, 7, 1) + block
        return self._rtcp(r)


def run(data: bytes) -> None:
    """One fuzz input through a fresh SFU; raises Finding (or whatever the SFU or a receiver's
    parser raised) when something went wrong."""
    sfu = Sfu()
    r = Reader(data)
    for _ in range(MAX_OPS):
        if not r.more():
            break
        sfu.op(r)
        sfu.check()
