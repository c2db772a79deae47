"""Page helpers of the browser tests: strings of the page, a page with its console echoed,
bounded polling of a value inside the page."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from control.web.pages import WEB_DIR

TIMEOUT_MS = 30_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def strings(lang: str) -> dict[str, str]:
    return json.loads((WEB_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def open_page(
    browser,
    url: str,
    *,
    viewport=DESKTOP,
    locale="en-GB",
    permissions=(),
    label="",
    timezone_id: str | None = None,
):
    """A new context and page; console errors and page errors are printed with ``label``.
    ``timezone_id``: the browser's own time zone (default: the machine's)."""
    context = browser.new_context(
        viewport=viewport,
        locale=locale,
        permissions=list(permissions),
        timezone_id=timezone_id,
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda e: print(f"[{label}] page error: {e}"))
    page.on(
        "console",
        lambda m: (
            print(f"[{label}] console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.goto(url)
    return page


def poll(
    read: Callable[[], Any], ok: Callable[[Any], bool], what: str, seconds: float = 30.0
) -> Any:
    """Read until ``ok(value)``, at most ``seconds``; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + seconds
    value = read()
    while not ok(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(0.25)
        value = read()
    return value


# Sums of the page's inbound video: frames decoded, bytes, the largest frame width.
INBOUND_VIDEO = """async () => {
  const pc = window.televisit?.session?.pc;
  if (!pc) return null;
  const out = {framesDecoded: 0, bytesReceived: 0, frameWidth: 0, frameHeight: 0};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.framesDecoded += s.framesDecoded || 0;
      out.bytesReceived += s.bytesReceived || 0;
      out.frameWidth = Math.max(out.frameWidth, s.frameWidth || 0);
      out.frameHeight = Math.max(out.frameHeight, s.frameHeight || 0);
    }
  });
  return out;
}"""


def inbound_video(page) -> dict[str, int] | None:
    return page.evaluate(INBOUND_VIDEO)


def assert_decoding(page, label: str) -> dict[str, int]:
    """The page decodes remote video: frames grow, a frame size is known."""
    first = poll(
        lambda: inbound_video(page),
        lambda v: bool(v) and v["framesDecoded"] > 0 and v["frameWidth"] > 0,
        f"{label} to decode video",
    )
    later = poll(
        lambda: inbound_video(page),
        lambda v: bool(v) and v["framesDecoded"] >= first["framesDecoded"] + 20,
        f"{label}'s decoded frames to grow",
    )
    return later
