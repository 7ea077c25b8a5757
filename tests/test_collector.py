"""The collector against real HTTP servers on 127.0.0.1: politeness, SSRF guard, scheduling, leases."""
from __future__ import annotations

import dataclasses
import socket
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import schedule, store
from aggregator.collect import Collector
from aggregator.config import CollectConfig, Config
from aggregator.errors import FetchError
from aggregator.fetch import AddressPolicy, BlockedAddress, Fetcher, retry_after_seconds
from bench.feedserver import FeedServer, make_feed, sources_toml

from .conftest import LOOPBACK, ROOT, SAMPLES

RSS = (SAMPLES / "breaking.rss").read_bytes()


def one_source(url: str, sid: str = "remote", extra: str = "") -> str:
    return f'[[sources]]\nid = "{sid}"\nname = "Remote"\nurl = "{url}"\nsection = "live"\n{extra}'


def source_row(key: str = "remote") -> store.Source:
    return store.Source.get(store.Source.key == key)


# --- the address policy (no traffic: every check happens before any connect) ------

@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
])
def test_non_public_addresses_are_refused(ip: str):
    with pytest.raises(BlockedAddress, match="sources may only reach public addresses"):
        AddressPolicy().check("example.test", ip)


@pytest.mark.parametrize("ip", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"])
def test_public_addresses_pass(ip: str):
    AddressPolicy().check("example.test", ip)


def test_allow_networks_admits_listed_networks_and_hosts():
    policy = AddressPolicy(("10.1.0.0/16", "intranet.newsroom"))
    policy.check("cms", "10.1.2.3")
    with pytest.raises(BlockedAddress):
        policy.check("cms", "10.2.0.1")
    assert policy.host_allowed("intranet.newsroom") and policy.host_allowed("INTRANET.newsroom.")
    assert not policy.host_allowed("other.newsroom")


def test_every_dns_answer_is_checked(monkeypatch):
    """A name answering with a public and a private address (DNS rebinding) is refused before connecting."""
    connects: list[object] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))])
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: connects.append(addr))
    with pytest.raises(BlockedAddress, match="rebind.example.test resolves to 127.0.0.1, a loopback address"):
        Fetcher(CollectConfig()).fetch("http://rebind.example.test/feed")
    assert connects == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "[::1]",
                                  "[::ffff:127.0.0.1]"])
def test_default_config_refuses_loopback_in_every_spelling(httpserver: HTTPServer, host: str):
    httpserver.expect_request("/feed").respond_with_data(RSS)
    url = f"http://{host}:{httpserver.port}/feed"
    with pytest.raises(BlockedAddress, match="a loopback address; sources may only reach public addresses"):
        Fetcher(CollectConfig()).fetch(url)
    assert httpserver.log == []  # refused before a single request was sent


def test_allowing_loopback_by_network_or_host_name(httpserver: HTTPServer):
    httpserver.expect_request("/feed").respond_with_data(RSS)
    by_net = Fetcher(dataclasses.replace(CollectConfig(), allow_networks=("127.0.0.1/32", "::1/128")))
    assert by_net.fetch(httpserver.url_for("/feed")).body == RSS
    by_name = Fetcher(dataclasses.replace(CollectConfig(), allow_networks=("localhost",)))
    assert by_name.fetch(httpserver.url_for("/feed")).body == RSS


def test_redirect_to_a_non_allowed_address_is_refused(httpserver: HTTPServer):
    httpserver.expect_request("/feed").respond_with_data(
        "", status=302, headers={"Location": f"http://127.0.0.2:{httpserver.port}/feed"})
    fetcher = Fetcher(dataclasses.replace(CollectConfig(), allow_networks=("127.0.0.1/32",)))
    with pytest.raises(BlockedAddress, match="127.0.0.2 resolves to 127.0.0.2, a loopback address"):
        fetcher.fetch(f"http://127.0.0.1:{httpserver.port}/feed")


# --- HTTP behaviour ----------------------------------------------------------------

def test_unchanged_body_costs_no_parse_and_no_write(httpserver: HTTPServer, config_factory):
    httpserver.expect_request("/feed").respond_with_data(RSS, content_type="application/rss+xml")
    cfg = config_factory(one_source(httpserver.url_for("/feed")), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    with Collector(cfg, parse_target="tests.hostile_parser:hang_on_marker") as c:
        assert c.collect().outcomes[0].outcome == "ok"
        stored = {e.id: e.stored_at for e in store.Entry.select()}
        # same bytes, no validators: the body hash says "unchanged" before any parse
        httpserver.clear()
        httpserver.expect_request("/feed").respond_with_data(RSS, content_type="application/rss+xml")
        assert c.collect().outcomes[0].outcome == "unchanged"
    assert {e.id: e.stored_at for e in store.Entry.select()} == stored


def test_permanent_redirect_moves_the_url_only_after_it_repeats(httpserver: HTTPServer, config_factory):
    httpserver.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data(RSS)
    httpserver.expect_request("/temp").respond_with_data("", status=302, headers={"Location": "/new"})
    old = httpserver.url_for("/old")
    cfg = config_factory(one_source(old) + one_source(httpserver.url_for("/temp"), "temp"), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        for n in (1, 2):
            c.collect()
            row = source_row()
            assert (row.fetch_url, row.redirect_target, row.redirect_count) == (None, httpserver.url_for("/new"), n)
        c.collect()
    row = source_row()
    assert row.fetch_url == httpserver.url_for("/new") and row.url == old
    (moved,) = row.url_history
    assert (moved.old_url, moved.new_url) == (old, httpserver.url_for("/new"))
    temp = source_row("temp")  # a temporary redirect never moves anything
    assert temp.fetch_url is None and temp.redirect_count == 0
    with Collector(cfg) as c:
        c.collect(source_ids=["remote"])
    assert [r.path for r, _ in httpserver.log[-1:]] == ["/new"]  # fetched at the new URL directly


def test_410_stops_the_source_until_its_url_changes(httpserver: HTTPServer, config_factory):
    httpserver.expect_request("/gone").respond_with_data("", status=410)
    cfg = config_factory(one_source(httpserver.url_for("/gone")), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        (o,) = c.collect().outcomes
        assert (o.outcome, o.error_kind, o.status) == ("error", "gone", 410)
        row = source_row()
        assert row.disabled_reason.startswith("HTTP 410 Gone") and row.next_due_at is None
        assert c.collect().outcomes == []  # not polled again
    httpserver.expect_request("/back").respond_with_data(RSS)
    moved = config_factory(one_source(httpserver.url_for("/back")), collect=LOOPBACK)
    with Collector(moved) as c:
        assert c.collect().outcomes[0].outcome == "ok"
    assert source_row().disabled_reason is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(httpserver: HTTPServer, config_factory, status: int):
    httpserver.expect_request("/busy").respond_with_data("", status=status, headers={"Retry-After": "1234"})
    cfg = config_factory(one_source(httpserver.url_for("/busy")), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        (o,) = c.collect().outcomes
    assert o.error_kind == "throttled" and "retry after 1234 s" in o.error
    row = source_row()
    assert row.next_due_at - row.last_fetched_at == timedelta(seconds=1234)  # exactly, no jitter


def test_retry_after_is_capped_at_max_interval_as_the_readme_says():
    cfg = dataclasses.replace(CollectConfig(), max_interval=86400)
    assert schedule.failure_delay(1, 300, cfg, retry_after=1234) == 1234
    assert schedule.failure_delay(1, 300, cfg, retry_after=365 * 86400) == 86400
    assert schedule.failure_delay(1, 300, cfg, retry_after=0) == 1
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "never longer than `max_interval`" in readme and "wait exactly `Retry-After`" not in readme


def test_retry_after_forms():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Wed, 25 Nov 2026 12:05:00 GMT", now) == 300
    assert retry_after_seconds("Wed, 25 Nov 2026 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None
    assert retry_after_seconds("²", now) is None  # a digit to str.isdigit, not to int()


def test_bot_challenge_is_reported_as_such(httpserver: HTTPServer):
    httpserver.expect_request("/cf").respond_with_data(
        "<!DOCTYPE html><title>Just a moment...</title>", status=403,
        headers={"cf-mitigated": "challenge"}, content_type="text/html")
    with pytest.raises(FetchError, match="answered with a bot challenge") as info:
        Fetcher(dataclasses.replace(CollectConfig(), allow_networks=("127.0.0.0/8", "::1"))).fetch(
            httpserver.url_for("/cf"))
    assert info.value.kind == "challenge"


def test_redirect_loop(httpserver: HTTPServer):
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    with pytest.raises(FetchError, match="redirect loop"):
        Fetcher(dataclasses.replace(CollectConfig(), allow_networks=("127.0.0.0/8", "::1"))).fetch(
            httpserver.url_for("/a"))


class TricklingServer:
    """Sends headers, then one byte at a time, slowly and forever (until the test ends)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000000\r\n\r\n")
            while not self.stop.wait(0.05):
                conn.sendall(b" ")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_a_server_that_never_finishes_hits_the_total_timeout():
    server = TricklingServer()
    try:
        cfg = dataclasses.replace(CollectConfig(), allow_networks=("127.0.0.0/8",), timeout=5.0,
                                  total_timeout=1.0, max_bytes=10**9)
        with pytest.raises(FetchError, match="was still sending after 1 s; gave up") as info:
            Fetcher(cfg).fetch(f"http://127.0.0.1:{server.port}/feed")
        assert info.value.kind == "timeout"
    finally:
        server.close()


def test_failures_back_off_exponentially_up_to_the_cap():
    cfg = dataclasses.replace(CollectConfig(), max_backoff=3600)
    assert [schedule.failure_delay(n, 300, cfg) for n in range(1, 6)] == [300, 600, 1200, 2400, 3600]
    assert schedule.failure_delay(50, 300, cfg) == 3600
    assert schedule.failure_delay(3, 300, cfg, retry_after=90) == 90
    assert schedule.failure_delay(1, 300, cfg, retry_after=10**9) == cfg.max_interval


def test_jitter_stays_within_its_fraction():
    import random

    cfg = dataclasses.replace(CollectConfig(), jitter=0.1)
    rng = random.Random(1)
    values = [schedule.jittered(1000, cfg, rng) for _ in range(500)]
    assert min(values) >= 900 and max(values) <= 1100 and len(set(values)) > 400


def test_success_interval_takes_the_largest_hint_within_bounds():
    cfg = dataclasses.replace(CollectConfig(), min_interval=60, max_interval=7200)
    assert schedule.success_interval(900, cfg) == 900
    assert schedule.success_interval(900, cfg, ttl_minutes=30) == 1800
    assert schedule.success_interval(900, cfg, max_age=3000) == 3000
    assert schedule.success_interval(900, cfg, ttl_minutes=600) == 7200  # clamped
    assert schedule.success_interval(10, cfg) == 60
    assert schedule.max_age_seconds("public, max-age=600, s-maxage=1200") == 1200
    assert schedule.max_age_seconds("no-cache") is None


def test_adaptive_interval_stretches_slow_sources_but_not_breaking_ones():
    cfg = dataclasses.replace(CollectConfig(), adaptive=True, max_interval=86400)
    now = datetime(2026, 11, 25)
    slow = [now - timedelta(hours=12 * i) for i in range(10)]  # twice a day
    assert schedule.success_interval(900, cfg, recent=slow) == 6 * 3600
    assert schedule.success_interval(900, cfg, recent=slow, breaking=True) == 900
    fast = [now - timedelta(minutes=5 * i) for i in range(10)]
    assert schedule.success_interval(900, cfg, recent=fast) == 900


def test_next_due_follows_the_feeds_ttl(httpserver: HTTPServer, config_factory):
    httpserver.expect_request("/ttl").respond_with_data(RSS.replace(b"<ttl>1</ttl>", b"<ttl>45</ttl>"))
    cfg = config_factory(one_source(httpserver.url_for("/ttl"), extra="interval = 300\n"), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect()
    row = source_row()
    gap = (row.next_due_at - row.last_fetched_at).total_seconds()
    assert row.feed_ttl == 45 and 2700 * 0.9 <= gap <= 2700 * 1.1


def test_per_host_concurrency_limit(config_factory):
    with FeedServer(feeds=8, entries=2, delay=0.3) as server:
        cfg = config_factory(sources_toml(server, 8), collect=LOOPBACK + "per_host = 2\nworkers = 8\n")
        store.init_db(cfg.database_url)
        with Collector(cfg) as c:
            summary = c.collect()
    assert len(summary.outcomes) == 8 and not summary.failed
    assert server.max_active == 2  # eight threads, one host: two at a time


# --- the parse pool -------------------------------------------------------------------

def test_a_hanging_parser_is_killed_and_recorded(config_factory, samples_dir, tmp_path):
    sources = (one_source("samples/hang.rss", "hang") + one_source("samples/crash.rss", "crash")
               + one_source("samples/breaking.rss", "fine"))
    (tmp_path / "samples" / "hang.rss").write_bytes(RSS.replace(b"Breaking news ticker", b"HANG-THE-PARSER"))
    (tmp_path / "samples" / "crash.rss").write_bytes(RSS.replace(b"Breaking news ticker", b"KILL-THE-PARSER"))
    cfg = config_factory(sources, collect="parse_timeout = 2.0\nparse_workers = 1\n")
    store.init_db(cfg.database_url)
    with Collector(cfg, parse_target="tests.hostile_parser:hang_on_marker") as c:
        outcomes = {o.source: o for o in c.collect().outcomes}
    assert outcomes["hang"].outcome == "error"
    assert outcomes["hang"].error == "parsing took longer than 2 s; the parser was stopped"
    assert outcomes["crash"].outcome == "error" and "the parser process died" in outcomes["crash"].error
    assert outcomes["fine"].outcome == "ok" and outcomes["fine"].new == 15  # the pool recovered
    assert source_row("hang").last_error_kind == "parse"


def test_the_parse_time_limit_counts_the_parse_not_the_worker_start(config_factory):
    """A worker that takes 3 s to start (a loaded machine) must not make a 1 s parse limit fail
    a healthy feed: the clock starts when the worker is ready."""
    cfg = config_factory(one_source("samples/breaking.rss", "fine"),
                         collect="parse_timeout = 1.0\nparse_workers = 1\n")
    store.init_db(cfg.database_url)
    with Collector(cfg, parse_target="tests.slow_start_parser:parse") as c:
        outcomes = c.collect().outcomes
    assert [(o.outcome, o.new, o.error) for o in outcomes] == [("ok", 15, None)]


# --- leases ------------------------------------------------------------------------------

def test_leases_keep_a_source_to_one_collector_until_they_expire(collected: Config):
    now = store.utcnow()
    store.Source.update(next_due_at=None).execute()
    first = store.claim_sources("a", now, 60)
    assert len(first) == 7
    assert store.claim_sources("b", now, 60) == []  # all leased
    later = now + timedelta(seconds=61)  # "a" died: its leases expire
    assert {s.key for s in store.claim_sources("b", later, 60)} == {s.key for s in first}


def test_metrics_endpoint(collected: Config):
    from web import create_app

    with create_app(collected).test_client() as client:
        text = client.get("/metrics").get_data(as_text=True)
    assert 'feedhub_fetches_total{kind="",outcome="ok"} 7.0' in text
    assert 'feedhub_entries_ingested_total{kind="new"} 152.0' in text
    assert 'feedhub_fetch_duration_seconds_count 7.0' in text
    assert "feedhub_failing_sources 0.0" in text and "feedhub_entries 152.0" in text


def test_migration_from_schema_1(config: Config):
    """A store made by schema 1 (issue 2's release) is upgraded in place, data kept."""
    from playhouse.migrate import SchemaMigrator, migrate

    store.init_db(config.database_url)
    with Collector(config) as c:
        c.collect(source_ids=["cms-spanish"])
    counts = {m.__name__: m.select().count() for m in (store.Entry, store.EntryTag, store.EntryAuthor, store.Media)}
    assert min(counts.values()) > 0
    database = store.db.obj
    sqlite = config.database_url.startswith("sqlite")
    if sqlite:  # the downgrade rebuilds tables too; keep it from cascading
        database.pragma("foreign_keys", 0)
    migrator = SchemaMigrator.from_database(database)
    migrate(*[migrator.drop_column("source", name) for name in
              ("feed_ttl", "fetch_url", "redirect_target", "redirect_count", "disabled_reason",
               "lease_owner", "lease_until", "id_rule", "id_rule_reason")])
    migrate(migrator.drop_index("entry", "entry_title_key"), migrator.drop_index("entry", "entry_edition_retracted_at"))
    migrate(*[migrator.drop_column("entry", name) for name in
              ("retracted_at", "retraction_reason", "revision", "date_clamped", "published_raw", "updated_raw",
               "title_key")])
    database.drop_tables([store.SourceUrlHistory, store.Metric, store.Topic, store.EntryCoverage, store.EntrySource])
    assert store.Entry.select().count() == counts["Entry"]
    if sqlite:
        database.pragma("foreign_keys", 1)
    store.MetaInfo.update(value="1").where(store.MetaInfo.key == "schema_version").execute()
    database.close()
    store.db.initialize(None)  # as a fresh process would see it
    store.init_db(config.database_url)
    assert store.schema_version() == store.SCHEMA_VERSION
    # the upgrade rebuilt `source` on SQLite without cascading into entries and their children
    assert {m.__name__: m.select().count() for m in (store.Entry, store.EntryTag, store.EntryAuthor,
                                                      store.Media)} == counts
    assert store.Entry.select().join(store.Source).count() == counts["Entry"]
    row = source_row("cms-spanish")
    assert row.lease_owner is None and row.redirect_count == 0 and store.Metric.table_exists()
    assert store.Topic.table_exists() and store.EntryCoverage.table_exists()
    have = {c.name for c in database.get_columns("entry")}
    assert {"retracted_at", "revision", "date_clamped", "published_raw", "title_key"} <= have
    assert store.EntrySource.table_exists()


def test_feedserver_bodies_are_valid_feeds():
    from aggregator.parse import parse_feed

    feed = parse_feed(make_feed(3, 5))
    assert len(feed.entries) == 5 and len({e.guid for e in feed.entries}) == 5
    assert Counter(c.term for e in feed.entries for c in e.categories)["politics"] == 5


def test_many_threads_writing_shared_tags_never_deadlock(config_factory):
    """Forty feeds whose entries share tags, in a different order in every feed, eight writers at once."""
    import random

    from bench.feedserver import WORDS

    with FeedServer(feeds=40, entries=15) as server:
        rng = random.Random(7)
        for path, body in list(server.bodies.items()):
            tags = WORDS[:]
            rng.shuffle(tags)
            cats = "".join(f"<category>{t} desk</category>" for t in tags[:12]).encode()
            server.bodies[path] = body.replace(b"<category>politics</category>", cats)
        cfg = config_factory(sources_toml(server, 40), collect=LOOPBACK + "workers = 8\nper_host = 8\n")
        store.init_db(cfg.database_url)
        with Collector(cfg) as c:
            summary = c.collect()
    assert not summary.failed, summary.failed[:2]
    assert summary.new == 600 and store.Tag.select().count() >= len(WORDS)


def test_a_source_whose_guids_change_every_fetch_is_identified_by_links(httpserver: HTTPServer, config_factory):
    fetches = {"n": 0}

    def handler(request: Request) -> Response:
        fetches["n"] += 1
        items = "".join(f"<item><title>Story {i}</title><link>https://n.example.org/{i}</link>"
                        f"<guid isPermaLink=\"false\">run-{fetches['n']}-{i}</guid></item>" for i in range(6))
        body = f"<rss version=\"2.0\"><channel><title>t</title><link>https://n.example.org/</link>" \
               f"<description>d</description>{items}</channel></rss>"
        return Response(body, content_type="application/rss+xml")

    httpserver.expect_request("/feed").respond_with_handler(handler)
    cfg = config_factory(one_source(httpserver.url_for("/feed")), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert c.collect().new == 6
        ids = {e.link: e.public_id for e in store.Entry.select()}
        second = c.collect()  # new guids, same links: nothing new, nothing changed, nothing duplicated
        assert (second.new, second.updated, second.failed) == (0, 0, [])
        assert c.collect().new == 0
    assert {e.link: e.public_id for e in store.Entry.select()} == ids  # published ids never change
    row = source_row()
    assert row.id_rule == "link" and "guids change on every fetch (6 of 6" in row.id_rule_reason
    assert store.Entry.select().count() == 6
    assert {e.guid for e in store.Entry.select()} == {f"https://n.example.org/{i}" for i in range(6)}
    assert store.Entry.select().where(store.Entry.retracted_at.is_null(False)).count() == 0


def test_the_parse_pool_can_be_started_ahead_of_work(config_factory):
    """ParsePool.start spawns every worker and waits until each has imported its code."""
    from aggregator.normalize import Context
    from aggregator.work import ParseJob, ParsePool

    cfg = config_factory(collect="parse_workers = 2\n")
    pool = ParsePool(Context.from_config(cfg), size=2)
    try:
        pool.start()
        assert len(pool._all) == 2 and all(w.process.is_alive() for w in pool._all)
        pool.start()  # already full: starts nothing more
        assert len(pool._all) == 2
        body = (SAMPLES / "breaking.rss").read_bytes()
        out = pool.run(ParseJob(body=body, url="https://x.example/", content_type=None,
                                source=cfg.sources[0], now=store.utcnow()))
        assert out.entries
    finally:
        pool.close()


def test_adaptive_scheduling_runs_on_the_stored_dates(config_factory):
    """adaptive = true reads a source's recent publication dates from the store on every
    success: a slow source (the samples post hours apart) is polled less often than its interval."""
    cfg = config_factory(collect="adaptive = true\n")
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect()
        store.Source.update(content_hash=None).execute()  # parse (and schedule) again
        assert all(o.outcome == "ok" for o in c.collect().outcomes)
    wire = next(h for h in store.sources_health() if h.key == "meridian-wire")
    assert wire.next_due_at is not None and wire.last_fetched_at is not None
    assert (wire.next_due_at - wire.last_fetched_at).total_seconds() > 900 * 1.2  # stretched beyond interval
