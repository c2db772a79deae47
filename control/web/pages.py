"""The visit page for clients and staff: /j/<token> (client link), /v/<code> (the client's
short link from SMS and email), /h/<token> (the clinic's "open telemedicine view"), /pin
(join with the SMS code), and its static files.

One HTML page serves them all; its script reads the path, asks POST /api/v1/join and shows
the matching view. The token or code sits in the URL, so every page answer forbids caching and
referrers, and the access log masks the ``token`` and ``code`` route parameters
(control/logs.py).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from control.cluster.registry import Registry
from control.problems import not_found
from control.services import services

WEB_DIR = Path(__file__).resolve().parent / "visit"
PAGE = WEB_DIR / "visit.html"
STATIC_PREFIX = "/static/visit"
# The client sees its link's token in the page path, never in a query string.
PAGE_PATHS = ("/j/{token}", "/v/{code}", "/h/{token}", "/pin")
# What the page loads; nothing else under WEB_DIR is served.
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}


def signaling_source(url: str) -> str:
    """The CSP source of a worker's signaling URL: its scheme and host, any port (a worker
    restarted on another port, or another worker of the host, stays reachable)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:*"


def page_headers(signaling: list[str]) -> dict[str, str]:
    """Headers of the page: no caching, no referrer (the URL holds a credential), and a
    policy that lets the page talk only to this server and the SFU workers' signaling
    sockets (``signaling``: their URLs)."""
    sources = " ".join(sorted({signaling_source(url) for url in signaling}))
    csp = "; ".join(
        [
            "default-src 'self'",
            f"connect-src 'self' {sources}".rstrip(),
            "img-src 'self' data:",
            "media-src 'self' blob: mediastream:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ]
    )
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": csp,
        "Permissions-Policy": "camera=(self), microphone=(self), display-capture=()",
    }


async def visit_page(request: web.Request) -> web.FileResponse:
    svc = services(request)
    workers = await Registry(svc.store, clock=svc.clock).live()
    return web.FileResponse(PAGE, headers=page_headers([w.url for w in workers]))


async def static_file(request: web.Request) -> web.FileResponse:
    """A script, the stylesheet or a language file (revalidated on each load, so a new
    release is picked up at once)."""
    path = (WEB_DIR / request.match_info["path"]).resolve()
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or not path.is_relative_to(WEB_DIR) or not path.is_file():
        raise not_found("file")
    headers = {
        "Content-Type": kind,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    return web.FileResponse(path, headers=headers)


def add_pages(router: web.UrlDispatcher) -> None:
    """The visit page at its paths, and its scripts, styles and strings."""
    for path in PAGE_PATHS:
        router.add_get(path, visit_page)
    router.add_get(STATIC_PREFIX + "/{path:.+}", static_file)
