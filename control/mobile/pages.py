"""The staff mobile app under ``/staff/``: static files from control/web/staff/, no build step.

``/staff/`` is the app, ``/staff/sw.js`` its service worker (scope ``/staff/``), and the
manifest, scripts, styles, strings and icons it loads sit beside it. The worker caches those
files and the modules the app shares with the other pages (the shell) under a name derived
from their contents, computed once at start and written into sw.js as it is served: a release
that changes any of them changes the worker's bytes, so browsers install the new worker,
which drops the old cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from aiohttp import web

from control.problems import not_found

WEB = Path(__file__).resolve().parent.parent / "web"
WEB_DIR = WEB / "staff"
# What the app shares with the other pages (strings and formatting, the element builder, the
# palette).
SHARED = {
    "/static/visit/js/i18n.js": WEB / "visit" / "js" / "i18n.js",
    "/static/visit/palette.css": WEB / "visit" / "palette.css",
    "/clinic/static/dom.js": WEB / "clinic" / "dom.js",
}
PREFIX = "/staff/"
WORKER = "sw.js"
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
}
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
CSP = "; ".join(
    [
        "default-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)


@functools.cache
def shell() -> tuple[list[str], str]:
    """(the URLs the worker caches, a version naming their contents)."""
    digest = hashlib.sha256()
    urls = [PREFIX]
    for path in sorted(WEB_DIR.rglob("*")):
        name = path.relative_to(WEB_DIR).as_posix()
        if path.suffix not in TYPES or name == WORKER:
            continue
        digest.update(name.encode() + b"\0" + path.read_bytes())
        if name != "index.html":  # served as /staff/
            urls.append(PREFIX + name)
    for url, path in SHARED.items():
        digest.update(url.encode() + b"\0" + path.read_bytes())
        urls.append(url)
    return urls, digest.hexdigest()[:16]


async def app_page(request: web.Request) -> web.FileResponse:
    headers = {
        **HEADERS,
        "Content-Type": "text/html",
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    }
    return web.FileResponse(WEB_DIR / "index.html", headers=headers)


async def service_worker(request: web.Request) -> web.Response:
    urls, version = shell()
    text = (WEB_DIR / WORKER).read_text(encoding="utf-8")
    text = text.replace("__VERSION__", version).replace('"__SHELL__"', json.dumps(urls))
    return web.Response(text=text, content_type="text/javascript", headers=HEADERS)


async def static_file(request: web.Request) -> web.FileResponse:
    path = (WEB_DIR / request.match_info["path"]).resolve()
    kind = TYPES.get(path.suffix)
    if kind is None or not path.is_relative_to(WEB_DIR) or not path.is_file():
        raise not_found("file")
    return web.FileResponse(path, headers={**HEADERS, "Content-Type": kind})


async def app_root(request: web.Request) -> web.Response:
    raise web.HTTPFound(PREFIX)


def add_pages(router: web.UrlDispatcher) -> None:
    """The app, its service worker and its files."""
    router.add_get("/staff", app_root)
    router.add_get(PREFIX, app_page)
    router.add_get(PREFIX + WORKER, service_worker)
    router.add_get(PREFIX + "{path:.+}", static_file)
