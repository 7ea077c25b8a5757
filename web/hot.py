"""The hot path: a feed already rendered at its current revision, answered in front of Flask.

Most feed requests are polls of a feed nothing has changed since the last
poll. Flask's request context, routing, hooks and response objects cost more
than finding the answer, so this WSGI layer keeps, per exact request (path,
query, host, scheme, Accept-Encoding, method and kind of condition), the
status and headers Flask sent the last time. When the rendering behind them is
still valid at the feed's current revision, it sends the same answer again
itself; anything else (a new feed, a changed one, a request it has not seen
answered, any conditional header other than our exact ETag) goes to Flask.

Nothing here builds a header or decides a status: every answer is a copy of
one the Flask view made, so the two paths cannot drift apart.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from aggregator.store import TopicRevisions

from .cache import Rendered

#: where offer() leaves a Replayable for this layer (the WSGI environ is the one thing the
#: view and a middleware share about a request); nothing else reads or writes it
_ENVIRON_KEY = "feedhub.hot"

# Request headers that can make a feed response conditional (see web.public).
CONDITIONAL = frozenset(("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH",
                         "HTTP_IF_UNMODIFIED_SINCE", "HTTP_RANGE"))


def replay_kind(environ: dict[str, Any], etag: str) -> str | None:
    """Which answer a request asks for, of the two that can be replayed: "full" (no
    conditional header) or "304" (exactly our ETag in If-None-Match, nothing else).
    None for any other condition: werkzeug's conditional logic in the view decides."""
    conditions = CONDITIONAL.intersection(environ)
    if not conditions:
        return "full"
    if conditions == {"HTTP_IF_NONE_MATCH"} and environ["HTTP_IF_NONE_MATCH"] == etag:
        return "304"
    return None


@dataclass(frozen=True)
class Replayable:
    """What the feed view says of an answer that may be replayed (see offer)."""

    topic: str
    rendered: Rendered
    #: the rendering's day (Atom tombstones leave feeds as days pass; see web.public)
    day: date
    #: whether a full answer carries the gzip coding of the rendering (else the identity one)
    gzipped: bool
    #: the ETag the response carries, for matching If-None-Match
    etag: str
    #: "full" (no conditional header) or "304" (If-None-Match with exactly our ETag)
    kind: str


def offer(environ: dict[str, Any], replayable: Replayable) -> None:
    """The feed view's side of the interface: the answer it is sending for this request may be
    replayed, by HotFeeds, while ``replayable.rendered`` is current."""
    environ[_ENVIRON_KEY] = replayable


def _offered(environ: dict[str, Any]) -> Replayable | None:
    return environ.get(_ENVIRON_KEY)


@dataclass
class _Hot:
    """Answers for one exact request, valid together with one rendering.

    The rendering is held weakly: once the render cache lets it go, so does this layer
    (it never keeps feed bodies alive by itself).
    """

    topic: str
    rendered: weakref.ref[Rendered]
    day: date
    gzipped: bool
    etag: str
    #: (method, kind) -> (status line, header list) as Flask sent them
    answers: dict[tuple[str, str], tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)


class HotFeeds:
    """WSGI middleware replaying feed answers while their rendering is current."""

    def __init__(self, app: Callable[..., Iterable[bytes]], revisions: TopicRevisions, max_entries: int = 4096,
                 on_feed_request: Callable[[str, str], None] | None = None):
        self.app = app
        #: told (path, User-Agent) of every request for a public feed, hot or not
        self.on_feed_request = on_feed_request
        self.revisions = revisions
        self.max_entries = max_entries
        self._hot: OrderedDict[tuple[str, ...], _Hot] = OrderedDict()
        self._lock = threading.Lock()
        self.replayed = 0  # answers sent without Flask (for tests and the benchmark)

    def clear(self) -> None:
        """Replay nothing recorded so far (the config the answers were made with changed)."""
        with self._lock:
            self._hot.clear()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # The server's own start_response, for a live stream that takes its connection (web.stream).
        environ.setdefault("feedhub.start_response", start_response)
        method = environ.get("REQUEST_METHOD")
        if method != "GET" and method != "HEAD":
            return self.app(environ, start_response)
        if self.on_feed_request is not None:
            path = environ.get("PATH_INFO", "")
            if path.startswith("/feeds/") or path[3:10] == "/feeds/":  # /feeds/..., /ar/feeds/...
                self.on_feed_request(path, environ.get("HTTP_USER_AGENT", ""))
        key = (environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), environ.get("HTTP_HOST", ""),
               environ.get("wsgi.url_scheme", ""), environ.get("HTTP_ACCEPT_ENCODING", ""))
        hot = self._hot.get(key)
        rendered = hot.rendered() if hot is not None else None
        if hot is not None and rendered is not None:
            answer = self._replay(hot, rendered, environ, method)
            if answer is not None:
                status, headers = answer
                start_response(status, list(headers))
                self.replayed += 1
                if method == "GET" and status[:3] == "200":
                    body = rendered.gzipped if hot.gzipped else rendered.body
                    assert body is not None  # a gzipped answer was only recorded where there is one
                    return [body]
                return []
        return self._through_flask(key, environ, start_response, method)

    def _replay(self, hot: _Hot, rendered: Rendered, environ: dict[str, Any],
                method: str) -> tuple[str, list[tuple[str, str]]] | None:
        """The stored answer for this request, if there is one and it is still right."""
        kind = replay_kind(environ, hot.etag)
        if kind is None:
            return None
        answer = hot.answers.get((method, kind))
        if answer is None or hot.day != datetime.now(timezone.utc).date():
            return None
        try:
            revision = self.revisions.get(hot.topic)
        except Exception:  # the store is unreachable: let the view answer (and report) it
            return None
        return answer if rendered.valid(revision) else None

    def _through_flask(self, key: tuple[str, ...], environ: dict[str, Any], start_response: Callable[..., Any],
                       method: str) -> Iterable[bytes]:
        sent: list[tuple[str, list[tuple[str, str]]]] = []

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            sent.append((status, list(headers)))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        body = self.app(environ, recording_start_response)
        marker = _offered(environ)
        if marker is not None and sent and sent[-1][0][:3] in ("200", "304"):
            self._remember(key, marker, method, sent[-1])
        return body

    def _remember(self, key: tuple[str, ...], marker: Replayable, method: str,
                  answer: tuple[str, list[tuple[str, str]]]) -> None:
        with self._lock:
            hot = self._hot.get(key)
            if hot is None or hot.rendered() is not marker.rendered or hot.day != marker.day:
                hot = _Hot(marker.topic, weakref.ref(marker.rendered), marker.day, marker.gzipped, marker.etag)
            hot.answers[(method, marker.kind)] = answer
            self._hot[key] = hot
            self._hot.move_to_end(key)
            while len(self._hot) > self.max_entries:
                self._hot.popitem(last=False)
