"""Chat relay: what a chat message may contain and how the server stamps it.

Text only: the server relays the sender's text unchanged apart from dropping control
characters; clients must render it as text (never as HTML). The size limit is on the UTF-8
encoding of the text, so it holds for every script.
"""

from __future__ import annotations

import json
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any

# Newlines and tabs are the only control characters a chat line keeps.
_KEEP = {"\n", "\t"}


class ChatError(Exception):
    """A chat message the room refuses; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def as_error(self, ref: str | None = "chat") -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": str(self), "ref": ref}


def parse_channel_message(raw: str | bytes) -> Any:
    """The ``text`` of one data-channel message ``{"text": "..."}``."""
    if isinstance(raw, bytes):
        raise ChatError("chat_not_text", "chat messages are JSON text, not binary")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ChatError("chat_malformed", 'a chat message is a JSON object {"text": ...}') from exc
    if not isinstance(data, dict):
        raise ChatError("chat_malformed", 'a chat message is a JSON object {"text": ...}')
    return data.get("text")


def clean_text(text: Any, max_bytes: int) -> str:
    if not isinstance(text, str):
        raise ChatError("chat_malformed", "field 'text' must be a string")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ChatError("chat_too_long", f"chat text is {size} bytes; at most {max_bytes} allowed")
    cleaned = "".join(
        c for c in text if c in _KEEP or unicodedata.category(c) not in ("Cc", "Cs")
    ).strip()
    if not cleaned:
        raise ChatError("chat_empty", "chat text is empty")
    return cleaned


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(name: str, role: str, text: Any, max_bytes: int) -> dict[str, Any]:
    """The relayed message: server id and time, sender name and role from the join grant."""
    return {
        "type": "chat",
        "id": "msg_" + secrets.token_hex(8),
        "from": {"name": name, "role": role},
        "text": clean_text(text, max_bytes),
        "ts": now_iso(),
    }
