"""The signaling WebSocket (docs/signaling.md): join, SDP both ways, candidates, chat, hang-up.

One socket per member connection. A reader loop validates every frame and hands it to the room;
a writer task drains a bounded outbox, so the room never awaits a slow client. Every loop is
bounded: the join deadline, the close handshake, the outbox size, a message rate and an error
budget per socket. The authorizer is injected so an SFU node can run apart from the control
plane (it then verifies tokens itself).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from media_server import chat, codecpolicy
from media_server.admission import AdmissionNeeded, device_of
from media_server.room import Grant, Member, Room, RoomError
from media_server.worker import Worker

log = logging.getLogger(__name__)

# Returns the grant, or raises an exception with a string ``reason`` ("invalid", "expired",
# "cancelled", "not-yet-open"...) and a message fit for the client (control.join.JoinRefused).
Authorize = Callable[[str], Awaitable[Grant]]

CLOSE_BAD_TOKEN = 4001
CLOSE_TOO_MANY_ERRORS = 4002
CLOSE_BAD_REQUEST = 4004
CLOSE_WRONG_ROOM = 4003
CLOSE_NO_JOIN = 4008
CLOSE_TOO_SLOW = 4013
CLOSE_MOVED = 4014
CLOSE_SERVER_ERROR = 1011
# Refusals (the authorizer's exception ``reason``) that are about the token itself: 4001;
# any other reason (cancelled, not-yet-open) is about the room: 4003.
TOKEN_REASONS = {"invalid", "expired", "revoked"}
# The room is held by another SFU worker (or this one is draining): ask the control plane
# where to signal (POST /api/v1/join) and join there.
REASON_CODES = {"moved": CLOSE_MOVED}

OUTBOX_MESSAGES = 256
ERROR_BUDGET = 50
RATE_PER_SECOND = 50.0
RATE_BURST = 200.0
CLOSE_HANDSHAKE_SECONDS = 5.0
NEGOTIATION_SECONDS = 20.0
HEARTBEAT_SECONDS = 15.0
# COMPRESSION: the socket declines permessage-deflate (RFC 7692), which browsers offer on every
# WebSocket and aiohttp accepts by default: each side's zlib state stays for the connection's
# life, ~180 kB of RSS per member once a few SDPs went through (a deflate stream's window,
# hash and pending buffers, an inflate window), as much as the rest of a member's idle
# state; a session sends a few dozen kB of signaling in all.
# aiohttp drops the connection (1009) above this; below it, oversize frames get an `error`.
HARD_FRAME_FACTOR = 4
# What ws.receive() returns as a socket ends; nothing follows them.
ENDING_FRAMES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)

_STR = (str,)
_OPT_STR = (str, types.NoneType)
# type -> {field: (accepted types, required)}
MESSAGES: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "join": {
        "token": (_STR, True),
        "client": (_OPT_STR, False),
        "room": (_OPT_STR, False),
        "capabilities": ((dict, types.NoneType), False),
    },
    "offer": {"sdp": (_STR, True)},
    "answer": {"sdp": (_STR, True)},
    "candidate": {
        "candidate": (_STR, True),
        "sdpMid": (_OPT_STR, False),
        "sdpMLineIndex": ((int, types.NoneType), False),
    },
    "chat": {"text": (_STR, True)},
    "admit": {"request": (_STR, True), "allow": ((bool,), True)},
    "hangup": {},
    "ping": {"id": ((str, int, types.NoneType), False)},
}


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.ref = ref

    def as_error(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": str(self), "ref": self.ref}


def parse(frame: str, max_bytes: int) -> dict[str, Any]:
    """One validated client message, or ProtocolError naming what is wrong.

    Raises nothing else, whatever ``frame`` holds (a hypothesis harness in
    tests/sfu/test_signaling_fuzz.py holds it to that): nesting deeper than the JSON decoder's
    recursion limit (``"[" * 50000``) and numbers over Python's integer-digit limit are
    ``bad_json`` like any other text that is not JSON.
    """
    if len(frame) > max_bytes or len(frame.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ProtocolError("too_large", f"messages are at most {max_bytes} bytes")
    try:
        data = json.loads(frame)
    except RecursionError as exc:
        raise ProtocolError("bad_json", "not JSON: nested too deeply") from exc
    except ValueError as exc:
        # JSONDecodeError has .msg; the int-digit limit raises a plain ValueError.
        raise ProtocolError("bad_json", f"not JSON: {getattr(exc, 'msg', exc)}"[:200]) from exc
    if not isinstance(data, dict):
        raise ProtocolError("not_object", "a message is a JSON object with a `type`")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("missing_type", "field `type` must be a string")
    fields = MESSAGES.get(kind)
    if fields is None:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}", ref=kind[:40])
    for name, (accepted, required) in fields.items():
        if name not in data:
            if required:
                raise ProtocolError("missing_field", f"field `{name}` is required", ref=kind)
            continue
        value = data[name]
        if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
            raise ProtocolError("bad_field", f"field `{name}` has the wrong type", ref=kind)
    return data


def close_reason(text: str) -> str:
    """WebSocket close reasons are limited to 123 bytes of UTF-8."""
    raw = text.encode("utf-8")
    return raw[:123].decode("utf-8", "ignore") if len(raw) > 123 else text


def withheld(message: Any, name: str) -> Any:
    """``message`` with every participant object ({name, ...}) named ``name`` renamed ""
    (a copy; ``message`` itself is shared by every recipient of a broadcast)."""
    if isinstance(message, dict):
        out = {k: withheld(v, name) for k, v in message.items()}
        if out.get("name") == name and "role" in out:
            out["name"] = ""
        return out
    if isinstance(message, list):
        return [withheld(v, name) for v in message]
    return message


class Connection:
    """The room's Channel for one socket: a bounded outbox drained by a writer task, and a
    reader task handing received frames to the session (``receive``). ``withhold``: a member
    name this socket is never told (a PIN join's: control/join.py).

    Only the writer closes the socket, after what was queued before the close, and only once
    the reader has let go of ``ws.receive()``: aiohttp then sends the close frame and reads
    (discarding what the client still had in flight) until the client's close frame, at most
    CLOSE_HANDSHAKE_SECONDS, before it closes TCP (RFC 6455 section 7.1.1). A close made while
    another task waits in ``ws.receive()`` skips that wait and closes TCP right behind the
    close frame: a message the client sends meanwhile (an answer to an offer) then meets a
    closed socket, is answered by a reset that can cost the client the close frame, and with
    it the code it acts on (4009: "opened elsewhere").
    """

    def __init__(self, ws: web.WebSocketResponse, errors: collections.Counter[str]) -> None:
        self.ws = ws
        self.errors = errors  # the worker's signaling_errors
        self.withhold: str | None = None
        self._outbox: asyncio.Queue[dict[str, Any] | tuple[int, str]] = asyncio.Queue(
            OUTBOX_MESSAGES + 1
        )
        # One frame read ahead at most: aiohttp's flow control still holds a flooding client.
        self._inbox: asyncio.Queue[WSMessage | None] = asyncio.Queue(1)
        self.closing: tuple[int, str] | None = None
        loop = asyncio.get_running_loop()
        self.reader = loop.create_task(self._read(), name="ws-reader")
        self.writer = loop.create_task(self._write(), name="ws-writer")

    def send(self, message: dict[str, Any]) -> None:
        if self.closing is not None:
            return
        if self._outbox.qsize() >= OUTBOX_MESSAGES:
            self.close(CLOSE_TOO_SLOW, "client does not read its messages")
            return
        if self.withhold is not None:
            message = withheld(message, self.withhold)
        self._outbox.put_nowait(message)

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, close_reason(reason))
            self._outbox.put_nowait(self.closing)

    async def receive(self) -> WSMessage | None:
        """The next frame the client sent; None once the reader has ended (the socket closed
        or is closing)."""
        if self._inbox.empty() and self.reader.done():
            return None
        return await self._inbox.get()

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is WSMsgType.ERROR:
                    # Counted here, with aiohttp's close in the same step: a test server
                    # cancels the handler once the transport is gone.
                    self.errors["transport"] += 1
                await self._inbox.put(msg)
                if msg.type in ENDING_FRAMES:
                    return
        finally:
            if not self._inbox.full():
                self._inbox.put_nowait(None)  # wakes a session waiting in receive()

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, tuple):
                self.reader.cancel()
                await asyncio.wait([self.reader])
                await self.ws.close(code=item[0], message=item[1].encode())
                return
            if self.ws.closed:
                continue
            try:
                await self.ws.send_str(json.dumps(item, separators=(",", ":")))
            except (ConnectionError, RuntimeError):
                # The peer went away; the reader loop sees the close and reports the drop.
                continue

    async def finish(self) -> None:
        """Flush what is queued and close (the writer waits for the client's close frame at
        most CLOSE_HANDSHAKE_SECONDS of the bound here)."""
        self.close(1000, "")
        try:
            await asyncio.wait_for(self.writer, 2 * CLOSE_HANDSHAKE_SECONDS)
        except (TimeoutError, ConnectionError):
            self.writer.cancel()
            self.reader.cancel()


class Session:
    """One socket's conversation: join, then messages until the socket or the session ends."""

    def __init__(self, worker: Worker, authorize: Authorize, conn: Connection) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.authorize = authorize
        self.conn = conn
        self.errors = 0
        self.tokens = RATE_BURST
        self.refilled = time.monotonic()
        self.room: Room | None = None
        self.member: Member | None = None

    def refuse(self, error: ProtocolError) -> None:
        """Answer a bad message with `error`; too many of them close the socket."""
        self.worker.signaling_errors[error.code] += 1
        self.errors += 1
        if self.errors > ERROR_BUDGET:
            self.conn.close(CLOSE_TOO_MANY_ERRORS, "too many bad messages")
        else:
            self.conn.send(error.as_error())

    def rate_ok(self) -> bool:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.refilled) * RATE_PER_SECOND)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def next_message(self, deadline: float | None) -> dict[str, Any] | None:
        """The next valid message, or None when the socket closed or the deadline passed."""
        while self.conn.closing is None:
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                return None
            try:
                async with asyncio.timeout(timeout):
                    msg = await self.conn.receive()
            except TimeoutError:
                return None
            if msg is None or msg.type in ENDING_FRAMES:
                return None
            if not self.rate_ok():
                self.refuse(ProtocolError("rate_limited", "too many messages; slow down"))
                continue
            if msg.type is WSMsgType.BINARY:
                self.refuse(ProtocolError("not_text", "messages are JSON text frames"))
                continue
            if msg.type is not WSMsgType.TEXT:
                continue
            try:
                return parse(msg.data, self.settings.signaling_max_bytes)
            except ProtocolError as exc:
                self.refuse(exc)
        return None

    async def run(self) -> None:
        deadline = time.monotonic() + self.settings.join_timeout_seconds
        while True:
            message = await self.next_message(deadline)
            if message is None:
                if self.conn.closing is None and not self.conn.ws.closed:
                    self.worker.signaling_errors["no_join"] += 1
                    self.conn.close(CLOSE_NO_JOIN, "no join message in time")
                return
            if message["type"] == "join":
                break
            if message["type"] == "ping":
                self.conn.send({"type": "pong", "id": message.get("id")})
                continue
            self.refuse(ProtocolError("join_first", "send `join` first", ref=message["type"]))
        if not await self.join(message):
            return
        assert self.room is not None and self.member is not None
        try:
            while (message := await self.next_message(None)) is not None:
                if self.member.channel is not self.conn:
                    break
                await self.dispatch(message)
        finally:
            self.room.disconnected(self.member, self.conn)

    async def join(self, message: dict[str, Any]) -> bool:
        try:
            grant = await self.authorize(message["token"])
        except Exception as exc:
            reason = getattr(exc, "reason", None)
            if not isinstance(reason, str):
                # Not a refusal but a failure (store down, a bug): say so, never "bad token".
                log.exception("join authorization failed")
                self.worker.signaling_errors["authorize_failed"] += 1
                self.conn.close(CLOSE_SERVER_ERROR, "the server could not check the token")
                return False
            self.worker.signaling_errors[f"token_{reason}"] += 1
            code = REASON_CODES.get(reason) or (
                CLOSE_BAD_TOKEN if reason in TOKEN_REASONS else CLOSE_WRONG_ROOM
            )
            what = "invalid token" if reason == "invalid" else reason
            self.conn.close(code, f"{what}: {exc}")
            return False
        try:
            declared = message.get("capabilities")
            capabilities = (
                codecpolicy.Capabilities.model_validate(declared).codecs() if declared else None
            )
        except ValueError as exc:  # pydantic's ValidationError is one
            self.worker.signaling_errors["bad_capabilities"] += 1
            self.conn.close(CLOSE_BAD_REQUEST, close_reason(f"bad capabilities: {exc}"))
            return False
        wanted = message.get("room")
        if wanted is not None and wanted != grant.room_id:
            self.worker.signaling_errors["wrong_room"] += 1
            self.conn.close(CLOSE_WRONG_ROOM, "the token is not for this room")
            return False
        if device_of(grant) is not None:
            # A PIN may have been guessed: its holder learns nothing of whose seat it takes.
            self.conn.withhold = grant.name
        try:
            try:
                room, self.member, _ = self.worker.join(grant, self.conn, capabilities=capabilities)
            except AdmissionNeeded as exc:
                if not await self.admission(exc.room, grant):
                    return False
                room, self.member, _ = self.worker.join(
                    grant, self.conn, admitted=True, capabilities=capabilities
                )
        except RoomError as exc:
            self.worker.signaling_errors["join_refused"] += 1
            self.conn.close(exc.code, str(exc))
            return False
        self.room = room
        return True

    async def admission(self, room: Room, grant: Grant) -> bool:
        """Wait for a host to admit this device (media_server/admission.py), answering
        `ping` meanwhile; refuse it (4003) on a no, a timeout or the room's end."""
        pending = room.admissions.ask(grant)
        self.conn.send({"type": "admission_pending", "request": pending.id})
        deadline = time.monotonic() + self.settings.admission_timeout_seconds
        reader: asyncio.Future[dict[str, Any] | None] | None = None
        try:
            while not pending.decision.done():
                reader = reader or asyncio.ensure_future(self.next_message(deadline))
                await asyncio.wait({pending.decision, reader}, return_when="FIRST_COMPLETED")
                if not reader.done():
                    continue
                message, reader = reader.result(), None
                if message is None:
                    break  # the socket closed, or no answer in time
                if message["type"] == "ping":
                    self.conn.send({"type": "pong", "id": message.get("id")})
                else:
                    self.refuse(
                        ProtocolError(
                            "admission_pending",
                            "wait until the clinic admits this device",
                            ref=message["type"],
                        )
                    )
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            gone = self.conn.closing is not None or self.conn.ws.closed
            room.admissions.close(pending.id, "gone" if gone else "timeout")
        if pending.decision.result():
            return True
        self.worker.signaling_errors["not_admitted"] += 1
        self.conn.close(CLOSE_WRONG_ROOM, "not admitted: the clinic did not let this device in")
        return False

    async def dispatch(self, message: dict[str, Any]) -> None:
        room, member = self.room, self.member
        assert room is not None and member is not None
        kind = message["type"]
        participant = member.participant
        if kind == "ping":
            self.conn.send({"type": "pong", "id": message.get("id")})
        elif kind == "hangup":
            room.hangup(member)
        elif kind == "chat":
            try:
                room.relay_chat(member, message["text"])
            except chat.ChatError as exc:
                self.refuse(ProtocolError(exc.code, str(exc), ref="chat"))
        elif kind == "admit":
            if member.role != "host":
                self.refuse(ProtocolError("not_host", "only the clinic admits devices", ref=kind))
                return
            try:
                room.admissions.answer(message["request"], message["allow"])
            except KeyError:
                self.refuse(ProtocolError("unknown_request", "no such admission request", ref=kind))
        elif participant is None:
            self.refuse(ProtocolError("no_connection", "no peer connection", ref=kind))
        elif kind == "offer":
            try:
                sdp = await asyncio.wait_for(
                    participant.handle_offer(message["sdp"]), NEGOTIATION_SECONDS
                )
            except Exception as exc:  # a bad offer must not end the socket; report it
                self.refuse(ProtocolError("bad_offer", f"offer refused: {exc}", ref=kind))
                return
            if participant is member.participant:
                self.conn.send({"type": "answer", "sdp": sdp})
                if not member.negotiated:
                    room.negotiated(member)
        elif kind == "answer":
            try:
                await asyncio.wait_for(
                    participant.handle_answer(message["sdp"]), NEGOTIATION_SECONDS
                )
            except Exception as exc:
                self.refuse(ProtocolError("bad_answer", f"answer refused: {exc}", ref=kind))
        elif kind == "candidate":
            candidate = {k: message.get(k) for k in ("candidate", "sdpMid", "sdpMLineIndex")}
            try:
                await participant.add_ice_candidate(candidate)
            except Exception as exc:
                self.refuse(ProtocolError("bad_candidate", f"candidate refused: {exc}", ref=kind))
        else:  # join again on a joined socket
            self.refuse(ProtocolError("already_joined", "this socket has joined", ref=kind))


def websocket_handler(
    worker: Worker, authorize: Authorize
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The `GET /ws` handler for an aiohttp routes table."""

    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT_SECONDS,
            timeout=CLOSE_HANDSHAKE_SECONDS,
            max_msg_size=worker.settings.signaling_max_bytes * HARD_FRAME_FACTOR,
            compress=False,  # see COMPRESSION
        )
        await ws.prepare(request)
        conn = Connection(ws, worker.signaling_errors)
        try:
            await Session(worker, authorize, conn).run()
        finally:
            await conn.finish()
        return ws

    return handle
