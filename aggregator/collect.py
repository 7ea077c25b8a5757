"""Orchestration: claim sources -> fetch -> parse -> normalise -> upsert, one transaction per source.

One failing source never stops the others: its error is recorded on the
source (health columns, fetch log, metrics) and collection goes on. Several
collectors can share one store: each claims sources with a lease, so no
source is fetched twice at once, and a dead collector's lease simply expires.
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from . import schedule, store
from .config import Config, SourceConfig, check_source
from .errors import ClaimLost, ConfigError, FeedhubError, FetchError, SourceError, StoreUnavailable, describe_failure
from .fetch import Fetcher, FetchResult
from .normalize import Context, canonical_link, plain_text, slugify
from .subscribe import Subscriptions
from .work import DEFAULT_TARGET, ParseJob, ParsePool

log = logging.getLogger("feedhub.collect")

#: upper bounds (seconds) of the fetch duration histogram exposed on /metrics
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _pause_for_store(tries: int) -> None:
    """Wait before trying the store again: 0.5, 1, 2 s (a restarting server needs a moment)."""
    time.sleep(0.5 * 2 ** (tries - 1))


class _Stopped(Exception):
    """The collector is stopping: a thread leaves its source as it found it (claim released)."""


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
    error_kind: str | None = None
    #: feeds whose content this fetch changed
    topics: frozenset[str] = frozenset()


@dataclass
class _Record:
    """Everything one fetch writes about its source: health fields, a log row, metric increments."""

    row: store.SourceRow
    fields: dict[str, object]
    #: the collector whose claim on the source this write needs
    owner: str
    log: tuple[tuple[object, ...], dict[tuple[str, str], float]]  # (store.FETCH_LOG_COLUMNS row, metric deltas)
    #: a permanent redirect to count at write time: (its target or None, when, confirmations needed)
    redirect: tuple[str | None, datetime, int] | None = None

    def write(self, keep: int) -> None:
        """Write inside the caller's transaction."""
        _Record.write_all([self], keep)

    def settle(self) -> None:
        """Fold in the redirect fields, which depend on what is stored when they are written."""
        if self.redirect is not None:
            target, when, confirmations = self.redirect
            self.fields.update(redirect_fields(self.row, target, when, confirmations))
            self.redirect = None

    def log_only(self) -> "_Record":
        """The fetch-log row and metrics of this record, without the source's fields."""
        return _Record(self.row, {}, self.owner, self.log)

    @staticmethod
    def write_all(records: list["_Record"], keep: int) -> None:
        """Write records inside the caller's transaction: one source update each, the fetch-log
        rows in one insert, and the metric increments summed into one upsert per counter."""
        deltas: dict[tuple[str, str], float] = {}
        for rec in records:
            rec.settle()
            for key, delta in rec.log[1].items():
                deltas[key] = deltas.get(key, 0) + delta
        for owner in {rec.owner for rec in records}:
            store.update_sources([(rec.row.id, rec.fields) for rec in records if rec.fields and rec.owner == owner],
                                 owner)
        store.keep_refreshes([rec.row.id for rec in records if rec.fields])
        store.insert_fetch_log([rec.log[0] for rec in records])
        store.trim_fetch_log([rec.row.id for rec in records], keep)
        store.bump_metrics(deltas)


def redirect_fields(row: store.SourceRow, target: str | None, when: datetime, confirmations: int) -> dict[str, object]:
    """Count repeated permanent redirects (``target``: this fetch's, or None); move the source's
    URL once ``confirmations`` fetches in a row said so, keeping the old one in its history."""
    if target is None:
        return {"redirect_target": None, "redirect_count": 0} if row.redirect_target else {}
    count = row.redirect_count + 1 if target == row.redirect_target else 1
    if count < confirmations:
        return {"redirect_target": target, "redirect_count": count}
    old = row.fetch_url or row.url
    store.record_move(row.id, old, target, when, f"permanent redirect seen on {count} fetches in a row")
    log.info("%s: moved from %s to %s after %d permanent redirects", row.key, old, target, count)
    return {"fetch_url": target, "redirect_target": None, "redirect_count": 0}


@dataclass
class _Job:
    write: Callable[[], "SourceOutcome"]
    done: threading.Event = field(default_factory=threading.Event)
    result: "SourceOutcome | None" = None
    error: BaseException | None = None


class _GroupWriter:
    """Group commit: the sources that several threads finished at about the same time are
    written in one transaction.

    A commit writes every page the transaction touched, and the sources of one collect
    share many (topics, index pages, counters): one commit for a group costs little more
    than one for a single source. Whoever finds the writer free writes everything queued
    so far, each source inside its own savepoint, so a source that fails is rolled back
    alone; every thread gets back its own source's result once the group has committed
    (or the commit's error, when the database refused it: then nothing was written).
    """

    MAX_GROUP = 32

    def __init__(self, transaction: Callable[[], Any]):
        self._transaction = transaction
        self._queue: list[_Job] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()

    def run(self, write: Callable[[], "SourceOutcome"]) -> "SourceOutcome":
        job = _Job(write)
        with self._queue_lock:
            self._queue.append(job)
        while not job.done.is_set():
            with self._leader:
                if job.done.is_set():
                    break
                with self._queue_lock:
                    group, self._queue = self._queue[:self.MAX_GROUP], self._queue[self.MAX_GROUP:]
                self._commit(group)
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _commit(self, group: list[_Job]) -> None:
        try:
            # Topic rows are bumped once, at the end: every source's write bumps "latest", and
            # other collectors wait on those rows until this transaction ends.
            with self._transaction(), store.deferred_bumps():
                for job in group:
                    try:
                        with store.savepoint():  # this source's failure is its own
                            job.result = job.write()
                    except Exception as e:
                        job.result, job.error = None, e
        except Exception as e:  # the commit failed: nothing of the group was written
            for job in group:
                job.result, job.error = None, e
        finally:
            for job in group:
                job.done.set()


#: cheap records (304, unchanged body, fetch logs) written together once this many wait
FLUSH_EVERY = 64



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

    @property
    def topics(self) -> set[str]:
        """Every feed whose content changed in this run."""
        return set().union(*(o.topics for o in self.outcomes))


#: how often run_forever prunes (retention) and refreshes the planner's statistics
MAINTAIN_EVERY = timedelta(hours=1)


def prune(config: Config, now: datetime, dry_run: bool = False) -> store.PruneReport | None:
    """Retention as config.toml sets it ([store] keep_days, dossiers marked keep); None when
    everything is kept. ``now`` is aware UTC."""
    if not config.store.keep_days:
        return None
    cutoff = now - timedelta(days=config.store.keep_days)
    keep = [slug for slug, cov in config.taxonomy.coverage.items() if cov.keep]
    return store.prune(list(config.editions), cutoff, keep, config.taxonomy.parents, now, dry_run=dry_run)


def related_policy(sc: SourceConfig, config: Config) -> store.RelatedPolicy:
    """What relates a source's entries: not the tags it gives all of them, nor the edition's
    most common tags ([related])."""
    return store.RelatedPolicy(frozenset(slugify(t) for t in sc.tags), config.related.max_tag_share,
                               config.related.recent_entries)


class Collector:
    """Collects configured sources into the store bound to ``store.db``."""

    def __init__(self, config: Config, fetcher: Fetcher | None = None,
                 clock: Callable[[], datetime] = store.utcnow, parse_target: str = DEFAULT_TARGET,
                 owner: str | None = None, on_topics: Callable[[set[str]], None] | None = None):
        self.config = config
        self.ctx = Context.from_config(config)
        self.fetcher = fetcher or Fetcher(config.collect)
        self.clock = clock
        self.owner = owner or store.new_owner_id()
        #: told which feeds each run changed (the WebSub publisher); must not block
        self.on_topics = on_topics
        self.parents = config.taxonomy.parents
        self._parse_target = parse_target
        self.pool = ParsePool(self.ctx, size=config.collect.parse_workers,
                              timeout=config.collect.parse_timeout, target=parse_target)
        self._reloaded: Config | None = None
        self._hosts: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(config.collect.per_host))
        self._hosts_lock = threading.Lock()
        self._host_of: dict[str, str] = {}  # source URL -> host, parsed once
        # Records of cheap outcomes (304, unchanged body) wait here and are written a
        # batch at a time: one transaction per batch instead of one per source.
        self._pending: list[_Record] = []
        self._pending_lock = threading.Lock()
        # Threads live as long as the collector, each keeping its own store connection,
        # instead of opening one (and re-running SQLite's pragmas) for every fetch.
        self._threads = ThreadPoolExecutor(max_workers=config.collect.workers, thread_name_prefix="collect")
        self._write_lock = threading.RLock()  # _record may write inside a caller's transaction
        self._group = _GroupWriter(self._writing)
        self._sqlite = store.is_sqlite()
        # config.toml's sources are provisioned on the first run (and again after a reload).
        self._synced = False
        #: source key -> (the settings it was built from, the SourceConfig)
        self._configs: dict[str, tuple[str | None, SourceConfig]] = {}
        #: key -> mirror ids, of every source naming any (read at each run's start)
        self._mirrors: dict[str, tuple[str, ...]] = {}
        #: set when the collector is stopping (Ctrl-C, SIGTERM, a store that cannot be written):
        #: threads start no new fetch, parse or write
        self._stopping = threading.Event()
        self._closed = False
        self.subscriptions = Subscriptions(config, self.fetcher)
        self._pushed: tuple[float, set[int]] = (0.0, set())

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop: finish or abandon what is in flight, write what is held, give back every claim.

        Whatever way a collector stops that Python can catch (an error, Ctrl-C,
        SIGTERM), its sources are free for the next collector at once, not after
        lease_seconds, and no fetch-log row it held in memory is lost. Only SIGKILL
        or a power loss leaves claims to expire.
        """
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._threads.shutdown(wait=True, cancel_futures=True)
        try:
            self._flush()
        except Exception as e:  # e.g. the disk is full: say what is lost, and go on stopping
            log.warning("could not write the last fetch-log rows: %s", store.diagnose(e) or e)
        try:
            released = store.release_claims(self.owner)
            if released:
                log.info("released %d claimed source(s) on stopping", released)
        except Exception as e:
            log.warning("could not release this collector's claims (they expire after %d s): %s",
                        self.config.collect.lease_seconds, store.diagnose(e) or e)
        self.pool.close()
        self.fetcher.close()

    def reload(self, config: Config) -> None:
        """Use ``config`` (a reloaded config.toml: taxonomy, editions, provisioned sources) from
        the next run on; a run in progress finishes with the config it started with."""
        self._reloaded = config

    def _apply_reload(self) -> None:
        config, self._reloaded = self._reloaded, None
        if config is None:
            return
        self.config = config
        self.ctx = Context.from_config(config)
        self.parents = config.taxonomy.parents
        self._configs.clear()
        self._synced = False  # provision the sources of the new file
        old, self.pool = self.pool, ParsePool(self.ctx, size=config.collect.parse_workers,
                                              timeout=config.collect.parse_timeout, target=self._parse_target)
        old.close()  # its workers hold the old taxonomy
        log.info("using the reloaded %s", config.path)

    #: tries of a source whose write was lost with the store's connection, within one run
    STORE_TRIES = 3

    # (C901: the run loop, in commented steps: claim a batch, wait for results, gather them,
    # collect again what the store lost, flush; stopping cleanly on any exit)
    def collect(self, only_due: bool = False, source_ids: list[str] | None = None,  # noqa: C901
                progress: Callable[[SourceOutcome], None] | None = None,
                on_claimed: Callable[[int], None] | None = None) -> CollectSummary:
        """Collect every enabled source (or only those due, or only ``source_ids``) once.

        Sources leased by another live collector are left to it. A source whose write
        was lost with the store's connection is collected again in the same run (up to
        STORE_TRIES times, waiting a little longer each time). A store that is full,
        damaged or stays away stops the run: what is in flight finishes, the claims
        are given back, and StoreFull / StoreError says why.
        """
        if self._closed:
            raise RuntimeError("this collector is closed")
        self._stopping.clear()  # a run that stopped on a store failure does not stop the next
        self._apply_reload()
        if not self._synced:
            self._store_call(lambda: store.sync_sources(self.config))
            # Entries are filed into the feed index under this taxonomy: re-file what an older
            # feedhub or another taxonomy (a moved subsection) left.
            self._store_call(lambda: store.prepare_index(self.parents))
            self._synced = True
        # Sources come from the store: config.toml's (provisioned above) and those made through
        # the API, each claim reading their current settings.
        remaining: list[str] = list(dict.fromkeys(source_ids or []))
        self._mirrors = self._store_call(store.source_mirrors)
        summary = CollectSummary()
        # Claim about four times this collector's threads at a time, so that several
        # collectors on one store share the due sources instead of one taking them all;
        # claim again when half of those are done, so threads never wait for a batch's
        # slowest source. Each claim is a write transaction: not one per source.
        workers = self.config.collect.workers
        batch = workers * 4
        order: dict[str, int] = {}
        in_flight: dict[Future[SourceOutcome], tuple[store.SourceRow, int]] = {}
        # Finished sources arrive here, each once; waiting on a queue costs the same however
        # many sources are in flight (concurrent.futures.wait visits every one of them).
        finished: queue.SimpleQueue[Future[SourceOutcome]] = queue.SimpleQueue()
        fatal: FeedhubError | None = None

        def submit(row: store.SourceRow, tries: int) -> None:
            future = self._threads.submit(self._in_thread, row)
            in_flight[future] = (row, tries)
            future.add_done_callback(finished.put)

        # Collecting every source, "not fetched since this run began" says what is left, so a
        # claim need not name hundreds of remaining sources.
        run_started = self.clock()
        everything = source_ids is None
        more = everything or bool(remaining)  # sources may be left to claim
        try:
            while more or in_flight:
                if more and fatal is None and len(in_flight) <= batch // 2:
                    claimed = self._claim(None if everything else remaining, batch - len(in_flight),
                                          only_due, run_started if everything else None)
                    if on_claimed:
                        on_claimed(len(claimed))
                    done = {row.key for row in claimed}
                    remaining = [k for k in remaining if k not in done]
                    more = bool(claimed) and (everything or bool(remaining))
                    for row in claimed:
                        order[row.key] = len(order)
                        submit(row, 1)
                if not in_flight:
                    break
                ready = [finished.get()]
                while not finished.empty():
                    ready.append(finished.get())
                for future in ready:
                    row, tries = in_flight.pop(future)
                    try:
                        outcome = future.result()
                    except _Stopped:
                        continue  # left as it was found; its claim is given back
                    except Exception as e:
                        if self._collect_again(e, row, tries, fatal):
                            submit(row, tries + 1)
                        else:
                            fatal = fatal or store.diagnose(e)
                        continue
                    summary.outcomes.append(outcome)
                    if self.on_topics and outcome.topics:
                        # The hubs hear of a source's changes once they are committed, not
                        # when the whole run ends (breaking news must not wait for it).
                        self.on_topics(set(outcome.topics))
                    if progress:
                        progress(outcome)
                if len(self._pending) >= FLUSH_EVERY and fatal is None:
                    self._flush()
            if fatal is not None:
                raise fatal
            self._flush()
        except BaseException:
            # Ctrl-C, SIGTERM, a store that cannot be written: stop the threads and give back
            # what this run claimed; the caller sees the error.
            self._stopping.set()
            for future in in_flight:
                future.cancel()
            raise
        summary.outcomes.sort(key=lambda o: order[o.source])  # in claim order, however they finished
        if summary.outcomes:
            try:
                store.record_run(self.owner, run_started, self.clock(), len(summary.outcomes), summary.new,
                                 summary.updated, len(summary.failed))
            except Exception as e:  # the run's work is written; its summary row is a nicety
                if store.diagnose(e) is None:
                    raise
                store.reset_connection()
                log.warning("could not note this collect run: %s", store.diagnose(e))
        return summary

    def _collect_again(self, error: Exception, row: store.SourceRow, tries: int, fatal: FeedhubError | None) -> bool:
        """A source's thread failed on the store: should the source be collected again now?

        Yes while the store's connection was lost (it may be back: a restart, a failover)
        and tries remain. A full, damaged or vanished store stops the run instead: its
        threads start nothing new, and what runs finishes. Anything else is a bug: raised.
        """
        failure = store.diagnose(error)
        if failure is None:
            raise error
        store.reset_connection()
        if isinstance(failure, StoreUnavailable) and tries < self.STORE_TRIES and fatal is None:
            log.warning("%s: %s; collecting it again", row.key, failure)
            _pause_for_store(tries)
            return True
        self._stopping.set()
        return False

    def _claim(self, keys: list[str] | None, limit: int, only_due: bool,
               fetched_before: datetime | None) -> list[store.SourceRow]:
        def claim() -> list[store.SourceRow]:
            return store.claim_sources(self.owner, self.clock(), self.config.collect.lease_seconds,
                                       only_due=only_due, keys=keys, limit=limit, fetched_before=fetched_before)
        claimed: list[store.SourceRow] = self._store_call(claim)
        return claimed

    def source_config(self, row: store.SourceRow) -> SourceConfig:
        """The claimed source as its stored settings say now (checked against this config's
        taxonomy and editions); SourceError when they no longer fit it."""
        cached = self._configs.get(row.key)
        if cached is not None and cached[0] == row.settings:
            return cached[1]
        if row.settings is None:
            try:
                sc = self.config.source(row.key)
            except KeyError:
                raise SourceError("the source has no settings in the store; run `feedhub init`") from None
        else:
            try:
                sc = check_source(json.loads(row.settings), self.config)
            except ConfigError as e:
                error = SourceError(f"its settings no longer fit {self.config.path.name}: " + "; ".join(e.problems))
                error.kind = "settings"
                raise error from None
        self._configs[row.key] = (row.settings, sc)
        return sc

    def _store_call(self, call: Callable[[], Any]) -> Any:
        """Run a store call of the collector's own thread, trying again (a few times, waiting
        longer each time) while the store's connection is lost; other failures raise as our
        errors: StoreFull, StoreDamaged, StoreUnavailable."""
        for attempt in range(1, self.STORE_TRIES + 1):
            try:
                return call()
            except Exception as e:
                failure = store.diagnose(e)
                if failure is None:
                    raise
                store.reset_connection()
                if not isinstance(failure, StoreUnavailable) or attempt == self.STORE_TRIES:
                    raise failure from e
                log.warning("%s; trying again", failure)
                _pause_for_store(attempt)
        raise AssertionError("unreachable")

    def _flush(self) -> None:
        """Write the deferred records of a batch in one transaction."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if not pending:
            return

        def write() -> None:
            with self._writing():
                _Record.write_all(pending, self.config.collect.fetch_log_keep)
        try:
            self._store_call(write)
        except BaseException:
            with self._pending_lock:  # nothing was written: keep them for the next try
                self._pending[:0] = pending
            raise

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction. On SQLite this process's threads take turns on a Python lock
        first: SQLite's own busy handler makes a waiting writer sleep and poll, and the write
        lock then sits idle between one writer's commit and the next one's wake-up."""
        if self._sqlite:
            with self._write_lock, store.write_transaction():
                yield
        else:
            with store.write_transaction():
                yield

    def _in_thread(self, row: store.SourceRow) -> SourceOutcome:
        # peewee keeps one connection per thread; this thread's stays open for the next source.
        store.connect()
        started, t0 = self.clock(), time.monotonic()
        try:
            sc = self.source_config(row)
        except SourceError as e:
            log.warning("%s: %s", row.key, e)
            return self._record_failure(row, started, t0, e, None)
        return self.collect_source(row, sc)

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[None]:
        """At most collect.per_host fetches to one host at a time."""
        host = self._host_of.get(url)
        if host is None:
            host = self._host_of[url] = urlsplit(url).hostname or ""
        with self._hosts_lock:
            slot = self._hosts[host]
        with slot:
            yield

    def collect_source(self, row: store.SourceRow, sc: SourceConfig) -> SourceOutcome:  # noqa: C901
        """Fetch, parse, normalise and store one claimed source; never raises for a bad source.

        (One piece on purpose: claim -> fetch -> parse -> write, with each way a source can
        fail handled where it happens; issue 12 plans to move the writing to the store.)"""
        started = self.clock()
        t0 = time.monotonic()
        url = row.fetch_url or sc.url
        result: FetchResult | None = None
        try:
            self._check_stopping()
            with self._host_slot(url):
                result = self.fetcher.fetch(url, local_path=sc.local_path, etag=row.etag,
                                            last_modified=row.last_modified)
            if result.not_modified:
                return self._record_cheaply(*self._success(row, started, t0, "not-modified", result))
            outcome = self._ingest(row, sc, result, started, t0, "ok")
            if outcome.outcome == "ok" and result.body is not None:
                body, headers, url = result.body, result.headers, result.url  # (what the call needs)
                self._store_call(lambda: self.subscriptions.want(row.id, body, headers, url, started))
            return outcome
        except ClaimLost as e:
            # Not ours any more: the source's health and log are the other collector's to write.
            log.warning("%s: %s", sc.id, e)
            return SourceOutcome(row.key, "error", 0, 0, result.status if result else None, str(e),
                                 int((time.monotonic() - t0) * 1000), e.kind)
        except _Stopped:
            raise
        except SourceError as e:
            log.warning("%s: %s", sc.id, e)
            status = getattr(e, "status", None) or (result.status if result else None)
            return self._record_failure(row, started, t0, e, status)
        except Exception as e:  # a bug on one hostile feed must not stop the others
            if store.diagnose(e) is not None:
                raise  # the store failed, not the source: the run decides (retry, or stop)
            log.exception("%s: unexpected error", sc.id)
            error = SourceError(describe_failure(e))
            error.kind = "internal"
            return self._record_failure(row, started, t0, error, result.status if result else None)

    def _ingest(self, row: store.SourceRow, sc: SourceConfig, result: FetchResult, started: datetime, t0: float,
                label: str) -> SourceOutcome:
        """Parse, normalise and store a body (fetched, or delivered by a hub: ``label`` "pushed")
        for a claimed source; raises what collect_source handles."""
        assert result.body is not None
        digest = hashlib.sha256(result.body).hexdigest()
        if digest == row.content_hash:
            return self._record_cheaply(*self._success(row, started, t0, "unchanged", result))
        self._check_stopping()
        output = self.pool.run(ParseJob(
            body=result.body, url=result.url, content_type=result.headers.get("Content-Type"),
            source=sc, now=started, id_rule=row.id_rule,
            previous=store.previous_ids(row) if row.id_rule == "guid" else {}))
        for w in output.warnings:
            log.warning("%s: %s", sc.id, w)
        fetched = result
        logs: list[_Record] = []  # the fetch log of this write, kept once it has committed

        def write() -> SourceOutcome:
            logs.clear()
            if not store.holds_claim(row.id, self.owner):
                raise ClaimLost(
                    f"another collector took this source over while this one was still working on it "
                    f"(the {self.config.collect.lease_seconds} s claim ran out); it wrote nothing, and "
                    "the other collector's result stands")
            extra: dict[str, object] = {}
            rekeyed: set[str] = set()
            if output.id_rule != row.id_rule:
                log.warning("%s: %s", sc.id, output.id_rule_reason)
                rekeyed = store.rekey_source(row, output.id_rule, started, self.parents)
                extra = dict(id_rule=output.id_rule, id_rule_reason=output.id_rule_reason)
            saved = store.save_entries(row, self._within_retention(output.entries, started), started,
                                       self.parents,
                                       max_revisions=self.config.collect.max_revisions,
                                       ignore_updates=sc.ignore_updates, mirrors=self._mirror_ids(sc),
                                       related=related_policy(sc, self.config))
            if saved.ignored:
                log.info("%s: %d changed entr(y/ies) not applied (ignore_updates or the "
                         "revision cap)", sc.id, saved.ignored)
            topics = set(saved.topics) | rekeyed | self._retract_deleted(row, output.deleted, started)
            topics |= store.refile_by_rules(row, output.filtered, [e.guid for e in output.entries], started,
                                            self.parents)
            record, outcome = self._success(
                row, started, t0, label, fetched, new=saved.new, updated=saved.updated,
                extra=dict(content_hash=digest, entries_seen=len(output.entries),
                           warnings="\n".join(output.warnings)[:4000] or None,
                           feed_title=plain_text(output.title) or None,
                           feed_link=canonical_link(output.link), feed_ttl=output.ttl, **extra))
            # The source's new validators and hash commit with its entries; its fetch-log
            # row and metrics go with the batch's once this has committed.
            record.settle()
            store.update_sources([(row.id, record.fields)], self.owner)
            store.keep_refreshes([row.id])
            logs.append(record.log_only())
            return dataclasses.replace(outcome, topics=frozenset(topics))

        # Entries and the source's new validators and hash commit together, so a
        # crash leaves either both or neither: never entries re-fetched as "unchanged".
        for attempt in range(1, 4):
            self._check_stopping()
            try:
                outcome = self._group.run(write)
                with self._pending_lock:
                    self._pending += logs
                return outcome
            except Exception as e:
                # The transaction was rolled back whole; PostgreSQL may ask for a retry.
                if attempt == 3 or not store.is_transient(e):
                    raise
                log.info("%s: %s; retrying the write", sc.id, str(e).splitlines()[0])
        raise AssertionError("unreachable: the last try returns or raises")

    def _check_stopping(self) -> None:
        if self._stopping.is_set():
            raise _Stopped()

    def _mirror_ids(self, sc: SourceConfig) -> list[int]:
        """Store ids of the sources configured as mirrors of ``sc`` (in either direction)."""
        keys = set(sc.mirrors) | {key for key, mirrors in self._mirrors.items() if sc.id in mirrors}
        if not keys:
            return []
        return store.source_ids(sorted(keys))

    def _retract_deleted(self, row: store.SourceRow, deleted: list[tuple[str, str | None]],
                         when: datetime) -> set[str]:
        """Entries the source deleted (Atom tombstones) become our tombstones too."""
        topics: set[str] = set()
        for ref, comment in deleted:
            ids = store.entry_ids(row.id, [ref])
            topics |= store.retract(ids, when, comment or f"deleted by {row.name}", self.parents)
        return topics

    # --- recording ------------------------------------------------------------------

    def _success(self, row: store.SourceRow, started: datetime, t0: float, outcome: str, result: FetchResult,
                 new: int = 0, updated: int = 0,
                 extra: dict[str, object] | None = None) -> tuple[_Record, SourceOutcome]:
        """What a successful fetch records on its source (validators, health, schedule, log,
        metrics), and its outcome; the caller decides when it is written."""
        cfg = self.config.collect
        duration = time.monotonic() - t0
        extra = extra or {}
        ttl = cast("int | None", extra.get("feed_ttl", row.feed_ttl))
        interval = schedule.success_interval(
            row.interval, cfg, ttl_minutes=ttl, breaking=row.breaking,
            max_age=schedule.max_age_seconds(result.headers.get("Cache-Control")),
            recent=self._recent_dates(row) if cfg.adaptive else ())
        if row.id in self._pushed_sources():
            # Its content arrives by push: polling is only the safety net.
            interval = max(interval, self.config.websub.push_poll_interval)
        fields: dict[str, object] = dict(
            last_fetched_at=started, last_success_at=started, last_status=result.status,
            last_error=None, last_error_kind=None, consecutive_failures=0,
            next_due_at=started + timedelta(seconds=schedule.jittered(interval, cfg)),
            etag=result.etag, last_modified=result.last_modified, lease_owner=None, lease_until=None,
            **extra)
        record = _Record(row, fields, self.owner, self._log_row(row, started, duration, result.status, outcome,
                                                                len(result.body or b""), new, updated, None, None),
                         redirect=(result.permanent_redirect, started, cfg.redirect_confirmations))
        return record, SourceOutcome(row.key, outcome, new, updated, result.status, None, int(duration * 1000))

    def _record_cheaply(self, record: _Record, outcome: SourceOutcome) -> SourceOutcome:
        """A fetch that changed nothing (304, same body) is written with the batch (see _flush);
        one that saw a permanent redirect now, since the redirect count depends on what is stored."""
        redirect = record.redirect[0] if record.redirect else None
        if redirect is None and not record.row.redirect_target:
            with self._pending_lock:
                self._pending.append(record)
        else:
            with self._writing():
                record.write(self.config.collect.fetch_log_keep)
        return outcome

    def _record_failure(self, row: store.SourceRow, started: datetime, t0: float, error: SourceError,
                        status: int | None) -> SourceOutcome:
        cfg = self.config.collect
        duration = time.monotonic() - t0
        failures = row.consecutive_failures + 1
        retry_after = error.retry_after if isinstance(error, FetchError) else None
        delay = schedule.failure_delay(failures, row.interval, cfg, retry_after)
        if retry_after is None:
            delay = schedule.jittered(delay, cfg)
        fields: dict[str, object] = dict(
            last_fetched_at=started, last_status=status, last_error=str(error),
            last_error_kind=error.kind, consecutive_failures=failures,
            next_due_at=started + timedelta(seconds=delay), lease_owner=None, lease_until=None)
        if error.kind == "gone":
            # 410 is the publisher saying "never again": stop until an admin changes the URL.
            fields["disabled_reason"] = str(error)
            fields["next_due_at"] = None
        with self._writing():
            _Record(row, fields, self.owner, self._log_row(row, started, duration, status, "error", 0, 0, 0,
                                               error.kind, str(error))).write(cfg.fetch_log_keep)
        return SourceOutcome(row.key, "error", 0, 0, status, str(error), int(duration * 1000), error.kind)

    @staticmethod
    def _log_row(row: store.SourceRow, started: datetime, duration: float, status: int | None,
                 outcome: str, size: int, new: int, updated: int, kind: str | None,
                 message: str | None) -> tuple[tuple[object, ...], dict[tuple[str, str], float]]:
        """The fetch-log row and the metric increments for one fetch."""
        log_row = (row.id, started, int(duration * 1000), status, outcome, size, new, updated, kind, message)
        bucket = DURATION_BUCKETS[bisect.bisect_left(DURATION_BUCKETS, duration)] \
            if duration <= DURATION_BUCKETS[-1] else "+Inf"
        labels = f"outcome={outcome},kind={kind}" if kind else f"outcome={outcome}"
        deltas = {("fetches", labels): 1, ("fetch_duration_bucket", f"le={bucket}"): 1,
                  ("fetch_duration_sum", ""): duration}
        if new:
            deltas[("entries", "kind=new")] = new
        if updated:
            deltas[("entries", "kind=updated")] = updated
        return log_row, deltas

    def _within_retention(self, entries: list[Any], now: datetime) -> list[Any]:
        """The entries retention would not remove at once ([store] keep_days): an archive feed's
        old items must not come back after every prune. Kept dossiers' entries are kept."""
        if not self.config.store.keep_days:
            return entries
        cutoff = now - timedelta(days=self.config.store.keep_days)
        keep = {slug for slug, cov in self.config.taxonomy.coverage.items() if cov.keep}
        return [e for e in entries if e.published >= cutoff or keep.intersection(e.coverage)]

    def maintain(self, now: datetime) -> store.PruneReport | None:
        """Routine upkeep, hourly under run_forever: retention (when [store] keep_days is set),
        then the planner's statistics."""
        report = self._store_call(lambda: prune(self.config, now))
        if report is not None and report.removed:
            log.info("retention: removed %d entr(y/ies) published before %s (%d tombstones), %d kept by "
                     "dossiers", report.removed, report.cutoff.isoformat(), report.tombstones, report.kept)
        self._store_call(store.analyze)
        return report

    def _pushed_sources(self) -> set[int]:
        """Sources whose content arrives by push (read at most every few seconds)."""
        at, ids = self._pushed
        if time.monotonic() - at > 5:
            ids = store.websub.pushed_sources(store.utcnow())
            self._pushed = (time.monotonic(), ids)
        return ids

    def take_deliveries(self) -> int:
        """Store what hubs delivered (web.subscriber kept it): each body goes through the same
        parse, normalise and store path as a fetched one, under the source's claim. A source
        that another collector is fetching right now keeps its delivery for the next look.
        Returns how many deliveries were done with."""
        done = 0
        for delivery in store.websub.pending():
            outcome = self._take_delivery(delivery)
            if outcome is None:
                continue
            store.websub.delivered(delivery.id, outcome, store.utcnow())
            done += 1
        if done:
            self._flush()  # their fetch-log rows, and what changed nothing: this is their batch
        return done

    def _take_delivery(self, delivery: store.websub.Delivery) -> str | None:
        key = delivery.source_key
        if key is None or not delivery.source_live:
            return "not stored: the source is disabled or gone"
        rows = store.claim_sources(self.owner, self.clock(), self.config.collect.lease_seconds,
                                   only_due=False, keys=[key], limit=1)
        if not rows:
            return None  # being fetched right now: the next look takes it
        row = rows[0]
        sc = self.source_config(row)
        started, t0 = self.clock(), time.monotonic()
        pushed = FetchResult(url=delivery.topic, status=200, body=delivery.body,
                             headers={"Content-Type": delivery.content_type or ""},
                             etag=row.etag, last_modified=row.last_modified)
        try:
            outcome = self._ingest(row, sc, pushed, started, t0, "pushed")
        except SourceError as e:
            # The hub's content is bad, not the source's feed: said on the subscription, and
            # the source is polled as before.
            store.release_sources([row.id])
            log.warning("%s: content delivered by its hub not stored: %s", sc.id, e)
            store.websub.reject(delivery.subscription_id, f"delivered content not stored: {e}")
            return f"not stored: {e}"
        except Exception:
            store.release_sources([row.id])
            raise
        if outcome.topics and self.on_topics:
            self.on_topics(set(outcome.topics))
        return f"{outcome.outcome}: {outcome.new} new, {outcome.updated} updated"

    def run_push(self, stop: threading.Event, tick: float = 0.1, upkeep: float = 5.0) -> None:
        """Until ``stop``: store hub deliveries within ``tick`` seconds of their arrival, and keep
        the subscriptions (ask, renew, unsubscribe) every ``upkeep`` seconds. Runs beside
        run_forever, whose collect cycles can be long."""
        looked = 0.0
        while not stop.wait(tick):
            try:
                if store.websub.any_pending():
                    self.take_deliveries()
                if time.monotonic() - looked >= upkeep:
                    looked = time.monotonic()
                    self.subscriptions.tick(store.aware(self.clock()))
            except Exception as e:  # a store hiccup: the next tick tries again
                failure = store.diagnose(e)
                if failure is None:
                    log.exception("WebSub upkeep failed")
                else:
                    store.reset_connection()
                    log.error("WebSub upkeep stopped: %s; trying again", failure)
                stop.wait(1.0)

    def _recent_dates(self, row: store.SourceRow) -> list[datetime]:
        return store.recent_published(row.id, 20)

    def lift_embargoes(self, since: datetime, until: datetime) -> set[str]:
        """Tell the hubs (on_topics) about feeds whose embargoed entries came out since the last
        look; returns those feeds."""
        def lift() -> set[str]:
            with self._writing():
                return store.lift_embargoes(list(self.config.editions), since, until, self.parents)
        topics: set[str] = self._store_call(lift)
        if topics and self.on_topics:
            self.on_topics(topics)
        return topics

    def run_forever(self, stop: threading.Event, tick: float = 5.0,
                    progress: Callable[[SourceOutcome], None] | None = None) -> None:
        """Collect due sources until ``stop`` is set; sleeps in short ticks so stop is prompt.
        Each tick also announces the feeds whose embargoed entries came out meanwhile. Hub
        deliveries and subscriptions are kept by a thread of their own (run_push)."""
        # A long-running collector starts its parsers now: the first pushed item (or poll) must
        # not wait the second a spawned parser takes to import everything.
        self.pool.start()
        push = threading.Thread(target=self.run_push, args=(stop,), name="websub-in", daemon=True)
        push.start()
        looked = store.aware(self.clock())
        maintained = None
        while not stop.is_set():
            try:
                now = store.aware(self.clock())
                self.lift_embargoes(looked, now)
                looked = now
                if maintained is None or now - maintained >= MAINTAIN_EVERY:
                    maintained = now
                    self.maintain(now)
                summary = self.collect(only_due=True, progress=progress)
                if summary.outcomes:
                    log.info("collected %d source(s): %d new, %d updated, %d failed",
                             len(summary.outcomes), summary.new, summary.updated, len(summary.failed))
            except Exception as e:  # the loop must survive a store hiccup; the next tick retries
                failure = store.diagnose(e)
                if failure is None:
                    log.exception("collect cycle failed")
                else:
                    store.reset_connection()
                    log.error("collect cycle stopped: %s; trying again in %g s", failure, tick)
            stop.wait(tick)
