"""The render cache: rendered feed bytes, valid exactly while the feed's change counter is unchanged.

No time-to-live: a cached rendering carries the topic revision it was made
from, and any write to that feed's entries bumps the revision (in the same
transaction). The revision is read before rendering, so a collect that
commits meanwhile can only cause one extra render, never a stale answer.
Concurrent requests for the same cold feed wait for one render (single flight).
"""
from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime

from werkzeug.datastructures import Headers
from werkzeug.http import http_date

from feeds import clock

#: bodies smaller than this are not worth compressing
GZIP_MIN = 512


@dataclass(frozen=True)
class Rendered:
    """One feed rendering, in both content codings, with the response headers of each.

    Everything is decided when it is made, so the view and the hot path (web.hot) only
    read it: a hot feed's request then costs a cache lookup, not a dozen header builds.
    """

    revision: int
    body: bytes
    gzipped: bytes | None
    etag: str
    last_modified: datetime
    #: the rendering is not served from this instant on (content that ages by itself)
    expires: datetime | None
    #: response headers for the body as it is, and for the gzipped body (None: not gzipped)
    headers: Headers = field(compare=False)
    gzip_headers: Headers | None = field(compare=False)

    @classmethod
    def make(cls, revision: int, body: bytes, etag: str, last_modified: datetime, links: str,
             content_type: str, max_age: int, expires: datetime | None = None) -> "Rendered":
        # mtime=0 keeps the gzip bytes (and so their ETag) the same for the same body
        gz = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= GZIP_MIN else None

        def headers(gzipped: bool) -> Headers:
            h = Headers([("Content-Type", content_type)])
            # Each content coding is its own representation, so each gets its own strong ETag.
            h["ETag"] = f'"{etag}{"-gz" if gzipped else ""}"'
            if gzipped:
                h["Content-Encoding"] = "gzip"
            h["Vary"] = "Accept-Encoding"
            h["Last-Modified"] = http_date(last_modified)
            h["Cache-Control"] = f"public, max-age={max_age}"
            h["X-Content-Type-Options"] = "nosniff"
            h["Access-Control-Allow-Origin"] = "*"
            h["Access-Control-Expose-Headers"] = "ETag, Link, Last-Modified"
            h["Link"] = links
            return h
        return cls(revision, body, gz, etag, last_modified, expires, headers(False),
                   headers(True) if gz is not None else None)

    def headers_for(self, gzipped: bool) -> Headers:
        """The response headers of one coding (the caller copies them before changing any)."""
        return self.gzip_headers if gzipped and self.gzip_headers is not None else self.headers

    def valid(self, revision: int) -> bool:
        return self.revision == revision and (self.expires is None or clock.now() < self.expires)


class RenderCache:
    """An LRU of Rendered feeds keyed by (feed, parameters, format, ...), bounded by bytes:
    the bodies (plain and gzipped) and RENDERED_OVERHEAD per rendering for its headers."""

    def __init__(self, max_bytes: int = 48 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self.size = 0
        self._flights: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.renders = 0  # how many times render() actually ran (for tests and the benchmark)

    def clear(self) -> None:
        """Forget every rendering (the config they were made with changed)."""
        with self._lock:
            self._items.clear()
            self._sizes.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, revision: int, render: Callable[[], Rendered]) -> Rendered:
        """The cached rendering for ``key`` if made at ``revision``, else a fresh one."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit.valid(revision):
                self._items.move_to_end(key)
                return hit
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            with self._lock:  # someone else may have rendered it while we waited
                hit = self._items.get(key)
                if hit is not None and hit.valid(revision):
                    return hit
            fresh = render()
            size = len(fresh.body) + len(fresh.gzipped or b"") + RENDERED_OVERHEAD
            with self._lock:
                self.renders += 1
                self.size += size - self._sizes.get(key, 0)
                self._items[key], self._sizes[key] = fresh, size
                self._items.move_to_end(key)
                while self.size > self.max_bytes and len(self._items) > 1:
                    old, _ = self._items.popitem(last=False)
                    self.size -= self._sizes.pop(old)
                    if old != key:
                        self._flights.pop(old, None)
            return fresh


#: what a rendering costs besides its bodies: two header sets, the object, the key (measured
#: with tracemalloc over a thousand renderings: 2.5-3.5 KiB)
RENDERED_OVERHEAD = 4096
