"""The SFU's DTLS transport: decrypted RTP/RTCP go to the participant, never to a decoder.

aiortc's ``RTCDtlsTransport`` decrypts SRTP and hands packets to its receivers, which depayload,
jitter-buffer and decode them (~130 us per packet). ``SfuDtlsTransport`` overrides the two
private hand-off methods (``_handle_rtp_data``, ``_handle_rtcp_data``) so the bytes go to a
``MediaSink`` (the Participant) instead; aiortc's receivers never see a packet, so no decoder
ever runs.

It is installed per peer connection: ``adopt(transport, sink)`` switches the class of the
transport aiortc created for the SFU's own connection, before DTLS starts. (Replacing
``aiortc.rtcpeerconnection.RTCDtlsTransport`` module-wide would also capture every other
peer connection of the process - test clients, a future recording or transcoding leg.)

Once DTLS is up, SRTP and SRTCP skip aiortc's receive machinery altogether: the nominated UDP
socket's ``datagram_received`` is the transport's compiled ``Leg`` (``rtpforward.c``), which
decrypts, routes RTP by SSRC to the publications' compiled Inbounds (the rest to
``sink.on_rtp``) and RTCP to ``sink.on_rtcp``, synchronously; calling the Leg (``leg_of``)
encrypts and sends synchronously. aioice would otherwise queue every datagram on an
``asyncio.Queue`` and wake a task that walks five coroutine levels per packet, and aiortc's
``_send_rtp`` adds three more on the way out: together about as much CPU as the forwarding
itself. DTLS and STUN keep the ordinary path; a TURN-relayed pair keeps it entirely.

It also makes the receive loop robust and accountable: an empty datagram (which would make
aiortc's ``_recv_next`` raise and close the transport), datagrams that are neither DTLS nor SRTP
and SRTP that fails authentication are dropped and counted in ``sink.dropped``.
``tests/media_path/test_hooks.py`` fails loudly if an aiortc or aioice name used here moves.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import time
from typing import Any, Protocol

import aioice.ice
import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from pylibsrtp._binding import ffi, lib

from media_server import ports, rtpforward
from media_server.faults import Faults
from media_server.rtpforward import Leg

log = logging.getLogger(__name__)


class MediaSink(Protocol):
    dropped: dict[str, int]
    faults: Faults

    def on_rtp(self, data: bytes) -> None: ...

    def on_rtcp(self, data: bytes, arrival_us: int) -> None: ...


def _address(cdata: Any) -> int:
    return int(ffi.cast("uintptr_t", cdata))


# The compiled path calls the libsrtp that pylibsrtp carries, with the sessions aiortc keyed.
rtpforward.set_srtp_functions(
    *(
        _address(ffi.addressof(lib, name))
        for name in ("srtp_protect", "srtp_protect_rtcp", "srtp_unprotect", "srtp_unprotect_rtcp")
    )
)


def set_keys(leg: Leg, rx: pylibsrtp.Session, tx: pylibsrtp.Session) -> None:
    """Give ``leg`` the SRTP sessions to decrypt (``rx``) and encrypt (``tx``) with."""
    leg.set_srtp(_address(rx._srtp[0]), _address(tx._srtp[0]), (rx, tx))


class SfuDtlsTransport(RTCDtlsTransport):
    leg: Leg
    _fast_path: tuple[Any, Any] | None

    def _set_state(self, state: State) -> None:
        super()._set_state(state)  # the leg's own statechange handler runs first
        if state == State.CONNECTED:
            self._install_fast_path()
        else:
            self._remove_fast_path()

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        # Only before the fast path is in place (or behind a TURN relay).
        self.leg.receive_rtp(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        try:
            # aiortc keeps no receive time for RTCP: this is when its queue handed it over
            self.leg.on_rtcp(data, time.monotonic_ns() // 1000)
        except Exception as exc:
            self.leg.faults.record("rtcp", exc)

    def _install_fast_path(self) -> None:
        pair = self.transport._connection._nominated.get(1)
        if pair is None or not isinstance(pair.protocol, aioice.ice.StunProtocol):
            return
        protocol = pair.protocol
        self.leg.queued = queued = protocol.datagram_received
        protocol.datagram_received = self.leg.datagram_received
        self._fast_path = (protocol, queued)
        read_batched(protocol, self.leg)

    def _remove_fast_path(self) -> None:
        if getattr(self, "_fast_path", None) is not None:
            protocol, queued = self._fast_path
            protocol.datagram_received = queued
            self._fast_path = None


BACKLOG_DATAGRAMS = 4096  # ~5 MB of video waiting for a full socket buffer, at most


class LegSocketTransport(asyncio.DatagramTransport):
    """aioice's nominated UDP socket once its Leg reads it (``read_batched``): the event
    loop's transport for it is closed, the Leg's ``read_ready`` reads every waiting datagram
    with recvmmsg (what is not SRTP goes to aioice's ``datagram_received`` as before), and
    aioice's STUN and DTLS go out through ``sendto`` here. Closing it (aioice closes its
    protocol with the ICE transport) stops the reading and ends the protocol as the loop's
    transport would."""

    def __init__(self, sock: socket.socket, protocol: Any, leg: Leg) -> None:
        """Raises OSError when the socket cannot give the kernel's receive times (``Leg.rfd``)."""
        super().__init__()
        leg.rfd = sock.fileno()  # first: nothing to undo when it raises
        self._sock, self._protocol, self._leg = sock, protocol, leg
        self._loop = asyncio.get_running_loop()
        self._closing = False
        # Datagrams the socket could not take yet, sent in order once it is writable (as the
        # loop's transport buffers them): a shaped link fills the buffer in bursts, and a
        # keyframe dropped there would freeze the subscriber's video.
        self._backlog: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._loop.add_reader(leg.rfd, leg.read_ready)

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if self._closing:
            return
        if self._backlog:  # behind what already waits
            self._queue(data, addr)
            return
        try:
            self._send(data, addr)
        except (BlockingIOError, InterruptedError):
            self._queue(data, addr)
            self._loop.add_writer(self._sock.fileno(), self._drain)
        except OSError as exc:
            log.debug("nominated socket: %s", exc)  # consent checks notice a dead path

    def _send(self, data: bytes, addr: Any) -> None:
        self._sock.sendto(data, addr) if addr is not None else self._sock.send(data)

    def _queue(self, data: bytes, addr: Any) -> None:
        if len(self._backlog) < BACKLOG_DATAGRAMS:  # beyond it the path is gone, not slow
            self._backlog.append((bytes(data), addr))

    def _drain(self) -> None:
        while self._backlog:
            data, addr = self._backlog[0]
            try:
                self._send(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("nominated socket: %s", exc)
            self._backlog.popleft()
        self._loop.remove_writer(self._sock.fileno())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "sockname":
            return self._sock.getsockname()
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._backlog.clear()
        self._loop.remove_writer(self._sock.fileno())
        self._loop.remove_reader(self._sock.fileno())
        self._leg.rfd = -1
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, None)

    abort = close


def read_batched(protocol: aioice.ice.StunProtocol, leg: Leg) -> None:
    """Let ``leg`` read ``protocol``'s socket in batches, each datagram with the kernel's
    receive time (see LegSocketTransport); left as it is when the socket cannot be taken over
    (the Leg's ``datagram_received`` then times each datagram when the event loop reads it)."""
    old = protocol.transport
    if isinstance(old, LegSocketTransport):
        return
    try:
        sock = socket.socket(fileno=os.dup(old.get_extra_info("socket").fileno()))
        sock.setblocking(False)
    except (OSError, AttributeError):
        return
    try:
        protocol.transport = LegSocketTransport(sock, protocol, leg)
    except OSError as exc:
        log.warning("nominated socket not read in batches: no receive timestamps: %s", exc)
        sock.close()
        return
    old.set_protocol(asyncio.DatagramProtocol())  # closing it must not end aioice's protocol
    old.close()
    leg.pair = None  # sends re-resolve their socket through the new transport


def leg_of(transport: RTCDtlsTransport, sink: MediaSink | None = None) -> Leg:
    """The compiled Leg of ``transport`` (made on first use): it decrypts and routes what
    arrives (to ``sink`` for SSRCs it has no route for) and encrypts and sends what the
    subscriptions and RTCP send: calling it encrypts (RTP or RTCP by the second byte) and sends
    one packet now, ConnectionError while DTLS is not up. A leg made without a sink only
    sends."""
    leg = getattr(transport, "leg", None)
    if leg is None:
        leg = transport.leg = Leg(on_rtp=None, on_rtcp=None, dropped={}, faults=None)
        _route_sends(transport, leg)
    if sink is not None:
        leg.on_rtp, leg.on_rtcp = sink.on_rtp, sink.on_rtcp
        leg.dropped, leg.faults = sink.dropped, sink.faults
    return leg


def _route_sends(transport: RTCDtlsTransport, leg: Leg) -> None:
    """Keep ``leg``'s keys, state and socket in step with ``transport``.

    Once a direct pair is nominated, a duplicate descriptor of aioice's UDP socket is
    *connected* to the remote address (closed with the transport) and the leg sends on it with
    a plain ``send``: the kernel keeps the route cached instead of looking it up per packet,
    and the event loop's per-call address conversion is skipped (~0.5-0.8 us per packet on
    loopback). Only the nominated remote can reach the socket from then on, which is all ICE
    uses after nomination. When the socket buffer is full, the datagram goes through the event
    loop's transport, which queues it. A TURN-relayed pair (whose send is a coroutine) is sent
    through aioice in the background. The leg compares the nominated pair on every send and
    calls ``reroute`` when it changed."""
    nominated = transport.transport._connection._nominated
    sockets: list[socket.socket] = []

    def close_sockets() -> None:
        leg.fd = -1
        while sockets:
            sockets.pop().close()

    def reroute() -> None:
        pair = nominated.get(1)
        close_sockets()
        leg.pair = pair
        leg.send_queued = None
        if pair is None:
            raise ConnectionError("no nominated ICE pair")
        addr = pair.remote_addr
        if not isinstance(pair.protocol, aioice.ice.StunProtocol):
            leg.send_queued = lambda data: asyncio.ensure_future(
                pair.protocol.send_data(data, addr)
            )
            return
        queued = pair.protocol.transport.sendto
        leg.send_queued = lambda data: queued(data, addr)
        try:
            fd = pair.protocol.transport.get_extra_info("socket").fileno()
            sock = socket.socket(fileno=os.dup(fd))
            sock.setblocking(False)
            sock.connect(addr)
        except OSError:
            return  # keep the event loop's path (it still works)
        sockets.append(sock)
        leg.fd = sock.fileno()

    def on_state() -> None:
        if transport._state == State.CONNECTED:
            set_keys(leg, transport._rx_srtp, transport._tx_srtp)
            leg.connected = True
            return
        leg.connected = False
        if transport._state in (State.CLOSED, State.FAILED):
            close_sockets()
            leg.pair = None

    leg.nominated = nominated
    leg.reroute = reroute
    transport.on("statechange", on_state)
    on_state()


def adopt(transport: RTCDtlsTransport, sink: MediaSink) -> SfuDtlsTransport:
    """Make one aiortc DTLS transport deliver to ``sink`` (call before it starts)."""
    if not isinstance(transport, SfuDtlsTransport):
        if transport.state != "new":
            raise RuntimeError("adopt() must run before the DTLS transport starts")
        transport.__class__ = SfuDtlsTransport
        transport._fast_path = None
        leg_of(transport, sink)
        ice = transport.transport
        ports.count_drops(ice._connection, sink.dropped)
        ice._recv = _filtered_recv(ice._recv, sink.dropped)
    return transport  # type: ignore[return-value]


def _filtered_recv(recv, dropped: dict[str, int]):  # noqa: ANN001, ANN202 - aiortc's callable
    async def filtered() -> bytes:
        while True:
            data = await recv()
            # aiortc demultiplexes on the first byte: 20-63 DTLS, 128-191 SRTP/SRTCP (RFC 7983).
            if data and (19 < data[0] < 64 or 127 < data[0] < 192):
                return data
            dropped["not_dtls_or_srtp"] = dropped.get("not_dtls_or_srtp", 0) + 1

    return filtered


class ForwardingSender(RTCRtpSender):
    """The sender of every m-line: aiortc negotiates it, a subscription's Subscription sends
    (a publishing m-line's sends nothing).

    aiortc's sender would pull frames from a track and encode them (``_run_rtp``) and send
    sender reports whose counters only move with what *it* sent (``_run_rtcp``). Here neither
    loop runs: packets and translated sender reports come from the Subscription, and incoming
    RTCP reaches the Subscription through ``SfuDtlsTransport``. Each loop ends as it starts (a
    loop that idled until ``stop()`` kept a task, its coroutine and a future per loop alive for
    every subscription), and the four events aiortc's ``stop()`` waits for are one event, set
    for good, shared by every sender (``forwarding_sender``). Installed per transceiver with
    ``forwarding_sender(sender)``.
    """

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        return None

    async def _run_rtcp(self) -> None:
        return None


# What aiortc's stop() awaits: its loops started and exited. A ForwardingSender's loops end as
# they start, so one event set for good stands for all four of every sender (an asyncio.Event
# already set returns from wait() at once, binding to no loop): four Events (~3 kB) less per
# transceiver.
_ENDED = asyncio.Event()
_ENDED.set()
_LOOP_EVENTS = ("rtp_started", "rtp_exited", "rtcp_started", "rtcp_exited")


def forwarding_sender(sender: RTCRtpSender) -> ForwardingSender:
    """Turn a fresh aiortc sender into a ForwardingSender (call before negotiation)."""
    sender.__class__ = ForwardingSender
    for name in _LOOP_EVENTS:
        setattr(sender, f"_RTCRtpSender__{name}", _ENDED)
    return sender  # type: ignore[return-value]


class ForwardingReceiver(RTCRtpReceiver):
    """The receiver of a transceiver's m-line: aiortc negotiates it, the Publication receives.

    aiortc's ``receive()`` starts a decoder thread and an RTCP task per receiver. Packets never
    reach an aiortc receiver here (``SfuDtlsTransport`` hands them to the Participant, which
    sends the receiver reports and REMB), so the thread only costs memory and the task wakes
    about once a second to find nothing to report: two threads and two wake-ups a second per
    participant. Installed per transceiver with ``forwarding_receiver(receiver)``.
    """

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        return None


# What aiortc's receiver builds for the packets it decodes itself (its ``_handle_rtp_packet``
# and decoder thread, neither of which runs here): a video receiver's RemoteBitrateEstimator
# alone is 1,000 rate buckets (~97 kB, 2,000 objects), its jitter buffer 512 slots.
_UNUSED = ("jitter_buffer", "nack_generator", "remote_bitrate_estimator", "timestamp_mapper")
_UNUSED += ("decoder_queue", "decoder_error")
# Its RTCP task's events: only receive() starts that task and only a started receiver's stop()
# waits for them (two asyncio.Events, ~1.5 kB, per transceiver).
_UNUSED += ("rtcp_started", "rtcp_exited")


def forwarding_receiver(receiver: RTCRtpReceiver) -> ForwardingReceiver:
    """Turn a fresh aiortc receiver (of any transceiver, sendonly ones included: aiortc
    gives each a receiver) into a ForwardingReceiver, dropping the per-packet state it will
    never use (call before negotiation)."""
    receiver.__class__ = ForwardingReceiver
    for name in _UNUSED:
        setattr(receiver, f"_RTCRtpReceiver__{name}", None)
    return receiver  # type: ignore[return-value]
