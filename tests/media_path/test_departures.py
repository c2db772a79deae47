"""Transport-wide congestion control towards subscribers (media.downlink_transport_cc): every
RTP packet on a subscriber's leg carries the leg's own transport-wide sequence number, and the
subscriber's feedback (RTPFB FMT 15, draft-holmer-rmcat-transport-wide-cc-extensions-01 3.1)
is joined with what we sent (rtpforward.Departures). The feedback packets here are built by
hand, chunk by chunk, from the draft."""

from __future__ import annotations

import asyncio
import logging
import struct
import time

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpRtpfbPacket, RtpPacket

from media_server import metrics, reoffer, rtpheader, sdpextras
from media_server import participant as participant_module
from media_server.faults import Faults
from media_server.participant import Participant
from media_server.publication import Publication
from media_server.rtpforward import SENT_MEDIA, SENT_PADDING, SENT_RESEND, Departures, Leg, Outbound
from media_server.subscription import Subscription
from media_server.transport import set_keys

from .peers import Call, keeps_receiving, media_settings, wait_for
from .test_resend import srtp_sessions
from .test_subscription import KEY, publication, push, rtp

MID, TCC = rtpheader.URI_MID, rtpheader.URI_TRANSPORT_CC
TCC_ID = 5  # the subscriber leg's transport-cc id
PUB_TCC_ID = 3  # the publisher's
REFERENCE_US, TICK_US = 64000, 250
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


class SubscriberLeg:
    """A subscriber's Leg (SRTP as aiortc keys it) that records departures; what it sends is
    kept protected (``wire``) and can be read back (``sent``)."""

    def __init__(self, **departures: int) -> None:
        self.wire: list[bytes] = []
        self.dropped: dict[str, int] = {}
        self.leg = Leg(on_rtp=None, on_rtcp=None, dropped=self.dropped, faults=Faults("test"))
        inbound, outbound = srtp_sessions()
        self._receiver = srtp_sessions()[0]
        set_keys(self.leg, inbound, outbound)
        self.leg.send_queued, self.leg.connected = self.wire.append, True
        self.departures = self.leg.departures = Departures(TCC_ID, self.dropped, **departures)

    def sent(self) -> list[bytes]:
        return [self._receiver.unprotect(d) for d in self.wire]

    def outbound(self) -> Outbound:
        """An Outbound on this leg whose plans add the transport-cc element (as a subscription
        whose answer kept it)."""
        out = Outbound(1024, lambda packet: True, {}, Faults("test"))
        plan = rtpheader.ExtensionRewrite({MID: 1}, {MID: 1, TCC: TCC_ID}, "1").plan
        out.set_route(self.leg, plan, transport_seq=True)
        out.ssrc, out.payload_type, out.ready = 9, 96, True
        return out


def transport_seq(packet: bytes) -> int | None:
    value = rtpheader.element_value(packet, rtpheader.parse(packet), TCC_ID)
    return None if value is None else int.from_bytes(value, "big")


def with_tcc(packet: bytes, value: int) -> bytes:
    """``packet`` (one-byte extension block with MID id 1) with a publisher's transport-cc
    element of id PUB_TCC_ID appended."""
    p = RtpPacket.parse(packet, rtpheader.extension_map({MID: 1}))
    p.extensions.transport_sequence_number = value
    return p.serialize(rtpheader.extension_map({MID: 1, TCC: PUB_TCC_ID}))


def test_every_packet_on_the_leg_gets_the_next_transport_sequence() -> None:
    # Audio and video forwarded, an RTX resend (NACK answer) and probe padding, on one leg:
    # consecutive transport sequence numbers in the order they left, the element added where
    # the publisher's packet had none (or no extension block at all) and overwritten where it
    # had one: the publisher's value never goes out as ours.
    sub_leg = SubscriberLeg()
    video_pub = publication([])
    video_pub.extensions = {MID: 1, TCC: PUB_TCC_ID}
    video = Subscription(video_pub, history_packets=1024, faults=Faults("test"))
    video.bind(ssrc=9999, payload_type=97, mid="4", extensions={MID: 1, TCC: TCC_ID},
               send_rtp=sub_leg.leg, send_rtcp=lambda data: None)  # fmt: skip
    video.out.set_rtx(8888, {98: 97})
    video.rtx_repairs = frozenset({97})
    audio_pub = Publication(participant_id="pub", kind="audio", mid="0", codec=OPUS, ssrc=4000,
                            extensions={MID: 1}, send_rtcp=lambda data: None, rtcp_ssrc=77)  # fmt: skip
    audio = Subscription(audio_pub, history_packets=1024, faults=Faults("test"))
    audio.bind(ssrc=7777, payload_type=111, mid="5", extensions={MID: 1, TCC: TCC_ID},
               send_rtp=sub_leg.leg, send_rtcp=lambda data: None)  # fmt: skip

    push(video_pub, with_tcc(rtp(10, 0, payload=KEY), 0xABCD))
    opus = RtpPacket(
        payload_type=111, sequence_number=20, timestamp=960, ssrc=4000, payload=b"opus"
    )
    opus.extensions.mid = "0"
    push(audio_pub, opus.serialize(rtpheader.extension_map({MID: 1})))
    bare = struct.pack("!BBHII", 0x80, 111, 21, 1920, 4000) + b"opus"  # no extension block
    push(audio_pub, bare)
    push(video_pub, with_tcc(rtp(11, 3000), 0xABCE))
    video.on_nack([video.out.last_seq])
    assert video.pad(1) > 0
    sent = sub_leg.sent()
    assert [transport_seq(p) for p in sent] == [0, 1, 2, 3, 4, 5]
    assert sub_leg.departures.next_seq == 6
    assert not any(b"\xab\xcd" in p or b"\xab\xce" in p for p in sent)
    parsed = [rtpheader.parse(p) for p in sent]
    assert [h.ssrc for h in parsed] == [9999, 7777, 7777, 9999, 8888, 8888]
    for packet, header in zip(sent, parsed, strict=True):
        ids = [i for _, i, _ in rtpheader.elements(packet, header)]
        assert ids.count(TCC_ID) == 1 and PUB_TCC_ID not in ids
    assert sent[2][rtpheader.parse(sent[2]).payload_offset :] == b"opus"
    # What feedback says of them comes back with what we recorded of each.
    results = sub_leg.departures.feedback(feedback(0, 100, 0, [0x2000 | 6], bytes([4] * 6)))
    assert [r[0] for r in results] == list(range(6))
    assert [r[4] for r in results] == [SENT_MEDIA] * 4 + [SENT_RESEND, SENT_PADDING]
    assert [r[2] for r in results] == [len(d) for d in sub_leg.wire]
    assert [r[3] for r in results] == [100 * REFERENCE_US + 4 * TICK_US * (i + 1) for i in range(6)]


def test_a_leg_without_transport_cc_sends_as_before() -> None:
    # The subscriber's answer did not keep transport-cc: no element, nothing recorded, and the
    # publisher's element is blanked (not passed on as a sequence of our leg).
    sub_leg = SubscriberLeg()
    out = Outbound(1024, lambda packet: True, {}, Faults("test"))
    rewrite = rtpheader.ExtensionRewrite({MID: 1, TCC: PUB_TCC_ID}, {MID: 1}, "1")
    assert not rewrite.stamps
    out.set_route(sub_leg.leg, rewrite.plan)
    out.ssrc, out.payload_type, out.ready = 9, 96, True
    out.forward(with_tcc(rtp(1, 0), 0xABCD))
    out.forward(struct.pack("!BBHII", 0x80, 96, 2, 0, 5) + b"bare")
    sent = sub_leg.sent()
    assert [transport_seq(p) for p in sent] == [None, None]
    assert b"\xab\xcd" not in sent[0]
    assert sent[1][0] & 0x10 == 0  # no extension block was added
    assert sub_leg.departures.next_seq == 0


def feedback(base: int, reference: int, count: int, chunks: list[int], deltas: bytes,
             statuses: int | None = None) -> bytes:  # fmt: skip
    """One transport-cc feedback packet: ``chunks`` (16-bit packet status chunks) covering
    ``statuses`` packets from ``base`` (default: what the chunks cover when all are run
    lengths), then the receive ``deltas`` as given, padded (RFC 3550 6.4.1)."""
    if statuses is None:
        statuses = sum(c & 0x1FFF for c in chunks)
    body = struct.pack("!IIHH", 1, 9, base, statuses) + reference.to_bytes(3, "big")
    body += bytes([count]) + b"".join(struct.pack("!H", c) for c in chunks) + deltas
    padding = -len(body) % 4
    if padding:
        body += bytes(padding - 1) + bytes([padding])
    first = 0x80 | (0x20 if padding else 0) | 15
    return struct.pack("!BBH", first, 205, (len(body) + 4) // 4 - 1) + body


def sending(n: int, sub_leg: SubscriberLeg | None = None, first: int = 0) -> SubscriberLeg:
    """``sub_leg`` (a new one by default) after sending ``n`` packets (RTP sequence from
    ``first``), of 10 to 16 bytes of payload."""
    sub_leg = sub_leg or SubscriberLeg()
    out = sub_leg.outbound()
    for i in range(first, first + n):
        out.forward(rtp(i & 0xFFFF, 3000 * i & 0xFFFFFFFF, payload=bytes(10 + i % 7)))
    return sub_leg


def all_received(base: int, n: int, count: int) -> bytes:
    """A feedback (packet count ``count``) reporting ``n`` packets from ``base`` received,
    one tick apart."""
    return feedback(base & 0xFFFF, 1, count, [0x2000 | n], bytes([1] * n))


def test_send_times_read_back_across_the_wrap_of_their_32_bit_offset() -> None:
    # The ring keeps a send time as 32-bit microseconds after its epoch (8 bytes a packet): it
    # wraps every 71.6 minutes of a call. Here the wrap comes 20 ms after the epoch, between
    # the packets: their send times still read back as the clock read them, in order.
    start = time.monotonic_ns() // 1000
    sub_leg = SubscriberLeg(epoch_us=start - 2**32 + 20_000)
    for _ in range(8):
        sending(1, sub_leg)
        time.sleep(0.006)
    end = time.monotonic_ns() // 1000
    sent_us = [r[1] for r in sub_leg.departures.feedback(all_received(0, 8, 0))]
    assert len(sent_us) == 8 and sent_us == sorted(sent_us)
    assert start <= sent_us[0] and sent_us[-1] <= end
    assert sent_us[-1] - sent_us[0] >= 7 * 6000  # the sleeps between them, none lost to a wrap


def test_the_ring_grows_when_a_feedback_spans_more_than_half_of_it() -> None:
    # 512 packets to start with (4 KiB); a feedback every 100 ms on a few hundred packets/s
    # spans far less, and the ring stays so.
    sub_leg = sending(100)
    d = sub_leg.departures
    assert len(d.feedback(all_received(0, 100, 0))) == 100 and d.capacity == 512
    # A feedback spanning 400 packets (a higher rate, a longer round trip): the ring doubles,
    # keeping what it held, so the next one as long, 700 here, finds all of its packets.
    sending(300, sub_leg, first=100)
    assert len(d.feedback(all_received(100, 300, 1))) == 300 and d.capacity == 1024
    sending(700, sub_leg, first=400)
    results = d.feedback(all_received(400, 700, 2))
    assert [r[0] for r in results] == list(range(400, 1100))
    assert [r[2] for r in results] == [len(x) for x in sub_leg.wire[400:1100]]
    assert d.capacity == 2048
    # A base far behind what was sent (stale or lying) grows nothing: up to 4096 at most.
    sending(3000, sub_leg, first=1100)
    assert d.feedback(all_received(4100 - 5000, 3, 3)) == [] and d.capacity == 2048
    # Nor one that names packets before the first sent (a lying base, or another leg's).
    fresh = sending(10).departures
    assert fresh.feedback(all_received(-400, 3, 0)) == [] and fresh.capacity == 512


def test_run_length_chunks_and_small_deltas() -> None:
    sub_leg = sending(10)
    # 4 received (small deltas 2, 4, 6, 8 ticks), 3 not received, 3 received (1 tick each)
    packet = feedback(
        0, 1000, 0, [0x2000 | 4, 0x0000 | 3, 0x2000 | 3], bytes([2, 4, 6, 8, 1, 1, 1])
    )
    results = sub_leg.departures.feedback(packet)
    base = 1000 * REFERENCE_US
    arrivals = [base + 500, base + 1500, base + 3000, base + 5000, -1, -1, -1,
                base + 5250, base + 5500, base + 5750]  # fmt: skip
    assert [(r[0], r[3]) for r in results] == list(enumerate(arrivals))
    assert [r[2] for r in results] == [len(d) for d in sub_leg.wire]
    sent_us = [r[1] for r in results]
    assert sent_us == sorted(sent_us) and sent_us[0] > 0
    assert sub_leg.departures.reported_lost == 3 and sub_leg.departures.feedbacks == 1


def test_one_bit_vectors() -> None:
    sub_leg = sending(20)
    # 14 one-bit symbols: 1 0 1 1 0 0 1 1 1 1 1 1 1 0 (status count 14)
    chunk = 0x8000 | 0b10110011111110
    received = [1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]
    deltas = bytes(range(1, 1 + sum(received)))
    results = sub_leg.departures.feedback(feedback(3, 7, 0, [chunk], deltas, statuses=14))
    at, expect, k = 7 * REFERENCE_US, [], 0
    for i, r in enumerate(received):
        if r:
            k += 1
            at += k * TICK_US
        expect.append((3 + i, at if r else -1))
    assert [(r[0], r[3]) for r in results] == expect


def test_two_bit_vectors_with_large_and_negative_deltas() -> None:
    sub_leg = sending(10)
    # 7 two-bit symbols: small, large, large (negative), not received, small, large, none
    chunk = 0xC000 | 0b01_10_10_00_01_10_00
    deltas = bytes([10]) + struct.pack("!hh", 1000, -20) + bytes([3]) + struct.pack("!h", 300)
    results = sub_leg.departures.feedback(feedback(2, 50, 0, [chunk], deltas, statuses=7))
    t0 = 50 * REFERENCE_US
    a = [t0 + 2500, t0 + 2500 + 250000, t0 + 2500 + 250000 - 5000]
    a += [-1, a[-1] + 750, a[-1] + 750 + 75000, -1]
    assert [(r[0], r[3]) for r in results] == [(2 + i, x) for i, x in enumerate(a)]


def test_the_reference_time_unwraps_across_feedbacks() -> None:
    sub_leg = sending(4)
    d = sub_leg.departures
    first = d.feedback(feedback(0, 0xFFFFFF, 0, [0x2000 | 2], bytes([4, 4])))
    second = d.feedback(feedback(2, 0x000001, 1, [0x2000 | 2], bytes([4, 4])))
    assert [r[3] for r in first] == [0xFFFFFF * REFERENCE_US + 1000, 0xFFFFFF * REFERENCE_US + 2000]
    assert [r[3] for r in second] == [
        0x1000001 * REFERENCE_US + 1000,
        0x1000001 * REFERENCE_US + 2000,
    ]
    # A late feedback from before the wrap still reads as before it.
    late = d.feedback(feedback(0, 0xFFFFFF, 2, [0x2000 | 1], bytes([4])))
    assert late == []  # seq 0 was delivered received already


def test_sequence_numbers_unwrap_at_65535() -> None:
    sub_leg = sending(65536 + 4)
    d = sub_leg.departures
    assert d.next_seq == 65540
    results = d.feedback(feedback(65534, 9, 0, [0x2000 | 4], bytes([1] * 4)))
    assert [r[0] for r in results] == [65534, 65535, 65536, 65537]
    assert [r[2] for r in results] == [len(x) for x in sub_leg.wire[65534:65538]]
    # Those never sent (65540...) and those the ring no longer holds (far back) are skipped.
    later = d.feedback(feedback(65538 & 0xFFFF, 9, 1, [0x2000 | 5], bytes([1] * 5)))
    assert [r[0] for r in later] == [65538, 65539]
    assert d.feedback(feedback(100, 9, 2, [0x2000 | 3], bytes([1] * 3))) == []


def test_lost_then_received_is_delivered_once_each_and_duplicates_not_again() -> None:
    sub_leg = sending(6)
    d = sub_leg.departures
    lost = d.feedback(feedback(0, 1, 0, [0x2000 | 2, 0x0000 | 1, 0x2000 | 1], bytes([4, 4, 4])))
    assert [(r[0], r[3]) for r in lost] == [(0, 65000), (1, 66000), (2, -1), (3, 67000)]
    assert d.feedback(feedback(0, 1, 0, [0x2000 | 4], bytes([4, 4, 4, 4]))) == []  # same count
    assert d.duplicates == 1
    # A later feedback (reordering at the receiver) reports 2 received: delivered now, once.
    again = d.feedback(feedback(2, 1, 1, [0x2000 | 3, 0x0000 | 1], bytes([40, 4, 4])))
    assert [(r[0], r[3]) for r in again] == [(2, 74000), (4, 76000), (5, -1)]
    assert d.feedback(feedback(2, 1, 2, [0x2000 | 1, 0x0000 | 3], bytes([40]))) == []  # 5 again
    assert (d.reported_lost, d.reported_received) == (2, 5)


@pytest.mark.parametrize(
    "packet",
    [
        feedback(0, 1, 0, [0x2000 | 4], bytes([4, 4, 4, 4]))[:19],  # shorter than its fields
        feedback(0, 1, 0, [0x2000 | 4], bytes([4, 4, 4, 4]))[:-4],  # length beyond the datagram
        feedback(0, 1, 0, [0x2000 | 4], bytes([4, 4])),  # deltas beyond the packet
        feedback(0, 1, 0, [0x2000 | 4], b"", statuses=30),  # chunks beyond the packet
        feedback(0, 1, 0, [0x6000 | 4], bytes([4] * 16)),  # reserved status symbol (run)
        feedback(0, 1, 0, [0xC000 | 0x3000], bytes([4] * 8), statuses=2),  # reserved (vector)
        b"\xaf\xcd\x00\x05" + bytes(20) + b"\x00\x00\x00\x09",  # padding longer than itself
        b"\x8e\xcd\x00\x04" + bytes(20),  # FMT 14: not transport-cc
    ],
)
def test_malformed_feedback_is_dropped_and_counted(packet: bytes) -> None:
    sub_leg = sending(4)
    assert sub_leg.departures.feedback(packet) is None
    assert sub_leg.dropped == {"malformed_transport_feedback": 1}
    assert sub_leg.departures.malformed == 1 and sub_leg.departures.feedbacks == 0
    # ... and a good one after it is read as ever.
    good = sub_leg.departures.feedback(feedback(0, 1, 0, [0x2000 | 4], bytes([4] * 4)))
    assert [r[0] for r in good] == [0, 1, 2, 3]


def test_the_setting_negotiates_transport_cc_on_the_sections_we_send_on() -> None:
    offer = "\r\n".join([
        "v=0", "o=- 1 2 IN IP4 0.0.0.0", "s=-", "t=0 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=recvonly", "a=rtpmap:111 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "a=mid:1", "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendonly", "a=rtpmap:96 VP8/90000", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
    ]) + "\r\n"  # fmt: skip
    out = sdpextras.transport_cc(offer, 5, sending=True)
    publishing, subscribing = out.split("m=")[1:]
    assert publishing == offer.split("m=")[1]
    assert f"a=extmap:5 {TCC}" in subscribing and "a=rtcp-fb:96 transport-cc" in subscribing
    assert "a=rtcp-fb:97 transport-cc" not in subscribing
    assert sdpextras.transport_cc(offer, None, sending=True) == offer
    answer = out.replace("a=sendonly", "a=recvonly")
    assert sdpextras.transport_cc_by_mid(answer) == {"1": 5}
    # The id: the client's, else one it left free (and kept for every later offer).
    client = reoffer.numbering(offer)
    assert reoffer.reserve(client, TCC) == 1 and reoffer.reserve(client, TCC) == 1
    named = reoffer.numbering(out)
    assert reoffer.reserve(named, TCC) == 5


@pytest.mark.parametrize("on", [False, True])
async def test_reoffers_to_an_aiortc_client_with_the_setting_on_and_off(on: bool) -> None:
    # Off: the sections we send on carry no transport-cc, as before the setting existed, and
    # the client's numbering gains nothing. On: each names the extension (an id the client
    # left free: aiortc offers none) and transport-cc feedback on its media codecs; aiortc's
    # answer drops both (it knows the extension only as a sender's), so nothing is stamped
    # and the media flows as before.
    call = Call(media_settings(downlink_transport_cc=on))
    offers: list[str] = []
    participant = call.a.participant
    forward = participant._on_offer

    async def seen(sdp: str) -> None:
        offers.append(sdp)
        await forward(sdp)

    participant._on_offer = seen
    try:
        await call.start()
        await keeps_receiving(call.a.client, video=5, audio=5)
        assert offers
        for offer in offers:
            numbering = reoffer.numbering(offer)
            sending = [s for s in offer.split("\r\nm=")[1:] if "a=sendonly" in s]
            assert sending
            for section in sending:
                if not on:
                    assert "transport-cc" not in section
                    continue
                ext_id = numbering.extension_ids[TCC]
                assert f"a=extmap:{ext_id} {TCC}" in section
                pts = [line.split()[0][9:] for line in section.split("\r\n")
                       if line.startswith("a=rtpmap:") and "rtx/" not in line]  # fmt: skip
                assert all(f"a=rtcp-fb:{pt} transport-cc" in section for pt in pts)
            others = [i for uri, i in numbering.extension_ids.items() if uri != TCC]
            assert (
                len(others) == len(set(others)) and numbering.extension_ids.get(TCC) not in others
            )
        assert (TCC in participant._client_numbering.extension_ids) == on
        assert participant.departures is None
        assert all(TCC not in s._subscriber_ext for s in participant.subscriptions)
    finally:
        await call.close()


async def test_a_subscribers_feedback_reaches_the_estimator_and_a_malformed_one_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The participant hands each transport-cc feedback in a compound to its leg's Departures
    # (not to aiortc's parser) and the results to the downlink estimator; one it cannot read
    # is counted in dropped and logged once, and the NACK beside it in the compound still
    # counts (malformed_rtcp is not raised).
    caplog.set_level(logging.WARNING, logger="media_server.participant")
    participant = Participant(
        "sub", settings=media_settings(downlink_transport_cc=True),
        on_offer=lambda sdp: asyncio.sleep(0), on_publication=lambda p: None,
        on_chat=lambda p, t: None, on_state=lambda p, s: None,
    )  # fmt: skip
    sub_leg = SubscriberLeg()
    sub_leg.leg.dropped = participant.dropped
    sub_leg.departures = sub_leg.leg.departures = Departures(TCC_ID, participant.dropped)
    sub_leg.outbound().forward(rtp(100, 0))  # one packet this Departures recorded: seq 0
    participant._leg = sub_leg.leg
    seen: list[list[tuple[int, int, int, int, int]]] = []
    participant.downlink.on_packet_results = lambda results, now: seen.append(results) or False
    try:
        bad = feedback(0, 1, 0, [0x2000 | 4], bytes([4, 4]))
        nack = bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=424242, lost=[7]))
        for _ in range(2):
            participant.on_rtcp(bad + nack, 0)
            participant.log_malformed()
        participant.on_rtcp(feedback(0, 1, 0, [0x2000 | 1], bytes([4])), 0)
        assert participant.dropped["malformed_transport_feedback"] == 2
        assert participant.dropped["rtcp_unknown_ssrc"] == 2  # the NACK was read each time
        assert "malformed_rtcp" not in participant.dropped
        assert caplog.text.count("malformed_transport_feedback") == 1
        assert [[r[0] for r in results] for results in seen] == [[0]]
        samples = dict(metrics.participant_samples(participant))
        assert samples[("transport_feedback_received", ())] == 1
        assert samples[("transport_feedback_malformed", ())] == 2
    finally:
        await participant.close()


def test_a_later_answer_that_drops_transport_cc_ends_the_stamping_on_its_m_line() -> None:
    # A subscription bound with the element stamps each packet; the subscriber's next answer
    # no longer names transport-cc there: what is forwarded after it, and resends of what was
    # sent before, carry no new transport sequence. Kept again, it stamps again.
    sub_leg = SubscriberLeg()
    video = Subscription(publication([]), history_packets=1024, faults=Faults("test"))
    video.bind(ssrc=9999, payload_type=96, mid="4", extensions={MID: 1, TCC: TCC_ID},
               send_rtp=sub_leg.leg, send_rtcp=lambda data: None)  # fmt: skip
    video.out.set_rtx(8888, {98: 96})
    video.rtx_repairs = frozenset({96})
    push(video.source, rtp(10, 0, payload=KEY))
    first = video.out.last_seq
    assert sub_leg.departures.next_seq == 1
    video.follow_transport_cc(None)
    push(video.source, rtp(11, 3000))
    video.on_nack([first])
    assert sub_leg.departures.next_seq == 1
    video.follow_transport_cc(TCC_ID)
    push(video.source, rtp(12, 6000))
    sent = sub_leg.sent()
    assert [rtpheader.parse(p).ssrc for p in sent] == [9999, 9999, 8888, 9999]
    # the resend goes as its packet was sent (sequence 0), not stamped again
    assert [transport_seq(p) for p in sent] == [0, None, 0, 1]
    assert sub_leg.departures.next_seq == 2


async def test_the_participant_follows_an_answer_that_drops_transport_cc() -> None:
    # The client's first answers keep transport-cc on the m-lines we send on (as Chrome's do;
    # aiortc's answer is given the extmap line our offer named), so a's leg stamps; a later
    # answer drops it: no packet is stamped after it while the media goes on.
    call = Call(media_settings(downlink_transport_cc=True))
    side = call.a
    keep = [True]

    async def answer(sdp: str) -> None:
        ids: dict[str, str] = {}  # mid -> the transport-cc id our offer named there
        for section in sdp.split("\r\nm=")[1:]:
            lines = section.split("\r\n")
            mid = next(line[6:] for line in lines if line.startswith("a=mid:"))
            named = [line.split()[0][9:] for line in lines if line.endswith(f" {TCC}")]
            if named:
                ids[mid] = named[0]
        out = []
        for line in (await side.client.answer(sdp)).split("\r\n"):
            out.append(line)
            if keep[0] and line.startswith("a=mid:") and line[6:] in ids:
                out.append(f"a=extmap:{ids[line[6:]]} {TCC}")
        await side.participant.handle_answer("\r\n".join(out))

    side._answer = answer
    try:
        await call.start()
        await keeps_receiving(call.a.client, video=5, audio=5)
        departures = side.participant.departures
        assert departures is not None and departures.next_seq > 0
        keep[0] = False
        subscribed = len(side.participant.subscriptions)
        audio = next(p for p in call.b.participant.publications if p.kind == "audio")
        await side.participant.subscribe(audio)  # a re-offer, answered without transport-cc
        await wait_for(
            lambda: all(s.ssrc for s in side.participant.subscriptions[subscribed:]), 10, "bound"
        )
        stamped = departures.next_seq
        await keeps_receiving(call.a.client, video=10, audio=10)
        assert departures.next_seq == stamped
        assert all(TCC not in s._subscriber_ext for s in side.participant.subscriptions)
    finally:
        await call.close()


async def test_transport_feedback_allocates_the_leg_as_often_as_a_remb_would() -> None:
    # A subscriber sending transport-cc feedback sends no REMB, and its feedback seldom moves
    # the estimate; the leg is still allocated at the feedback that comes ALLOCATE_SECONDS or
    # more after the last allocation (as each REMB allocates), or the allocator's hold timers
    # (a switch up) would advance only with the loss windows.
    participant = Participant(
        "sub", settings=media_settings(downlink_transport_cc=True),
        on_offer=lambda sdp: asyncio.sleep(0), on_publication=lambda p: None,
        on_chat=lambda p, t: None, on_state=lambda p, s: None,
    )  # fmt: skip
    sub_leg = sending(3)
    participant._leg = sub_leg.leg
    participant.downlink.on_packet_results = lambda results, now: False  # the estimate holds
    allocations: list[int] = []
    participant.allocator.allocate = lambda subscriptions: allocations.append(1) or 0
    try:
        for seq in range(3):
            await asyncio.sleep(participant_module.ALLOCATE_SECONDS + 0.05)
            participant.on_rtcp(feedback(seq, 1, seq, [0x2000 | 1], bytes([4])), 0)
        assert len(allocations) == 3
    finally:
        await participant.close()


async def test_a_bound_subscription_is_allocated_before_any_feedback_from_its_subscriber() -> None:
    # Its publisher is told which layers to send and the subscription gets its share at once:
    # with transport-cc towards the subscriber, the first feedback that moved the estimate was
    # a second or two after the binding (no REMB comes then), and the top layer came as late.
    call = Call(media_settings(downlink_transport_cc=True))
    call.a.participant.on_rtcp = lambda data, arrival_us: None  # a's leg reports nothing
    try:
        await call.start()
        videos = [s for s in call.a.participant.subscriptions if s.kind == "video"]
        await wait_for(lambda: all(s.ssrc for s in videos), 10, "a's subscriptions bound")
        assert videos and all(s.target_bps is not None for s in videos)
    finally:
        await call.close()
