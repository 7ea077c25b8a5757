"""Counting who pulls what, off the request path: requests add to counters in memory, and a
background thread writes them to the store in batches (every few seconds, and on close), so
serving never waits on a write for it."""
from __future__ import annotations

import logging
import re
import threading
from datetime import date, datetime, timezone

from aggregator import store

log = logging.getLogger("feedhub.usage")

#: "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 42 subscribers; feed-id=...)"
_SUBSCRIBERS = re.compile(r"(\d{1,9})\s+(?:subscribers?|readers?)\b", re.I)
#: distinct User-Agents remembered per partner and day, in memory between writes
MAX_AGENTS = 20

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _countable(text: str, limit: int = 300) -> str | None:
    """``text`` as it may be stored (cut to ``limit``), or None for a path or agent carrying
    control characters: a hostile request is answered, but never written, since one such value
    would make every batch it is in fail (PostgreSQL refuses NUL in text)."""
    return None if _UNPRINTABLE.search(text) else text[:limit]


def aggregator_name(agent: str) -> str:
    """The aggregator in a User-Agent with a subscriber count: the agent without the counts and
    ids that change from request to request (so one aggregator counts once a day)."""
    name = _SUBSCRIBERS.sub("", agent)
    name = re.sub(r"(feed-?id|id)=[^;)\\s]*", "", name, flags=re.I)
    return " ".join(re.sub(r"[;(),\s]+", " ", name).split())[:200] or "unknown"


class UsageRecorder:
    """Counters in memory, written to the store every ``every`` seconds by a thread of its own."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, str, date], store.UsageCount] = {}
        self._agents: set[tuple[int, date, str]] = set()
        self._subscribers: dict[tuple[str, date, str], int] = {}
        self._keys: dict[int, datetime] = {}
        self._requests: dict[tuple[str, date], int] = {}
        #: User-Agent -> (aggregator, subscribers), or ("", 0) for one that reports none
        self._parsed: dict[str, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def partner(self, partner_id: int, key_id: int, feed: str, status: int, size: int, agent: str) -> None:
        """Count one partner request (any status: 200, 304, 429, ...)."""
        clean = _countable(feed)
        if clean is None:
            return
        feed, agent = clean, _countable(agent, 200) or ""
        now = datetime.now(timezone.utc)
        day = now.date()
        with self._lock:
            c = self._counts.get((partner_id, feed, day))
            if c is None:
                c = self._counts[(partner_id, feed, day)] = store.UsageCount(partner_id, feed, day)
            c.requests += 1
            c.ok += status == 200
            c.not_modified += status == 304
            c.limited += status == 429
            c.bytes += size
            c.last_seen = now
            if agent and sum(1 for a in self._agents if a[0] == partner_id) < MAX_AGENTS:
                self._agents.add((partner_id, day, agent[:200]))
            self._keys[key_id] = now
        self._start()

    def public(self, feed: str, agent: str) -> None:
        """Count a request for a public feed, and the subscribers an aggregator reports in its
        User-Agent."""
        clean = _countable(feed)
        if clean is None:
            return
        feed = clean
        day = datetime.now(timezone.utc).date()
        with self._lock:
            key = (feed, day)
            self._requests[key] = self._requests.get(key, 0) + 1
        parsed = self._parsed.get(agent)
        if parsed is None:  # an aggregator polls with one User-Agent: read it once
            found = _SUBSCRIBERS.search(agent) if _countable(agent) is not None else None
            parsed = (aggregator_name(agent), int(found.group(1))) if found else ("", 0)
            if len(self._parsed) > 10_000:
                self._parsed.clear()
            self._parsed[agent] = parsed
        if parsed[0]:
            seen = (feed[:300], day, parsed[0])
            with self._lock:
                if self._subscribers.get(seen, -1) < parsed[1]:
                    self._subscribers[seen] = parsed[1]
        self._start()

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="usage", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.flush()

    def flush(self) -> None:
        """Write what was counted since the last write (kept for the next try if the store fails)."""
        with self._lock:
            counts, agents = list(self._counts.values()), sorted(self._agents)
            subscribers = [(*k, v) for k, v in self._subscribers.items()]
            keys = dict(self._keys)
            requests = [(*k, v) for k, v in self._requests.items()]
            self._counts, self._agents, self._subscribers, self._keys, self._requests = {}, set(), {}, {}, {}
        if not (counts or agents or subscribers or keys or requests):
            return
        try:
            store.connect()
            store.add_usage(counts, agents, subscribers, keys, requests)
        except Exception as e:
            failure = store.diagnose(e)
            if failure is None:
                # Not the store's fault: trying the same batch again would fail again. One line,
                # no traceback: formatting one in this thread races the main thread's ast use on
                # Python 3.11 (CPython gh-106905).
                log.error("could not write usage counts, a batch of %d is dropped: %s: %s", len(counts),
                          type(e).__name__, e)
                return
            store.reset_connection()
            log.warning("could not write usage counts (kept for the next try): %s", failure)
            with self._lock:  # merge back, so nothing counted is lost
                for c in counts:
                    mine = self._counts.setdefault((c.partner_id, c.feed, c.day),
                                                   store.UsageCount(c.partner_id, c.feed, c.day))
                    mine.requests += c.requests
                    mine.ok += c.ok
                    mine.not_modified += c.not_modified
                    mine.limited += c.limited
                    mine.bytes += c.bytes
                    mine.last_seen = max(filter(None, (mine.last_seen, c.last_seen)), default=None)
                self._agents.update(agents)
                for feed, day, agg, n in subscribers:
                    self._subscribers[(feed, day, agg)] = max(self._subscribers.get((feed, day, agg), 0), n)
                for k, when in keys.items():
                    self._keys[k] = max(self._keys.get(k, when), when)
                for feed, day, n in requests:
                    self._requests[(feed, day)] = self._requests.get((feed, day), 0) + n

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
