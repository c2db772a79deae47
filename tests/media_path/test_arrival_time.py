"""Arrival times on the receive path are when a datagram reached the SFU's socket (the kernel's
receive timestamp), not when the event loop got round to it: a publisher sends at a steady
pace over a real SRTP leg on loopback while the SFU's loop stalls for 300 ms, and the
transport-cc feedback, the uplink estimator's input (the Inbound's frame hook), the RFC 3550
jitter and the arrival of an SRTCP packet still follow the send spacing; round trips and the
delay since the last SR count from those arrivals."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from itertools import pairwise

import pytest
from aiortc.rtp import RtcpReceiverInfo, RtcpSenderInfo, RtcpSrPacket

from benchmarks.forward_micro import srtp_sender
from media_server.faults import Faults
from media_server.rtpforward import Arrivals, Inbound, Leg
from media_server.transport import set_keys

from .test_subscription import forwarding_on_a_hand_clock
from .test_transport_feedback import EXT_ID, reported

SRTP_KEY = bytes(range(30))
SSRC = 5
PACE_S = 0.02  # one packet (a one-packet frame) every 20 ms
PACKETS = 30
STALL_AFTER = 10  # packets sent before the SFU's loop stalls
STALL_S = 0.3
TOLERANCE_US = 20_000  # per packet: a loaded machine's scheduling, far under the stall


def rtp(seq: int) -> bytes:
    """Packet ``seq``: transport sequence ``seq``, marker set, RTP time at the nominal pace."""
    header = struct.pack("!BBHII", 0x90, 0x80 | 96, seq, round(seq * PACE_S * 90000), SSRC)
    extension = struct.pack("!HHBHB", 0xBEDE, 1, (EXT_ID << 4) | 1, seq, 0)
    return header + extension + bytes([0x90, 0x80, 0x80, 0x01, 0x10]) + bytes(400)


def rfc3550_jitter(arrivals_s: list[float]) -> float:
    """RFC 3550 A.8 interarrival jitter (seconds) of ``rtp`` packets 0, 1, ... arriving then."""
    jitter = 0.0
    for i in range(1, len(arrivals_s)):
        transit = (arrivals_s[i] - arrivals_s[i - 1]) - PACE_S
        jitter += (abs(transit) - jitter) / 16
    return jitter


async def test_a_stalled_event_loop_does_not_move_the_arrival_times() -> None:
    faults = Faults("test")
    frames: list[tuple[int, float]] = []  # (arrival us, when the hook ran: time.monotonic s)
    rtcp_at: list[int] = []  # arrival us of each SRTCP packet
    inbound = Inbound(
        90000, 96, faults=faults,
        on_frame=lambda data, size, at_us: frames.append((at_us, time.monotonic())),
    )  # fmt: skip
    publisher = Leg(
        on_rtp=None, on_rtcp=lambda data, at_us: rtcp_at.append(at_us), dropped={}, faults=faults
    )
    set_keys(publisher, srtp_sender(True, SRTP_KEY), srtp_sender(False, bytes(30)))
    publisher.connected = True
    publisher.routes[SSRC] = inbound
    publisher.arrivals = Arrivals(EXT_ID)
    sfu, client = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    sfu.bind(("127.0.0.1", 0))
    sfu.setblocking(False)
    loop = asyncio.get_running_loop()
    publisher.rfd = sfu.fileno()
    loop.add_reader(sfu.fileno(), publisher.read_ready)
    sent_us: list[int] = []
    rtcp_sent_us: list[int] = []

    def publish() -> None:  # a thread: the publisher keeps its pace while the loop stalls
        session = srtp_sender(False, SRTP_KEY)
        sr = bytes(RtcpSrPacket(ssrc=SSRC, sender_info=RtcpSenderInfo(1 << 32, 0, 0, 0)))
        for seq in range(PACKETS):
            client.sendto(session.protect(rtp(seq)), sfu.getsockname())
            sent_us.append(time.monotonic_ns() // 1000)
            if seq == STALL_AFTER - 1:
                loop.call_soon_threadsafe(time.sleep, STALL_S)  # a GC pause, a busy callback
            time.sleep(PACE_S)
            if seq == STALL_AFTER:  # well inside the stall
                client.sendto(session.protect_rtcp(sr), sfu.getsockname())
                rtcp_sent_us.append(time.monotonic_ns() // 1000)

    try:
        await asyncio.to_thread(publish)
        for _ in range(500):  # the loop reads what waits; bounded
            if inbound.packets_in == PACKETS:
                break
            await asyncio.sleep(0.01)
    finally:
        loop.remove_reader(sfu.fileno())
        publisher.rfd = -1
        sfu.close()
        client.close()

    assert inbound.packets_in == PACKETS and len(rtcp_at) == 1 and not faults.count
    handled = [at for _, at in frames]
    # The stall happened: some packet was handled STALL_S after the one before it.
    assert max(b - a for a, b in pairwise(handled)) >= STALL_S * 0.8
    assert publisher.unstamped == 0
    feedback = reported(publisher.arrivals.feedback(1))
    twcc = [feedback[seq] for seq in range(PACKETS)]
    hook = [at for at, _ in frames]
    assert None not in twcc
    send_deltas = [b - a for a, b in pairwise(sent_us)]
    for arrivals in (twcc, hook):
        deltas = [b - a for a, b in pairwise(arrivals)]  # type: ignore[operator]
        off = [(i, got, sent) for i, (got, sent) in enumerate(zip(deltas, send_deltas, strict=True))
               if abs(got - sent) > TOLERANCE_US]  # fmt: skip
        assert not off, off
    # RFC 3550 jitter (in RTP units: 90 per ms) is the send pacing's, not the stall's (20 ms:
    # every packet of the late batch handled at once, 20 ms early against its timestamp).
    expected = rfc3550_jitter([us / 1e6 for us in sent_us]) * 90000
    assert abs(inbound.jitter - expected) < 0.005 * 90000, (inbound.jitter, expected)
    assert abs(rtcp_at[0] - rtcp_sent_us[0]) < TOLERANCE_US, (rtcp_at, rtcp_sent_us)


def test_round_trips_and_delays_since_the_last_sr_count_from_arrival(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The publisher's SR and the subscriber's report each wait STALL_S in a stalled SFU.
    now, pub, sub = forwarding_on_a_hand_clock(monkeypatch)
    sr_arrived = now[0]
    now[0] += STALL_S
    # Handled now; the subscription's translated SR goes out now.
    pub.on_sender_report(0xAABBCCDD00112233, 4000, sr_arrived)
    block = pub.report_block()  # our report to the publisher, sent now
    assert block is not None and block.dlsr == pytest.approx(STALL_S * 65536, abs=1)
    echo_arrived = now[0] + 0.05  # the subscriber's report echoing our SR, 50 ms later
    now[0] = echo_arrived + STALL_S
    echo = RtcpReceiverInfo(9999, 0, 0, 0, 0, lsr=0xCCDD0011, dlsr=0)
    sub.on_receiver_report(echo, echo_arrived)
    assert sub.rtt == pytest.approx(0.05)


def test_a_leg_reads_only_a_socket_it_can_timestamp() -> None:
    leg = Leg(on_rtp=None, on_rtcp=None, dropped={}, faults=Faults("test"))
    read, write = os.pipe()
    try:
        with pytest.raises(OSError):
            leg.rfd = read  # a pipe has no receive timestamps
        assert leg.rfd == -1
    finally:
        os.close(read)
        os.close(write)
