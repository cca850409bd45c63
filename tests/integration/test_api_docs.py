"""The API docs at /schema work offline: the UI's files come from the package, the page has
no inline script, the OpenAPI declares the bearer key, and the ingest event is described
field by field from the msgspec struct."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sluice.api.event_schema import FIELD_DOCS
from sluice.domain.events import Event
from tests.integration.reads_support import client, serve


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(str(found[name]))
        if tag == "script":
            self._in_script = True
            if not found.get("src"):
                self.inline_scripts.append("<script> without src")
        if any(name.startswith("on") for name in found):
            self.inline_scripts.append(f"event handler attribute on <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data.strip()[:80])


@pytest.fixture
def docs(fresh_db_url: str) -> Iterator[TestClient[Litestar]]:
    with client(fresh_db_url) as c:
        yield c


def test_docs_page_loads_everything_from_the_server_and_has_no_inline_script(
        docs: TestClient[Litestar]) -> None:
    r = docs.get("/schema")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = _Page()
    page.feed(r.text)
    assert not page.inline_scripts, page.inline_scripts
    assert page.urls, r.text
    for url in page.urls:
        assert url.startswith("/") and not url.startswith("//"), url  # same origin only
        asset = docs.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
    scripts = [u for u in page.urls if u.endswith(".js")]
    assert any("swagger-ui-bundle.js" in u for u in scripts)
    start_up = docs.get(scripts[-1]).text
    assert "SwaggerUIBundle(" in start_up and "validatorUrl: null" in start_up
    assert "http://" not in start_up and "https://" not in start_up


def test_openapi_declares_bearer_auth(docs: TestClient[Litestar]) -> None:
    spec = docs.get("/schema/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearer": []}]  # every operation, unless it says otherwise
    assert spec["paths"]["/healthz"]["get"]["security"] == [{}]
    assert spec["paths"]["/readyz"]["get"]["security"] == [{}]
    assert "security" not in spec["paths"]["/api/jobs"]["get"]
    assert "security" not in spec["paths"]["/api/ingest"]["post"]


def test_ingest_event_fields_come_from_the_struct(docs: TestClient[Litestar]) -> None:
    spec = docs.get("/schema/openapi.json").json()
    body = spec["paths"]["/api/ingest"]["post"]["requestBody"]["content"]
    for media in ("application/json", "application/msgpack"):
        event = body[media]["schema"]["properties"]["events"]["items"]
        assert set(event["properties"]) == set(Event.__struct_fields__)
        assert event["required"] == ["kind", "timestamp"]
        missing = [n for n, p in event["properties"].items() if not p.get("description")]
        assert not missing, missing
    props = event["properties"]
    assert props["retries"]["type"] == ["integer", "null"]
    assert props["loadavg"]["type"] == ["array", "null"]
    assert props["loadavg"]["items"] == {"type": "number"}
    assert props["extensions"]["type"] == "object"
    assert "job.sent" in props["kind"]["enum"] and not any(
        k.startswith("command.") for k in props["kind"]["enum"])
    assert set(FIELD_DOCS) == set(Event.__struct_fields__)  # no description of a gone field


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which(
        "google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine")
def test_docs_render_in_a_browser_with_no_internet(fresh_db_url: str) -> None:
    """Chromium with every host but 127.0.0.1 unresolvable: the UI still renders each
    operation and the Authorize button."""
    with serve(fresh_db_url) as base:
        dom = subprocess.run(
            [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--virtual-time-budget=15000", "--dump-dom", f"{base}/schema"],
            capture_output=True, text=True, timeout=120).stdout
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {"/api/ingest", "/api/jobs", "/api/workers", "/healthz"} <= paths, dom[-2000:]
    assert "Authorize" in dom
