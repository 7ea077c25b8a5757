"""The shared store: the ONLY place that holds SQL or imports peewee.

One module per job (after lemon24/reader's storage): ``connection`` (opening the store,
transactions, PostgreSQL that survives lost connections), ``schema`` (tables, version,
migrations), ``sources`` (sync with config, claims, health fields, fetch log, metrics),
``entries`` (the write path, retraction, re-filing, lookups), ``topics`` (feeds' change
counters), ``integrity`` (failures of the store itself, integrity checks, backups) and
``health`` (what /healthz reads). The rest of feedhub imports this package, never a module
of it, so a module can be split or merged without touching callers.
"""
from __future__ import annotations

from .connection import (
                         PostgresDatabase,
                         aware,
                         connect,
                         db,
                         insert_rows,
                         is_sqlite,
                         is_transient,
                         open_database,
                         placeholders,
                         redact_url,
                         reset_connection,
                         savepoint,
                         utcnow,
                         write_transaction,
)
from .entries import (
                         COVERAGE_WEIGHT,
                         RELATED_KEEP,
                         RELATED_POOL,
                         RULE_WITHDRAWN,
                         FoundEntry,
                         SaveResult,
                         edition_authors,
                         edition_tags,
                         entry_ids,
                         find_entries,
                         newest_change,
                         previous_ids,
                         recent_published,
                         refile_by_rules,
                         rekey_source,
                         relate,
                         retract,
                         save_entries,
                         unretract,
)
from .health import (
                         STATUSES,
                         SourceHealth,
                         entry_count,
                         health_summary,
                         source_status,
                         sources_health,
                         status_counts,
)
from .integrity import IntegrityWatch, backup_sqlite, check_integrity, diagnose
from .schema import (
                         MODELS,
                         SCHEMA_VERSION,
                         Author,
                         BaseModel,
                         Entry,
                         EntryAuthor,
                         EntryCoverage,
                         EntryRegion,
                         EntrySource,
                         EntryTag,
                         FetchLog,
                         Media,
                         MetaInfo,
                         Metric,
                         Related,
                         Source,
                         SourceUrlHistory,
                         Tag,
                         Topic,
                         init_db,
                         schema_version,
)
from .sources import (
                         FETCH_LOG_COLUMNS,
                         SourceRow,
                         bump_metrics,
                         claim_sources,
                         classification_digest,
                         holds_claim,
                         insert_fetch_log,
                         metric_rows,
                         new_owner_id,
                         record_move,
                         release_claims,
                         release_sources,
                         source_ids,
                         sync_sources,
                         trim_fetch_log,
                         update_sources,
)
from .topics import (
                         TopicRevisions,
                         bump_topics,
                         entry_topics,
                         stored_topics,
                         topic_revision,
)

__all__ = [
    "SourceRow",
    "FETCH_LOG_COLUMNS", "insert_fetch_log",
    "connect", "is_sqlite", "savepoint", "entry_ids", "recent_published", "record_move", "release_sources",
    "source_ids",
    "edition_authors", "edition_tags", "newest_change",
    "metric_rows",
    "STATUSES", "SourceHealth", "aware", "entry_count", "source_status", "sources_health", "status_counts",
    "COVERAGE_WEIGHT", "MODELS", "RELATED_KEEP", "RELATED_POOL", "RULE_WITHDRAWN", "SCHEMA_VERSION", "Author",
    "BaseModel", "Entry", "EntryAuthor", "EntryCoverage", "EntryRegion", "EntrySource", "EntryTag", "FetchLog",
    "FoundEntry", "IntegrityWatch", "Media", "MetaInfo", "Metric", "PostgresDatabase", "Related", "SaveResult",
    "Source", "SourceUrlHistory", "Tag", "Topic", "TopicRevisions", "backup_sqlite", "bump_metrics", "bump_topics",
    "check_integrity", "claim_sources", "classification_digest", "db", "diagnose", "entry_topics", "find_entries",
    "health_summary", "holds_claim", "init_db", "insert_rows", "is_transient", "new_owner_id", "open_database",
    "placeholders", "previous_ids", "redact_url", "refile_by_rules", "rekey_source", "relate", "release_claims",
    "reset_connection", "retract", "save_entries", "schema_version", "stored_topics", "sync_sources",
    "topic_revision", "trim_fetch_log", "unretract", "update_sources", "utcnow", "write_transaction",
]
