"""What feeds read: a page of entries, the rows an item is made of, tombstones, feed dates.

Plain SQL where it was measured to pay (building fifty-id IN lists and converting rows
through peewee cost more than the database took to answer); peewee builds the filters.
Everything taken and returned is plain values, instants aware UTC: converting them to and
from the stored naive UTC happens here and nowhere above the store.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import peewee as pw

from ..search import Query, parse_query
from . import index
from .connection import aware, db, placeholders, stored
from .entries import RELATED_KEEP
from .schema import Author, Entry, EntryAuthor, EntryCoverage, EntryRegion, EntryTag, Media, Related, Source, Tag

E = Entry


@dataclass(frozen=True)
class FeedQuery:
    """Which entries a feed holds, retracted ones included: an edition, and criteria that
    intersect. A criterion is ("section" | "region" | "tag" | "author" | "coverage", slug) (a
    section holds its subsections), ("q", text) or ("since", instant); ``breaking_since`` keeps only breaking entries
    published since then, ``breaking`` all breaking ones. Instants are aware UTC."""

    edition: str
    criteria: tuple[tuple[str, Any], ...] = ()
    breaking: bool = False
    breaking_since: datetime | None = None
    #: entries published after this instant are not shown yet (an embargo, a partner's delay)
    until: datetime | None = None
    #: the sources' rights this feed may carry (config.RIGHTS; empty: any), and their kinds
    rights: tuple[str, ...] = ()
    source_kinds: tuple[str, ...] = ()
    #: a partner profile's scope: any of these sections (families expanded) and regions
    sections_any: tuple[str, ...] = ()
    regions_any: tuple[str, ...] = ()


class PageRow(NamedTuple):
    """One entry of a page (instants aware UTC)."""

    id: int
    source: int
    public_id: str
    title: str
    link: str | None
    summary: str
    content: str
    published: datetime
    updated: datetime
    language: str
    section: str | None
    breaking: bool
    origin: str | None
    reading_time: int


class FeedSource(NamedTuple):
    """What a feed shows of an entry's source."""

    id: int
    key: str
    kind: str
    url: str
    name: str
    feed_title: str | None
    feed_link: str | None
    rights: str = "everyone"
    rights_statement: str = ""


# What a feed shows of an entry (PageRow's columns).
_ENTRY_COLUMNS = (E.id, E.source, E.public_id, E.title, E.link, E.summary, E.content, E.published, E.updated,
                  E.language, E.section, E.breaking, E.origin, E.reading_time)


def _contains(field: pw.Field, text: str) -> pw.Node:
    """Case-insensitive substring match with LIKE's wildcards escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    op = "LIKE" if isinstance(db.obj, pw.SqliteDatabase) else "ILIKE"
    return pw.NodeList((field, pw.SQL(op), f"%{escaped}%", pw.SQL("ESCAPE '\\'")))


#: the feed a query walks, most selective kind first (the others are checked per entry)
_DRIVE_ORDER = ("coverage", "author", "tag", "region", "section")


@dataclass(frozen=True)
class _Plan:
    """A feed query in the index's terms: the feed walked, the feeds also required, search."""

    drive: str
    also: tuple[str, ...]
    search: Query | None
    since: datetime | None


def _plan(q: FeedQuery) -> _Plan:
    topics: dict[str, list[str]] = {}
    search: Query | None = None
    since = None
    for kind, value in q.criteria:
        if kind == "q":
            search = parse_query(value)  # (two q's cannot be given: a request has one)
        elif kind == "since":
            since = value if since is None else max(since, value)
        else:
            topics.setdefault(kind, []).append(f"{q.edition}:{kind}:{value}")
    ranked = [key for kind in _DRIVE_ORDER for key in topics.get(kind, [])]
    if q.breaking:
        ranked.insert(0, f"{q.edition}:breaking")
    ranked = list(dict.fromkeys(ranked)) or [f"{q.edition}:latest"]  # latest: every entry of the edition
    return _Plan(ranked[0], tuple(ranked[1:]), search, since)


class _Walk(NamedTuple):
    """A feed query as SQL: FROM ... WHERE ..., with the sort-key expression it orders by."""

    source: str
    where: list[str]
    params: list[Any]
    key: str


#: `since` reads the entries changed since then from the (edition, updated) index and sorts
#: them, when there are at most this many; more than that, it walks the feed like any filter
SINCE_SORT_LIMIT = 5000


def _walk(q: FeedQuery, low: int | None = None, high: int | None = None) -> _Walk | None:
    """The SQL that walks a feed's live entries with sort keys in [low, high]; None when the
    feed cannot hold any (a feed nothing was ever filed in, or a ``q`` with no word)."""
    plan = _plan(q)
    database = db.obj
    p = database.param
    wanted = [plan.drive, *plan.also]
    scope = [f"{q.edition}:section:{s}" for s in q.sections_any] + [f"{q.edition}:region:{r}" for r in q.regions_any]
    ids = index.feed_ids(wanted + scope)
    if any(key not in ids for key in wanted) or (plan.search is not None and plan.search.empty):
        return None
    where: list[str] = []
    params: list[Any] = []
    from_entries = False  # walking the entries themselves (`since`), not an index by sort key
    if plan.search is not None:
        key = f"d.{index.search_key_column()}"
        match, term = _match("d", plan.search)
        where.append(match)
        params.append(term)
        source = f"{index.SEARCH_TABLE} d CROSS JOIN {Entry._meta.table_name} e"
        required = wanted
    elif plan.since is not None and _changed_since_few(q.edition, plan.since):
        from_entries = True
        key = index.key_sql("e")
        source = f"{Entry._meta.table_name} e"
        where += [f"e.edition = {p}", f"e.updated >= {p}"]
        params += [q.edition, stored(plan.since)]
        required = wanted
    else:
        key = "d.key"
        source = f"{index.FEED_TABLE} d CROSS JOIN {Entry._meta.table_name} e"
        where.append(f"d.feed_id = {p}")
        params.append(ids[plan.drive])
        required = list(plan.also)
    if not from_entries:
        where.append(f"e.id = ({key} & {index.MASK})")
    if plan.since is not None and not from_entries:
        where.append(f"e.updated >= {p}")
        params.append(stored(plan.since))
    where.append("e.retracted_at IS NULL")
    until = q.until
    if q.breaking_since is not None:
        floor = index.second_bound(q.breaking_since, upper=False)
        low = floor if low is None else max(low, floor)
        where.append(f"e.published >= {p}")
        params.append(stored(q.breaking_since))
    if until is not None:
        ceiling = index.second_bound(until, upper=True)
        high = ceiling if high is None else min(high, ceiling)
        where.append(f"e.published <= {p}")  # exact: the key is only to the second
        params.append(stored(until))
    if low is not None:
        where.append(f"{key} >= {p}")
        params.append(low)
    if high is not None:
        where.append(f"{key} <= {p}")
        params.append(high)
    for feed in required:
        where.append(_in_feed(key))
        params.append(ids[feed])
    if scope:
        scoped = [ids[k] for k in scope if k in ids]
        if not scoped:
            return None
        where.append(f"EXISTS (SELECT 1 FROM {index.FEED_TABLE} o WHERE o.feed_id IN ({placeholders(len(scoped))}) "
                     f"AND o.key = {key})")
        params += scoped
    if q.rights or q.source_kinds:
        sql, extra = _allowed_sources(q.rights, q.source_kinds)
        where.append(sql)
        params += extra
    return _Walk(source, where, params, key)


def _in_feeds_allowed(q: FeedQuery, feed_ids: list[int], key: str, where: list[str], params: list[Any]) -> None:
    """Add the conditions that the entry (sort key ``key``) is in every one of these feeds and
    that its source's copy may be carried by ``q``'s audience."""
    for feed_id in feed_ids:
        where.append(_in_feed(key))
        params.append(feed_id)
    if q.rights or q.source_kinds:
        sql, extra = _allowed_sources(q.rights, q.source_kinds)
        where.append(sql)
        params += extra


def _in_feed(key: str) -> str:
    """The condition that the entry with sort key ``key`` is in the feed given as a parameter."""
    return f"EXISTS (SELECT 1 FROM {index.FEED_TABLE} o WHERE o.feed_id = {db.obj.param} AND o.key = {key})"


def _match(alias: str, search: Query) -> tuple[str, str]:
    """The search condition on the search table under ``alias``, and its parameter."""
    if isinstance(db.obj, pw.SqliteDatabase):
        return f"{alias}.words MATCH {db.obj.param}", search.fts5()
    return f"{alias}.words @@ CAST({db.obj.param} AS tsquery)", search.tsquery()


def _changed_since_few(edition: str, since: datetime) -> bool:
    """Whether at most SINCE_SORT_LIMIT of the edition's entries changed since ``since``."""
    database = db.obj
    count = database.execute_sql(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {Entry._meta.table_name} WHERE edition = {database.param} "
        f"AND updated >= {database.param} LIMIT {SINCE_SORT_LIMIT + 1}) t", (edition, stored(since))).fetchone()[0]
    return bool(count <= SINCE_SORT_LIMIT)


def _allowed_sources(rights: tuple[str, ...], kinds: tuple[str, ...]) -> tuple[str, list[object]]:
    """Entries whose source's copy may be carried: rights among ``rights`` and (when ``kinds``
    is given) a kind among them. A subquery on the small source table, read once per
    statement."""
    where, params = [], list[object]()
    if rights:
        where.append(f"rights IN ({placeholders(len(rights))})")
        params += rights
    if kinds:
        where.append(f"kind IN ({placeholders(len(kinds))})")
        params += kinds
    return f'e.source_id IN (SELECT id FROM {Source._meta.table_name} WHERE {" AND ".join(where)})', params


def _select(q: FeedQuery, columns: str, low: int | None, high: int | None, newest_first: bool,
            count: int) -> list[tuple[Any, ...]]:
    walk = _walk(q, low, high)
    if walk is None:
        return []
    return list(db.obj.execute_sql(_walk_sql(walk, f"{columns}, {walk.key}", newest_first, count), walk.params))


def _walk_sql(walk: _Walk, columns: str, newest_first: bool, count: int) -> str:
    return (f"SELECT {columns} FROM {walk.source} WHERE {' AND '.join(walk.where)} "
            f"ORDER BY {walk.key} {'DESC' if newest_first else 'ASC'} LIMIT {int(count)}")


def plan_sql(q: FeedQuery, start: tuple[datetime, int] | None = None) -> tuple[str, list[Any]]:
    """The SQL and parameters ``page_rows`` runs (for checking its query plan)."""
    walk = _walk(q, None, None if start is None else index.sort_key(start[0], start[1]))
    assert walk is not None, "a feed with entries"
    return _walk_sql(walk, _PAGE_COLUMNS, True, 51), walk.params


_PAGE_COLUMNS = ("e.id, e.source_id, e.public_id, e.title, e.link, e.summary, e.content, e.published, e.updated, "
                 "e.language, e.section, e.breaking, e.origin, e.reading_time")


def next_visible(q: FeedQuery) -> datetime | None:
    """When the next of the feed's entries held back by ``q.until`` (an embargo, a delay) was
    published; None if none is held back. The feed changes when that moment is reached."""
    if q.until is None:
        return None
    held = FeedQuery(q.edition, q.criteria, q.breaking, q.breaking_since, None, q.rights, q.source_kinds,
                     q.sections_any, q.regions_any)
    low = index.second_bound(q.until, upper=False)
    for row in _select(held, "e.published", low, None, newest_first=False, count=50):
        if aware(row[0]) > aware(stored(q.until)):
            return aware(row[0])
    # (fifty entries in the very second of `until`: look past it)
    rows = _select(held, "e.published", index.second_bound(q.until, upper=True) + 1, None, False, 1)
    return aware(rows[0][0]) if rows else None


def next_held(edition: str, until: datetime) -> datetime | None:
    """When the edition's next held-back entry (an embargo) comes out, whatever feed holds it:
    one index seek, so every public rendering can afford it. A feed that does not hold that
    entry renders once more then, for nothing; none ever shows an embargoed entry late."""
    row = db.obj.execute_sql(
        f"SELECT MIN(published) FROM {Entry._meta.table_name} WHERE edition = {db.obj.param} "
        f"AND published > {db.obj.param} AND retracted_at IS NULL", (edition, stored(until))).fetchone()
    return aware(row[0]) if row and row[0] else None


def page_rows(q: FeedQuery, start: tuple[datetime, int] | None, count: int) -> list[PageRow]:
    """Up to ``count`` live entries, newest first, from ``start`` (published, id) on (the
    order is by publication second, then id: what a page link can name)."""
    high = None if start is None else index.sort_key(start[0], start[1])
    rows = []
    for r in _select(q, _PAGE_COLUMNS, None, high, newest_first=True, count=count):
        rows.append(PageRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], aware(r[7]), aware(r[8]), r[9], r[10],
                            bool(r[11]), r[12], r[13]))
    return rows


class FeedSummary(NamedTuple):
    """What a directory shows of a feed: how many entries (up to a cap), and its newest."""

    entries: int
    #: the count stopped at the cap: there are more
    more: bool
    newest_title: str | None
    newest_link: str | None
    newest_published: datetime | None


def feed_summary(q: FeedQuery, cap: int) -> FeedSummary:
    """The feed's live entries counted up to ``cap`` (a walk of at most ``cap`` index rows,
    whatever the store's size), and its newest entry."""
    walk = _walk(q)
    if walk is None:
        return FeedSummary(0, False, None, None, None)
    inner = _walk_sql(walk, f"e.id, {walk.key}", True, cap + 1)
    (count,) = db.obj.execute_sql(f"SELECT COUNT(*) FROM ({inner}) w", walk.params).fetchone()
    newest = _select(q, "e.title, e.link, e.published", None, None, newest_first=True, count=1) if count else []
    if not newest:
        return FeedSummary(0, False, None, None, None)
    return FeedSummary(min(count, cap), count > cap, newest[0][0], newest[0][1], aware(newest[0][2]))


def newer_rows(q: FeedQuery, first: PageRow, count: int) -> list[tuple[int, datetime]]:
    """(id, published) of up to ``count`` live entries just newer than ``first``, oldest first."""
    low = index.sort_key(first.published, first.id) + 1
    return [(r[0], aware(r[1])) for r in _select(q, "e.id, e.published", low, None, newest_first=False,
                                                  count=count)]


def item_rows(ids: list[int], until: datetime | None = None,
              rights: tuple[str, ...] = ()) -> dict[int, list[tuple[Any, ...]]]:
    """Every row an entry's item is made of besides its own, in a total order (the rows are
    the entry's fingerprint, so the order must be stable): authors ('a'), tags ('t'), regions
    ('r'), coverage ('c'), media ('m') and its best live related entries ('l'). Four
    queries for a whole page."""
    raw: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    if not ids:
        return raw
    database = db.obj
    marks = f"({placeholders(len(ids))})"
    t = {m: m._meta.table_name for m in (EntryAuthor, Author, EntryTag, Tag, EntryRegion, EntryCoverage, Media,
                                        Related, Entry)}
    null = "CAST(NULL AS TEXT)"
    terms_sql = (
        f"SELECT 'a', l.entry_id, a.name, a.slug, a.url, l.position FROM {t[EntryAuthor]} l "
        f"JOIN {t[Author]} a ON a.id = l.author_id WHERE l.entry_id IN {marks} "
        f"UNION ALL SELECT 't', l.entry_id, g.slug, g.name, {null}, l.position FROM {t[EntryTag]} l "
        f"JOIN {t[Tag]} g ON g.id = l.tag_id WHERE l.entry_id IN {marks} "
        f"UNION ALL SELECT 'r', entry_id, region, {null}, {null}, id FROM {t[EntryRegion]} "
        f"WHERE entry_id IN {marks} "
        f"UNION ALL SELECT 'c', entry_id, coverage, {null}, {null}, id FROM {t[EntryCoverage]} "
        f"WHERE entry_id IN {marks} ORDER BY 2, 1, 6")
    for row in database.execute_sql(terms_sql, ids * 4):
        raw[row[1]].append(row)
    for row in database.execute_sql(
            f"SELECT 'm', entry_id, kind, url, type, length, width, height, duration, caption, credit, lead "
            f"FROM {t[Media]} WHERE entry_id IN {marks} ORDER BY entry_id, position", ids):
        raw[row[1]].append(row)
    shown: Counter[int] = Counter()
    # A related entry the feed may not show yet (embargo, delay) or at all (rights) is left out.
    hidden, hidden_args = "", list[object]()
    if until is not None:
        hidden += f" AND o.published <= {database.param}"
        hidden_args.append(stored(until))
    if rights:
        hidden += (f" AND o.source_id IN (SELECT id FROM {Source._meta.table_name} "
                   f"WHERE rights IN ({placeholders(len(rights))}))")
        hidden_args += list(rights)
    for row in database.execute_sql(
            f"SELECT 'l', r.entry_id, o.public_id, o.title, o.link FROM {t[Related]} r "
            f"JOIN {t[Entry]} o ON o.id = r.related_id WHERE r.entry_id IN {marks} "
            f"AND o.retracted_at IS NULL{hidden} ORDER BY r.entry_id, r.score DESC, o.published DESC, o.id DESC",
            [*ids, *hidden_args]):
        if shown[row[1]] < RELATED_KEEP:
            shown[row[1]] += 1
            raw[row[1]].append(row)
    return raw


def feed_sources(ids: list[int]) -> dict[int, FeedSource]:
    """The sources with these store ids, by id."""
    if not ids:
        return {}
    return {row[0]: FeedSource(*row) for row in db.obj.execute_sql(
        f"SELECT id, key, kind, url, name, feed_title, feed_link, rights, rights_statement "
        f"FROM {Source._meta.table_name} "
        f"WHERE id IN ({placeholders(len(ids))})", ids)}


def tombstone_rows(q: FeedQuery, since: datetime, count: int) -> list[tuple[str, datetime, str | None]]:
    """(public id, retracted at, reason) of the feed's entries retracted since ``since``, newest
    first: one seek in the feed's own range of the retraction index, as a page is one seek in
    its range of the feed index (filters are index probes on the same key)."""
    found = tombstone_sql(q, since, count)
    if found is None:
        return []
    return [(r[0], aware(r[1]), r[2]) for r in db.obj.execute_sql(*found)]


def tombstone_sql(q: FeedQuery, since: datetime, count: int) -> tuple[str, list[Any]] | None:
    """The SQL and parameters ``tombstone_rows`` runs; None when the feed can have none."""
    plan = _plan(q)
    wanted = [plan.drive, *plan.also]
    ids = index.feed_ids(wanted)
    if any(key not in ids for key in wanted) or (plan.search is not None and plan.search.empty):
        return None
    p = db.obj.param
    where = [f"t.feed_id = {p}", f"t.retracted >= {p}"]
    params: list[Any] = [ids[plan.drive], stored(since)]
    _in_feeds_allowed(q, [ids[feed] for feed in plan.also], "t.key", where, params)
    select = (f"SELECT e.public_id, e.retracted_at, e.retraction_reason, t.retracted, t.key "
              f"FROM {index.RETRACTION_TABLE} t JOIN {Entry._meta.table_name} e ON e.id = (t.key & {index.MASK}) "
              f"WHERE {' AND '.join(where)} ORDER BY t.retracted DESC, t.key DESC")
    if plan.search is None:
        return f"{select} LIMIT {int(count)}", params
    # A search is checked on the feed's newest SEARCH_TOMBSTONES retractions only: one search
    # per retraction, over a whole tombstone window, cost more than the feed itself.
    match, term = _match("s", plan.search)
    return (f"SELECT * FROM ({select} LIMIT {SEARCH_TOMBSTONES}) t WHERE EXISTS (SELECT 1 FROM "
            f"{index.SEARCH_TABLE} s WHERE s.{index.search_key_column()} = t.key AND {match}) "
            f"ORDER BY t.retracted DESC, t.key DESC LIMIT {int(count)}", [*params, term])


#: the newest retractions of a feed that its searches look for tombstones among
SEARCH_TOMBSTONES = 60


#: newest_update looks at most at this many of the feed's newest entries
NEWEST_WINDOW = 200


def newest_update(q: FeedQuery) -> datetime | None:
    """When the feed's newest entries last changed (retracted ones included; the newest
    NEWEST_WINDOW of its feed, so a year of entries costs nothing); None if it has none."""
    plan = _plan(q)
    ids = index.feed_ids([plan.drive])
    if plan.drive not in ids:
        return None
    p = db.obj.param
    row = db.obj.execute_sql(
        f"SELECT MAX(e.updated) FROM (SELECT key FROM {index.FEED_TABLE} WHERE feed_id = {p} "
        f"ORDER BY key DESC LIMIT {NEWEST_WINDOW}) d JOIN {Entry._meta.table_name} e ON e.id = (d.key & {index.MASK})",
        (ids[plan.drive],)).fetchone()
    return aware(row[0]) if row and row[0] else None


def tag_name(slug: str) -> str | None:
    """A tag's display name, or None for a slug no entry has."""
    tag = Tag.get_or_none(Tag.slug == slug)
    return tag.name if tag else None


def author_name(slug: str) -> str | None:
    """An author's name, or None for a slug no entry has."""
    author = Author.get_or_none(Author.slug == slug)
    return author.name if author else None


class StreamRow(NamedTuple):
    """An entry of a feed as a live stream sends it: when the store wrote it (aware UTC), the
    entry as a page shows it, and its retraction if it was retracted."""

    stored_at: datetime
    row: PageRow
    retracted_at: datetime | None
    reason: str | None


def written_since(since: datetime, count: int) -> list[tuple[int, datetime]]:
    """(id, stored_at) of up to ``count`` entries written at or after ``since``, oldest write
    first: what every live stream of a process looks at once per commit."""
    database = db.obj
    rows = database.execute_sql(
        f"SELECT id, stored_at FROM {Entry._meta.table_name} WHERE stored_at >= {database.param} "
        f"ORDER BY stored_at, id LIMIT {int(count)}", (stored(since),))
    return [(entry_id, aware(at)) for entry_id, at in rows]


def stream_rows(q: FeedQuery, since: datetime, count: int, among: list[int] | None = None) -> list[StreamRow]:
    """The feed's entries written at or after ``since`` (new, changed or retracted), oldest
    write first, at most ``count``; ``among`` limits them to those ids. Visibility is the
    feed's own (edition, breaking window, embargo, rights); ``q`` must not search."""
    plan = _plan(q)
    if plan.search is not None:
        raise ValueError("a stream cannot search")
    wanted = [plan.drive, *plan.also]
    ids = index.feed_ids(wanted)
    if any(key not in ids for key in wanted) or among == []:
        return []
    p, key = db.obj.param, index.key_sql("e")
    where = [f"e.stored_at >= {p}", f"e.edition = {p}"]
    params: list[Any] = [stored(since), q.edition]
    if among is not None:
        where.append(f"e.id IN ({placeholders(len(among))})")
        params += among
    if q.breaking_since is not None:
        where.append(f"e.published >= {p}")
        params.append(stored(q.breaking_since))
    if q.until is not None:
        where.append(f"e.published <= {p}")
        params.append(stored(q.until))
    if plan.since is not None:
        where.append(f"e.updated >= {p}")
        params.append(stored(plan.since))
    _in_feeds_allowed(q, [ids[feed] for feed in wanted], key, where, params)
    sql = (f"SELECT {_PAGE_COLUMNS}, e.stored_at, e.retracted_at, e.retraction_reason "
           f"FROM {Entry._meta.table_name} e WHERE {' AND '.join(where)} ORDER BY e.stored_at, e.id LIMIT {int(count)}")
    out = []
    for r in db.obj.execute_sql(sql, params):
        row = PageRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], aware(r[7]), aware(r[8]), r[9], r[10], bool(r[11]),
                      r[12], r[13])
        out.append(StreamRow(aware(r[14]), row, aware(r[15]), r[16]))
    return out
