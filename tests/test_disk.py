"""The store's file under pressure: a full disk, a damaged file, and backups taken while writing."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import Config, load_config
from aggregator.errors import StoreDamaged, StoreFull
from bench.feedserver import FeedServer, sources_toml

from .conftest import LOOPBACK, ROOT, close_store, write_config
from .faults import KeepAliveServer, damage_sqlite, fill_sqlite, free_sqlite
from .test_stopping import ENTRIES, feeds_routes, sources_for


def feedhub(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "web.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def sqlite_config(folder: Path, sources: str | None = None, collect: str = "") -> Config:
    return load_config(write_config(folder, f"sqlite:///{folder / 'var' / 'feedhub.db'}", sources,
                                    collect=collect), environ={})


# --- a full disk ------------------------------------------------------------------------

def test_a_full_disk_stops_the_collect_with_the_cause_and_loses_nothing(tmp_path: Path):
    with KeepAliveServer(feeds_routes(20)) as srv:
        cfg = sqlite_config(tmp_path, sources_for(srv, 20), LOOPBACK)
        database = store.init_db(cfg.database_url)
        fill_sqlite(database, spare_pages=2)  # room for a source or two, not twenty
        with Collector(cfg) as c, pytest.raises(StoreFull) as raised:
            c.collect()
        message = str(raised.value)
        assert "database or disk is full" in message and str(tmp_path / "var" / "feedhub.db") in message
        assert "free disk space" in message
        conn = sqlite3.connect(database.database)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.close()
        S = store.Source
        assert S.select().where(S.lease_owner.is_null(False)).count() == 0  # claims given back
        errors = [e for (e,) in S.select(S.last_error).where(S.last_error.is_null(False)).tuples()]
        assert not any("rollback" in e or "disk is full" in e for e in errors)  # not blamed on sources
        stored_before = store.Entry.select().count()
        assert stored_before < 20 * ENTRIES
        free_sqlite(database)  # space is freed: the next run collects everything
        with Collector(cfg) as c:
            summary = c.collect(only_due=True)
        assert not summary.failed
        assert store.Entry.select().count() == 20 * ENTRIES
        assert store.FetchLog.select(store.FetchLog.source).distinct().count() == 20


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_feedhub_collect_on_a_really_full_disk_exits_1_with_one_sentence(tmp_path: Path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "6m"):
        pytest.skip("needs root to mount a small tmpfs (the in-process test above covers the logic)")
    try:
        cfg_path = write_config(tmp_path, f"sqlite:///{disk / 'feedhub.db'}")
        assert feedhub("--config", str(cfg_path), "init", cwd=tmp_path).returncode == 0
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f:  # leave almost nothing free
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        os.truncate(filler, filler.stat().st_size - 16384)
        full = feedhub("--config", str(cfg_path), "collect", cwd=tmp_path)
        assert full.returncode == 1, full.stderr
        last = full.stderr.strip().splitlines()[-1]
        assert last.startswith("feedhub: error: ") and "full" in last and str(disk / "feedhub.db") in last
        assert "Traceback" not in full.stderr
        filler.unlink()  # space is freed
        again = feedhub("--config", str(cfg_path), "collect", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        conn = sqlite3.connect(disk / "feedhub.db")
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM source WHERE lease_owner IS NOT NULL").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM source WHERE last_success_at IS NULL").fetchone() == (0,)
        conn.close()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# --- a damaged store ------------------------------------------------------------------------

@pytest.fixture
def damaged(tmp_path: Path) -> Config:
    cfg = sqlite_config(tmp_path)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect()
    close_store()
    damage_sqlite(Path(store.db.obj.database))
    return cfg


def test_a_damaged_store_fails_healthz_and_feeds_answer_503(damaged: Config):
    from web import create_app

    client = create_app(damaged).test_client()
    health = client.get("/healthz")
    assert health.status_code == 503 and health.headers["Retry-After"]
    assert health.json["status"] == "damaged" and "restore" in health.json["error"]
    statuses = {client.get(p).status_code for p in ("/feeds/latest.rss", "/feeds/latest.atom", "/feeds/latest.json")}
    assert 500 not in statuses


@pytest.mark.parametrize("command", ["collect", "serve"])
def test_collect_and_serve_refuse_a_damaged_store_with_exit_3(damaged: Config, command: str, tmp_path: Path):
    result = feedhub("--config", str(tmp_path / "config.toml"), command, "--port", "1", cwd=tmp_path) \
        if command == "serve" else feedhub("--config", str(tmp_path / "config.toml"), command, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "malformed" in last and "damaged" in last and "restore the last backup" in last
    assert "Traceback" not in result.stderr


def test_a_passed_integrity_check_is_recorded_and_spares_later_starts(tmp_path: Path):
    """quick_check reads the whole file (seconds at a million entries), so a pass is recorded in
    the store and a start within [store] integrity_check_hours skips it, whichever process ran
    it; a record that is too old, unreadable or from the future never spares a check."""
    cfg = sqlite_config(tmp_path)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect()
    assert store.check_integrity(max_age=3600) is True  # nothing on record yet
    recorded = store.MetaInfo.get(store.MetaInfo.key == "integrity_checked_at").value
    assert abs((store.utcnow() - datetime.fromisoformat(recorded)).total_seconds()) < 60
    assert store.check_integrity(max_age=3600) is False  # passed a moment ago
    close_store()
    damage_sqlite(Path(store.db.obj.database))
    store.init_db(cfg.database_url)
    assert store.check_integrity(max_age=3600) is False  # spared: the damage came after the pass
    with pytest.raises(StoreDamaged, match="malformed"):
        store.check_integrity()  # 0: always
    for stale in ((store.utcnow() - timedelta(hours=2)).isoformat(), "yesterday",
                  (store.utcnow() + timedelta(days=3)).isoformat()):
        store.MetaInfo.update(value=stale).where(store.MetaInfo.key == "integrity_checked_at").execute()
        with pytest.raises(StoreDamaged):
            store.check_integrity(max_age=3600)
    # Each serving process has its own watch; one that finds a fresh pass on record does not
    # read the whole file again.
    store.MetaInfo.update(value=store.utcnow().isoformat()).where(
        store.MetaInfo.key == "integrity_checked_at").execute()
    store.IntegrityWatch(every=300).check()
    with pytest.raises(StoreDamaged):
        store.IntegrityWatch(every=0).check()


def test_a_due_integrity_check_runs_beside_the_health_probes_not_in_them(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    """At a million entries quick_check reads a 3 GB file for seconds, longer than a load
    balancer waits for /healthz. The first probe checks as the command's start does and waits;
    after it, a due check runs in a thread of its own, probes meanwhile get the last result, and
    the damage it finds is reported by the probes that follow."""
    from aggregator.store import integrity

    store.init_db(sqlite_config(tmp_path).database_url)
    now = [0.0]
    watch = store.IntegrityWatch(every=60, clock=lambda: now[0], start_max_age=24 * 3600)
    calls: list[float] = []
    started, release = threading.Event(), threading.Event()

    def slow_check(max_age: float = 0.0) -> bool:
        calls.append(max_age)
        if len(calls) == 1:
            return True
        started.set()
        assert release.wait(60)
        raise StoreDamaged("page 7 is malformed")

    monkeypatch.setattr(integrity, "check_integrity", slow_check)
    watch.check()
    assert calls == [24 * 3600]  # the first probe: a pass within the start rule's hours counts
    now[0] = 59
    watch.check()
    assert len(calls) == 1  # not due
    now[0] = 61
    watch.check()  # due: the check starts, and this probe returns at once with the last result
    assert started.wait(60)
    watch.check()  # still running: no second check beside it
    assert calls == [24 * 3600, 60]
    release.set()
    for thread in threading.enumerate():
        if thread.name == "integrity-check":
            thread.join(60)
    with pytest.raises(StoreDamaged, match="page 7"):
        watch.check()
    assert len(calls) == 2  # the damage found is the answer until the next check falls due


def test_collect_checks_the_file_only_when_no_check_passed_recently(tmp_path: Path):
    """The command's start: the first collect checks (and records the pass), the next one within
    integrity_check_hours does not, and 0 checks at every start."""
    cfg = sqlite_config(tmp_path)
    config_file = str(tmp_path / "config.toml")
    assert feedhub("--config", config_file, "collect", cwd=tmp_path).returncode == 0
    conn = sqlite3.connect(tmp_path / "var" / "feedhub.db")
    first = conn.execute("SELECT value FROM feedhub_meta WHERE key = 'integrity_checked_at'").fetchone()
    assert first is not None
    assert feedhub("--config", config_file, "collect", cwd=tmp_path).returncode == 0
    assert conn.execute("SELECT value FROM feedhub_meta WHERE key = 'integrity_checked_at'").fetchone() == first
    (tmp_path / "config.toml").write_text((tmp_path / "config.toml").read_text(encoding="utf-8")
                                          + "\n[store]\nintegrity_check_hours = 0\n", encoding="utf-8")
    assert load_config(config_file, environ={}).store.integrity_check_hours == 0
    assert feedhub("--config", config_file, "collect", cwd=tmp_path).returncode == 0
    assert conn.execute("SELECT value FROM feedhub_meta WHERE key = 'integrity_checked_at'").fetchone() > first
    conn.close()
    assert cfg.store.integrity_check_hours == 24


# --- backups -------------------------------------------------------------------------------

def test_a_backup_taken_while_collectors_write_restores_to_a_working_store(tmp_path: Path):
    with FeedServer(feeds=60, entries=5) as server:
        cfg = sqlite_config(tmp_path, sources_toml(server, 60), LOOPBACK + "workers = 2\n")
        store.init_db(cfg.database_url)
        backups: list[subprocess.CompletedProcess[str]] = []

        def back_up_while_writing() -> None:  # as soon as the collector has written something
            while store.FetchLog.select().count() < 5:
                threading.Event().wait(0.05)
            backups.append(feedhub("--config", str(tmp_path / "config.toml"), "backup",
                                   str(tmp_path / "backup.db"), cwd=tmp_path))
            close_store()

        thread = threading.Thread(target=back_up_while_writing)
        thread.start()
        with Collector(cfg) as c:
            c.collect()
        thread.join(timeout=120)
    [result] = backups
    assert result.returncode == 0, result.stderr
    assert "backed up" in result.stdout and not (tmp_path / ".backup.db.partial").exists()
    # Restore: the copy becomes the store of a fresh installation.
    restored = tmp_path / "restored"
    (restored / "var").mkdir(parents=True)
    shutil.copy(tmp_path / "backup.db", restored / "var" / "feedhub.db")
    cfg2 = sqlite_config(restored, sources_toml(server, 60))
    conn = sqlite3.connect(restored / "var" / "feedhub.db")
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    entries, logged = conn.execute(
        "SELECT (SELECT count(*) FROM entry), (SELECT coalesce(sum(entries_new), 0) FROM fetch_log)").fetchone()
    conn.close()
    assert entries == logged > 0  # a consistent snapshot: entries and their fetch log agree
    assert feedhub("--config", str(restored / "config.toml"), "init", cwd=restored).returncode == 0
    from web import create_app

    client = create_app(cfg2).test_client()
    assert client.get("/healthz").json["entries"] == entries
    assert client.get("/feeds/latest.atom").status_code == 200


@pytest.mark.postgres
def test_backup_on_postgresql_points_to_pg_dump(config_factory, backend: str, tmp_path: Path):
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    cfg = config_factory()
    store.init_db(cfg.database_url)
    result = feedhub("--config", str(tmp_path / "config.toml"), "backup", str(tmp_path / "x.db"), cwd=tmp_path)
    assert result.returncode == 2 and "pg_dump" in result.stderr and not (tmp_path / "x.db").exists()
