"""Health, computed once: every source's status (for `feedhub sources`, /metrics, /healthz and,
later, the admin API) and what /healthz reads live from the store."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee as pw

from . import websub
from .connection import aware, db, stored, write_transaction
from .schema import CollectRun, Entry, MetaInfo, Source, schema_version

#: every source status, and what it means (the README's table is this one)
STATUSES: dict[str, str] = {
    "ok": "enabled, and its last fetch succeeded",
    "failing": "enabled, and its last fetch failed; it is polled again with backoff",
    "gone": "the publisher answered 410 Gone; not polled until its URL changes",
    "never": "enabled, and not fetched yet",
    "disabled": "disabled (in config or through the API), or removed from config; its entries stay published",
}


def source_status(enabled: bool, disabled_reason: str | None, last_fetched_at: datetime | None,
                  consecutive_failures: int) -> str:
    """The one status of a source (see STATUSES); the first that applies wins."""
    if not enabled:
        return "disabled"
    if disabled_reason:
        return "gone"
    if last_fetched_at is None:
        return "never"
    return "failing" if consecutive_failures else "ok"


@dataclass(frozen=True)
class SourceHealth:
    """A source as admins watch it. Instants are aware UTC."""

    key: str
    name: str
    url: str
    kind: str
    enabled: bool
    status: str
    last_fetched_at: datetime | None
    last_success_at: datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    next_due_at: datetime | None
    entries_seen: int
    fetch_url: str
    disabled_reason: str | None
    id_rule: str
    id_rule_reason: str | None
    warnings: tuple[str, ...]
    entries_stored: int
    #: "config" (read-only to the API), "store" (made through the API or CLI) or "desk"
    managed: str = "config"
    #: the source's settings as a config.toml source table
    settings: dict[str, Any] = field(default_factory=dict)
    #: its WebSub subscription (store.websub.Subscription.view), if its feed names a hub
    websub: dict[str, Any] | None = None


def sources_health(keys: list[str] | None = None) -> list[SourceHealth]:
    """Every source's health (or those with these keys), by key, the removed ones and the
    desk's left out: two queries however many sources there are."""
    query = Source.select().where(Source.removed_at.is_null(), Source.managed != "desk")
    counts = Entry.select(Entry.source, pw.fn.COUNT(Entry.id)).group_by(Entry.source)
    if keys is not None:
        query = query.where(Source.key.in_(keys))
        counts = counts.join(Source).where(Source.key.in_(keys))
    stored = dict(counts.tuples())
    rows = list(query.order_by(Source.key))
    subscriptions = websub.by_source([s.id for s in rows] if keys is not None else None)
    return [SourceHealth(
        key=s.key, name=s.name, url=s.url, kind=s.kind, enabled=s.enabled,
        status=source_status(s.enabled, s.disabled_reason, s.last_fetched_at, s.consecutive_failures),
        last_fetched_at=aware(s.last_fetched_at), last_success_at=aware(s.last_success_at),
        last_status=s.last_status, last_error=s.last_error, consecutive_failures=s.consecutive_failures,
        next_due_at=aware(s.next_due_at), entries_seen=s.entries_seen, fetch_url=s.fetch_url or s.url,
        disabled_reason=s.disabled_reason, id_rule=s.id_rule, id_rule_reason=s.id_rule_reason,
        warnings=tuple(s.warnings.splitlines()) if s.warnings else (), entries_stored=stored.get(s.id, 0),
        managed=s.managed, settings=json.loads(s.settings) if s.settings else {},
        websub=subscriptions[s.id].view() if s.id in subscriptions else None)
        for s in rows]


def status_counts() -> dict[str, int]:
    """How many sources are in each status (every status present, zeros included)."""
    counts = Counter(source_status(*row) for row in Source.select(
        Source.enabled, Source.disabled_reason, Source.last_fetched_at, Source.consecutive_failures)
        .where(Source.removed_at.is_null(), Source.managed != "desk").tuples())
    return {status: counts.get(status, 0) for status in STATUSES}


def entry_count() -> int:
    """Entries in the store, retracted ones included."""
    return Entry.select().count()


def health_summary() -> dict[str, object]:
    """What /healthz shows, read live: the schema version, entries stored, failing sources, and
    the newest page of entries (what every feed reads first), so an unreadable store fails here."""
    list(Entry.select().order_by(Entry.published.desc()).limit(50).tuples())
    counts = status_counts()
    return {"schema_version": schema_version(), "entries": entry_count(), "failing_sources": counts["failing"]}


#: collect runs kept in the store (older ones are deleted as new ones are recorded)
RUNS_KEPT = 500


def record_run(owner: str, started: datetime, finished: datetime, sources: int, new: int, updated: int,
               failed: int) -> None:
    """Note a finished collect run (its own small transaction), keeping the newest RUNS_KEPT."""
    with write_transaction():
        run_id = CollectRun.insert(owner=owner, started_at=stored(started), finished_at=stored(finished),
                                   sources=sources, new=new, updated=updated, failed=failed).execute()
        CollectRun.delete().where(CollectRun.id <= run_id - RUNS_KEPT).execute()


def recent_runs(count: int) -> list[dict[str, Any]]:
    """The newest collect runs, newest first (instants aware UTC)."""
    return [{"collector": r.owner, "started_at": aware(r.started_at), "finished_at": aware(r.finished_at),
             "sources": r.sources, "new": r.new, "updated": r.updated, "failed": r.failed}
            for r in CollectRun.select().order_by(CollectRun.id.desc()).limit(count)]


def ingest_by_hour(since: datetime) -> list[tuple[str, str, int]]:
    """Entries first seen per hour since ``since`` (aware UTC), per source kind:
    ("YYYY-MM-DD HH", kind, count), oldest first."""
    e, src = Entry._meta.table_name, Source._meta.table_name
    if isinstance(db.obj, pw.PostgresqlDatabase):
        hour = "to_char(date_trunc('hour', e.first_seen), 'YYYY-MM-DD HH24')"
    else:
        hour = "strftime('%Y-%m-%d %H', e.first_seen)"
    rows = db.obj.execute_sql(
        f"SELECT {hour} AS h, s.kind, COUNT(*) FROM {e} e JOIN {src} s ON s.id = e.source_id "
        f"WHERE e.first_seen >= {db.obj.param} GROUP BY h, s.kind ORDER BY h", (stored(since),))
    return [(str(h), str(kind), int(n)) for h, kind, n in rows]


def session_secret() -> str:
    """The secret that signs console sessions, made once and shared by every web process."""
    import secrets

    row = MetaInfo.get_or_none(MetaInfo.key == "session_secret")
    if row is not None:
        return str(row.value)
    with write_transaction():
        MetaInfo.insert(key="session_secret", value=secrets.token_hex(32)).on_conflict_ignore().execute()
    return str(MetaInfo.get(MetaInfo.key == "session_secret").value)
