"""Property tests: whatever text a source puts in any field, every format we emit stays
well-formed, XML-safe and free of script."""
from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.config import load_config
from aggregator.model import Category, Person, RawEntry, RawFeed, RawMedia
from aggregator.normalize import Context, normalize_entry
from feeds.model import FeedDoc, FeedItem, Term
from feeds.render import Fragments, render

from .conftest import ROOT, newsroom_config

CONFIG = newsroom_config()
CTX = Context.from_config(CONFIG)
NOW = datetime(2026, 11, 25, 12, 0)
UTC = timezone.utc

# Any code point, surrogates and controls included, plus markup that attacks readers.
HOSTILE = st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<a href=\"javascript:alert(1)\">x</a>",
    "<iframe src=//evil>", "]]>", "<![CDATA[", "&#0;", "&#xD800;", "\x00", "\x0b", "\ud800", "\ufffe",
    "<svg onload=alert(1)>", "<style>*{}</style>", "</content>", "<?xml?>", "&amp;lt;script&amp;gt;",
])
TEXT = st.lists(st.one_of(st.text(max_size=40), HOSTILE), max_size=6).map("".join)
SHARED = Fragments()  # one for every example
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def item_from(entry) -> FeedItem:
    return FeedItem(
        id=entry.public_id, title=entry.title, link=entry.link, summary=entry.summary, content=entry.content,
        published=entry.published.replace(tzinfo=UTC), updated=entry.updated.replace(tzinfo=UTC),
        language=entry.language, authors=entry.authors,
        terms=tuple(Term("tag", t.slug, t.name, "https://feeds.example.org/feeds/tag/") for t in entry.tags),
        media=entry.media, section=entry.section, regions=entry.regions, tags=tuple(t.slug for t in entry.tags),
        breaking=entry.breaking, origin=entry.origin, reading_time=entry.reading_time)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=TEXT, summary=TEXT, content=TEXT, author=TEXT, category=TEXT, caption=TEXT, guid=TEXT)
def test_any_text_in_any_field_gives_safe_valid_output(title, summary, content, author, category, caption, guid):
    raw = RawEntry(guid=guid or None, link="https://n.example.org/a", title=title, summary=summary,
                   content=content, authors=[Person(author)] if author.strip() else [],
                   categories=[Category(category)] if category.strip() else [],
                   media=[RawMedia("https://n.example.org/i.jpg", medium="image", caption=caption)],
                   published=datetime(2026, 11, 20, tzinfo=UTC))
    entry = normalize_entry(raw, RawFeed(format="rss20"), CONFIG.source("cms-news"), CTX, NOW)
    doc = FeedDoc(id="tag:feeds.example.org,2026:test", title="Test", description="d",
                  self_url="https://feeds.example.org/feeds/latest.rss", home_url="https://news.example.org/",
                  language="en", updated=entry.updated.replace(tzinfo=UTC), items=(item_from(entry),))
    # The same entry beside a plain one, reusing what earlier examples wrote: splicing
    # entries never depends on what their text holds, and changes no byte.
    plain = dataclasses.replace(doc.items[0], id="urn:plain", title="Plain", summary="s", content="")
    pair = dataclasses.replace(doc, items=(plain, doc.items[0]))
    for fmt in ("rss", "atom"):
        assert render(pair, fmt, SHARED) == render(pair, fmt)
        body = render(doc, fmt)
        root = etree.fromstring(body)  # well-formed, or this raises
        assert not XML_ILLEGAL.search(body.decode("utf-8"))
        for el in root.iter():
            name = etree.QName(el).localname if isinstance(el.tag, str) else ""
            if name in ("encoded", "content", "description") and el.getparent() is not None \
                    and etree.QName(el.getparent()).localname in ("item", "entry"):
                assert_safe_html(el.text or "")  # RSS description and bodies are markup readers render
            elif el.text:
                assert_plain(el.text)  # every other element carries plain text
    data = json.loads(render(doc, "json"))
    assert not XML_ILLEGAL.search(json.dumps(data, ensure_ascii=False))
    item = data["items"][0]
    assert_safe_html(item.get("content_html", ""))
    for value in (item["title"], item.get("summary", ""), *(a["name"] for a in item.get("authors", []))):
        assert_plain(value)




def assert_plain(text: str) -> None:
    """Plain text can open no tag, so a reader that renders it as HTML shows text."""
    assert not re.search(r"<[A-Za-z!/?]", text), text


def assert_safe_html(markup: str) -> None:
    """Parsed as a browser would: no script or style, no event handlers, no javascript: URLs."""
    if not markup.strip():
        return
    from lxml import html as lxml_html

    for el in lxml_html.fragment_fromstring(markup, create_parent="div").iter():
        if not isinstance(el.tag, str):
            continue
        assert el.tag.lower() not in ("script", "style", "iframe", "object", "embed", "svg"), markup
        for attr, value in el.attrib.items():
            assert not re.fullmatch(r"on[a-z]+", attr.lower()), markup  # an event handler
            assert "javascript:" not in value.lower().replace(" ", ""), markup
