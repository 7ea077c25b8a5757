"""What /healthz reads from the store."""
from __future__ import annotations

from .schema import Entry, Source, schema_version


def health_summary() -> dict[str, object]:
    """What /healthz shows, read live: the schema version, entries stored, failing sources, and
    the newest page of entries (what every feed reads first), so an unreadable store fails here."""
    E, S = Entry, Source
    list(E.select().order_by(E.published.desc()).limit(50).tuples())
    failing = S.select().where(S.consecutive_failures > 0, S.enabled == True).count()  # noqa: E712
    return {"schema_version": schema_version(), "entries": E.select().count(), "failing_sources": failing}
