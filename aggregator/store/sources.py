"""Sources: syncing them with config, leases (claims) for collectors, their health fields,
the fetch log and the shared metric counters."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from ..config import Config, SourceConfig, source_settings
from .connection import db, insert_rows, placeholders, utcnow, write_transaction
from .schema import Entry, FetchLog, MetaInfo, Metric, Source, SourceUrlHistory
from .topics import bump_topics, stored_topics


def sync_sources(config: Config) -> int:
    """Provision config.toml's sources: add new ones, update settings, keep health.

    They are marked managed by config (read-only to the API); a source made through the
    API whose id config.toml now names is taken over by config. A source removed from config
    is disabled, not deleted, so its entries stay published; sources managed in the store
    are left alone. Returns how many sources the store knows.

    Every command and collector start calls this. When the store records that it was last
    synced with exactly these sources and filing rules, nothing can differ (only this function
    writes a config-managed source's settings), and it costs one read instead of loading every
    source row: about a tenth of a warm `feedhub collect` with 500 sources.
    """
    provisioned = [(sc, _source_fields(sc, config)) for sc in config.sources]
    digests = {"classification": classification_digest(config), _SYNCED_KEY: _sources_digest(provisioned)}
    if dict(MetaInfo.select(MetaInfo.key, MetaInfo.value).where(MetaInfo.key.in_(list(digests))).tuples()) == digests:
        return Source.select().count()
    with write_transaction():
        _reclassify_on_change(digests["classification"])
        rows = {s.key: s for s in Source.select()}
        wanted = {s.id for s in config.sources}
        new: list[dict[str, object]] = []
        rights_changed: list[int] = []
        latest_changed: list[int] = []
        for sc, fields in provisioned:
            fields = dict(fields)
            row = rows.get(sc.id)
            if row is None:
                new.append({"key": sc.id, "created_at": utcnow(), **fields})
                continue
            fields.update(moved_fields(row.url, sc.url))
            if any(getattr(row, k) != v for k, v in fields.items()):
                if row.rights != fields["rights"]:
                    rights_changed.append(row.id)
                if row.in_latest != fields["in_latest"]:
                    latest_changed.append(row.id)
                Source.update(**fields).where(Source.id == row.id).execute()
                rows[sc.id] = Source.get_by_id(row.id)
        if new:
            # Several collectors may start at once: the first insert wins, the rest re-read.
            for chunk in pw.chunked(new, 50):
                Source.insert_many(chunk).on_conflict_ignore().execute()
            rows.update((s.key, s) for s in Source.select().where(Source.key.in_([n["key"] for n in new])))
        for key, row in rows.items():
            if key not in wanted and row.enabled and row.managed == "config":
                Source.update(enabled=False).where(Source.id == row.id).execute()
        for source_id in sorted(set(rights_changed) | set(latest_changed)):
            bump_source_topics(source_id, config.taxonomy.parents, refile=source_id in latest_changed)
        MetaInfo.put(_SYNCED_KEY, digests[_SYNCED_KEY])
    return len(rows)


#: feedhub_meta's row holding the digest of the sources the store was last synced with
_SYNCED_KEY = "sources_synced"


def _sources_digest(provisioned: list[tuple[SourceConfig, dict[str, object]]]) -> str:
    """A hash of config.toml's sources as their rows would hold them (ids, order-free)."""
    basis = json.dumps(sorted(([sc.id, fields] for sc, fields in provisioned), key=lambda pair: str(pair[0])),
                       sort_keys=True, default=str)
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def bump_source_topics(source_id: int, parents: dict[str, str], refile: bool = False) -> set[str]:
    """Bump every feed holding one of the source's entries: its rights changed (the feeds that
    may carry its copy change without any entry changing). ``refile``: whether its entries are
    in the latest feeds changed too, and they are filed again in the feed index (in the
    caller's transaction), the latest feeds of their editions bumped with the rest."""
    from .index import repost  # (index reads the topics module, which reads these tables)

    ids = [i for (i,) in Entry.select(Entry.id).where(Entry.source == source_id).tuples()]
    topics: set[str] = set()
    for chunk in pw.chunked(ids, 500):
        chunk = list(chunk)
        topics |= stored_topics(chunk, parents)
        if refile:
            repost(chunk, parents)
    if refile:  # (in them before, or in them now: stored_topics saw the new setting)
        topics |= {f"{t.split(':', 1)[0]}:latest" for t in topics}
    bump_topics(topics, utcnow())
    return topics


@dataclass(frozen=True)
class SourceRow:
    """A claimed source as the collector works with it: what its fetch, its schedule and its
    write need, as plain values (instants naive UTC, as stored)."""

    id: int
    key: str
    name: str
    url: str
    fetch_url: str | None
    interval: int
    breaking: bool
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    id_rule: str
    redirect_target: str | None
    redirect_count: int
    feed_ttl: int | None
    consecutive_failures: int
    #: the source's settings as a config.toml source table (JSON; see config.check_source)
    settings: str | None
    #: its entries are in the latest feeds
    in_latest: bool = True


_ROW_COLUMNS = tuple(f.name for f in dataclasses.fields(SourceRow))


def claim_sources(owner: str, now: datetime, lease_seconds: int, *, only_due: bool = True,
                  keys: list[str] | None = None, limit: int = 1000,
                  fetched_before: datetime | None = None) -> list[SourceRow]:
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
    cond = (f"enabled = {param} AND disabled_reason IS NULL AND removed_at IS NULL AND managed <> 'desk' "
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
        rows = database.execute_sql(f"SELECT {', '.join(_ROW_COLUMNS)} FROM {table} WHERE id IN ({marks}) "
                                    f"AND lease_owner = {param} AND lease_until = {param} "
                                    "ORDER BY next_due_at ASC NULLS FIRST, id", [*ids, owner, until])
        return [_source_row(row) for row in rows]


def _source_row(row: tuple[Any, ...]) -> SourceRow:
    values = dict(zip(_ROW_COLUMNS, row))
    values["breaking"], values["in_latest"] = bool(values["breaking"]), bool(values["in_latest"])
    return SourceRow(**values)


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
    insert_rows(Metric, ("name", "labels", "value"), [(n, lbl, d) for (n, lbl), d in sorted(deltas.items())],
                f' ON CONFLICT ("name", "labels") DO UPDATE SET value = "{table}".value + excluded.value')


def classification_digest(config: Config) -> str:
    """A hash of everything that decides how entries are filed (taxonomy, dossiers, defaults)."""
    basis = repr((sorted((k, v) for k, v in config.taxonomy.sections.items()),
                  sorted(config.taxonomy.regions.items()), sorted(config.taxonomy.coverage.items()),
                  sorted(config.collect.breaking_prefixes.items()),
                  sorted((s.id, s.edition, s.section, s.region, s.tags, s.origin, s.breaking, s.rules, s.embargo)
                         for s in config.sources)))
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def _reclassify_on_change(digest: str) -> None:
    """When the filing rules change (``digest``: their classification_digest), forget every
    source's validators and body hash.

    The next collect then parses and normalises every source again; entries whose
    classification changed get a new fingerprint and are updated (with their feeds).
    """
    row = MetaInfo.get_or_none(MetaInfo.key == "classification")
    if row is not None and row.value == digest:
        return
    MetaInfo.put("classification", digest)
    Source.update(etag=None, last_modified=None, content_hash=None).execute()


def _source_fields(sc: SourceConfig, config: Config) -> dict[str, object]:
    return {**source_columns(sc, config.collect.interval), "managed": "config", "removed_at": None}


def source_columns(sc: SourceConfig, default_interval: int) -> dict[str, object]:
    """The source row's columns that its settings decide."""
    return {"url": sc.url, "name": sc.name, "kind": sc.kind, "edition": sc.edition,
            "enabled": sc.enabled, "breaking": sc.breaking,
            "interval": sc.interval or default_interval, "rights": sc.rights,
            "rights_statement": sc.rights_statement, "in_latest": sc.in_latest,
            "settings": json.dumps(source_settings(sc), ensure_ascii=False, sort_keys=True)}


def moved_fields(old_url: str, new_url: str) -> dict[str, object]:
    """When an admin points a source somewhere new: forget its redirects, a 410 and validators."""
    if old_url == new_url:
        return {}
    return dict(fetch_url=None, redirect_target=None, redirect_count=0, disabled_reason=None, etag=None,
                last_modified=None, content_hash=None, id_rule="guid", id_rule_reason=None)


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


def keep_refreshes(source_ids: list[int]) -> None:
    """After a fetch's record was written (inside its transaction): a source whose refresh was
    asked for while that fetch was in flight is due now again."""
    if source_ids:
        t = Source._meta.table_name
        db.obj.execute_sql(f"UPDATE {t} SET next_due_at = NULL WHERE id IN ({placeholders(len(source_ids))}) "
                           f"AND refresh_requested_at IS NOT NULL AND refresh_requested_at > last_fetched_at",
                           list(source_ids))


def metric_rows() -> list[tuple[str, str, float]]:
    """Every shared counter as (name, labels, value); labels are "k=v,k=v"."""
    return list(Metric.select(Metric.name, Metric.labels, Metric.value).tuples())


def release_sources(source_ids: list[int]) -> None:
    """Give back the claims on these sources (claimed, but not this collector's to fetch)."""
    Source.update(lease_owner=None, lease_until=None).where(Source.id.in_(source_ids)).execute()


def source_mirrors() -> dict[str, tuple[str, ...]]:
    """Key -> the ids its settings name as mirrors, for every live source that names any."""
    out: dict[str, tuple[str, ...]] = {}
    for key, settings in Source.select(Source.key, Source.settings).where(
            Source.removed_at.is_null(), Source.settings.contains('"mirrors": ["')).tuples():
        mirrors = json.loads(settings).get("mirrors") or []
        if mirrors:
            out[key] = tuple(mirrors)
    return out


def source_ids(keys: list[str]) -> list[int]:
    """Store ids of the sources with these config ids."""
    return [i for (i,) in Source.select(Source.id).where(Source.key.in_(keys)).tuples()]


def record_move(source_id: int, old_url: str, new_url: str, when: datetime, reason: str) -> None:
    """Keep a source's old URL in its history when it moves (a confirmed permanent redirect)."""
    SourceUrlHistory.create(source=source_id, old_url=old_url, new_url=new_url, moved_at=when, reason=reason)


#: a fetch-log row, as the collector hands it over
FETCH_LOG_COLUMNS = ("source_id", "started_at", "duration_ms", "status", "outcome", "bytes", "entries_new",
                     "entries_updated", "error_kind", "error")


def insert_fetch_log(rows: list[tuple[object, ...]]) -> None:
    """Add fetch-log rows (FETCH_LOG_COLUMNS) in one statement, inside the caller's transaction."""
    insert_rows(FetchLog, FETCH_LOG_COLUMNS, rows)
