"""Collecting into the store (SQLite, and PostgreSQL when configured): counts, idempotence, failures."""
from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import Config, load_config
from aggregator.errors import StoreError

from .conftest import SAMPLES

EXPECTED_PER_SOURCE = {"cms-news": 40, "cms-articles": 25, "meridian-wire": 25, "harbour-post": 20,
                       "ticker": 15, "cms-arabic": 15, "cms-spanish": 12}


def table_counts() -> dict[str, int]:
    return {m.__name__: m.select().count() for m in store.MODELS}


def entry_snapshot() -> dict[int, tuple]:
    E = store.Entry
    return {e.id: (e.fingerprint, e.stored_at, e.title) for e in E.select(E.id, E.fingerprint, E.stored_at, E.title)}


def test_sample_newsroom_is_collected(collected: Config):
    E = store.Entry
    per_source = Counter(e.source.key for e in E.select(E, store.Source).join(store.Source))
    assert per_source == EXPECTED_PER_SOURCE
    assert sum(per_source.values()) >= 120
    assert store.schema_version() == store.SCHEMA_VERSION
    # spread over sections, regions, tags; several authors; images with captions and credits
    assert len({e.section for e in E.select()}) >= 15
    assert len({r.region for r in store.EntryRegion.select()}) >= 7
    assert store.Tag.select().count() >= 40 and store.Author.select().count() >= 10
    leads = list(store.Media.select().where(store.Media.lead == True))  # noqa: E712
    assert len(leads) >= 100
    assert sum(1 for m in leads if m.caption and m.credit) >= 90
    # editions from language
    assert Counter(e.edition for e in E.select()) == {"en": 125, "ar": 15, "es": 12}
    # tracking parameters are stripped from the CMS's links
    assert not E.select().where(E.link.contains("utm_")).exists()
    # the ticker is breaking, and so are prefixed items in other editions
    assert E.select().where(E.breaking == True).count() == 17  # noqa: E712
    for row in store.Source.select():
        assert row.last_error is None and row.consecutive_failures == 0
        assert row.entries_seen == EXPECTED_PER_SOURCE[row.key]


def test_arabic_text_is_byte_exact_in_the_store(collected: Config):
    raw = (SAMPLES / "arabic-edition.atom").read_bytes()
    title = "مَعْرِضُ الكِتَابِ يَفْتَحُ أَبْوَابَهُ لِلزُّوَّارِ فِي دَوْرَتِهِ العَاشِرَة"
    assert title.encode("utf-8") in raw
    row = store.Entry.get(store.Entry.title == title)
    assert row.title.encode("utf-8") == title.encode("utf-8")
    assert row.language == "ar" and row.edition == "ar"
    tags = {t.tag.name for t in row.tag_links}
    assert "الكتب" in tags


def test_recollecting_unchanged_feeds_writes_nothing(collected: Config):
    before_rows, before_entries = table_counts(), entry_snapshot()
    summary = Collector(collected).collect()
    assert {o.outcome for o in summary.outcomes} == {"unchanged"}  # same bytes: not even parsed
    # Force the full path (parse, normalise, compare) with the same content:
    store.Source.update(content_hash=None).execute()
    summary = Collector(collected).collect()
    assert {o.outcome for o in summary.outcomes} == {"ok"}
    assert summary.new == 0 and summary.updated == 0
    after_rows = table_counts()
    assert after_rows["Entry"] == before_rows["Entry"] and after_rows["Media"] == before_rows["Media"]
    assert after_rows["EntryTag"] == before_rows["EntryTag"]
    assert entry_snapshot() == before_entries  # no entry row was rewritten


def test_a_changed_entry_is_updated_in_place(config_factory, tmp_path: Path):
    cfg = config_factory()
    store.init_db(cfg.database_url)
    Collector(cfg).collect()
    feed = tmp_path / "samples" / "spanish-edition.rss"
    text = feed.read_text(encoding="utf-8")
    old = "Montebrisa inaugura un festival de cine al aire libre"
    feed.write_text(text.replace(old, old + " (actualizado)"), encoding="utf-8")
    row = store.Entry.get(store.Entry.title == old)
    summary = Collector(cfg).collect(source_ids=["cms-spanish"])
    (outcome,) = summary.outcomes
    assert (outcome.outcome, outcome.new, outcome.updated) == ("ok", 0, 1)
    again = store.Entry.get_by_id(row.id)
    assert again.title == old + " (actualizado)"
    assert again.published == row.published and again.first_seen == row.first_seen
    # the source gave no newer date: `updated` moves to when the change was seen
    assert again.updated > row.updated and again.revision == row.revision + 1
    # children were replaced, not duplicated
    assert store.EntryAuthor.select().where(store.EntryAuthor.entry == row.id).count() == 1
    assert store.EntryTag.select().where(store.EntryTag.entry == row.id).count() == len(row.tag_links)


BROKEN_SOURCES = '''
[[sources]]
id = "good"
name = "Good"
url = "samples/breaking.rss"
section = "live"

[[sources]]
id = "garbage"
name = "Garbage"
url = "samples/garbage.xml"

[[sources]]
id = "missing"
name = "Missing"
url = "samples/missing.rss"

[[sources]]
id = "also-good"
name = "Also good"
url = "samples/partner-outlet.json"
'''


def broken_config(config_factory, folder: Path) -> Config:
    """BROKEN_SOURCES: one file is garbage, one is removed after the config was loaded (the config
    refuses a file that is not there, but nothing stops it going away while feedhub runs)."""
    (folder / "samples").mkdir(exist_ok=True)
    (folder / "samples" / "garbage.xml").write_bytes(b"\x00\x01 this is <not a feed")
    (folder / "samples" / "missing.rss").write_bytes(b"")
    cfg = config_factory(BROKEN_SOURCES)
    (folder / "samples" / "missing.rss").unlink()
    return cfg


def test_one_broken_source_never_stops_the_others(config_factory, tmp_path: Path):
    cfg = broken_config(config_factory, tmp_path)
    store.init_db(cfg.database_url)
    summary = Collector(cfg).collect()
    by_source = {o.source: o for o in summary.outcomes}
    assert by_source["good"].outcome == "ok" and by_source["good"].new == 15
    assert by_source["also-good"].outcome == "ok" and by_source["also-good"].new == 20
    assert by_source["garbage"].outcome == "error"
    assert "not a recognised feed format" in by_source["garbage"].error
    assert by_source["missing"].outcome == "error"
    assert "does not exist" in by_source["missing"].error
    garbage = store.Source.get(store.Source.key == "garbage")
    assert garbage.last_error_kind == "parse" and garbage.consecutive_failures == 1
    assert garbage.next_due_at > garbage.last_fetched_at  # retried later, not never
    Collector(cfg).collect(source_ids=["garbage"])
    garbage = store.Source.get(store.Source.key == "garbage")
    assert garbage.consecutive_failures == 2
    log = list(store.FetchLog.select().where(store.FetchLog.source == garbage).order_by(store.FetchLog.id))
    assert [(r.outcome, r.error_kind) for r in log] == [("error", "parse"), ("error", "parse")]
    assert store.Entry.select().count() == 35  # nothing half-written by the failures


def test_fetch_log_is_bounded(config_factory, tmp_path: Path):
    cfg = broken_config(config_factory, tmp_path)
    assert cfg.collect.fetch_log_keep == 200  # the default
    cfg = dataclasses.replace(cfg, collect=dataclasses.replace(cfg.collect, fetch_log_keep=3))
    store.init_db(cfg.database_url)
    collector = Collector(cfg)
    for _ in range(5):
        collector.collect(source_ids=["missing"])
    missing = store.Source.get(store.Source.key == "missing")
    assert store.FetchLog.select().where(store.FetchLog.source == missing).count() == 3


def test_source_removed_from_config_is_disabled_not_deleted(config_factory, tmp_path: Path):
    cfg = config_factory()
    store.init_db(cfg.database_url)
    Collector(cfg).collect(source_ids=["ticker"])
    fewer = broken_config(config_factory, tmp_path)
    store.sync_sources(fewer)
    ticker = store.Source.get(store.Source.key == "ticker")
    assert not ticker.enabled and ticker.entries.count() == 15


def test_syncing_unchanged_sources_reads_one_row_and_waits_for_no_writer(config_factory, tmp_path: Path):
    """Every command and collector start syncs config.toml's sources. When the store was last
    synced with exactly these, the sync only compares a recorded digest: it takes no write lock
    (here another connection holds it, and a sync that wanted it would fail after the busy
    timeout), and it changes nothing. Any change to a source or to the filing rules syncs again."""
    cfg = config_factory()
    if not cfg.database_url.startswith("sqlite"):
        pytest.skip("SQLite only (the held write lock)")
    store.init_db(cfg.database_url)
    assert store.sync_sources(cfg) == 7
    before = {s.key: (s.name, s.enabled) for s in store.Source.select()}
    import sqlite3

    writer = sqlite3.connect(store.db.obj.database, isolation_level=None)
    writer.execute("PRAGMA busy_timeout = 0")
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock
    store.db.execute_sql("PRAGMA busy_timeout = 50")
    try:
        assert store.sync_sources(cfg) == 7
        renamed = dataclasses.replace(cfg, sources=[dataclasses.replace(s, name="Renamed") if s.id == "ticker" else s
                                                    for s in cfg.sources])
        with pytest.raises(Exception, match="locked"):
            store.sync_sources(renamed)  # a change needs the write lock
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        store.db.execute_sql("PRAGMA busy_timeout = 10000")
    assert {s.key: (s.name, s.enabled) for s in store.Source.select()} == before
    store.sync_sources(renamed)
    assert store.Source.get(store.Source.key == "ticker").name == "Renamed"
    assert store.sync_sources(cfg) == 7  # and back
    assert {s.key: (s.name, s.enabled) for s in store.Source.select()} == before
    fewer = broken_config(config_factory, tmp_path)
    store.sync_sources(fewer)
    assert not store.Source.get(store.Source.key == "ticker").enabled


def test_store_newer_than_the_code_is_refused(config: Config):
    store.init_db(config.database_url)
    store.MetaInfo.update(value="999").where(store.MetaInfo.key == "schema_version").execute()
    store.db.close()
    with pytest.raises(StoreError, match="schema version 999, newer than this feedhub"):
        store.init_db(config.database_url)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(config: Config):
    if not config.database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    store.init_db(config.database_url)
    assert store.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10000


def test_unreachable_postgres_is_a_clear_store_error():
    with pytest.raises(StoreError, match="cannot prepare the store at postgresql://nobody:\\*\\*\\*@127.0.0.1:1/x"):
        store.init_db("postgresql://nobody:secret@127.0.0.1:1/x")


def test_opening_the_same_store_again_reuses_it(config: Config):
    first = store.init_db(config.database_url)
    assert store.init_db(config.database_url) is first
    assert store.open_database(config.database_url) is first


def test_background_collector_survives_the_web_app_starting(collected: Config, caplog):
    """`feedhub run`: the collector loop runs while create_app opens the same store."""
    import threading

    from web import create_app

    store.Source.update(next_due_at=None).execute()  # everything due: the loop writes at once
    stop = threading.Event()
    collector = Collector(collected)
    loop = threading.Thread(target=collector.run_forever, args=(stop,), kwargs={"tick": 0.01})
    loop.start()
    try:
        for _ in range(20):
            app = create_app(collected)
            with app.test_client() as c:
                assert c.get("/feeds/breaking.json").status_code == 200
            # Its usage writer must not outlive the test: through the store's proxy, a late
            # batch would land in the next test's store (CI once saw it deadlock a teardown).
            app.extensions["feedhub.usage"].close()
    finally:
        stop.set()
        loop.join(timeout=30)
        collector.close()
    assert not loop.is_alive()
    assert "collect cycle failed" not in caplog.text
    assert store.Source.select().where(store.Source.last_error.is_null(False)).count() == 0


def test_topics_count_changes_of_exactly_the_feeds_that_changed(config_factory, tmp_path: Path):
    cfg = config_factory()
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        first = c.collect(source_ids=["cms-spanish"])
    topics = first.topics
    assert {"es:latest", "es:breaking", "es:section:news", "es:section:politics", "es:region:latin-america",
            "es:tag:cafe-societe", "es:author:lucia-ferrer"} <= topics
    assert not any(t.startswith("en:") for t in topics)
    assert store.topic_revision("es:section:politics") == 1
    # Move one story from politics to sports: both sections (and their parent) change, nothing else.
    feed = tmp_path / "samples" / "spanish-edition.rss"
    text = feed.read_text(encoding="utf-8")
    old = "<category>politics</category><category>latin-america</category><category>Transporte</category>"
    assert old in text
    feed.write_text(text.replace(old, old.replace("politics", "sports")), encoding="utf-8")
    with Collector(cfg) as c:
        second = c.collect(source_ids=["cms-spanish"])
    assert second.updated == 1
    assert {"es:section:politics", "es:section:sports", "es:section:news", "es:latest"} <= second.topics
    assert "es:section:economy" not in second.topics
    assert store.topic_revision("es:section:politics") == 2
    assert store.topic_revision("es:section:economy") == 1
    with Collector(cfg) as c:
        assert c.collect(source_ids=["cms-spanish"]).topics == set()  # unchanged: nothing bumped


def test_a_new_dossier_gathers_entries_already_stored(config_factory):
    cfg = config_factory()
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect(source_ids=["cms-spanish"])
    assert not store.EntryCoverage.select().where(store.EntryCoverage.coverage == "cafes").exists()
    with_dossier = config_factory(
        extra='\n[coverage.cafes]\ntitle = "Cafés"\ntags = ["Café"]\nkeywords = ["cafetería"]\n')
    with Collector(with_dossier) as c:
        summary = c.collect(source_ids=["cms-spanish"])  # same bytes: re-read because the rules changed
    assert summary.updated == 2 and summary.new == 0
    assert store.EntryCoverage.select().where(store.EntryCoverage.coverage == "cafes").count() == 2
    assert "es:coverage:cafes" in summary.topics
    with Collector(with_dossier) as c:
        assert {o.outcome for o in c.collect(source_ids=["cms-spanish"]).outcomes} == {"unchanged"}


def _rewrite(feed: Path, old: str, new: str) -> None:
    feed.write_text(feed.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def test_revisions_are_capped_and_updates_can_be_ignored(config_factory, tmp_path: Path):
    sources = ('[[sources]]\nid = "es"\nname = "ES"\nurl = "samples/spanish-edition.rss"\n'
               '[[sources]]\nid = "frozen"\nname = "Frozen"\nurl = "samples/breaking.rss"\nignore_updates = true\n')
    cfg = config_factory(sources, collect="max_revisions = 2\n")
    store.init_db(cfg.database_url)
    title = "Montebrisa inaugura un festival de cine al aire libre"
    ticker = "BREAKING: Power restored across"
    feed, tick = tmp_path / "samples" / "spanish-edition.rss", tmp_path / "samples" / "breaking.rss"
    with Collector(cfg) as c:
        c.collect()
        for n in (1, 2, 3):  # the source rewrites the story three times
            _rewrite(feed, title if n == 1 else f"{title} v{n - 1}", f"{title} v{n}")
            _rewrite(tick, ticker if n == 1 else f"{ticker} v{n - 1}", f"{ticker} v{n}")
            summary = c.collect()
            by = {o.source: o for o in summary.outcomes}
            assert by["es"].updated == (1 if n <= 2 else 0)  # the third change is past the cap
            assert by["frozen"].updated == 0  # never applied
    row = store.Entry.get(store.Entry.title.startswith(title))
    assert row.title == f"{title} v2" and row.revision == 2
    kept = store.Entry.select().where(store.Entry.title.startswith(ticker)).get()
    assert " v1" not in kept.title and " v2" not in kept.title and kept.revision == 0  # ignore_updates


def _two_copies(tmp_path: Path, link_from: str | None = None, link_to: str | None = None) -> None:
    """samples/copy.rss: the Spanish edition again (written before the config that names it)."""
    shutil.copytree(SAMPLES, tmp_path / "samples", dirs_exist_ok=True)
    text = (tmp_path / "samples" / "spanish-edition.rss").read_text(encoding="utf-8")
    if link_from:
        text = text.replace(link_from, link_to)
    (tmp_path / "samples" / "copy.rss").write_text(text, encoding="utf-8")


TWO_SOURCES = ('[[sources]]\nid = "es"\nname = "ES"\nurl = "samples/spanish-edition.rss"\nedition = "es"\n'
               '[[sources]]\nid = "copy"\nname = "Copy"\nurl = "samples/copy.rss"\nedition = "es"\n{extra}')


def test_one_story_through_two_sources_is_stored_once(config_factory, tmp_path: Path):
    _two_copies(tmp_path)  # the same stories, the same links
    cfg = config_factory(TWO_SOURCES.format(extra=""))
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect(source_ids=["es"])
        (copy,) = c.collect(source_ids=["copy"]).outcomes
    assert (copy.new, copy.updated) == (0, 0)
    assert store.Entry.select().count() == 12
    carried = store.EntrySource.select().join(store.Source).where(store.Source.key == "copy")
    assert carried.count() == 12  # every source that carried it is recorded
    store.Source.update(content_hash=None).execute()
    with Collector(cfg) as c:
        assert c.collect().new == 0  # and stays one entry on every later fetch
    from web import create_app

    with create_app(cfg).test_client() as client:
        items = json.loads(client.get("/es/feeds/latest.json?limit=200").get_data())["items"]
    assert len(items) == 12 and len({i["id"] for i in items}) == 12


def test_mirror_sources_match_stories_by_title(config_factory, tmp_path: Path):
    _two_copies(tmp_path, "https://news.example.org/es/", "https://mirror.example.org/es/")
    cfg = config_factory(TWO_SOURCES.format(extra='mirrors = ["es"]\n'))
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect(source_ids=["es"])
        assert c.collect(source_ids=["copy"]).new == 0
    assert store.Entry.select().count() == 12
    unrelated = config_factory(TWO_SOURCES.format(extra=""))  # not mirrors: other links, other stories
    with Collector(unrelated) as c:
        store.Source.update(content_hash=None).execute()
        store.EntrySource.delete().execute()
        assert c.collect(source_ids=["copy"]).new == 12


def test_mirrors_must_name_other_sources(config_factory):
    from aggregator.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\.mirrors: 'nope' is not another source's id"):
        config_factory(TWO_SOURCES.format(extra='mirrors = ["nope"]\n'))


def test_a_rule_change_withdraws_and_restores_stored_entries(config_factory):
    """A drop rule added later withdraws what it now excludes (published as a deletion, as any
    retraction); removing the rule publishes those entries again. Other retractions stay."""
    from web import create_app

    cfg = config_factory()
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert not c.collect().failed
    E = store.Entry
    wire = store.Source.get(store.Source.key == "meridian-wire")
    weather = [e.id for e in E.select().where(E.source == wire, E.title.contains("Weather"))]
    assert weather
    other = E.select().where(E.source == wire, ~E.title.contains("Weather")).first()
    store.retract([other.id], store.utcnow(), "retracted by the newsroom", cfg.taxonomy.parents)

    def with_rules(rules: str) -> Config:
        text = (cfg.path.read_text(encoding="utf-8")
                .replace('tags = ["Wire"]\n', 'tags = ["Wire"]\n' + rules))
        path = cfg.path.with_name("changed.toml")
        path.write_text(text, encoding="utf-8")
        return load_config(path, environ={})

    dropping = with_rules('\n[[sources.rules]]\nkeyword = "weather"\naction = "drop"\n')
    with Collector(dropping) as c:
        assert not c.collect().failed
    assert {e.id for e in E.select().where(E.retraction_reason == store.RULE_WITHDRAWN)} == set(weather)
    rss = create_app(dropping).test_client().get("/feeds/latest.rss?limit=200").data
    assert b"Weather" not in rss
    with Collector(cfg) as c:  # the rule is gone again
        assert not c.collect().failed
    assert E.select().where(E.id.in_(weather), E.retracted_at.is_null(False)).count() == 0
    assert E.get_by_id(other.id).retracted_at is not None  # the newsroom's own retraction stands
