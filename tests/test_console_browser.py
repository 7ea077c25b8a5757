"""The admin console in a real browser (issue 15): Debian's chromium driven by Playwright, the app
under waitress on 127.0.0.1, feeds from a test server on 127.0.0.1, a collector running beside it,
and axe-core checking every page. Screenshots of every page go to the run's output folder."""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from aggregator import auth, store
from aggregator.collect import Collector
from aggregator.config import Config, load_config

from .browser_support import axe_check as _axe_check
from .browser_support import require_browser
from .conftest import LOOPBACK, close_store, serving_app, write_config
from .test_admin_api import rss

require_browser()

from playwright.sync_api import Browser, Page, expect  # noqa: E402

PASSWORD = "correct horse battery"


@dataclass
class Console:
    base: str
    config: Config
    folder: Path
    shots: Path

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def console(tmp_path: Path, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    cfg = load_config(write_config(tmp_path, db_url, collect=LOOPBACK,
                                   extra='\n[partners.profiles.standard]\nfull_text = false\n'), environ={})
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert not c.collect().failed
    for name, role in (("ann", "admin"), ("eddie", "editor"), ("vera", "viewer")):
        store.add_user(name, role, auth.hash_password(PASSWORD), store.utcnow())
    from web.app import create_app

    app = create_app(cfg)
    shots = tmp_path_factory.getbasetemp() / "screenshots"
    shots.mkdir(exist_ok=True)
    with serving_app(app, threads=6) as port:
        yield Console(f"http://127.0.0.1:{port}", cfg, tmp_path, shots)
    app.extensions["feedhub.usage"].close()
    close_store()


def login(page: Page, c: Console, name: str) -> None:
    page.goto(c.url("/admin/login"))
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def axe_check(page: Page, c: Console, name: str) -> None:
    """No serious or critical accessibility violation; a screenshot of the page."""
    _axe_check(page, c.shots, name)


def feeds_json(c: Console, path: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(c.url(path), timeout=30) as resp:
        return json.loads(resp.read())


def feed_text(c: Console, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(c.url(path), timeout=30) as resp:
        return resp.read().decode("utf-8")


def test_login_a_wrong_password_and_logout(browser: Browser, console: Console):
    page = browser.new_page()
    page.goto(console.url("/admin/"))
    expect(page).to_have_url(re.compile(r"/admin/login"))
    axe_check(page, console, "login")
    page.get_by_label("Name").fill("ann")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong name or password")
    login(page, console, "ann")
    cookie = next(ck for ck in page.context.cookies() if ck["name"] == "feedhub_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # plain HTTP here
    axe_check(page, console, "dashboard")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.goto(console.url("/admin/sources"))
    expect(page).to_have_url(re.compile(r"/admin/login"))


def test_a_form_post_without_a_csrf_token_is_refused(browser: Browser, console: Console):
    page = browser.new_page()
    login(page, console, "ann")
    status = page.evaluate("""async () => {
        const body = new URLSearchParams({action: "push", headline: "Forged"});
        const r = await fetch("/admin/desk", {method: "POST", body, credentials: "same-origin"});
        return r.status; }""")
    assert status == 400
    assert "Forged" not in [i["title"] for i in feeds_json(console, "/feeds/breaking.json")["items"]]


def test_add_a_source_by_its_page_refresh_it_and_see_its_entries(browser: Browser, console: Console,
                                                                httpserver: HTTPServer):
    stories = [(1, "Lighthouse keeper retires after forty years")]
    httpserver.expect_request("/feed.xml").respond_with_handler(
        lambda req: __import__("werkzeug").Response(rss("Coast Courier", stories), content_type="application/rss+xml"))
    httpserver.expect_request("/").respond_with_data(
        f'<html><head><link rel="alternate" type="application/rss+xml" title="Coast Courier" '
        f'href="{httpserver.url_for("/feed.xml")}"></head></html>', content_type="text/html")
    stop = threading.Event()
    collector = Collector(console.config)
    worker = threading.Thread(target=collector.run_forever, args=(stop,), kwargs={"tick": 0.2}, daemon=True)
    worker.start()
    try:
        page = browser.new_page()
        login(page, console, "ann")
        cms_before = int(re.search(r"cms: (\d+)", page.locator("figure .legend").inner_text()).group(1))
        page.get_by_role("link", name="Sources").click()
        axe_check(page, console, "sources")
        page.get_by_role("link", name="Add a source").click()
        axe_check(page, console, "source-new")
        page.get_by_label("Feed or page URL").fill(httpserver.url_for("/"))
        page.get_by_label("Default section").fill("news")
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.get_by_role("heading", name=re.compile("Source"))).to_contain_text("coast-courier")
        stories.append((2, "Harbour gets a new pier"))
        page.get_by_role("button", name="Refresh now").click()
        expect(page.locator("#refresh-state")).to_contain_text("Fetched: ok", timeout=30_000)
        axe_check(page, console, "source")
        titles = [i["title"] for i in feeds_json(console, "/feeds/latest.json?limit=200")["items"]]
        assert "Lighthouse keeper retires after forty years" in titles and "Harbour gets a new pier" in titles
        page.get_by_role("link", name="Dashboard").click()
        expect(page.locator("figure .legend")).to_contain_text(f"cms: {cms_before + 2}")  # its two entries
        assert page.locator("svg.chart rect").count() > 0
        page.get_by_role("link", name="Sources").click()
        expect(page.get_by_role("row").filter(has_text="coast-courier")).to_contain_text("the console and API")
    finally:
        stop.set()
        worker.join(timeout=30)
        collector.close()


def test_a_rules_dry_run_shows_what_the_feed_would_become(browser: Browser, console: Console):
    page = browser.new_page()
    login(page, console, "ann")
    page.goto(console.url("/admin/sources/meridian-wire"))
    page.get_by_label(re.compile("Rules")).fill('[[rules]]\nkeyword = "weather"\nsection = "environment"\n')
    page.get_by_role("button", name=re.compile("Dry run")).click()
    heading = page.get_by_role("heading", name=re.compile("Dry run"))
    expect(heading).to_contain_text("kept")
    expect(page.get_by_role("cell", name="rule 1 (keyword 'weather')").first).to_be_visible()
    axe_check(page, console, "source-dry-run")
    assert store.audit_rows(5) == []  # nothing written


def test_push_breaking_then_see_it_in_the_breaking_feed_and_retract_an_entry(browser: Browser, console: Console):
    page = browser.new_page()
    login(page, console, "eddie")
    page.get_by_role("link", name="Desk").click()
    page.get_by_label("Headline").fill("Bridge closed after collision")
    page.get_by_label("Edition").select_option("ar")
    page.get_by_role("button", name="Push to the ticker").click()
    expect(page.get_by_role("status")).to_contain_text("pushed to the ar ticker")
    assert feeds_json(console, "/ar/feeds/breaking.json")["items"][0]["title"] == "Bridge closed after collision"
    axe_check(page, console, "desk")
    page.get_by_role("button", name="Take off the ticker: Bridge closed after collision").click()
    expect(page.get_by_role("status")).to_contain_text("taken off the ticker")
    assert "Bridge closed after collision" not in [
        i["title"] for i in feeds_json(console, "/ar/feeds/breaking.json")["items"]]
    rss_before = feed_text(console, "/feeds/latest.rss?limit=200")
    entry = store.list_entries(1, source="cms-news", status="published")[0]
    assert entry.title in rss_before
    page.get_by_label("Search").fill(entry.title[:30])
    page.get_by_role("button", name="Search").click()
    row = page.get_by_role("row").filter(has_text=f"#{entry.id} ")
    row.locator("summary", has_text="Retract").click()
    row.get_by_label("Reason").fill("figures were wrong")
    row.get_by_role("button", name="Retract").click()
    expect(page.get_by_role("status")).to_contain_text(f"retracted entry {entry.id}")
    assert entry.title not in feed_text(console, "/feeds/latest.rss?limit=200")
    # Correct another entry's filing: it moves to the region's feed.
    other = store.list_entries(1, source="cms-news", status="published")[0]
    page.get_by_label("Search").fill(other.title[:30])
    page.get_by_role("button", name="Search").click()
    row = page.get_by_role("row").filter(has_text=f"#{other.id} ")
    row.locator("summary", has_text="Correct filing").click()
    row.get_by_label("Palestine").check()
    row.get_by_role("button", name="File anew").click()
    expect(page.get_by_role("status")).to_contain_text(f"filed entry {other.id} anew")
    assert other.title in [i["title"] for i in feeds_json(console, "/feeds/region/palestine.json?limit=200")["items"]]


def test_a_viewer_cannot_edit_in_the_page_or_by_posting_the_form(browser: Browser, console: Console):
    page = browser.new_page()
    login(page, console, "vera")
    page.goto(console.url("/admin/sources/meridian-wire"))
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    page.goto(console.url("/admin/desk"))
    expect(page.get_by_label("Headline")).to_have_count(0)
    # The same posts made directly, with the viewer's own valid CSRF token: refused on the server.
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    for path, data in (("/admin/desk", {"action": "push", "headline": "Viewer push"}),
                       ("/admin/partners", {"action": "add", "name": "sneaky", "profile": "standard"}),
                       ("/admin/users", {"action": "add", "name": "mallory", "role": "admin",
                                         "password": "a long password"})):
        resp = page.request.post(console.url(path), form={"csrf": token, **data})
        assert resp.status == 403, (path, resp.status)
    assert "Viewer push" not in [i["title"] for i in feeds_json(console, "/feeds/breaking.json")["items"]]
    assert [u.name for u in store.list_users()] == ["ann", "eddie", "vera"]
    axe_check(page, console, "desk-viewer")


def test_every_other_page_passes_axe_and_reads_at_375_px(browser: Browser, console: Console):
    page = browser.new_page(viewport={"width": 375, "height": 800})
    login(page, console, "ann")
    for name, path in (("dashboard-375", "/admin/"), ("sources-375", "/admin/sources"), ("partners", "/admin/partners"),
                       ("users", "/admin/users"), ("audit", "/admin/audit"), ("opml-import", "/admin/sources/import"),
                       ("password", "/admin/password"), ("desk-375", "/admin/desk")):
        page.goto(console.url(path))
        axe_check(page, console, name)
        # Nothing wider than the screen but the tables' own scrolling boxes.
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 375 + 1, (name, overflow)


def test_password_change_and_login_limits(browser: Browser, console: Console):
    page = browser.new_page()
    login(page, console, "eddie")
    page.get_by_role("link", name="Password").click()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password (at least 10 characters)").fill("a brand new passphrase")
    page.get_by_label("New password, again").fill("a brand new passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("password changed")
    page.get_by_role("button", name="Log out").click()
    other = browser.new_page()
    for _ in range(5):
        other.goto(console.url("/admin/login"))
        other.get_by_label("Name").fill("eddie")
        other.get_by_label("Password").fill(PASSWORD)  # the old one
        other.get_by_role("button", name="Log in").click()
        expect(other.get_by_role("alert")).to_contain_text("wrong name or password")
    other.get_by_label("Name").fill("eddie")
    other.get_by_label("Password").fill("a brand new passphrase")  # right, but too late
    other.get_by_role("button", name="Log in").click()
    expect(other.get_by_role("alert")).to_contain_text("too many failed logins")


def test_a_partner_is_added_with_its_key_shown_once_and_revoked(browser: Browser, console: Console):
    page = browser.new_page()
    login(page, console, "ann")
    page.get_by_role("link", name="Partners").click()
    page.get_by_label("Name").fill("gazette")
    page.get_by_label("Contact").fill("desk@gazette.example")
    page.get_by_role("button", name="Add and show its key").click()
    key = page.locator("code.key").first.inner_text()
    assert key.startswith("pk_")
    assert feeds_json(console, f"/partner/{key}/feeds/latest.json")["items"]
    page.goto(console.url("/admin/partners"))
    expect(page.locator("code.key")).to_have_count(0)  # shown only once
    page.get_by_role("button", name=re.compile("Revoke key .* of gazette")).click()
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(console.url(f"/partner/{key}/feeds/latest.json"), timeout=30)
    assert refused.value.code == 401


def test_a_page_with_several_feeds_lets_the_admin_pick_one(browser: Browser, console: Console,
                                                           httpserver: HTTPServer):
    httpserver.expect_request("/news.rss").respond_with_data(rss("Valley News", [(3, "Dam repaired")]),
                                                             content_type="application/rss+xml")
    httpserver.expect_request("/").respond_with_data(
        '<html><head><link rel="alternate" type="application/rss+xml" title="News" href="/news.rss">'
        '<link rel="alternate" type="application/atom+xml" title="Sport" href="/sport.atom"></head></html>',
        content_type="text/html")
    page = browser.new_page()
    login(page, console, "ann")
    page.goto(console.url("/admin/sources/new"))
    page.get_by_label("Feed or page URL").fill(httpserver.url_for("/"))
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("announces 2 feeds")
    axe_check(page, console, "source-candidates")
    page.get_by_role("button", name="Add News").click()
    expect(page.get_by_role("heading", name=re.compile("Source"))).to_contain_text("valley-news")
    assert store.sources_health(["valley-news"])[0].url == httpserver.url_for("/news.rss")
