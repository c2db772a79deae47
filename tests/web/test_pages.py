"""The visit page as the server hands it out (no browser): its three paths, headers that keep
the link's token private, and every file the page and its modules load."""

from __future__ import annotations

import logging
import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import load_settings
from control.app import create_app
from control.store.factory import open_store
from control.web.pages import STATIC_PREFIX, WEB_DIR
from tests.conftest import register_standin_sfu

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJyIjoiYXAtMSJ9.c2lnbmF0dXJl"


@pytest.fixture
async def client(tmp_path):
    settings = load_settings(
        environ={},
        overrides={"server": {"data_dir": str(tmp_path), "public_url": "https://tv.example"}},
    )
    store = open_store(settings)
    await store.open()
    await register_standin_sfu(store)  # at wss://tv.example/ws
    client = TestClient(TestServer(create_app(settings, store, background=False)))
    await client.start_server()
    yield client
    await client.close()
    await store.close()


@pytest.mark.parametrize("path", [f"/j/{TOKEN}", f"/h/{TOKEN}", "/pin"])
async def test_page_paths_serve_the_visit_page_privately(client, path):
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert 'src="/static/visit/js/app.js"' in await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    # The page may talk to its own server and the SFU workers' hosts, nowhere else.
    assert "connect-src 'self' wss://tv.example:*;" in csp
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp


async def test_token_is_masked_in_the_access_log(client, caplog):
    with caplog.at_level(logging.INFO, logger="televisit.access"):
        assert (await client.get(f"/j/{TOKEN}")).status == 200
    paths = [r.path for r in caplog.records if getattr(r, "path", None)]
    assert paths == ["/j/***"]
    assert TOKEN not in caplog.text


async def test_unknown_paths_stay_problems(client):
    for path in [
        "/j/",
        "/h/a/b",
        f"{STATIC_PREFIX}/nope.js",
        f"{STATIC_PREFIX}/visit.html",
        f"{STATIC_PREFIX}/js/",
        f"{STATIC_PREFIX}/%2e%2e/pages.py",
        f"{STATIC_PREFIX}/js/%2e%2e/%2e%2e/__init__.py",
    ]:
        resp = await client.get(path)
        assert resp.status == 404, path
        assert resp.content_type == "application/problem+json"


async def test_every_file_the_page_loads_is_served(client):
    html = (WEB_DIR / "visit.html").read_text()
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert len(assets) == 2  # the stylesheet and the entry module
    scripts = sorted((WEB_DIR / "js").glob("*.js"))
    for script in scripts:
        # Every relative import of every module names a module that exists.
        for name in re.findall(r'from "\./([\w.]+)"', script.read_text()):
            assert (WEB_DIR / "js" / name).is_file(), f"{script.name} imports {name}"
        assets.append(f"{STATIC_PREFIX}/js/{script.name}")
    assets += [f"{STATIC_PREFIX}/i18n/{lang}.json" for lang in ("en", "fi", "sv")]
    types = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
    for asset in assets:
        resp = await client.get(asset)
        assert resp.status == 200, asset
        suffix = asset[asset.rindex(".") :]
        assert resp.content_type == types[suffix], asset
