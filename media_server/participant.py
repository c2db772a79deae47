"""One room member's peer connection: what it publishes, what it receives, its RTCP.

API used by the session layer (room.py):

    p = Participant(id, settings=media_settings, on_offer=..., on_publication=..., on_chat=...,
                    on_state=...)
    answer_sdp = await p.handle_offer(offer_sdp)   # the client's one offer: it publishes
    await p.add_ice_candidate({"candidate": ..., "sdpMid": ..., "sdpMLineIndex": ...})
    sub = await p.subscribe(other.publications[0])  # returns at once; renegotiates via on_offer
    await p.handle_answer(answer_sdp)               # the client's answer to that offer
    p.send_chat({...}) -> bool                      # JSON on the "chat" data channel, if open
    sub.switch_source(new_publication)              # the publisher rejoined
    await p.close()

Callbacks: ``on_offer(sdp)`` (async) carries a server offer to the client;
``on_publication(pub)`` announces each publication once the client's offer is answered;
``on_chat(participant, raw)`` passes each "chat" data-channel message (str or bytes) as is;
``on_state(participant, state)`` reports "connected", "failed", "closed" (by the peer),
"connect_timeout" (no ICE+DTLS within ``connect_timeout_seconds``) and "media_timeout" (a
publishing participant sent no RTP for ``media_timeout_seconds``), each at most once.

Negotiation is serialized: one offer/answer in flight. ``subscribe()`` queues the subscription;
a single negotiation task adds every queued transceiver to one offer and binds the
subscriptions when the answer arrives, so subscribing to audio and video costs one round trip.

Bad input raises ``ValueError`` (a malformed or unforwardable SDP, an answer nobody asked for,
a bad candidate). An offer refused before it touched the peer connection (not SDP, no media,
no forwardable codec) may be retried; one that aiortc refused half-way leaves the participant
unusable: close it and start a new one.

Counters (plain ints; ``dropped``: reason -> int): ``packets_in``, ``bytes_in``,
``rtcp_packets_in``, ``rtcp_packets_out``, ``rembs_sent``, ``transport_feedback.packets_sent``
(transport-cc feedback, when the client's offer had it), ``chat_messages_in``, ``dropped``
(malformed_rtp, unknown_ssrc, payload_type, malformed_rtcp, srtp_rejected, srtcp_rejected,
not_dtls_or_srtp, rtcp_not_connected, unexpected_data_channel, rtx_padding: an RTX packet
without payload, a probe; rtx_unrepaired: an RTX packet for one that arrived; malformed_vp8:
a VP8 payload descriptor cut short, or no VP8 after it, which no subscriber could parse
(each malformed_* kind is logged once: ``log_malformed``);
duplicate: a packet that arrived before (counted received, RFC 3550 A.3, not forwarded again);
rtcp_unknown_ssrc: a report block, NACK, PLI or FIR naming an SSRC we do not send on, such as
an ended subscription's; rtx_answer_invalid: an answer's RTX payload type we cannot send;
malformed_transport_feedback: transport-cc feedback ``departures`` cannot read),
``faults.count`` (media-path exceptions, each logged once per type); per stream on
``publications`` and ``subscriptions``.

Requirements on the client: BUNDLE (one transport: the server runs max-bundle), one offer per
peer connection, audio Opus and video VP8 or H.264 packetization-mode 1. A publisher's video is answered RTX
(RFC 4588): its retransmissions and probes come on an SSRC of their own (ssrc-group FID, or
the repaired RID of a simulcast layer), which the publication's Inbound unwraps or drops;
a subscription's video is offered RTX too, and where the answer keeps it our resends go on
the RTX SSRC (else on the media SSRC). A video m-line may send 2-3 simulcast layers (rid,
RID header extension: simulcast.py); each becomes a Publication in ``primary.layers`` and the
subscriber's allocator picks one per subscription. Per subscriber: ``downlink`` (estimator),
``allocator``, ``resend_budget``; with ``media.downlink_transport_cc``, where the answer
kept it, ``departures`` (rtpforward.Departures): the transport-wide sequence our leg stamps in
every RTP packet it sends, and the subscriber's feedback on them, handed to ``downlink`` as
packet results. A subscription's m-line stays in the SDP after the
subscription closes (aiortc reuses no m-line); a reconnecting publisher is carried on by
``switch_source`` rather than by new m-lines. In-process aiortc peers (tests, load clients)
must gather on loopback themselves: ``with ports.gathering(GatherPolicy(("127.0.0.1",))):``
around their ``setLocalDescription``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp

from config.settings import MediaSettings
from media_server import (
    codecs,
    dtls,
    negotiated,
    ports,
    rejection,
    reoffer,
    rtcp,
    rtpheader,
    sctptransport,
    sdpcheck,
    sdpextras,
    simulcast,
)
from media_server.allocator import TEMPORAL_ALL, TRACE, Allocator, layers_of
from media_server.estimator import DownlinkEstimator, ResendBudget
from media_server.faults import Faults
from media_server.feedback import TransportFeedback
from media_server.prober import Prober
from media_server.publication import Publication
from media_server.rtpforward import Departures, Leg
from media_server.subscription import Subscription
from media_server.transport import adopt, forwarding_receiver, forwarding_sender

log = logging.getLogger(__name__)

# What only a broken or hostile client sends: each kind logged once per participant (the
# per-packet path counts every one in ``dropped``), so the log names the client without a line
# per packet.
MALFORMED = ("malformed_rtp", "malformed_vp8", "malformed_rtcp", "malformed_transport_feedback")
TICK_SECONDS = 0.05  # NACK retries
REPORT_SECONDS = 1.0  # receiver reports, REMB, media timeout (jittered +-50%)
# Transport-cc feedback allocates at least this often, as Chrome's REMBs do (one each ~250 ms
# seen, and each allocates): the allocator's hold timers (UP_HOLD_SECONDS) advance only when
# it runs, and feedback moves the estimate seldom, so a switch up waited for the loss windows.
ALLOCATE_SECONDS = 0.25
TIMER_SLACK_SECONDS = 0.005
CHAT_LABEL = "chat"
# A publication's SSRC that sent nothing this long may be replaced by a new one with its MID.
# Longer than the pauses of a live stream (Opus DTX sends every 400 ms), short enough that a
# reset encoder is not cut off for long (its first packets wait; video re-bases at a keyframe).
REBIND_SILENCE_SECONDS = 0.5

OnOffer = Callable[[str], Awaitable[None]]
OnPublication = Callable[[Publication], None]
OnChat = Callable[["Participant", Any], None]
OnState = Callable[["Participant", str], None]
OnRefused = Callable[[Subscription, rejection.Refusal], None]
# (kind, codecs the publisher may send) -> the same codecs in the order to answer them.
PreferCodecs = Callable[[str, list[RTCRtpCodecParameters]], list[RTCRtpCodecParameters]]
OnNotice = Callable[[dict[str, Any]], None]


class Participant:
    def __init__(
        self,
        id: str,
        *,
        settings: MediaSettings,
        on_offer: OnOffer,
        on_publication: OnPublication,
        on_chat: OnChat,
        on_state: OnState,
        on_refused: OnRefused | None = None,
        prefer_codecs: PreferCodecs | None = None,
        on_notice: OnNotice | None = None,
    ) -> None:
        self.id = id
        self.settings = settings
        self._on_offer = on_offer
        self._on_publication = on_publication
        self._on_chat = on_chat
        self._on_state = on_state
        self._on_refused = on_refused
        self._prefer_codecs = prefer_codecs or self._settings_order
        self._on_notice = on_notice
        self._gather = ports.GatherPolicy.from_settings(settings)
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[
                    RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                    for s in settings.ice_servers
                ],
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        # The worker's certificate, whose DTLS context also offers RSA suites: when we are the
        # DTLS client, a server with an RSA certificate (GStreamer's webrtcbin) can pick one.
        self.pc._RTCPeerConnection__certificates = [dtls.worker_certificate()]
        self.pc.on("connectionstatechange", self._connection_state_changed)
        self.pc.on("datachannel", self._data_channel)

        self.publications: list[Publication] = []
        self.subscriptions: list[Subscription] = []
        self._by_ssrc: dict[int, Publication] = {}
        self._by_mid: dict[str, Publication] = {}
        self._mid_ext_id: int | None = None
        self._by_out_ssrc: dict[int, Subscription] = {}
        self._by_rtx_ssrc: dict[int, Subscription] = {}  # their RTX streams (RFC 4588)
        self._transport = None
        self._leg: Leg | None = None  # decrypts, routes and sends; calling it sends a packet
        self._chat = None
        self._offered = False
        self._client_numbering = reoffer.Numbering()
        # The transport-cc extension's id in the client's offer, when we negotiate it (feedback.py)
        self._transport_cc_id: int | None = None
        self.transport_feedback: TransportFeedback | None = None
        # The transport-cc id on the sections we send on (media.downlink_transport_cc): the
        # client's, or one it left free; the Leg's Departures once an answer kept it.
        self._downlink_cc_id: int | None = None
        self._simulcast: dict[str, simulcast.Offer] = {}  # mid -> what the client's offer sends
        self._answered = asyncio.Event()  # the client's offer is answered: we may offer
        self._pending: list[Subscription] = []
        self._reoffer = False  # an m-line changed direction: offer again even with nothing new
        self._negotiating: asyncio.Task[None] | None = None
        self._answer_waiter: asyncio.Future[None] | None = None
        self._refusals: dict[str, rejection.Refusal] = {}  # mid -> why, of the latest answer
        # What the client decodes, per kind: declared at join (declare_codecs) or learned from
        # the codecs of its offer.
        self.declared_codecs: dict[str, list[RTCRtpCodecParameters]] = {}
        self._offered_codecs: dict[str, list[RTCRtpCodecParameters]] = {}
        # mid -> (wanted codec, future of "the answer negotiated it"): request_codec().
        self._codec_requests: dict[str, tuple[RTCRtpCodecParameters, asyncio.Future[bool]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tick_wake: asyncio.Future[None] | None = None
        self._reported: set[str] = set()
        self._closed = False
        self._connected_at: float | None = None
        self._connect_watch: asyncio.Task[None] | None = None

        self.faults = Faults(f"participant {id}")
        # What our leg to this participant carries, and the resends it affords (estimator.py).
        self.downlink = DownlinkEstimator(
            self._bytes_sent, resent_bytes=self._bytes_resent, padding_bytes=self._bytes_padded
        )
        self.resend_budget = ResendBudget(lambda: self.downlink.estimate)
        self.allocator = Allocator(
            lambda: self.downlink.estimate,
            lost_at=lambda: self.downlink.lost_at,
            owner=id,
            loss=lambda: self.downlink.fraction_lost,
            unheld=lambda: self.downlink.unheld_estimate,
            window_began=lambda: self.downlink.window_began,
        )
        self.prober = Prober(
            self.downlink, lambda: sum(s.packets_out for s in self.subscriptions if not s.closed)
        )
        self._reported_loss = False  # a receiver report of our leg arrived in this compound
        self._allocated_at = 0.0  # time.monotonic() of the latest allocation
        self.dropped: dict[str, int] = {}
        self._logged_malformed: set[str] = set()
        self.rtcp_packets_in = 0
        self.rtcp_packets_out = 0
        self.rembs_sent = 0
        self.chat_messages_in = 0

    # ---- negotiation ------------------------------------------------------------------------

    async def handle_offer(self, sdp: str) -> str:
        """Answer the client's offer: its audio/video m-lines become publications."""
        if self._closed:
            raise ValueError("participant is closed")
        if self._offered:
            raise ValueError("the client offers once per peer connection; the server renegotiates")
        try:
            description = SessionDescription.parse(sdp)
        except Exception as exc:
            raise ValueError(f"offer is not valid SDP: {exc}") from exc
        sdpcheck.check_offer(description)
        if not description.media:
            raise ValueError("offer has no media sections")
        media_lines = [m for m in description.media if m.kind in ("audio", "video")]
        chosen = []
        for media in media_lines:
            try:
                accepted = codecs.publish_codecs(media.kind, media.rtp.codecs)
            except codecs.NoCommonCodec as exc:
                raise ValueError(str(exc)) from exc
            chosen.append((media, self._prefer_codecs(media.kind, accepted)))
            learned = self._offered_codecs.setdefault(media.kind, [])
            # Kept for the connection's life, and equal to other members' (same browser).
            learned += [negotiated.shared(c) for c in media.rtp.codecs if not codecs.is_rtx(c)]
        self._offered = True
        self._client_numbering = reoffer.numbering(sdp)
        if self.settings.transport_cc:
            self._transport_cc_id = self._client_numbering.extension_ids.get(
                rtpheader.URI_TRANSPORT_CC
            )
        if self.settings.downlink_transport_cc:
            self._downlink_cc_id = reoffer.reserve(
                self._client_numbering, rtpheader.URI_TRANSPORT_CC
            )
        self._simulcast = simulcast.offered(sdp)
        if not self.settings.simulcast:
            # One layer: the answer keeps only the first rid (RFC 8853 lets the answerer drop
            # the others), so the client sends that one and its later answers stay consistent.
            self._simulcast = {mid: simulcast.first_only(o) for mid, o in self._simulcast.items()}

        # Our transceivers exist before setRemoteDescription so each negotiates the chosen
        # codecs in the chosen order (aiortc matches m-lines to unassigned transceivers of the
        # same kind in order); the client sends with the first.
        publishing: list[tuple[Any, RTCRtpTransceiver]] = []
        for media, ordered in chosen:
            transceiver = self.pc.addTransceiver(media.kind, direction="recvonly")
            forwarding_sender(transceiver.sender)
            forwarding_receiver(transceiver.receiver)
            # RTX (RFC 4588) where the codec has one: the publisher's retransmissions and
            # probes then come on an SSRC of their own, which Inbound unwraps or drops, instead
            # of padding-only packets on the media SSRC that would reach every subscriber.
            rtx = [codecs.RTX_CAPABILITY] if media.kind == "video" else []
            transceiver.setCodecPreferences(codecs.capabilities(ordered) + rtx)
            publishing.append((media, transceiver))
            self._adopt(transceiver.receiver.transport)
        try:
            with ports.gathering(self._gather):
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                for transport in self._transports():
                    self._adopt(transport)
                dtls.prefer_server_role(description, self._transports())
                answer = await self.pc.createAnswer()
                aligned = sdpextras.transport_cc(
                    sdpextras.answer(reoffer.align(answer.sdp, self._client_numbering)),
                    self._transport_cc_id,
                )
                await self.pc.setLocalDescription(RTCSessionDescription(sdp=aligned, type="answer"))
        except Exception as exc:
            raise ValueError(f"cannot answer the offer: {exc}") from exc
        negotiated.compact(self.pc)

        for media, transceiver in publishing:
            if media.direction not in ("sendrecv", "sendonly") or not transceiver._codecs:
                continue
            self._add_publication(media, transceiver)
        if self._transport_cc_id is not None and self.publications and self._leg is not None:
            self.transport_feedback = TransportFeedback(self._leg, self._transport_cc_id)
            self.transport_feedback.start(self._rtcp_ssrc, self.send_rtcp, self.faults)
        self._answered.set()
        self._connect_watch = self._spawn(self._watch_connect(), "connect-timeout")
        self._spawn(self._run_ticks(), "rtcp")
        for publication in self.publications:
            self._on_publication(publication)
        return simulcast.answer(self.pc.localDescription.sdp, self._simulcast)

    def _transports(self) -> list[Any]:
        transports = [t.receiver.transport for t in self.pc.getTransceivers()]
        if self.pc.sctp is not None:
            transports.append(self.pc.sctp.transport)
        return transports

    def _adopt(self, transport: Any) -> None:
        adopt(transport, self)
        if self.pc.sctp is not None:
            # Any chat text within chat_max_bytes fits, JSON-escaped (6 bytes per \u escape).
            max_message = 6 * self.settings.chat_max_bytes + 1024
            sctptransport.bound(self.pc.sctp, max_message, self.dropped)
        if self._transport is None:
            self._transport = transport
            self._leg = transport.leg

    @property
    def receive_codecs(self) -> dict[str, list[RTCRtpCodecParameters]]:
        """What the client decodes, per kind (declared at join, else its offer's codecs; a
        kind it never named is missing: nothing is known about it)."""
        return {**self._offered_codecs, **self.declared_codecs}

    def _settings_order(
        self, kind: str, offered: list[RTCRtpCodecParameters]
    ) -> list[RTCRtpCodecParameters]:
        order = [f"video/{name}".lower() for name in self.settings.video_codecs]
        rank = {mime: i for i, mime in enumerate(order)}
        return sorted(offered, key=lambda c: rank.get(c.mimeType.lower(), len(order)))

    def _add_publication(self, media: Any, transceiver: RTCRtpTransceiver) -> None:
        negotiated = [c for c in transceiver._codecs if not codecs.is_rtx(c)]
        codec = negotiated[0]
        secondary = {g.items[1] for g in media.ssrc_group if len(g.items) > 1}
        ssrcs = [s.ssrc for s in media.ssrc if s.ssrc not in secondary]
        extensions = rtpheader.extension_ids(transceiver._headerExtensions)
        publication = Publication(
            participant_id=self.id,
            kind=media.kind,
            mid=transceiver.mid,
            codec=codec,
            ssrc=ssrcs[0] if ssrcs else None,
            extensions=extensions,
            send_rtcp=self.send_rtcp,
            rtcp_ssrc=transceiver.sender._ssrc,
            on_gap=self._nack_pending,
            faults=self.faults,
            codecs=negotiated,
            rtx_types=codecs.rtx_types(transceiver._codecs),
            uplink_feedback=self._transport_cc_id is not None,
        )
        self.publications.append(publication)
        self._by_mid[publication.mid] = publication
        offer = self._simulcast.get(publication.mid)
        if offer is not None and len(offer.rids) > 1:
            self._add_layers(publication, offer)
            publication.on_layers = self._publish_layers
        if publication.ssrc is not None:
            self._route(publication.ssrc, publication)
            for group in media.ssrc_group:  # its RTX stream: the Inbound unwraps it
                if group.semantic == "FID" and group.items[:1] == [publication.ssrc]:
                    self._route(group.items[-1], publication)
        if self._mid_ext_id is None:
            self._mid_ext_id = extensions.get(rtpheader.URI_MID)

    def _add_layers(self, primary: Publication, offer: simulcast.Offer) -> None:
        """The m-line sends simulcast: ``primary`` becomes its lowest layer and one Publication
        per other rid joins it (lowest first); their SSRCs come from the RID extension."""
        rids = simulcast.lowest_first(offer.rids)
        primary.extensions = {**primary.extensions, rtpheader.URI_RID: offer.rid_ext}
        if offer.repaired_ext is not None:  # names the layer an RTX packet repairs
            primary.extensions[rtpheader.URI_REPAIRED_RID] = offer.repaired_ext
        primary.rid, primary.ssrc = rids[0], None
        primary.layers = [primary]
        for rid in rids[1:]:
            layer = Publication(
                participant_id=self.id, kind=primary.kind, mid=primary.mid, codec=primary.codec,
                ssrc=None, extensions=primary.extensions, send_rtcp=self.send_rtcp,
                rtcp_ssrc=primary.rtcp_ssrc, on_gap=self._nack_pending, faults=self.faults,
                codecs=primary.codecs, rid=rid, primary=primary,
                rtx_types=primary.rtx_types, uplink_feedback=primary.uplink_feedback,
            )  # fmt: skip
            primary.layers.append(layer)
            self.publications.append(layer)

    async def handle_answer(self, sdp: str) -> None:
        """The client's answer to our latest offer.

        Sections the client refused (``m=video 0``, or no codec in common with our offer) are
        applied as inactive so the rest of the answer still counts; their subscriptions are
        reported through ``on_refused``. Raises ValueError when no offer is waiting or aiortc
        cannot apply the answer (the negotiation then fails with that reason).
        """
        waiter = self._answer_waiter
        if waiter is None or waiter.done():
            raise ValueError("no server offer is waiting for an answer")
        sdp, refusals = rejection.accept(sdp, self.pc.localDescription.sdp)
        self._refusals = {r.mid: r for r in refusals}
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            error = ValueError(f"cannot apply the answer: {exc}")
            if not waiter.done():
                waiter.set_exception(error)
            raise error from exc
        negotiated.compact(self.pc)
        if not waiter.done():
            waiter.set_result(None)

    async def add_ice_candidate(self, candidate: dict[str, Any]) -> None:
        """A trickled client candidate; an empty ``candidate`` means end of candidates."""
        value = candidate.get("candidate")
        if not isinstance(value, str):
            raise ValueError("candidate must be a string")
        if not self._offered:
            raise ValueError("candidate before offer")
        if not value:
            await self.pc.addIceCandidate(None)
            return
        try:
            parsed = candidate_from_sdp(value.removeprefix("candidate:"))
        except Exception as exc:
            raise ValueError(f"malformed candidate: {exc}") from exc
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0
        try:
            await self.pc.addIceCandidate(parsed)
        except Exception as exc:
            raise ValueError(f"candidate rejected: {exc}") from exc

    async def subscribe(self, publication: Publication) -> Subscription:
        """Receive ``publication``: a new sendonly m-line, negotiated in the background."""
        if self._closed:
            raise ValueError("participant is closed")
        subscription = Subscription(
            publication,
            history_packets=self.settings.send_history_packets,
            history_seconds=self.settings.send_history_ms / 1000,
            history_max_bytes=self.settings.send_history_max_bytes,
            faults=self.faults,
            budget=self.resend_budget,
        )
        subscription.on_paused = self._video_paused
        self.subscriptions.append(subscription)
        self._pending.append(subscription)
        self._start_negotiation()
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop carrying ``subscription`` and set its m-line inactive (renegotiated in the
        background): the subscriber's receiver ends and our sender's tasks stop. aiortc never
        reuses an m-line, so the inactive line stays in the SDP; the subscription stays in
        ``subscriptions`` (closed) so its counters keep adding up in the metrics."""
        await subscription.close()
        self._unroute(subscription)
        transceiver = next(
            (
                t
                for t in self.pc.getTransceivers()
                if subscription.mid and t.mid == subscription.mid
            ),
            None,
        )
        if transceiver is None or self._closed:
            return  # never negotiated (the offer skips closed subscriptions) or going away
        transceiver.direction = "inactive"
        await transceiver.sender.stop()
        self._reoffer = True
        self._start_negotiation()

    def _start_negotiation(self) -> None:
        if self._negotiating is None or self._negotiating.done():
            self._negotiating = self._spawn(self._negotiate(), "negotiate")

    async def _negotiate(self) -> None:
        await self._answered.wait()
        while (self._pending or self._reoffer) and not self._closed:
            batch = [s for s in self._pending if not s.closed]
            self._pending = []
            if batch or self._reoffer:
                self._reoffer = False
                await self._offer(batch)

    async def _offer(self, batch: list[Subscription]) -> None:
        # The codec requests this offer carries (later ones wait for the next offer).
        requests = set(self._codec_requests)
        added = []
        for subscription in batch:
            transceiver = self.pc.addTransceiver(subscription.kind, direction="sendonly")
            # Video offers RTX (RFC 4588) for each codec and an RTX SSRC (ssrc-group:FID): the
            # subscriber's statistics and jitter buffer then tell our resends from duplicates.
            # Audio has none: Opus in-band FEC repairs it without a round trip.
            rtx = [codecs.RTX_CAPABILITY] if subscription.kind == "video" else []
            offered = codecs.capabilities(self._offer_codecs(subscription))
            transceiver.setCodecPreferences(offered + rtx)
            sender = forwarding_sender(transceiver.sender)
            forwarding_receiver(transceiver.receiver)
            # One msid stream per publisher: the subscriber lip-syncs that publisher's audio
            # and video, and nobody else's.
            sender._stream_id = subscription.source.participant_id
            added.append((subscription, transceiver))
        with ports.gathering(self._gather):
            offer = await self.pc.createOffer()
            # The publishing sections keep transport-cc: an answer without it would end the
            # client's send-side estimate mid-call.
            aligned = sdpextras.transport_cc(
                reoffer.align(offer.sdp, self._client_numbering), self._transport_cc_id
            )
            # ... and the sections we send on carry our own transport sequence, where set.
            aligned = sdpextras.transport_cc(aligned, self._downlink_cc_id, sending=True)
            await self.pc.setLocalDescription(RTCSessionDescription(sdp=aligned, type="offer"))
        self._answer_waiter = asyncio.get_running_loop().create_future()
        # aiortc keeps no a=simulcast: each re-offer carries it again, or the browser would
        # drop to one layer.
        await self._on_offer(simulcast.answer(self.pc.localDescription.sdp, self._simulcast))
        timeout = self.settings.connect_timeout_seconds
        try:
            await asyncio.wait_for(asyncio.shield(self._answer_waiter), timeout)
        except TimeoutError:
            log.warning("participant %s: no answer to our offer within %g s", self.id, timeout)
            self._report("failed")
            self._settle_codec_requests(requests, failed=True)
            return
        except ValueError as exc:
            # The client answered, but aiortc could not apply it (refused sections alone
            # never get here: see handle_answer).
            log.warning("participant %s: its answer to our offer was refused: %s", self.id, exc)
            self._report("failed")
            self._settle_codec_requests(requests, failed=True)
            return
        kept = {}  # mid -> transport-cc id, where the answer kept ours
        if self._downlink_cc_id is not None:
            kept = sdpextras.transport_cc_by_mid(self.pc.remoteDescription.sdp)
        for subscription, transceiver in added:
            self._bind(subscription, transceiver, kept.get(transceiver.mid or ""))
        if added:
            # New subscriptions share the leg from now: allocate at once rather than at the
            # next feedback that moves the estimate. A REMB always allocates, but transport-cc
            # feedback (a subscriber that sends it sends no REMB) only when the estimate
            # moved, which the first loss window does a second or two later.
            self._allocate()
        # Every answer restates the RTX of all our m-lines: those it bound just now, and those
        # bound by earlier answers.
        by_mid = {t.mid: t for t in self.pc.getTransceivers() if t.mid is not None}
        for subscription in self.subscriptions:
            transceiver = by_mid.get(subscription.mid)
            live = subscription.ssrc and not subscription.closed and subscription.refused is None
            if live and transceiver is not None:
                self._follow_rtx(subscription, transceiver)
                # ... and its transport-cc: an answer that drops it on an m-line bound
                # before ends the stamping there (the subscriber reads the id as nothing).
                subscription.follow_transport_cc(self._stamped(kept.get(subscription.mid or "")))
        self._settle_codec_requests(requests)

    def _bind(
        self, subscription: Subscription, transceiver: RTCRtpTransceiver, transport_cc: int | None
    ) -> None:
        """``transport_cc``: the transport-cc id the answer kept on the m-line (None: none):
        its packets then carry the Leg's transport sequence (``departures``)."""
        if subscription.closed:
            return
        media_codecs = [c for c in transceiver._codecs if not codecs.is_rtx(c)]
        refusal = self._refusals.get(transceiver.mid or "")
        if refusal is None and (
            not media_codecs or transceiver.currentDirection not in ("sendonly", "sendrecv")
        ):
            refusal = rejection.Refusal(
                mid=transceiver.mid or "", kind=subscription.kind, reason="inactive",
                detail=f"answered {transceiver.currentDirection}",
            )  # fmt: skip
        if refusal is not None:
            self._refused(subscription, transceiver, refusal)
            return
        ssrc = transceiver.sender._ssrc
        self._by_out_ssrc[ssrc] = subscription
        extensions = rtpheader.extension_ids(transceiver._headerExtensions)
        if self._stamped(transport_cc) is not None:
            extensions[rtpheader.URI_TRANSPORT_CC] = transport_cc
        subscription.bind(
            ssrc=ssrc,
            payload_type=media_codecs[0].payloadType,
            codecs=media_codecs,
            mid=transceiver.mid,
            extensions=extensions,
            send_rtp=self._leg,
            send_rtcp=self.send_rtcp,
        )

    def _stamped(self, transport_cc: int | None) -> int | None:
        """The transport-cc id an m-line's packets carry our transport sequence under, from the
        id the answer kept there (None: it kept none): ours, once the Leg records departures;
        else None (an id that is not ours: no stamping, as without transport-cc)."""
        if transport_cc is None or transport_cc != self._downlink_cc_id:
            return None
        return transport_cc if self._start_departures() is not None else None

    def _start_departures(self) -> Departures | None:
        """The Leg's record of what it sent by transport sequence (made at the first m-line
        whose answer kept transport-cc): None without a Leg."""
        leg = self._leg
        if leg is None or self._downlink_cc_id is None:
            return None
        if leg.departures is None:
            leg.departures = Departures(self._downlink_cc_id, self.dropped)
        return leg.departures

    def _follow_rtx(self, subscription: Subscription, transceiver: RTCRtpTransceiver) -> None:
        """Resend on the RTX SSRC with the RTX payload types (RFC 4588) the latest answer
        kept for ``subscription``'s m-line, or on the media SSRC when it kept none: each
        answer may change them (aiortc sets ``_codecs`` anew from every answer), and a
        subscriber that dropped RTX would not recognise RTX packets as repairs. RTX types the
        compiled path refuses (payload type 0 in a broken answer) leave resends on the media
        SSRC, counted ``rtx_answer_invalid``: one bad m-line must not end the negotiation
        (the other m-lines unbound, codec requests never settled)."""
        self._by_rtx_ssrc.pop(subscription.out.rtx_ssrc, None)
        types = codecs.rtx_types(transceiver._codecs)
        try:
            subscription.out.set_rtx(transceiver.sender._rtx_ssrc, types)
        except ValueError as exc:
            if "rtx_answer_invalid" not in self.dropped:  # once: a client repeats its answers
                log.warning("participant %s: no RTX on mid %s, its answer's %s: %s",
                            self.id, subscription.mid, types, exc)  # fmt: skip
            self._drop("rtx_answer_invalid")
            subscription.out.set_rtx(0, {})
            types = {}
        subscription.rtx_repairs = (
            frozenset(types.values()) if subscription.out.rtx_ssrc else frozenset()
        )
        if subscription.out.rtx_ssrc:
            self._by_rtx_ssrc[subscription.out.rtx_ssrc] = subscription

    def _unroute(self, subscription: Subscription) -> None:
        """An ended subscription's SSRCs no longer route RTCP (it would reach a closed
        subscription; the maps would grow with every subscribe/unsubscribe): what still names
        them is dropped and counted ``rtcp_unknown_ssrc``."""
        if self._by_out_ssrc.get(subscription.ssrc) is subscription:
            del self._by_out_ssrc[subscription.ssrc]
        if self._by_rtx_ssrc.get(subscription.out.rtx_ssrc) is subscription:
            del self._by_rtx_ssrc[subscription.out.rtx_ssrc]

    def _offer_codecs(self, subscription: Subscription) -> list[RTCRtpCodecParameters]:
        """What to offer on a subscription's m-line: every forwarded codec the client decodes
        (so the source may switch codec later without a new m-line), the source's first."""
        kind = subscription.kind
        known = self.receive_codecs.get(kind)
        local = codecs.local_codecs(kind)
        if known:
            local = [c for c in local if any(codecs.same_format(k, c) for k in known)]
        source = subscription.source.codec
        ordered = [c for c in local if codecs.decodes(c, source)]
        ordered += [c for c in local if c not in ordered]
        return ordered or [source]

    async def request_codec(self, publication: Publication, codec: RTCRtpCodecParameters) -> bool:
        """Ask the client to send ``publication`` as ``codec`` (one of its negotiated codecs):
        a server re-offer of its m-line with ``codec`` first. True when the answer kept
        ``codec`` (a browser then switches; the Publication sees the new payload type),
        False when the client refused it or the negotiation failed."""
        if self._closed or publication not in self.publications:
            return False
        transceiver = next((t for t in self.pc.getTransceivers() if t.mid == publication.mid), None)
        if transceiver is None:
            return False
        ordered = [codec] + [c for c in publication.codecs if not codecs.same_format(c, codec)]
        # RTX stays offered where the publisher has it: the answer resets the publication's
        # RTX map (_settle_codec_requests), and a re-offer without it would end the client's
        # retransmissions on their own SSRC (RFC 4588) along with the codec switch.
        rtx = [codecs.RTX_CAPABILITY] if publication.rtx_types else []
        transceiver.setCodecPreferences(codecs.capabilities(ordered) + rtx)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        previous = self._codec_requests.pop(publication.mid, None)
        if previous is not None and not previous[1].done():
            previous[1].set_result(False)
        self._codec_requests[publication.mid] = (codec, future)
        self._reoffer = True
        self._start_negotiation()
        return await future

    def _settle_codec_requests(self, mids: set[str] | None = None, failed: bool = False) -> None:
        """An answer arrived (or never will): each publication's negotiated codecs are what
        it said, and each codec request the offer carried (``mids``; None: all) learns its
        fate."""
        by_mid = {t.mid: t for t in self.pc.getTransceivers()}
        for publication in self.publications:
            transceiver = by_mid.get(publication.mid)
            negotiated = []
            if transceiver is not None and not failed:
                negotiated = [c for c in transceiver._codecs if not codecs.is_rtx(c)]
            if negotiated:
                publication.codecs = negotiated
                publication.set_rtx(codecs.rtx_types(transceiver._codecs))
            if mids is not None and publication.mid not in mids:
                continue
            request = self._codec_requests.pop(publication.mid, None)
            if request is not None and not request[1].done():
                wanted, future = request
                future.set_result(any(codecs.same_format(c, wanted) for c in negotiated))

    def _refused(
        self, subscription: Subscription, transceiver: RTCRtpTransceiver, refusal: rejection.Refusal
    ) -> None:
        """The client refused this subscription's m-line: it stays inactive from now on (the
        next offers say so) and the owner hears why."""
        subscription.refused = refusal.reason
        subscription.dropped["refused_by_subscriber"] = 1
        transceiver.direction = "inactive"
        log.warning(
            "participant %s refused %s %s (mid %s): %s, %s",
            self.id, subscription.kind, subscription.source.id, refusal.mid, refusal.reason,
            refusal.detail,
        )  # fmt: skip
        if self._on_refused is not None:
            try:
                self._on_refused(subscription, refusal)
            except Exception as exc:
                self.faults.record("on_refused", exc)

    # ---- packets in (from the Leg, for SSRCs it has no route for) ---------------------------

    @property
    def packets_in(self) -> int:
        """RTP packets routed to a publication (the per-packet path counts them once, there)."""
        return sum(p.packets_in for p in self.publications)

    @property
    def bytes_in(self) -> int:
        return sum(p.bytes_in for p in self.publications)

    @property
    def datagrams_unstamped(self) -> int:
        """Datagrams our leg read without the kernel's receive time (timed when read instead:
        transport-cc feedback and the uplink estimate then include our own stalls)."""
        return self._leg.unstamped if self._leg is not None else 0

    @property
    def departures(self) -> Departures | None:
        """What our leg sent by transport-wide sequence number and the subscriber's transport-cc
        feedback on it (rtpforward.Departures: feedbacks, reported_lost, malformed), once an
        answer kept transport-cc on a section we send on (media.downlink_transport_cc)."""
        return self._leg.departures if self._leg is not None else None

    def _bytes_sent(self) -> int:
        """RTP bytes sent on our leg to this participant (media, resends, probe padding)."""
        return sum(s.bytes_out + s.retransmitted_bytes + s.probe_bytes for s in self.subscriptions)

    def _bytes_resent(self) -> int:
        """RTP bytes resent (NACK answers) on our leg to this participant."""
        return sum(s.retransmitted_bytes for s in self.subscriptions)

    def _bytes_padded(self) -> int:
        """RTP bytes of probe padding on our leg to this participant (prober.py)."""
        return sum(s.probe_bytes for s in self.subscriptions)

    def on_rtp(self, data: bytes) -> None:
        """A decrypted RTP packet whose SSRC the compiled path has no route for yet."""
        try:
            header = rtpheader.parse(data)
        except rtpheader.MalformedRtp:
            self._drop("malformed_rtp")
            return
        publication = self._by_ssrc.get(header.ssrc)
        if publication is None:
            publication = self._route_unknown(data, header)
            if publication is None:
                self._drop("unknown_ssrc")
                return
        reason = publication.inbound.receive(data)
        if reason is not None:
            self._drop(reason)

    def _route(self, ssrc: int, publication: Publication) -> None:
        self._by_ssrc[ssrc] = publication
        if self._leg is not None:
            self._leg.routes[ssrc] = publication.inbound

    def _route_unknown(self, data: bytes, header: rtpheader.Header) -> Publication | None:
        """The publication an SSRC nobody routed yet belongs to: by the MID extension, else as
        the only publication with this payload type. A publication without a=ssrc learns its
        SSRC so. One whose SSRC went silent (``REBIND_SILENCE_SECONDS``) takes the new one
        with the same MID and payload type: encoders and native SDKs change SSRC after a
        reset without renegotiating, and the subscribers carry on re-based
        (``Publication.rebind``). While the old SSRC still sends, the new one is dropped
        (``unknown_ssrc``), so two live SSRCs cannot take turns."""
        value = rtpheader.element_value(data, header, self._mid_ext_id)
        if value is not None:
            candidate = self._by_mid.get(value.decode("ascii", "replace"))
        else:
            matches = [p for p in self.publications if p.payload_type == header.payload_type]
            candidate = matches[0] if len(matches) == 1 else None
        rtx = candidate is not None and header.payload_type in candidate.rtx_types
        if candidate is not None and len(candidate.layers) > 1:
            uri = rtpheader.URI_REPAIRED_RID if rtx else rtpheader.URI_RID
            rid = rtpheader.element_value(data, header, candidate.extensions.get(uri))
            name = rid.decode("ascii", "replace") if rid is not None else None
            candidate = next((p for p in candidate.layers if p.rid == name), None)
        if candidate is None:
            return None
        if rtx:  # its RTX stream (ssrc-group FID, or the repaired RID): the Inbound unwraps it
            self._route(header.ssrc, candidate)
            return candidate
        if candidate.ssrc is None:
            candidate.ssrc = header.ssrc
        else:
            last = candidate.last_packet_at
            if header.payload_type != candidate.payload_type or (
                last is not None and time.monotonic() - last < REBIND_SILENCE_SECONDS
            ):
                return None
            self._by_ssrc.pop(candidate.ssrc, None)
            if self._leg is not None:
                self._leg.routes.pop(candidate.ssrc, None)
            candidate.rebind(header.ssrc)
        self._route(header.ssrc, candidate)
        return candidate

    def on_rtcp(self, data: bytes, arrival_us: int) -> None:
        """A decrypted RTCP compound that arrived at ``arrival_us`` (microseconds of
        CLOCK_MONOTONIC, as ``time.monotonic``: the kernel's receive time where the leg reads
        its socket, so the round trips and the delays since the last SR that reports carry
        leave out our own stalls): each packet in it is parsed and acted on by itself
        (``rtcp.split_compound``), so one that cannot be parsed (counted ``malformed_rtcp``)
        does not take the NACK, PLI or report beside it along."""
        received_at = arrival_us / 1e6
        parts, framed = rtcp.split_compound(data)
        if not framed:
            self._drop("malformed_rtcp")
        if not parts:
            return
        self.rtcp_packets_in += 1
        departures = self.departures
        for part in parts:
            if departures is not None and rtcp.is_transport_feedback(part):
                # Read next to the record of what we sent, not by aiortc (which reads its
                # FCI as NACK items).
                results = departures.feedback(part)
                if not results:
                    continue
                now = time.monotonic()
                moved = self.downlink.on_packet_results(results, now)
                if moved or now - self._allocated_at >= ALLOCATE_SECONDS:
                    self._allocate()
                continue
            try:
                packets = RtcpPacket.parse(part)
            except rtcp.MALFORMED:
                self._drop("malformed_rtcp")
                continue
            for packet in packets:
                self._on_rtcp_packet(packet, received_at)
        if self._reported_loss:
            self._reported_loss = False
            live = [s for s in self.subscriptions if not s.closed]
            expected = sum(s.leg_expected for s in live)
            lost, raw = sum(s.leg_lost for s in live), sum(s.leg_lost_raw for s in live)
            if self.downlink.on_report(expected, lost, raw):
                self._allocate()

    def _allocate(self) -> None:
        """The downlink estimate moved: share it again, tell the publishers, and probe the
        leg when the share holds a video under what its publisher sends (prober.py)."""
        self._allocated_at = time.monotonic()
        self.downlink.demand = self.allocator.allocate(self.subscriptions)
        for subscription in self.subscriptions:
            if subscription.kind == "video" and not subscription.closed:
                subscription.source.cap_changed()
        if self.settings.probing:
            self._probe()
        if TRACE.isEnabledFor(logging.DEBUG):
            self._trace_allocation()

    def _probe(self) -> None:
        """Start a probe of our leg if the estimator wants one (prober.py). Simulcast videos
        only: one layer follows the share by its bitrate (REMB), and its growth, which the
        probes would bound, is what raises that bitrate."""
        d = self.downlink
        pads = [s for s in self.subscriptions if s.can_pad and layers_of(s)]
        d.can_probe = bool(pads)
        goal = d.probe_goal(self.allocator.constrained)
        if goal is not None:
            self.prober.start(goal, (d.sent_bps or 0.0) - d.padding_bps, pads)
            TRACE.info("probe", extra={"participant": self.id, "goal_bps": goal,
                                       "estimate_bps": d.estimate})  # fmt: skip

    def _trace_allocation(self) -> None:
        """One line of the adaptation trace (server.log_levels: televisit.adaptation=debug):
        this leg's estimate, its inputs, and what each video subscription was given."""
        d = self.downlink
        streams = [
            {"stream": s.stream_id, "layer": s.source.rid, "target_bps": s.target_bps,
             "wanted": s.wanted.rid if s.wanted is not None else None, "paused": s.paused,
             "rtt_ms": None if s.rtt is None else round(1000 * s.rtt),
             "pending": s.pending.rid if s.pending is not None else None,
             "temporal": None if s.temporal == TEMPORAL_ALL else s.temporal,
             "temporal_shares": [round(x, 2) for x in getattr(s.source, "temporal_shares", ())],
             "layers": [(layer.rid, layer.ssrc, layer.bitrate, layer.packets_in,
                         len(layer.inbound.outbounds))
                        for layer in getattr(s.source.primary, "layers", [])]}
            for s in self.subscriptions if s.kind == "video" and not s.closed
        ]  # fmt: skip
        TRACE.debug("allocation", extra={
            "participant": self.id, "estimate_bps": d.estimate, "remb_bps": d.remb,
            "unheld_bps": d.unheld_estimate,
            "demand_bps": d.demand, "sent_bps": None if d.sent_bps is None
            else int(d.sent_bps), "loss": round(d.fraction_lost, 3), "streams": streams,
            "raw_loss": round(d.raw_lost, 3),
            "window_packets": d.window_packets, "verified_bps": d.verified and int(d.verified),
            "probing": d.probe is not None, "probes": d.probes, "probes_failed": d.probes_failed,
            # from transport-cc packet results (estimator.on_packet_results), None without
            "delay": None if d.delay is None else d.delay_state,
            "acked_bps": d.acked.bps and int(d.acked.bps),
            # per subscription: kind, packets expected and lost after repair, RTX repairs,
            # lost before repair, RTX packets expected and lost, probe padding packets
            "legs": [(s.kind, s.leg_expected, s.leg_lost, s.rtx_received, s.leg_lost_raw,
                      *s.rtx_tally, s.probe_packets) for s in self.subscriptions],
        })  # fmt: skip

    def _publish_layers(self, publication: Publication, rids: list[str]) -> None:
        """Tell the client which simulcast layers of its m-line to send (the visit page turns
        the others off: ``publish_layers`` in docs/signaling.md)."""
        if self._on_notice is not None:
            self._on_notice({"type": "publish_layers", "mid": publication.mid, "rids": rids})

    def _video_paused(self, subscription: Subscription, paused: bool) -> None:
        log.info("participant %s: video of %s %s for the connection (estimate %d bit/s)",
                 self.id, subscription.stream_id, "paused" if paused else "resumed",
                 self.downlink.estimate)  # fmt: skip
        if self._on_notice is not None:
            self._on_notice({"type": "video_paused", "stream": subscription.stream_id,
                             "paused": paused, "reason": "bandwidth"})  # fmt: skip

    def _on_rtcp_packet(self, packet: Any, received_at: float) -> None:
        if isinstance(packet, RtcpSrPacket):
            publication = self._by_ssrc.get(packet.ssrc)
            if publication is not None:
                info = packet.sender_info
                publication.on_sender_report(info.ntp_timestamp, info.rtp_timestamp, received_at)
        if isinstance(packet, (RtcpSrPacket, RtcpRrPacket)):
            # RTX blocks first: the repairs they count belong in the media block's window.
            rtx = self._by_rtx_ssrc
            for report in sorted(packet.reports, key=lambda r: r.ssrc not in rtx):
                subscription = self._by_out_ssrc.get(report.ssrc)
                if report.ssrc in rtx:
                    rtx[report.ssrc].on_rtx_report(report)
                elif subscription is None:
                    self._drop("rtcp_unknown_ssrc")
                else:
                    subscription.on_receiver_report(report, received_at)
                    self._reported_loss = True  # audio too: the same leg
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            subscription = self._by_out_ssrc.get(packet.media_ssrc)
            if subscription is None:
                self._drop("rtcp_unknown_ssrc")
            else:
                seqs = rtcp.nack_seqs(packet.lost)
                subscription.on_nack(seqs)
                self.prober.on_nacks(len(seqs))
        elif isinstance(packet, RtcpPsfbPacket):
            self._payload_feedback(packet)

    def _payload_feedback(self, packet: RtcpPsfbPacket) -> None:
        if packet.fmt == RTCP_PSFB_PLI:
            targets = [packet.media_ssrc]
        elif packet.fmt == RTCP_PSFB_FIR:
            targets = rtcp.fir_ssrcs(packet.fci)
        elif packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except rtcp.MALFORMED:  # a REMB FCI shorter than its own SSRC count
                self._drop("malformed_rtcp")
                return
            for ssrc in ssrcs:
                subscription = self._by_out_ssrc.get(ssrc)
                if subscription is not None:
                    subscription.on_remb(bitrate)
            if any(ssrc in self._by_out_ssrc for ssrc in ssrcs):
                self.downlink.on_remb(bitrate)  # one estimate for the whole leg
                self._allocate()
            return
        else:
            return
        for ssrc in targets:
            subscription = self._by_out_ssrc.get(ssrc)
            if subscription is None:
                self._drop("rtcp_unknown_ssrc")
            else:
                subscription.on_keyframe_request()

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def log_malformed(self) -> None:
        """Log each kind of malformed input (MALFORMED) this client sent once: the compiled
        path drops and counts every such packet in ``dropped`` and logs nothing. Run with the
        receiver reports (about once a second)."""
        for reason in MALFORMED:
            if reason in self.dropped and reason not in self._logged_malformed:
                self._logged_malformed.add(reason)
                log.warning(
                    "%s: dropped %s from this client (counted in packets_dropped; logged once)",
                    self.id,
                    reason,
                )

    # ---- RTCP out -------------------------------------------------------------------------

    def send_rtcp(self, data: bytes) -> None:
        """Send one RTCP packet to this participant now (dropped and counted while not up)."""
        if self._leg is None or self._closed:
            return
        try:
            self._leg(data)
            self.rtcp_packets_out += 1
        except ConnectionError:
            self._drop("rtcp_not_connected")
        except Exception as exc:
            self.faults.record("send_rtcp", exc)

    async def _run_ticks(self) -> None:
        # NACK retries need a TICK_SECONDS cadence only while a publication misses packets;
        # otherwise the task sleeps until the next report, and a new gap wakes it
        # (Publication.on_gap -> _nack_pending). A fixed 50 ms tick per participant cost as much
        # CPU as a few hundred forwarded packets per second.
        loop = asyncio.get_running_loop()
        next_report = time.monotonic() + REPORT_SECONDS
        delay = REPORT_SECONDS
        while not self._closed:
            wake = self._tick_wake = loop.create_future()
            timer = loop.call_later(delay, _set_done, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._tick_wake = None
            now = time.monotonic()
            try:
                missing = False
                for publication in self.publications:
                    if publication.nacks is not None and publication.nacks.missing:
                        publication.send_nacks(now, self._upstream_rtt())
                        missing = missing or bool(publication.nacks.missing)
                # Due a little early: loop timers work in whole milliseconds and fire up to
                # one early, and a sub-millisecond sleep then spun the task several times.
                if now + TIMER_SLACK_SECONDS >= next_report:
                    next_report = now + REPORT_SECONDS * (0.5 + random.random())
                    self._send_reports()
                    self._check_media(now)
                    self.log_malformed()
                    if any(s.paused for s in self.subscriptions):
                        # A paused video brings no receiver reports or REMB for it: the
                        # allocator must still look, or it would never resume.
                        self._allocate()
                delay = TICK_SECONDS if missing else max(0.0, next_report - now)
            except Exception as exc:
                self.faults.record("rtcp-tick", exc)
                delay = TICK_SECONDS

    def _nack_pending(self) -> None:
        """A publication found a gap: NACK retries need the short tick from now on."""
        wake = self._tick_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _rtcp_ssrc(self) -> int:
        """The SSRC our RTCP to this participant is sent from (that of its first publication)."""
        return self.publications[0].rtcp_ssrc if self.publications else 0

    def _upstream_rtt(self) -> float:
        return 0.0  # aiortc reports no RTT on a receive-only leg; retries use the 40 ms floor

    def _send_reports(self) -> None:
        if self.pc.connectionState != "connected":
            return
        blocks = [b for b in (p.report_block() for p in self.publications) if b is not None]
        if not blocks:
            return
        rtcp_ssrc = self._rtcp_ssrc()
        data = bytes(RtcpRrPacket(ssrc=rtcp_ssrc, reports=blocks[:31]))
        video = [
            p
            for p in self.publications
            if p.kind == "video" and p.primary is p and any(q.ssrc for q in p.layers or [p])
        ]
        caps = [(p, p.bitrate_cap()) for p in video]
        caps = [(p, c) for p, c in caps if c is not None]
        if caps:
            bitrate = min(c for _, c in caps)
            ssrcs = [q.ssrc for p, _ in caps for q in p.layers or [p] if q.ssrc is not None]
            data += rtcp.pack_remb(rtcp_ssrc, bitrate, ssrcs)
            self.rembs_sent += 1
            TRACE.debug("remb", extra={"participant": self.id, "remb_bps": bitrate})
        self.send_rtcp(data)

    def _check_media(self, now: float) -> None:
        if not self.publications or self._connected_at is None:
            return
        last = max((p.last_packet_at or self._connected_at) for p in self.publications)
        if now - last > self.settings.media_timeout_seconds:
            self._report("media_timeout")

    async def _watch_connect(self) -> None:
        await asyncio.sleep(self.settings.connect_timeout_seconds)
        if self._connected_at is None and not self._closed:
            self._report("connect_timeout")

    # ---- state, chat, lifecycle ----------------------------------------------------------

    def _connection_state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self._connected_at is None:
            self._connected_at = time.monotonic()
            if self._connect_watch is not None:
                self._connect_watch.cancel()  # one sleeping task less per participant
            # The subscriptions' held keyframes can go out now (or a keyframe is asked for).
            # Soon, not now: the Leg learns that DTLS is up from a statechange handler that
            # runs after this one.
            asyncio.get_running_loop().call_soon(self._deliver_held)
            self._report("connected")
        elif state in ("failed", "closed") and not self._closed:
            self._report(state)

    def _deliver_held(self) -> None:
        for subscription in self.subscriptions:
            if subscription.active:
                try:
                    subscription.deliver_held()
                except Exception as exc:
                    self.faults.record("deliver_held", exc)

    def _report(self, state: str) -> None:
        if state in self._reported or self._closed:
            return
        self._reported.add(state)
        try:
            self._on_state(self, state)
        except Exception as exc:
            self.faults.record("on_state", exc)

    def _data_channel(self, channel: Any) -> None:
        if channel.label != CHAT_LABEL or self._chat is not None:
            self._drop("unexpected_data_channel")
            channel.close()
            return
        self._chat = channel

        @channel.on("message")
        def on_message(message: Any) -> None:
            self.chat_messages_in += 1
            try:
                self._on_chat(self, message)
            except Exception as exc:
                self.faults.record("on_chat", exc)

    def send_chat(self, message: dict[str, Any]) -> bool:
        """Send ``message`` as JSON on the chat data channel; False when it is not open."""
        channel = self._chat
        if channel is None or channel.readyState != "open" or self._closed:
            return False
        try:
            channel.send(json.dumps(message))
        except Exception as exc:
            self.faults.record("send_chat", exc)
            return False
        return True

    async def close(self) -> None:
        if self._closed:
            return
        for subscription in self.subscriptions:
            await subscription.close()
        self._closed = True
        self.prober.stop()
        if self.transport_feedback is not None:
            self.transport_feedback.stop()
        if self._answer_waiter is not None and not self._answer_waiter.done():
            self._answer_waiter.cancel()
        self._settle_codec_requests(failed=True)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self.pc.close()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.faults.record(task.get_name().split(":", 1)[-1], task.exception())


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
