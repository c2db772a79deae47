"""Cluster fixtures: one host running `televisit serve` with two SFU worker processes on the
embedded SQLite store (``host``); browser fixtures come from tests/web."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.web.conftest import browser, playwright_driver, screenshots, serving  # noqa: F401 - fixtures

from .nodes import Node


def two_worker_host(tmp_path_factory: pytest.TempPathFactory, **settings: str) -> Iterator[Node]:
    """A node with two SFU workers (``settings``: more TELEVISIT__ variables)."""
    node = Node(
        tmp_path_factory.mktemp("host"), free_port(), name="host",
        extra={"TELEVISIT__MEDIA__WORKERS": "2", **settings},
    )  # fmt: skip
    yield from serving(node, "en")  # type: ignore[misc]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from two_worker_host(tmp_path_factory)
