"""Collectors that stop or lose their store mid-run: claims given back, nothing lost or doubled.

Real processes, a real HTTP server on 127.0.0.1, the real PostgreSQL server.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import load_config
from bench.feedserver import FeedServer, make_feed, sources_toml

from .conftest import LOOPBACK, PG_URL, ROOT, PgSchema, close_store, write_config
from .faults import KeepAliveServer, Reply, TcpProxy, terminate_backends, via_proxy, with_application_name
from .test_scaleout import duplicate_entries, wait_for

SOURCES = 40
ENTRIES = 5


def feeds_routes(count: int, on_request=None) -> dict[str, object]:
    """``count`` distinct small feeds; ``on_request(n)`` runs as the n-th request arrives."""
    hits = {"n": 0}
    lock = threading.Lock()

    def route(body: bytes):
        def answer(headers: dict[str, str]) -> Reply:
            with lock:
                hits["n"] += 1
                n = hits["n"]
            if on_request:
                on_request(n)
            return Reply(200, body, {"Content-Type": "application/rss+xml"})
        return answer
    return {f"/feed/{n}.rss": route(make_feed(n, ENTRIES)) for n in range(count)}


def sources_for(srv: KeepAliveServer, count: int) -> str:
    return "".join(f'[[sources]]\nid = "feed-{n}"\nname = "Feed {n}"\nurl = "{srv.url(f"/feed/{n}.rss")}"\n'
                   f'section = "news"\ninterval = 3600\n\n' for n in range(count))


# --- a lost PostgreSQL connection while collecting -------------------------------------

@pytest.mark.postgres
def test_a_collect_whose_connections_are_terminated_mid_run_collects_everything(tmp_path: Path):
    schema = PgSchema()
    app_name = f"fh-collect-{uuid.uuid4().hex[:8]}"
    killed: list[int] = []

    def kill_at(n: int) -> None:
        if n in (12, 25):  # twice, while other sources are being written
            killed.append(terminate_backends(PG_URL, app_name))

    try:
        with KeepAliveServer(feeds_routes(SOURCES, kill_at)) as srv:
            cfg = load_config(write_config(tmp_path, with_application_name(schema.url, app_name),
                                           sources_for(srv, SOURCES), collect=LOOPBACK + "workers = 4\n"),
                              environ={})
            store.init_db(cfg.database_url)
            with Collector(cfg) as c:
                summary = c.collect()
        assert killed and killed[0] > 0
        assert len(summary.outcomes) == SOURCES and not summary.failed, summary.failed
        assert store.Entry.select().count() == SOURCES * ENTRIES
        assert duplicate_entries() == 0
        assert store.Source.select().where(store.Source.lease_owner.is_null(False)).count() == 0
        assert store.FetchLog.select().count() == SOURCES  # one row per fetch that was stored
    finally:
        close_store()
        schema.drop()


@pytest.mark.postgres
def test_collect_loop_carries_on_after_the_database_comes_back(tmp_path: Path):
    schema = PgSchema()
    try:
        with TcpProxy(("127.0.0.1", 5432)) as proxy, KeepAliveServer(feeds_routes(5)) as srv:
            cfg = load_config(write_config(tmp_path, via_proxy(schema.url, proxy), sources_for(srv, 5),
                                           collect=LOOPBACK), environ={})
            store.init_db(cfg.database_url)
            direct = load_config(write_config(tmp_path / "direct", schema.url, sources_for(srv, 5)), environ={})
            stop = threading.Event()
            with Collector(cfg) as c:
                loop = threading.Thread(target=c.run_forever, args=(stop,), kwargs={"tick": 0.2})
                loop.start()
                try:
                    wait_for(lambda: len(srv.requests) >= 5, 60, "the first cycle")
                    proxy.cut()  # the database goes away under the running loop
                    fetched = len(srv.requests)
                    # Make every source due again (over a connection of our own that still works).
                    import psycopg2
                    conn = psycopg2.connect(direct.database_url.split("?")[0],
                                            options=f"-csearch_path={schema.name}")
                    conn.autocommit = True
                    conn.cursor().execute("UPDATE source SET next_due_at = NULL")
                    conn.close()
                    threading.Event().wait(1.0)  # cycles fail meanwhile, one log line each
                    assert loop.is_alive()
                    proxy.restore()
                    wait_for(lambda: len(srv.requests) >= fetched + 5, 60, "the loop to collect again")
                finally:
                    stop.set()
                    loop.join(timeout=60)
            assert not loop.is_alive()
    finally:
        close_store()
        schema.drop()


# --- stopping: Ctrl-C, SIGTERM ------------------------------------------------------------

def run_collector(cfg: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    # A session of its own: the signal goes to the whole group, as a terminal's Ctrl-C does.
    return subprocess.Popen([sys.executable, "-m", "web.cli", "--config", str(cfg), "collect"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_collector_gives_back_its_claims_and_keeps_its_fetch_log(
        sig: signal.Signals, code: int, backend: str, config_factory, tmp_path: Path):
    with FeedServer(feeds=30, entries=2, delay=0.3) as server:
        cfg = config_factory(sources_toml(server, 30),
                             collect=LOOPBACK + "workers = 2\nper_host = 2\nlease_seconds = 3600\n")
        proc = run_collector(tmp_path / "config.toml")
        wait_for(lambda: sum(server.hits.values()) >= 6, 120, "the collector to start fetching")
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=120)
        store.init_db(cfg.database_url)
        # The next run takes every due source at once, not after the lease.
        with Collector(cfg) as c:
            fetched_next = len(c.collect(only_due=True).outcomes)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    S, log = store.Source, store.FetchLog
    assert S.select().where(S.lease_owner.is_null(False)).count() == 0
    fetched_first = log.select(log.source).distinct().count() - fetched_next
    assert 0 < fetched_first < 30 and fetched_first + fetched_next == 30
    # Every fetch is in the fetch log (none of the stopped run's rows were lost in memory).
    assert log.select().count() == 30


def test_a_write_after_another_collector_took_the_source_writes_nothing(backend: str, config_factory):
    def taken_over(headers: dict[str, str]) -> Reply:
        # While this fetch runs, our claim ran out and another collector claimed the source.
        store.db.connect(reuse_if_open=True)
        store.Source.update(lease_owner="collector-other").where(store.Source.key == "taken").execute()
        store.db.close()
        return Reply(200, make_feed(1, 3), {"Content-Type": "application/rss+xml"})

    with KeepAliveServer({"/taken": taken_over}) as srv:
        cfg = config_factory(f'[[sources]]\nid = "taken"\nname = "Taken"\nurl = "{srv.url("/taken")}"\n',
                             collect=LOOPBACK)
        store.init_db(cfg.database_url)
        with Collector(cfg) as c:
            [outcome] = c.collect().outcomes
    assert (outcome.outcome, outcome.error_kind) == ("error", "claim-lost")
    assert "another collector took this source over" in outcome.error
    row = store.Source.get(store.Source.key == "taken")
    assert row.lease_owner == "collector-other" and row.last_fetched_at is None  # left to the other
    assert store.Entry.select().count() == 0 and store.FetchLog.select().count() == 0


def test_an_orphaned_parse_worker_exits_quietly(tmp_path: Path):
    """A collector killed (SIGKILL) while its worker parses: the worker finds its parent gone and
    leaves without a BrokenPipeError traceback."""
    script = f"""
import os, sys, time
sys.path.insert(0, {str(ROOT)!r})
from aggregator.config import load_config
from aggregator.normalize import Context
from aggregator.work import ParsePool, ParseJob
cfg = load_config({str(write_config(tmp_path, "sqlite:///var/x.db"))!r}, environ={{}})
pool = ParsePool(Context.from_config(cfg), size=1, target="tests.slow_start_parser:parse")
worker = pool._acquire()
worker.conn.send(ParseJob(body=open({str(ROOT / 'samples' / 'breaking.rss')!r}, 'rb').read(), url="x",
                          content_type=None, source=cfg.sources[0], now=__import__('datetime').datetime(2026, 1, 1)))
os._exit(9)  # killed before the answer: the worker's send finds no reader
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    # stderr is read to its end, which comes only when the orphaned worker has exited too.
    assert proc.returncode == 9
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr


def test_a_stop_while_a_parse_worker_is_being_started_leaves_no_traceback(tmp_path: Path):
    """SIGTERM lands between the spawn of a parse worker and the start-up message it is sent
    (the window `run` hit when stopped while its collector was starting): the command stops
    with its own exception once the worker has started, and the worker prints nothing."""
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from multiprocessing import util
from aggregator.config import load_config
from aggregator.normalize import Context
from aggregator.work import ParsePool

class Stopped(Exception):
    pass

def on_term(signum, frame):
    raise Stopped()

signal.signal(signal.SIGTERM, on_term)
real_spawn = util.spawnv_passfds

def spawn_then_stop(path, args, passfds):
    pid = real_spawn(path, args, passfds)
    if "--multiprocessing-fork" in args:  # a worker (not multiprocessing's resource tracker)
        os.kill(os.getpid(), signal.SIGTERM)  # it is running; its start-up message is not sent yet
    return pid

util.spawnv_passfds = spawn_then_stop
cfg = load_config({str(write_config(tmp_path, "sqlite:///var/x.db"))!r}, environ={{}})
pool = ParsePool(Context.from_config(cfg), size=1)
try:
    pool.start()
except Stopped:
    print("stopped")
pool.close()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    # stderr is read to its end, which comes only when the spawned worker has exited too.
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stopped"
    assert "Traceback" not in proc.stderr and "EOFError" not in proc.stderr, proc.stderr
