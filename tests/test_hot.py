"""The hot path (web.hot): replayed answers are Flask's own, and never outlive their rendering."""
from __future__ import annotations

import dataclasses
import gc
import subprocess
import sys
import threading
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator import store
from aggregator.config import Config
from web import create_app

from .conftest import close_store

FEED = "/feeds/latest.atom"


def answer(resp) -> tuple[str, list[tuple[str, str]], bytes]:
    return resp.status, list(resp.headers), resp.get_data()


@pytest.fixture
def app(newsroom: Config):
    return create_app(newsroom)


def test_replayed_answers_are_the_ones_flask_sent(app):
    hot = app.extensions["feedhub.hot"]
    client = app.test_client()
    page = FEED + "?limit=7"
    etag = client.get(page).headers["ETag"]
    variants = [
        ("GET", {}),
        ("GET", {"Accept-Encoding": "gzip, deflate"}),
        ("HEAD", {}),
        ("GET", {"If-None-Match": etag}),
        ("HEAD", {"If-None-Match": etag}),
        ("GET", {"X-Other": "1"}),  # headers that do not matter share the answer
    ]
    for method, headers in variants:
        first = client.open(page, method=method, headers=headers)
        before = hot.replayed
        second = client.open(page, method=method, headers=headers)
        assert hot.replayed == before + 1, (method, headers)
        assert answer(second) == answer(first), (method, headers)
    assert client.get(FEED, headers={"If-None-Match": etag}).status_code == 200  # another feed's tag
    zipped = client.get(page, headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["ETag"].endswith('-gz"')
    assert client.head(page).get_data() == b""
    assert int(client.head(page).headers["Content-Length"]) == len(client.get(page).get_data())


def test_any_write_to_the_feed_ends_the_replay(app):
    hot, cache = app.extensions["feedhub.hot"], app.extensions["feedhub.cache"]
    client = app.test_client()
    client.get(FEED)
    renders = cache.renders
    client.get(FEED)
    replayed = hot.replayed
    assert cache.renders == renders

    def bump() -> None:  # another connection: a server thread of the collector's, say
        with store.write_transaction():
            store.bump_topics(["en:latest"], store.utcnow())
        store.db.close()

    writer = threading.Thread(target=bump)
    writer.start()
    writer.join()
    client.get(FEED)
    assert hot.replayed == replayed and cache.renders == renders + 1  # rendered again, by the view
    client.get(FEED)
    assert hot.replayed == replayed + 1  # and replayed from then on
    with store.write_transaction():  # this process's own connection counts too
        store.bump_topics(["en:latest"], store.utcnow())
    client.get(FEED)
    assert hot.replayed == replayed + 1 and cache.renders == renders + 2
    with store.write_transaction():  # a write to another feed leaves this one hot
        store.bump_topics(["es:latest"], store.utcnow())
    client.get(FEED)
    assert hot.replayed == replayed + 2 and cache.renders == renders + 2


def test_other_conditions_errors_and_other_methods_go_to_flask(app):
    hot = app.extensions["feedhub.hot"]
    client = app.test_client()
    plain = client.get(FEED)
    etag, modified = plain.headers["ETag"], plain.headers["Last-Modified"]
    for _ in range(2):
        before = hot.replayed
        assert client.get(FEED, headers={"If-Modified-Since": modified}).status_code == 304
        assert client.get(FEED, headers={"If-None-Match": f'"nope", {etag}'}).status_code == 304
        assert client.get(FEED, headers={"If-None-Match": "W/" + etag}).status_code == 304
        assert client.get(FEED, headers={"If-Match": '"nope"'}).status_code == 412
        assert client.get(FEED, headers={"If-None-Match": etag, "If-Modified-Since": modified}).status_code == 304
        assert client.get("/feeds/latest.atom?since=yesterday").status_code == 400
        assert client.get("/feeds/nowhere.atom").status_code == 404
        assert client.get("/en/feeds/latest.atom").status_code == 308
        assert client.post(FEED).status_code == 405
        assert client.options(FEED).status_code == 200
        assert hot.replayed == before


def test_a_rendering_that_has_aged_is_not_replayed(app):
    hot = app.extensions["feedhub.hot"]
    client = app.test_client()
    client.get(FEED)
    (key, entry), = [(k, v) for k, v in hot._hot.items() if k[0] == FEED and not k[1]]
    # A new day (tombstones leave Atom feeds as days pass): the view renders again.
    entry.day -= timedelta(days=1)
    before = hot.replayed
    client.get(FEED)
    assert hot.replayed == before
    client.get(FEED)
    assert hot.replayed == before + 1
    # A rendering valid until an instant (breaking items leaving the ticker) stops there.
    entry = hot._hot[key]
    aged = dataclasses.replace(entry.rendered(), expires=datetime.now(timezone.utc) - timedelta(seconds=1))
    entry.rendered = weakref.ref(aged)
    client.get(FEED)
    assert hot.replayed == before + 1


def test_replay_holds_no_rendering_the_render_cache_dropped(app):
    hot, cache = app.extensions["feedhub.hot"], app.extensions["feedhub.cache"]
    client = app.test_client()
    client.get(FEED)
    client.get(FEED)
    before = hot.replayed
    cache._items.clear()  # evicted (the cache is an LRU)
    gc.collect()
    assert all(entry.rendered() is None for entry in hot._hot.values())
    assert client.get(FEED).status_code == 200 and hot.replayed == before  # rendered again by the view
    client.get(FEED)
    assert hot.replayed == before + 1


def test_sqlite_revisions_see_other_processes_commit(tmp_path: Path):
    database = store.init_db(f"sqlite:///{tmp_path}/rev.db")
    revisions = store.TopicRevisions(database)
    try:
        assert revisions.get("en:latest") == 0
        assert revisions.get("en:latest") == 0  # remembered: no query
        script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                  "c.execute(\"INSERT INTO topic (key, revision, changed_at) VALUES ('en:latest', 7, '2026-01-01')\"); "
                  "c.commit()")
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "rev.db")], check=True)
        assert revisions.get("en:latest") == 7 == store.topic_revision("en:latest")
    finally:
        revisions.close()
        close_store()


@pytest.mark.parametrize("path", ["/feeds/latest.atom", "/feeds/latest.rss", "/feeds/latest.json"])
def test_replayed_answers_are_kept_apart_by_host(app, newsroom: Config, path: str):
    """With an empty base_url every self link comes from the request's Host, so an answer
    made for one host must never be replayed to another (the hot layer keys by Host)."""
    assert newsroom.server.base_url == ""
    client = app.test_client()
    hot = app.extensions["feedhub.hot"]
    for _ in range(2):  # the second round is served by the hot layer, if it is allowed to
        a = client.get(path, headers={"Host": "feeds.one.example"}).get_data()
        b = client.get(path, headers={"Host": "feeds.two.example"}).get_data()
        assert b"http://feeds.one.example" + path.encode() in a.replace(b"\\/", b"/")
        assert b"http://feeds.two.example" + path.encode() in b.replace(b"\\/", b"/")
        assert b"feeds.two.example" not in a and b"feeds.one.example" not in b
    assert hot.replayed >= 2
