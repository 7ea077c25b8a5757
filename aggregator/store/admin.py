"""What admins change and read beyond the collector's own work: sources managed in the store,
their fetch log, entries as the desk sees them, editors' corrections, and the audit log.

Every function here runs inside the caller's transaction when it writes (aggregator.admin
opens one per operation, so a change and its audit row commit together).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee as pw

from ..errors import Conflict
from .connection import aware, savepoint, stored, utcnow
from .index import repost
from .reads import _contains
from .schema import Audit, Entry, EntryRegion, EntryTag, FetchLog, Source, Tag
from .topics import bump_topics, stored_topics


@dataclass(frozen=True)
class SourceState:
    """A source's row as an admin operation reads it before changing it."""

    id: int
    key: str
    managed: str
    settings: dict[str, Any]
    enabled: bool
    url: str
    removed: bool
    #: whether its entries are filed in the latest feeds now (what the feed index holds)
    in_latest: bool = True


def source_state(key: str) -> SourceState | None:
    """The source with this key (removed ones too), or None."""
    row = Source.get_or_none(Source.key == key)
    if row is None:
        return None
    return SourceState(row.id, row.key, row.managed, json.loads(row.settings) if row.settings else {},
                       row.enabled, row.url, row.removed_at is not None, bool(row.in_latest))


def live_source_urls() -> dict[str, str]:
    """Key -> configured URL of every source not removed (the desk's aside)."""
    return dict(Source.select(Source.key, Source.url)
                .where(Source.removed_at.is_null(), Source.managed != "desk").tuples())


def create_source(key: str, columns: dict[str, object], managed: str, when: datetime) -> int:
    """Insert a source (or bring back a removed one with this key, its history kept); returns
    its id. The caller checked that no live source has the key."""
    row = Source.get_or_none(Source.key == key)
    fields = {**columns, "managed": managed, "removed_at": None, "next_due_at": None}
    if row is None:
        try:
            with savepoint():
                return Source.insert(key=key, created_at=stored(when), **fields).execute()
        except pw.IntegrityError:  # another request made it meanwhile
            raise Conflict(f"a source with id {key!r} exists already", field="id") from None
    Source.update(**fields, disabled_reason=None, etag=None, last_modified=None,
                  content_hash=None).where(Source.id == row.id).execute()
    return row.id


def update_source(source_id: int, columns: dict[str, object]) -> None:
    """Set columns of a source (its settings, the fields they decide, validators to forget)."""
    Source.update(**columns).where(Source.id == source_id).execute()


def remove_source(source_id: int, when: datetime) -> None:
    """Take a source out: never collected again, out of the lists; its entries are untouched."""
    Source.update(removed_at=stored(when), enabled=False, lease_owner=None, lease_until=None
                  ).where(Source.id == source_id).execute()


def live_entry_ids(source_id: int) -> list[int]:
    """Ids of a source's entries that are not retracted."""
    return [i for (i,) in Entry.select(Entry.id).where(Entry.source == source_id,
                                                        Entry.retracted_at.is_null()).tuples()]


def request_refresh(source_id: int, when: datetime) -> None:
    """Make a source due now: the next claim of any running collector takes it (NULL sorts
    first among due sources). A fetch already in flight does not use the request up (see
    sources.keep_refreshes)."""
    Source.update(next_due_at=None, refresh_requested_at=stored(when)).where(Source.id == source_id).execute()


@dataclass(frozen=True)
class FetchLogRow:
    id: int
    started_at: datetime
    duration_ms: int
    status: int | None
    outcome: str
    bytes: int
    entries_new: int
    entries_updated: int
    error_kind: str | None
    error: str | None


def fetch_log(source_id: int, limit: int, before: int | None = None) -> list[FetchLogRow]:
    """A source's fetches, newest first; ``before``: only rows older than that row id."""
    query = FetchLog.select().where(FetchLog.source == source_id)
    if before is not None:
        query = query.where(FetchLog.id < before)
    return [FetchLogRow(r.id, aware(r.started_at), r.duration_ms, r.status, r.outcome, r.bytes, r.entries_new,
                        r.entries_updated, r.error_kind, r.error)
            for r in query.order_by(FetchLog.id.desc()).limit(limit)]


# --- entries as the desk sees them -------------------------------------------------------

#: what ?status= may ask for
ENTRY_STATUSES = ("published", "retracted", "embargoed", "breaking", "corrected")


@dataclass(frozen=True)
class EntryInfo:
    id: int
    public_id: str
    title: str
    link: str | None
    source: str
    edition: str
    language: str
    section: str | None
    regions: tuple[str, ...]
    tags: tuple[str, ...]  # display names
    breaking: bool
    published: datetime
    updated: datetime
    retracted_at: datetime | None
    retraction_reason: str | None
    summary: str
    override: dict[str, Any] | None
    override_by: str | None
    override_at: datetime | None


def list_entries(limit: int, before: int | None = None, q: str | None = None, source: str | None = None,
                 section: str | None = None, sections: tuple[str, ...] = (), status: str | None = None,
                 edition: str | None = None, now: datetime | None = None) -> list[EntryInfo]:
    """Entries newest-stored first (by id), filtered; ``before``: ids below that one (the next
    page). ``q`` matches title or summary, case-insensitively for ASCII letters."""
    query = Entry.select(Entry.id).join(Source)
    if before is not None:
        query = query.where(Entry.id < before)
    if q:
        query = query.where(_contains(Entry.title, q) | _contains(Entry.summary, q))
    if source:
        query = query.where(Source.key == source)
    if sections:
        query = query.where(Entry.section.in_(list(sections)))
    elif section:
        query = query.where(Entry.section == section)
    if edition:
        query = query.where(Entry.edition == edition)
    if status == "published":
        query = query.where(Entry.retracted_at.is_null())
    elif status == "retracted":
        query = query.where(Entry.retracted_at.is_null(False))
    elif status == "embargoed" and now is not None:
        query = query.where(Entry.retracted_at.is_null(), Entry.published > stored(now))
    elif status == "breaking":
        query = query.where(Entry.breaking == True, Entry.retracted_at.is_null())  # noqa: E712
    elif status == "corrected":
        query = query.where(Entry.override.is_null(False))
    ids = [i for (i,) in query.order_by(Entry.id.desc()).limit(limit).tuples()]
    return entry_infos(ids)


def entry_infos(ids: list[int]) -> list[EntryInfo]:
    """These entries (in this order), with their regions and tags."""
    if not ids:
        return []
    regions: dict[int, list[str]] = {}
    for entry_id, region in EntryRegion.select(EntryRegion.entry, EntryRegion.region).where(
            EntryRegion.entry.in_(ids)).order_by(EntryRegion.id).tuples():
        regions.setdefault(entry_id, []).append(region)
    tags: dict[int, list[str]] = {}
    for entry_id, name in (EntryTag.select(EntryTag.entry, Tag.name).join(Tag).where(EntryTag.entry.in_(ids))
                           .order_by(EntryTag.position).tuples()):
        tags.setdefault(entry_id, []).append(name)
    rows = {e.id: e for e in Entry.select(Entry, Source.key).join(Source).where(Entry.id.in_(ids))}
    return [EntryInfo(
        id=e.id, public_id=e.public_id, title=e.title, link=e.link, source=e.source.key, edition=e.edition,
        language=e.language, section=e.section, regions=tuple(regions.get(e.id, ())),
        tags=tuple(tags.get(e.id, ())), breaking=e.breaking, published=aware(e.published),
        updated=aware(e.updated), retracted_at=aware(e.retracted_at), retraction_reason=e.retraction_reason,
        summary=e.summary, override=json.loads(e.override) if e.override else None, override_by=e.override_by,
        override_at=aware(e.override_at)) for e in (rows[i] for i in ids if i in rows)]


def set_filing(entry_id: int, section: str | None, regions: tuple[str, ...], tags: dict[str, str],
               breaking: bool, override: dict[str, Any], by: str, when: datetime,
               parents: dict[str, str]) -> set[str]:
    """File an entry anew by hand (``tags``: slug -> display name) and keep the correction as
    its override, which later fetches of its source apply over what the source sends; bumps
    the feeds it left and joined, and returns them."""
    topics = stored_topics([entry_id], parents)
    known = dict(Tag.select(Tag.slug, Tag.id).where(Tag.slug.in_(list(tags))).tuples())
    missing = [{"slug": s, "name": n} for s, n in sorted(tags.items()) if s not in known]
    if missing:
        Tag.insert_many(missing).on_conflict_ignore().execute()
        known = dict(Tag.select(Tag.slug, Tag.id).where(Tag.slug.in_(list(tags))).tuples())
    Entry.update(section=section, breaking=breaking, override=json.dumps(override, ensure_ascii=False, sort_keys=True),
                 override_by=by, override_at=stored(when), stored_at=utcnow()).where(Entry.id == entry_id).execute()
    EntryRegion.delete().where(EntryRegion.entry == entry_id).execute()
    EntryTag.delete().where(EntryTag.entry == entry_id).execute()
    if regions:
        EntryRegion.insert_many([{"entry": entry_id, "region": r} for r in regions]).execute()
    if tags:
        EntryTag.insert_many([{"entry": entry_id, "tag": known[s], "position": i}
                              for i, s in enumerate(tags)]).execute()
    repost([entry_id], parents)
    topics |= stored_topics([entry_id], parents)
    bump_topics(topics, when)
    return topics


def desk_source(key: str, name: str, url: str, edition: str, when: datetime) -> int:
    """The breaking desk's own source (created on first use): never collected, holding the
    items the desk pushes."""
    row = Source.get_or_none(Source.key == key)
    if row is not None:
        return row.id
    # Unlike a collected ticker's one-liners, what an editor pushes by hand is also news for
    # the latest feeds: the desk's source keeps in_latest.
    Source.insert(key=key, url=url, name=name, kind="cms", edition=edition, enabled=False, breaking=True,
                  managed="desk", created_at=stored(when)).on_conflict_ignore().execute()
    return Source.get(Source.key == key).id


# --- the audit log --------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    via: str
    action: str
    target: str
    before: Any
    after: Any


def audit(actor: str, via: str, action: str, target: str, before: Any, after: Any, when: datetime) -> None:
    """Record a change (inside its own transaction)."""
    def dump(value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    Audit.insert(at=stored(when), actor=actor, via=via, action=action, target=target, before=dump(before),
                 after=dump(after)).execute()


def audit_rows(limit: int, before: int | None = None, target: str | None = None,
               actor: str | None = None) -> list[AuditRow]:
    """The audit log, newest first; ``before``: rows older than that id."""
    query = Audit.select()
    if before is not None:
        query = query.where(Audit.id < before)
    if target:
        query = query.where(Audit.target == target)
    if actor:
        query = query.where(Audit.actor == actor)
    return [AuditRow(a.id, aware(a.at), a.actor, a.via, a.action, a.target,
                     json.loads(a.before) if a.before else None, json.loads(a.after) if a.after else None)
            for a in query.order_by(Audit.id.desc()).limit(limit)]


def entry_exists(entry_id: int) -> bool:
    return Entry.select(pw.fn.COUNT(Entry.id)).where(Entry.id == entry_id).scalar() > 0
