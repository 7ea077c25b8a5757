"""CPU-bound work (parse + normalise) in a pool of processes with a wall-clock limit per job.

Parsing hostile feeds can take unbounded time or memory; a job that overruns
its limit gets its worker process killed and replaced, and the source records
the failure, instead of the collector hanging. The standard library's
ProcessPoolExecutor cannot kill one job, so the pool is ours: one pipe per
worker, workers started on demand.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any

from .config import SourceConfig
from .errors import ParseError, SourceError, describe_failure
from .model import Entry
from .normalize import Context, choose_id_rule, normalize_feed

log = logging.getLogger("feedhub.parse")


@dataclass(frozen=True)
class ParseJob:
    body: bytes
    url: str
    content_type: str | None
    source: SourceConfig
    now: datetime
    #: the source's identity rule now, and its stored entries' link -> guid (to see guids change)
    id_rule: str = "guid"
    previous: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ParseOutput:
    entries: list[Entry]
    warnings: list[str]
    title: str | None
    link: str | None
    ttl: int | None
    #: guids the source says it deleted, with its comment
    deleted: list[tuple[str, str | None]] = field(default_factory=list)
    #: the identity rule used, and why it changed (None: unchanged)
    id_rule: str = "guid"
    id_rule_reason: str | None = None
    #: ids of entries in the feed that the source's keep/drop rules exclude
    filtered: list[str] = field(default_factory=list)


def parse_and_normalize(job: ParseJob, ctx: Context) -> ParseOutput:
    """The work itself: bytes -> normalised entries (pure; runs in a worker process)."""
    # Here, not at the top: the collector's own process never parses, and the parsers'
    # imports (feedparser, lxml) are a tenth of a warm `feedhub collect`. Workers import them
    # before they say they are ready (_worker_main).
    from .parse import parse_feed

    feed = parse_feed(job.body, job.url, job.content_type)
    rule, reason = choose_id_rule(feed, job.source, job.id_rule, job.previous)
    filtered: list[str] = []
    entries, warnings = normalize_feed(feed, job.source, ctx, job.now, rule, dropped=filtered)
    return ParseOutput(entries=entries, warnings=warnings, title=feed.title, link=feed.link, ttl=feed.ttl,
                       deleted=feed.deleted, id_rule=rule, id_rule_reason=reason, filtered=filtered)


DEFAULT_TARGET = "aggregator.work:parse_and_normalize"


def _resolve(target: str) -> Callable[[ParseJob, Context], ParseOutput]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(conn: Connection, ctx: Context, target: str) -> None:
    # Ctrl-C reaches the whole process group; stopping is the parent's decision (it closes
    # the pipe or kills us), so a worker never prints a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        importlib.import_module("aggregator.parse")  # before the first ping: a job's clock is the job's
        _serve_jobs(conn, ctx, _resolve(target))
    except (EOFError, OSError):
        pass  # the parent is gone (killed, or stopped without closing us): leave quietly


def _serve_jobs(conn: Connection, ctx: Context, work: Callable[[ParseJob, Context], ParseOutput]) -> None:
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        if job == "ping":  # ParsePool.start: the worker has imported everything and is ready
            conn.send(("pong",))
            continue
        try:
            conn.send(("ok", work(job, ctx)))
        except SourceError as e:
            conn.send(("error", e.kind, str(e)))
        except Exception as e:  # a parser bug on one feed is that feed's failure
            conn.send(("error", "internal", describe_failure(e), f"{type(e).__name__}: {e}"))


#: the signals feedhub's commands turn into an exception (web.cli): Ctrl-C, SIGTERM, SIGHUP
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Hold the stopping signals in this thread while a worker is spawned, and deliver them after.

    Process.start() starts the interpreter first and then writes its start-up message down a
    pipe. A handler raising between the two leaves the child reading a half-sent message, and
    it dies with an EOFError traceback before any of our code runs (seen when `run` was stopped
    while its collector was starting its workers). The spawned child starts with no signal held.
    """
    # Starting multiprocessing's resource tracker unblocks SIGINT and SIGTERM on its way out,
    # which would undo the hold below: start it first (a no-op once it runs).
    resource_tracker.ensure_running()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


class _Worker:
    def __init__(self, mp: Any, ctx: Context, target: str):
        self.conn, child = mp.Pipe()
        self.process = mp.Process(target=_worker_main, args=(child, ctx, target), daemon=True,
                                  name="feedhub-parse")
        with _stop_signals_held():
            self.process.start()
        child.close()
        #: the worker answered a ping: its imports are done, so a job's clock measures the job
        self.ready = False

    def wait_ready(self, timeout: float) -> None:
        """Wait for a new worker to finish starting (a spawned interpreter imports everything
        first, which on a loaded machine can take seconds); ParseError if it never does."""
        if self.ready:
            return
        try:
            self.conn.send("ping")
            if self.conn.poll(timeout) and self.conn.recv() == ("pong",):
                self.ready = True
                return
        except (EOFError, OSError):
            pass
        raise ParseError("a parser process did not start")

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


class ParsePool:
    """Runs ParseJobs in up to ``size`` worker processes, each job limited to ``timeout`` seconds."""

    def __init__(self, ctx: Context, size: int = 0, timeout: float = 30.0, target: str = DEFAULT_TARGET):
        self.ctx = ctx
        self.size = size or os.cpu_count() or 1
        self.timeout = timeout
        self.target = target
        # spawn, not fork: the collector has threads, and forking a threaded process is unsafe.
        self._mp = multiprocessing.get_context("spawn")
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, ParsePool._stop_all, self._all)

    #: seconds a new worker may take to start, apart from (and before) its job's own limit
    START_TIMEOUT = 120.0

    def run(self, job: ParseJob) -> ParseOutput:
        """Run one job; ParseError if it fails, overruns its time or kills its worker.

        The time limit counts the parse alone: a worker that was just started (the
        first job, or the one after a killed worker) finishes starting first.
        """
        worker = self._acquire()
        healthy = False  # a worker that failed in any way is replaced, never reused
        try:
            worker.wait_ready(self.START_TIMEOUT)
            worker.conn.send(job)
            if not worker.conn.poll(self.timeout):
                raise ParseError(f"parsing took longer than {self.timeout:g} s; the parser was stopped")
            reply = worker.conn.recv()
            healthy = True
        except (EOFError, OSError) as e:
            raise ParseError(f"the parser process died ({type(e).__name__}); the feed may be hostile") from e
        finally:
            if healthy:
                self._idle.put(worker)
            else:
                self._replace(worker)
        if reply[0] == "ok":
            return reply[1]
        _, kind, message, *detail = reply
        if detail:  # an unexpected failure: its details go to the log, the sentence to the source
            log.error("parsing %s failed: %s", job.url, detail[0])
        error = ParseError(message)
        error.kind = kind
        raise error

    def start(self) -> None:
        """Start every worker now and wait until each is ready (imports done), instead of on
        first use: a long-running collector pays this once, and a measurement should not."""
        with self._lock:
            fresh = [_Worker(self._mp, self.ctx, self.target) for _ in range(self.size - len(self._all))]
            self._all.extend(fresh)
        for worker in fresh:
            worker.wait_ready(self.START_TIMEOUT)
            self._idle.put(worker)

    def _acquire(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise RuntimeError("parse pool is closed")
            if len(self._all) < self.size:
                worker = _Worker(self._mp, self.ctx, self.target)
                self._all.append(worker)
                return worker
        return self._idle.get()

    def _replace(self, worker: _Worker) -> None:
        """Kill a stuck or dead worker and put a fresh one in its place.

        The replacement goes to the idle queue at once, so a thread waiting
        there for a worker is never left waiting on one that no longer exists.
        """
        worker.stop(kill=True)
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
            if self._closed:
                return
            fresh = _Worker(self._mp, self.ctx, self.target)
            self._all.append(fresh)
        self._idle.put(fresh)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._finalizer()

    @staticmethod
    def _stop_all(workers: list[_Worker]) -> None:
        for w in list(workers):
            w.stop()
        workers.clear()
