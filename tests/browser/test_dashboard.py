"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real
`sluice serve`: sign in and out, live updates without reload, facets and field:value search,
links that reproduce a view, a failed task's traceback, a lost worker, a server restart
with no gap, commands when the server has them, and screenshots of every page in light and
dark at laptop and phone widths with no Content-Security-Policy violation."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sluice.service import ingest
from sluice.store import partitions, sessions
from tests.browser.conftest import artifacts_dir
from tests.browser.support import (
    Server,
    Tenant,
    chain,
    failed_with_traceback,
    heartbeat,
    new_id,
    shop_jobs,
)
from tests.conftest import new_database
from tests.integration.reads_support import job

pytestmark = [pytest.mark.slow,
              pytest.mark.parametrize("pg_server", ["embedded"], indirect=True)]

FAILED_ID = "failed-with-traceback-1042"
CHAIN_ROOT = "chain-root-7"


class Site:
    def __init__(self, url: str, server: Server, tenant: Tenant) -> None:
        self.url, self.server, self.tenant = url, server, tenant
        self.base = server.base


@pytest.fixture(scope="module")
def site(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with new_database(pg_server) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            partitions.ensure_window(conn)
        server = Server(url, tmp_path_factory.mktemp("serve") / "serve.log")
        server.start()
        try:
            tenant = Tenant(url, server.base)
            now = time.time()
            tenant.send(shop_jobs(now) + failed_with_traceback(now, FAILED_ID)
                        + chain(now, CHAIN_ROOT)
                        + [heartbeat("shop1@host", now, "worker.online", freq=60.0),
                           heartbeat("shop2@host", now, "worker.online", freq=60.0)])
            yield Site(url, server, tenant)
        finally:
            server.stop()


def sign_in(context: Any, site: Site, path: str = "/") -> Any:
    page = context.new_page()
    page.goto(site.base + path)
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#key", site.tenant.key)
    page.click("#login-form button")
    page.wait_for_url(site.base + path)
    page.wait_for_selector("#live[data-state='live']", timeout=10_000)
    return page


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any, site: Site) -> Any:
    return sign_in(context, site)


def row_keys(page: Any) -> list[str]:
    return page.eval_on_selector_all("#jobs tbody tr[data-key]", "rs => rs.map(r => r.dataset.key)")


def test_sign_in_and_out(context: Any, site: Site) -> None:
    page = sign_in(context, site, "/jobs?state=failed")  # lands where it was asked for
    cookie = next(c for c in context.cookies() if c["name"] == "sluice_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage, sessionStorage))")
    assert "sk_live" not in stored and site.tenant.key not in page.content()
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(site.base + "/workers")
    page.wait_for_url(re.compile(r"/login\?next=%2Fworkers"))


def test_one_time_link_asks_then_signs_in_once(context: Any, site: Site) -> None:
    with psycopg.connect(site.url, autocommit=True) as conn:
        key_id = conn.execute("SELECT id FROM api_keys WHERE connection_id = %s",
                              (site.tenant.connection_id,)).fetchone()[0]
        token = sessions.create_login_token(conn, key_id)
    page = context.new_page()
    page.goto(f"{site.base}/login#token={token}")
    assert "#" not in page.url  # the token leaves the address bar (and history) at once
    assert page.url.endswith("/login")
    page.click("#use-link")  # nothing happens without this click
    page.wait_for_url(site.base + "/")
    page.wait_for_selector("#live[data-state='live']")
    other = context.browser.new_context().new_page()
    other.goto(f"{site.base}/login#token={token}")
    other.click("#use-link")
    other.wait_for_selector("#login-error:has-text('used or expired')")
    other.context.close()


def test_new_task_appears_within_a_second_and_overview_changes(context: Any, site: Site
                                                               ) -> None:
    page = sign_in(context, site, "/jobs")
    job_id = new_id("live")
    started = time.monotonic()
    site.tenant.send(job(job_id, time.time(), name="shop.tasks.live_one", queue="default"))
    page.wait_for_selector(f"#jobs tbody tr[data-key='{job_id}']", timeout=5000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the new task showed after {elapsed:.2f} s"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload

    page.goto(site.base + "/")
    page.wait_for_selector("[data-figure='completed']")
    before = page.inner_text("[data-figure='completed']")
    site.tenant.send([e for i in range(3)
                      for e in job(new_id("more"), time.time(), name="shop.tasks.add")])
    page.wait_for_function(
        "before => document.querySelector(\"[data-figure='completed']\").textContent !== before",
        arg=before, timeout=5000)
    after = int(page.inner_text("[data-figure='completed']").replace(",", ""))
    assert after == int(before.replace(",", "")) + 3


def test_facets_and_field_search(page: Any, site: Site) -> None:
    page.click("nav a[data-nav='jobs']")
    page.wait_for_selector("#jobs tbody tr[data-key]")
    page.click(".facet[data-state='failed']")
    page.wait_for_url(re.compile(r"/jobs\?state=failed$"))
    page.wait_for_function("() => [...document.querySelectorAll('#jobs tbody tr[data-key]')]"
                           ".every(r => r.dataset.state === 'failed')")
    failed = site.tenant.get("/api/jobs?state=failed&limit=500")["items"]
    page.wait_for_function(f"() => document.querySelectorAll('#jobs tbody tr[data-key]').length"
                           f" === {len(failed)}")
    page.fill("#search input[type=search]", "state:failed queue:emails")
    page.press("#search input[type=search]", "Enter")
    page.wait_for_url(re.compile(r"/jobs\?state=failed&queue=emails$"))
    expected = [j["id"] for j in site.tenant.get(
        "/api/jobs?state=failed&queue=emails&limit=500")["items"]]
    assert len(expected) == 4
    page.wait_for_function(f"() => document.querySelectorAll('#jobs tbody tr[data-key]').length"
                           f" === {len(expected)}")
    assert row_keys(page) == expected
    assert page.get_attribute(".facet[data-state='failed']", "aria-pressed") == "true"


def test_link_reproduces_the_view(context: Any, page: Any, site: Site) -> None:
    page.goto(site.base + "/jobs")
    page.fill("#search input[type=search]", "name:charge_card")
    page.press("#search input[type=search]", "Enter")
    page.wait_for_url(re.compile(r"name=charge_card"))
    expected = [j["id"] for j in site.tenant.get("/api/jobs?name=charge_card&limit=500")["items"]]
    assert len(expected) == 3
    shown = ("() => document.querySelectorAll('#jobs tbody tr[data-key]').length"
             f" === {len(expected)}")
    page.wait_for_function(shown)
    rows = row_keys(page)
    assert rows == expected
    other = context.new_page()
    other.goto(page.url)
    other.wait_for_function(shown)
    assert row_keys(other) == rows
    assert other.input_value("#search input[type=search]") == "name:charge_card"


def test_failed_task_traceback(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/jobs?state=failed&queue=emails")
    page.click(f"#jobs tbody tr[data-key='{FAILED_ID}'] a[href='/jobs/{FAILED_ID}']")
    page.wait_for_url(f"{site.base}/jobs/{FAILED_ID}")
    page.wait_for_selector("#traceback")
    failing = page.eval_on_selector_all("#traceback .line.failing",
                                        "ls => ls.map(l => l.textContent)")
    assert failing == ['  File "/app/shop/tasks.py", line 42, in charge_card',
                       "    raise PaymentDeclined(order_id)",
                       "shop.errors.PaymentDeclined: order 1042 declined"]
    timeline = page.inner_text("#timeline")
    assert "failed" in timeline and "started" in timeline.lower()


def test_workflow_tree_links(page: Any, site: Site) -> None:
    last = site.tenant.get("/api/jobs?name=shop.tasks.store&limit=1")["items"][0]["id"]
    page.goto(f"{site.base}/jobs/{last}")
    page.wait_for_selector("ul.tree")
    names = page.eval_on_selector_all("ul.tree a", "as => as.map(a => a.textContent)")
    assert names == ["shop.tasks.fetch", "shop.tasks.parse", "shop.tasks.store"]
    assert page.inner_text("ul.tree li.here > a") == "shop.tasks.store"
    page.click("dl.kv a:has-text('shop.tasks.fetch')")  # the root
    page.wait_for_url(f"{site.base}/jobs/{CHAIN_ROOT}")


def test_killed_worker_shows_lost(page: Any, site: Site) -> None:
    now = time.time()
    site.tenant.send([heartbeat("doomed@host", now, "worker.online"),
                      heartbeat("doomed@host", now + 0.5)])
    page.goto(site.base + "/workers")
    row = "#workers tbody tr[data-key='doomed@host']"
    page.wait_for_selector(f"{row}[data-status='online']")
    # no more heartbeats (as after SIGKILL): lost once Celery's expiry window has passed
    page.wait_for_selector(f"{row}[data-status='lost']", timeout=15_000)
    assert "lost" in (page.get_attribute(row, "class") or "")
    page.goto(site.base + "/workers/doomed@host")
    page.wait_for_selector("#status .badge.lost")


def test_reconnects_across_a_server_restart_without_a_gap(page: Any, site: Site) -> None:
    page.goto(site.base + "/jobs")
    page.wait_for_selector("#live[data-state='live']")
    page.evaluate("""() => { window.__seen = [];
        const live = window.sluiceLive, pass = live.onBatch;
        live.onBatch = (b) => { b.forEach(e => window.__seen.push(e.job_id)); pass(b); }; }""")
    site.server.stop()
    page.wait_for_selector("#live[data-state='reconnecting']", timeout=10_000)
    down = [new_id("while-down") for _ in range(3)]
    with psycopg.connect(site.url, autocommit=True) as conn:  # stored while no server runs
        for job_id in down:
            ingest.append(conn, site.tenant.connection_id,
                          job(job_id, time.time(), name="shop.tasks.during_restart"))
    site.server.start()
    page.wait_for_selector("#live[data-state='live']", timeout=30_000)
    for job_id in down:
        page.wait_for_selector(f"#jobs tbody tr[data-key='{job_id}']", timeout=10_000)
    # the stream itself delivers them (resumed from Last-Event-ID), not only the refetch
    page.wait_for_function("ids => ids.every(id => window.__seen.includes(id))", arg=down,
                           timeout=10_000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    after = new_id("after-restart")
    site.tenant.send(job(after, time.time(), name="shop.tasks.after_restart"))
    page.wait_for_selector(f"#jobs tbody tr[data-key='{after}']", timeout=5000)


def _commands_offered(site: Site) -> bool:
    r = httpx.post(site.base + "/api/jobs/actions",
                   json={"action": "revoke", "ids": [], "dry_run": True},
                   headers={"Authorization": f"Bearer {site.tenant.key}"})
    return r.status_code not in (404, 405)


def test_retry_and_bulk_revoke_when_the_server_has_commands(page: Any, site: Site) -> None:
    if not _commands_offered(site):
        pytest.skip("this server has no command endpoints yet (POST /api/jobs/actions, "
                    "POST /api/jobs/{id}/retry: issue 16); the dashboard hides their controls")
    page.goto(f"{site.base}/jobs/{FAILED_ID}")
    page.click("button[data-action='retry']")
    page.click("#confirm-ok")
    page.wait_for_selector("#action-result:has-text('command')")
    page.goto(f"{site.base}/jobs?state=scheduled")
    page.wait_for_selector("#jobs tbody tr[data-key]")
    count = len(row_keys(page))
    page.check("#select-page")
    page.click("button[data-bulk='revoke']")
    page.wait_for_selector("#confirm[open]")
    assert f"Revoke {count} task(s)?" in page.inner_text("#confirm-text")
    page.click("#confirm-ok")
    page.wait_for_selector("#bulk-result:has-text('Requested')")
    page.goto(site.base + "/commands")
    page.wait_for_selector("#commands tbody tr[data-key]")


def test_without_commands_the_controls_are_hidden(page: Any, site: Site) -> None:
    if _commands_offered(site):
        pytest.skip("this server offers commands: the test above covers them")
    page.goto(f"{site.base}/jobs/{FAILED_ID}")
    page.wait_for_selector("#traceback")
    assert page.query_selector("button[data-action='retry']") is None
    page.goto(site.base + "/commands")
    page.wait_for_selector("#no-commands")
    page.goto(site.base + "/jobs")
    page.check("#select-page")
    assert page.query_selector("button[data-bulk]") is None
    assert page.is_hidden("#health")  # no health report on this server: no banner


PAGES = ["/", "/jobs", f"/jobs/{FAILED_ID}", f"/jobs/{CHAIN_ROOT}", "/workers",
         "/workers/shop1@host", "/queues", "/queues/default", "/commands"]

CONTRAST = (Path(__file__).parent / "contrast.js").read_text()


def _problem(message: Any) -> bool:
    # endpoints of other parts of Sluice answer 404 until they land: the page hides their
    # controls (the browser still logs the 404); anything else, CSP refusals first, counts
    if message.type != "error":
        return False
    return not re.search(r"status of 40[45]", message.text)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_renders_in_both_themes_with_no_csp_violation(
        browser: Any, site: Site, scheme: str) -> None:
    out = artifacts_dir()
    for width, height, label in ((1280, 860, "laptop"), (390, 844, "phone")):
        ctx = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme=scheme)
        try:
            page = sign_in(ctx, site)
            problems: list[str] = []
            page.on("console", lambda m, seen=problems: seen.append(m.text)
                    if _problem(m) else None)
            page.on("pageerror", lambda e, seen=problems: seen.append(str(e)))
            for path in PAGES:
                page.goto(site.base + path)
                page.wait_for_selector("#live[data-state='live']")
                page.wait_for_function("() => document.querySelector('#view').children.length")
                page.wait_for_timeout(300)  # charts draw after the data arrives
                name = re.sub(r"[^a-z0-9]+", "-", path.strip("/").lower()) or "overview"
                page.screenshot(path=str(Path(out) / f"{name}-{scheme}-{label}.png"),
                                full_page=True)
                if label == "laptop" and path in ("/", "/queues/default"):
                    assert page.query_selector(".uplot canvas"), f"no chart on {path}"
            assert not problems, problems
            if label == "laptop":
                ratios = page.evaluate(CONTRAST)
                low = {k: round(v, 2) for k, v in ratios.items() if v < 4.5}
                assert not low, f"contrast below 4.5:1 in {scheme}: {low}"
                page.keyboard.press("Tab")
                outline = page.evaluate(
                    "getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", "keyboard focus is not visible"
        finally:
            ctx.close()
