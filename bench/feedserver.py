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


# --- a mixed corpus, as a newsroom's sources are: four formats, the namespaces news feeds carry,
# and a share of large feeds ---------------------------------------------------------------------

#: (path suffix, Content-Type) by format
FORMATS = {"rss": ("rss", "application/rss+xml; charset=utf-8"), "atom": ("atom", "application/atom+xml"),
           "json": ("json", "application/feed+json"), "rdf": ("rdf", "application/rdf+xml")}
MIX = ("rss", "atom", "json", "rdf")
#: every LARGE_EVERY-th feed is large: LARGE_FACTOR times the entries, with longer bodies
LARGE_EVERY, LARGE_FACTOR = 10, 5


def mixed_format(n: int) -> str:
    return MIX[n % len(MIX)]


def _story(n: int, i: int, large: bool) -> dict[str, str]:
    w = [WORDS[(n * 7 + i * 3 + k) % len(WORDS)] for k in range(6)]
    when = BASE - timedelta(minutes=n * 97 + i * 13)
    paragraphs = [f"<p>The {w[2]} {w[3]} was discussed at length.</p>",
                  f"<p>Officials said the {w[4]} would open next {w[5]}, and that the {w[0]} &amp; the "
                  f"{w[1]} would follow.</p>"]
    if large:
        paragraphs += [f"<p>Residents of town {n} asked about the {w[k % 6]} and the {w[(k + 1) % 6]}; "
                       f"the council's answer, paragraph {k}, ran long.</p>" for k in range(8)]
    return {"title": f"{' '.join(w).capitalize()} update {n}-{i}", "link": f"https://feeds.example.org/{n}/story/{i}",
            "id": f"feed-{n}-item-{i}", "summary": f"Short lead about the {w[0]} and the {w[1]} in town {n}.",
            "html": "".join(paragraphs), "author": f"Reporter {i % 5}", "tag": w[0],
            "image": f"https://img.example.org/{n}/{i}.jpg", "credit": "Photo Desk",
            "caption": f"The {w[0]} at dawn", "date": when.isoformat(), "rfc822": format_datetime(when, usegmt=True)}


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def make_mixed(n: int, entries: int) -> tuple[str, bytes]:
    """Feed n of the mixed corpus: (format, body). RSS 2.0, Atom 1.0, JSON Feed 1.1 and RSS 1.0 in
    turn, with media, Dublin Core and content namespaces; every LARGE_EVERY-th feed is large."""
    import json

    fmt = mixed_format(n)
    large = n % LARGE_EVERY == 0
    stories = [_story(n, i, large) for i in range(entries * (LARGE_FACTOR if large else 1))]
    if fmt == "json":
        return fmt, json.dumps({
            "version": "https://jsonfeed.org/version/1.1", "title": f"Synthetic feed {n}",
            "home_page_url": f"https://feeds.example.org/{n}", "feed_url": f"https://feeds.example.org/{n}.json",
            "language": "en", "items": [{
                "id": s["id"], "url": s["link"], "title": s["title"], "summary": s["summary"],
                "content_html": s["html"], "image": s["image"], "date_published": s["date"],
                "authors": [{"name": s["author"]}], "tags": [s["tag"], "politics"]} for s in stories]},
            ensure_ascii=False).encode("utf-8")
    media = ('xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
             'xmlns:content="http://purl.org/rss/1.0/modules/content/"')
    if fmt == "atom":
        items = "".join(
            f"<entry><id>tag:feeds.example.org,2026:{s['id']}</id><title>{s['title']}</title>"
            f'<link rel="alternate" type="text/html" href="{s["link"]}"/>'
            f"<updated>{s['date']}</updated><published>{s['date']}</published>"
            f"<author><name>{s['author']}</name></author>"
            f'<category term="{s["tag"]}"/><category term="politics"/>'
            f"<summary>{s['summary']}</summary>"
            f'<content type="html">{_xml(s["html"])}</content>'
            f'<media:thumbnail url="{s["image"]}" width="640" height="360"/>'
            f"<media:credit>{s['credit']}</media:credit></entry>" for s in stories)
        return fmt, ('<?xml version="1.0" encoding="utf-8"?>'
                     f'<feed xmlns="http://www.w3.org/2005/Atom" {media}>'
                     f"<id>tag:feeds.example.org,2026:feed-{n}</id><title>Synthetic feed {n}</title>"
                     f'<link rel="alternate" href="https://feeds.example.org/{n}"/>'
                     f"<updated>{BASE.isoformat()}</updated>{items}</feed>").encode("utf-8")
    if fmt == "rdf":
        items = "".join(
            f'<item rdf:about="{s["link"]}"><title>{s["title"]}</title><link>{s["link"]}</link>'
            f"<description>{s['summary']}</description>"
            f"<content:encoded><![CDATA[{s['html']}]]></content:encoded>"
            f"<dc:date>{s['date']}</dc:date><dc:creator>{s['author']}</dc:creator>"
            f"<dc:subject>{s['tag']}</dc:subject></item>" for s in stories)
        seq = "".join(f'<rdf:li rdf:resource="{s["link"]}"/>' for s in stories)
        return fmt, ('<?xml version="1.0" encoding="utf-8"?>'
                     '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
                     f'xmlns="http://purl.org/rss/1.0/" {media}>'
                     f'<channel rdf:about="https://feeds.example.org/{n}"><title>Synthetic feed {n}</title>'
                     f"<link>https://feeds.example.org/{n}</link><description>Feed {n}</description>"
                     f"<items><rdf:Seq>{seq}</rdf:Seq></items></channel>{items}</rdf:RDF>").encode("utf-8")
    items = "".join(
        f"<item><title>{s['title']}</title><link>{s['link']}</link>"
        f'<guid isPermaLink="false">{s["id"]}</guid><description>{s["summary"]}</description>'
        f"<content:encoded><![CDATA[{s['html']}]]></content:encoded><dc:creator>{s['author']}</dc:creator>"
        f"<category>{s['tag']}</category><category>politics</category><pubDate>{s['rfc822']}</pubDate>"
        f'<media:content url="{s["image"]}" medium="image" type="image/jpeg">'
        f"<media:credit>{s['credit']}</media:credit></media:content></item>" for s in stories)
    return fmt, ('<?xml version="1.0" encoding="UTF-8"?>'
                 f'<rss version="2.0" {media}><channel><title>Synthetic feed {n}</title>'
                 f"<link>https://feeds.example.org/{n}</link><description>Feed {n}</description>"
                 f"{items}</channel></rss>").encode("utf-8")


def corpus(feeds: int, entries: int, mixed: bool) -> dict[str, tuple[bytes, str]]:
    """Path -> (body, Content-Type) of every feed: the mixed corpus, or plain RSS 2.0."""
    if not mixed:
        return {f"/feed/{n}.rss": (make_feed(n, entries), FORMATS["rss"][1]) for n in range(feeds)}
    out = {}
    for n in range(feeds):
        fmt, body = make_mixed(n, entries)
        out[f"/feed/{n}.{FORMATS[fmt][0]}"] = (body, FORMATS[fmt][1])
    return out


def feed_path(n: int, mixed: bool) -> str:
    return f"/feed/{n}.{FORMATS[mixed_format(n)][0] if mixed else 'rss'}"


class FeedServer:
    """``FeedServer(feeds, entries)``; ``url(n)`` is feed n; ``hits`` counts requests per path."""

    def __init__(self, feeds: int, entries: int = 20, delay: float = 0.0, etags: bool = True,
                 mixed: bool = False):
        self.mixed = mixed
        files = corpus(feeds, entries, mixed)
        #: path -> body served (a test may replace one) and path -> its Content-Type
        self.bodies = {path: body for path, (body, _) in files.items()}
        self.types = {path: content_type for path, (_, content_type) in files.items()}
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
                content_type = server.types.get(self.path, "application/rss+xml; charset=utf-8")
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
                self.send_header("Content-Type", content_type)
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
        return f"http://127.0.0.1:{self.port}{feed_path(n, self.mixed)}"

    def __enter__(self) -> "FeedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ProcessFeedServer:
    """A FeedServer in a child process, so its request handling does not share the measured
    process's interpreter lock: a real collector's feeds are served by other machines."""

    def __init__(self, feeds: int, entries: int = 20, mixed: bool = False):
        self.mixed = mixed
        self.bodies = {path: body for path, (body, _) in corpus(feeds, entries, mixed).items()}
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve_child, args=(child, feeds, entries, mixed), daemon=True)

    def __enter__(self) -> "ProcessFeedServer":
        self._process.start()
        self.port = self._pipe.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._pipe.send(("stop", None))
        self._process.join(10)

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.port}{feed_path(n, self.mixed)}"

    def set_etags(self, on: bool) -> None:
        """Answer with ETags (and 304s) or not."""
        self._pipe.send(("etags", on))
        self._pipe.recv()

    def total_hits(self) -> int:
        self._pipe.send(("hits", None))
        return self._pipe.recv()


def _serve_child(pipe: "multiprocessing.connection.Connection", feeds: int, entries: int, mixed: bool) -> None:
    with FeedServer(feeds, entries, mixed=mixed) as server:
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
