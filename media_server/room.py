"""A consult room: one session of one appointment's members and the streams between them.

Members are keyed by (role, name) from their join grant, so a rejoin with the same token is the
same member. A member is either present (a signaling channel and a peer connection) or away
(dropped, inside the reconnect grace). States: waiting (not both a host and a guest) -> active ->
ended; an ended room is never reused: joining again starts a new Room (the worker's job).

Every state change happens synchronously inside one method, so no await can interleave two
changes; the slow parts (closing peer connections, subscribing) run as tasks the room tracks
and cancels when it ends.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from config.settings import MediaSettings
from media_server import chat, codecpolicy, codecs, transcoder
from media_server.admission import AdmissionNeeded, Admissions, device_of, needs_admission
from media_server.chat import now_iso
from media_server.participant import Participant
from media_server.publication import Publication
from media_server.rejection import Refusal
from media_server.subscription import CodecMismatch, Subscription

log = logging.getLogger(__name__)

# How long a publisher asked to switch codec has to start sending it before its stream is
# transcoded for the members who cannot decode what it sends.
SWITCH_SECONDS = 5.0

# WebSocket close codes the room decides (docs/signaling.md lists them all).
CLOSE_ENDED = 4000
CLOSE_REPLACED = 4009
CLOSE_CONNECT_TIMEOUT = 4010
CLOSE_MEDIA_LOST = 4011


class Channel(Protocol):
    """The signaling connection of a present member (see signaling.Connection)."""

    def send(self, message: dict[str, Any]) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


class Grant(Protocol):
    """What the room reads from a join grant (control.join.Grant)."""

    room_id: str
    name: str
    role: str


class RoomError(Exception):
    """A join the room refuses; ``code`` is the WebSocket close code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


ParticipantFactory = Callable[..., Participant]
RoomEventSink = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(eq=False)
class Member:
    id: str
    name: str
    role: str
    joined_at: str
    channel: Channel | None = None
    participant: Participant | None = None
    generation: int = 0
    # The first offer/answer of the current peer connection is done: the server may now
    # renegotiate to add subscriptions.
    negotiated: bool = False
    # (publisher member id, kind) -> the subscription and the publication it currently carries.
    subscriptions: dict[tuple[str, str], tuple[Subscription, Publication]] = field(
        default_factory=dict
    )
    # (publisher member id, kind) -> why that stream cannot be shown to this member; told to
    # both sides once (`stream_unavailable`).
    unavailable: dict[tuple[str, str], str] = field(default_factory=dict)
    # Codecs the client declared at join (kind -> codecs it decodes); none: learned from
    # its offer.
    declared: dict[str, list[RTCRtpCodecParameters]] = field(default_factory=dict)
    grace: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The device of the current connection when it joined by PIN (admission.device_of).
    device: str | None = None
    # The link version of the grant it joined with (control.tokens: claim v).
    version: int = 0

    @property
    def present(self) -> bool:
        return self.channel is not None

    def public(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "role": self.role}


class Room:
    def __init__(
        self,
        room_id: str,
        settings: MediaSettings,
        *,
        participant_factory: ParticipantFactory = Participant,
        on_ended: Callable[[Room], None] = lambda room: None,
        on_closed: Callable[[Participant], None] = lambda participant: None,
        on_event: RoomEventSink | None = None,
        counters: collections.Counter[str] | None = None,
        transcoders: transcoder.Transcoders | None = None,
    ) -> None:
        self.id = room_id
        self.session = secrets.token_hex(8)
        self.settings = settings
        self.state = "waiting"
        self.waiting_since: str | None = now_iso()
        self.active_since: str | None = None
        self.ended_reason: str | None = None
        self.members: dict[tuple[str, str], Member] = {}
        # Session-layer events by kind (chat relayed/rejected, drops, task failures); the
        # worker shares one Counter across its rooms so metrics outlive the room.
        self.counters: collections.Counter[str] = (
            counters if counters is not None else collections.Counter()
        )
        # The worker's transcoders (shared by its rooms: one cap per process).
        self.transcoders = transcoders or transcoder.Transcoders(settings.transcode_max_per_worker)
        # Publications (by id) asked to switch codec, and those that refused or never did.
        self._switching: set[str] = set()
        self._switch_refused: set[str] = set()
        self._participant_factory = participant_factory
        self._on_ended = on_ended
        self._on_closed = on_closed
        self._on_event = on_event
        self._tasks: set[asyncio.Task[Any]] = set()
        self.admissions = Admissions(self._host_channels, self.counters)

    # ---- joining and leaving -------------------------------------------------------------

    def join(
        self,
        grant: Grant,
        channel: Channel,
        *,
        admitted: bool = False,
        capabilities: dict[str, list[RTCRtpCodecParameters]] | None = None,
    ) -> tuple[Member, bool]:
        """Admit a member's new connection; returns (member, resumed). Raises RoomError, or
        AdmissionNeeded for a PIN join from a second device (media_server/admission.py)
        unless a host ``admitted`` it. ``capabilities``: what the client declared it decodes
        (codecpolicy.Capabilities.codecs())."""
        if self.state == "ended":
            raise RoomError(CLOSE_ENDED, "this session has ended")
        if grant.room_id != self.id:
            raise RoomError(4003, "the token is not for this room")
        if grant.role not in ("host", "guest"):
            raise RoomError(4003, f"role {grant.role!r} cannot join a consult")
        key = (grant.role, grant.name)
        member = self.members.get(key)
        resumed = member is not None
        if member is not None and not admitted:
            if needs_admission(member.present, member.device, grant):
                raise AdmissionNeeded(self)
        if member is None:
            if len(self.members) >= self.settings.room_max_participants:
                raise RoomError(4003, "the room is full")
            member = Member(
                id=secrets.token_hex(6), name=grant.name, role=grant.role, joined_at=now_iso()
            )
            self.members[key] = member
        else:
            self._detach(member, CLOSE_REPLACED, "replaced by a newer connection")
            if member.grace is not None:
                member.grace.cancel()
                member.grace = None
        member.channel = channel
        member.device = device_of(grant)
        member.version = getattr(grant, "version", 0)
        member.generation += 1
        member.declared = dict(capabilities or {})
        member.participant = self._new_participant(member)
        member.negotiated = False
        member.subscriptions = {}
        member.unavailable = {}
        # The participant's own connect timeout starts with the offer; this one covers a
        # client that joins and never offers.
        asyncio.get_running_loop().call_later(
            self.settings.connect_timeout_seconds, self._offer_overdue, member, member.generation
        )
        self._update_state()
        channel.send(
            {
                "type": "joined",
                "participant": member.public(),
                "room": self.state_message(),
                "ice_servers": [s.model_dump(exclude_none=True) for s in self.settings.ice_servers],
                "resumed": resumed,
                "simulcast": self.settings.simulcast,
            }
        )
        if member.role == "host":
            self.admissions.show_to(channel)
        self._broadcast(
            {"type": "participant_joined", "participant": member.public(), "resumed": resumed},
            exclude=member,
        )
        self._broadcast_state(exclude=member)
        self._emit("participant_joined", member, resumed=resumed)
        return member, resumed

    def revoke(self, versions: dict[str, Any]) -> None:
        """The clinic re-issued links: members who joined with an older version of their
        role's links than ``versions`` ({role: version}) leave at once (4001 ``revoked:``),
        without a reconnect grace (their token no longer opens the room)."""
        for member in list(self.members.values()):
            current = versions.get(member.role)
            if not isinstance(current, int) or member.version >= current:
                continue
            self.counters["revoked"] += 1
            if member.grace is not None:
                member.grace.cancel()
                member.grace = None
            self._detach(member, 4001, "revoked: the clinic re-issued this link")
            self._grace_expired(member)

    def _host_channels(self) -> list[Channel]:
        return [
            m.channel for m in self.members.values() if m.role == "host" and m.channel is not None
        ]

    def disconnected(self, member: Member, channel: Channel) -> None:
        """The member's signaling channel closed without a hang-up: a drop (see _detach)."""
        if member.channel is channel and self.state != "ended":
            self._drop(member, 1000, "signaling closed")

    def hangup(self, member: Member) -> None:
        if member.channel is not None and self.state != "ended":
            self.end("hangup", by=member)

    def end(self, reason: str, by: Member | None = None) -> None:
        """End the session for everyone: every client gets `ended`, every connection closes."""
        if self.state == "ended":
            return
        self.admissions.close_all("ended")
        self.state = "ended"
        self.ended_reason = reason
        message = {"type": "ended", "reason": reason, "by": by.public() if by else None}
        for member in self.members.values():
            if member.grace is not None:
                member.grace.cancel()
                member.grace = None
            if member.channel is not None:
                member.channel.send(message)
            self._detach(member, CLOSE_ENDED, f"session ended: {reason}")
        self._emit("ended", None, reason=reason, by=by.public() if by else None)
        for task in self._tasks:
            if task.get_name().startswith(("sync:", "switch:")):
                task.cancel()
        self._on_ended(self)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _drop(self, member: Member, code: int, reason: str) -> None:
        """A present member lost its connection: away for the grace, then left."""
        self.counters[f"drop_{code}"] += 1
        self._detach(member, code, reason)
        self._broadcast({"type": "participant_reconnecting", "participant": member.public()})
        self._broadcast_state()
        self._emit("participant_reconnecting", member)
        loop = asyncio.get_running_loop()
        member.grace = loop.call_later(
            self.settings.reconnect_grace_seconds, self._grace_expired, member
        )

    def _detach(self, member: Member, code: int, reason: str) -> None:
        """Close the member's channel and peer connection (subscriptions of others stay)."""
        channel, participant = member.channel, member.participant
        member.channel = None
        member.participant = None
        member.negotiated = False
        member.subscriptions = {}
        if channel is not None:
            channel.close(code, reason)
        if participant is not None:
            self._spawn(self._close(participant), name=f"close:{member.id}")

    def _offer_overdue(self, member: Member, generation: int) -> None:
        if (
            member.generation == generation
            and member.present
            and not member.negotiated
            and self.state != "ended"
        ):
            self._drop(
                member,
                CLOSE_CONNECT_TIMEOUT,
                f"no offer within {self.settings.connect_timeout_seconds:g} s",
            )

    async def _close(self, participant: Participant) -> None:
        try:
            await participant.close()
        finally:
            self._on_closed(participant)

    def _grace_expired(self, member: Member) -> None:
        member.grace = None
        if self.state == "ended" or member.present:
            return
        del self.members[(member.role, member.name)]
        for other in self.members.values():
            for key in [k for k in other.subscriptions if k[0] == member.id]:
                subscription, _ = other.subscriptions.pop(key)
                self._spawn(_unsubscribe(other, subscription), name=f"close:{other.id}:{key[1]}")
        self._broadcast({"type": "participant_left", "participant": member.public()})
        self._emit("participant_left", member)
        if not self.members:
            self.end("left")
            return
        self._update_state()
        self._broadcast_state()

    # ---- carrying a session to another worker ----------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What another worker needs to continue this session if this one dies:
        ``{session, waiting_since, active_since, members: [{id, name, role, joined_at}]}``."""
        return {
            "session": self.session,
            "waiting_since": self.waiting_since,
            "active_since": self.active_since,
            "members": [{**m.public(), "joined_at": m.joined_at} for m in self.members.values()],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue a session from another worker's ``snapshot()`` (that worker died or moved
        its calls away): the same session id and times, every member away with the reconnect
        grace to come back, so each rejoin is ``resumed`` and the others see "reconnecting".
        Only for a room nobody joined yet (RuntimeError otherwise)."""
        if self.members or self.state == "ended":
            raise RuntimeError("only a fresh room can continue another worker's session")
        self.session = snapshot["session"]
        loop = asyncio.get_running_loop()
        for m in snapshot["members"]:
            member = Member(id=m["id"], name=m["name"], role=m["role"], joined_at=m["joined_at"])
            self.members[(member.role, member.name)] = member
            member.grace = loop.call_later(
                self.settings.reconnect_grace_seconds, self._grace_expired, member
            )
        self._update_state()
        self.waiting_since = snapshot["waiting_since"]
        if self.state == "active":
            self.active_since = snapshot["active_since"] or self.active_since

    # ---- state ------------------------------------------------------------------------------

    def _update_state(self) -> None:
        roles = {m.role for m in self.members.values()}
        if {"host", "guest"} <= roles:
            if self.state != "active":
                self.state = "active"
                # waiting_since stays: it tells the party that arrived how long the other waited.
                self.active_since = now_iso()
        elif self.state != "waiting":
            self.state = "waiting"
            self.waiting_since = now_iso()
            self.active_since = None

    def state_message(self) -> dict[str, Any]:
        return {
            "type": "room_state",
            "session": self.session,
            "state": self.state,
            "waiting_since": self.waiting_since,
            "active_since": self.active_since,
            "participants": [
                {
                    **m.public(),
                    "status": "connected" if m.present else "reconnecting",
                    "joined_at": m.joined_at,
                }
                for m in self.members.values()
            ],
        }

    def _broadcast_state(self, exclude: Member | None = None) -> None:
        self._broadcast(self.state_message(), exclude=exclude)

    def _broadcast(self, message: dict[str, Any], exclude: Member | None = None) -> None:
        for member in self.members.values():
            if member is not exclude and member.channel is not None:
                member.channel.send(message)

    def _emit(self, type: str, member: Member | None, **extra: Any) -> None:
        """Room events for the control plane (visit status, dashboards)."""
        if self._on_event is None:
            return
        event = {"type": type, "room_id": self.id, "session": self.session, "state": self.state}
        if member is not None:
            event["participant"] = member.public()
        self._spawn(self._on_event({**event, **extra}), name=f"event:{type}")

    # ---- peer connections and streams ------------------------------------------------------

    def _new_participant(self, member: Member) -> Participant:
        generation = member.generation
        holder: list[Participant] = []

        def current() -> bool:
            return bool(holder) and member.participant is holder[0]

        async def on_offer(sdp: str) -> None:
            if current() and member.channel is not None:
                member.channel.send({"type": "offer", "sdp": sdp})

        def on_publication(publication: Publication) -> None:
            if current():
                publication.on_codec = lambda publication: self._sync_all()
                self._sync_all()

        def on_chat(participant: Participant, text: str) -> None:
            if not current():
                return
            try:
                self.relay_chat(member, chat.parse_channel_message(text))
            except chat.ChatError as exc:
                self.counters["chat_rejected"] += 1
                if member.channel is not None:
                    member.channel.send(exc.as_error(ref="chat"))

        def on_state(participant: Participant, state: str) -> None:
            if not current() or self.state == "ended":
                return
            if state == "connect_timeout":
                self._drop(
                    member,
                    CLOSE_CONNECT_TIMEOUT,
                    "media connection not established within "
                    f"{self.settings.connect_timeout_seconds:g} s",
                )
            elif state in ("media_timeout", "failed", "closed"):
                self._drop(member, CLOSE_MEDIA_LOST, f"media connection lost ({state}); rejoin")

        def on_refused(subscription: Subscription, refusal: Refusal) -> None:
            if not current() or self.state == "ended":
                return
            key = next(
                (k for k, (held, _) in member.subscriptions.items() if held is subscription), None
            )
            if key is not None:
                self._unavailable(member, key, refusal.reason, refusal.detail)

        def on_notice(message: dict[str, Any]) -> None:
            if current() and member.channel is not None:
                member.channel.send(message)

        participant = self._participant_factory(
            f"{member.id}.{generation}",
            settings=self.settings,
            on_offer=on_offer,
            on_publication=on_publication,
            on_chat=on_chat,
            on_state=on_state,
            on_refused=on_refused,
            on_notice=on_notice,
            prefer_codecs=lambda kind, offered: self._publish_order(member, kind, offered),
        )
        participant.declared_codecs = dict(member.declared)
        holder.append(participant)
        return participant

    def _unavailable(
        self, member: Member, key: tuple[str, str], reason: str, detail: str = ""
    ) -> None:
        """A publisher's stream cannot be shown to ``member``: say so to both (once)."""
        if key in member.unavailable:
            return
        member.unavailable[key] = reason
        publisher = next((m for m in self.members.values() if m.id == key[0]), None)
        self.counters[f"stream_unavailable_{key[1]}"] += 1
        log.warning(
            "room %s: %s of %s cannot be shown to %s: %s %s",
            self.id, key[1], key[0], member.id, reason, detail,
        )  # fmt: skip
        if publisher is None:
            return
        message = {
            "type": "stream_unavailable",
            "kind": key[1],
            "reason": reason,
            "from": publisher.public(),
            "to": member.public(),
        }
        for side in (member, publisher):
            if side.channel is not None:
                side.channel.send(message)

    def negotiated(self, member: Member) -> None:
        """The member's first offer was answered: subscribe it to everything published."""
        member.negotiated = True
        self._sync_all()

    def _sync_all(self) -> None:
        if self.state == "ended":
            return
        self._plan_switches()
        for member in self.members.values():
            if member.negotiated:
                self._spawn(self._sync(member), name=f"sync:{member.id}")

    async def _sync(self, member: Member) -> None:
        """Make the member's subscriptions match what the others publish (idempotent).

        A publisher that came back on a new peer connection has new publications: the existing
        subscription switches to them so the subscriber's stream continues. If it came back
        with another codec, the subscriber gets a new subscription (a new track) instead. A
        video stream the member cannot decode is carried by a transcoder, or announced as
        unavailable (codecpolicy).
        """
        async with member.lock:
            participant = member.participant
            for other in list(self.members.values()):
                if other is member or other.participant is None:
                    continue
                for publication in list(other.participant.publications):
                    if participant is not member.participant or not member.negotiated:
                        return
                    if publication.primary is not publication:
                        continue  # a simulcast layer: the allocator moves subscriptions to it
                    key = (other.id, publication.kind)
                    source = self._source_for(member, publication)
                    held = member.subscriptions.get(key)
                    if held is not None and (
                        held[1] is not publication or not _carries(held[0], source)
                    ):
                        try:
                            held[0].switch_source(source or publication)
                            member.subscriptions[key] = (held[0], publication)
                        except CodecMismatch:
                            self.counters["resubscribed_codec_change"] += 1
                            del member.subscriptions[key]
                            await _unsubscribe(member, held[0])
                            held = None
                    if held is None:
                        subscription = await participant.subscribe(source or publication)
                        if participant is member.participant:
                            member.subscriptions[key] = (subscription, publication)
                    if source is None:
                        self._unavailable(member, key, "codec", publication.codec_name)

    # ---- codec choice (codecpolicy) ---------------------------------------------------------

    def _decodes(self, member: Member, kind: str) -> codecpolicy.Known:
        if member.participant is not None:
            return member.participant.receive_codecs.get(kind)
        return member.declared.get(kind)

    def _receivers(self, publisher: Member, kind: str) -> list[codecpolicy.Known]:
        return [
            self._decodes(m, kind)
            for m in self.members.values()
            if m is not publisher and (m.negotiated or m.declared)
        ]

    def _publish_order(
        self, publisher: Member, kind: str, offered: list[RTCRtpCodecParameters]
    ) -> list[RTCRtpCodecParameters]:
        """The answer's codec order for a new publisher: what everybody here decodes first."""
        receivers = self._receivers(publisher, kind) if kind == "video" else []
        return codecpolicy.publish_order(offered, receivers, self.settings.video_codecs)

    def _source_for(
        self, member: Member, publication: Publication
    ) -> Publication | transcoder.Transcoder | None:
        """Where ``member`` gets ``publication`` from: the publication itself when it decodes
        what it sends (or a switch is under way), else a transcoder, else nowhere (None)."""
        if publication.kind != "video":
            return publication
        known = self._decodes(member, "video")
        if codecpolicy.can_decode(known, publication.codec) or publication.id in self._switching:
            return publication
        if not self.settings.transcode:
            return None
        target = codecpolicy.transcode_target(
            known, transcoder.targets(), self.settings.video_codecs
        )
        if target is None:
            return None
        return self.transcoders.get(publication, target)

    def _plan_switches(self) -> None:
        """Ask each publisher whose video some member cannot decode to switch to a codec
        every member decodes, once per publication (a refusal is final)."""
        for publisher in self.members.values():
            if publisher.participant is None or not publisher.negotiated:
                continue
            for publication in publisher.participant.publications:
                if publication.kind != "video" or publication.id in self._switching:
                    continue
                if publication.primary is not publication:
                    continue  # a simulcast layer: the whole m-line switches with its primary
                receivers = self._receivers(publisher, "video")
                if all(codecpolicy.can_decode(r, publication.codec) for r in receivers):
                    continue
                if publication.id in self._switch_refused:
                    continue
                target = codecpolicy.switch_target(
                    publication.codecs, receivers, self.settings.video_codecs
                )
                if target is None:
                    continue
                self._switching.add(publication.id)
                self._spawn(
                    self._switch(publisher.participant, publication, target),
                    name=f"switch:{publication.id}",
                )

    async def _switch(
        self, participant: Participant, publication: Publication, target: RTCRtpCodecParameters
    ) -> None:
        """Re-offer the publisher's m-line with ``target`` first and wait (bounded) for its
        packets to arrive in it; a refusal or a timeout leaves the transcoder to serve."""
        self.counters["codec_switch_requested"] += 1
        log.info("room %s: asking %s to send %s", self.id, publication.id, codecs.describe(target))
        switched = False
        try:
            if await participant.request_codec(publication, target):
                deadline = asyncio.get_running_loop().time() + SWITCH_SECONDS
                while asyncio.get_running_loop().time() < deadline:
                    if codecs.same_format(publication.codec, target):
                        switched = True
                        break
                    await asyncio.sleep(0.05)
        finally:
            self._switching.discard(publication.id)
            if not switched:
                self._switch_refused.add(publication.id)
            self.counters["codec_switched" if switched else "codec_switch_refused"] += 1
            log.info(
                "room %s: %s %s %s", self.id, publication.id,
                "switched to" if switched else "did not switch to", codecs.describe(target),
            )  # fmt: skip
            self._sync_all()

    # ---- chat ------------------------------------------------------------------------------

    def relay_chat(self, member: Member, text: Any) -> None:
        """Stamp and relay one chat message to every member (the sender too).

        Raises chat.ChatError for a message that is not acceptable text.
        """
        message = chat.stamp(member.name, member.role, text, self.settings.chat_max_bytes)
        self.counters["chat_relayed"] += 1
        for other in self.members.values():
            if other.participant is not None and other.participant.send_chat(message):
                continue
            if other.channel is not None:
                other.channel.send(message)

    # ---- tasks -----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.counters["task_errors"] += 1
            log.error("room %s: task %s failed", self.id, task.get_name(), exc_info=exc)

    @property
    def participant_count(self) -> int:
        return sum(1 for m in self.members.values() if m.present)

    def participants(self) -> list[Participant]:
        return [m.participant for m in self.members.values() if m.participant is not None]


def _carries(subscription: Subscription, source: Any) -> bool:
    """Does ``subscription`` already read ``source`` (any simulcast layer of it counts: the
    allocator chooses among those)?"""
    current = subscription.source
    return current is source or (source is not None and getattr(current, "primary", None) is source)


async def _unsubscribe(member: Member, subscription: Subscription) -> None:
    """Close a subscription; on the member's live peer connection its m-line goes inactive."""
    participant = member.participant
    if participant is not None and subscription in participant.subscriptions:
        await participant.unsubscribe(subscription)
    else:
        await subscription.close()
