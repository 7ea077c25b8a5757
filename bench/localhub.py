"""A small WebSub hub and publisher on 127.0.0.1, for the tests and bench/breaking.

It is the far side of both directions of WebSub as a real hub behaves (https://www.w3.org/TR/websub/):
- it publishes a feed (``/feed.xml``, Atom, naming the hub and itself) and delivers new versions
  of it to the subscribers it verified, signed with each one's secret (``publish``);
- it takes subscription requests (``POST /hub``), answers 202 and verifies intent by calling the
  subscriber back with a challenge, as hubs do, from another thread;
- it takes publish pings (``hub.mode=publish``) from a publisher (feedhub's own feeds), fetches
  the topic and delivers it to that topic's subscribers.

Knobs for faults: ``verify=False`` (a hub that never verifies), ``lease_seconds`` (what it grants).
Every event is logged with its monotonic time in ``events`` (kind, detail, time).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Wire desk</title>
  <id>urn:example:wire</id>
{hub_link}  <link rel="self" href="{topic}"/>
  <link rel="alternate" href="https://wire.example.org/"/>
  <updated>{updated}</updated>
{entries}</feed>
"""

ENTRY = """  <entry>
    <id>urn:example:wire:{guid}</id>
    <title>{title}</title>
    <link rel="alternate" href="https://wire.example.org/{guid}"/>
    <updated>{updated}</updated>
    <author><name>Wire desk</name></author>
    <summary>{summary}</summary>
  </entry>
"""


#: when each entry was first written into a feed: its atom:updated stays that (a real feed's
#: entries do not change every time the feed is rendered)
_FIRST_WRITTEN: dict[str, str] = {}


def atom_feed(hub: str | None, topic: str, entries: list[tuple[str, str, str]]) -> bytes:
    """An Atom feed naming ``hub`` (None: no hub, a feed only polling finds changed); entries
    are (guid, title, summary), newest first."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = "".join(ENTRY.format(guid=g, title=t, summary=s, updated=_FIRST_WRITTEN.setdefault(g, now))
                   for g, t, s in entries)
    hub_link = f'  <link rel="hub" href="{hub}"/>\n' if hub else ""
    return ATOM.format(hub_link=hub_link, topic=topic, updated=now, entries=body).encode()


@dataclass
class Subscriber:
    callback: str
    topic: str
    secret: str
    lease_seconds: int


class LocalHub:
    """The hub and the publisher's site in one server; ``url`` is its base."""

    def __init__(self, verify: bool = True, lease_seconds: int | None = None):
        self.verify = verify
        self.lease_seconds = lease_seconds
        self.subscribers: dict[tuple[str, str], Subscriber] = {}  # (topic, callback) -> subscriber
        self.events: list[tuple[str, str, float]] = []
        self.entries: list[tuple[str, str, str]] = [("first", "A first wire story", "Its summary.")]
        #: the entries of /plain.xml, a feed that names no hub
        self.plain_entries: list[tuple[str, str, str]] = [("plain-first", "A first polled story", "Its summary.")]
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.hub = f"{self.url}/hub"
        self.topic = f"{self.url}/feed.xml"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LocalHub":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def log(self, kind: str, detail: str = "") -> None:
        with self.lock:
            self.events.append((kind, detail, time.monotonic()))

    def seen(self, kind: str) -> list[str]:
        with self.lock:
            return [d for k, d, _ in self.events if k == kind]

    def feed(self) -> bytes:
        return atom_feed(self.hub, self.topic, self.entries)

    # --- the hub's work -------------------------------------------------------------------

    def _verify(self, mode: str, topic: str, callback: str, secret: str, lease: int) -> None:
        challenge = secrets.token_urlsafe(16)
        query = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            query["hub.lease_seconds"] = str(lease)
        sep = "&" if "?" in callback else "?"
        try:
            with urllib.request.urlopen(callback + sep + urllib.parse.urlencode(query), timeout=10) as r:
                ok = r.status // 100 == 2 and r.read().decode() == challenge
        except (urllib.error.URLError, OSError):
            ok = False
        self.log(f"{mode}-verified" if ok else f"{mode}-not-verified", callback)
        if not ok:
            return
        with self.lock:
            if mode == "subscribe":
                self.subscribers[(topic, callback)] = Subscriber(callback, topic, secret, lease)
            else:
                self.subscribers.pop((topic, callback), None)

    def publish(self, topic: str | None = None, body: bytes | None = None, secret: str | None = None,
                content_type: str = "application/atom+xml") -> list[int]:
        """Deliver ``body`` (default: the current feed) to the topic's subscribers; ``secret``
        signs with another secret (a forged delivery). Returns each subscriber's status."""
        topic = topic or self.topic
        body = self.feed() if body is None else body
        with self.lock:
            targets = [s for (t, _), s in self.subscribers.items() if t == topic]
        statuses = []
        for sub in targets:
            signature = hmac.new((secret or sub.secret).encode(), body, hashlib.sha256).hexdigest()
            req = urllib.request.Request(sub.callback, data=body, method="POST", headers={
                "Content-Type": content_type, "X-Hub-Signature": f"sha256={signature}",
                "Link": f'<{self.hub}>; rel="hub", <{topic}>; rel="self"'})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    statuses.append(r.status)
            except urllib.error.HTTPError as e:
                statuses.append(e.code)
            except (urllib.error.URLError, OSError):
                statuses.append(0)
            self.log("delivered", f"{sub.callback} {statuses[-1]}")
        return statuses

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/feed.xml":
                    hub.log("feed-fetched")
                    self._send(200, hub.feed(), "application/atom+xml")
                elif self.path.split("?")[0] == "/plain.xml":
                    hub.log("plain-fetched")
                    self._send(200, atom_feed(None, f"{hub.url}/plain.xml", hub.plain_entries),
                               "application/atom+xml")
                else:
                    self._send(404, b"no such page")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                if self.path != "/hub":
                    self._send(404)
                    return
                mode = form.get("hub.mode", [""])[0]
                if mode == "publish":
                    urls = form.get("hub.url", []) + form.get("hub.topic", [])
                    hub.log("ping", " ".join(urls))
                    self._send(204)
                    for url in urls:
                        threading.Thread(target=hub._fetch_and_deliver, args=(url,), daemon=True).start()
                    return
                topic, callback = form.get("hub.topic", [""])[0], form.get("hub.callback", [""])[0]
                if mode not in ("subscribe", "unsubscribe") or not topic or not callback:
                    self._send(400, b"hub.mode, hub.topic and hub.callback are required")
                    return
                secret = form.get("hub.secret", [""])[0]
                asked = int(form.get("hub.lease_seconds", ["864000"])[0])
                lease = hub.lease_seconds or asked
                hub.log(f"{mode}-request", callback)
                self._send(202)
                if hub.verify:
                    threading.Thread(target=hub._verify, args=(mode, topic, callback, secret, lease),
                                     daemon=True).start()

        return Handler

    def _fetch_and_deliver(self, url: str) -> None:
        with self.lock:
            if not any(t == url for t, _ in self.subscribers):
                return  # nobody to deliver to (a hub fetches what it has subscribers for)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body, ctype = r.read(), r.headers.get("Content-Type", "application/octet-stream")
        except (urllib.error.URLError, OSError):
            self.log("topic-fetch-failed", url)
            return
        self.log("topic-fetched", url)
        self.publish(url, body, content_type=ctype)

    def subscribe_local(self, topic: str, callback: str, secret: str = "local") -> None:
        """Add a subscriber without a request (a bench's own listener), verified as any other."""
        self._verify("subscribe", topic, callback, secret, 3600)
