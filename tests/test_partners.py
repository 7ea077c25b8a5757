"""Partner syndication (issue 14) over real HTTP: keys, profiles, rights, embargo and delay on a
controllable clock, request limits, usage; on SQLite and PostgreSQL."""
from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from aggregator import admin, store
from aggregator.collect import Collector
from aggregator.config import Config, load_config
from feeds import clock

from .conftest import close_store, serving_app, write_config
from .test_feeds import SCHEMA as JSONFEED_SCHEMA

PROFILES = """
[partners.profiles.regional]
editions = ["en"]
sections = ["news"]
full_text = false
images = false
page_size = 5
attribution = "From the Example Newsroom"
attribution_link = "https://news.example.org/"
licence = "https://news.example.org/licence"
rate_limit = 60
burst = 4

[partners.profiles.summary]
full_text = false
images = false
attribution = "From the Example Newsroom"
attribution_link = "https://news.example.org/"
licence = "https://news.example.org/licence"
rate_limit = 0

[partners.profiles.full]
full_text = true
rate_limit = 0

[partners.profiles.sister]
own_property = true
rate_limit = 0

[partners.profiles.late]
delay_minutes = 30
rate_limit = 0
"""

ACTOR = admin.Actor("tests", "admin", "cli")


@dataclass
class Site:
    port: int
    config: Config
    folder: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        status, _, body = self.get(path, headers)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def partner(self, name: str, profile: str) -> str:
        return admin.add_partner(ACTOR, name, profile, "", self.config, store.utcnow()).result[1]


def _serve(cfg: Config) -> Iterator[tuple[int, Any]]:
    from web.app import create_app

    app = create_app(cfg)
    with serving_app(app) as port:
        yield port, app
    app.extensions["feedhub.usage"].close()


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[Site]:
    cfg = load_config(write_config(tmp_path, db_url, extra=PROFILES), environ={})
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert not c.collect().failed
    for port, _ in _serve(cfg):
        yield Site(port, cfg, tmp_path)
    close_store()


def test_a_key_opens_the_partners_feeds_and_nothing_else_does(site: Site):
    key = site.partner("gazette", "full")
    public = site.json("/feeds/latest.json")
    mine = site.json(f"/partner/{key}/feeds/latest.json")
    assert [i["id"] for i in mine["items"]] == [i["id"] for i in public["items"]]
    assert mine["feed_url"].endswith(f"/partner/{key}/feeds/latest.json")
    assert mine["next_url"].split("?")[0].endswith(f"/partner/{key}/feeds/latest.json")
    status, headers, _ = site.get(f"/partner/{key}/feeds/latest.atom")
    assert status == 200 and f"/partner/{key}/feeds/latest.atom" in headers["link"]
    assert "private" in headers["cache-control"]
    # The same feeds with the key as a Bearer token, links within /partner/feeds/.
    bearer = site.json("/partner/feeds/latest.json", {"Authorization": f"Bearer {key}"})
    assert bearer["feed_url"].endswith("/partner/feeds/latest.json") and key not in json.dumps(bearer)
    arabic = site.json("/partner/ar/feeds/latest.json", {"Authorization": f"Bearer {key}"})
    assert arabic["language"] == "ar"
    # No key, a wrong key, a revoked key: 401 with one message, never the public feed.
    answers = set()
    for path, headers in [("/partner/feeds/latest.json", {}), ("/partner/pk_wrong/feeds/latest.json", {}),
                          ("/partner/feeds/latest.json", {"Authorization": "Bearer pk_wrong"}),
                          ("/partner/not-a-key/feeds/latest.json", {})]:
        status, headers_out, body = site.get(path, headers)
        assert status == 401 and b'"items"' not in body and "www-authenticate" in headers_out
        answers.add(body if "Authorization" in headers else b"")
    info = store.partner("gazette")
    admin.revoke_partner_key(ACTOR, "gazette", info.keys[0].id, store.utcnow())
    wrong = site.get("/partner/pk_wrong/feeds/latest.json")[2]
    status, _, body = site.get(f"/partner/{key}/feeds/latest.json")
    assert status == 401 and body == wrong  # which part was wrong is not said
    page = site.get(f"/partner/{key}/")
    assert page[0] == 401


def test_a_rotated_key_overlaps_then_stops_and_a_suspended_partner_is_out(site: Site):
    old = site.partner("gazette", "full")
    new = admin.rotate_key(ACTOR, "gazette", 2, store.utcnow()).result[1]
    assert site.get(f"/partner/{old}/feeds/latest.rss")[0] == 200  # within the overlap
    assert site.get(f"/partner/{new}/feeds/latest.rss")[0] == 200
    newest = admin.rotate_key(ACTOR, "gazette", 0, store.utcnow()).result[1]  # no overlap: the others stop
    assert site.get(f"/partner/{old}/feeds/latest.rss")[0] == 401
    assert site.get(f"/partner/{new}/feeds/latest.rss")[0] == 401
    assert site.get(f"/partner/{newest}/feeds/latest.rss")[0] == 200
    admin.edit_partner(ACTOR, "gazette", {"status": "suspended"}, site.config, store.utcnow())
    assert site.get(f"/partner/{newest}/feeds/latest.rss")[0] == 401
    admin.edit_partner(ACTOR, "gazette", {"status": "active"}, site.config, store.utcnow())
    assert site.get(f"/partner/{newest}/feeds/latest.rss")[0] == 200
    assert [a.action for a in reversed(store.audit_rows(10))] == [
        "partner.add", "partner.rotate", "partner.rotate", "partner.edit", "partner.edit"]


def test_a_profile_decides_editions_sections_text_images_page_size_attribution_and_licence(site: Site):
    key = site.partner("gazette", "regional")
    feed = site.json(f"/partner/{key}/feeds/latest.json?limit=50")
    assert len(feed["items"]) == 5  # page_size
    news = set(site.config.taxonomy.section_family("news"))
    assert {i["_feedhub"]["section"] for i in feed["items"]} <= news
    assert all("content_html" not in i and "image" not in i for i in feed["items"])
    assert all(i["summary"].endswith("From the Example Newsroom") for i in feed["items"])
    assert feed["_feedhub"] == {"licence": "https://news.example.org/licence"}
    public = site.json("/feeds/latest.json?limit=50")
    assert any("content_html" in i for i in public["items"])  # the public feed is untouched
    assert any(i["_feedhub"]["section"] not in news for i in public["items"])
    status, _, body = site.get(f"/partner/{key}/ar/feeds/latest.json")
    assert status == 404 and b"not in your terms" in body
    atom = etree.fromstring(site.get(f"/partner/{key}/feeds/latest.atom")[2])
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert atom.find("a:link[@rel='license']", ns).get("href") == "https://news.example.org/licence"
    assert atom.findtext("a:id", namespaces=ns).startswith("tag:news.example.org,2026:partner-profile/regional/")
    assert all(e.find("a:content", ns) is None or e.find("a:content", ns).get("type") == "text"
               for e in atom.findall("a:entry", ns))
    page = site.get(f"/partner/{key}/")
    assert page[0] == 200 and b"summaries only" in page[2] and b"60 a minute" in page[2]
    assert f"/partner/{key}/feeds/section/politics.atom".encode() in page[2]
    assert f"/partner/{key}/feeds/section/opinion.atom".encode() not in page[2]  # outside its sections


def test_wire_copy_follows_its_rights_in_public_and_partner_feeds(site: Site):
    full = site.partner("gazette", "full")
    sister = site.partner("sister-site", "sister")
    wire = "Meridian"
    original = site.config.path.read_text(encoding="utf-8")

    def wire_items(path: str) -> list[dict[str, Any]]:
        items = site.json(path + "?limit=200")["items"]
        return [i for i in items if (i["_feedhub"].get("source") or {}).get("title", "").startswith(wire)]

    def set_rights(rights: str) -> None:
        text = original.replace(
            'id = "meridian-wire"', f'id = "meridian-wire"\nrights = "{rights}"\n'
                                    'rights_statement = "© Meridian Wire; not for redistribution"', 1)
        cfg = load_config(_written(site, text), environ={})
        store.sync_sources(cfg)  # as at a start or SIGHUP: the source's feeds are bumped

    everyone = wire_items("/feeds/latest.json")
    assert everyone and all(i["_feedhub"]["rights"] == "Copyright 2026 Example Newsroom" for i in everyone)
    set_rights("partners")
    assert wire_items("/feeds/latest.json") == []
    mine = wire_items(f"/partner/{full}/feeds/latest.json")
    assert mine and all(i["_feedhub"]["rights"] == "© Meridian Wire; not for redistribution" for i in mine)
    rss = site.get(f"/partner/{full}/feeds/latest.rss?limit=200")[2]
    assert "<dc:rights>© Meridian Wire; not for redistribution</dc:rights>".encode() in rss
    set_rights("own")
    assert wire_items("/feeds/latest.json") == [] and wire_items(f"/partner/{full}/feeds/latest.json") == []
    assert wire_items(f"/partner/{sister}/feeds/latest.json")  # one of our own sites


def _written(site: Site, text: str) -> Path:
    site.config.path.write_text(text, encoding="utf-8")
    return site.config.path


def test_an_embargo_lifts_exactly_on_time_in_every_feed_and_cache(site: Site, monkeypatch: pytest.MonkeyPatch):
    start = datetime.now(timezone.utc).replace(microsecond=0)
    monkeypatch.setattr(clock, "clock", lambda: start)
    late = site.partner("late-partner", "late")
    lift = start + timedelta(minutes=20)
    done = admin.push_breaking(ACTOR, "Embargoed: budget figures", site.config, store.utcnow(),
                               embargo_until=lift)
    assert done.result.published == lift
    titles = lambda path: [i["title"] for i in site.json(path + "?limit=200")["items"]]  # noqa: E731
    assert "Embargoed: budget figures" not in titles("/feeds/latest.json")  # rendered and cached now
    status, headers, _ = site.get("/feeds/breaking.atom")
    assert status == 200 and int(headers["cache-control"].split("max-age=")[1]) <= 20 * 60
    monkeypatch.setattr(clock, "clock", lambda: lift - timedelta(seconds=1))
    assert "Embargoed: budget figures" not in titles("/feeds/latest.json")
    assert "Embargoed: budget figures" not in titles("/feeds/breaking.json")
    monkeypatch.setattr(clock, "clock", lambda: lift)
    assert "Embargoed: budget figures" in titles("/feeds/latest.json")  # the cache expired with it
    assert "Embargoed: budget figures" in titles("/feeds/breaking.json")
    # A partner 30 minutes behind sees it 30 minutes later.
    assert "Embargoed: budget figures" not in titles(f"/partner/{late}/feeds/latest.json")
    monkeypatch.setattr(clock, "clock", lambda: lift + timedelta(minutes=30))
    assert "Embargoed: budget figures" in titles(f"/partner/{late}/feeds/latest.json")


def test_a_running_collector_tells_the_hubs_when_an_embargo_lifts(site: Site):
    lift = datetime.now(timezone.utc) + timedelta(minutes=5)
    admin.push_breaking(ACTOR, "Held until noon", site.config, store.utcnow(), embargo_until=lift)
    told: list[set[str]] = []
    with Collector(site.config, on_topics=told.append) as c:
        assert c.lift_embargoes(lift - timedelta(minutes=10), lift - timedelta(seconds=1)) == set()
        topics = c.lift_embargoes(lift - timedelta(seconds=1), lift + timedelta(seconds=1))
    assert {"en:latest", "en:breaking"} <= topics and told == [topics]


def test_past_the_limit_a_partner_gets_429_and_a_304_costs_less(site: Site, monkeypatch: pytest.MonkeyPatch):
    frozen = datetime.now(timezone.utc)
    monkeypatch.setattr(clock, "clock", lambda: frozen)  # no refill while the test runs, however slow
    key = site.partner("gazette", "regional")  # 60 a minute, bursts of 4
    path = f"/partner/{key}/feeds/latest.rss"
    status, _, _ = site.get(path)
    assert status == 200
    for _ in range(3):
        assert site.get(path)[0] == 200
    status, headers, body = site.get(path)
    assert status == 429 and int(headers["retry-after"]) == 1 and b"limit" in body
    frozen += timedelta(seconds=1)  # a token later
    assert site.get(path)[0] == 200 and site.get(path)[0] == 429
    other = site.partner("other", "regional")  # its own allowance: 4 tokens
    status, headers, _ = site.get(f"/partner/{other}/feeds/latest.rss")  # a full answer: 1 token
    assert status == 200
    # A 304 costs a quarter: twelve of them fit in the 3 tokens left (at 1 a token, the 4th would be 429).
    results = [site.get(f"/partner/{other}/feeds/latest.rss", {"If-None-Match": headers["etag"]})[0]
               for _ in range(12)]
    assert results == [304] * 12


def test_usage_is_counted_per_partner_feed_and_day_with_agents(site: Site):
    key = site.partner("gazette", "full")
    path = f"/partner/{key}/feeds/latest.rss"
    etag = site.get(path, {"User-Agent": "GazetteBot/1.0"})[1]["etag"]
    for _ in range(3):
        site.get(path, {"User-Agent": "GazetteBot/1.0", "If-None-Match": etag})
    site.get(f"/partner/{key}/feeds/breaking.json", {"User-Agent": "Other/2"})
    site.get("/feeds/latest.atom", {"User-Agent": "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 42 subscribers)"})
    site.get("/feeds/latest.atom", {"User-Agent": "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 40 subscribers)"})
    from web.app import create_app

    create_app(site.config)  # (the running app's recorder is flushed below)
    for recorder in _recorders():
        recorder.flush()
    usage = {u.feed: u for u in store.partner_usage(store.partner("gazette").id, store.utcnow().date())}
    rss = usage["/feeds/latest.rss"]
    assert (rss.requests, rss.ok, rss.not_modified, rss.limited) == (4, 1, 3, 0) and rss.bytes > 0
    assert usage["/feeds/breaking.json"].requests == 1
    assert store.partner_agents(store.partner("gazette").id, store.utcnow().date()) == ["GazetteBot/1.0", "Other/2"]
    assert store.feed_subscribers(store.utcnow().date()) == {"/feeds/latest.atom": 42}
    assert store.partner("gazette").keys[0].last_used_at is not None


def _recorders() -> list[Any]:
    import gc

    from web.usage import UsageRecorder

    return [o for o in gc.get_objects() if isinstance(o, UsageRecorder)]


def test_every_partner_feed_is_valid_json_feed_and_well_formed_xml(site: Site):
    import jsonschema

    key = site.partner("gazette", "summary")
    full = site.partner("full-one", "full")
    for k in (key, full):
        for path in ("/feeds/latest", "/feeds/breaking", "/feeds/section/news", "/feeds/region/mena"):
            jsonschema.validate(site.json(f"/partner/{k}{path}.json"), JSONFEED_SCHEMA)
            for fmt in ("rss", "atom"):
                status, _, body = site.get(f"/partner/{k}{path}.{fmt}")
                assert status == 200
                etree.fromstring(body)


def test_a_hostile_path_is_answered_but_never_poisons_the_usage_counts(site: Site):
    """One request whose path holds NUL must not make every later batch fail (PostgreSQL refuses
    NUL in text): it is answered, and simply not counted."""
    key = site.partner("gazette", "full")
    for path in ("/feeds/latest%00.rss", f"/partner/{key}/feeds/latest%00.rss", "/feeds/latest.rss",
                 f"/partner/{key}/feeds/latest.rss"):
        status = site.get(path, {"User-Agent": "Bot/1 (3 subscribers)"})[0]
        assert status in (200, 400, 404), (path, status)
    for recorder in _recorders():
        recorder.flush()
    day = store.utcnow().date()
    assert dict(store.feed_requests(day, 10)) == {"/feeds/latest.rss": 1}
    assert [(u.feed, u.requests) for u in store.partner_usage(store.partner("gazette").id, day)] == [
        ("/feeds/latest.rss", 1)]
