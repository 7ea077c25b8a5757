"""Retrieval of a source's bytes: HTTP(S), or a local file under the samples directory.

No parsing and no store access here: the result is bytes plus what HTTP said.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import urllib3

from .config import CollectConfig
from .errors import FetchError

MAX_REDIRECTS = 5
_LOCAL_TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml",
                ".rdf": "application/rdf+xml", ".xml": "application/xml",
                ".json": "application/feed+json"}
_CHUNK = 64 * 1024


@dataclass
class FetchResult:
    """What one fetch produced. ``body`` is None when the server answered 304."""

    url: str
    status: int
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    #: the target of a permanent redirect (301/308) seen on the way, if any
    permanent_redirect: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    """Fetches sources politely: conditional GET, timeouts, size caps, bounded redirects."""

    def __init__(self, config: CollectConfig):
        self.config = config
        self.pool = urllib3.PoolManager(
            num_pools=50, maxsize=4, retries=False,
            timeout=urllib3.Timeout(connect=min(10.0, config.timeout), read=config.timeout))

    def fetch(self, url: str, *, local_path: Path | None = None, etag: str | None = None,
              last_modified: str | None = None) -> FetchResult:
        """Fetch ``url`` (or read ``local_path``); raise FetchError with a clear message on failure."""
        if local_path is not None:
            return self._read_local(url, local_path)
        headers = {
            "User-Agent": self.config.user_agent,
            "Accept": ("application/atom+xml, application/rss+xml, application/rdf+xml, "
                       "application/feed+json, application/json;q=0.9, application/xml;q=0.9, "
                       "text/xml;q=0.9, */*;q=0.5"),
            "Accept-Encoding": "gzip, deflate",
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        permanent: str | None = None
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            if urlsplit(current).scheme not in ("http", "https"):
                raise FetchError(f"refusing to fetch {current!r}: only http and https are allowed")
            try:
                resp = self.pool.request("GET", current, headers=headers, redirect=False,
                                         preload_content=False)
            except urllib3.exceptions.HTTPError as e:
                raise FetchError(f"cannot fetch {current}: {_reason(e)}") from e
            try:
                if resp.status in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise FetchError(f"HTTP {resp.status} redirect without a Location header",
                                         status=resp.status)
                    target = urljoin(current, location)
                    if resp.status in (301, 308) and permanent is None and current == url:
                        permanent = target
                    current = target
                    continue
                if resp.status == 304:
                    return FetchResult(url=current, status=304, body=None,
                                       headers=dict(resp.headers), etag=etag,
                                       last_modified=last_modified, permanent_redirect=permanent)
                if resp.status >= 400:
                    raise FetchError(f"HTTP {resp.status} {_phrase(resp.status)} from {current}",
                                     status=resp.status)
                if resp.status != 200:
                    raise FetchError(f"unexpected HTTP {resp.status} from {current}", status=resp.status)
                body = self._read_capped(resp, current)
                return FetchResult(url=current, status=200, body=body, headers=dict(resp.headers),
                                   etag=resp.headers.get("ETag"),
                                   last_modified=resp.headers.get("Last-Modified"),
                                   permanent_redirect=permanent)
            finally:
                resp.release_conn()
        raise FetchError(f"more than {MAX_REDIRECTS} redirects starting at {url}")

    def _read_capped(self, resp: urllib3.BaseHTTPResponse, url: str) -> bytes:
        # Count decoded bytes, so a small gzip bomb is stopped as early as a huge plain body.
        limit = self.config.max_bytes
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{url} declares {declared} bytes, over the limit of {limit}")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in resp.stream(_CHUNK, decode_content=True):
                total += len(chunk)
                if total > limit:
                    raise FetchError(f"{url} sent more than {limit} bytes (after decompression)")
                chunks.append(chunk)
        except urllib3.exceptions.HTTPError as e:
            raise FetchError(f"reading {url} failed: {_reason(e)}") from e
        return b"".join(chunks)

    def _read_local(self, url: str, path: Path) -> FetchResult:
        try:
            size = path.stat().st_size
            if size > self.config.max_bytes:
                raise FetchError(f"{path} has {size} bytes, over the limit of {self.config.max_bytes}")
            body = path.read_bytes()
        except FileNotFoundError:
            raise FetchError(f"local sample file {path} does not exist", status=404) from None
        except OSError as e:
            raise FetchError(f"cannot read {path}: {e.strerror}") from e
        content_type = _LOCAL_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FetchResult(url=url, status=200, body=body, headers={"Content-Type": content_type})

    def close(self) -> None:
        self.pool.clear()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _reason(e: Exception) -> str:
    """A one-line reason from urllib3's nested exceptions."""
    reason = getattr(e, "reason", None)
    return str(reason or e)
