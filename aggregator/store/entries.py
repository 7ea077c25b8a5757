"""The entry write path: upserting a source's entries (same-story dedup, children, related
entries), retraction and its undoing, re-filing by rules, re-identification, and lookups."""
from __future__ import annotations

import dataclasses
import heapq
import json
import operator
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import peewee as pw

from .. import model
from ..search import document
from . import index
from .connection import aware, db, insert_rows, naive, placeholders, stored, utcnow
from .schema import (
    Author,
    BaseModel,
    Entry,
    EntryAuthor,
    EntryCoverage,
    EntryRegion,
    EntrySource,
    EntryTag,
    Media,
    Related,
    Source,
    Tag,
)
from .sources import SourceRow
from .topics import bump_topics, entry_topics, stored_topics


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


MIRROR_WINDOW = timedelta(hours=48)


def _same_stories(source: SourceRow, fresh: list[model.Entry], mirrors: list[int]) -> dict[str, int]:
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


def save_entries(source: SourceRow, entries: Iterable[model.Entry], now: datetime,
                 parents: dict[str, str] | None = None, max_revisions: int | None = None,
                 ignore_updates: bool = False, mirrors: list[int] | None = None,
                 one_story_one_entry: bool = True, related: RelatedPolicy | None = None) -> SaveResult:
    """Upsert a source's entries; an entry whose fingerprint is unchanged is not written.

    Call inside a transaction: the caller commits entries and the source's new
    validators together. The topics of every written entry (as it was and as it
    is now) are bumped in the same transaction.
    """
    parents = parents or {}
    entries = list(entries)
    database = db.obj
    # stored_at is when the row is written, not when its fetch began (``now``): live streams
    # read what changed by it, and a fetch can start a minute before its commit.
    write_time = utcnow()
    # Only the rows of this batch's guids (the unique (source, guid) index): a source with a
    # year of entries costs what a new one does.
    guids = list(dict.fromkeys(e.guid for e in entries))
    existing: dict[str, tuple[int, str, datetime, int]] = {}
    published_of: dict[int, datetime] = {}
    retracted_of: dict[int, datetime] = {}  # a retracted entry a source changes stays retracted
    carried: set[str] = set()
    for chunk in pw.chunked(guids, 400):
        marks = placeholders(len(chunk))
        for entry_id, guid, fingerprint, updated, revision, published, retracted in database.execute_sql(
                f"SELECT id, guid, fingerprint, updated, revision, published, retracted_at "
                f"FROM {Entry._meta.table_name} WHERE source_id = {database.param} AND guid IN ({marks})",
                (source.id, *chunk)):
            existing[guid] = (entry_id, fingerprint, naive(updated), revision)
            published_of[entry_id] = naive(published)
            if retracted is not None:
                retracted_of[entry_id] = naive(retracted)
        # One story, one entry: what another source brought first is only recorded as carried here.
        carried.update(g for (g,) in database.execute_sql(
            f"SELECT guid FROM {EntrySource._meta.table_name} WHERE source_id = {database.param} "
            f"AND guid IN ({marks})", (source.id, *chunk)))

    def frozen(found: tuple[int, str, datetime, int]) -> bool:
        # A source that rewrites its entries on every fetch must not churn the store forever.
        return ignore_updates or (max_revisions is not None and found[3] >= max_revisions)
    # Feeds that held an entry before it changed (it may have left a section or tag)
    # are read before anything is written.
    changing = [existing[e.guid][0] for e in entries
                if e.guid in existing and existing[e.guid][1] != e.fingerprint and not frozen(existing[e.guid])]
    # Only an entry that changes is written, so only those need an editor's correction applied.
    corrected = overrides(changing) if changing else {}
    if corrected:
        entries = [_with_override(e, corrected[existing[e.guid][0]])
                   if e.guid in existing and existing[e.guid][0] in corrected else e for e in entries]
    authors = _ensure_slugged(Author, {a.slug: {"name": a.name, "url": a.url}
                                       for e in reversed(entries) for a in e.authors})
    tags = _ensure_slugged(Tag, {t.slug: {"name": t.name} for e in reversed(entries) for t in e.tags})
    new = updated = unchanged = 0
    written: list[tuple[int, model.Entry]] = []
    fresh: list[tuple[dict[str, object], model.Entry]] = []
    ignored = 0
    # (the desk's items are always their own entries: a headline pushed about a story is news
    # of its own, even when it links to that story)
    same = _same_stories(source, [e for e in entries if e.guid not in existing and e.guid not in carried],
                         mirrors or []) if one_story_one_entry else {}
    merged = 0
    topics = stored_topics(changing, parents)
    for e in entries:
        fields = dict(public_id=e.public_id, title=e.title, link=e.link, language=e.language,
                      edition=e.edition, summary=e.summary, content=e.content, section=e.section,
                      origin=e.origin, breaking=e.breaking, reading_time=e.reading_time,
                      published=e.published, updated=e.updated, date_missing=e.date_missing,
                      date_clamped=e.date_clamped, published_raw=e.published_raw, updated_raw=e.updated_raw,
                      title_key=e.title_key, fingerprint=e.fingerprint, stored_at=write_time)
        found = existing.get(e.guid)
        if found is None and e.guid in carried:
            unchanged += 1  # the first source's copy is the one published
        elif found is None and e.guid in same:
            EntrySource.insert(entry=same[e.guid], source=source.id, guid=e.guid, first_seen=now
                               ).on_conflict_ignore().execute()
            carried.add(e.guid)
            merged += 1
        elif found is None:
            fresh.append(({"source": source.id, "guid": e.guid, "first_seen": now, **fields}, e))
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
    topics |= stored_topics(relate(written, tags, related or RelatedPolicy()), parents)
    fresh_postings = []
    for entry_id, e in written:
        own = entry_topics(e.edition, e.section, e.regions, [t.slug for t in e.tags],
                           [a.slug for a in e.authors], e.breaking, parents, e.coverage, source.in_latest)
        topics |= own
        # An update keeps the entry's publication date, so its place in the feeds.
        published = published_of.get(entry_id, e.published)
        searchable = e.words.split() if e.words is not None else document(e.title, e.summary)
        fresh_postings.append(index.Posting(index.sort_key(published, entry_id), own, searchable,
                                            retracted_of.get(entry_id)))
    index.unpost([index.sort_key(published_of[i], i) for i in replaced])
    index.post(fresh_postings)
    bump_topics(topics, now)
    return SaveResult(new=new, updated=updated, unchanged=unchanged, topics=frozenset(topics), ignored=ignored,
                      merged=merged)


def overrides(entry_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Entry id -> the editor's correction, for those of these entries that have one."""
    found: dict[int, dict[str, Any]] = {}
    for chunk in pw.chunked(entry_ids, 500):
        found.update((i, json.loads(o)) for i, o in Entry.select(Entry.id, Entry.override).where(
            Entry.id.in_(chunk), Entry.override.is_null(False)).tuples())
    return found


def _with_override(e: model.Entry, o: dict[str, Any]) -> model.Entry:
    """An entry as the source sent it, filed as an editor's correction says (its fingerprint
    stays the source's, so an unchanged entry is still not written)."""
    return dataclasses.replace(
        e, section=o.get("section", e.section), regions=tuple(o.get("regions", e.regions)),
        breaking=o.get("breaking", e.breaking),
        tags=tuple(model.Tag(name=n, slug=s) for s, n in o["tags"]) if "tags" in o else e.tags)


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
    rows = [tuple(row.values()) + tail for row, _ in fresh]
    by_guid = {e.guid: e for _, e in fresh}
    return [(int(entry_id), by_guid[str(guid)])
            for entry_id, guid in insert_rows(Entry, columns, rows, returning="id, guid")]


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


@dataclass(frozen=True)
class RelatedPolicy:
    """Which shared tags make two entries related: not a tag the source gives all its entries
    (a wire's "Wire"), nor one on more than ``max_share`` of the edition's ``recent`` newest
    entries (it says nothing about a story)."""

    ignore_tags: frozenset[str] = frozenset()
    max_share: float = 1.0
    recent: int = 1000


#: fewer recent entries than this in an edition: too few to tell a common tag
COMMON_TAG_SAMPLE = 100
#: how long an edition's common tags are trusted (seconds): they move slowly
COMMON_TAG_TTL = 60.0
_common: dict[tuple[int, str, float, int], tuple[float, frozenset[int]]] = {}


def common_tags(edition: str, max_share: float, recent: int) -> frozenset[int]:
    """Tag ids on more than ``max_share`` of the edition's ``recent`` newest live entries (none
    while the edition has fewer than COMMON_TAG_SAMPLE); remembered for COMMON_TAG_TTL."""
    if max_share >= 1.0:
        return frozenset()
    key = (id(db.obj), edition, max_share, recent)
    now = time.monotonic()
    found = _common.get(key)
    if found is not None and found[0] > now:
        return found[1]
    e_t, t_t, param = Entry._meta.table_name, EntryTag._meta.table_name, db.obj.param
    window = (f"SELECT id FROM {e_t} WHERE edition = {param} AND retracted_at IS NULL "
              f"ORDER BY id DESC LIMIT {int(recent)}")
    (sample,) = db.obj.execute_sql(f"SELECT COUNT(*) FROM ({window}) w", (edition,)).fetchone()
    tags: frozenset[int] = frozenset()
    if sample >= COMMON_TAG_SAMPLE:
        tags = frozenset(t for (t,) in db.obj.execute_sql(
            f"SELECT l.tag_id FROM {t_t} l JOIN ({window}) w ON w.id = l.entry_id GROUP BY l.tag_id "
            f"HAVING COUNT(*) > {param}", (edition, max_share * sample)))
    _common[key] = (now + COMMON_TAG_TTL, tags)
    return tags


def relate(written: list[tuple[int, model.Entry]], tag_ids: dict[str, int],
           policy: RelatedPolicy = RelatedPolicy()) -> list[int]:
    """Store the best related entries of each written entry, and the reverse links.

    Candidates are the newest RELATED_POOL live entries of the same edition that share
    a tag (but those the policy leaves out) or coverage dossier, fetched with one bounded
    query per batch (so a tag on every entry costs the same as a rare one). Returns the ids
    of older entries that gained a link: their feeds changed.
    """
    keys: dict[int, set[tuple[str, object]]] = {}
    common = {edition: common_tags(edition, policy.max_share, policy.recent)
              for edition in {e.edition for _, e in written}}
    for entry_id, e in written:
        ignored = common[e.edition]
        keys[entry_id] = ({("tag", tag_ids[t.slug]) for t in e.tags
                           if t.slug not in policy.ignore_tags and tag_ids[t.slug] not in ignored}
                          | {("coverage", c) for c in e.coverage})
    wanted = sorted({(e.edition, key) for entry_id, e in written for key in keys[entry_id]}, key=repr)
    if not wanted:
        return []
    pools: dict[tuple[str, tuple[str, object]], list[int]] = {}
    param = db.obj.param
    e_t, t_t, c_t = Entry._meta.table_name, EntryTag._meta.table_name, EntryCoverage._meta.table_name
    if isinstance(db.obj, pw.PostgresqlDatabase):
        _pools_lateral(wanted, pools)
    else:
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
    _trim_related(sorted({a for a, _ in rows}))
    return sorted({a for a, _ in rows if a not in mine})


#: related links kept per entry: the best RELATED_KEEP are shown, the rest stand in for those a
#: feed may not show (retracted, embargoed, another audience's rights)
RELATED_STORED = 12


def _trim_related(entry_ids: list[int]) -> None:
    """Keep each entry's best RELATED_STORED links. An entry among the newest of a busy tag is
    linked back by every entry that follows for a while; without this, it gathered hundreds of
    links, and every feed showing it read them all."""
    table, database = Related._meta.table_name, db.obj
    for chunk in pw.chunked(entry_ids, 300):
        # Most have fewer: find the few that have more from the (entry, related) index alone.
        chunk = [i for (i,) in database.execute_sql(
            f"SELECT entry_id FROM {table} WHERE entry_id IN ({placeholders(len(chunk))}) GROUP BY entry_id "
            f"HAVING COUNT(*) > {RELATED_STORED}", chunk)]
        if not chunk:
            continue
        marks = placeholders(len(chunk))
        database.execute_sql(
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER ("
            f"PARTITION BY entry_id ORDER BY score DESC, related_id DESC) AS n FROM {table} "
            f"WHERE entry_id IN ({marks})) ranked WHERE n > {RELATED_STORED})", chunk)


def _pools_lateral(wanted: list[tuple[str, tuple[str, object]]],
                   pools: dict[tuple[str, tuple[str, object]], list[int]]) -> None:
    """The related pools on PostgreSQL: one LATERAL subquery per kind, planned once (a UNION of
    a hundred subqueries spent more time being planned than run)."""
    e_t = Entry._meta.table_name
    for kind, table, column, cast in (("tag", EntryTag._meta.table_name, "tag_id", "integer"),
                                      ("coverage", EntryCoverage._meta.table_name, "coverage", "text")):
        mine = [(edition, value) for edition, (k, value) in wanted if k == kind]
        for chunk in pw.chunked(mine, 500):
            values = ", ".join(["(%s, CAST(%s AS text), CAST(%s AS " + cast + "))"] * len(chunk))
            params: list[object] = [v for i, (edition, value) in enumerate(chunk) for v in (i, edition, value)]
            for k, entry_id in db.obj.execute_sql(
                    f"SELECT v.k, p.entry_id FROM (VALUES {values}) AS v(k, edition, value) CROSS JOIN LATERAL "
                    f"(SELECT l.entry_id FROM {table} l JOIN {e_t} e ON e.id = l.entry_id WHERE l.{column} = v.value "
                    f"AND e.edition = v.edition AND e.retracted_at IS NULL ORDER BY l.entry_id DESC "
                    f"LIMIT {RELATED_POOL}) p", params):
                edition, value = chunk[k]
                pools.setdefault((edition, (kind, value)), []).append(entry_id)


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
    Entry.update(retracted_at=when, retraction_reason=reason, stored_at=utcnow()).where(Entry.id.in_(live)).execute()
    index.mark_retracted(index.keys_of(live), when)
    bump_topics(topics, when)
    return topics


def lift_embargoes(editions: list[str], since: datetime, until: datetime, parents: dict[str, str]) -> set[str]:
    """The feeds whose held-back entries (stored before their publication time: an embargo)
    came out between ``since`` and ``until`` (aware UTC): their revisions are bumped, so every
    cache renders them anew, and they are returned for the hubs."""
    held = [i for (i,) in Entry.select(Entry.id).where(
        Entry.edition.in_(editions), Entry.published > stored(since), Entry.published <= stored(until),
        Entry.first_seen < Entry.published, Entry.retracted_at.is_null()).tuples()]
    if not held:
        return set()
    topics = stored_topics(held, parents)
    # Coming out is the change a live stream sends: it reads what changed by stored_at.
    Entry.update(stored_at=utcnow()).where(Entry.id.in_(held)).execute()
    bump_topics(topics, stored(until))
    return topics


def unretract(entry_ids: list[int], when: datetime, parents: dict[str, str]) -> set[str]:
    """Publish retracted entries again (an admin's mistake undone) and bump the feeds that
    hold them; their tombstones leave the Atom feeds."""
    dead = [e.id for e in Entry.select(Entry.id).where(Entry.id.in_(entry_ids), Entry.retracted_at.is_null(False))]
    if not dead:
        return set()
    Entry.update(retracted_at=None, retraction_reason=None, stored_at=utcnow()).where(Entry.id.in_(dead)).execute()
    index.unmark_retracted(index.keys_of(dead))
    topics = stored_topics(dead + _relating_to(dead), parents)
    bump_topics(topics, when)
    return topics


#: the retraction reason of an entry the source's keep/drop rules came to exclude: such an
#: entry, unlike one retracted by an admin or its source, comes back when the rule goes
RULE_WITHDRAWN = "withdrawn: the source's keep/drop rules now exclude it"


def refile_by_rules(source: SourceRow, excluded: list[str], kept: list[str], when: datetime,
                    parents: dict[str, str]) -> set[str]:
    """Apply the source's keep/drop rules to what is already stored: live entries whose ids are
    ``excluded`` are withdrawn (a tombstone, like any retraction), and entries withdrawn that way
    whose ids are ``kept`` again are published again. Returns the feeds that changed."""
    topics: set[str] = set()
    if excluded:
        ids = [i for (i,) in Entry.select(Entry.id).where(
            Entry.source == source.id, Entry.guid.in_(excluded), Entry.retracted_at.is_null()).tuples()]
        topics |= retract(ids, when, RULE_WITHDRAWN, parents)
    withdrawn = {g: i for i, g in Entry.select(Entry.id, Entry.guid).where(
        Entry.source == source.id, Entry.retraction_reason == RULE_WITHDRAWN).tuples()}
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
    resolved = {urljoin(base, identifier) for urls in Source.select(Source.url, Source.fetch_url).tuples()
                for base in urls if base}
    names = {identifier, *resolved}
    links = {identifier, canonical} - {None}
    query = (Entry.select(Entry.id, Entry.title, Source.key, Entry.retracted_at).join(Source)
             .where(Entry.public_id.in_(list(names)) | Entry.guid.in_(list(names)) | Entry.link.in_(list(links)))
             .order_by(Entry.id))
    return [FoundEntry(i, t, k, r is not None) for i, t, k, r in query.tuples()]


def previous_ids(source: SourceRow, limit: int = 500) -> dict[str, str]:
    """Link -> guid of the source's newest stored entries (to notice guids that change)."""
    database = db.obj
    rows = database.execute_sql(
        f"SELECT link, guid FROM {Entry._meta.table_name} WHERE source_id = {database.param} "
        f"AND link IS NOT NULL ORDER BY published DESC, id DESC LIMIT {int(limit)}", (source.id,))
    return {link: guid for link, guid in rows}


def rekey_source(source: SourceRow, rule: str, when: datetime, parents: dict[str, str]) -> set[str]:
    """Re-identify a source's stored entries under a weaker rule (call in the save transaction).

    Entries that turn out to be one story (the same link, fetched under changing
    guids) become one: the first stored keeps its public id, the others are
    retracted as duplicates. Returns the topics the retractions changed.
    """
    from ..normalize import hash_id  # pure helper

    rows = list(Entry.select(Entry.id, Entry.guid, Entry.link, Entry.title, Entry.published_raw,
                             Entry.updated_raw, Entry.public_id)
                .where(Entry.source == source.id, Entry.retracted_at.is_null()).order_by(Entry.id))
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


def edition_tags(edition: str) -> list[tuple[str, str]]:
    """(slug, name) of every tag an entry of ``edition`` was filed under, by slug (read from the
    feed index's feed names, not from the entries: a year of them costs nothing)."""
    return _named(Tag, edition, "tag")


def edition_authors(edition: str) -> list[tuple[str, str]]:
    """(slug, name) of every author of an entry of ``edition``, by slug."""
    return _named(Author, edition, "author")


def _named(table: type[Tag] | type[Author], edition: str, kind: str) -> list[tuple[str, str]]:
    prefix = f"{edition}:{kind}:"
    slugs = [key[len(prefix):] for key in index.feed_keys_like(prefix)]
    names: dict[str, str] = {}
    for chunk in pw.chunked(slugs, 500):
        names.update(table.select(table.slug, table.name).where(table.slug.in_(chunk)).tuples())
    return sorted(names.items())


def newest_change(editions: Iterable[str]) -> datetime | None:
    """When any entry of these editions last changed (aware UTC), or None for an empty store:
    one seek of the (edition, updated) index per edition."""
    found = [Entry.select(pw.fn.MAX(Entry.updated)).where(Entry.edition == e).scalar() for e in editions]
    newest = [aware(f) for f in found if f]
    return max(newest) if newest else None


def entry_ids(source_id: int, guids: list[str]) -> list[int]:
    """Ids of a source's entries with these guids."""
    return [i for (i,) in Entry.select(Entry.id).where(Entry.source == source_id, Entry.guid.in_(guids)).tuples()]


def recent_published(source_id: int, limit: int) -> list[datetime]:
    """When a source's newest entries were published (aware UTC, newest first)."""
    return [aware(p) for (p,) in Entry.select(Entry.published).where(Entry.source == source_id)
            .order_by(Entry.published.desc()).limit(limit).tuples()]
