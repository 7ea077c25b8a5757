"""Retention ([store] keep_days): old entries leave the store with everything that hangs off
them, dossiers marked keep hold theirs, collectors keep going meanwhile, and
``feedhub prune --dry-run`` shows what would go."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import peewee as pw

from aggregator import store
from aggregator.collect import Collector, prune
from aggregator.config import Config
from aggregator.store import index
from bench.scale import source_rows
from web.cli import main as cli

from .conftest import LOOPBACK
from .faults import KeepAliveServer, Reply
from .test_index import entry, guids, save

KEEP = '\n[store]\nkeep_days = 30\n'
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def consistent() -> None:
    """No index row, child or link points at an entry that is gone."""
    database = store.db.obj
    e = store.Entry._meta.table_name
    orphans = database.execute_sql(
        f"SELECT COUNT(*) FROM {index.FEED_TABLE} d WHERE NOT EXISTS (SELECT 1 FROM {e} x "
        f"WHERE x.id = (d.key & {index.MASK}))").fetchone()[0]
    assert orphans == 0
    column = index.search_key_column()
    orphans = database.execute_sql(
        f"SELECT COUNT(*) FROM {index.SEARCH_TABLE} s WHERE NOT EXISTS (SELECT 1 FROM {e} x "
        f"WHERE x.id = (s.{column} & {index.MASK}))").fetchone()[0]
    assert orphans == 0
    for child in (store.EntryTag, store.EntryRegion, store.EntryAuthor, store.EntryCoverage, store.Media):
        assert child.select().join(store.Entry, pw.JOIN.LEFT_OUTER).where(store.Entry.id.is_null()).count() == 0
    assert store.Related.select().where(store.Related.related.not_in(store.Entry.select(store.Entry.id))).count() == 0
    if isinstance(database, pw.SqliteDatabase):
        assert database.execute_sql("PRAGMA foreign_key_check").fetchall() == []


def test_prune_removes_old_entries_keeps_dossiers_and_their_links(config_factory):
    config: Config = config_factory(extra=KEEP)
    store.init_db(config.database_url)
    (source,) = source_rows(1)
    cov = next(iter(config.taxonomy.coverage))
    old = NOW.replace(tzinfo=None) - timedelta(days=40)
    save(config, source, [
        entry(1, "old vote story", published=old, tags=("vote",)),
        entry(2, "old dossier story", published=old + timedelta(hours=1), coverage=(cov,)),
        entry(3, "old retracted story", published=old + timedelta(hours=2)),
        entry(4, "new vote story", published=NOW.replace(tzinfo=None) - timedelta(days=1), tags=("vote",)),
    ])
    with store.write_transaction():
        store.retract(store.entry_ids(source.id, [f"https://index.example.org/{3}"]), store.utcnow(), "error",
                      config.taxonomy.parents)
    assert store.Related.select().count() > 0  # 1 and 4 share a tag
    keep = [c for c, v in config.taxonomy.coverage.items() if v.keep]
    latest = store.FeedQuery("en", (("q", "story"),))
    assert guids(latest) == [4, 2, 1]

    # Without a dossier marked keep, the dry run counts all three old ones.
    dry = store.prune(["en", "ar"], NOW - timedelta(days=30), keep, config.taxonomy.parents, NOW, dry_run=True)
    assert (dry.removed, dry.tombstones) == (3, 1)
    assert store.Entry.select().count() == 4  # a dry run changes nothing

    revision = store.topic_revision("en:tag:vote")
    report = store.prune(["en", "ar"], NOW - timedelta(days=30), [cov], config.taxonomy.parents, NOW, batch=1)
    assert (report.removed, report.tombstones, report.kept, report.batches) == (2, 1, 1, 2)
    assert guids(latest) == [4, 2]
    assert guids(store.FeedQuery("en", (("tag", "vote"),))) == [4]
    assert store.topic_revision("en:tag:vote") > revision  # the feeds it left were bumped
    consistent()


def test_collectors_skip_what_retention_would_remove(config_factory, tmp_path: Path):
    config: Config = config_factory(extra=KEEP)
    store.init_db(config.database_url)
    items = "".join(f"<item><title>Story {n}</title><link>https://r.example.org/{n}</link>"
                    f"<pubDate>{(NOW - timedelta(days=days)).strftime('%a, %d %b %Y %H:%M:%S GMT')}</pubDate></item>"
                    for n, days in ((1, 1), (2, 45)))
    body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Archive</title><link>https://r.example.org/'
            f"</link><description>d</description>{items}</channel></rss>").encode()
    with KeepAliveServer({"/feed": Reply(body=body, headers={"Content-Type": "application/rss+xml"})}) as server:
        config = config_factory(f'[[sources]]\nid = "archive"\nname = "Archive"\nurl = "{server.url("/feed")}"\n',
                                extra=KEEP, collect=LOOPBACK)
        with Collector(config) as c:
            assert not c.collect().failed
    assert [e.title for e in store.Entry.select()] == ["Story 1"]


def test_prune_while_collectors_write(config_factory):
    """A collector keeps collecting a feed that grows on every fetch while retention removes
    entries in batches of five: nothing fails, nothing old survives, nothing dangles."""
    counter = {"n": 0}
    lock = threading.Lock()

    def feed(_: dict[str, str]) -> Reply:
        with lock:
            counter["n"] += 1
            top = counter["n"] * 10
        # Twenty items each time: ten new ones, dated now, and ten from two months ago.
        items = "".join(
            f"<item><title>Story {n}</title><link>https://g.example.org/{n}</link><category>Grid</category>"
            f"<pubDate>{(NOW - timedelta(days=60 if n % 2 else 0, minutes=n)).strftime('%a, %d %b %Y %H:%M:%S GMT')}"
            f"</pubDate></item>" for n in range(top, top + 20))
        return Reply(body=(f'<?xml version="1.0"?><rss version="2.0"><channel><title>Grow</title>'
                           f"<link>https://g.example.org/</link><description>d</description>{items}"
                           f"</channel></rss>").encode(), headers={"Content-Type": "application/rss+xml"})

    with KeepAliveServer({"/feed": feed}) as server:
        # Retention off for the collector (it stores the old ones too), on for the pruner.
        config: Config = config_factory(
            f'[[sources]]\nid = "grow"\nname = "Grow"\nurl = "{server.url("/feed")}"\ninterval = 60\n',
            collect=LOOPBACK)
        store.init_db(config.database_url)
        failures: list[BaseException] = []
        stop = threading.Event()

        def collect() -> None:
            try:
                with Collector(config) as c:
                    for _ in range(8):
                        with store.write_transaction():
                            store.Source.update(next_due_at=None).execute()
                        summary = c.collect()
                        assert not summary.failed, summary.failed
            except BaseException as e:  # noqa: BLE001 (reported by the test)
                failures.append(e)
            finally:
                stop.set()
                store.db.close()

        thread = threading.Thread(target=collect)
        thread.start()
        removed = 0
        try:
            while not stop.is_set():
                report = store.prune(["en"], NOW - timedelta(days=30), [], config.taxonomy.parents, NOW, batch=5)
                removed += report.removed
        finally:
            thread.join(60)
        assert not failures, failures
        removed += store.prune(["en"], NOW - timedelta(days=30), [], config.taxonomy.parents, NOW).removed
    assert removed > 0
    published = [store.aware(p) for (p,) in store.Entry.select(store.Entry.published).tuples()]
    assert published and min(published) > NOW - timedelta(days=30)
    recent = sum(1 for n in range(10, 8 * 10 + 20) if n % 2 == 0)  # what eight fetches brought from now
    assert len(guids(store.FeedQuery("en"))) == len(published) == recent
    consistent()


def test_prune_command_dry_run_then_for_real(config_factory, capsys):
    config: Config = config_factory(extra=KEEP)
    store.init_db(config.database_url)
    (source,) = source_rows(1)
    save(config, source, [entry(1, "old", published=NOW.replace(tzinfo=None) - timedelta(days=31)),
                          entry(2, "new", published=NOW.replace(tzinfo=None) - timedelta(days=29))])
    store.db.close()
    assert cli(["--config", str(config.path), "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove 1 entry published before" in out and "en: 1" in out
    store.init_db(config.database_url)
    assert store.Entry.select().count() == 2
    store.db.close()
    assert cli(["--config", str(config.path), "prune"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    store.init_db(config.database_url)
    assert [e.title for e in store.Entry.select()] == ["new"]
    # With retention off, the command says so and removes nothing.
    off = config_factory()
    assert cli(["--config", str(off.path), "prune", "--dry-run"]) == 0
    assert "retention is off" in capsys.readouterr().out


def test_collector_prunes_on_its_own(config_factory):
    config: Config = config_factory(extra=KEEP)
    store.init_db(config.database_url)
    (source,) = source_rows(1)
    save(config, source, [entry(1, "old", published=NOW.replace(tzinfo=None) - timedelta(days=31))])
    with Collector(config) as c:
        report = c.maintain(NOW)
    assert report is not None and report.removed == 1
    assert store.Entry.select().count() == 0
    assert prune(config_factory(), NOW) is None  # keep_days = 0: nothing to do
