"""Entries written once and spliced into every feed that holds them (feeds.render.Fragments)."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from lxml import etree

from aggregator import store
from aggregator.config import Config
from feeds.model import FeedDoc, FeedItem, LazyItems
from feeds.render import SUFFIXES, Fragments, render
from feeds.select import build_feed, parse_request
from web import create_app

ATOM = "{http://www.w3.org/2005/Atom}"
UTC = timezone.utc
WHEN = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def item(n: int, **changes) -> FeedItem:
    base = FeedItem(id=f"urn:x:{n}", title=f"Story {n}", link=f"https://n.example.org/{n}", summary="s",
                    content="<p>body</p>", published=WHEN, updated=WHEN, language="en", authors=(), terms=(),
                    media=(), section=None, regions=(), tags=(), breaking=False, origin=None, reading_time=1)
    return dataclasses.replace(base, **changes)


def doc(*items: FeedItem, **changes) -> FeedDoc:
    base = FeedDoc(id="tag:x,2026:f", title="F", description="d", self_url="https://f.example.org/f.atom",
                   home_url="https://n.example.org/", language="en", updated=WHEN, items=items)
    return dataclasses.replace(base, **changes)


def test_spliced_feeds_are_byte_identical_and_write_each_entry_once():
    frags = Fragments()
    for fmt in ("atom", "rss"):
        first = doc(item(1), item(2), item(3))
        assert render(first, fmt, frags) == render(first, fmt)
        written = frags.written
        # Another feed, another order, one new entry: only that one is written.
        second = doc(item(4), item(3), item(1), title="Other feed")
        assert render(second, fmt, frags) == render(second, fmt)
        assert frags.written == written + 1
        assert render(doc(), fmt, frags) == render(doc(), fmt)  # no entries at all


def test_a_changed_entry_is_written_again():
    frags = Fragments()
    render(doc(item(1), item(2)), "atom", frags)
    changed = doc(item(1, title="Story 1, corrected"), item(2))
    body = render(changed, "atom", frags)
    assert frags.written == 3 and body == render(changed, "atom")
    titles = [e.findtext(f"{ATOM}title") for e in etree.fromstring(body).iter(f"{ATOM}entry")]
    assert titles == ["Story 1, corrected", "Story 2"]


def test_atom_entries_depend_on_the_feeds_language():
    frags = Fragments()
    english = render(doc(item(1)), "atom", frags)
    arabic = render(doc(item(1), language="ar"), "atom", frags)
    assert frags.written == 2
    entry = etree.fromstring(arabic).find(f"{ATOM}entry")
    assert entry.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert etree.fromstring(english).find(f"{ATOM}entry").get("{http://www.w3.org/XML/1998/namespace}lang") is None
    render(doc(item(1), language="ar"), "rss", frags)
    render(doc(item(1)), "rss", frags)
    assert frags.written == 3  # an RSS item does not say its language: one for both


def test_text_that_looks_like_the_splice_points_changes_nothing():
    tricky = "</entry></item><!--feedhub:entries--></feed></channel></rss>"
    d = doc(item(1, title=tricky, summary=tricky, content=tricky), item(2), title=tricky, description=tricky)
    frags = Fragments()
    for fmt in ("atom", "rss"):
        body = render(d, fmt, frags)
        assert body == render(d, fmt) == render(d, fmt, frags)
        assert etree.fromstring(body) is not None


def test_fragments_are_bounded_by_size():
    """The bound counts the written XML and what its key keeps alive (the entry's text)."""
    frags = Fragments(max_bytes=8000)
    for n in range(40):
        render(doc(item(n, content="x" * 500)), "atom", frags)
    assert 0 < frags.size <= 8000 and len(frags) < 40
    parts = frags._parts.values()
    assert frags.size == sum(size for _, size in parts) > sum(len(part) for part, _ in parts) + 500 * len(frags)
    frags.written = 0
    render(doc(item(39, content="x" * 500)), "atom", frags)  # the newest is kept
    assert frags.written == 0


def test_render_cache_is_bounded_by_bytes():
    from datetime import datetime, timezone

    from web.cache import RENDERED_OVERHEAD, RenderCache, Rendered

    cache = RenderCache(max_bytes=100_000)

    def rendering(n: int, size: int) -> Rendered:
        return Rendered.make(1, bytes([65 + n % 26]) * size, f'"{n}"', datetime.now(timezone.utc), "", "text/xml", 60)

    for n in range(50):
        cache.get(("feed", n), 1, lambda n=n: rendering(n, 10_000))
        assert cache.size <= 100_000
    assert len(cache) < 10
    held = {key[1] for key in cache._items}
    assert held == set(range(50 - len(cache), 50))  # the least recently used went first
    assert cache.size == sum(len(r.body) + len(r.gzipped or b"") + RENDERED_OVERHEAD for r in cache._items.values())
    # A hit moves a rendering to the end: it outlives the ones added after it.
    first = min(held)
    cache.get(("feed", first), 1, lambda: rendering(0, 1))
    cache.get(("feed", 99), 1, lambda: rendering(99, 10_000))
    assert ("feed", first) in cache._items
    # One rendering larger than the bound is still served and kept alone (never a loop).
    big = cache.get(("feed", 100), 1, lambda: rendering(100, 300_000))
    assert len(big.body) == 300_000 and len(cache) == 1


def test_lazy_items_build_each_item_once_and_only_when_used():
    made: list[int] = []

    def make(i: int) -> FeedItem:
        made.append(i)
        return item(i)

    items = LazyItems(("a", "b", "c"), make)
    assert len(items) == 3 and items.built == 0
    assert items[-1].id == "urn:x:2" and items[2] is items[-1] and made == [2]
    assert [i.id for i in items] == ["urn:x:0", "urn:x:1", "urn:x:2"] and made == [2, 0, 1]
    assert items[1:] == (item(1), item(2)) and items == (item(0), item(1), item(2))
    assert made == [2, 0, 1]  # kept, not built again
    try:
        items[3]
    except IndexError:
        pass
    else:
        raise AssertionError("past the end must raise IndexError")


def test_a_feed_whose_entries_are_all_written_builds_no_item(newsroom: Config):
    app = create_app(newsroom)
    frags = app.extensions["feedhub.fragments"]
    with app.test_client() as client, app.app_context():
        client.get("/feeds/latest.rss?limit=200")
        req = parse_request(newsroom, "section", "politics", None, {"limit": "200"})
        doc = build_feed(req, newsroom, "http://localhost", "rss", SUFFIXES)
        assert isinstance(doc.items, LazyItems) and len(doc.items) > 3 and doc.items.built == 0
        body = render(doc, "rss", frags)
        assert doc.items.built == 0  # every entry came from the fragments
        assert body == render(build_feed(req, newsroom, "http://localhost", "rss", SUFFIXES), "rss")
        render(doc, "json")
        assert doc.items.built == len(doc.items)


def test_the_web_app_reuses_entries_across_feeds(newsroom: Config):
    app = create_app(newsroom)
    frags = app.extensions["feedhub.fragments"]
    with app.test_client() as client:
        client.get("/feeds/latest.atom?limit=200")
        written = frags.written
        assert written > 0
        sections = [s for s in newsroom.taxonomy.sections if s != "live"]  # (the ticker's are not in latest)
        bodies = {s: client.get(f"/feeds/section/{s}.atom?limit=200").get_data() for s in sections}
        assert frags.written == written  # every section entry was written for the latest feed
        with app.app_context():
            for s, body in bodies.items():  # and each feed is what a fresh rendering makes
                req = parse_request(newsroom, "section", s, None, {"limit": "200"})
                assert body == render(build_feed(req, newsroom, "http://localhost", "atom", SUFFIXES), "atom")
        # An entry changed at its source: its feeds show the change, and only it is written again.
        E = store.Entry
        ticker = store.Source.get(store.Source.key == "ticker")
        entry = E.select().where(E.edition == "en", E.retracted_at.is_null(), E.source != ticker).order_by(
            E.published.desc()).get()
        with store.write_transaction():
            E.update(title="Corrected headline").where(E.id == entry.id).execute()
            store.bump_topics(["en:latest"], store.utcnow())
        body = client.get("/feeds/latest.atom?limit=200").get_data()
        with app.app_context():
            req = parse_request(newsroom, "latest", None, None, {"limit": "200"})
            items = build_feed(req, newsroom, "http://localhost", "atom", SUFFIXES).items
        # the entry itself, and the entries listing it as related (they show its title)
        showing = [i for i in items if entry.public_id in (i.id, *(r.id for r in i.related))]
        assert b"Corrected headline" in body and frags.written == written + len(showing)
        assert len(showing) < len(items) // 4
        # A source renamed: the entries that name it (atom:source) are written again.
        written = frags.written
        wire = store.Source.get(store.Source.kind != "cms")
        with store.write_transaction():
            store.Source.update(feed_title="Renamed Wire").where(store.Source.id == wire.id).execute()
            store.bump_topics(["en:latest"], store.utcnow())
        body = client.get("/feeds/latest.atom?limit=200").get_data()
        from_wire = [i for i in items if i.source is not None and i.source.id.endswith(f"source/{wire.key}")]
        assert from_wire and frags.written == written + len(from_wire)
        assert body.count(b"<title>Renamed Wire</title>") == len(from_wire)
