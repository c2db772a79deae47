"""The virtual clinic's dashboard pages: static files from control/web/clinic/."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "clinic"
PAGES = {
    "/clinic/": "index.html",
    "/clinic/provider": "provider.html",
    "/clinic/requester": "requester.html",
    "/clinic/admin": "admin.html",
    "/clinic/profile": "profile.html",
}
STATIC_PREFIX = "/clinic/static"


async def page(request: web.Request) -> web.FileResponse:
    name = PAGES[request.match_info.route.resource.canonical]  # type: ignore[union-attr]
    resp = web.FileResponse(WEB_DIR / name)
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def clinic_root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/clinic/")


def add_pages(router: web.UrlDispatcher) -> None:
    """Dashboard pages and their scripts and styles."""
    router.add_get("/clinic", clinic_root)
    for path in PAGES:
        router.add_get(path, page)
    router.add_static(STATIC_PREFIX, WEB_DIR, append_version=False)
