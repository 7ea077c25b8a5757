"""Retrieval of a source's bytes: HTTP(S), or a local file under the samples directory.

No parsing and no store access here: the result is bytes plus what HTTP said.

Server-side request forgery is stopped where the socket is made: every address
a host name resolves to is checked (so a name that answers with one public and
one private address is refused, and DNS rebinding between check and connect is
impossible: we connect to an address we checked), and the peer actually
connected to is checked again. This runs for every redirect hop, because every
hop opens its connection through the same guarded classes.
"""
from __future__ import annotations

import email.utils
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlencode, urljoin

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.url import parse_url

from .config import CollectConfig
from .errors import FetchError

MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
#: most of an unread body (a redirect's, an error page's) read to keep its connection reusable
_DRAIN_CAP = 64 * 1024
_DRAIN_TIMEOUT = 1.0
_LOCAL_TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml",
                ".rdf": "application/rdf+xml", ".xml": "application/xml",
                ".json": "application/feed+json"}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(FetchError):
    """A source tried to reach an address that is not public (and not allowed by config)."""

    kind = "blocked"


@dataclass
class FetchResult:
    """What one fetch produced. ``body`` is None when the server answered 304."""

    url: str
    status: int
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    #: the target of a permanent redirect (301/308) on the first hop, if any
    permanent_redirect: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


# --- the address policy ---------------------------------------------------------

class AddressPolicy:
    """Which addresses sources may reach: public ones, plus config's allow_networks."""

    def __init__(self, allow: tuple[str, ...] = ()):
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for item in allow:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower())

    def host_allowed(self, host: str) -> bool:
        """An intranet host named in allow_networks may resolve to anything."""
        return host.lower().rstrip(".") in self.hosts

    def check(self, host: str, ip: str) -> None:
        """Raise BlockedAddress unless ``ip`` (an answer for ``host``) may be reached."""
        addr: Address = ipaddress.ip_address(ip.split("%", 1)[0])
        # ::ffff:127.0.0.1 reaches 127.0.0.1: judge the IPv4 address it carries.
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self.networks if net.version == addr.version):
            return
        if addr.is_global and not addr.is_multicast:
            return
        raise BlockedAddress(
            f"{host} resolves to {addr}, a {_describe_address(addr)} address; sources may only "
            "reach public addresses (an intranet source needs collect.allow_networks)")


def _describe_address(addr: Address) -> str:
    for attr, name in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                       ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                       ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(addr, attr):
            return name
    return "non-public"


def _guarded_connect(conn: HTTPConnection, policy: AddressPolicy) -> socket.socket:
    host = conn._dns_host
    try:
        answers = socket.getaddrinfo(host, conn.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise NameResolutionError(conn.host, conn, e) from e
    trusted = policy.host_allowed(host)
    if not trusted:
        for *_, sockaddr in answers:  # every answer, so a mixed answer set is refused
            policy.check(host, str(sockaddr[0]))
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in answers:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if isinstance(conn.timeout, (int, float)):
                sock.settimeout(conn.timeout)
            sock.connect(sockaddr)
            if not trusted:
                policy.check(host, sock.getpeername()[0])  # the address actually connected to
            return sock
        except BlockedAddress:
            sock.close()
            raise
        except socket.timeout as e:
            sock.close()
            raise ConnectTimeoutError(conn, f"connecting to {host} timed out") from e
        except OSError as e:
            sock.close()
            last = e
    raise NewConnectionError(conn, f"cannot connect to {host}: {last}") from last


def _guarded_pool_classes(policy: AddressPolicy) -> dict[str, type]:
    class GuardedHTTP(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_connect(self, policy)

    class GuardedHTTPS(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_connect(self, policy)

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTP

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPS

    return {"http": HTTPPool, "https": HTTPSPool}


# --- fetching ----------------------------------------------------------------------

class Fetcher:
    """Fetches sources politely and safely: conditional GET, caps, timeouts, bounded redirects."""

    def __init__(self, config: CollectConfig):
        self.config = config
        self.policy = AddressPolicy(config.allow_networks)
        self.pool = urllib3.PoolManager(num_pools=100, maxsize=max(1, config.per_host), retries=False)
        self.pool.pool_classes_by_scheme = _guarded_pool_classes(self.policy)
        # The usual timeouts, built once (a fetch with time to spare uses them as they are).
        self._timeout = urllib3.Timeout(connect=min(10.0, config.timeout), read=config.timeout)
        # URL -> (its host's connection pool, request path): a source's URL is fetched poll
        # after poll, so it is parsed and its pool looked up once, not on every request.
        self._routes: dict[str, tuple[HTTPConnectionPool, str]] = {}

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
        deadline = time.monotonic() + self.config.total_timeout
        permanent: str | None = None
        current = url
        seen = {url}
        for hop in range(MAX_REDIRECTS + 1):
            if not current[:8].lower().startswith(("http://", "https://")):
                raise FetchError(f"refusing to fetch {current!r}: only http and https are allowed")
            resp = self._request(current, headers, deadline)
            try:
                if resp.status in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise FetchError(f"HTTP {resp.status} redirect without a Location header",
                                         status=resp.status)
                    target = urljoin(current, location)
                    if hop == 0 and resp.status in (301, 308):
                        permanent = target
                    if target in seen:
                        raise FetchError(f"redirect loop: {current} leads back to {target}",
                                         status=resp.status)
                    seen.add(target)
                    current = target
                    continue
                self._raise_for_status(resp, current)
                if resp.status == 304:
                    return FetchResult(url=current, status=304, body=None, headers=dict(resp.headers),
                                       etag=resp.headers.get("ETag") or etag,
                                       last_modified=resp.headers.get("Last-Modified") or last_modified,
                                       permanent_redirect=permanent)
                body = self._read_capped(resp, current, deadline)
                return FetchResult(url=current, status=resp.status, body=body, headers=dict(resp.headers),
                                   etag=resp.headers.get("ETag"),
                                   last_modified=resp.headers.get("Last-Modified"),
                                   permanent_redirect=permanent)
            finally:
                _release(resp)
        raise FetchError(f"more than {MAX_REDIRECTS} redirects starting at {url}")

    def _request(self, url: str, headers: dict[str, str], deadline: float) -> urllib3.BaseHTTPResponse:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"fetching took longer than {self.config.total_timeout:g} s in total",
                             kind="timeout")
        timeout = self._timeout if remaining >= self.config.timeout else urllib3.Timeout(
            connect=min(10.0, self.config.timeout, remaining), read=min(self.config.timeout, remaining))
        try:
            pool, path = self._route(url)
            return pool.urlopen("GET", path, headers=headers, redirect=False, retries=False,
                                preload_content=False, timeout=timeout)
        except FetchError:
            raise
        except urllib3.exceptions.HTTPError as e:
            # urllib3 files a refused connection under its timeouts; it is no timeout.
            timed_out = isinstance(e, urllib3.exceptions.TimeoutError) and not isinstance(e, NewConnectionError)
            raise FetchError(f"cannot fetch {url}: {_reason(e)}", kind="timeout" if timed_out else "fetch") from e

    def _route(self, url: str) -> tuple[HTTPConnectionPool, str]:
        route = self._routes.get(url)
        if route is None or route[0].pool is None:  # new, or its pool was closed (evicted)
            parts = parse_url(url)
            route = (self.pool.connection_from_host(parts.host, parts.port, parts.scheme), parts.request_uri)
            if len(self._routes) >= 10_000:
                self._routes.clear()
            self._routes[url] = route
        return route

    def _raise_for_status(self, resp: urllib3.BaseHTTPResponse, url: str) -> None:
        status = resp.status
        if resp.headers.get("cf-mitigated", "").lower() == "challenge":
            raise FetchError(f"{url} answered with a bot challenge (cf-mitigated: challenge) instead "
                             "of the feed; ask the publisher to allow feedhub's User-Agent",
                             status=status, kind="challenge")
        if status == 410:
            raise FetchError(f"HTTP 410 Gone from {url}: the publisher removed this feed",
                             status=status, kind="gone")
        if status in (429, 503):
            retry = retry_after_seconds(resp.headers.get("Retry-After"))
            hint = f"; retry after {retry} s" if retry is not None else ""
            raise FetchError(f"HTTP {status} {_phrase(status)} from {url}{hint}", status=status,
                             kind="throttled", retry_after=retry)
        if status >= 400:
            raise FetchError(f"HTTP {status} {_phrase(status)} from {url}", status=status)
        if status not in (200, 203, 304):
            raise FetchError(f"unexpected HTTP {status} from {url}", status=status)

    def _read_capped(self, resp: urllib3.BaseHTTPResponse, url: str, deadline: float) -> bytes:
        # Count decoded bytes, so a small gzip bomb is stopped as early as a huge plain body.
        limit = self.config.max_bytes
        declared = resp.headers.get("Content-Length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{url} declares {declared} bytes, over the limit of {limit}", kind="too-large")
        chunks: list[bytes] = []
        total = 0
        # Only an uncompressed body's length is known in advance.
        expected = int(declared) if declared and declared.isascii() and declared.isdigit() and not resp.headers.get(
            "Content-Encoding") else -1
        try:
            # read1 returns whatever has arrived, so the deadline is checked after every
            # receive; stream() would wait for a whole chunk from a trickling server.
            while chunk := resp.read1(_CHUNK, decode_content=True):
                total += len(chunk)
                if total > limit:
                    raise FetchError(f"{url} sent more than {limit} bytes (after decompression)",
                                     kind="too-large")
                if time.monotonic() > deadline:  # a server that trickles forever
                    raise FetchError(f"{url} was still sending after {self.config.total_timeout:g} s; "
                                     "gave up", kind="timeout")
                chunks.append(chunk)
                if total == expected:
                    break  # the whole declared body is here: no need to ask for its end
        except urllib3.exceptions.HTTPError as e:
            kind = "timeout" if "timed out" in str(e) else "fetch"
            raise FetchError(f"reading {url} failed: {_reason(e)}", kind=kind) from e
        return b"".join(chunks)

    def _read_local(self, url: str, path: Path) -> FetchResult:
        try:
            size = path.stat().st_size
            if size > self.config.max_bytes:
                raise FetchError(f"{path} has {size} bytes, over the limit of {self.config.max_bytes}",
                                 kind="too-large")
            body = path.read_bytes()
        except FileNotFoundError:
            raise FetchError(f"local sample file {path} does not exist", status=404) from None
        except OSError as e:
            raise FetchError(f"cannot read {path}: {e.strerror}") from e
        content_type = _LOCAL_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FetchResult(url=url, status=200, body=body, headers={"Content-Type": content_type})

    def post_form(self, url: str, fields: dict[str, str]) -> tuple[int, str]:
        """POST a form (a WebSub hub's subscription request) under the same address policy and
        timeouts as fetches; (status, the first of its answer as text). FetchError if unreachable."""
        body = urlencode(fields).encode()
        headers = {"User-Agent": self.config.user_agent, "Content-Type": "application/x-www-form-urlencoded"}
        try:
            pool, path = self._route(url)
            resp = pool.urlopen("POST", path, body=body, headers=headers, redirect=False, retries=False,
                                preload_content=False, timeout=self._timeout)
        except FetchError:
            raise
        except urllib3.exceptions.HTTPError as e:
            raise FetchError(f"cannot reach {url}: {_reason(e)}") from e
        try:
            answer = resp.read(2000, decode_content=True) or b""
        except urllib3.exceptions.HTTPError:
            answer = b""
        finally:
            _release(resp)
        return resp.status, answer.decode("utf-8", "replace").strip()

    def close(self) -> None:
        self.pool.clear()


def _release(resp: urllib3.BaseHTTPResponse) -> None:
    """Give the response's connection back to the pool only if it is clean.

    HTTP/1.1 keeps a connection open for the next request, which may be another
    source's: whatever of this response's body is still unread would be read as
    the next answer's status line. So a body left unread (a redirect, an error or
    challenge page, a body cut off at a cap or timeout) is read to its end when
    that is cheap, and otherwise the connection is closed instead of reused.
    """
    try:
        if not resp.closed and resp.connection is not None:
            sock = getattr(resp.connection, "sock", None)
            if sock is not None:  # a peer that trickles is not waited for
                sock.settimeout(_DRAIN_TIMEOUT)
            left, until = _DRAIN_CAP, time.monotonic() + _DRAIN_TIMEOUT
            while left > 0 and time.monotonic() < until and (
                    chunk := resp.read1(min(left, _CHUNK), decode_content=False)):
                left -= len(chunk)
            if not resp.closed:  # more than the cap, or too slow: not worth it; drop the connection
                resp.connection.close()
    except Exception:  # the peer broke off, or timed out, while we drained: the connection is bad
        if resp.connection is not None:
            resp.connection.close()
    finally:
        resp.release_conn()


def retry_after_seconds(value: str | None, now: datetime | None = None) -> int | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # ("²" is a digit to isdigit, not to int)
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0, int((when - now).total_seconds()))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _reason(e: BaseException) -> str:
    """A sentence for what went wrong on the wire: never an exception's repr.

    urllib3 nests the real cause (http.client's BadStatusLine, IncompleteRead,
    ResponseNotReady, a reset socket, a TLS failure) inside its own errors, whose
    text is a tuple repr such as "('Connection aborted.', RemoteDisconnected(...))".
    """
    causes = list(_causes(e))
    for cause in causes:
        if isinstance(cause, BlockedAddress):
            return str(cause)
        for kinds, sentence in _SENTENCES:
            if isinstance(cause, kinds):
                return sentence
        if isinstance(cause, socket.gaierror):
            return "the host name could not be resolved"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the server's TLS certificate could not be verified ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return "the TLS (https) handshake with the server failed"
    for cause in causes:
        if isinstance(cause, NewConnectionError):  # (urllib3 files it under timeouts)
            return "the connection to the server could not be made"
        if isinstance(cause, (ConnectTimeoutError, socket.timeout, urllib3.exceptions.ReadTimeoutError)):
            return "the server did not answer in time"
        if isinstance(cause, OSError) and cause.strerror:
            return f"the connection failed: {cause.strerror.lower()}"
    return "the connection failed for an unknown reason"


_SENTENCES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (http.client.RemoteDisconnected, "the server closed the connection without answering"),
    (http.client.IncompleteRead, "the server closed the connection before sending the whole body"),
    (urllib3.exceptions.IncompleteRead, "the server closed the connection before sending the whole body"),
    (http.client.BadStatusLine, "the server's answer was not valid HTTP"),
    (http.client.LineTooLong, "the server sent a header line too long to be HTTP"),
    (http.client.ResponseNotReady, "the connection to the server was out of step; it will be made anew"),
    (urllib3.exceptions.DecodeError, "the body's compression (gzip/deflate) is corrupt"),
    (ConnectionRefusedError, "the server refused the connection (nothing listens on that port)"),
    (ConnectionResetError, "the server reset the connection"),
    (BrokenPipeError, "the server closed the connection while the request was sent"),
)


def _causes(e: BaseException) -> Iterator[BaseException]:
    """``e`` and what it wraps: urllib3's ``reason`` and args, and Python's cause chain."""
    seen: set[int] = set()
    todo = [e]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [x for x in (getattr(current, "reason", None), current.__cause__, current.__context__)
                 if isinstance(x, BaseException)]
        todo += [x for x in getattr(current, "args", ()) if isinstance(x, BaseException)]
