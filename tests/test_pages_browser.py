"""The directory and the feed pages in a real browser (issue 18): each edition, wide and at 375 px,
checked by axe-core and screenshot (the run's output folder holds the pictures to look at); the
Arabic pages laid out right to left; the filter box and the copy buttons working."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import Config

from .browser_support import axe_check, require_browser
from .conftest import close_store, serving_app

require_browser()

from playwright.sync_api import Browser, expect  # noqa: E402


@dataclass
class Site:
    base: str
    shots: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from .conftest import newsroom_config

    cfg: Config = newsroom_config()
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert not c.collect().failed
    from web.app import create_app

    app = create_app(cfg)
    shots = tmp_path_factory.getbasetemp() / "screenshots"
    shots.mkdir(exist_ok=True)
    with serving_app(app, threads=6) as port:
        yield Site(f"http://127.0.0.1:{port}", shots)
    app.extensions["feedhub.usage"].close()
    close_store()


PAGES = [("directory-en", "/feeds/"), ("directory-ar", "/ar/feeds/"), ("directory-es", "/es/feeds/"),
         ("feed-en-politics", "/feeds/section/politics"), ("feed-ar-latest", "/ar/feeds/latest"),
         ("feed-es-breaking", "/es/feeds/breaking"), ("feed-en-tag", "/feeds/tag/wire")]


@pytest.mark.parametrize("width", [1200, 375])
def test_pages_pass_axe_and_read_at_every_width(browser: Browser, site: Site, width: int):
    # (bypass_csp: the pages allow their own script only, and axe-core is injected)
    page = browser.new_page(viewport={"width": width, "height": 900}, bypass_csp=True)
    for name, path in PAGES:
        page.goto(site.base + path)
        axe_check(page, site.shots, f"{name}-{width}")
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, (name, width)
    page.close()


def test_arabic_pages_run_right_to_left(browser: Browser, site: Site):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    for path in ("/ar/feeds/", "/ar/feeds/latest"):
        page.goto(site.base + path)
        assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
        assert page.evaluate("document.documentElement.lang") == "ar"
        # Right to left for real: the heading starts at the right edge of the page.
        box = page.locator("h1").bounding_box()
        text_right = page.evaluate("""() => { const r = document.createRange();
            r.selectNodeContents(document.querySelector('h1')); return r.getBoundingClientRect().right; }""")
        assert box is not None and abs(text_right - (box["x"] + box["width"])) < 2
    # An entry's own language and direction are on its article.
    article = page.locator("article").first
    assert article.get_attribute("dir") == "rtl" and article.get_attribute("lang") == "ar"
    page.close()


def test_the_filter_box_narrows_the_directory(browser: Browser, site: Site):
    page = browser.new_page()
    page.goto(site.base + "/feeds/")
    feeds = page.locator("[data-feed]")
    total = feeds.count()
    page.get_by_label("Filter feeds").fill("politics")
    visible = page.locator("[data-feed]:visible")
    expect(visible.first).to_be_visible()
    assert 0 < visible.count() < total
    texts = visible.all_inner_texts()
    assert all("politics" in t.lower() for t in texts), texts
    page.get_by_label("Filter feeds").fill("zzzz no such feed")
    expect(page.get_by_text("No feed matches.")).to_be_visible()
    page.get_by_label("Filter feeds").fill("")
    assert page.locator("[data-feed]:visible").count() == total
    page.close()


def test_a_copy_button_copies_the_feed_url(browser: Browser, site: Site):
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base)
    page = context.new_page()
    page.goto(site.base + "/feeds/section/politics")
    page.get_by_role("button", name="Copy: Atom 1.0").click()
    expect(page.get_by_role("button", name="Copy: Atom 1.0")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == site.base + "/feeds/section/politics.atom"
    # The page says where to subscribe, and browsers find the feeds by themselves.
    kinds = page.eval_on_selector_all("link[rel=alternate]", "links => links.map(l => l.type)")
    assert kinds == ["application/rss+xml", "application/atom+xml", "application/feed+json"]
    context.close()
