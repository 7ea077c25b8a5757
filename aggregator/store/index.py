"""The feed index and the search index: what makes a feed's page cost the same at a million
entries as at ten thousand.

Every feed's entries, newest first, are one range of one index. ``feed_entry`` holds a row
(feed, key) for each public feed an entry is in (the Topic keys: ``en:latest``,
``en:section:news`` for an entry of ``politics`` too, ``en:tag:gaza-strip``, ...), where the
*sort key* is the entry's publication second and its id in one 64-bit integer: ordering by
the key is ordering by (published, id), the feeds' order, and a page is one seek and a short
walk. ``entry_search`` holds each entry's searchable words under the same key (an FTS5 table
on SQLite, whose rowids it orders by; a tsvector with a GIN index on PostgreSQL), so search
walks newest matches first too.

``feed_retraction`` holds a row (feed, retracted at, key) for each feed a retracted entry is
in, so a feed's tombstones are one seek too: reading the edition's retractions and checking
each against the feed cost one random probe per retraction of the whole tombstone window.

All are written in the transaction that writes the entry, and rebuilt (in batches) when the
store was made by an older feedhub or the taxonomy moved a subsection to another section.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import logging
import weakref
from collections.abc import Iterable
from datetime import datetime

import peewee as pw

from ..errors import StoreError
from ..search import document
from .connection import aware, db, naive, placeholders, stored, write_transaction
from .schema import Entry, FeedKey, MetaInfo
from .topics import topics_by_entry

log = logging.getLogger("feedhub.store")

#: low bits of a sort key hold the entry id; the rest, the publication second (signed)
SHIFT = 28
MASK = (1 << SHIFT) - 1

FEED_TABLE = "feed_entry"
SEARCH_TABLE = "entry_search"
RETRACTION_TABLE = "feed_retraction"
#: bump when what the index holds changes: stores built before are rebuilt at start
INDEX_VERSION = 1


def sort_key(published: datetime, entry_id: int) -> int:
    """The entry's place in every feed: (publication second, id) as one integer."""
    if not 0 < entry_id <= MASK:
        raise StoreError(f"entry id {entry_id} does not fit the feed index ({MASK} entries at most)")
    return (calendar.timegm(stored(published).timetuple()) << SHIFT) | entry_id


def second_bound(instant: datetime, upper: bool) -> int:
    """The lowest (or highest) sort key of any entry published in ``instant``'s second."""
    base = calendar.timegm(stored(instant).timetuple()) << SHIFT
    return base | MASK if upper else base


def key_sql(alias: str) -> str:
    """SQL for an entry row's sort key (for queries that start from the entry table)."""
    if isinstance(db.obj, pw.SqliteDatabase):
        return f"((CAST(strftime('%s', {alias}.published) AS INTEGER) << {SHIFT}) | {alias}.id)"
    return f"((floor(extract(epoch FROM {alias}.published))::bigint << {SHIFT}) | {alias}.id)"


def create_tables(database: pw.Database) -> None:
    """Create the index tables where missing (raw SQL: FTS5 and GIN are dialect-specific)."""
    if isinstance(database, pw.SqliteDatabase):
        statements = [
            # WITHOUT ROWID: the primary key is the table, no second copy of each row.
            f"CREATE TABLE IF NOT EXISTS {FEED_TABLE} (feed_id INTEGER NOT NULL, key INTEGER NOT NULL, "
            f"PRIMARY KEY (feed_id, key)) WITHOUT ROWID",
            # The words are made by aggregator.search; 'ascii' only splits them at the spaces.
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5(words, tokenize = 'ascii')",
            f"CREATE TABLE IF NOT EXISTS {RETRACTION_TABLE} (feed_id INTEGER NOT NULL, retracted DATETIME NOT NULL, "
            f"key INTEGER NOT NULL, PRIMARY KEY (feed_id, retracted, key)) WITHOUT ROWID",
        ]
    else:
        statements = [
            f"CREATE TABLE IF NOT EXISTS {FEED_TABLE} (feed_id integer NOT NULL, key bigint NOT NULL, "
            f"PRIMARY KEY (feed_id, key))",
            f"CREATE TABLE IF NOT EXISTS {SEARCH_TABLE} (key bigint PRIMARY KEY, words tsvector NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {SEARCH_TABLE}_words ON {SEARCH_TABLE} USING GIN (words)",
            f"CREATE TABLE IF NOT EXISTS {RETRACTION_TABLE} (feed_id integer NOT NULL, retracted timestamp NOT NULL, "
            f"key bigint NOT NULL, PRIMARY KEY (feed_id, retracted, key))",
            # The planner chooses between walking the newest entries for a word and taking the
            # word's matches from the GIN index by how common it thinks the word is; a word not
            # among the commonest it keeps statistics for is taken to be half as common as the
            # rarest of those. With the default 100, at a million entries, that was 1,300
            # matches for a word found nowhere: it walked all million rows (240 ms) where the
            # GIN index answers in 0.2 ms. Ten times the statistics make such words rarer than
            # a page, so rare words come from the GIN index; ANALYZE still takes under a second.
            f"ALTER TABLE {SEARCH_TABLE} ALTER COLUMN words SET STATISTICS 1000",
        ]
    statements.append(f"CREATE INDEX IF NOT EXISTS {FEED_TABLE}_key ON {FEED_TABLE} (key)")
    statements.append(f"CREATE INDEX IF NOT EXISTS {RETRACTION_TABLE}_key ON {RETRACTION_TABLE} (key)")
    for sql in statements:
        database.execute_sql(sql)


def search_key_column() -> str:
    """The search table's sort-key column as queries name it."""
    return "rowid" if isinstance(db.obj, pw.SqliteDatabase) else "key"


# Feed key ids per open store (tests open many stores in one process). Only ids read from
# committed rows are remembered: one made in a transaction that rolls back must not live on.
_known: "weakref.WeakKeyDictionary[pw.Database, dict[str, int]]" = weakref.WeakKeyDictionary()


def feed_ids(keys: Iterable[str], create: bool = False) -> dict[str, int]:
    """Topic key -> feed id; with ``create``, keys not yet known are added (else left out)."""
    database = db.obj
    known = _known.setdefault(database, {})
    wanted = sorted(set(keys))
    missing = [k for k in wanted if k not in known]
    if missing:
        known.update(_lookup(missing))
        missing = [k for k in missing if k not in known]
        if missing and create:
            # Sorted, and ON CONFLICT: concurrent writers creating the same keys never deadlock.
            table = FeedKey._meta.table_name
            for chunk in pw.chunked(missing, 400):
                database.execute_sql(f'INSERT INTO {table} ("key") VALUES '
                                     + ", ".join([f"({database.param})"] * len(chunk))
                                     + ' ON CONFLICT ("key") DO NOTHING', chunk)
            fresh = _lookup(missing)
            return {k: known[k] if k in known else fresh[k] for k in wanted if k in known or k in fresh}
    return {k: known[k] for k in wanted if k in known}


def _lookup(keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in pw.chunked(keys, 400):
        found.update((k, i) for i, k in db.obj.execute_sql(
            f'SELECT id, "key" FROM {FeedKey._meta.table_name} WHERE "key" IN ({placeholders(len(chunk))})',
            chunk))
    return found


def feed_keys_like(prefix: str) -> list[str]:
    """Every feed key starting with ``prefix`` (``en:tag:``: the edition's tag feeds)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return [k for (k,) in db.obj.execute_sql(
        f"SELECT \"key\" FROM {FeedKey._meta.table_name} WHERE \"key\" LIKE {db.obj.param} ESCAPE '\\' "
        f'ORDER BY "key"', (escaped + "%",))]


class Posting:
    """What the index holds of one entry: its sort key, its feeds, its searchable words, and
    when it was retracted (naive UTC; None for a live entry)."""

    __slots__ = ("key", "topics", "words", "retracted")

    def __init__(self, key: int, topics: Iterable[str], words: list[str], retracted: datetime | None = None):
        self.key, self.topics, self.words, self.retracted = key, set(topics), words, retracted


def post(postings: list[Posting]) -> None:
    """Put entries in their feeds and in search (their old rows must be gone: see ``unpost``)."""
    if not postings:
        return
    database = db.obj
    ids = feed_ids({t for p in postings for t in p.topics}, create=True)
    rows = sorted((ids[t], p.key) for p in postings for t in p.topics)
    one = f"({database.param}, {database.param})"
    for chunk in pw.chunked(rows, 450):
        database.execute_sql(f"INSERT INTO {FEED_TABLE} (feed_id, key) VALUES " + ", ".join([one] * len(chunk))
                             + " ON CONFLICT DO NOTHING", [v for row in chunk for v in row])
    gone = sorted((ids[t], p.retracted, p.key) for p in postings if p.retracted is not None for t in p.topics)
    three = f"({database.param}, {database.param}, {database.param})"
    for chunk in pw.chunked(gone, 300):
        database.execute_sql(f"INSERT INTO {RETRACTION_TABLE} (feed_id, retracted, key) VALUES "
                             + ", ".join([three] * len(chunk)) + " ON CONFLICT DO NOTHING",
                             [v for row in chunk for v in row])
    sqlite = isinstance(database, pw.SqliteDatabase)
    searchable = [(p.key, _words_value(p.words, sqlite)) for p in postings if p.words]
    mark = database.param
    one = f"({mark}, {mark})" if sqlite else f"({mark}, CAST({mark} AS tsvector))"
    column = "rowid" if sqlite else "key"
    for chunk in pw.chunked(searchable, 200):
        database.execute_sql(f"INSERT INTO {SEARCH_TABLE} ({column}, words) VALUES " + ", ".join([one] * len(chunk)),
                             [v for row in chunk for v in row])


def _words_value(words: list[str], sqlite: bool) -> str:
    if sqlite:
        return " ".join(words)
    # A tsvector literal with positions (phrases need them); the words are letters and digits
    # only, so quoting them needs no escaping.
    return " ".join(f"'{w}':{i}" for i, w in enumerate(words, 1))


def unpost(keys: list[int]) -> None:
    """Take entries (by sort key) out of every feed, out of search and out of the tombstones."""
    if not keys:
        return
    database = db.obj
    column = search_key_column()
    for chunk in pw.chunked(sorted(set(keys)), 400):
        marks = placeholders(len(chunk))
        database.execute_sql(f"DELETE FROM {FEED_TABLE} WHERE key IN ({marks})", chunk)
        database.execute_sql(f"DELETE FROM {SEARCH_TABLE} WHERE {column} IN ({marks})", chunk)
        database.execute_sql(f"DELETE FROM {RETRACTION_TABLE} WHERE key IN ({marks})", chunk)


def mark_retracted(keys: list[int], when: datetime) -> None:
    """Entries (by sort key) were retracted at ``when``: they become tombstones of every feed
    they are in (call in the retraction's transaction)."""
    database = db.obj
    for chunk in pw.chunked(sorted(set(keys)), 400):
        database.execute_sql(
            f"INSERT INTO {RETRACTION_TABLE} (feed_id, retracted, key) SELECT feed_id, {database.param}, key "
            f"FROM {FEED_TABLE} WHERE key IN ({placeholders(len(chunk))}) ON CONFLICT DO NOTHING",
            [stored(when), *chunk])


def unmark_retracted(keys: list[int]) -> None:
    """Entries (by sort key) were published again: their tombstones go."""
    for chunk in pw.chunked(sorted(set(keys)), 400):
        db.obj.execute_sql(f"DELETE FROM {RETRACTION_TABLE} WHERE key IN ({placeholders(len(chunk))})", chunk)


def keys_of(entry_ids: list[int]) -> list[int]:
    """The sort keys of stored entries, as they are stored now."""
    keys = []
    for chunk in pw.chunked(sorted(set(entry_ids)), 400):
        keys += [sort_key(aware(published), entry_id) for entry_id, published in db.obj.execute_sql(
            f"SELECT id, published FROM {Entry._meta.table_name} WHERE id IN ({placeholders(len(chunk))})", chunk)]
    return keys


def postings(entry_ids: list[int], parents: dict[str, str]) -> list[Posting]:
    """The index rows of stored entries, as they are stored now."""
    topics = topics_by_entry(entry_ids, parents)
    found = []
    for chunk in pw.chunked(sorted(set(entry_ids)), 400):
        for entry_id, published, title, summary, retracted in db.obj.execute_sql(
                f"SELECT id, published, title, summary, retracted_at FROM {Entry._meta.table_name} "
                f"WHERE id IN ({placeholders(len(chunk))})", chunk):
            found.append(Posting(sort_key(aware(published), entry_id), topics.get(entry_id, ()),
                                 document(title, summary), None if retracted is None else naive(retracted)))
    return found


def unpost_entries(entry_ids: list[int]) -> None:
    """Take stored entries out of the index, as they are stored now (before a change of their
    publication date, which moves them in every feed: re-index them with ``repost`` after)."""
    unpost(keys_of(entry_ids))


def repost(entry_ids: list[int], parents: dict[str, str]) -> None:
    """Re-index stored entries after their filing changed (call in the write's transaction)."""
    fresh = postings(entry_ids, parents)
    unpost([p.key for p in fresh])
    post(fresh)


def _fingerprint(parents: dict[str, str]) -> str:
    text = json.dumps({"version": INDEX_VERSION, "parents": parents}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


REBUILD_BATCH = 2000


def prepare(parents: dict[str, str]) -> int:
    """Bring the index up to date with the store and the taxonomy (``parents``: subsection ->
    section): rebuilt in batches, each its own short transaction, when the store was indexed
    under another taxonomy or version, or not at all. Returns how many entries were indexed."""
    want = _fingerprint(parents)
    row = MetaInfo.get_or_none(MetaInfo.key == "feed_index")
    if row is not None and row.value == want:
        return 0
    if row is None and Entry.select(Entry.id).limit(1).scalar() is None:
        mark_prepared(parents)  # a new store: every entry will be indexed as it is written
        return 0
    log.warning("feed index: re-indexing every entry (%s); feeds are complete again when it is done",
                "a store from an older feedhub" if row is None else "the taxonomy or the index changed")
    done, last = 0, 0
    while True:
        with write_transaction():
            ids = [i for (i,) in db.obj.execute_sql(
                f"SELECT id FROM {Entry._meta.table_name} WHERE id > {db.obj.param} ORDER BY id LIMIT {REBUILD_BATCH}",
                (last,))]
            if not ids:
                break
            repost(ids, parents)
        done += len(ids)
        last = ids[-1]
    with write_transaction():
        mark_prepared(parents)
    log.warning("feed index: %d entries indexed", done)
    return done


def mark_prepared(parents: dict[str, str]) -> None:
    """Record that the (empty, or freshly written) index matches ``parents``."""
    MetaInfo.put("feed_index", _fingerprint(parents))


#: the tables PostgreSQL's maintenance vacuums (what every feed read and search plans against)
_VACUUMED = ("entry", "feed_entry", "entry_search")


def analyze() -> None:
    """Refresh the planner's statistics (routine maintenance, and after a bulk load): SQLite's
    ANALYZE, limited to a sample per index so it takes well under a second at a million
    entries; on PostgreSQL, VACUUM (ANALYZE) of the entries and both indexes.

    The VACUUM matters as much as the statistics. Rows written since the last one are not yet
    known visible to all; the planner probes the end of an index for a bound past its
    histogram (every feed's "published up to now"), and each unsettled row it meets there
    costs a heap visit: measured at a million freshly loaded entries, a search that matched
    nothing spent 22 ms planning and up to 600 ms in all, against 0.5 ms after a VACUUM.
    Autovacuum gets there too, later; an hourly pass only visits pages changed since.
    """
    database = db.obj
    if isinstance(database, pw.SqliteDatabase):
        database.execute_sql("PRAGMA analysis_limit = 1000")
        database.execute_sql("ANALYZE")
        return
    if database.in_transaction():
        database.execute_sql("ANALYZE")  # (VACUUM cannot run inside a transaction)
        return
    for table in _VACUUMED:
        database.execute_sql(f"VACUUM (ANALYZE) {table}")
    database.execute_sql("ANALYZE")
