"""A threaded HTTP server on 127.0.0.1 serving N synthetic RSS feeds (for tests and benchmarks).

Counts requests per path, and can answer conditional GETs with 304, delay
every answer, or serve each feed's body unchanged without validators.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE = datetime(2026, 11, 1, tzinfo=timezone.utc)
WORDS = ("council harbour bridge library market festival station river valley school garden museum "
         "report plan budget season project market route tram ferry hospital clinic stadium").split()


def make_feed(n: int, entries: int) -> bytes:
    """RSS 2.0 with ``entries`` items, deterministic for feed ``n``; every guid is unique."""
    items = []
    for i in range(entries):
        w = [WORDS[(n * 7 + i * 3 + k) % len(WORDS)] for k in range(6)]
        when = BASE - timedelta(minutes=n * 97 + i * 13)
        items.append(
            f"<item><title>{' '.join(w).capitalize()} update {n}-{i}</title>"
            f"<link>https://feeds.example.org/{n}/story/{i}</link>"
            f"<guid isPermaLink=\"false\">feed-{n}-item-{i}</guid>"
            f"<description>Short lead about the {w[0]} and the {w[1]} in town {n}.</description>"
            f"<content:encoded><![CDATA[<p>The {w[2]} {w[3]} was discussed at length.</p>"
            f"<p>Officials said the {w[4]} would open next {w[5]}.</p>"
            f"<img src=\"https://img.example.org/{n}/{i}.jpg\" alt=\"The {w[0]} (Photo Desk)\"></p>]]>"
            f"</content:encoded><dc:creator>Reporter {i % 5}</dc:creator>"
            f"<category>{w[0]}</category><category>politics</category>"
            f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate></item>")
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\" "
            "xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" "
            "xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel>"
            f"<title>Synthetic feed {n}</title><link>https://feeds.example.org/{n}</link>"
            f"<description>Feed {n}</description>{''.join(items)}</channel></rss>").encode("utf-8")


class FeedServer:
    """``FeedServer(feeds, entries)``; ``url(n)`` is feed n; ``hits`` counts requests per path."""

    def __init__(self, feeds: int, entries: int = 20, delay: float = 0.0, etags: bool = True):
        self.bodies = {f"/feed/{n}.rss": make_feed(n, entries) for n in range(feeds)}
        self.delay = delay
        self.etags = etags
        self.hits: Counter[str] = Counter()
        #: requests being handled now, and the most at once. A request counts from its
        #: arrival until just before its answer is sent: a window strictly inside the
        #: client's own fetch, so max_active never overstates the client's concurrency.
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as real feed servers do: one connection serves a client's next requests.
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; with Nagle's algorithm the body
            # would wait for the client's delayed ACK (40 ms) on a kept-alive connection.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with server._lock:
                    server.hits[self.path] += 1
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                body = server.bodies.get(self.path)
                if server.delay:
                    threading.Event().wait(server.delay)
                with server._lock:
                    server.active -= 1
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = f'"{hashlib.sha1(body).hexdigest()[:16]}"'
                if server.etags and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                if server.etags:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # The default listen backlog (5) makes the kernel drop connects when many
            # collector threads arrive at once, and TCP retries them a second later.
            request_queue_size = 256

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{n}.rss"

    def __enter__(self) -> "FeedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ProcessFeedServer:
    """A FeedServer in a child process, so its request handling does not share the measured
    process's interpreter lock: a real collector's feeds are served by other machines."""

    def __init__(self, feeds: int, entries: int = 20):
        self.bodies = {f"/feed/{n}.rss": make_feed(n, entries) for n in range(feeds)}
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve_child, args=(child, feeds, entries), daemon=True)

    def __enter__(self) -> "ProcessFeedServer":
        self._process.start()
        self.port = self._pipe.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._pipe.send(("stop", None))
        self._process.join(10)

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}/feed/{n}.rss"

    def set_etags(self, on: bool) -> None:
        """Answer with ETags (and 304s) or not."""
        self._pipe.send(("etags", on))
        self._pipe.recv()

    def total_hits(self) -> int:
        self._pipe.send(("hits", None))
        return self._pipe.recv()


def _serve_child(pipe: "multiprocessing.connection.Connection", feeds: int, entries: int) -> None:
    with FeedServer(feeds, entries) as server:
        pipe.send(server.port)
        while True:
            command, value = pipe.recv()
            if command == "stop":
                return
            if command == "etags":
                server.etags = value
                pipe.send(True)
            elif command == "hits":
                pipe.send(sum(server.hits.values()))


def sources_toml(server: FeedServer | ProcessFeedServer, count: int, interval: int = 3600) -> str:
    """[[sources]] entries for feeds 0..count-1 of ``server``."""
    return "".join(f'[[sources]]\nid = "feed-{n}"\nname = "Feed {n}"\nurl = "{server.url(n)}"\n'
                   f'section = "news"\ninterval = {interval}\n\n' for n in range(count))
