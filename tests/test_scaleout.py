"""Several collector processes on one store, and a collector killed with SIGKILL mid-run.

Real processes (`python -m web.cli ...`) against a real HTTP server on 127.0.0.1;
on SQLite and, when configured, on the real PostgreSQL server.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import peewee as pw

from aggregator import store
from aggregator.config import load_config
from bench.feedserver import FeedServer, sources_toml

from .conftest import LOOPBACK, ROOT, write_config


def start_collector(cfg: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "web.cli", "--config", str(cfg), "collect", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, limit: float, what: str) -> None:
    """Poll until ``predicate()``; the limit only bounds a broken run, it asserts no speed."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def duplicate_entries() -> int:
    E = store.Entry
    dup = (E.select(E.source, E.guid, pw.fn.COUNT(E.id).alias("n")).group_by(E.source, E.guid)
           .having(pw.fn.COUNT(E.id) > 1))
    return dup.count()


def test_three_collectors_fetch_every_source_once_per_interval(tmp_path: Path, db_url: str):
    with FeedServer(feeds=120, entries=5, delay=0.02) as server:
        cfg_path = write_config(tmp_path, db_url, sources_toml(server, 120, interval=3600),
                                collect=LOOPBACK + "workers = 4\nparse_workers = 1\njitter = 0.0\n")
        cfg = load_config(cfg_path, environ={})
        store.init_db(cfg.database_url)
        store.sync_sources(cfg)  # an admin's `feedhub init`; the collectors start on a ready store
        procs = [start_collector(cfg_path, "--loop") for _ in range(3)]
        try:
            done = store.Source.select().where(store.Source.last_success_at.is_null(False))
            wait_for(lambda: done.count() == 120, 180, "all 120 sources to be collected")
            time.sleep(6)  # more than one loop tick: nothing is due again within the interval
        finally:
            for p in procs:
                p.send_signal(signal.SIGINT)
            logs = [p.communicate(timeout=30)[0] for p in procs]
    assert sorted(server.hits.values()) == [1] * 120, "every source fetched exactly once"
    assert set(server.hits) == {f"/feed/{n}.rss" for n in range(120)}
    assert store.Entry.select().count() == 600 and duplicate_entries() == 0
    assert store.FetchLog.select().count() == 120
    per_process = [sum(int(n) for n in re.findall(r"collected (\d+) source", log)) for log in logs]
    assert sum(per_process) == 120, logs
    assert sum(1 for n in per_process if n) >= 2, f"the work was not shared: {per_process}"


def test_a_collector_killed_mid_run_loses_and_duplicates_nothing(tmp_path: Path, db_url: str):
    with FeedServer(feeds=30, entries=10, delay=0.25) as server:
        cfg_path = write_config(tmp_path, db_url, sources_toml(server, 30),
                                collect=LOOPBACK + "workers = 2\nparse_workers = 1\nlease_seconds = 2\n")
        cfg = load_config(cfg_path, environ={})
        store.init_db(cfg.database_url)
        store.sync_sources(cfg)
        victim = start_collector(cfg_path)
        stored = store.Source.select().where(store.Source.content_hash.is_null(False))
        wait_for(lambda: stored.count() >= 6, 120, "the first sources to be stored")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL
        # Whatever committed is whole: a source is either fully stored with its hash, or untouched.
        for row in store.Source.select():
            stored = row.entries.count()
            assert (row.content_hash is not None and stored == 10) or (row.content_hash is None and stored == 0)
        finished_before = store.Source.select().where(store.Source.content_hash.is_null(False)).count()
        assert 0 < finished_before < 30
        time.sleep(2.5)  # the dead collector's leases expire
        again = start_collector(cfg_path)
        out, _ = again.communicate(timeout=180)
        assert again.returncode == 0, out
    assert store.Source.select().where(store.Source.content_hash.is_null(True)).count() == 0
    assert store.Entry.select().count() == 300 and duplicate_entries() == 0
    assert store.Source.select().where(store.Source.lease_owner.is_null(False)).count() == 0
