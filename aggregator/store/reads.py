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

from .connection import aware, db, placeholders, stored
from .entries import RELATED_KEEP
from .schema import Author, Entry, EntryAuthor, EntryCoverage, EntryRegion, EntryTag, Media, Related, Source, Tag

E = Entry


@dataclass(frozen=True)
class FeedQuery:
    """Which entries a feed holds, retracted ones included: an edition, and criteria that
    intersect. A criterion is ("sections", slugs), ("region" | "tag" | "author" | "coverage",
    slug), ("q", text) or ("since", instant); ``breaking_since`` keeps only breaking entries
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


def _conditions(q: FeedQuery) -> list[pw.Expression]:
    conds: list[pw.Expression] = [E.edition == q.edition]
    if q.breaking:
        conds.append(E.breaking == True)  # noqa: E712 (peewee expression)
        if q.breaking_since is not None:
            conds.append(E.published >= stored(q.breaking_since))
    for kind, value in q.criteria:
        if kind == "sections":
            conds.append(E.section.in_(list(value)))
        elif kind == "region":
            conds.append(E.id.in_(EntryRegion.select(EntryRegion.entry).where(EntryRegion.region == value)))
        elif kind == "tag":
            conds.append(E.id.in_(EntryTag.select(EntryTag.entry).join(Tag).where(Tag.slug == value)))
        elif kind == "author":
            conds.append(E.id.in_(EntryAuthor.select(EntryAuthor.entry).join(Author).where(Author.slug == value)))
        elif kind == "coverage":
            conds.append(E.id.in_(EntryCoverage.select(EntryCoverage.entry).where(EntryCoverage.coverage == value)))
        elif kind == "q":
            conds.append(_contains(E.title, value) | _contains(E.summary, value))
        elif kind == "since":
            conds.append(E.updated >= stored(value))
    if q.until is not None:
        conds.append(E.published <= stored(q.until))
    if q.rights or q.source_kinds:
        # A subquery on the small source table, read once per statement: no round trip of its
        # own. Written as one SQL node: as peewee nodes it cost more to build than to run.
        conds.append(_allowed_sources(q.rights, q.source_kinds))
    if q.sections_any:
        conds.append(E.section.in_(list(q.sections_any)))
    if q.regions_any:
        conds.append(E.id.in_(EntryRegion.select(EntryRegion.entry).where(EntryRegion.region.in_(list(q.regions_any)))))
    return conds


def next_visible(q: FeedQuery) -> datetime | None:
    """When the next of the feed's entries held back by ``q.until`` (an embargo, a delay) was
    published; None if none is held back. The feed changes when that moment is reached."""
    if q.until is None:
        return None
    held = FeedQuery(q.edition, q.criteria, q.breaking, q.breaking_since, None, q.rights, q.source_kinds,
                     q.sections_any, q.regions_any)
    first = E.select(pw.fn.MIN(E.published)).where(*_conditions(held), E.retracted_at.is_null(),
                                                     E.published > stored(q.until)).scalar()
    return aware(first) if first else None


def _allowed_sources(rights: tuple[str, ...], kinds: tuple[str, ...]) -> pw.Node:
    """Entries whose source's copy may be carried: rights among ``rights`` and (when ``kinds``
    is given) a kind among them."""
    param, where, params = db.obj.param, [], list[object]()
    if rights:
        where.append(f"rights IN ({', '.join([param] * len(rights))})")
        params += rights
    if kinds:
        where.append(f"kind IN ({', '.join([param] * len(kinds))})")
        params += kinds
    return pw.SQL(f'source_id IN (SELECT id FROM {Source._meta.table_name} WHERE {" AND ".join(where)})',
                  params)


def next_held(edition: str, until: datetime) -> datetime | None:
    """When the edition's next held-back entry (an embargo) comes out, whatever feed holds it:
    one index seek, so every public rendering can afford it. A feed that does not hold that
    entry renders once more then, for nothing; none ever shows an embargoed entry late."""
    row = db.obj.execute_sql(
        f"SELECT MIN(published) FROM {Entry._meta.table_name} WHERE edition = {db.obj.param} "
        f"AND published > {db.obj.param} AND retracted_at IS NULL", (edition, stored(until))).fetchone()
    return aware(row[0]) if row and row[0] else None


def page_rows(q: FeedQuery, start: tuple[datetime, int] | None, count: int) -> list[PageRow]:
    """Up to ``count`` live entries, newest first, from ``start`` (published, id) on."""
    conds = _conditions(q) + [E.retracted_at.is_null()]
    if start is not None:
        published, entry_id = stored(start[0]), start[1]
        conds.append((E.published < published) | ((E.published == published) & (E.id <= entry_id)))
    # Run as plain SQL: converting rows through peewee cost four times the query.
    sql, params = (E.select(*_ENTRY_COLUMNS).where(*conds)
                   .order_by(E.published.desc(), E.id.desc()).limit(count).sql())
    rows = []
    for r in db.obj.execute_sql(sql, params):
        rows.append(PageRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], aware(r[7]), aware(r[8]), r[9], r[10],
                            bool(r[11]), r[12], r[13]))
    return rows


def newer_rows(q: FeedQuery, first: PageRow, count: int) -> list[tuple[int, datetime]]:
    """(id, published) of up to ``count`` live entries just newer than ``first``, oldest first."""
    published = stored(first.published)
    return [(e.id, aware(e.published)) for e in E.select(E.id, E.published)
            .where(*_conditions(q), E.retracted_at.is_null(), (E.published > published)
                   | ((E.published == published) & (E.id > first.id)))
            .order_by(E.published.asc(), E.id.asc()).limit(count)]


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
    """(public id, retracted at, reason) of the feed's entries retracted since ``since``, newest first."""
    return [(r.public_id, aware(r.retracted_at), r.retraction_reason)
            for r in E.select(E.public_id, E.retracted_at, E.retraction_reason)
            .where(*_conditions(q), E.retracted_at >= stored(since))
            .order_by(E.retracted_at.desc(), E.id.desc()).limit(count)]


def newest_update(q: FeedQuery) -> datetime | None:
    """When the feed's newest entry last changed (retracted ones included); None if it has none."""
    newest = E.select(pw.fn.MAX(E.updated)).where(*_conditions(q)).scalar()
    return aware(newest) if newest else None


def tag_name(slug: str) -> str | None:
    """A tag's display name, or None for a slug no entry has."""
    tag = Tag.get_or_none(Tag.slug == slug)
    return tag.name if tag else None


def author_name(slug: str) -> str | None:
    """An author's name, or None for a slug no entry has."""
    author = Author.get_or_none(Author.slug == slug)
    return author.name if author else None
