"""Leg.read_ready: one wake-up of a socket reads every datagram waiting (recvmmsg), handles
SRTP/SRTCP in place and hands the rest (STUN, DTLS) to aioice with the sender's address; the
packets it forwards leave in one sendmmsg per subscriber socket, in order and well formed."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from benchmarks.forward_micro import srtp_sender
from media_server import rtpheader
from media_server.faults import Faults
from media_server.rtpforward import Inbound, Leg, Outbound
from media_server.transport import set_keys

UP, DOWN = bytes(range(30)), bytes(range(1, 31))


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def rtp(seq: int) -> bytes:
    header = bytes([0x80, 96]) + seq.to_bytes(2, "big") + (3000 * seq).to_bytes(4, "big")
    return header + (5).to_bytes(4, "big") + bytes([0x90, 0x80, 0x80, 0x01, 0x10]) + bytes(900)


@dataclass
class Forwarder:
    """A publisher's Leg reading one socket, its SSRC 5 routed to a subscriber's Leg sending
    on another socket connected to ``viewer``; ``client`` plays the publisher."""

    faults: Faults = field(default_factory=lambda: Faults("test"))
    dropped: dict[str, int] = field(default_factory=dict)  # the subscriber leg's
    passed_on: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.publisher = Leg(on_rtp=None, on_rtcp=None, dropped={}, faults=self.faults)
        self.subscriber = Leg(on_rtp=None, on_rtcp=None, dropped=self.dropped, faults=self.faults)
        set_keys(self.publisher, srtp_sender(True, UP), srtp_sender(False, bytes(30)))
        set_keys(self.subscriber, srtp_sender(True, bytes(30)), srtp_sender(False, DOWN))
        self.publisher.connected = self.subscriber.connected = True
        self.publisher.queued = lambda data, addr: self.passed_on.append((data, addr))
        self.sockets = self.sfu_in, self.client, self.sfu_out, self.viewer = [
            udp() for _ in range(4)
        ]
        self.sfu_out.connect(self.viewer.getsockname())
        self.publisher.rfd, self.subscriber.fd = self.sfu_in.fileno(), self.sfu_out.fileno()
        self.inbound = Inbound(90000, 96, faults=self.faults)
        self.publisher.routes[5] = self.inbound
        self.out = Outbound(64, lambda packet: True, {}, self.faults)
        self.out.set_route(self.subscriber, rtpheader.ExtensionRewrite({}, {}, "").plan)
        self.out.ssrc, self.out.payload_type, self.out.ready = 9, 100, True
        self.inbound.outbounds.append(self.out)
        self.sender = srtp_sender(False, UP)

    def publish(self, seqs: range) -> None:
        for seq in seqs:
            self.client.sendto(self.sender.protect(rtp(seq)), self.sfu_in.getsockname())

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def test_one_wake_up_reads_every_waiting_datagram_and_batches_the_sends() -> None:
    f = Forwarder()
    f.publish(range(40))  # more than one recvmmsg batch (32)
    f.client.sendto(b"\x00\x01 a STUN binding request", f.sfu_in.getsockname())
    f.publisher.read_ready()

    assert (f.publisher.read_calls, f.publisher.datagrams_read) == (1, 41)
    assert f.inbound.packets_in == 40 and f.out.packets_out == 40
    assert f.passed_on == [(b"\x00\x01 a STUN binding request", f.client.getsockname())]
    assert f.subscriber.packets_sent == 40 and not f.faults.count
    receiver = srtp_sender(True, DOWN)
    got = [rtpheader.parse(receiver.unprotect(f.viewer.recv(2048))) for _ in range(40)]
    assert [h.ssrc for h in got] == [9] * 40
    first = got[0].sequence_number
    assert [h.sequence_number for h in got] == [(first + i) & 0xFFFF for i in range(40)]
    f.publisher.read_ready()  # nothing waiting: a wake-up that reads nothing
    assert f.publisher.datagrams_read == 41
    f.close()


def test_a_send_the_socket_refuses_is_counted_on_its_leg() -> None:
    f = Forwarder()
    f.viewer.close()  # the subscriber's port is gone: the kernel answers with ICMP
    f.subscriber.send(rtp(0))  # not batched: this first send provokes the ICMP error
    f.publish(range(1, 4))
    f.publisher.read_ready()
    assert f.inbound.packets_in == 3
    assert f.dropped.get("not_connected", 0) >= 1 and not f.faults.count
    f.close()
