"""The app's files: the page with its policy, the service worker with its shell written in,
the manifest, nothing outside the app's folder."""

from __future__ import annotations

import json
import re

from control.mobile import pages

from .helpers import Clinic


async def test_the_app_page_and_its_worker(clinic: Clinic):
    c = clinic.client
    resp = await c.get("/staff", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/staff/"
    page = await c.get("/staff/")
    assert page.status == 200 and "Televisit staff" in await page.text()
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    worker = await c.get("/staff/sw.js")
    text = await worker.text()
    assert worker.content_type == "text/javascript" and "__VERSION__" not in text
    urls, version = pages.shell()
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", text).group(1))
    assert shell == urls and f'const VERSION = "{version}"' in text
    # Every file of the shell is served (the worker's install would fail otherwise).
    for url in shell:
        resp = await c.get(url)
        assert resp.status == 200, url
    assert "/static/visit/js/i18n.js" in shell and "/staff/js/app.js" in shell
    manifest = await c.get("/staff/manifest.webmanifest")
    assert manifest.content_type == "application/manifest+json"
    body = json.loads(await manifest.text())
    assert body["scope"] == "/staff/" and {i["sizes"] for i in body["icons"]} == {
        "192x192",
        "512x512",
    }


async def test_nothing_else_is_served(clinic: Clinic):
    for path in ("/staff/../app.py", "/staff/%2e%2e/mobile/api.py", "/staff/nope.js",
                 "/staff/js/../../../../etc/passwd", "/staff/sw.js.map"):  # fmt: skip
        resp = await clinic.client.get(path)
        assert resp.status == 404, path
