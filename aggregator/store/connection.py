"""Opening the store and talking to it: the bound database, PostgreSQL that survives lost
connections, write transactions, and the few helpers every SQL statement here uses."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import peewee as pw

from ..errors import StoreError

if TYPE_CHECKING:  # (schema imports this module)
    from .schema import BaseModel


db = pw.DatabaseProxy()


def utcnow() -> datetime:
    """Naive UTC now: the store keeps every instant as naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@overload
def aware(value: datetime | str) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | str | None) -> datetime | None:
    """A stored instant as the rest of feedhub sees it: aware UTC. The store keeps naive UTC;
    SQLite gives text for what plain SQL and aggregates read, PostgreSQL a datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def stored(value: datetime) -> datetime:
    """An instant as the store keeps and compares it: naive UTC (the inverse of ``aware``)."""
    return value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)


def naive(value: datetime | str) -> datetime:
    """A stored instant read with plain SQL (SQLite gives text), as the store compares them: naive UTC."""
    return stored(aware(value))


class PostgresDatabase(pw.PostgresqlDatabase):
    """PostgreSQL that replaces a lost connection by itself, where that cannot lose work.

    Each thread keeps its connection from request to request and source to source.
    A restart, a failover or ``pg_terminate_backend`` kills those connections while
    they sit idle, and psycopg2 only finds out on the next statement; without this,
    every thread would fail for good with "connection already closed". A connection
    known to be dead is replaced before a statement runs; a statement that finds it
    dead is run again on a new connection only when nothing can have been lost:
    outside a transaction, and only a read or a BEGIN (an autocommit write might have
    landed before the connection broke, so it is reported, never repeated).
    """

    def __init__(self, database: str, **kwargs: object):
        # A server that vanished without closing its sockets (a failover, a cut link) must not
        # hold a thread forever at connect.
        kwargs.setdefault("connect_timeout", 10)
        super().__init__(database, **kwargs)

    def _initialize_connection(self, conn: Any) -> None:
        super()._initialize_connection(conn)
        # Every statement feedhub runs is a short index walk. At a million entries the planner
        # guesses that a word it has no statistics for matches a thousand rows and plans a
        # parallel sort; starting the parallel worker took 2.6 ms of a 4.7 ms search that found
        # nothing (0.3 ms without), and made that search 2.85x slower at 1M than at 10k.
        with conn.cursor() as cur:
            cur.execute("SET max_parallel_workers_per_gather = 0")

    def execute_sql(self, sql: str, params: object = None) -> object:
        self._revive()
        try:
            return super().execute_sql(sql, params)
        except (pw.OperationalError, pw.InterfaceError):
            if self.in_transaction() or self.is_connection_usable() or not _is_read(sql):
                raise
            self._drop_connection()
            return super().execute_sql(sql, params)

    def begin(self, *args: object, **kwargs: object) -> None:
        self._revive()
        try:
            super().begin(*args, **kwargs)
        except (pw.OperationalError, pw.InterfaceError):
            if self.is_connection_usable():
                raise
            self._drop_connection()
            super().begin(*args, **kwargs)

    def _revive(self) -> None:
        if not self.is_closed() and not self.in_transaction() and not self.is_connection_usable():
            self._drop_connection()

    def _drop_connection(self) -> None:
        try:
            self.close()
        except Exception:  # closing a dead connection may fail too; forget it either way
            self.dispose()


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("SELECT", "PRAGMA") or sql.lstrip()[:4].upper() == "SHOW"


def reset_connection() -> None:
    """Forget this thread's connection if it is broken, so its next use opens a new one.

    Called after a failure: a transaction that failed with its connection already
    ended is closed, not rolled back (peewee's rollback would fail the same way).
    """
    database = db.obj
    if database is None or database.is_closed():
        return
    if isinstance(database, PostgresDatabase) and database.is_connection_usable():
        return
    if isinstance(database, pw.SqliteDatabase):
        return  # a SQLite connection outlives any error of its file; nothing to reset
    while database.in_transaction():
        database.pop_transaction()
    try:
        database.close()
    except Exception:
        database.dispose()


def open_database(url: str) -> pw.Database:
    """Open (without connecting) the database behind ``url`` and bind the models to it.

    Opening the URL the models are already bound to returns that same database:
    a second Database object would pull the proxy away from threads that are
    mid-transaction on the first (``feedhub run`` collects while the web app starts).
    """
    if db.obj is not None and getattr(db.obj, "feedhub_url", None) == url:
        return db.obj
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        import sqlite3

        returning = sqlite3.sqlite_version_info >= (3, 35)
        database: pw.Database = pw.SqliteDatabase(path, returning_clause=returning, pragmas={
            # WAL lets the web layer read while a collector writes.
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": 10_000,
            "synchronous": "normal",
            # A commit that fills the WAL past this many pages copies them into the database file
            # (a checkpoint) and syncs it. At a million entries a save of 100 entries dirties
            # pages all over a 3 GB file; with SQLite's 1,000 every other save paid for a
            # checkpoint. Ten times as many pages per checkpoint means a tenth of the syncs, and a
            # page written by many saves (the newest end of a busy feed) copied once: 12 rounds of
            # saving and retracting 100 entries at 1M went from 1.48x their cost at 10k to 1.26x
            # (README, bench/scale). The WAL grows to 40 MiB between checkpoints.
            "wal_autocheckpoint": 10_000,
        })
    else:
        # Imported here: playhouse.db_url pulls in every backend peewee has, which a command on
        # the default SQLite store would load at each start for nothing.
        from playhouse.db_url import connect as url_connect
        from playhouse.db_url import register_database

        register_database(PostgresDatabase, "postgres", "postgresql")
        try:
            database = url_connect(url)
        except Exception as e:  # unknown scheme, bad URL syntax
            raise StoreError(f"cannot open database {redact_url(url)}: {e}") from e
    database.feedhub_url = url
    db.initialize(database)
    return database


def is_transient(error: Exception) -> bool:
    """A failure the database asks us to retry: a deadlock or serialization failure (PostgreSQL)."""
    code = getattr(getattr(error, "orig", None) or error.__cause__ or error, "pgcode", None)
    return code in ("40P01", "40001") or "deadlock detected" in str(error)


def write_transaction() -> pw._atomic:
    """A transaction that takes SQLite's write lock at BEGIN.

    A deferred SQLite transaction that reads and then writes cannot wait for a
    concurrent writer (it fails at once with "database is locked"); BEGIN
    IMMEDIATE makes it queue on the busy timeout instead. PostgreSQL needs no hint.
    """
    if isinstance(db.obj, pw.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


def placeholders(count: int) -> str:
    """``count`` bound-parameter marks for the open database, comma-separated ("?, ?, ?")."""
    return ", ".join([db.obj.param] * count)


def insert_rows(table: type[BaseModel], columns: tuple[str, ...], rows: list[tuple[object, ...]],
                suffix: str = "", returning: str = "") -> list[tuple[Any, ...]]:
    """Insert plain rows with multi-row INSERTs written directly, returning ``returning`` columns.

    The write path inserts thousands of rows per collect; building them as peewee
    queries cost more than the database spent storing them. Values must already be
    what the column stores (ints, text, bools, naive UTC datetimes, None).
    """
    if not rows:
        return []
    database = db.obj
    one = f"({placeholders(len(columns))})"
    head = f'INSERT INTO "{table._meta.table_name}" (' + ", ".join(f'"{c}"' for c in columns) + ") VALUES "
    tail = suffix + (f" RETURNING {returning}" if returning else "")
    out: list[tuple[object, ...]] = []
    per = max(1, 900 // len(columns))  # under SQLite's bound-parameter limit
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        cursor = database.execute_sql(head + ", ".join([one] * len(chunk)) + tail,
                                      [v for row in chunk for v in row])
        if returning:
            out += cursor.fetchall()
    return out


def connect() -> None:
    """Open this thread's connection if it is not open (each thread keeps its own)."""
    db.connect(reuse_if_open=True)


def close_connection() -> None:
    """Close this thread's connection, if any (before a fork: a child must open its own)."""
    database = db.obj
    if database is None or database.is_closed():
        return
    try:
        database.close()
    except Exception:  # a dead connection may fail to close; forgetting it is enough
        database.dispose()


def savepoint() -> pw._atomic:
    """A savepoint inside the caller's transaction (a transaction outside one)."""
    return db.atomic()


def is_sqlite() -> bool:
    """Is the bound store SQLite (one writer at a time)?"""
    return isinstance(db.obj, pw.SqliteDatabase)
