"""Argument checks and the JSON form both backends store, so they accept and return the same.

Kinds and ids are non-empty strings without NUL: the Redis backend joins them with NUL into
one zset member, which makes Redis' byte order of members equal (kind, id) order in SQLite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from control.store.base import Record


@dataclass(frozen=True, slots=True)
class Write:
    """A validated write, already encoded: nothing is stored unless all of this succeeded."""

    kind: str
    id: str
    data: str
    claims: tuple[str, ...]
    indexes: dict[str, float]
    sequenced: str | None = None

    def numbered(self, number: int) -> Write:
        """This write with its ``sequenced`` index scored by the number the sequence gave."""
        assert self.sequenced is not None
        return replace(self, indexes={**self.indexes, self.sequenced: float(number)})

    @property
    def claims_json(self) -> str:
        return json.dumps(list(self.claims), ensure_ascii=False)

    @property
    def indexes_json(self) -> str:
        return json.dumps(self.indexes, ensure_ascii=False)


def _name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL: {value!r}")
    return value


def check_sequence(name: str) -> str:
    return _name("sequence name", name)


def check_key(kind: str, id: str) -> None:
    _name("kind", kind)
    _name("id", id)


def check_version(expect_version: object) -> int:
    if not isinstance(expect_version, int) or isinstance(expect_version, bool):
        raise TypeError(f"expect_version must be an int, got {expect_version!r}")
    return expect_version


def check_page(limit: int, offset: int) -> None:
    for what, value in (("limit", limit), ("offset", offset)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{what} must be an int >= 0, got {value!r}")


def check_bounds(lo: float, hi: float) -> tuple[float, float]:
    for what, value in (("lo", lo), ("hi", hi)):
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            raise ValueError(f"{what} must be a number, got {value!r}")
    return float(lo), float(hi)


def prepare(
    kind: str,
    id: str,
    data: dict[str, Any],
    claims: Sequence[str],
    indexes: Mapping[str, float] | None,
    sequenced: str | None = None,
) -> Write:
    check_key(kind, id)
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict (a JSON object), got {type(data).__name__}")
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{kind} {id}: data is not JSON-serializable: {exc}") from exc
    if isinstance(claims, str):
        raise TypeError("claims must be a sequence of strings, not one string")
    wanted = tuple(dict.fromkeys(_name("claim", c) for c in claims))
    scores: dict[str, float] = {}
    for name, score in (indexes or {}).items():
        _name("index name", name)
        if (
            not isinstance(score, int | float)
            or isinstance(score, bool)
            or not math.isfinite(score)
        ):
            raise ValueError(f"index {name!r}: score must be a finite number, got {score!r}")
        scores[name] = float(score)
    if sequenced is not None:
        check_sequence(sequenced)
        if sequenced in scores:
            raise ValueError(f"index {sequenced!r} is scored by its sequence; do not score it too")
    return Write(kind, id, text, wanted, scores, sequenced)


def decode(kind: str, id: str, data: str, version: int, claims: str, indexes: str) -> Record:
    return Record(
        kind=kind,
        id=id,
        data=json.loads(data),
        version=int(version),
        claims=tuple(json.loads(claims)),
        # Scores are floats whichever way the backend wrote them (Redis' Lua writes integers).
        indexes={name: float(score) for name, score in json.loads(indexes).items()},
    )
