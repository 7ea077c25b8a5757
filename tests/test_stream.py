"""Live streams (issue 19): a feed's path + /stream as Server-Sent Events, against `feedhub serve`
(gunicorn) over real HTTP, with real clients reading the wire.

The writes come from this test's process (the desk's push, an editor's retraction), as they do
from the admin API or a collector in another process: the server learns of them as it learns of
any other process's commit."""
from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from aggregator import admin, store
from aggregator.config import Config, load_config

from .conftest import close_store, serving_app, write_config
from .test_reload import free_port, start, status_of, until

DESK = admin.Actor("desk", "admin", "cli")


class SseClient:
    """A Server-Sent Events client on a plain socket: what it reads is exactly what was sent."""

    def __init__(self, port: int, path: str, last_event_id: str | None = None, timeout: float = 30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                          f"{extra}\r\n".encode())
        self.file = self.sock.makefile("rb")
        self.status_line = self.file.readline().decode().strip()
        self.headers: dict[str, str] = {}
        while (line := self.file.readline().decode()) not in ("\r\n", "\n", ""):
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def block(self) -> list[str]:
        """The next block of lines up to a blank line (an event, a comment, the preamble)."""
        lines = []
        while True:
            raw = self.file.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\r\n")
            if not line:
                if lines:
                    return lines
                continue
            lines.append(line)

    def event(self) -> dict[str, str]:
        """The next event (comments and the retry field skipped)."""
        while True:
            fields: dict[str, str] = {}
            for line in self.block():
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            if "data" in fields:
                return fields

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _item(event: dict[str, str]) -> dict:
    return json.loads(event["data"])


@contextmanager
def served(tmp_path: Path, db_url: str, extra: str = "", workers: int = 1,
           threads: int = 2) -> Iterator[tuple[Config, int]]:
    """`feedhub serve` on a free port (one worker, two threads unless asked), stopped at the end."""
    port = free_port()
    cfg = write_config(tmp_path, db_url, extra=extra)
    text = cfg.read_text(encoding="utf-8").replace("port = 8080", f"port = {port}")
    text = text.replace("threads = 8", f"threads = {threads}\nworkers = {workers}")
    cfg.write_text(text, encoding="utf-8")
    config = load_config(cfg, environ={})
    store.init_db(config.database_url)
    proc = start(cfg, "serve")
    try:
        until(lambda: status_of(port, "/healthz") == 200, "the server")
        yield config, port
    finally:
        _stop(proc)
        close_store()


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=60)[1]


def push(config: Config, headline: str) -> store.EntryInfo:
    return admin.push_breaking(DESK, headline, config, store.utcnow()).result


def test_a_desk_push_reaches_every_client_without_a_thread_each(tmp_path: Path, db_url: str):
    """Thirty streams on one worker with two threads: each gets the pushed item, as a JSON Feed
    item, and the worker still answers feed requests meanwhile (no thread is held by a stream)."""
    with served(tmp_path, db_url) as (config, port):
        # opened all at once: the first streams of a process start its loop (once, for all)
        with ThreadPoolExecutor(10) as pool:
            clients = list(pool.map(lambda _: SseClient(port, "/feeds/breaking/stream"), range(30)))
        try:
            assert [c.status for c in clients] == [200] * 30
            first = clients[0]
            assert first.status == 200
            assert first.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert "no-cache" in first.headers["cache-control"] and first.headers["x-accel-buffering"] == "no"
            assert "content-length" not in first.headers
            assert first.block()[0] == "retry: 2000"  # the preamble: sent at once, so the client knows it is live
            assert status_of(port, "/feeds/latest.json") == 200  # both threads are free
            pushed = push(config, "Storm makes landfall on the east coast")
            for client in clients:
                event = client.event()
                item = _item(event)
                assert event["event"] == "entry"
                assert item["id"] == pushed.public_id and item["title"] == "Storm makes landfall on the east coast"
                assert item["_feedhub"]["breaking"] is True and "date_published" in item and "content_text" in item
                assert event["id"].endswith(f"-{pushed.id}")
        finally:
            for client in clients:
                client.close()


def test_resume_with_last_event_id_and_retractions(tmp_path: Path, db_url: str):
    """A client that comes back with Last-Event-ID gets what was written while it was away (a new
    item and a retraction), not what it had already; a client's own id starts from now."""
    with served(tmp_path, db_url) as (config, port):
        client = SseClient(port, "/feeds/breaking/stream")
        a = push(config, "First headline of the evening")
        seen = client.event()
        assert _item(seen)["id"] == a.public_id
        client.close()
        b = push(config, "Second headline while away")
        admin.retract(DESK, a.id, "published in error", config, store.utcnow())
        back = SseClient(port, "/feeds/breaking/stream", last_event_id=seen["id"])
        try:
            got = [back.event(), back.event()]
            assert [(e["event"], _item(e)["id"]) for e in got] == [("entry", b.public_id), ("retracted", a.public_id)]
            assert _item(got[1])["_feedhub"]["retraction_reason"] == "published in error"
            # the live stream continues after the replay
            c = push(config, "Third headline, live again")
            assert _item(back.event())["id"] == c.public_id
        finally:
            back.close()
        fresh = SseClient(port, "/feeds/breaking/stream", last_event_id="not-one-of-ours")
        try:
            d = push(config, "Fourth headline for a new client")
            assert _item(fresh.event())["id"] == d.public_id  # nothing replayed before it
        finally:
            fresh.close()


def test_heartbeat_keeps_an_idle_stream_alive(tmp_path: Path, db_url: str):
    with served(tmp_path, db_url, extra="\n[stream]\nheartbeat = 0.3\n") as (_, port):
        client = SseClient(port, "/ar/feeds/breaking/stream")
        try:
            client.block()  # the preamble
            assert client.block() == [": heartbeat"]
            assert client.block() == [": heartbeat"]
        finally:
            client.close()


def test_streams_are_capped_and_a_closed_one_frees_its_place(tmp_path: Path, db_url: str):
    with served(tmp_path, db_url, extra="\n[stream]\nmax_clients = 2\n") as (config, port):
        a, b = SseClient(port, "/feeds/breaking/stream"), SseClient(port, "/feeds/latest/stream")
        third = SseClient(port, "/feeds/breaking/stream")
        assert third.status == 503 and third.headers["retry-after"].isdigit()
        third.close()
        a.close()

        def admitted() -> bool:
            c = SseClient(port, "/feeds/breaking/stream")
            ok = c.status == 200
            c.close()
            return ok
        until(admitted, "the closed stream's place to be free")
        b.close()


@pytest.mark.parametrize("path, status", [
    ("/feeds/breaking/stream?q=storm", 400),
    ("/feeds/breaking/stream?page=abc", 400),
    ("/feeds/breaking/stream?region=atlantis", 400),
    ("/feeds/nothing/stream", 404),
    ("/feeds/section/nothing/stream", 404),
    ("/feeds/planet/mars/stream", 404),
    ("/xx/feeds/breaking/stream", 404),
    ("/en/feeds/breaking/stream", 308),
])
def test_bad_stream_requests_are_refused_plainly(client, path: str, status: int):
    resp = client.get(path)
    assert resp.status_code == status, resp.get_data(as_text=True)
    if status == 400:
        assert resp.get_data(as_text=True).strip()


def test_a_section_stream_gets_only_its_section(tmp_path: Path, db_url: str):
    """The stream holds what the feed holds: a breaking desk item is not in /feeds/section/politics."""
    with served(tmp_path, db_url) as (config, port):
        politics = SseClient(port, "/feeds/section/politics/stream")
        breaking = SseClient(port, "/feeds/breaking/stream")
        try:
            pushed = push(config, "Desk item outside politics")
            assert _item(breaking.event())["id"] == pushed.public_id
            politics.sock.settimeout(1.5)
            politics.block()  # preamble
            with pytest.raises(TimeoutError):
                politics.block()
        finally:
            politics.close()
            breaking.close()


def test_a_stream_under_another_wsgi_server_holds_a_thread(tmp_path: Path, db_url: str):
    """Without gunicorn's socket to take, the same stream is a streamed WSGI body."""
    from web import create_app

    cfg = load_config(write_config(tmp_path, db_url), environ={})
    app = create_app(cfg)
    with serving_app(app, threads=4) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/feeds/breaking/stream")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        assert resp.readline() == b"retry: 2000\n"
        pushed = push(cfg, "Pushed while served by waitress")
        while not (line := resp.readline()).startswith(b"data: "):
            pass
        assert json.loads(line[6:])["id"] == pushed.public_id
        conn.close()
    app.extensions["feedhub.usage"].close()
    app.extensions["feedhub.streams"].close()


@pytest.mark.postgres
def test_events_fan_out_across_two_web_processes(tmp_path: Path):
    """Two `feedhub serve` processes on one PostgreSQL store: a client of each gets the item written
    by a third process, told by NOTIFY (no per-client polling)."""
    from .conftest import PgSchema

    schema = PgSchema()
    try:
        with served(tmp_path / "one", schema.url) as (config, port_one), \
                served(tmp_path / "two", schema.url) as (_, port_two):
            one, two = SseClient(port_one, "/feeds/breaking/stream"), SseClient(port_two, "/feeds/breaking/stream")
            try:
                started = time.monotonic()
                pushed = push(config, "One item, two processes")
                assert _item(one.event())["id"] == pushed.public_id
                assert _item(two.event())["id"] == pushed.public_id
                assert time.monotonic() - started < 30  # a deadline for a hung test, not a speed claim
            finally:
                one.close()
                two.close()
    finally:
        schema.drop()


@pytest.mark.postgres
def test_streams_carry_on_when_postgresql_connections_are_ended(tmp_path: Path):
    """The server's connections are ended (pg_terminate_backend, as a restart or failover does)
    while a stream is open: the dispatcher replaces its connection and the next item arrives."""
    from .conftest import PG_URL, PgSchema
    from .faults import terminate_backends, with_application_name

    schema = PgSchema()
    name = f"fh-stream-{time.monotonic_ns() % 10**9}"
    try:
        with served(tmp_path, with_application_name(schema.url, name)) as (config, port):
            client = SseClient(port, "/feeds/breaking/stream")
            try:
                first = push(config, "Before the connections were ended")
                assert _item(client.event())["id"] == first.public_id
                assert terminate_backends(PG_URL, name) >= 1
                second = push(config, "After the connections were ended")
                assert _item(client.event())["id"] == second.public_id
            finally:
                client.close()
    finally:
        schema.drop()


def test_a_client_that_falls_too_far_behind_is_closed(newsroom: Config):
    """A client whose queue holds BACKLOG events it has not taken is closed (it comes back with
    Last-Event-ID), instead of the process keeping an unbounded queue for it."""
    from feeds.select import parse_request
    from web import create_app
    from web.stream import BACKLOG

    app = create_app(newsroom)
    hub = app.extensions["feedhub.streams"]
    try:
        with app.app_context():
            req = parse_request(newsroom, "breaking", None, None, {})
            client, head = hub.register(req, "http://127.0.0.1", None)
        assert hub.clients == 1
        now = int(time.time() * 1_000_000)
        for i in range(BACKLOG + 10):  # (the dispatcher's side: nobody reads meanwhile)
            hub._deliver(client, (f"{now}-{i}", b"data: {}\n\n"))
        assert list(hub.iterate(client, head)) == [head]  # what was queued is dropped, then the end
        assert hub.clients == 0
    finally:
        hub.close()
        app.extensions["feedhub.usage"].close()
