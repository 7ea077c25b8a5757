"""What a failure says about the store itself (lost, full, damaged), SQLite's integrity
check, and consistent backups."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import peewee as pw

from ..errors import StoreDamaged, StoreError, StoreFull, StoreUnavailable
from .connection import close_connection, db, redact_url, utcnow

log = logging.getLogger("feedhub.store")


def diagnose(error: BaseException) -> StoreError | StoreFull | None:
    """What a failure says about the store itself, as one of our errors with a sentence a
    person can act on; None when ``error`` is not about the store (a bug, a constraint).

    StoreFull: no room left (SQLite SQLITE_FULL, PostgreSQL "could not extend file");
    StoreDamaged: the file is corrupt; StoreUnavailable: the connection was lost or
    could not be made, or the store stayed locked. The cause may sit deep in the
    chain: a failed rollback ("cannot rollback - no transaction is active") hides it.
    """
    where = redact_url(getattr(db.obj, "feedhub_url", "") or "the store")
    for e in _chain(error):
        if isinstance(e, (StoreError, StoreFull)):
            return e
        if isinstance(e, (pw.IntegrityError, pw.ProgrammingError, pw.NotSupportedError)):
            return None
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        lowered = text.lower()
        if "disk is full" in lowered or "no space left" in lowered or "could not extend file" in lowered:
            return StoreFull(f"{text}: {where}; free disk space (or raise the quota), then run again: "
                             "nothing was lost, and the next run collects what this one could not")
        if "disk i/o error" in lowered and _sqlite_disk_full():
            # A full disk, met while creating the WAL index or journal, shows as an I/O error.
            return StoreFull(f"{text}: the disk holding {where} is full; free disk space, then run "
                             "again: nothing was lost, and the next run collects what this one could not")
        if "malformed" in lowered or "not a database" in lowered or "database corrupt" in lowered:
            return StoreDamaged(f"{text}: {where} is damaged; stop feedhub and restore the last backup "
                                "(see the README, Failure modes)")
    for e in _chain(error):
        if isinstance(e, (pw.OperationalError, pw.InterfaceError)) or type(e).__name__ in (
                "OperationalError", "InterfaceError"):
            text = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return StoreUnavailable(f"{where} is unavailable: {text}")
    return None


def _sqlite_disk_full() -> bool:
    """Is the disk holding the SQLite store (about) full? Under 1 MiB free counts."""
    database = db.obj
    if not isinstance(database, pw.SqliteDatabase) or database.database == ":memory:":
        return False
    try:
        stat = os.statvfs(Path(database.database).resolve().parent)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 1 << 20


def _chain(error: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


#: feedhub_meta's row holding when the last integrity check that passed ended (naive UTC, ISO)
_CHECKED_KEY = "integrity_checked_at"


def check_integrity(max_age: float = 0.0) -> bool:
    """Raise StoreDamaged when the store's file is corrupt (SQLite's quick_check: every page
    read once, so its cost grows with the store: a quarter of a second at 90 MB, seconds at a
    million entries). PostgreSQL checks its own pages.

    ``max_age``: skip the check when one that passed less than this many seconds ago is on
    record in the store, whichever process ran it (each pass is recorded). A damage that
    happens after that pass is still found: by the next check that falls due, and by SQLite
    itself when a read touches it. Returns whether the check ran.
    """
    if not isinstance(db.obj, pw.SqliteDatabase) or db.obj.database == ":memory:":
        return False
    from .schema import MetaInfo  # (schema reads diagnose from here)

    try:
        if max_age > 0:
            row = MetaInfo.get_or_none(MetaInfo.key == _CHECKED_KEY)
            if row is not None and _age(row.value, utcnow()) < max_age:
                return False
        rows = [r[0] for r in db.obj.execute_sql("PRAGMA quick_check(5)").fetchall()]
    except Exception as e:
        raise diagnose(e) or StoreError(str(e)) from e
    if rows != ["ok"]:
        raise StoreDamaged(f"{redact_url(db.obj.feedhub_url)} is damaged ({'; '.join(rows)}); stop feedhub and "
                           "restore the last backup (see the README, Failure modes)")
    try:
        MetaInfo.put(_CHECKED_KEY, utcnow().isoformat())
    except Exception as e:  # a full disk, a long write lock: the next start just checks again
        log.info("could not record the integrity check that passed: %s", e)
    return True


def _age(recorded: str, now: datetime) -> float:
    """Seconds since a recorded instant; infinite when it is unreadable or in the future (a
    clock set back, a copied file): such a record never spares a check."""
    try:
        age = (now - datetime.fromisoformat(recorded)).total_seconds()
    except ValueError:
        return float("inf")
    return age if age >= 0 else float("inf")


class IntegrityWatch:
    """``check_integrity`` at most every ``every`` seconds, for a health endpoint polled often.

    The first call checks as a command's start does: it counts a pass on record within
    ``start_max_age`` or ``every`` seconds, whichever is longer (the serving command's own start
    has just checked or found one),
    and waits for the check when none is. Later checks run in a thread of their own, callers
    getting the last result meanwhile: at a million entries a check reads a 3 GB file for
    seconds, longer than a load balancer waits for a health probe. A check another process
    passed within ``every`` seconds counts (each serving process has a watch)."""

    def __init__(self, every: float = 3600.0, clock: Callable[[], float] = time.monotonic,
                 start_max_age: float = 0.0):
        self.every = every
        self.clock = clock
        self.start_max_age = max(every, start_max_age)
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._failure: StoreError | None = None
        self._running: threading.Thread | None = None

    def check(self) -> None:
        """Raise the last check's StoreDamaged, starting a new check first if one is due."""
        with self._lock:
            checked_at = self._checked_at
            first = checked_at is None
            due = checked_at is None or self.clock() - checked_at >= self.every
            if due and self._running is None:
                self._running = threading.Thread(target=self._run, args=(self.start_max_age if first else self.every,),
                                                 name="integrity-check", daemon=True)
                self._running.start()
            running = self._running
        if first and running is not None:
            running.join()
        if self._failure is not None:
            raise self._failure

    def _run(self, max_age: float) -> None:
        failure: StoreError | None = self._failure
        try:
            check_integrity(max_age=max_age)
            failure = None
        except StoreDamaged as e:
            failure = e
        except StoreError as e:  # the store away: /healthz's live reads say so; checked again when due
            log.warning("integrity check did not run: %s", e)
        finally:
            close_connection()  # this thread's own
            with self._lock:
                self._failure, self._checked_at, self._running = failure, self.clock(), None


def backup_sqlite(target: Path) -> int:
    """Copy the open SQLite store to ``target`` with SQLite's online backup API: a consistent
    snapshot while collectors keep writing. Written beside ``target`` and renamed into place,
    so a failed backup never leaves a half file under the final name. Returns its size."""
    import sqlite3

    database = db.obj
    if not isinstance(database, pw.SqliteDatabase):
        raise StoreError("feedhub backup copies SQLite stores only; for PostgreSQL use pg_dump, e.g. "
                         f"pg_dump --format=custom --file=FILE '{redact_url(database.feedhub_url)}'")
    target = target.resolve()
    partial = target.with_name(f".{target.name}.partial")
    source = sqlite3.connect(database.database)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.execute("PRAGMA busy_timeout = 10000")
            source.backup(copy)  # all pages in one step, under one read transaction: consistent
            rows = [r[0] for r in copy.execute("PRAGMA quick_check").fetchall()]
            if rows != ["ok"]:
                raise StoreDamaged(f"the copy failed its check ({'; '.join(rows)}); the store itself may be "
                                   "damaged: run `feedhub init` to see")
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            copy.close()
        partial.replace(target)
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise diagnose(e) or StoreError(f"backup to {target} failed: {e}") from e
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    return target.stat().st_size
