"""Live streams: every public feed's path + ``/stream`` as Server-Sent Events.

Each new, changed or retracted entry of the feed is sent as it is committed, as a JSON Feed
1.1 item (``event: entry``; ``event: retracted`` for a retraction, whose item says so under
``_feedhub``). Event ids name the moment the store wrote the entry and the entry, so a client
that comes back with ``Last-Event-ID`` is sent what was written since (at least once: writes
within ``GRACE`` before its last event are sent again, with the same ids).

How it scales, per web process:
- one dispatcher thread notices commits without asking the store (PostgreSQL: the topic
  listener's NOTIFY count, so commits of every process and machine; SQLite: the file's
  ``data_version``), then reads what was written once per open feed, not once per client;
- one asyncio loop thread holds the connections: under gunicorn the stream's socket is taken
  from the request thread, which goes back to serving feeds at once, so a thousand idle
  streams cost a thousand sockets and queues, not a thousand threads. Under any other WSGI
  server (the tests' waitress, Flask's test client) a stream is a plain streamed response
  that holds its thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Response

from aggregator import store
from aggregator.config import Config
from feeds.render import json_item, rfc3339
from feeds.select import FeedRequest, feed_query, load_items

log = logging.getLogger(__name__)

#: how long before its commit a write may be stamped (the longest write transaction): the
#: dispatcher looks back this far, and a resume is sent again what was written this long before
GRACE = timedelta(seconds=5)
#: seconds between looks at the change count (an in-memory read on PostgreSQL, one PRAGMA on SQLite)
TICK = 0.02
#: seconds between reads of the store when no change count can be trusted (the listener is down)
BLIND_TICK = 1.0
#: events a client may have waiting; a client that falls this far behind is dropped (it comes
#: back with Last-Event-ID and is sent what it missed)
BACKLOG = 1000
#: milliseconds a client waits before reconnecting (the SSE ``retry`` field)
RECONNECT_MS = 2000
#: where the WSGI server's own start_response is kept for take_connection (web.hot sets it)
START_RESPONSE = "feedhub.start_response"

HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    # Nothing between us and the client may buffer or keep a copy of a live stream.
    "Cache-Control": "no-cache, no-store, no-transform",
    "X-Accel-Buffering": "no",
    "Access-Control-Allow-Origin": "*",
}


def event_id(stored_at: datetime, entry_id: int) -> str:
    """An event's id: when the store wrote the entry (microseconds since 1970, UTC), and the entry."""
    return f"{int(stored_at.timestamp() * 1_000_000)}-{entry_id}"


def parse_event_id(text: str) -> tuple[datetime, int] | None:
    """The (written at, entry id) a Last-Event-ID names; None for anything else (a client's own
    id, garbage): the stream then starts from now, as a new one does."""
    micros, dash, entry = text.strip().partition("-")
    if not dash or not micros.isdigit() or not entry.isdigit() or len(micros) > 18:
        return None
    try:
        return datetime.fromtimestamp(int(micros) / 1_000_000, timezone.utc), int(entry)
    except (OverflowError, OSError, ValueError):
        return None


def sse_event(eid: str, kind: str, data: dict[str, Any]) -> bytes:
    """One SSE event; the JSON is one line (json.dumps escapes any newline inside strings)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {eid}\nevent: {kind}\ndata: {body}\n\n".encode()


HEARTBEAT = b": heartbeat\n\n"


def _preamble(path: str) -> bytes:
    return f"retry: {RECONNECT_MS}\n: live stream of {path}\n\n".encode()


def events_for(rows: list[store.StreamRow], req: FeedRequest, config: Config, base: str) -> list[tuple[str, bytes]]:
    """(event id, SSE bytes) for stream rows: live entries as JSON Feed items, retracted ones
    as an item that says so."""
    live = [r.row for r in rows if r.retracted_at is None]
    items = load_items(live, req, config, base) if live else None
    built = {row.id: items[i] for i, row in enumerate(live)} if items is not None else {}
    out = []
    for r in rows:
        eid = event_id(r.stored_at, r.row.id)
        if r.retracted_at is None:
            out.append((eid, sse_event(eid, "entry", json_item(built[r.row.id]))))
            continue
        when = rfc3339(r.retracted_at)
        item = {"id": r.row.public_id, "title": r.row.title, "content_text": "",
                "date_modified": when, "language": r.row.language,
                "_feedhub": {"retracted": True, "retracted_at": when, "retraction_reason": r.reason or ""}}
        if r.row.link:
            item["url"] = r.row.link
        out.append((eid, sse_event(eid, "retracted", item)))
    return out


#: a new stream (no Last-Event-ID) is sent what was written from this long before it connected
#: on: a write stamped just before the connection may commit just after it
NEW_CLIENT_LOOKBACK = timedelta(seconds=1)


class Client:
    """One open stream: a queue of events, fed by the dispatcher, drained by its writer."""

    def __init__(self, key: tuple[str, ...], skip: set[str], after: int = 0):
        self.key = key
        #: event ids already sent by the resume (a live copy of one of them is dropped)
        self.skip = skip
        #: events of writes before this (microseconds, as in event ids) are not for this client
        self.after = after
        # Socket clients are drained by the loop (an asyncio queue, set when attached);
        # threaded ones by their own generator.
        self.aqueue: asyncio.Queue[tuple[str, bytes] | None] | None = None
        self.tqueue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(BACKLOG)

    def wants(self, eid: str) -> bool:
        return eid not in self.skip and int(eid.partition("-")[0]) >= self.after


@dataclass
class _Feed:
    """A feed with open streams in this process: its request, link base and clients."""

    req: FeedRequest
    base: str
    clients: set[Client] = field(default_factory=set)


class StreamHub:
    """The live streams of one web process (see the module's docstring)."""

    def __init__(self, config: Config, database: Any, revisions: store.TopicRevisions):
        self.config = config
        self._database = database
        self._revisions = revisions
        self._lock = threading.Lock()
        self._feeds: dict[tuple[str, ...], _Feed] = {}
        self._count = 0
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    # --- opening and closing -------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:  # (the whole start: a second stream arriving meanwhile needs the loop)
            if self._started:
                return
            loop = self._loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="stream-loop", daemon=True).start()
            threading.Thread(target=self._dispatch, name="stream-dispatch", daemon=True).start()
            self._started = True

    def full(self) -> bool:
        """Whether the process holds as many streams as it may."""
        return self._count >= self.config.stream.max_clients

    def register(self, req: FeedRequest, base: str, resume: tuple[datetime, int] | None) -> tuple[Client, bytes]:
        """A new client of ``req``'s stream, and what it is sent first (the reconnect delay and,
        resuming, what was written since its last event). Registered before the resume is read,
        so nothing committed meanwhile falls between the two."""
        self._start()
        key = (req.path, req.query_string(), base)
        # A resuming client is sent everything since its last event (the replay, then live
        # events, whatever their write time); a new one only what is written from now on.
        after = 0 if resume is not None else int(
            (datetime.now(timezone.utc) - NEW_CLIENT_LOOKBACK).timestamp() * 1_000_000)
        client = Client(key, set(), after)
        with self._lock:
            feed = self._feeds.get(key)
            if feed is None:
                feed = self._feeds[key] = _Feed(req, base)
            feed.clients.add(client)
            self._count += 1
        replayed: list[tuple[str, bytes]] = []
        try:
            if resume is not None and self.config.stream.replay:
                rows = store.stream_rows(feed_query(req, self.config), resume[0] - GRACE, self.config.stream.replay)
                last = event_id(*resume)
                replayed = [(eid, data) for eid, data in events_for(rows, req, self.config, base) if eid != last]
        except BaseException:
            self.unregister(client)
            raise
        # (live events queued meanwhile are sent after the replay; a copy of a replayed one is dropped)
        client.skip.update(eid for eid, _ in replayed)
        return client, _preamble(req.path) + b"".join(data for _, data in replayed)

    def unregister(self, client: Client) -> None:
        with self._lock:
            feed = self._feeds.get(client.key)
            if feed is not None and client in feed.clients:
                feed.clients.discard(client)
                self._count -= 1
                if not feed.clients:
                    del self._feeds[client.key]

    @property
    def clients(self) -> int:
        return self._count

    def close(self) -> None:
        self._stop.set()
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)

    # --- serving a client ----------------------------------------------------------------

    def attach_socket(self, client: Client, sock: socket.socket, head: bytes) -> None:
        """Serve ``client`` on a socket taken from the WSGI server (see take_connection)."""
        assert self._loop is not None
        sock.setblocking(False)
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._serve_socket(client, sock, head)))  # type: ignore[union-attr]

    async def _serve_socket(self, client: Client, sock: socket.socket, head: bytes) -> None:
        loop = asyncio.get_running_loop()
        client.aqueue = asyncio.Queue(BACKLOG)
        while True:  # what the dispatcher queued before the socket was handed over, in order
            try:
                early = client.tqueue.get_nowait()
            except queue.Empty:
                break
            client.aqueue.put_nowait(early)
        heartbeat = self.config.stream.heartbeat
        gone = loop.create_task(self._until_closed(sock))
        try:
            await asyncio.wait_for(loop.sock_sendall(sock, head), heartbeat * 2 + 10)
            while not gone.done():
                getter = loop.create_task(client.aqueue.get())
                done, _ = await asyncio.wait({getter, gone}, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    if gone in done:
                        break
                    data = HEARTBEAT
                else:
                    event = getter.result()
                    if event is None:  # dropped: too far behind
                        break
                    if not client.wants(event[0]):
                        continue
                    data = event[1]
                # A client that stops reading for longer than two heartbeats is gone.
                await asyncio.wait_for(loop.sock_sendall(sock, data), heartbeat * 2 + 10)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            gone.cancel()
            self.unregister(client)
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    async def _until_closed(sock: socket.socket) -> None:
        """Returns when the client closes its end (what it sends on a stream is ignored)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not await loop.sock_recv(sock, 4096):
                    return
            except OSError:
                return

    def iterate(self, client: Client, head: bytes) -> Iterator[bytes]:
        """The stream as a WSGI body, holding its thread (servers whose socket cannot be taken)."""
        heartbeat = self.config.stream.heartbeat
        try:
            yield head
            while not self._stop.is_set():
                try:
                    event = client.tqueue.get(timeout=heartbeat)
                except queue.Empty:
                    yield HEARTBEAT
                    continue
                if event is None:
                    return
                if client.wants(event[0]):
                    yield event[1]
        finally:
            self.unregister(client)

    def _deliver(self, client: Client, event: tuple[str, bytes] | None) -> None:
        """Queue an event for one client (on the loop for socket clients); a full queue drops it."""
        if client.aqueue is not None:
            try:
                client.aqueue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(client)
            return
        try:
            client.tqueue.put_nowait(event)
        except queue.Full:
            self._drop(client)

    def _drop(self, client: Client) -> None:
        log.info("a stream client of %s fell %d events behind; closing it (it resumes with Last-Event-ID)",
                 client.key[0], BACKLOG)
        queue_ = client.aqueue if client.aqueue is not None else client.tqueue
        try:
            while True:
                queue_.get_nowait()
        except (asyncio.QueueEmpty, queue.Empty):
            pass
        queue_.put_nowait(None)

    def _fan_out(self, batches: list[tuple[list[Client], list[tuple[str, bytes]]]]) -> None:
        for clients, events in batches:
            for client in clients:
                for event in events:
                    self._deliver(client, event)

    # --- the dispatcher ------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Notice commits, read what they wrote for each open feed, queue it for its clients."""
        self._database.connect(reuse_if_open=True)
        since = store.utcnow() - GRACE
        sent: dict[tuple[int, datetime], float] = {}  # writes already sent, until they age out
        version: object = self._revisions.change_count()
        looked = time.monotonic()
        while not self._stop.wait(TICK):
            try:
                now = time.monotonic()
                current = self._revisions.change_count()
                if current is not None and current == version:
                    continue
                if current is None and now - looked < BLIND_TICK:
                    continue
                version, looked = current, now
                with self._lock:  # (a snapshot: clients come and go meanwhile)
                    feeds = [(feed, list(feed.clients)) for feed in self._feeds.values()]
                if not feeds:
                    since = store.utcnow() - GRACE
                    sent.clear()
                    continue
                since = self._send_new(feeds, since, sent)
            except Exception as e:  # the store went away: say so once per failure, keep going
                log.warning("live streams could not read the store: %s", e)
                store.reset_connection()
                version = None
                time.sleep(BLIND_TICK)

    def _send_new(self, feeds: list[tuple[_Feed, list[Client]]], since: datetime,
                  sent: dict[tuple[int, datetime], float]) -> datetime:
        start = store.utcnow()
        written = [w for w in store.written_since(since, 10_000) if w not in sent]
        if written:
            ids = sorted({entry_id for entry_id, _ in written})
            fresh = set(written)
            batches = []
            for feed, clients in feeds:
                rows = store.stream_rows(feed_query(feed.req, self.config), written[0][1], len(written), among=ids)
                rows = [r for r in rows if (r.row.id, r.stored_at) in fresh]
                if rows:
                    batches.append((clients, events_for(rows, feed.req, self.config, feed.base)))
            expires = time.monotonic() + 3 * GRACE.total_seconds()
            for w in written:
                sent[w] = expires
            if batches:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._fan_out, batches)
        horizon = time.monotonic()
        for w in [w for w, until in sent.items() if until < horizon]:
            del sent[w]
        return start - GRACE


def take_connection(environ: dict[str, Any]) -> socket.socket | None:
    """The client's socket, taken from gunicorn so that the request's thread is free again;
    None under any other server.

    The connection is duplicated, and gunicorn's own descriptor is pointed at a socket whose
    peer is already closed: whatever gunicorn does with it next (its graceful close sends a
    FIN and drains) then touches that, not the client's connection. Its response is marked
    sent, so it writes nothing.
    """
    sock = environ.get("gunicorn.socket")
    start = environ.get(START_RESPONSE)
    resp = getattr(start, "__self__", None)
    if (not isinstance(sock, socket.socket) or resp is None or type(resp).__module__ != "gunicorn.http.wsgi"
            or getattr(resp, "headers_sent", True)):
        return None
    taken = sock.dup()
    dead, peer = socket.socketpair()
    try:
        os.dup2(dead.fileno(), sock.fileno())
    finally:
        dead.close()
        peer.close()
    resp.force_close()
    resp.headers_sent = True
    return taken


class StreamResponse(Response):
    """A stream's response: taken off the WSGI server when it allows, else a streamed body."""

    def __init__(self, hub: StreamHub, client: Client, head: bytes):
        super().__init__(hub.iterate(client, head), headers=HEADERS, direct_passthrough=True)
        self.hub, self.client, self.head = hub, client, head

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = take_connection(environ)
        if sock is None:
            return super().__call__(environ, start_response)
        lines = [f"HTTP/1.1 {self.status}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()
                  if name.lower() not in ("content-length", "transfer-encoding", "connection")]
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.head
        self.response = []  # the generator is never started: the loop serves the client
        self.hub.attach_socket(self.client, sock, head)
        return []
