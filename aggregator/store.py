"""The shared store: peewee models and database setup.

SQLite (WAL, foreign keys, busy timeout) is the embedded default; a
``postgresql://`` URL runs the same models on PostgreSQL. The schema records a
version in ``feedhub_meta`` so later releases can migrate an existing store.
"""
from __future__ import annotations

import hashlib
import heapq
import operator
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urljoin

import peewee as pw
from playhouse.db_url import connect as url_connect, register_database
from playhouse.migrate import SchemaMigrator, migrate

from . import model
from .config import Config, SourceConfig
from .errors import StoreDamaged, StoreError, StoreFull, StoreUnavailable

SCHEMA_VERSION = 5

db = pw.DatabaseProxy()


def utcnow() -> datetime:
    """Naive UTC now: the store keeps every instant as naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


class MetaInfo(BaseModel):
    key = pw.CharField(primary_key=True, max_length=64)
    value = pw.TextField()

    class Meta:
        table_name = "feedhub_meta"


class Source(BaseModel):
    key = pw.CharField(unique=True, max_length=100)
    url = pw.TextField()
    name = pw.TextField()
    kind = pw.CharField(max_length=16, default="cms")
    edition = pw.CharField(max_length=8, default="en")
    enabled = pw.BooleanField(default=True)
    breaking = pw.BooleanField(default=False)
    interval = pw.IntegerField(default=900)
    # what the feed says of itself (for atom:source / RSS <source> on re-syndicated entries)
    feed_title = pw.TextField(null=True)
    feed_link = pw.TextField(null=True)
    feed_ttl = pw.IntegerField(null=True)  # minutes, as the feed last said
    # HTTP validators and body hash from the last successful fetch
    etag = pw.TextField(null=True)
    last_modified = pw.TextField(null=True)
    content_hash = pw.CharField(max_length=64, null=True)
    # where fetches go now: the config URL, or a permanent redirect's target once confirmed
    fetch_url = pw.TextField(null=True)
    redirect_target = pw.TextField(null=True)
    redirect_count = pw.IntegerField(default=0)
    # set when the publisher answered 410 Gone; polling stops until the URL changes
    disabled_reason = pw.TextField(null=True)
    # how entries are identified (guid, else link, else hash) and why it was weakened
    id_rule = pw.CharField(max_length=8, default="guid")
    id_rule_reason = pw.TextField(null=True)
    # a collector's claim: no other collector takes the source until lease_until
    lease_owner = pw.CharField(max_length=100, null=True)
    lease_until = pw.DateTimeField(null=True)
    # health
    last_fetched_at = pw.DateTimeField(null=True)
    last_success_at = pw.DateTimeField(null=True)
    last_status = pw.IntegerField(null=True)
    last_error = pw.TextField(null=True)
    last_error_kind = pw.CharField(max_length=32, null=True)
    consecutive_failures = pw.IntegerField(default=0)
    #: what the last parse of the feed warned about (fields cut to the caps, a wrong charset, ...)
    warnings = pw.TextField(null=True)
    next_due_at = pw.DateTimeField(null=True, index=True)
    entries_seen = pw.IntegerField(default=0)
    created_at = pw.DateTimeField(default=utcnow)


class Entry(BaseModel):
    source = pw.ForeignKeyField(Source, backref="entries", on_delete="CASCADE")
    guid = pw.TextField()  # identity within the source
    public_id = pw.TextField(index=True)  # what feeds publish as id/guid
    title = pw.TextField()
    link = pw.TextField(null=True, index=True)  # one story through two sources is found by its link
    language = pw.CharField(max_length=16)
    edition = pw.CharField(max_length=8)
    summary = pw.TextField(default="")
    content = pw.TextField(default="")
    section = pw.CharField(max_length=64, null=True, index=True)
    origin = pw.TextField(null=True)
    breaking = pw.BooleanField(default=False)
    reading_time = pw.IntegerField(default=0)
    published = pw.DateTimeField()
    updated = pw.DateTimeField()
    date_missing = pw.BooleanField(default=False)
    date_clamped = pw.BooleanField(default=False)
    published_raw = pw.TextField(null=True)  # the dates exactly as the source wrote them
    updated_raw = pw.TextField(null=True)
    first_seen = pw.DateTimeField(default=utcnow)
    stored_at = pw.DateTimeField(default=utcnow)  # last time the store wrote this row
    fingerprint = pw.CharField(max_length=64)
    # a retraction is published (Atom tombstone), never silently dropped
    retracted_at = pw.DateTimeField(null=True)
    retraction_reason = pw.TextField(null=True)
    revision = pw.IntegerField(default=0)  # how many times the source changed it
    title_key = pw.CharField(max_length=300, default="", index=True)  # see normalize.title_key

    class Meta:
        indexes = (
            (("source", "guid"), True),
            (("edition", "published"), False),
            (("edition", "breaking", "published"), False),
        )


class Author(BaseModel):
    slug = pw.CharField(unique=True, max_length=200)
    name = pw.TextField()
    url = pw.TextField(null=True)


class EntryAuthor(BaseModel):
    entry = pw.ForeignKeyField(Entry, backref="author_links", on_delete="CASCADE")
    author = pw.ForeignKeyField(Author, backref="entry_links", on_delete="CASCADE")
    position = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("entry", "author"), True),)


class Tag(BaseModel):
    slug = pw.CharField(unique=True, max_length=200)
    name = pw.TextField()


class EntryTag(BaseModel):
    entry = pw.ForeignKeyField(Entry, backref="tag_links", on_delete="CASCADE")
    tag = pw.ForeignKeyField(Tag, backref="entry_links", on_delete="CASCADE")
    position = pw.IntegerField(default=0)

    class Meta:
        # (tag, entry): the newest entries of a tag, for related entries, without a scan
        indexes = ((("entry", "tag"), True), (("tag", "entry"), False))


class EntryRegion(BaseModel):
    entry = pw.ForeignKeyField(Entry, backref="region_links", on_delete="CASCADE")
    region = pw.CharField(max_length=64, index=True)

    class Meta:
        indexes = ((("entry", "region"), True),)


class EntrySource(BaseModel):
    """Another source that carried an entry already stored from its first source."""

    entry = pw.ForeignKeyField(Entry, backref="also_from", on_delete="CASCADE")
    source = pw.ForeignKeyField(Source, backref="carried", on_delete="CASCADE")
    guid = pw.TextField()  # the entry's identity in that source
    first_seen = pw.DateTimeField()

    class Meta:
        indexes = ((("source", "guid"), True),)


class EntryCoverage(BaseModel):
    entry = pw.ForeignKeyField(Entry, backref="coverage_links", on_delete="CASCADE")
    coverage = pw.CharField(max_length=100, index=True)

    class Meta:
        indexes = ((("entry", "coverage"), True), (("coverage", "entry"), False))


class Related(BaseModel):
    """Entry -> a related entry (shared tags and coverage), with the score that ranks it.

    Written when an entry is stored: its own best matches, and the reverse link on each
    of them, so earlier coverage of a story points forward to what came after.
    """

    entry = pw.ForeignKeyField(Entry, backref="related_links", on_delete="CASCADE")
    related = pw.ForeignKeyField(Entry, backref="related_from", on_delete="CASCADE")
    score = pw.IntegerField()

    class Meta:
        indexes = ((("entry", "related"), True), (("related",), False))


class Media(BaseModel):
    entry = pw.ForeignKeyField(Entry, backref="media", on_delete="CASCADE")
    position = pw.IntegerField(default=0)
    kind = pw.CharField(max_length=16)
    url = pw.TextField()
    type = pw.CharField(max_length=100, null=True)
    length = pw.BigIntegerField(null=True)
    width = pw.IntegerField(null=True)
    height = pw.IntegerField(null=True)
    duration = pw.IntegerField(null=True)
    caption = pw.TextField(null=True)
    credit = pw.TextField(null=True)
    lead = pw.BooleanField(default=False)


class FetchLog(BaseModel):
    source = pw.ForeignKeyField(Source, backref="fetch_log", on_delete="CASCADE")
    started_at = pw.DateTimeField(index=True)
    duration_ms = pw.IntegerField(default=0)
    status = pw.IntegerField(null=True)
    outcome = pw.CharField(max_length=16)  # ok | not-modified | unchanged | error
    bytes = pw.IntegerField(default=0)
    entries_new = pw.IntegerField(default=0)
    entries_updated = pw.IntegerField(default=0)
    error_kind = pw.CharField(max_length=32, null=True)
    error = pw.TextField(null=True)


class SourceUrlHistory(BaseModel):
    """Every URL a source moved away from (after confirmed permanent redirects)."""

    source = pw.ForeignKeyField(Source, backref="url_history", on_delete="CASCADE")
    old_url = pw.TextField()
    new_url = pw.TextField()
    moved_at = pw.DateTimeField()
    reason = pw.TextField()


class Metric(BaseModel):
    """Monotonic counters shared by every collector process (read by /metrics)."""

    name = pw.CharField(max_length=100)
    labels = pw.CharField(max_length=200, default="")
    value = pw.FloatField(default=0)

    class Meta:
        indexes = ((("name", "labels"), True),)


class Topic(BaseModel):
    """A public feed's change counter ("en:section:politics"), bumped with the entries it holds.

    The render cache is valid while a feed's revision is unchanged, and the
    WebSub hub is told about exactly the topics a collect bumped.
    """

    key = pw.CharField(primary_key=True, max_length=300)
    revision = pw.BigIntegerField(default=0)
    changed_at = pw.DateTimeField()


MODELS: tuple[type[BaseModel], ...] = (
    MetaInfo, Source, Entry, Author, EntryAuthor, Tag, EntryTag, EntryRegion, EntryCoverage, EntrySource, Media,
    Related, FetchLog,
    SourceUrlHistory, Metric, Topic)


# --- opening and creating ------------------------------------------------------

class PostgresDatabase(pw.PostgresqlDatabase):
    """PostgreSQL that replaces a lost connection by itself, where that cannot lose work.

    Each thread keeps its connection from request to request and source to source.
    A restart, a failover or ``pg_terminate_backend`` kills those connections while
    they sit idle, and psycopg2 only finds out on the next statement; without this,
    every thread would fail for good with "connection already closed". A connection
    known to be dead is replaced before a statement runs; a statement that finds it
    dead is run again on a new connection only when nothing can have been lost:
    outside a transaction, and only a read or a BEGIN (an autocommit write might have
    landed before the connection broke, so it is reported, never repeated).
    """

    def __init__(self, database: str, **kwargs: object):
        # A server that vanished without closing its sockets (a failover, a cut link) must not
        # hold a thread forever at connect.
        kwargs.setdefault("connect_timeout", 10)
        super().__init__(database, **kwargs)

    def execute_sql(self, sql: str, params: object = None) -> object:
        self._revive()
        try:
            return super().execute_sql(sql, params)
        except (pw.OperationalError, pw.InterfaceError):
            if self.in_transaction() or self.is_connection_usable() or not _is_read(sql):
                raise
            self._drop_connection()
            return super().execute_sql(sql, params)

    def begin(self, *args: object, **kwargs: object) -> None:
        self._revive()
        try:
            super().begin(*args, **kwargs)
        except (pw.OperationalError, pw.InterfaceError):
            if self.is_connection_usable():
                raise
            self._drop_connection()
            super().begin(*args, **kwargs)

    def _revive(self) -> None:
        if not self.is_closed() and not self.in_transaction() and not self.is_connection_usable():
            self._drop_connection()

    def _drop_connection(self) -> None:
        try:
            self.close()
        except Exception:  # closing a dead connection may fail too; forget it either way
            self.dispose()


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("SELECT", "PRAGMA") or sql.lstrip()[:4].upper() == "SHOW"


register_database(PostgresDatabase, "postgres", "postgresql")


def reset_connection() -> None:
    """Forget this thread's connection if it is broken, so its next use opens a new one.

    Called after a failure: a transaction that failed with its connection already
    ended is closed, not rolled back (peewee's rollback would fail the same way).
    """
    database = db.obj
    if database is None or database.is_closed():
        return
    if isinstance(database, PostgresDatabase) and database.is_connection_usable():
        return
    if isinstance(database, pw.SqliteDatabase):
        return  # a SQLite connection outlives any error of its file; nothing to reset
    while database.in_transaction():
        database.pop_transaction()
    try:
        database.close()
    except Exception:
        database.dispose()


def diagnose(error: BaseException) -> StoreError | StoreFull | None:
    """What a failure says about the store itself, as one of our errors with a sentence a
    person can act on; None when ``error`` is not about the store (a bug, a constraint).

    StoreFull: no room left (SQLite SQLITE_FULL, PostgreSQL "could not extend file");
    StoreDamaged: the file is corrupt; StoreUnavailable: the connection was lost or
    could not be made, or the store stayed locked. The cause may sit deep in the
    chain: a failed rollback ("cannot rollback - no transaction is active") hides it.
    """
    where = redact_url(getattr(db.obj, "feedhub_url", "") or "the store")
    for e in _chain(error):
        if isinstance(e, (StoreError, StoreFull)):
            return e
        if isinstance(e, (pw.IntegrityError, pw.ProgrammingError, pw.NotSupportedError)):
            return None
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        lowered = text.lower()
        if "disk is full" in lowered or "no space left" in lowered or "could not extend file" in lowered:
            return StoreFull(f"{text}: {where}; free disk space (or raise the quota), then run again: "
                             "nothing was lost, and the next run collects what this one could not")
        if "disk i/o error" in lowered and _sqlite_disk_full():
            # A full disk, met while creating the WAL index or journal, shows as an I/O error.
            return StoreFull(f"{text}: the disk holding {where} is full; free disk space, then run "
                             "again: nothing was lost, and the next run collects what this one could not")
        if "malformed" in lowered or "not a database" in lowered or "database corrupt" in lowered:
            return StoreDamaged(f"{text}: {where} is damaged; stop feedhub and restore the last backup "
                                "(see the README, Failure modes)")
    for e in _chain(error):
        if isinstance(e, (pw.OperationalError, pw.InterfaceError)) or type(e).__name__ in (
                "OperationalError", "InterfaceError"):
            text = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return StoreUnavailable(f"{where} is unavailable: {text}")
    return None


def _sqlite_disk_full() -> bool:
    """Is the disk holding the SQLite store (about) full? Under 1 MiB free counts."""
    database = db.obj
    if not isinstance(database, pw.SqliteDatabase) or database.database == ":memory:":
        return False
    try:
        stat = os.statvfs(Path(database.database).resolve().parent)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 1 << 20


def _chain(error: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__

def open_database(url: str) -> pw.Database:
    """Open (without connecting) the database behind ``url`` and bind the models to it.

    Opening the URL the models are already bound to returns that same database:
    a second Database object would pull the proxy away from threads that are
    mid-transaction on the first (``feedhub run`` collects while the web app starts).
    """
    if db.obj is not None and getattr(db.obj, "feedhub_url", None) == url:
        return db.obj
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        import sqlite3

        database: pw.Database = pw.SqliteDatabase(path, returning_clause=sqlite3.sqlite_version_info >= (3, 35), pragmas={
            # WAL lets the web layer read while a collector writes.
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": 10_000,
            "synchronous": "normal",
        })
    else:
        try:
            database = url_connect(url)
        except Exception as e:  # unknown scheme, bad URL syntax
            raise StoreError(f"cannot open database {redact_url(url)}: {e}") from e
    database.feedhub_url = url
    db.initialize(database)
    return database


def is_transient(error: Exception) -> bool:
    """A failure the database asks us to retry: a deadlock or serialization failure (PostgreSQL)."""
    code = getattr(getattr(error, "orig", None) or error.__cause__ or error, "pgcode", None)
    return code in ("40P01", "40001") or "deadlock detected" in str(error)


def write_transaction() -> pw._atomic:
    """A transaction that takes SQLite's write lock at BEGIN.

    A deferred SQLite transaction that reads and then writes cannot wait for a
    concurrent writer (it fails at once with "database is locked"); BEGIN
    IMMEDIATE makes it queue on the busy timeout instead. PostgreSQL needs no hint.
    """
    if isinstance(db.obj, pw.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


def init_db(url: str) -> pw.Database:
    """Open the store, create the schema when missing, and migrate an older one."""
    database = open_database(url)
    try:
        database.connect(reuse_if_open=True)
        found = None
        if MetaInfo.table_exists():
            row = MetaInfo.get_or_none(MetaInfo.key == "schema_version")
            found = int(row.value) if row else None
        if found is not None and found != SCHEMA_VERSION:
            _migrate(found, database)  # before create_tables: current indexes need current columns
        with write_transaction():
            database.create_tables(MODELS, safe=True)
            if found is None:
                MetaInfo.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict_ignore().execute()
    except (StoreError, StoreFull):
        raise
    except Exception as e:
        failure = diagnose(e)
        if isinstance(failure, (StoreDamaged, StoreFull)):
            raise failure from e
        if isinstance(e, pw.PeeweeException) or type(e).__module__.startswith(("psycopg2", "sqlite3")):
            raise StoreError(f"cannot prepare the store at {redact_url(url)}: {e}") from e
        raise
    return database


def check_integrity() -> None:
    """Raise StoreDamaged when the store's file is corrupt (SQLite's quick_check: every page
    read once, so its cost grows with the store). PostgreSQL checks its own pages."""
    if not isinstance(db.obj, pw.SqliteDatabase) or db.obj.database == ":memory:":
        return
    try:
        rows = [r[0] for r in db.obj.execute_sql("PRAGMA quick_check(5)").fetchall()]
    except Exception as e:
        raise diagnose(e) or StoreError(str(e)) from e
    if rows != ["ok"]:
        raise StoreDamaged(f"{redact_url(db.obj.feedhub_url)} is damaged ({'; '.join(rows)}); stop feedhub and "
                           "restore the last backup (see the README, Failure modes)")


class IntegrityWatch:
    """``check_integrity`` at most every ``every`` seconds, for a health endpoint polled often:
    the first caller past the interval runs it, callers meanwhile get the last result."""

    def __init__(self, every: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._failure: StoreError | None = None

    def check(self) -> None:
        """Raise the last check's StoreDamaged, running a new check first if it is due."""
        due = self._checked_at is None or self.clock() - self._checked_at >= self.every
        if due and self._lock.acquire(blocking=self._checked_at is None):
            try:
                try:
                    check_integrity()
                    self._failure = None
                except StoreDamaged as e:
                    self._failure = e
                self._checked_at = self.clock()
            finally:
                self._lock.release()
        if self._failure is not None:
            raise self._failure


def health_summary() -> dict[str, object]:
    """What /healthz shows, read live: the schema version, entries stored, failing sources, and
    the newest page of entries (what every feed reads first), so an unreadable store fails here."""
    E, S = Entry, Source
    list(E.select().order_by(E.published.desc()).limit(50).tuples())
    failing = S.select().where(S.consecutive_failures > 0, S.enabled == True).count()  # noqa: E712
    return {"schema_version": schema_version(), "entries": E.select().count(), "failing_sources": failing}


def backup_sqlite(target: Path) -> int:
    """Copy the open SQLite store to ``target`` with SQLite's online backup API: a consistent
    snapshot while collectors keep writing. Written beside ``target`` and renamed into place,
    so a failed backup never leaves a half file under the final name. Returns its size."""
    import sqlite3

    database = db.obj
    if not isinstance(database, pw.SqliteDatabase):
        raise StoreError("feedhub backup copies SQLite stores only; for PostgreSQL use pg_dump, e.g. "
                         f"pg_dump --format=custom --file=FILE '{redact_url(database.feedhub_url)}'")
    target = target.resolve()
    partial = target.with_name(f".{target.name}.partial")
    source = sqlite3.connect(database.database)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.execute("PRAGMA busy_timeout = 10000")
            source.backup(copy)  # all pages in one step, under one read transaction: consistent
            rows = [r[0] for r in copy.execute("PRAGMA quick_check").fetchall()]
            if rows != ["ok"]:
                raise StoreDamaged(f"the copy failed its check ({'; '.join(rows)}); the store itself may be "
                                   "damaged: run `feedhub init` to see")
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            copy.close()
        partial.replace(target)
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise diagnose(e) or StoreError(f"backup to {target} failed: {e}") from e
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    return target.stat().st_size


def _migrate(found: int, database: pw.Database) -> None:
    """Bring a store at schema ``found`` up to SCHEMA_VERSION, one step per transaction.

    SQLite cannot add a NOT NULL column in place, so the migrator rebuilds the
    table (copy, drop, rename); with foreign keys enforced, dropping the old
    ``source`` table would cascade-delete every entry. Enforcement is switched
    off for the migration (SQLite only allows that outside a transaction), and
    the result is checked with foreign_key_check before it is switched back on.
    """
    if found > SCHEMA_VERSION:
        raise StoreError(f"the store has schema version {found}, newer than this feedhub "
                         f"({SCHEMA_VERSION}); upgrade feedhub")
    sqlite = isinstance(database, pw.SqliteDatabase)
    if sqlite:
        database.pragma("foreign_keys", 0)
    try:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            with write_transaction():
                MIGRATIONS[version](database)
                if sqlite and database.execute_sql("PRAGMA foreign_key_check").fetchall():
                    raise StoreError(f"migrating to schema {version} broke foreign keys; nothing was changed")
                MetaInfo.update(value=str(version)).where(MetaInfo.key == "schema_version").execute()
    finally:
        if sqlite:
            database.pragma("foreign_keys", 1)


def _to_v2(database: pw.Database) -> None:
    """v2: redirects, 410, leases on sources; URL history and metrics tables (created after)."""
    have = {c.name for c in database.get_columns(Source._meta.table_name)}
    migrator = SchemaMigrator.from_database(database)
    steps = [migrator.add_column(Source._meta.table_name, name, Source._meta.fields[name])
             for name in ("feed_ttl", "fetch_url", "redirect_target", "redirect_count",
                          "disabled_reason", "lease_owner", "lease_until") if name not in have]
    migrate(*steps)


def _to_v3(database: pw.Database) -> None:
    """v3: retractions, revisions, raw dates on entries; identity rules on sources; topic and
    coverage tables (created with the other missing tables)."""
    migrator = SchemaMigrator.from_database(database)
    have_source = {c.name for c in database.get_columns(Source._meta.table_name)}
    migrate(*[migrator.add_column(Source._meta.table_name, name, Source._meta.fields[name])
              for name in ("id_rule", "id_rule_reason") if name not in have_source])
    have = {c.name for c in database.get_columns(Entry._meta.table_name)}
    migrate(*[migrator.add_column(Entry._meta.table_name, name, Entry._meta.fields[name])
              for name in ("retracted_at", "retraction_reason", "revision", "date_clamped",
                           "published_raw", "updated_raw", "title_key") if name not in have])


def _to_v4(database: pw.Database) -> None:
    """v4: related entries. The new table and the (tag, entry) and (coverage, entry) indexes are
    created with the other missing tables; entries stored before get related ones as new
    entries arrive (the reverse links), and their own when they next change."""


def _to_v5(database: pw.Database) -> None:
    """v5: the warnings of a source's last parse (fields cut to the caps), kept in its health."""
    have = {c.name for c in database.get_columns(Source._meta.table_name)}
    if "warnings" not in have:
        migrate(SchemaMigrator.from_database(database).add_column(
            Source._meta.table_name, "warnings", Source._meta.fields["warnings"]))


# version -> function that upgrades a store from version-1 to version
MIGRATIONS: dict[int, Callable[[pw.Database], None]] = {2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5}


def schema_version() -> int:
    """The schema version recorded in the open store."""
    return int(MetaInfo.get(MetaInfo.key == "schema_version").value)


# --- sources ---------------------------------------------------------------------

def sync_sources(config: Config) -> dict[str, Source]:
    """Make the store's source rows match config: add new ones, update settings, keep health.

    A source removed from config is disabled, not deleted, so its entries stay published.
    """
    with write_transaction():
        _reclassify_on_change(config)
        rows = {s.key: s for s in Source.select()}
        wanted = {s.id for s in config.sources}
        new: list[dict[str, object]] = []
        for sc in config.sources:
            fields = _source_fields(sc, config)
            row = rows.get(sc.id)
            if row is None:
                new.append({"key": sc.id, "created_at": utcnow(), **fields})
                continue
            if row.url != sc.url:
                # The admin pointed the source somewhere new: forget redirects and a 410.
                fields.update(fetch_url=None, redirect_target=None, redirect_count=0,
                              disabled_reason=None, etag=None, last_modified=None, content_hash=None,
                              id_rule="guid", id_rule_reason=None)
            if any(getattr(row, k) != v for k, v in fields.items()):
                Source.update(**fields).where(Source.id == row.id).execute()
                rows[sc.id] = Source.get_by_id(row.id)
        if new:
            # Several collectors may start at once: the first insert wins, the rest re-read.
            for chunk in pw.chunked(new, 50):
                Source.insert_many(chunk).on_conflict_ignore().execute()
            rows.update((s.key, s) for s in Source.select().where(Source.key.in_([n["key"] for n in new])))
        for key, row in rows.items():
            if key not in wanted and row.enabled:
                Source.update(enabled=False).where(Source.id == row.id).execute()
    return rows


def claim_sources(owner: str, now: datetime, lease_seconds: int, *, only_due: bool = True,
                  keys: list[str] | None = None, limit: int = 1000,
                  fetched_before: datetime | None = None) -> list[Source]:
    """Lease enabled sources to ``owner`` so no other collector takes them meanwhile.

    A source is claimable when it is enabled, not gone, (if ``only_due``) due,
    and not leased, or leased by a collector whose lease has expired (it died).
    PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so concurrent collectors
    split the due sources without waiting on each other. SQLite: one UPDATE
    under the database's write lock, which is just as atomic.
    """
    until = now + timedelta(seconds=lease_seconds)
    # Plain SQL: a collector claims every few sources, and building these statements
    # through the ORM cost more than running them.
    database, param, table = db.obj, db.obj.param, Source._meta.table_name
    cond = (f"enabled = {param} AND disabled_reason IS NULL "
            f"AND (lease_until IS NULL OR lease_until < {param})")
    args: list[object] = [True, now]
    if only_due:
        cond += f" AND (next_due_at IS NULL OR next_due_at <= {param})"
        args.append(now)
    if keys is not None:
        if not keys:
            return []
        cond += f" AND key IN ({placeholders(len(keys))})"
        args += keys
    if fetched_before is not None:  # not yet fetched in this run
        cond += f" AND (last_fetched_at IS NULL OR last_fetched_at < {param})"
        args.append(fetched_before)
    pick = f"SELECT id FROM {table} WHERE {cond} ORDER BY next_due_at ASC NULLS FIRST, id LIMIT {int(limit)}"
    with write_transaction():
        if isinstance(database, pw.PostgresqlDatabase):
            ids = [row[0] for row in database.execute_sql(pick + " FOR UPDATE SKIP LOCKED", args)]
            recheck, recheck_args = "", []
        else:
            ids = [row[0] for row in database.execute_sql(pick, args)]
            recheck, recheck_args = f" AND {cond}", args  # the write lock is ours: still claimable?
        if not ids:
            return []
        marks = placeholders(len(ids))
        database.execute_sql(f"UPDATE {table} SET lease_owner = {param}, lease_until = {param} "
                             f"WHERE id IN ({marks}){recheck}", [owner, until, *ids, *recheck_args])
        return list(Source.raw(f"SELECT * FROM {table} WHERE id IN ({marks}) AND lease_owner = {param} "
                               f"AND lease_until = {param} ORDER BY next_due_at ASC NULLS FIRST, id",
                               *ids, owner, until))


def release_claims(owner: str) -> int:
    """Give back every source ``owner`` still holds, so the next collector need not wait for the
    lease to run out; returns how many were held."""
    with write_transaction():
        return Source.update(lease_owner=None, lease_until=None).where(Source.lease_owner == owner).execute()


def holds_claim(source_id: int, owner: str) -> bool:
    """Inside a write transaction: does ``owner`` still hold the source? On PostgreSQL the row
    stays locked until commit, so no other collector can claim it before this write lands
    (their claim skips locked rows); on SQLite the write lock already excludes them."""
    sql = f"SELECT lease_owner FROM {Source._meta.table_name} WHERE id = {db.obj.param}"
    if isinstance(db.obj, pw.PostgresqlDatabase):
        sql += " FOR UPDATE"
    row = db.obj.execute_sql(sql, (source_id,)).fetchone()
    return row is not None and row[0] == owner


def new_owner_id() -> str:
    """A collector's identity for leases: host-independent and unique per process run."""
    return f"collector-{uuid.uuid4().hex[:12]}"


def bump_metrics(deltas: dict[tuple[str, str], float]) -> None:
    """Add to shared counters (call inside the transaction that records what they count)."""
    table = Metric._meta.table_name
    # One statement, keys sorted: one lock order for every writer.
    insert_rows(Metric, ("name", "labels", "value"), [(n, l, d) for (n, l), d in sorted(deltas.items())],
                f' ON CONFLICT ("name", "labels") DO UPDATE SET value = "{table}".value + excluded.value')


def classification_digest(config: Config) -> str:
    """A hash of everything that decides how entries are filed (taxonomy, dossiers, defaults)."""
    basis = repr((sorted((k, v) for k, v in config.taxonomy.sections.items()),
                  sorted(config.taxonomy.regions.items()), sorted(config.taxonomy.coverage.items()),
                  sorted(config.collect.breaking_prefixes.items()),
                  sorted((s.id, s.edition, s.section, s.region, s.tags, s.origin, s.breaking, s.rules)
                         for s in config.sources)))
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def _reclassify_on_change(config: Config) -> None:
    """When the filing rules change, forget every source's validators and body hash.

    The next collect then parses and normalises every source again; entries whose
    classification changed get a new fingerprint and are updated (with their feeds).
    """
    digest = classification_digest(config)
    row = MetaInfo.get_or_none(MetaInfo.key == "classification")
    if row is not None and row.value == digest:
        return
    if row is None:
        MetaInfo.insert(key="classification", value=digest).on_conflict_ignore().execute()
    else:
        MetaInfo.update(value=digest).where(MetaInfo.key == "classification").execute()
    Source.update(etag=None, last_modified=None, content_hash=None).execute()


def _source_fields(sc: SourceConfig, config: Config) -> dict[str, object]:
    return {"url": sc.url, "name": sc.name, "kind": sc.kind, "edition": sc.edition,
            "enabled": sc.enabled, "breaking": sc.breaking,
            "interval": sc.interval or config.collect.interval}


# --- entries ---------------------------------------------------------------------

@dataclass(frozen=True)
class SaveResult:
    new: int
    updated: int
    unchanged: int
    #: the feeds whose content changed (see Topic), already bumped
    topics: frozenset[str] = frozenset()
    #: changes not written: the source ignores updates, or the entry reached its revision cap
    ignored: int = 0
    #: new entries that were already stored from another source (recorded, not stored again)
    merged: int = 0


def entry_topics(edition: str, section: str | None, regions: Iterable[str], tags: Iterable[str],
                 authors: Iterable[str], breaking: bool, parents: dict[str, str],
                 coverage: Iterable[str] = ()) -> set[str]:
    """Every public feed that holds an entry so classified (``parents``: subsection -> section)."""
    keys = {f"{edition}:latest"}
    if breaking:
        keys.add(f"{edition}:breaking")
    if section:
        keys.add(f"{edition}:section:{section}")
        if section in parents:
            keys.add(f"{edition}:section:{parents[section]}")
    keys.update(f"{edition}:region:{r}" for r in regions)
    keys.update(f"{edition}:tag:{t}" for t in tags)
    keys.update(f"{edition}:author:{a}" for a in authors)
    keys.update(f"{edition}:coverage:{c}" for c in coverage)
    return keys


def bump_topics(keys: Iterable[str], now: datetime) -> None:
    """Add one to each topic's revision (inside the transaction that changed its entries)."""
    table = Topic._meta.table_name
    # One statement, keys in a fixed order, so concurrent writers never deadlock.
    insert_rows(Topic, ("key", "revision", "changed_at"), [(key, 1, now) for key in sorted(set(keys))],
                f' ON CONFLICT ("key") DO UPDATE SET revision = "{table}".revision + 1, '
                "changed_at = excluded.changed_at")


def topic_revision(key: str) -> int:
    """The topic's current revision (0 for a feed nothing has changed yet).

    Asked on every feed request, so it is one prepared statement, not a query built by the ORM.
    """
    database = db.obj
    row = database.execute_sql(_topic_sql(database.param), (key,)).fetchone()
    return row[0] if row else 0


def _topic_sql(param: str) -> str:
    return f"SELECT revision FROM {Topic._meta.table_name} WHERE key = {param}"


class TopicRevisions:
    """Topic revisions for the web layer, without a query per request while nothing was written.

    On SQLite, ``PRAGMA data_version`` on a connection of our own changes whenever
    any other connection, in any process, commits. That connection never writes, so
    every write (this process's included) counts; while the number is unchanged, the
    revisions read since are still exact. PostgreSQL and in-memory SQLite have no
    such signal: there every call is one indexed lookup (``topic_revision``).
    """

    #: revisions remembered at most (one per public feed read since the last write)
    MAX_MEMO = 10_000

    def __init__(self, database: pw.Database):
        self._conn = None
        if isinstance(database, pw.SqliteDatabase) and database.database != ":memory:":
            import sqlite3

            # Shared by the server's threads under a lock: each call holds it for microseconds.
            self._conn = sqlite3.connect(database.database, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 10000")
        self._sql = _topic_sql("?")
        self._lock = threading.Lock()
        self._version: int | None = None
        self._memo: dict[str, int] = {}

    def get(self, key: str) -> int:
        """The topic's current revision, as ``topic_revision`` would read it now."""
        if self._conn is None:
            return topic_revision(key)
        with self._lock:
            # Read the version first: a commit landing between it and the lookup below
            # changes the version again, so the next call looks again (never stale).
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version or len(self._memo) > self.MAX_MEMO:
                self._memo.clear()
                self._version = version
            revision = self._memo.get(key)
            if revision is None:
                row = self._conn.execute(self._sql, (key,)).fetchone()
                revision = self._memo[key] = row[0] if row else 0
            return revision

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def stored_topics(entry_ids: list[int], parents: dict[str, str]) -> set[str]:
    """The topics of entries as they are stored now (before an update or a retraction).

    Two plain queries however many entries: this runs for every batch a collector writes.
    """
    if not entry_ids:
        return set()
    database = db.obj
    keys: set[str] = set()
    terms: dict[str, dict[int, list[str]]] = {"r": {}, "t": {}, "a": {}, "c": {}}
    names = {m: m._meta.table_name for m in (EntryRegion, EntryTag, Tag, EntryAuthor, Author, EntryCoverage)}
    for chunk in pw.chunked(sorted(set(entry_ids)), 400):
        marks = placeholders(len(chunk))
        sql = (f"SELECT 'r', entry_id, region FROM {names[EntryRegion]} WHERE entry_id IN ({marks}) "
               f"UNION ALL SELECT 't', l.entry_id, t.slug FROM {names[EntryTag]} l "
               f"JOIN {names[Tag]} t ON t.id = l.tag_id WHERE l.entry_id IN ({marks}) "
               f"UNION ALL SELECT 'a', l.entry_id, a.slug FROM {names[EntryAuthor]} l "
               f"JOIN {names[Author]} a ON a.id = l.author_id WHERE l.entry_id IN ({marks}) "
               f"UNION ALL SELECT 'c', entry_id, coverage FROM {names[EntryCoverage]} WHERE entry_id IN ({marks})")
        for kind, entry_id, value in database.execute_sql(sql, chunk * 4):
            terms[kind].setdefault(entry_id, []).append(value)
        sql = f"SELECT id, edition, section, breaking FROM {Entry._meta.table_name} WHERE id IN ({marks})"
        for entry_id, edition, section, breaking in database.execute_sql(sql, chunk):
            keys |= entry_topics(edition, section, terms["r"].get(entry_id, ()), terms["t"].get(entry_id, ()),
                                 terms["a"].get(entry_id, ()), bool(breaking), parents,
                                 terms["c"].get(entry_id, ()))
    return keys


MIRROR_WINDOW = timedelta(hours=48)


def _same_stories(source: Source, fresh: list[model.Entry], mirrors: list[int]) -> dict[str, int]:
    """guid -> id of an entry another source already brought: same link, or (mirrors) same title."""
    found: dict[str, int] = {}
    links = {e.link: e.guid for e in fresh if e.link}
    database, table = db.obj, Entry._meta.table_name
    for chunk in pw.chunked(list(links), 200):  # plain SQL: this runs for every new batch of entries
        marks = placeholders(len(chunk))
        for entry_id, link in database.execute_sql(
                f"SELECT id, link FROM {table} WHERE link IN ({marks}) AND source_id <> {database.param} "
                f"AND retracted_at IS NULL ORDER BY id", [*chunk, source.id]):
            found.setdefault(links[link], entry_id)
    if mirrors:
        by_key = {e.title_key: e for e in fresh if e.title_key and e.guid not in found}
        for chunk in pw.chunked(list(by_key), 200):
            for entry_id, key, published in (Entry.select(Entry.id, Entry.title_key, Entry.published)
                                             .where(Entry.title_key.in_(chunk), Entry.source.in_(mirrors),
                                                    Entry.retracted_at.is_null()).order_by(Entry.id).tuples()):
                e = by_key[key]
                if abs(e.published - published) <= MIRROR_WINDOW:
                    found.setdefault(e.guid, entry_id)
    return found


def save_entries(source: Source, entries: Iterable[model.Entry], now: datetime,
                 parents: dict[str, str] | None = None, max_revisions: int | None = None,
                 ignore_updates: bool = False, mirrors: list[int] | None = None) -> SaveResult:
    """Upsert a source's entries; an entry whose fingerprint is unchanged is not written.

    Call inside a transaction: the caller commits entries and the source's new
    validators together. The topics of every written entry (as it was and as it
    is now) are bumped in the same transaction.
    """
    parents = parents or {}
    entries = list(entries)
    database = db.obj
    stored = database.execute_sql(f"SELECT id, guid, fingerprint, updated, revision FROM {Entry._meta.table_name} "
                                  f"WHERE source_id = {database.param}", (source.id,))
    existing = {guid: (entry_id, fingerprint, _naive(updated), revision)
                for entry_id, guid, fingerprint, updated, revision in stored}

    def frozen(found: tuple[int, str, datetime, int]) -> bool:
        # A source that rewrites its entries on every fetch must not churn the store forever.
        return ignore_updates or (max_revisions is not None and found[3] >= max_revisions)
    authors = _ensure_slugged(Author, {a.slug: {"name": a.name, "url": a.url}
                                       for e in reversed(entries) for a in e.authors})
    tags = _ensure_slugged(Tag, {t.slug: {"name": t.name} for e in reversed(entries) for t in e.tags})
    new = updated = unchanged = 0
    written: list[tuple[int, model.Entry]] = []
    fresh: list[tuple[dict[str, object], model.Entry]] = []
    # Feeds that held an entry before it changed (it may have left a section or tag)
    # are read before anything is written.
    changing = [existing[e.guid][0] for e in entries
                if e.guid in existing and existing[e.guid][1] != e.fingerprint and not frozen(existing[e.guid])]
    ignored = 0
    # One story, one entry: what another source brought first is only recorded as carried here.
    carried = {g for (g,) in database.execute_sql(f"SELECT guid FROM {EntrySource._meta.table_name} "
                                                  f"WHERE source_id = {database.param}", (source.id,))}
    same = _same_stories(source, [e for e in entries if e.guid not in existing and e.guid not in carried],
                         mirrors or [])
    merged = 0
    topics = stored_topics(changing, parents)
    for e in entries:
        fields = dict(public_id=e.public_id, title=e.title, link=e.link, language=e.language,
                      edition=e.edition, summary=e.summary, content=e.content, section=e.section,
                      origin=e.origin, breaking=e.breaking, reading_time=e.reading_time,
                      published=e.published, updated=e.updated, date_missing=e.date_missing,
                      date_clamped=e.date_clamped, published_raw=e.published_raw, updated_raw=e.updated_raw,
                      title_key=e.title_key, fingerprint=e.fingerprint, stored_at=now)
        found = existing.get(e.guid)
        if found is None and e.guid in carried:
            unchanged += 1  # the first source's copy is the one published
        elif found is None and e.guid in same:
            EntrySource.insert(entry=same[e.guid], source=source, guid=e.guid, first_seen=now
                               ).on_conflict_ignore().execute()
            carried.add(e.guid)
            merged += 1
        elif found is None:
            fresh.append(({"source": source, "guid": e.guid, "first_seen": now, **fields}, e))
            new += 1
        elif found[1] == e.fingerprint:
            unchanged += 1
        elif frozen(found):
            ignored += 1
        else:
            # A change keeps the publication date and the published id, and moves `updated`
            # forward: to the source's own newer date, else to when we saw the change.
            fields.pop("published")
            fields.pop("public_id")
            fields["updated"] = e.updated if e.updated > found[2] else now
            fields["revision"] = found[3] + 1
            Entry.update(**fields).where(Entry.id == found[0]).execute()
            written.append((found[0], e))
            updated += 1
    written += _insert_entries(fresh)
    replaced = [entry_id for entry_id, e in written if e.guid in existing]
    if replaced:
        # Entries that show a changed entry as related show its new title: their feeds change too.
        topics |= stored_topics(_relating_to(replaced), parents)
        Related.delete().where(Related.entry.in_(replaced) | Related.related.in_(replaced)).execute()
        for child in (EntryAuthor, EntryTag, EntryRegion, EntryCoverage, Media):
            child.delete().where(child.entry.in_(replaced)).execute()
    _insert_children(written, authors, tags)
    topics |= stored_topics(relate(written, tags), parents)
    for _, e in written:
        topics |= entry_topics(e.edition, e.section, e.regions, [t.slug for t in e.tags],
                               [a.slug for a in e.authors], e.breaking, parents, e.coverage)
    bump_topics(topics, now)
    return SaveResult(new=new, updated=updated, unchanged=unchanged, topics=frozenset(topics), ignored=ignored,
                      merged=merged)


def _insert_entries(fresh: list[tuple[dict[str, object], model.Entry]]) -> list[tuple[int, model.Entry]]:
    """Insert new entries in batches, getting their ids back (RETURNING where the database has it)."""
    if not db.obj.returning_clause:
        return [(Entry.insert(**row).execute(), e) for row, e in fresh]
    fields = Entry._meta.fields
    names = list(fresh[0][0]) if fresh else []
    # Columns the rows leave out get their model default (the schema has none of its own).
    defaults = {n: f.default for n, f in fields.items() if n not in names and n != "id" and f.default is not None}
    columns = tuple(fields[n].column_name for n in names + list(defaults))
    tail = tuple(d() if callable(d) else d for d in defaults.values())
    rows = [tuple(v.id if isinstance(v, Source) else v for v in row.values()) + tail for row, _ in fresh]
    by_guid = {e.guid: e for _, e in fresh}
    return [(entry_id, by_guid[guid]) for entry_id, guid in insert_rows(Entry, columns, rows, returning="id, guid")]


def _insert_children(written: list[tuple[int, model.Entry]], authors: dict[str, int],
                     tags: dict[str, int]) -> None:
    """Authors, tags, regions and media of every written entry: one batched insert per table."""
    rows: dict[type[BaseModel], list[tuple[object, ...]]] = {EntryAuthor: [], EntryTag: [], EntryRegion: [],
                                                             EntryCoverage: [], Media: []}
    for entry_id, e in written:
        rows[EntryAuthor] += [(entry_id, authors[a.slug], i) for i, a in enumerate(e.authors)]
        rows[EntryTag] += [(entry_id, tags[t.slug], i) for i, t in enumerate(e.tags)]
        rows[EntryRegion] += [(entry_id, r) for r in e.regions]
        rows[EntryCoverage] += [(entry_id, c) for c in e.coverage]
        rows[Media] += [(entry_id, i, m.kind, m.url, m.type, m.length, m.width, m.height, m.duration,
                         m.caption, m.credit, m.lead) for i, m in enumerate(e.media)]
    for table, columns in CHILD_COLUMNS.items():
        insert_rows(table, columns, rows[table])


CHILD_COLUMNS: dict[type[BaseModel], tuple[str, ...]] = {
    EntryAuthor: ("entry_id", "author_id", "position"),
    EntryTag: ("entry_id", "tag_id", "position"),
    EntryRegion: ("entry_id", "region"),
    EntryCoverage: ("entry_id", "coverage"),
    Media: ("entry_id", "position", "kind", "url", "type", "length", "width", "height", "duration",
            "caption", "credit", "lead"),
}


def placeholders(count: int) -> str:
    """``count`` bound-parameter marks for the open database, comma-separated ("?, ?, ?")."""
    return ", ".join([db.obj.param] * count)


def insert_rows(table: type[BaseModel], columns: tuple[str, ...], rows: list[tuple[object, ...]],
                suffix: str = "", returning: str = "") -> list[tuple[object, ...]]:
    """Insert plain rows with multi-row INSERTs written directly, returning ``returning`` columns.

    The write path inserts thousands of rows per collect; building them as peewee
    queries cost more than the database spent storing them. Values must already be
    what the column stores (ints, text, bools, naive UTC datetimes, None).
    """
    if not rows:
        return []
    database = db.obj
    one = f"({placeholders(len(columns))})"
    head = f'INSERT INTO "{table._meta.table_name}" (' + ", ".join(f'"{c}"' for c in columns) + ") VALUES "
    tail = suffix + (f" RETURNING {returning}" if returning else "")
    out: list[tuple[object, ...]] = []
    per = max(1, 900 // len(columns))  # under SQLite's bound-parameter limit
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        cursor = database.execute_sql(head + ", ".join([one] * len(chunk)) + tail,
                                      [v for row in chunk for v in row])
        if returning:
            out += cursor.fetchall()
    return out


def _ensure_slugged(table: type[BaseModel], wanted: dict[str, dict[str, object]]) -> dict[str, int]:
    """Slug -> row id in ``table`` (Author or Tag), creating missing rows.

    The first spelling seen names a new row; later spellings do not rename it.
    """
    if not wanted:
        return {}
    def lookup() -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in pw.chunked(list(wanted), 500):
            marks = placeholders(len(chunk))
            found.update((slug, row_id) for row_id, slug in db.obj.execute_sql(
                f"SELECT id, slug FROM {table._meta.table_name} WHERE slug IN ({marks})", chunk))
        return found
    ids = lookup()
    # Sorted: every writer takes the unique-index locks of shared rows in the same order,
    # so concurrent collectors cannot deadlock on PostgreSQL.
    missing = [{"slug": slug, **wanted[slug]} for slug in sorted(wanted) if slug not in ids]
    if missing:
        # on_conflict_ignore: another collector may create the same slug concurrently.
        table.insert_many(missing).on_conflict_ignore().execute()
        ids = lookup()
    return ids


RELATED_KEEP = 5  # related entries kept (and published) per entry
RELATED_POOL = 20  # newest entries of each shared tag or coverage considered
COVERAGE_WEIGHT = 2  # one shared coverage dossier counts as much as two shared tags (see relate)


def _naive(value: datetime | str) -> datetime:
    """A stored instant read with plain SQL: SQLite gives text, PostgreSQL a datetime."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def relate(written: list[tuple[int, model.Entry]], tag_ids: dict[str, int]) -> list[int]:
    """Store the best related entries of each written entry, and the reverse links.

    Candidates are the newest RELATED_POOL live entries of the same edition that share
    a tag or coverage dossier, fetched with one bounded query per batch (so a tag on
    every entry costs the same as a rare one). Returns the ids of older entries that
    gained a link: their feeds changed.
    """
    keys: dict[int, set[tuple[str, object]]] = {}
    for entry_id, e in written:
        keys[entry_id] = ({("tag", tag_ids[t.slug]) for t in e.tags}
                          | {("coverage", c) for c in e.coverage})
    wanted = sorted({(e.edition, key) for entry_id, e in written for key in keys[entry_id]}, key=repr)
    if not wanted:
        return []
    pools: dict[tuple[str, tuple[str, object]], list[int]] = {}
    param = db.obj.param
    e_t, t_t, c_t = Entry._meta.table_name, EntryTag._meta.table_name, EntryCoverage._meta.table_name
    for chunk in pw.chunked(wanted, 100):
        parts, params = [], []
        for i, (edition, (kind, value)) in enumerate(chunk):
            table, column = (t_t, "tag_id") if kind == "tag" else (c_t, "coverage")
            parts.append(f"SELECT * FROM (SELECT {i} AS k, l.entry_id FROM {table} l "
                         f"JOIN {e_t} e ON e.id = l.entry_id WHERE l.{column} = {param} "
                         f"AND e.edition = {param} AND e.retracted_at IS NULL "
                         f"ORDER BY l.entry_id DESC LIMIT {RELATED_POOL}) p{i}")
            params += [value, edition]
        for k, entry_id in db.obj.execute_sql(" UNION ALL ".join(parts), params):
            pools.setdefault(chunk[k], []).append(entry_id)
    rows: dict[tuple[int, int], int] = {}
    for entry_id, e in written:
        score: Counter[int] = Counter()
        for kind, value in keys[entry_id]:
            pool = pools.get((e.edition, (kind, value)), ())
            score.update(pool)  # counted in C: this runs for every entry of every collect
            if kind == "coverage":
                score.update(pool)  # COVERAGE_WEIGHT: a dossier counts twice
        score.pop(entry_id, None)
        # Best first: most shared, then the most recently stored.
        best = [other for other, _ in heapq.nlargest(RELATED_KEEP, score.items(), key=_BY_SCORE_THEN_ID)]
        for other in best:
            rows[(entry_id, other)] = score[other]
            rows.setdefault((other, entry_id), score[other])
    if not rows:
        return []
    # sorted: concurrent writers lock rows in one order
    insert_rows(Related, ("entry_id", "related_id", "score"), [(a, b, s) for (a, b), s in sorted(rows.items())],
                " ON CONFLICT (entry_id, related_id) DO UPDATE SET score = excluded.score")
    mine = {entry_id for entry_id, _ in written}
    return sorted({a for a, _ in rows if a not in mine})


_BY_SCORE_THEN_ID = operator.itemgetter(1, 0)  # (entry id, score) -> (score, entry id)


def _relating_to(entry_ids: list[int]) -> list[int]:
    """Entries that list any of ``entry_ids`` among their related entries."""
    return [a for (a,) in Related.select(Related.entry).where(Related.related.in_(entry_ids)).distinct().tuples()]


def retract(entry_ids: list[int], when: datetime, reason: str, parents: dict[str, str]) -> set[str]:
    """Mark entries retracted (they become tombstones) and bump the feeds that held them."""
    ids = [i for i in entry_ids if i is not None]
    live = [e.id for e in Entry.select(Entry.id).where(Entry.id.in_(ids), Entry.retracted_at.is_null())]
    if not live:
        return set()
    # A retracted entry also leaves the related lists of other entries (and so their feeds).
    topics = stored_topics(live + _relating_to(live), parents)
    Entry.update(retracted_at=when, retraction_reason=reason, stored_at=when).where(Entry.id.in_(live)).execute()
    bump_topics(topics, when)
    return topics


def unretract(entry_ids: list[int], when: datetime, parents: dict[str, str]) -> set[str]:
    """Publish retracted entries again (an admin's mistake undone) and bump the feeds that
    hold them; their tombstones leave the Atom feeds."""
    dead = [e.id for e in Entry.select(Entry.id).where(Entry.id.in_(entry_ids), Entry.retracted_at.is_null(False))]
    if not dead:
        return set()
    Entry.update(retracted_at=None, retraction_reason=None, stored_at=when).where(Entry.id.in_(dead)).execute()
    topics = stored_topics(dead + _relating_to(dead), parents)
    bump_topics(topics, when)
    return topics


#: the retraction reason of an entry the source's keep/drop rules came to exclude: such an
#: entry, unlike one retracted by an admin or its source, comes back when the rule goes
RULE_WITHDRAWN = "withdrawn: the source's keep/drop rules now exclude it"


def refile_by_rules(source: Source, excluded: list[str], kept: list[str], when: datetime,
                    parents: dict[str, str]) -> set[str]:
    """Apply the source's keep/drop rules to what is already stored: live entries whose ids are
    ``excluded`` are withdrawn (a tombstone, like any retraction), and entries withdrawn that way
    whose ids are ``kept`` again are published again. Returns the feeds that changed."""
    topics: set[str] = set()
    if excluded:
        ids = [i for (i,) in Entry.select(Entry.id).where(
            Entry.source == source, Entry.guid.in_(excluded), Entry.retracted_at.is_null()).tuples()]
        topics |= retract(ids, when, RULE_WITHDRAWN, parents)
    withdrawn = {g: i for i, g in Entry.select(Entry.id, Entry.guid).where(
        Entry.source == source, Entry.retraction_reason == RULE_WITHDRAWN).tuples()}
    back = [withdrawn[g] for g in kept if g in withdrawn]
    if back:
        topics |= unretract(back, when, parents)
    return topics


@dataclass(frozen=True)
class FoundEntry:
    id: int
    title: str
    source: str
    retracted: bool


def find_entries(identifier: str, canonical: str | None = None) -> list[FoundEntry]:
    """Entries known by ``identifier``: their public id, their guid as stored, their link
    (``canonical``: the identifier as a canonical link), or the guid exactly as the source wrote
    it, which feedparser resolved against the source's URL (``embargo-1`` is stored as
    ``https://wire.example.org/embargo-1``, or ``samples/embargo-1`` for a local file)."""
    resolved = {urljoin(u, identifier) for (u,) in Source.select(pw.fn.COALESCE(Source.fetch_url, Source.url)).tuples()
                if u} | {urljoin(u, identifier) for (u,) in Source.select(Source.url).tuples() if u}
    names = {identifier, *resolved}
    links = {identifier, canonical} - {None}
    query = (Entry.select(Entry.id, Entry.title, Source.key, Entry.retracted_at).join(Source)
             .where(Entry.public_id.in_(list(names)) | Entry.guid.in_(list(names)) | Entry.link.in_(list(links)))
             .order_by(Entry.id))
    return [FoundEntry(i, t, k, r is not None) for i, t, k, r in query.tuples()]


def previous_ids(source: Source, limit: int = 500) -> dict[str, str]:
    """Link -> guid of the source's newest stored entries (to notice guids that change)."""
    database = db.obj
    rows = database.execute_sql(
        f"SELECT link, guid FROM {Entry._meta.table_name} WHERE source_id = {database.param} "
        f"AND link IS NOT NULL ORDER BY id DESC LIMIT {int(limit)}", (source.id,))
    return {link: guid for link, guid in rows}


def rekey_source(source: Source, rule: str, when: datetime, parents: dict[str, str]) -> set[str]:
    """Re-identify a source's stored entries under a weaker rule (call in the save transaction).

    Entries that turn out to be one story (the same link, fetched under changing
    guids) become one: the first stored keeps its public id, the others are
    retracted as duplicates. Returns the topics the retractions changed.
    """
    from .normalize import hash_id  # pure helper

    rows = list(Entry.select(Entry.id, Entry.guid, Entry.link, Entry.title, Entry.published_raw,
                             Entry.updated_raw, Entry.public_id)
                .where(Entry.source == source, Entry.retracted_at.is_null()).order_by(Entry.id))
    keep: dict[str, Entry] = {}
    duplicates: list[tuple[int, str]] = []
    for r in rows:
        key = r.link if rule == "link" and r.link else hash_id(r.title, r.published_raw or r.updated_raw)
        if key in keep:
            duplicates.append((r.id, keep[key].public_id))
        else:
            keep[key] = r
    # Two steps, so that no row ever takes a key another row still holds.
    for key, r in keep.items():
        if r.guid != key:
            Entry.update(guid=f"rekey:{r.id}").where(Entry.id == r.id).execute()
    for key, r in keep.items():
        if r.guid != key:
            Entry.update(guid=key).where(Entry.id == r.id).execute()
    topics: set[str] = set()
    for entry_id, original in duplicates:
        Entry.update(guid=f"duplicate:{entry_id}").where(Entry.id == entry_id).execute()
        topics |= retract([entry_id], when, f"duplicate of {original}", parents)
    return topics


def trim_fetch_log(source_ids: list[int], keep: int) -> None:
    """Keep only the newest ``keep`` fetch-log rows of each source (the log stays bounded)."""
    if not source_ids:
        return
    database, table = db.obj, FetchLog._meta.table_name
    marks = placeholders(len(source_ids))
    # One statement for a whole batch of sources; it reads at most keep+1 rows of each.
    database.execute_sql(
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
        f"(PARTITION BY source_id ORDER BY id DESC) AS n FROM {table} WHERE source_id IN ({marks})) r "
        f"WHERE r.n > {int(keep)})", list(source_ids))


def update_sources(changes: list[tuple[int, dict[str, object]]], owner: str | None = None) -> None:
    """Apply per-source field updates, one prepared statement per set of fields; with ``owner``,
    only to sources that collector still holds (another collector's claim is left alone)."""
    database, table, fields = db.obj, Source._meta.table_name, Source._meta.fields
    groups: dict[tuple[str, ...], list[tuple[object, ...]]] = {}
    for source_id, values in sorted(changes, key=lambda c: c[0]):  # one lock order for every writer
        groups.setdefault(tuple(values), []).append(tuple(fields[k].db_value(v) for k, v in values.items())
                                                    + (source_id,))
    for names, rows in groups.items():
        sets = ", ".join(f'"{fields[k].column_name}" = {database.param}' for k in names)
        sql = f'UPDATE "{table}" SET {sets} WHERE id = {database.param}'
        if owner is not None:
            sql += f" AND lease_owner = {database.param}"
            rows = [(*row, owner) for row in rows]
        for row in rows:
            database.execute_sql(sql, row)
