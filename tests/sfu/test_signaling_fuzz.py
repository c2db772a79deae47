"""Fuzzing the signaling parser: whatever a frame holds, ``parse`` returns a message of a
documented type or raises ProtocolError with a documented code, and on a live socket every
frame before `join` gets an `error` that is counted (issue 12 item 7: ``"[" * 50000`` raised
RecursionError, was logged as "unhandled error" and closed the socket with 1000).

A short hypothesis run is part of the suite; for a long run by hand:
``FUZZ_EXAMPLES=1000000 .venv/bin/python -m pytest tests/sfu/test_signaling_fuzz.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from media_server.signaling import MESSAGES, ProtocolError, parse
from tests.fuzzing import fuzz_settings

from .harness import Sfu

MAX = 65536
DOC = Path(__file__).resolve().parents[2] / "docs" / "signaling.md"
FIELDS = sorted({name for fields in MESSAGES.values() for name in fields})


def documented_codes() -> set[str]:
    section = DOC.read_text().split("## Errors (`error.code`)", 1)[1].split("##", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", section))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(MESSAGES)) | st.text(max_size=10)},
    optional={name: json_values for name in FIELDS},
).map(json.dumps)


def nested(depth: int, opener: str) -> str:
    closer = {"[": "]", "{": "}"}[opener]
    inner = '{"a":' * depth if opener == "{" else "[" * depth
    return inner + "1" + closer * depth


frames = st.one_of(
    st.text(max_size=300),
    messages,
    # Deep nesting: under and over the decoder's recursion limit, closed or not.
    st.builds(nested, st.integers(1, 30_000), st.sampled_from("[{")),
    st.builds(lambda n, c: c * n, st.integers(1, 60_000), st.sampled_from("[{")),
    # Numbers past Python's int-digit limit, inside a valid-looking message.
    st.builds(lambda n: '{"type":"ping","id":' + "9" * n + "}", st.integers(1, 10_000)),
    # Valid messages cut short or with bytes spliced in.
    st.tuples(messages, st.integers(0, 200), st.text(max_size=5)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
    ),
)


@fuzz_settings(400)
@given(frames)
@example("[" * 50000)
@example('{"type":"join","token":"x","client":' + "[" * 20000 + "]" * 20000 + "}")
@example('{"type":"ping","id":' + "1" * 6000 + "}")
def test_parse_answers_every_frame_with_a_message_or_a_documented_error(frame: str) -> None:
    try:
        message = parse(frame, MAX)
    except ProtocolError as exc:
        assert exc.code in documented_codes(), exc.code
        assert exc.as_error()["message"]
        return
    fields = MESSAGES[message["type"]]
    for name, (accepted, required) in fields.items():
        assert name in message or not required
        if name in message:
            assert isinstance(message[name], accepted) and not isinstance(message[name], bool)


async def test_deep_nesting_before_join_gets_a_counted_error_and_the_socket_stays(
    sfu: Sfu,
) -> None:
    client = await sfu.client("never-joins")
    for frame in ("[" * 50000, '{"type":"ping","id":' + "1" * 6000 + "}"):
        await client.send_raw(frame)
    await client.send({"type": "ping", "id": "after"})
    await client.wait_for(lambda: client.last("pong"), 30, "pong after the bad frames")
    assert [e["code"] for e in client.of_type("error")] == ["bad_json", "bad_json"]
    assert sfu.worker.signaling_errors["bad_json"] == 2
    assert client.closed is None
