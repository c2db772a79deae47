"""Any RTP packet that arrived in one datagram leaves in one: near-MTU packets (native
payloaders use an MTU of 1400) are forwarded and resent through the compiled path, whatever
SRTP profile each leg negotiated."""

from __future__ import annotations

import pylibsrtp
import pytest
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from media_server.faults import Faults
from media_server.publication import Publication
from media_server.rtpforward import Leg
from media_server.subscription import Subscription
from media_server.transport import set_keys

VP8 = RTCRtpCodecParameters(
    mimeType="video/VP8", clockRate=90000, payloadType=96,
    rtcpFeedback=[RTCRtcpFeedback(type="nack")],  # NACKs asked for: resent from the history
)  # fmt: skip
PROFILES = {  # profile -> key + salt length
    pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80: 30,
    pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM: 28,
}


def session(profile: int, inbound: bool, key: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=bytes((key + i) & 0xFF for i in range(PROFILES[profile])),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND
        if inbound
        else pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=profile,
    )
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy=policy)


def leg(rx: pylibsrtp.Session, tx: pylibsrtp.Session, wire: list[bytes]) -> Leg:
    out = Leg(on_rtp=wire.append, on_rtcp=wire.append, dropped={}, faults=Faults("test"))
    set_keys(out, rx, tx)
    out.send_queued = wire.append  # no socket: what would be sent lands here
    out.connected = True
    return out


def keyframe(seq: int, size: int) -> bytes:
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=9000, ssrc=42)
    packet.payload = bytes([0x10, 0x10]) + bytes(size - 14)  # VP8 keyframe start
    data = packet.serialize()
    assert len(data) == size
    return data


@pytest.mark.parametrize("size", [1356, 1357, 1400, 1460])
@pytest.mark.parametrize("publisher_profile", list(PROFILES))
@pytest.mark.parametrize("subscriber_profile", list(PROFILES))
def test_near_mtu_packets_are_forwarded_and_resent(
    size: int, publisher_profile: int, subscriber_profile: int
) -> None:
    inbound_wire: list[bytes] = []
    publisher = leg(
        session(publisher_profile, True, 1), session(publisher_profile, False, 2), inbound_wire
    )
    out_wire: list[bytes] = []
    subscriber = leg(
        session(subscriber_profile, True, 3), session(subscriber_profile, False, 4), out_wire
    )
    pub = Publication(
        participant_id="p", kind="video", mid="0", codec=VP8, ssrc=42, extensions={},
        send_rtcp=lambda data: None,
    )  # fmt: skip
    publisher.routes[42] = pub.inbound
    faults = Faults("sub")
    sub = Subscription(pub, history_packets=1024, faults=faults)
    sub.bind(
        ssrc=7, payload_type=100, mid="1", extensions={}, send_rtp=subscriber,
        send_rtcp=lambda data: None,
    )  # fmt: skip

    sent = keyframe(500, size)
    # The publisher's own stack protects it (pylibsrtp's protect stops at 1356 bytes; the
    # compiled Leg is the client here too).
    client_wire: list[bytes] = []
    leg(session(publisher_profile, True, 9), session(publisher_profile, False, 1), client_wire)(
        sent
    )
    publisher.datagram_received(client_wire[0], ("127.0.0.1", 1))
    assert sub.packets_out == 1, (sub.dropped, faults.by_place)
    assert len(out_wire) == 1

    sub.on_nack([sub.out.last_seq])
    assert sub.retransmissions == 1 and faults.count == 0, faults.by_place
    for datagram_out in out_wire:  # the resend repeats the index: a fresh receiver each
        received: list[bytes] = []
        receiver = leg(
            session(subscriber_profile, True, 4), session(subscriber_profile, False, 8), received
        )
        receiver.datagram_received(datagram_out, ("127.0.0.1", 2))
        plain = RtpPacket.parse(received[0])
        assert (plain.ssrc, plain.payload_type) == (7, 100)
        assert plain.payload == RtpPacket.parse(sent).payload
