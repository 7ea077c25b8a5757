"""Serving and collecting through a lost PostgreSQL connection, against the real server.

The connections are ended the way an operator, a restart or a failover ends them:
``pg_terminate_backend`` on exactly this test's backends (found by their
application_name), or a TCP proxy in front of PostgreSQL that is cut and restored.
"""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import Config, load_config

from .conftest import PG_URL, PgSchema, close_store, serving_app, write_config
from .faults import TcpProxy, terminate_backends, via_proxy, with_application_name

pytestmark = pytest.mark.postgres

PATHS = ["/healthz", "/feeds/latest.rss", "/feeds/latest.atom", "/feeds/latest.json",
         "/feeds/section/politics.atom", "/feeds/region/mena.rss", "/ar/feeds/latest.json", "/metrics",
         "/feeds/", "/feeds.opml"]


@pytest.fixture
def pg_schema() -> Iterator[PgSchema]:
    schema = PgSchema()
    yield schema
    schema.drop()


def newsroom_on(url: str, folder: Path, collect: str = "") -> Config:
    cfg = load_config(write_config(folder, url, collect=collect), environ={})
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert not c.collect().failed
    close_store()
    return cfg


@contextmanager
def served(cfg: Config, threads: int = 4) -> Iterator[int]:
    """The app under waitress on 127.0.0.1, as `feedhub serve` runs it; yields the port."""
    from web import create_app

    with serving_app(create_app(cfg), threads) as port:
        yield port


def listening_through(proxy: TcpProxy) -> bool:
    """Is this process's topic listener for the database behind ``proxy`` still trusted?"""
    from aggregator.store.topics import _Listener

    return any(listener.version() is not None for listener in list(_Listener._by_database.values())
               if listener._params.get("port") in (proxy.port, str(proxy.port)))


def until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Wait for ``check`` (a deadline for a hung test, not a speed claim)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def get_all(port: int, rounds: int = 2) -> list[tuple[str, int, dict[str, str], bytes]]:
    """Every path, several times and from several client threads at once, so every server
    thread (and its connection) is used."""
    with ThreadPoolExecutor(8) as pool:
        futures = [(p, pool.submit(get, port, p)) for _ in range(rounds) for p in PATHS]
        return [(p, *f.result()) for p, f in futures]


def test_serving_reconnects_after_the_backends_are_terminated(pg_schema: PgSchema, tmp_path: Path):
    app_name = f"fh-serve-{uuid.uuid4().hex[:8]}"
    cfg = newsroom_on(with_application_name(pg_schema.url, app_name), tmp_path)
    with served(cfg) as port:
        assert {(p, s) for p, s, _, _ in get_all(port)} == {(p, 200) for p in PATHS}
        assert terminate_backends(PG_URL, app_name) >= 2  # request threads, revisions, ...
        # Nothing was in flight when they were ended: every request after it is answered.
        after = get_all(port, rounds=3)
        assert [(p, s) for p, s, _, _ in after if s != 200] == []
        health = json.loads(get(port, "/healthz")[2])
        assert health["status"] == "ok" and health["entries"] > 0


def test_serving_answers_503_while_the_database_is_away_and_recovers_by_itself(
        pg_schema: PgSchema, tmp_path: Path):
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        cfg = newsroom_on(via_proxy(pg_schema.url, proxy), tmp_path)
        with served(cfg) as port:
            assert {s for _, s, _, _ in get_all(port, rounds=1)} == {200}
            until(lambda: listening_through(proxy), "the topic listener")  # (what the wait below watches)
            proxy.cut()  # a restart or failover: every connection gone, none accepted
            # Until its LISTEN connection's end reaches the process (its own thread reads it,
            # within moments), a cached feed may still be answered: from then on, none is.
            until(lambda: not listening_through(proxy), "the topic listener to see the cut")
            down = get_all(port, rounds=2)
            for path, status, headers, body in down:
                assert status == 503, (path, status, body[:300])
                assert headers["Retry-After"] == "5"
                assert b"Traceback" not in body and b"psycopg2" not in body
            status, headers, body = get(port, "/feeds/latest.json")
            assert json.loads(body)["error"]["status"] == 503
            proxy.restore()  # the database is back: no restart of feedhub needed
            assert [(p, s) for p, s, _, _ in get_all(port) if s != 200] == []


_OPEN = "import sys; from aggregator import store; store.init_db(sys.argv[1]); print(store.SCHEMA_VERSION)"


def _open_in_process(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _OPEN, url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_opening_a_current_store_waits_for_no_writer(pg_schema: PgSchema):
    """A process starting beside a writer mid-transaction opens the store at once. It used to
    run CREATE INDEX IF NOT EXISTS on every table at start, which queues behind (or deadlocks
    with) any open write: seen in CI as a deadlock between a starting server and an admin edit."""
    import psycopg2

    store.init_db(pg_schema.url)
    close_store()
    writer = psycopg2.connect(pg_schema.url)
    try:
        with writer.cursor() as cur:  # an open transaction holding row-exclusive locks
            cur.execute("INSERT INTO audit (at, actor, via, action, target) "
                        "VALUES (now(), 't', 'cli', 'test', 'x')")
            cur.execute("UPDATE feedhub_meta SET value = value WHERE key = 'schema_version'")
        proc = _open_in_process(pg_schema.url)
        out, err = proc.communicate(timeout=60)  # before: blocked until the writer commits
        assert proc.returncode == 0, err
        assert out.strip() == str(store.SCHEMA_VERSION)
    finally:
        writer.rollback()
        writer.close()


def test_processes_creating_one_store_at_once_all_succeed(pg_schema: PgSchema):
    """Web processes and a collector started together on an empty database: one creates the
    schema while the others wait for it, instead of racing on CREATE TABLE."""
    procs = [_open_in_process(pg_schema.url) for _ in range(4)]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
    store.init_db(pg_schema.url)
    assert store.MetaInfo.get(store.MetaInfo.key == "schema_version").value == str(store.SCHEMA_VERSION)


def test_opening_the_store_survives_its_connection_being_ended(pg_schema: PgSchema, monkeypatch):
    """The connection is ended twice: while it sits idle between two opens (a thread that keeps
    its connection, as the web and test threads do), and in the middle of creating the schema.
    Each open finishes on a new connection, and the schema is whole: its creation is one
    transaction, so the ended attempt left nothing behind to trip over."""
    from aggregator.store import index

    name = f"fh-init-{uuid.uuid4().hex[:8]}"
    url = with_application_name(pg_schema.url, name)
    original = index.create_tables
    ended: list[int] = []

    # (At least one: a background thread of an earlier test's app, such as its usage writer, may
    # have connected to the store in use now, under the same name.)
    def create_after_the_end(database) -> None:
        if not ended:
            ended.append(terminate_backends(PG_URL, name))
        original(database)

    monkeypatch.setattr(index, "create_tables", create_after_the_end)
    store.init_db(url)
    assert len(ended) == 1 and ended[0] >= 1
    assert store.MetaInfo.get(store.MetaInfo.key == "schema_version").value == str(store.SCHEMA_VERSION)
    assert terminate_backends(PG_URL, name) >= 1  # the idle connection this thread kept
    store.init_db(url)
    assert store.Source.select().count() == 0
