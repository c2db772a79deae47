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
socket's ``datagram_received`` decrypts them and calls ``sink.on_rtp`` / ``sink.on_rtcp``
synchronously, and ``send_now`` encrypts and ``sendto``s synchronously. aioice would otherwise
queue every datagram on an ``asyncio.Queue`` and wake a task that walks five coroutine levels
per packet, and aiortc's ``_send_rtp`` adds three more on the way out: together about as much
CPU as the forwarding itself. DTLS and STUN keep the ordinary path; a TURN-relayed pair keeps
it entirely.

It also makes the receive loop robust and accountable: an empty datagram (which would make
aiortc's ``_recv_next`` raise and close the transport), datagrams that are neither DTLS nor SRTP
and SRTP that fails authentication are dropped and counted in ``sink.dropped``.
``tests/media_path/test_hooks.py`` fails loudly if an aiortc or aioice name used here moves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

import aioice.ice
import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from pylibsrtp import SRTP_MAX_SRTCP_TRAILER_LEN, SRTP_MAX_TRAILER_LEN, _srtp_assert
from pylibsrtp._binding import ffi, lib

from media_server.faults import Faults

log = logging.getLogger(__name__)


class MediaSink(Protocol):
    dropped: dict[str, int]
    faults: Faults

    def on_rtp(self, data: bytes) -> None: ...

    def on_rtcp(self, data: bytes) -> None: ...


class FastSrtp:
    """A pylibsrtp session driven through its C binding directly, counting rejects.

    ``pylibsrtp.Session`` allocates an ``int *`` and runs half a dozen Python checks per call;
    here the length cell and the 1500-byte work buffer are allocated once (one session is only
    ever used from the event loop thread), which saves ~0.6 us per packet each way, and each
    direction is one closure (no method and helper call on the way). Same methods and errors
    as the session it wraps, so aiortc's own send path can use it too.
    """

    __slots__ = ("_session", "protect", "protect_rtcp", "unprotect", "unprotect_rtcp")

    SIZE = 1500  # pylibsrtp's buffer: it protects at most SIZE - trailer bytes

    def __init__(self, session: pylibsrtp.Session, dropped: dict[str, int] | None = None) -> None:
        self._session = session  # owns the srtp_t (freed when it is collected)
        ctx = session._srtp[0]
        buf = ffi.new("char[]", self.SIZE)
        mem = ffi.buffer(buf)
        length = ffi.new("int *")

        def count(reason: str | None) -> None:
            if reason is not None and dropped is not None:
                dropped[reason] = dropped.get(reason, 0) + 1

        def processor(func: Any, room: int, reason: str | None) -> Callable[[bytes], bytes]:
            def process(data: bytes) -> bytes:
                size = len(data)
                if size > room:
                    count(reason)
                    raise pylibsrtp.Error("packet is too long")
                mem[0:size] = data
                length[0] = size
                rc = func(ctx, buf, length)
                if rc:
                    count(reason)
                    _srtp_assert(rc)
                return mem[0 : length[0]]

            # The session owns the srtp_t: it must live as long as any closure that uses it
            # (a caller may keep only ``fast.protect``).
            process.session = session  # type: ignore[attr-defined]
            return process

        size = self.SIZE
        self.protect = processor(lib.srtp_protect, size - SRTP_MAX_TRAILER_LEN, None)
        self.protect_rtcp = processor(
            lib.srtp_protect_rtcp, size - SRTP_MAX_SRTCP_TRAILER_LEN, None
        )
        self.unprotect = processor(lib.srtp_unprotect, size, "srtp_rejected")
        self.unprotect_rtcp = processor(lib.srtp_unprotect_rtcp, size, "srtcp_rejected")


class SfuDtlsTransport(RTCDtlsTransport):
    _sfu_sink: MediaSink
    _fast_path: tuple[Any, Any] | None

    def _setup_srtp(self) -> None:
        super()._setup_srtp()
        self._rx_srtp = FastSrtp(self._rx_srtp, self._sfu_sink.dropped)
        self._tx_srtp = FastSrtp(self._tx_srtp)

    def _set_state(self, state: State) -> None:
        super()._set_state(state)
        if state == State.CONNECTED:
            self._install_fast_path()
        else:
            self._remove_fast_path()

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        # Only before the fast path is in place (or behind a TURN relay).
        try:
            self._sfu_sink.on_rtp(data)
        except Exception as exc:
            self._sfu_sink.faults.record("rtp", exc)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        try:
            self._sfu_sink.on_rtcp(data)
        except Exception as exc:
            self._sfu_sink.faults.record("rtcp", exc)

    def _install_fast_path(self) -> None:
        pair = self.transport._connection._nominated.get(1)
        if pair is None or type(pair.protocol) is not aioice.ice.StunProtocol:
            return
        protocol = pair.protocol
        queued = protocol.datagram_received
        unprotect = self._rx_srtp.unprotect
        unprotect_rtcp = self._rx_srtp.unprotect_rtcp
        on_rtp = self._sfu_sink.on_rtp
        on_rtcp = self._sfu_sink.on_rtcp
        faults = self._sfu_sink.faults

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            # SRTP and SRTCP (first byte 128-191, RFC 7983; RTCP by the second byte as in
            # aiortc.rtp.is_rtcp, inlined): decrypt and hand over now.
            if len(data) > 1 and 127 < data[0] < 192:
                if not 191 < data[1] < 209:
                    try:
                        plain = unprotect(data)
                    except pylibsrtp.Error:
                        return  # counted by FastSrtp
                    try:
                        on_rtp(plain)
                    except Exception as exc:
                        faults.record("rtp", exc)
                    return
                try:
                    plain = unprotect_rtcp(data)
                except pylibsrtp.Error:
                    return
                try:
                    on_rtcp(plain)
                except Exception as exc:
                    faults.record("rtcp", exc)
                return
            queued(data, addr)

        protocol.datagram_received = datagram_received
        self._fast_path = (protocol, queued)

    def _remove_fast_path(self) -> None:
        if getattr(self, "_fast_path", None) is not None:
            protocol, queued = self._fast_path
            protocol.datagram_received = queued
            self._fast_path = None


def send_now(transport: RTCDtlsTransport) -> Callable[[bytes], None]:
    """A synchronous ``_send_rtp`` for ``transport``: encrypt (RTP or RTCP by the second byte)
    and hand the datagram to the socket; ConnectionError while DTLS is not up. A TURN-relayed
    pair (whose send is a coroutine) is sent through aiortc in the background.

    Once a direct pair is nominated, its UDP socket is *connected* to the remote address (a
    duplicate descriptor of aioice's socket, closed with the transport) and datagrams go out
    with a plain ``send``: the kernel keeps the route cached instead of looking it up per
    packet, and uvloop's per-call address conversion is skipped (~0.5-0.8 us per packet on
    loopback). Only the nominated remote can reach the socket from then on, which is all ICE
    uses after nomination. When the socket buffer is full, the datagram goes through the event
    loop's transport, which queues it, as before."""
    nominated = transport.transport._connection._nominated
    connected = State.CONNECTED
    # The nominated pair, its send function and remote address, looked up again only when the
    # pair changes (CandidatePair.remote_addr builds a tuple per call).
    route: list[Any] = [None, None, None]
    sockets: list[socket.socket] = []

    def close_sockets() -> None:
        while sockets:
            sockets.pop().close()

    def on_state() -> None:
        if transport.state in ("closed", "failed"):
            close_sockets()

    transport.on("statechange", on_state)

    def direct_send(pair: Any) -> Callable[[bytes, Any], None]:
        queued = pair.protocol.transport.sendto
        try:
            fd = pair.protocol.transport.get_extra_info("socket").fileno()
            sock = socket.socket(fileno=os.dup(fd))
            sock.setblocking(False)
            sock.connect(pair.remote_addr)
        except OSError:
            return queued  # keep the event loop's path (counted nowhere: it still works)
        close_sockets()
        sockets.append(sock)
        send_connected = sock.send

        def send(data: bytes, addr: Any) -> None:
            try:
                send_connected(data)
            except BlockingIOError:
                queued(data, addr)

        return send

    def send(data: bytes) -> None:
        if transport._state is not connected:
            raise ConnectionError("DTLS is not connected")
        pair = nominated.get(1)
        if pair is not route[0]:
            if pair is None:
                raise ConnectionError("no nominated ICE pair")
            direct = type(pair.protocol) is aioice.ice.StunProtocol
            route[:] = pair, direct_send(pair) if direct else None, pair.remote_addr
        srtp = transport._tx_srtp
        # RTCP or RTP by the second byte (aiortc.rtp.is_rtcp, inlined: runs for every packet).
        protected = srtp.protect_rtcp(data) if 191 < data[1] < 209 else srtp.protect(data)
        sendto = route[1]
        if sendto is not None:
            sendto(protected, route[2])
        else:
            asyncio.ensure_future(pair.protocol.send_data(protected, pair.remote_addr))

    return send


def adopt(transport: RTCDtlsTransport, sink: MediaSink) -> SfuDtlsTransport:
    """Make one aiortc DTLS transport deliver to ``sink`` (call before it starts)."""
    if not isinstance(transport, SfuDtlsTransport):
        if transport.state != "new":
            raise RuntimeError("adopt() must run before the DTLS transport starts")
        transport.__class__ = SfuDtlsTransport
        transport._sfu_sink = sink
        transport._fast_path = None
        ice = transport.transport
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
    """The sender of a subscription's m-line: aiortc negotiates it, the Subscription sends.

    aiortc's sender would pull frames from a track and encode them (``_run_rtp``) and send
    sender reports whose counters only move with what *it* sent (``_run_rtcp``). Here both loops
    only idle until ``stop()``: packets and translated sender reports come from the
    Subscription, and incoming RTCP reaches the Subscription through ``SfuDtlsTransport``.
    Installed per transceiver with ``forwarding_sender(sender)``.
    """

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        await _idle(self._RTCRtpSender__rtp_started, self._RTCRtpSender__rtp_exited)

    async def _run_rtcp(self) -> None:
        await _idle(self._RTCRtpSender__rtcp_started, self._RTCRtpSender__rtcp_exited)


async def _idle(started: asyncio.Event, exited: asyncio.Event) -> None:
    """One of aiortc's sender loops, doing nothing until stop() cancels it."""
    started.set()
    try:
        await asyncio.get_running_loop().create_future()
    except asyncio.CancelledError:
        pass
    finally:
        exited.set()


def forwarding_sender(sender: RTCRtpSender) -> ForwardingSender:
    """Turn a fresh aiortc sender into a ForwardingSender (call before negotiation)."""
    sender.__class__ = ForwardingSender
    return sender  # type: ignore[return-value]


class ForwardingReceiver(RTCRtpReceiver):
    """The receiver of a publication's m-line: aiortc negotiates it, the Publication receives.

    aiortc's ``receive()`` starts a decoder thread and an RTCP task per receiver. Packets never
    reach an aiortc receiver here (``SfuDtlsTransport`` hands them to the Participant, which
    sends the receiver reports), so the thread only costs memory and the task wakes about once
    a second to find nothing to report: two threads and two wake-ups a second per
    participant. Installed per transceiver with ``forwarding_receiver(receiver)``.
    """

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        return None


def forwarding_receiver(receiver: RTCRtpReceiver) -> ForwardingReceiver:
    """Turn a fresh aiortc receiver into a ForwardingReceiver (call before negotiation)."""
    receiver.__class__ = ForwardingReceiver
    return receiver  # type: ignore[return-value]
