"""Topics: every public feed's change counter, bumped with the entries it holds, and read by
the web layer without a query per request where SQLite allows."""
from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import peewee as pw

from .connection import PostgresDatabase, db, insert_rows, placeholders
from .schema import (
    Author,
    Entry,
    EntryAuthor,
    EntryCoverage,
    EntryRegion,
    EntryTag,
    Source,
    Tag,
    Topic,
)


def entry_topics(edition: str, section: str | None, regions: Iterable[str], tags: Iterable[str],
                 authors: Iterable[str], breaking: bool, parents: dict[str, str],
                 coverage: Iterable[str] = (), in_latest: bool = True) -> set[str]:
    """Every public feed that holds an entry so classified (``parents``: subsection -> section;
    ``in_latest``: its source's entries are in the latest feeds)."""
    keys = {f"{edition}:latest"} if in_latest else set()
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


log = logging.getLogger(__name__)

_deferred = threading.local()


@contextmanager
def deferred_bumps() -> Iterator[None]:
    """Within it, this thread's topic bumps are gathered and made at once at its end: use it
    just inside a transaction that writes many sources (a collector's group commit), so the
    topic rows, which every writer bumps ("en:latest"), are locked for the last moment of the
    transaction, not from its first source on. A bump of a write rolled back to its savepoint
    is still made: a feed rendered again for nothing, never a change missed."""
    if getattr(_deferred, "keys", None) is not None:  # nested: the outer one bumps
        yield
        return
    _deferred.keys, _deferred.now = set(), None
    try:
        yield
        keys, now = _deferred.keys, _deferred.now
    finally:
        _deferred.keys = None
    if keys:
        _bump(keys, now)


def bump_topics(keys: Iterable[str], now: datetime) -> None:
    """Add one to each topic's revision (inside the transaction that changed its entries)."""
    gathered = getattr(_deferred, "keys", None)
    if gathered is not None:
        gathered.update(keys)
        _deferred.now = now if _deferred.now is None else max(_deferred.now, now)
        return
    _bump(keys, now)


def _bump(keys: Iterable[str], now: datetime) -> None:
    table = Topic._meta.table_name
    # One statement, keys in a fixed order, so concurrent writers never deadlock.
    insert_rows(Topic, ("key", "revision", "changed_at"), [(key, 1, now) for key in sorted(set(keys))],
                f' ON CONFLICT ("key") DO UPDATE SET revision = "{table}".revision + 1, '
                "changed_at = excluded.changed_at")
    database = db.obj
    if isinstance(database, PostgresDatabase):
        # Every web process's TopicRevisions listens (PostgreSQL delivers it at commit, and
        # not at all on rollback); this process's own ones are told at commit directly.
        database.execute_sql(f"SELECT pg_notify('{CHANNEL}', '')")
        database.after_commit(_committed_here)


#: the PostgreSQL channel a commit that changed topics notifies
CHANNEL = "feedhub_topics"

#: commits of topic changes made by this process (see TopicRevisions)
_local_commits = [0]


def _committed_here() -> None:
    _local_commits[0] += 1


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
    revisions read since are still exact.

    On PostgreSQL, every commit that changes topics sends a NOTIFY; one listening
    connection per process (``_Listener``) counts them, and this process's own commits
    count at once. While the count is unchanged and the listener is known alive, the
    revisions read since are still current. A commit reaches another process when its
    notification does (normally within a millisecond); while the listener is down or has
    not been heard from for ``_Listener.STALE_AFTER`` seconds, every call is one indexed
    lookup (``topic_revision``) again, as it is on in-memory SQLite.
    """

    #: revisions remembered at most (one per public feed read since the last write)
    MAX_MEMO = 10_000

    def __init__(self, database: pw.Database):
        self._conn = None
        self._listener: _Listener | None = None
        if isinstance(database, pw.SqliteDatabase) and database.database != ":memory:":
            import sqlite3

            # Shared by the server's threads under a lock: each call holds it for microseconds.
            self._conn = sqlite3.connect(database.database, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 10000")
        elif isinstance(database, PostgresDatabase):
            self._listener = _Listener.for_database(database)
        self._sql = _topic_sql("?")
        self._lock = threading.Lock()
        self._version: object = None
        self._memo: dict[str, int] = {}

    def get(self, key: str) -> int:
        """The topic's current revision, as ``topic_revision`` would read it now."""
        if self._conn is not None:
            return self._get_sqlite(key)
        if self._listener is None:
            return topic_revision(key)
        version = self._listener.version()
        if version is None:  # not listening: nothing tells us of another process's commit
            return topic_revision(key)
        with self._lock:
            if version != self._version or len(self._memo) > self.MAX_MEMO:
                self._memo.clear()
                self._version = version
            revision = self._memo.get(key)
        if revision is None:
            # Read after the version: a commit landing meanwhile changes the version, and the
            # value is kept only if the version is still the one it was read under.
            revision = topic_revision(key)
            with self._lock:
                if self._version == version == self._listener.version():
                    self._memo[key] = revision
        return revision

    def change_count(self) -> object | None:
        """A value that changes whenever a commit may have changed entries (any process's);
        None when nothing tells (in-memory SQLite, the listener down): then only reading the
        store tells."""
        if self._conn is not None:
            with self._lock:
                return self._conn.execute("PRAGMA data_version").fetchone()[0]
        if self._listener is not None:
            return self._listener.version()
        return None

    def _get_sqlite(self, key: str) -> int:
        assert self._conn is not None
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


class _Listener:
    """One LISTEN connection per process and database, counting topic-change notifications."""

    #: seconds between round trips that prove the connection alive when nothing is notified
    PING = 1.0
    #: seconds without a sign of life after which the count is not trusted
    STALE_AFTER = 3.0
    #: seconds between attempts to listen again after the connection was lost
    RETRY = 1.0

    _by_database: dict[tuple[object, ...], _Listener] = {}
    _registry_lock = threading.Lock()

    @classmethod
    def for_database(cls, database: PostgresDatabase) -> _Listener:
        # Channels belong to a database, not a schema: one listener serves every store in it
        # (a process that opens many, as the tests do, must not open a connection for each).
        params = {k: v for k, v in database.connect_params.items() if k != "options"}
        key = (database.database, tuple(sorted((k, str(v)) for k, v in params.items())))
        with cls._registry_lock:
            listener = cls._by_database.get(key)
            if listener is None or not listener._thread.is_alive():
                listener = cls._by_database[key] = cls(database.database, params)
            return listener

    def __init__(self, dbname: str, params: dict[str, object]):
        self._dbname, self._params = dbname, params
        self._heard = 0  # notifications (and reconnections) seen
        self._alive_until = 0.0  # monotonic time until which the count is trusted
        self._listening = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="topic-listener", daemon=True)
        self._thread.start()

    def version(self) -> tuple[int, int] | None:
        """The change count (notifications heard, this process's commits), or None while the
        listener is not known to be hearing every notification."""
        if not self._listening or time.monotonic() > self._alive_until:
            return None
        return (self._heard, _local_commits[0])

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg2

        warned = False
        while not self._stop.is_set():
            conn = None
            try:
                params = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                          "keepalives_count": 2, **self._params, "application_name": "feedhub topic listener"}
                conn = psycopg2.connect(dbname=self._dbname, **params)
                conn.autocommit = True
                cursor = conn.cursor()
                cursor.execute(f"LISTEN {CHANNEL}")
                # Whatever was committed while we were not listening: forget it all.
                self._heard += 1
                self._mark_alive()
                self._listening = True
                if warned:
                    log.info("listening for topic changes again")
                warned = False
                self._listen(conn, cursor)
            except Exception as e:
                self._listening = False
                if not warned and not self._stop.is_set():
                    log.warning("not listening for topic changes (%s); feed requests read revisions from "
                                "the store until it is back", str(e).strip() or type(e).__name__)
                    warned = True
            finally:
                self._listening = False
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
            self._stop.wait(self.RETRY)

    def _listen(self, conn: Any, cursor: Any) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], self.PING)
            if readable:
                conn.poll()
            else:
                # Quiet: a round trip proves the link; the server sends any pending
                # notification before its answer.
                cursor.execute("SELECT 1")
            notifies = conn.notifies
            if notifies:
                notifies.clear()
                self._heard += 1
            self._mark_alive()

    def _mark_alive(self) -> None:
        self._alive_until = time.monotonic() + self.STALE_AFTER


def stored_topics(entry_ids: list[int], parents: dict[str, str]) -> set[str]:
    """The topics of entries as they are stored now (before an update or a retraction)."""
    keys: set[str] = set()
    for found in topics_by_entry(entry_ids, parents).values():
        keys |= found
    return keys


def topics_by_entry(entry_ids: list[int], parents: dict[str, str]) -> dict[int, set[str]]:
    """Entry id -> the public feeds it is in, as stored now.

    Two plain queries however many entries: this runs for every batch a collector writes.
    """
    found: dict[int, set[str]] = {}
    if not entry_ids:
        return found
    database = db.obj
    names = {m: m._meta.table_name for m in (EntryRegion, EntryTag, Tag, EntryAuthor, Author, EntryCoverage)}
    for chunk in pw.chunked(sorted(set(entry_ids)), 400):
        terms: dict[str, dict[int, list[str]]] = {"r": {}, "t": {}, "a": {}, "c": {}}
        marks = placeholders(len(chunk))
        sql = (f"SELECT 'r', entry_id, region FROM {names[EntryRegion]} WHERE entry_id IN ({marks}) "
               f"UNION ALL SELECT 't', l.entry_id, t.slug FROM {names[EntryTag]} l "
               f"JOIN {names[Tag]} t ON t.id = l.tag_id WHERE l.entry_id IN ({marks}) "
               f"UNION ALL SELECT 'a', l.entry_id, a.slug FROM {names[EntryAuthor]} l "
               f"JOIN {names[Author]} a ON a.id = l.author_id WHERE l.entry_id IN ({marks}) "
               f"UNION ALL SELECT 'c', entry_id, coverage FROM {names[EntryCoverage]} WHERE entry_id IN ({marks})")
        for kind, entry_id, value in database.execute_sql(sql, chunk * 4):
            terms[kind].setdefault(entry_id, []).append(value)
        sql = (f"SELECT e.id, e.edition, e.section, e.breaking, s.in_latest FROM {Entry._meta.table_name} e "
               f"JOIN {Source._meta.table_name} s ON s.id = e.source_id WHERE e.id IN ({marks})")
        for entry_id, edition, section, breaking, in_latest in database.execute_sql(sql, chunk):
            found[entry_id] = entry_topics(edition, section, terms["r"].get(entry_id, ()),
                                           terms["t"].get(entry_id, ()), terms["a"].get(entry_id, ()),
                                           bool(breaking), parents, terms["c"].get(entry_id, ()), bool(in_latest))
    return found
