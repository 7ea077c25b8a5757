"""feedhub as a WebSub subscriber (https://www.w3.org/TR/websub/): content pushed in by the
hubs its sources name, instead of waiting for the next poll.

- A fetched feed that names a hub (``atom:link rel="hub"`` in Atom or RSS, a ``Link`` header,
  JSON Feed ``hubs``) makes the collector want a subscription there (store.websub), when
  ``[server] base_url`` says where the hub can call us back.
- The collector asks the hub (``Subscriptions.tick``), asks again when it does not verify,
  renews before the lease ends, and unsubscribes when the source is disabled or removed.
- The hub verifies our intent and delivers content at ``/websub/callback/<id>`` (web.subscriber);
  the collector stores delivered content through the same parse, normalise and store path as a
  fetched body (``Collector.take_deliveries``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urljoin

from . import store
from .config import Config
from .errors import FetchError

log = logging.getLogger("feedhub.websub")

#: the longest wait between attempts at a subscription that keeps failing
MAX_BACKOFF = timedelta(hours=6)
#: attempts at an unsubscription before giving up on the hub confirming it
UNSUBSCRIBE_ATTEMPTS = 3
#: how long a delivery's digest is kept to recognise a replay
REPLAY_WINDOW = timedelta(days=7)

_LINK_HEADER = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]*)*)')
_LINK_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?link\b([^>]*)>", re.I)
_ATTR = re.compile(rb"""([A-Za-z_:][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_FIRST_ITEM = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\b", re.I)


def _rels(params: str) -> set[str]:
    found = re.search(r'rel\s*=\s*"([^"]*)"|rel\s*=\s*([^\s;,]+)', params, re.I)
    if not found:
        return set()
    return set((found.group(1) or found.group(2) or "").lower().split())


def discover(body: bytes, headers: dict[str, str], url: str) -> tuple[list[str], str | None]:
    """The hubs a fetched feed names, and its self URL (the WebSub topic), from the HTTP ``Link``
    header first, then the document: feed-level ``link`` elements of Atom and RSS (before the
    first entry), or JSON Feed's ``hubs`` and ``feed_url``. Relative URLs resolve against ``url``."""
    hubs: list[str] = []
    topic: str | None = None
    link = next((v for k, v in headers.items() if k.lower() == "link"), "")
    for target, params in _LINK_HEADER.findall(link):
        rels = _rels(params)
        if "hub" in rels:
            hubs.append(urljoin(url, target.strip()))
        if "self" in rels and topic is None:
            topic = urljoin(url, target.strip())
    head = body.lstrip()[:1]
    if head == b"{":
        try:
            data = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            data = None
        if isinstance(data, dict):
            for hub in data.get("hubs") or []:
                if (isinstance(hub, dict) and str(hub.get("type", "")).lower() == "websub"
                        and isinstance(hub.get("url"), str)):
                    hubs.append(urljoin(url, hub["url"]))
            if topic is None and isinstance(data.get("feed_url"), str):
                topic = urljoin(url, data["feed_url"])
    else:
        first = _FIRST_ITEM.search(body, 0, 262_144)
        for match in _LINK_TAG.finditer(body, 0, first.start() if first else min(len(body), 262_144)):
            attrs = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
                     for m in _ATTR.finditer(match.group(1))}
            href = attrs.get(b"href")
            if not href:
                continue
            rels = set(attrs.get(b"rel", b"").decode("utf-8", "replace").lower().split())
            target = urljoin(url, href.decode("utf-8", "replace").strip())
            if "hub" in rels:
                hubs.append(target)
            if "self" in rels and topic is None:
                topic = target
    usable = [h for h in dict.fromkeys(hubs) if h.lower().startswith(("http://", "https://"))]
    return usable, topic


#: X-Hub-Signature methods WebSub allows (sha1 for old hubs)
_METHODS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def signature_problem(secret: str, body: bytes, header: str | None) -> str | None:
    """Why a delivery's ``X-Hub-Signature`` does not verify (None when it does)."""
    if not header:
        return "the delivery has no X-Hub-Signature, and this subscription has a secret"
    method, _, given = header.strip().partition("=")
    digest = _METHODS.get(method.lower())
    if digest is None:
        return f"X-Hub-Signature uses {method!r}; expected sha1, sha256, sha384 or sha512"
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    if not hmac.compare_digest(expected, given.strip().lower()):
        return "X-Hub-Signature does not match the content (wrong secret, or the content was changed)"
    return None


def callback_url(config: Config, callback_id: str) -> str:
    return f"{config.server.base_url.rstrip('/')}/websub/callback/{callback_id}"


def renew_at(now: datetime, lease_seconds: int | None, config: Config) -> datetime:
    """When to renew a lease granted now: at 80 % of it, at least a minute before it ends."""
    lease = lease_seconds or config.websub.lease_seconds
    return now + timedelta(seconds=max(lease * 0.8, lease - 3600) if lease > 300 else max(lease - 60, lease / 2))


def backoff(attempts: int, config: Config) -> timedelta:
    return min(MAX_BACKOFF, timedelta(seconds=config.websub.verify_timeout * 2 ** max(0, attempts - 1)))


class Poster(Protocol):
    def post_form(self, url: str, fields: dict[str, str]) -> tuple[int, str]: ...


class Subscriptions:
    """The collector's side of its subscriptions: ask, ask again, renew, unsubscribe."""

    def __init__(self, config: Config, poster: Poster):
        self.config = config
        self.poster = poster

    def enabled(self) -> bool:
        return self.config.websub.subscribe and bool(self.config.server.base_url)

    def want(self, source_id: int, body: bytes, headers: dict[str, str], url: str, now: datetime) -> None:
        """After a fetch: subscribe where the feed names a hub (the first it names)."""
        if not self.enabled():
            return
        hubs, topic = discover(body, headers, url)
        if hubs and store.websub.want_subscription(source_id, hubs[0], topic or url, now):
            log.info("source %d names the hub %s: subscribing to %s", source_id, hubs[0], topic or url)

    def tick(self, now: datetime) -> int:
        """Act on every subscription that is due; returns how many requests were sent."""
        store.websub.retire_orphans(now)
        sent = 0
        for sub in store.websub.due(now):
            if sub.state != "unsubscribing" and not self.enabled():
                continue
            self._act(sub, now)
            sent += 1
        store.websub.prune_deliveries(now - REPLAY_WINDOW)
        return sent

    def _act(self, sub: store.websub.Subscription, now: datetime) -> None:
        mode = "unsubscribe" if sub.state == "unsubscribing" else "subscribe"
        fields = {"hub.mode": mode, "hub.topic": sub.topic, "hub.callback": callback_url(self.config, sub.callback_id)}
        if mode == "subscribe":
            fields.update({"hub.secret": sub.secret, "hub.lease_seconds": str(self.config.websub.lease_seconds)})
        attempts = sub.attempts + 1
        unanswered = None
        if sub.state == "requested" and sub.attempts:
            unanswered = (f"the hub accepted the request but did not verify it within "
                          f"{self.config.websub.verify_timeout} s; asked again")
        sent_at = store.aware(store.utcnow())
        try:
            status, answer = self.poster.post_form(sub.hub, fields)
        except FetchError as e:
            status, answer = None, str(e)

        def settle(**changes: object) -> None:
            # (the hub may have verified already, before its answer reached us: that stands)
            store.websub.update_unless_answered(sub.id, sub.state, sent_at, **changes)
        if status is not None and 200 <= status < 300:
            if mode == "unsubscribe" and attempts > UNSUBSCRIBE_ATTEMPTS:
                settle(state="ended", next_attempt_at=None,
                       last_error="the hub did not confirm the unsubscription; stopped asking")
                return
            state = "active" if sub.state == "active" else ("unsubscribing" if mode == "unsubscribe" else "requested")
            settle(state=state, requested_at=now, attempts=attempts, last_error=unanswered,
                   next_attempt_at=now + backoff(attempts, self.config))
            return
        said = f"HTTP {status}: {answer[:300]}" if status is not None else answer
        if mode == "unsubscribe" and (attempts >= UNSUBSCRIBE_ATTEMPTS or (status is not None and 400 <= status < 500)):
            settle(state="ended", next_attempt_at=None,
                   last_error=f"the hub refused the unsubscription ({said}); stopped asking")
            return
        log.warning("WebSub %s at %s for %s failed: %s", mode, sub.hub, sub.topic, said)
        settle(attempts=attempts, next_attempt_at=now + backoff(attempts, self.config),
               last_error=f"the hub refused the {mode} request: {said}"[:2000])

