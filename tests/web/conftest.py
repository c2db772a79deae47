"""Browser test fixtures: one `televisit serve` child process for the module (SQLite in a tmp
dir, media on 127.0.0.1), Debian's Chromium driven by Playwright, and a screenshots folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

from .server import LiveServer

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Playwright adds its own --disable-features; Chromium keeps only the last one, so this one
# list carries everything (see shared notes: testing-webrtc-here.md).
BASE_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints",
]
# Answers the camera/microphone prompt with "allow"; left out to see a refusal.
ALLOW_MEDIA = "--use-fake-ui-for-media-stream"


def require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (make system-deps)")


def serve(
    tmp_path_factory: pytest.TempPathFactory, settings: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    """A started server with a Finnish department, stopped afterwards (for module fixtures)."""
    yield from serving(
        LiveServer(tmp_path_factory.mktemp("televisit"), free_port(), settings=settings)
    )


def serving(server: LiveServer, language: str = "fi") -> Iterator[LiveServer]:
    """Start ``server`` with a department of ``language``; stop it afterwards."""
    server.start()
    try:
        server.make_department(language)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serve(tmp_path_factory)


@pytest.fixture(scope="module")
def playwright_driver():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_driver):
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*BASE_FLAGS, ALLOW_MEDIA]
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_without_media_permission(playwright_driver):
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=BASE_FLAGS
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_without_devices(playwright_driver):
    """Media allowed, but no fake camera or microphone: this machine has none."""
    flags = [f for f in BASE_FLAGS if f != "--use-fake-device-for-media-stream"]
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*flags, ALLOW_MEDIA]
    )
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SCREENSHOTS}")
    return SCREENSHOTS
