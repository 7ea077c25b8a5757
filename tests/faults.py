"""Fault injection for tests: the everyday failures a deployment meets, made on purpose.

- ``KeepAliveServer``: a real HTTP/1.1 server on 127.0.0.1 that keeps connections
  open between requests (as nginx, Apache and every CDN do) and counts them, so a
  test can see a connection being reused, and what a dirty one does to the next
  request.
- ``terminate_backends``: ends PostgreSQL server processes the way an operator's
  ``pg_terminate_backend``, a restart or a failover does.
- ``fill_sqlite`` / ``damage_sqlite``: a SQLite store that has no room left, or
  whose file is corrupted in the middle.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

# --- a keep-alive HTTP server -----------------------------------------------------


@dataclass
class Reply:
    """One canned answer: status, headers and body (sent with its Content-Length)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Route = Reply | Callable[[dict[str, str]], Reply]


class KeepAliveServer:
    """HTTP/1.1 with persistent connections on 127.0.0.1; ``routes`` maps a path to a Reply.

    ``connections`` counts the TCP connections accepted and ``requests`` lists the
    paths asked for, in order, so a test sees whether the client reused a connection.
    """

    def __init__(self, routes: dict[str, Route] | None = None):
        self.routes: dict[str, Route] = dict(routes or {})
        self.connections = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive unless a side says "Connection: close"

            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer.connections += 1

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with outer._lock:
                    outer.requests.append(self.path)
                route = outer.routes.get(self.path)
                if route is None:
                    reply = Reply(404, b"no such feed " * 100)
                elif callable(route):
                    reply = route(dict(self.headers))
                else:
                    reply = route
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.status != 304:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.status != 304:
                    self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up mid-answer is part of what tests do

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "KeepAliveServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with ``answer`` bytes as they are
    (broken HTTP on purpose), then closes it; ``answer`` may be a callable of the request."""

    def __init__(self, answer: bytes | Callable[[bytes], bytes]):
        self.answer = answer
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/feed") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536)
                data = self.answer(request) if callable(self.answer) else self.answer
                try:
                    conn.sendall(data)
                except OSError:
                    pass

    def __enter__(self) -> "RawServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()


# --- PostgreSQL -----------------------------------------------------------------------

class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target``: ``cut()`` drops every connection and
    refuses new ones (a database restart or failover, as the client sees it); ``restore()``
    lets connections through again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self._up = True
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "TcpProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self.cut()
        self.listener.close()

    def cut(self) -> None:
        with self._lock:
            self._up = False
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def restore(self) -> None:
        with self._lock:
            self._up = True

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._up:
                    client.close()  # refused, as by a server that is not there
                    continue
                try:
                    upstream = socket.create_connection(self.target)
                except OSError:
                    client.close()
                    continue
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def via_proxy(url: str, proxy: TcpProxy) -> str:
    """A PostgreSQL URL whose host and port are replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    netloc_new = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    return urlunsplit(parts._replace(netloc=netloc_new))


def with_application_name(url: str, name: str) -> str:
    """``url`` with an application_name, so a test can find (and end) exactly its own backends."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}application_name={name}"


def terminate_backends(admin_url: str, application_name: str) -> int:
    """End every PostgreSQL backend of ``application_name``, as pg_terminate_backend does for
    an operator; returns how many were ended."""
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s AND pid <> pg_backend_pid()", (application_name,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


# --- SQLite -------------------------------------------------------------------------

def fill_sqlite(database, spare_pages: int = 0) -> int:
    """Make the SQLite store behind peewee ``database`` full: connections it opens from now on
    may grow the file by at most ``spare_pages`` pages. Returns the page limit.

    A real full disk and ``max_page_count`` give SQLite the same error (SQLITE_FULL,
    "database or disk is full"). The limit is a per-connection setting, so it joins
    the pragmas the store sets on every new connection, and this thread's open
    connection is closed so that it reconnects under the limit too.
    """
    conn = sqlite3.connect(database.database)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    limit = pages + spare_pages
    database._pragmas = [p for p in database._pragmas if p[0] != "max_page_count"] + [("max_page_count", limit)]
    if not database.is_closed():
        database.close()
    return limit


def free_sqlite(database) -> None:
    """Undo ``fill_sqlite``: the disk has room again."""
    database._pragmas = [p for p in database._pragmas if p[0] != "max_page_count"]
    if not database.is_closed():
        database.close()


def damage_sqlite(path: Path, pages: int = 4) -> None:
    """Overwrite ``pages`` pages in the middle of a SQLite file with garbage, as a bad disk or
    a torn copy would. The header and schema stay, so the file still opens, and only what
    reads those pages fails: "database disk image is malformed"."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    count = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:
        f.seek((count // 2) * page_size)
        f.write(os.urandom(pages * page_size))
