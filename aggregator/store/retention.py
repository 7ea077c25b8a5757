"""Retention: entries published before a cutoff leave the store, in small batches.

Each batch is its own short transaction (its feed and search rows, children and related
links go with it, and the feeds it leaves are bumped), so collectors wait at most one batch
and readers never (WAL, MVCC). Entries filed in a dossier marked ``keep`` stay; retracted
entries (tombstones) past the cutoff go the same way as live ones.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import peewee as pw

from . import index
from .connection import aware, db, naive, placeholders, stored, write_transaction
from .entries import _relating_to
from .schema import Entry, EntryCoverage
from .topics import bump_topics, stored_topics

#: entries removed per transaction
PRUNE_BATCH = 500


@dataclass
class PruneReport:
    """What a prune removed (or, dry, would remove)."""

    cutoff: datetime
    removed: int = 0
    tombstones: int = 0  # of them, retracted entries
    kept: int = 0  # older than the cutoff, kept by a dossier
    by_edition: Counter[str] = field(default_factory=Counter)
    oldest: datetime | None = None
    newest: datetime | None = None
    batches: int = 0


def prune(editions: list[str], cutoff: datetime, keep_coverage: list[str], parents: dict[str, str],
          now: datetime, dry_run: bool = False, batch: int = PRUNE_BATCH) -> PruneReport:
    """Remove the entries of ``editions`` published before ``cutoff`` (aware UTC), except
    those in the ``keep_coverage`` dossiers. ``dry_run``: only count them."""
    report = PruneReport(cutoff)
    p = db.obj.param
    for edition in editions:
        # Walk the (edition, published) index from the oldest with a cursor, so kept entries
        # are read once, not again by every batch.
        after: tuple[datetime, int] | None = None
        while True:
            where = f"e.edition = {p} AND e.published < {p}"
            args: list[object] = [edition, stored(cutoff)]
            if after is not None:
                where += f" AND (e.published > {p} OR (e.published = {p} AND e.id > {p}))"
                args += [after[0], after[0], after[1]]
            rows = db.obj.execute_sql(
                f"SELECT e.id, e.published, e.retracted_at IS NOT NULL FROM {Entry._meta.table_name} e "
                f"WHERE {where} ORDER BY e.published, e.id LIMIT {int(batch)}", args).fetchall()
            if not rows:
                break
            after = (naive(rows[-1][1]), rows[-1][0])
            ids = [r[0] for r in rows]
            if keep_coverage:
                kept = _kept(ids, keep_coverage)
                report.kept += len(kept)
                rows = [r for r in rows if r[0] not in kept]
            if not rows:
                continue
            if not dry_run:
                remove_entries([r[0] for r in rows], parents, now)
            report.batches += 1
            report.removed += len(rows)
            report.tombstones += sum(1 for r in rows if r[2])
            report.by_edition[edition] += len(rows)
            first, last = aware(rows[0][1]), aware(rows[-1][1])
            report.oldest = first if report.oldest is None else min(report.oldest, first)
            report.newest = last if report.newest is None else max(report.newest, last)
    return report


def _kept(ids: list[int], keep_coverage: list[str]) -> set[int]:
    return {i for (i,) in db.obj.execute_sql(
        f"SELECT DISTINCT entry_id FROM {EntryCoverage._meta.table_name} WHERE entry_id IN ({placeholders(len(ids))}) "
        f"AND coverage IN ({placeholders(len(keep_coverage))})", [*ids, *keep_coverage])}


def remove_entries(ids: list[int], parents: dict[str, str], now: datetime) -> None:
    """Delete entries outright, in one transaction (retention's batch): the entries, their
    index rows and (by cascade) their children, links and search rows; no tombstone stays."""
    with write_transaction():
        # Re-read inside the transaction: an entry may have changed since it was picked.
        found = [(i, aware(pub)) for i, pub in db.obj.execute_sql(
            f"SELECT id, published FROM {Entry._meta.table_name} WHERE id IN ({placeholders(len(ids))})", ids)]
        if not found:
            return
        live = [i for i, _ in found]
        # (entries that list them as related change too: those links go with them)
        topics = stored_topics(live + _relating_to(live), parents)
        index.unpost([index.sort_key(pub, i) for i, pub in found])
        Entry.delete().where(Entry.id.in_(live)).execute()
        bump_topics(topics, stored(now))


def oldest_published(edition: str) -> datetime | None:
    """When the edition's oldest entry was published (one index seek)."""
    value = Entry.select(pw.fn.MIN(Entry.published)).where(Entry.edition == edition).scalar()
    return aware(value) if value else None
