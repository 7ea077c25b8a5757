"""Size limits: what one entry may bring in is capped at ingest, and what one feed document may
weigh is capped at output (2 MB a document, 1 MB an entry: what large consumers enforce)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import urlsplit

import feedparser
import pytest
from lxml import etree

from aggregator import store
from aggregator.collect import Collector
from aggregator.model import Category, Person, RawEntry, RawFeed, RawMedia
from aggregator.config import Caps
from aggregator.normalize import Context, cap_html, cap_text, normalize_entry, sanitize_html

from .conftest import newsroom_config

CONFIG = newsroom_config()
CTX = Context.from_config(CONFIG)
SOURCE = CONFIG.source("cms-news")
NOW = datetime(2026, 11, 25, 12, 0)
UTC = timezone.utc


def entry(**kw):
    raw = RawEntry(guid=kw.pop("guid", "g1"), link=kw.pop("link", "https://news.example.org/a"), **kw)
    return normalize_entry(raw, RawFeed(format="rss20"), SOURCE, CTX, NOW)


# --- caps at ingest ---------------------------------------------------------------------

def test_every_field_is_capped_at_ingest_and_each_cut_is_named():
    caps = CTX.caps
    e = entry(title="Headline " * 1_000_000, content="<p>" + "word " * 100_000 + "</p>" * 1, content_is_html=True,
              authors=[Person(name=f"Reporter {i} " + "x" * 1000) for i in range(60)],
              categories=[Category(f"topic-{i}") for i in range(500)],
              media=[RawMedia(url=f"https://img.example.org/{i}.jpg", type="image/jpeg") for i in range(100)])
    assert len(e.title) <= caps.title and e.title.endswith("…")
    assert len(e.content) <= caps.content
    assert len(e.authors) == caps.authors and all(len(a.name) <= caps.name for a in e.authors)
    assert len(e.tags) <= caps.categories
    assert len(e.media) <= caps.media
    cut = " | ".join(e.truncated)
    for what in ("title (9000000 characters, limit 500)", "body (", "authors (", "author name (",
                 "categories (500, limit 50)", "media ("):
        assert what in cut, (what, cut)


def test_an_over_long_link_is_left_out_not_cut():
    long = "https://news.example.org/" + "a" * 5000
    e = entry(link=long, title="Long link")
    assert e.link is None and any(t.startswith("link (") for t in e.truncated)


def test_text_is_cut_on_a_character_boundary_keeping_marks_with_their_letters():
    assert cap_text("short", 10) == "short"
    arabic = "كَتَبَ " * 10  # letters with vowel marks
    out = cap_text(arabic, 8)
    assert len(out) <= 8 and out.endswith("…")
    body = out[:-1].rstrip()
    assert arabic.startswith(body)
    # never a letter cut from its marks: the text kept is whole letter-plus-marks clusters
    assert not __import__("unicodedata").combining(arabic[len(body)]) if len(body) < len(arabic) else True


def test_html_is_cut_at_an_element_boundary_and_stays_sanitised():
    html = sanitize_html("".join(f"<p>Paragraph {i} <a href='https://x.example.org/{i}'>link</a></p>"
                                 for i in range(200)) + "<script>alert(1)</script>")
    out = cap_html(html, 1000)
    assert len(out) <= 1000 and out.endswith("<p>…</p>")
    assert out.count("<p>") == out.count("</p>")  # whole paragraphs only
    assert "<script" not in out
    assert etree.fromstring(f"<div>{out}</div>".encode()) is not None  # well-formed
    # One element larger than the cap on its own: its text, cut.
    one = cap_html("<p>" + "word " * 1000 + "</p>", 500)
    assert len(one) <= 500 and one.startswith("<p>word word")


def test_caps_are_set_in_collect_and_checked(config_factory):
    cfg = config_factory(collect="max_title = 80\nmax_content = 5000\n")
    assert cfg.collect.caps.title == 80 and cfg.collect.caps.content == 5000
    from aggregator.config import ConfigError

    with pytest.raises(ConfigError) as info:
        config_factory(collect="max_media = 0\n")
    assert info.value.problems == ["collect.max_media: must be a positive integer, got 0"]


def test_a_hostile_title_is_stored_capped_and_recorded_in_the_source_health(config_factory, tmp_path):
    huge = "T" * 5_000_000
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "huge.rss").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Huge</title><link>https://h.example.org/</link>'
        f"<description>d</description><item><title>{huge}</title><link>https://h.example.org/1</link>"
        "<description>Lead.</description></item></channel></rss>", encoding="utf-8")
    cfg = config_factory('[[sources]]\nid = "huge"\nname = "Huge"\nurl = "samples/huge.rss"\nsection = "live"\n')
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        [o] = c.collect().outcomes
    assert o.outcome == "ok"
    [title] = [t for (t,) in store.Entry.select(store.Entry.title).tuples()]
    assert len(title) == 500
    row = store.Source.get(store.Source.key == "huge")
    assert "title (5000000 characters, limit 500) cut to the [collect] limit" in row.warnings
    from web import create_app

    client = create_app(cfg).test_client()
    for fmt in ("rss", "atom", "json"):
        assert len(client.get(f"/feeds/latest.{fmt}").data) < 20_000


# --- caps at output ------------------------------------------------------------------------

BIG_BODY = "<p>" + "Long form reporting on the harbour. " * 2400 + "</p>"  # ~86k characters, under the cap


def test_a_page_over_2_mb_holds_fewer_entries_and_its_next_links_lose_nothing(config_factory, tmp_path):
    items = "".join(f"<item><title>Long read {i}</title><link>https://l.example.org/{i}</link>"
                    f"<guid>https://l.example.org/{i}</guid><pubDate>Tue, 24 Nov 2026 {i // 60:02d}:{i % 60:02d}:00 GMT"
                    f"</pubDate><description><![CDATA[{BIG_BODY}]]></description></item>" for i in range(60))
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "long.rss").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Long</title><link>https://l.example.org/</link>'
        f"<description>d</description>{items}</channel></rss>", encoding="utf-8")
    cfg = config_factory('[[sources]]\nid = "long"\nname = "Long"\nurl = "samples/long.rss"\nsection = "live"\n')
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert not c.collect().failed
    from web import create_app

    client = create_app(cfg).test_client()
    for fmt in ("rss", "atom", "json"):
        url, seen, pages = f"/feeds/latest.{fmt}?limit=200", [], 0
        while url:
            resp = client.get(url)
            assert resp.status_code == 200
            assert len(resp.data) <= 2 * 1024 * 1024, (fmt, pages, len(resp.data))
            if fmt == "json":
                data = json.loads(resp.data)
                seen += [it["id"] for it in data["items"]]
                nxt = data.get("next_url")
            else:
                parsed = feedparser.parse(resp.data)
                seen += [e.id for e in parsed.entries]
                nxt = next((ln.href for ln in parsed.feed.get("links", []) if ln.rel == "next"), None)
            url = (urlsplit(nxt).path + "?" + urlsplit(nxt).query) if nxt else None
            pages += 1
        assert pages >= 2, fmt  # it did not fit in one
        assert len(seen) == len(set(seen)) == 60, fmt  # nothing skipped, nothing twice


def test_an_entry_at_every_cap_stays_under_1_mb_in_every_format():
    """The worst case the caps allow: every character of the body one that both HTML and XML
    escape, in a script that takes two bytes. Still under 1 MB as written."""
    from feeds.model import FeedDoc
    from feeds.render import render

    from .test_properties import item_from

    caps = Caps()
    body = "<p>" + "<&ع" * (caps.content // 10) + "</p>"
    e = entry(title="ع" * 10_000, content=body, content_is_html=True, summary="<&" * 10_000,
              authors=[Person(name="<&ع" * 100) for _ in range(caps.authors)],
              categories=[Category("<&ع" * 50 + str(i)) for i in range(caps.categories)])
    assert len(e.content) <= caps.content
    doc = FeedDoc(id="tag:x,2026:f", title="F", description="d", self_url="https://x.example.org/f",
                  home_url="https://x.example.org/", language="ar", updated=e.updated.replace(tzinfo=UTC),
                  items=(item_from(e),))
    for fmt in ("rss", "atom", "json"):
        assert len(render(doc, fmt)) < 1024 * 1024, fmt
