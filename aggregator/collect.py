"""Orchestration: pick sources -> fetch -> parse -> normalise -> upsert, one transaction per source.

One failing source never stops the others: its error is recorded on the
source (health columns and fetch log) and collection goes on.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import store
from .config import Config, SourceConfig
from .errors import SourceError
from .fetch import FetchResult, Fetcher
from .normalize import Context, canonical_link, normalize_feed, plain_text
from .parse import parse_feed

log = logging.getLogger("feedhub.collect")

MAX_BACKOFF = timedelta(hours=6)


@dataclass(frozen=True)
class SourceOutcome:
    """What collecting one source did."""

    source: str
    outcome: str  # ok | not-modified | unchanged | error
    new: int = 0
    updated: int = 0
    status: int | None = None
    error: str | None = None
    duration_ms: int = 0


@dataclass
class CollectSummary:
    outcomes: list[SourceOutcome] = field(default_factory=list)

    @property
    def new(self) -> int:
        return sum(o.new for o in self.outcomes)

    @property
    def updated(self) -> int:
        return sum(o.updated for o in self.outcomes)

    @property
    def failed(self) -> list[SourceOutcome]:
        return [o for o in self.outcomes if o.outcome == "error"]


class Collector:
    """Collects configured sources into the store bound to ``store.db``."""

    def __init__(self, config: Config, fetcher: Fetcher | None = None,
                 clock: Callable[[], datetime] = store.utcnow):
        self.config = config
        self.ctx = Context.from_config(config)
        self.fetcher = fetcher or Fetcher(config.collect)
        self.clock = clock

    def collect(self, only_due: bool = False, source_ids: list[str] | None = None,
                progress: Callable[[SourceOutcome], None] | None = None) -> CollectSummary:
        """Collect every enabled source (or only those due, or only ``source_ids``) once."""
        rows = store.sync_sources(self.config)
        now = self.clock()
        chosen: list[SourceConfig] = []
        for sc in self.config.sources:
            row = rows[sc.id]
            if not sc.enabled or (source_ids is not None and sc.id not in source_ids):
                continue
            if only_due and row.next_due_at is not None and row.next_due_at > now:
                continue
            chosen.append(sc)
        summary = CollectSummary()
        if not chosen:
            return summary
        workers = min(self.config.collect.workers, len(chosen))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="collect") as pool:
            for outcome in pool.map(self._collect_in_thread, chosen):
                summary.outcomes.append(outcome)
                if progress:
                    progress(outcome)
        return summary

    def _collect_in_thread(self, sc: SourceConfig) -> SourceOutcome:
        # peewee keeps one connection per thread; open and close it around the work.
        with store.db.connection_context():
            return self.collect_source(sc)

    def collect_source(self, sc: SourceConfig) -> SourceOutcome:
        """Fetch, parse, normalise and store one source; never raises for a bad source."""
        row = store.Source.get(store.Source.key == sc.id)
        started = self.clock()
        t0 = time.monotonic()
        result: FetchResult | None = None
        try:
            result = self.fetcher.fetch(sc.url, local_path=sc.local_path, etag=row.etag,
                                        last_modified=row.last_modified)
            if result.not_modified:
                return self._record(row, started, t0, "not-modified", result)
            assert result.body is not None
            digest = hashlib.sha256(result.body).hexdigest()
            if digest == row.content_hash:
                return self._record(row, started, t0, "unchanged", result)
            feed = parse_feed(result.body, result.url, result.headers.get("Content-Type"))
            entries, warnings = normalize_feed(feed, sc, self.ctx, started)
            for w in warnings:
                log.warning("%s: %s", sc.id, w)
            with store.write_transaction():
                saved = store.save_entries(row, entries, started)
                return self._record(row, started, t0, "ok", result, new=saved.new,
                                    updated=saved.updated, content_hash=digest,
                                    seen=len(entries), ttl=feed.ttl, feed_title=feed.title,
                                    feed_link=feed.link)
        except SourceError as e:
            log.warning("%s: %s", sc.id, e)
            return self._record_failure(row, started, t0, e.kind, str(e), getattr(e, "status", None))
        except Exception as e:  # a bug on one hostile feed must not stop the others
            log.exception("%s: unexpected error", sc.id)
            return self._record_failure(row, started, t0, "internal", f"{type(e).__name__}: {e}",
                                        result.status if result else None)

    def _record(self, row: store.Source, started: datetime, t0: float, outcome: str,
                result: FetchResult, new: int = 0, updated: int = 0,
                content_hash: str | None = None, seen: int | None = None,
                ttl: int | None = None, feed_title: str | None = None,
                feed_link: str | None = None) -> SourceOutcome:
        """Record a successful fetch on the source (validators, health, log)."""
        duration = int((time.monotonic() - t0) * 1000)
        interval = max(row.interval, (ttl or 0) * 60)
        fields: dict[str, object] = dict(
            last_fetched_at=started, last_success_at=started, last_status=result.status,
            last_error=None, last_error_kind=None, consecutive_failures=0,
            next_due_at=started + timedelta(seconds=interval),
            etag=result.etag, last_modified=result.last_modified)
        if content_hash is not None:
            fields["content_hash"] = content_hash
        if seen is not None:
            fields.update(entries_seen=seen, feed_title=plain_text(feed_title) or None,
                          feed_link=canonical_link(feed_link))
        with store.write_transaction():
            store.Source.update(**fields).where(store.Source.id == row.id).execute()
            self._log(row, started, duration, result.status, outcome,
                      len(result.body or b""), new, updated, None, None)
        return SourceOutcome(row.key, outcome, new, updated, result.status, None, duration)

    def _record_failure(self, row: store.Source, started: datetime, t0: float, kind: str,
                        message: str, status: int | None) -> SourceOutcome:
        duration = int((time.monotonic() - t0) * 1000)
        failures = row.consecutive_failures + 1
        # Exponential backoff, capped, so a dead source is retried but not hammered.
        delay = min(timedelta(seconds=row.interval * 2 ** min(failures - 1, 16)), MAX_BACKOFF)
        with store.write_transaction():
            store.Source.update(
                last_fetched_at=started, last_status=status, last_error=message,
                last_error_kind=kind, consecutive_failures=failures,
                next_due_at=started + delay,
            ).where(store.Source.id == row.id).execute()
            self._log(row, started, duration, status, "error", 0, 0, 0, kind, message)
        return SourceOutcome(row.key, "error", 0, 0, status, message, duration)

    def _log(self, row: store.Source, started: datetime, duration: int, status: int | None,
             outcome: str, size: int, new: int, updated: int, kind: str | None,
             message: str | None) -> None:
        store.FetchLog.create(source=row, started_at=started, duration_ms=duration, status=status,
                              outcome=outcome, bytes=size, entries_new=new, entries_updated=updated,
                              error_kind=kind, error=message)
        store.trim_fetch_log(row, self.config.collect.fetch_log_keep)

    def run_forever(self, stop: threading.Event, tick: float = 5.0,
                    progress: Callable[[SourceOutcome], None] | None = None) -> None:
        """Collect due sources until ``stop`` is set; sleeps in short ticks so stop is prompt."""
        while not stop.is_set():
            try:
                summary = self.collect(only_due=True, progress=progress)
                if summary.outcomes:
                    log.info("collected %d source(s): %d new, %d updated, %d failed",
                             len(summary.outcomes), summary.new, summary.updated, len(summary.failed))
            except Exception:  # the loop must survive a store hiccup; the next tick retries
                log.exception("collect cycle failed")
            stop.wait(tick)
