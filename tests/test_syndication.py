"""Syndication for pollers and partners: paging, filters, the render cache, HTTP, OPML, WebSub, tombstones."""
from __future__ import annotations

import gzip
import io
import json
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import feedparser
import pytest
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import Config
from web import create_app
from web.websub import HubPublisher

from .conftest import SAMPLES
from .test_feeds import ATOM, get_json

TOMBSTONE = "{http://purl.org/atompub/tombstones/1.0}"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- paging ------------------------------------------------------------------------------

def test_paging_walks_every_entry_once_in_order(client):
    seen: list[str] = []
    dates: list[str] = []
    url = "/feeds/latest.json?limit=20"
    pages = 0
    while url:
        data = get_json(client, url)
        seen += [i["id"] for i in data["items"]]
        dates += [i["date_published"] for i in data["items"]]
        url = path_of(data["next_url"]) if "next_url" in data else None
        pages += 1
    # 110: the samples' entries but the ticker's (a breaking source's are not in latest)
    assert pages == 6 and len(seen) == 110 == len(set(seen))
    assert dates == sorted(dates, reverse=True)


def test_rfc5005_links_in_atom_and_rss(client):
    first = etree.fromstring(client.get("/feeds/latest.atom?limit=20").get_data())
    rels = {ln.get("rel"): ln.get("href") for ln in first.findall(f"{ATOM}link")}
    assert "next" in rels and "previous" not in rels and "first" not in rels
    second = etree.fromstring(client.get(path_of(rels["next"])).get_data())
    rels2 = {ln.get("rel"): ln.get("href") for ln in second.findall(f"{ATOM}link")}
    assert rels2["first"] == "http://localhost/feeds/latest.atom?limit=20"
    assert rels2["previous"] == rels2["first"]  # the page before page two is page one
    third = etree.fromstring(client.get(path_of(rels2["next"])).get_data())
    rels3 = {ln.get("rel"): ln.get("href") for ln in third.findall(f"{ATOM}link")}
    assert rels3["previous"] == rels["next"]  # previous of page three is page two, exactly
    rss = etree.fromstring(client.get(path_of(rels["next"]).replace(".atom", ".rss")).get_data())
    rss_rels = {ln.get("rel") for ln in rss.findall(f"channel/{ATOM}link")}
    assert {"self", "first", "previous", "next"} <= rss_rels


def test_a_page_stays_the_same_while_new_entries_arrive(newsroom: Config, client):
    page_two = path_of(get_json(client, "/feeds/latest.json?limit=10")["next_url"])
    before = [i["id"] for i in get_json(client, page_two)["items"]]
    src = store.Source.get(store.Source.key == "cms-news")
    newest = store.Entry.select().order_by(store.Entry.published.desc()).first()
    with store.write_transaction():
        for n in range(5):  # five newer entries at the top of the feed
            store.Entry.create(source=src, guid=f"late-{n}", public_id=f"https://news.example.org/late/{n}",
                               title=f"Late item {n}", link=f"https://news.example.org/late/{n}", language="en",
                               edition="en", published=newest.published + timedelta(minutes=n + 1),
                               updated=newest.published + timedelta(minutes=n + 1), fingerprint="x")
        late = [e.id for e in store.Entry.select().where(store.Entry.guid.startswith("late-"))]
        store.repost(late, newsroom.taxonomy.parents)  # (written by hand: the feed index too)
        store.bump_topics(["en:latest"], store.utcnow())
    try:
        assert [i["id"] for i in get_json(client, page_two)["items"]] == before
        assert get_json(client, "/feeds/latest.json?limit=10")["items"][0]["title"] == "Late item 4"
    finally:
        with store.write_transaction():
            store.unpost_entries(late)
            store.Entry.delete().where(store.Entry.guid.startswith("late-")).execute()
            store.bump_topics(["en:latest"], store.utcnow())


def test_bad_page_is_400(client):
    resp = client.get("/feeds/latest.json?page=not-a-cursor!")
    assert resp.status_code == 400 and "follow the feed's next link" in resp.get_data(as_text=True)


# --- filters -------------------------------------------------------------------------------

def test_author_q_and_since_filters(client):
    data = get_json(client, "/feeds/latest.json?author=amina-rahal&limit=200")
    assert data["items"] and all(any(a["name"] == "Amina Rahal" for a in i["authors"]) for i in data["items"])
    hits = get_json(client, "/feeds/latest.json?q=MARATHON&limit=200")["items"]
    assert hits and all("marathon" in (i["title"] + i.get("summary", "")).lower() for i in hits)
    assert get_json(client, "/feeds/latest.json?q=100%25_zz")["items"] == []  # wildcards are literal
    arabic = get_json(client, "/ar/feeds/latest.json?q=انقطاع")["items"]
    assert len(arabic) == 1 and "انقطاع مؤقت للكهرباء" in arabic[0]["title"]
    recent = get_json(client, "/feeds/latest.json?since=2026-11-24T12:00:00Z&limit=200")["items"]
    assert recent and all(i["date_modified"] >= "2026-11-24T12:00:00Z" for i in recent)
    assert len(recent) < 125


@pytest.mark.parametrize("query, message", [
    ("author=nobody", "author filter: unknown author 'nobody'"),
    ("q=", "q must be 1 to 100 characters"),
    ("q=" + "x" * 101, "q must be 1 to 100 characters"),
    ("since=yesterday", "since must be an RFC 3339 date or time"),
])
def test_bad_filters_are_400(client, query: str, message: str):
    resp = client.get(f"/feeds/latest.json?{query}")
    assert resp.status_code == 400 and message in json.loads(resp.get_data())["error"]["message"]


# --- render cache and HTTP ------------------------------------------------------------------

def test_cache_renders_once_and_only_the_changed_feed_again(newsroom: Config):
    app = create_app(newsroom)
    cache = app.extensions["feedhub.cache"]
    with app.test_client() as c:
        english = c.get("/feeds/latest.rss").get_data()
        c.get("/es/feeds/latest.rss")
        assert cache.renders == 2
        assert c.get("/feeds/latest.rss").get_data() == english and cache.renders == 2
        with store.write_transaction():  # a change to the Spanish edition only
            store.bump_topics(["es:latest"], store.utcnow())
        c.get("/feeds/latest.rss")
        assert cache.renders == 2  # English untouched: still cached
        c.get("/es/feeds/latest.rss")
        assert cache.renders == 3


def test_many_concurrent_requests_for_a_cold_feed_render_it_once(newsroom: Config):
    app = create_app(newsroom)
    cache = app.extensions["feedhub.cache"]
    bodies: list[bytes] = []
    barrier = threading.Barrier(8)

    def fetch() -> None:
        with app.test_client() as c:
            barrier.wait()
            bodies.append(c.get("/feeds/section/news.atom").get_data())

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bodies) == 8 and len(set(bodies)) == 1
    assert cache.renders == 1


def test_gzip_cors_and_link_headers(client):
    plain = client.get("/feeds/latest.atom")
    zipped = client.get("/feeds/latest.atom", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.get_data()) == plain.get_data()
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    again = client.get("/feeds/latest.atom", headers={"Accept-Encoding": "gzip",
                                                      "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304
    assert plain.headers["Access-Control-Allow-Origin"] == "*"
    assert set(plain.headers["Access-Control-Expose-Headers"].replace(" ", "").split(",")) >= {"ETag", "Link"}
    assert '<http://localhost/feeds/latest.atom>; rel="self"' in plain.headers["Link"]
    assert 'rel="next"' in plain.headers["Link"]


def test_opml_lists_every_feed_grouped(client):
    resp = client.get("/feeds.opml")
    assert resp.content_type == "text/x-opml; charset=utf-8"
    root = etree.fromstring(resp.get_data())
    editions = root.findall("body/outline")
    assert [e.get("text") for e in editions] == ["English", "العربية", "Español"]
    english_groups = [g.get("text") for g in editions[0].findall("outline")]
    assert english_groups == ["Main feeds", "Sections", "Regions", "Coverage", "Tags", "Authors"]
    feeds = root.findall("body/outline/outline/outline")  # (feeds with entries: 142 of the samples')
    assert len(feeds) > 100 and all(f.get("type") == "rss" and f.get("xmlUrl").startswith("http://localhost/")
                                    for f in feeds)
    assert client.get(path_of(feeds[0].get("xmlUrl"))).status_code == 200


# --- WebSub ---------------------------------------------------------------------------------

@pytest.fixture
def hub_config(tmp_path: Path, db_url: str):
    """A sample-newsroom config publishing to ``hub_url``, with a public base URL."""
    from aggregator.config import load_config

    from .conftest import write_config

    def make(hub_url: str) -> Config:
        path = write_config(tmp_path, db_url, extra=f'\n[websub]\nhubs = ["{hub_url}"]\n'
                                                    'retry_delay = 0.05\nattempts = 3\n')
        path.write_text(path.read_text(encoding="utf-8").replace(
            'base_url = ""', 'base_url = "https://feeds.example.org"'), encoding="utf-8")
        return load_config(path, environ={})
    return make


def hub_at(httpserver: HTTPServer, hub_config, handler) -> tuple[Config, HubPublisher]:
    """A local hub answering with ``handler``, a config publishing to it, an open store, a publisher."""
    httpserver.expect_request("/hub", method="POST").respond_with_handler(handler)
    cfg = hub_config(httpserver.url_for("/hub"))
    store.init_db(cfg.database_url)
    return cfg, HubPublisher(cfg)


def test_hub_is_pinged_for_exactly_the_changed_feeds(httpserver: HTTPServer, hub_config):
    received: list[list[str]] = []

    def hub(request: Request) -> Response:
        form = parse_qs(request.get_data(as_text=True))
        assert form["hub.mode"] == ["publish"]
        received.append(form["hub.url"])
        return Response(status=204)

    cfg, publisher = hub_at(httpserver, hub_config, hub)
    with Collector(cfg, on_topics=publisher.publish) as c:
        summary = c.collect(source_ids=["cms-spanish"])
    assert publisher.flush(30)
    urls = [u for batch in received for u in batch]
    expected = publisher.urls(summary.topics)
    assert sorted(urls) == expected and len(expected) == 3 * len(summary.topics)
    assert "https://feeds.example.org/es/feeds/section/politics.atom" in urls
    assert not any("/feeds/latest" in u and "/es/" not in u for u in urls)  # English did not change
    assert all(len(batch) <= 50 for batch in received)
    received.clear()
    with Collector(cfg, on_topics=publisher.publish) as c:
        c.collect(source_ids=["cms-spanish"])  # nothing changed: no ping
    assert publisher.flush(30) and received == []
    publisher.close()


def test_hub_failures_are_retried(httpserver: HTTPServer, hub_config):
    answers = iter([500, 503, 204])
    got: list[int] = []

    def hub(request: Request) -> Response:
        status = next(answers)
        got.append(status)
        return Response(status=status)

    cfg, publisher = hub_at(httpserver, hub_config, hub)
    publisher.publish({"en:breaking"})
    assert publisher.flush(30)
    assert got == [500, 503, 204] and publisher.sent[-1][2] is True
    publisher.close()


def test_a_slow_hub_never_blocks_collection(httpserver: HTTPServer, hub_config):
    release = threading.Event()

    def hub(request: Request) -> Response:
        release.wait(30)
        return Response(status=204)

    cfg, publisher = hub_at(httpserver, hub_config, hub)
    with Collector(cfg, on_topics=publisher.publish) as c:
        summary = c.collect(source_ids=["ticker", "cms-spanish"])
    assert summary.new == 27  # collect returned while the hub still holds its first ping
    assert not publisher.flush(0)
    release.set()
    assert publisher.flush(30)
    publisher.close()


def test_hub_links_in_every_format(hub_config):
    cfg = hub_config("https://hub.example.org/")
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect(source_ids=["ticker"])
    with create_app(cfg).test_client() as client:
        rss = etree.fromstring(client.get("/feeds/breaking.rss").get_data())
        assert rss.find(f"channel/{ATOM}link[@rel='hub']").get("href") == "https://hub.example.org/"
        atom = client.get("/feeds/breaking.atom")
        assert etree.fromstring(atom.get_data()).find(f"{ATOM}link[@rel='hub']") is not None
        assert '<https://hub.example.org/>; rel="hub"' in atom.headers["Link"]
        data = json.loads(client.get("/feeds/breaking.json").get_data())
        assert data["hubs"] == [{"type": "WebSub", "url": "https://hub.example.org/"}]
        assert data["feed_url"] == "https://feeds.example.org/feeds/breaking.json"


def test_hubs_need_a_public_base_url(config_factory):
    from aggregator.errors import ConfigError

    with pytest.raises(ConfigError, match="websub.hubs: publishing to a hub needs server.base_url"):
        config_factory(extra='\n[websub]\nhubs = ["https://hub.example.org/"]\n')


# --- retractions ----------------------------------------------------------------------------

def test_retracted_entry_becomes_a_tombstone(collected: Config):
    from web.cli import main

    app = create_app(collected)
    victim = "https://news.example.org/live/2026/11/ticker-5003"
    with app.test_client() as c:
        assert victim in {i["id"] for i in get_json(c, "/feeds/breaking.json")["items"]}
    assert main(["--config", str(collected.path), "retract", victim, "--reason", "Published in error"]) == 0
    with app.test_client() as c:
        assert victim not in {i["id"] for i in get_json(c, "/feeds/breaking.json")["items"]}
        rss = feedparser.parse(io.BytesIO(c.get("/feeds/breaking.rss").get_data()))
        assert victim not in {e.id for e in rss.entries}
        atom = etree.fromstring(c.get("/feeds/breaking.atom").get_data())
        (gone,) = atom.findall(f"{TOMBSTONE}deleted-entry")
        assert gone.get("ref") == victim and gone.findtext(f"{TOMBSTONE}comment") == "Published in error"
        assert atom.findtext(f"{ATOM}updated") == gone.get("when")  # the retraction is the newest change
        assert victim not in {e.findtext(f"{ATOM}id") for e in atom.findall(f"{ATOM}entry")}
        # the tombstone is in every feed that held the entry, and only those
        assert etree.fromstring(c.get("/feeds/section/live.atom").get_data()).findall(f"{TOMBSTONE}deleted-entry")
        assert not etree.fromstring(c.get("/feeds/latest.atom").get_data()).findall(  # (not in latest)
            f"{TOMBSTONE}deleted-entry")
        assert not etree.fromstring(c.get("/feeds/section/politics.atom").get_data()).findall(
            f"{TOMBSTONE}deleted-entry")
    assert main(["--config", str(collected.path), "retract", "no-such-entry"]) == 1


def test_a_sources_own_tombstone_retracts_the_entry(config_factory, tmp_path: Path):
    cfg = config_factory()
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect(source_ids=["cms-arabic"])
    feed = tmp_path / "samples" / "arabic-edition.atom"
    text = feed.read_text(encoding="utf-8").replace(
        '<feed xmlns="http://www.w3.org/2005/Atom"',
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:at="http://purl.org/atompub/tombstones/1.0"')
    text = text.replace("</feed>", '<at:deleted-entry ref="tag:news.example.org,2026:ar-6002" '
                                   'when="2026-11-25T10:00:00Z"><at:comment>سُحب الخبر</at:comment>'
                                   "</at:deleted-entry></feed>")
    feed.write_text(text, encoding="utf-8")
    with Collector(cfg) as c:
        summary = c.collect(source_ids=["cms-arabic"])
    assert "ar:latest" in summary.topics
    row = store.Entry.get(store.Entry.public_id == "tag:news.example.org,2026:ar-6002")
    assert row.retracted_at is not None and row.retraction_reason == "سُحب الخبر"
    with create_app(cfg).test_client() as c:
        atom = etree.fromstring(c.get("/ar/feeds/latest.atom").get_data())
        assert [g.get("ref") for g in atom.findall(f"{TOMBSTONE}deleted-entry")] == [row.public_id]


def test_samples_stay_valid_to_the_json_schema_after_all_of_this(client):
    for url in ("/feeds/latest.json?limit=5", "/ar/feeds/latest.json", "/feeds/breaking.json"):
        get_json(client, url)
    assert (SAMPLES / "breaking.rss").exists()


def test_breaking_items_leave_the_ticker_after_the_configured_hours(config_factory, tmp_path: Path):
    import dataclasses

    cfg = config_factory()
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect(source_ids=["ticker"])
    # Age the ticker as the clock would: the newest item is 5 hours old, one every 11 minutes before it.
    newest = store.Entry.select(store.Entry.published).order_by(store.Entry.published.desc()).scalar()
    shift = store.utcnow() - timedelta(hours=5) - newest
    ids = [e.id for e in store.Entry.select()]
    store.unpost_entries(ids)  # a new publication date moves them in every feed
    # Read everything first, then write in one transaction that queues for the write lock: an
    # UPDATE issued while a SELECT cursor is still open would have to upgrade that cursor's read
    # snapshot, which SQLite refuses at once (no busy wait) if any other connection wrote since.
    rows = list(store.Entry.select(store.Entry.id, store.Entry.published, store.Entry.updated))
    with store.write_transaction():
        for e in rows:
            store.Entry.update(published=e.published + shift, updated=e.updated + shift).where(
                store.Entry.id == e.id).execute()
    store.repost(ids, cfg.taxonomy.parents)
    six = dataclasses.replace(cfg, site=dataclasses.replace(cfg.site, breaking_hours=6))
    app = create_app(six)
    with app.test_client() as client:
        items = get_json(client, "/feeds/breaking.json?limit=200")["items"]
        assert 0 < len(items) < 15  # items older than six hours have left
        cached = app.extensions["feedhub.cache"]
        key = next(iter(cached._items))
        assert cached._items[key].expires is not None  # valid only until its oldest item leaves
        everything = get_json(client, "/feeds/section/live.json?limit=200")["items"]
        assert len(everything) == 15  # they stay in every other feed
    with create_app(cfg).test_client() as client:  # 0: never leave
        assert len(get_json(client, "/feeds/breaking.json?limit=200")["items"]) == 15
