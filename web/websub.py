"""WebSub publishing: tell the hubs which feed URLs changed, without ever holding up collection.

The collector hands over the topics a run changed; a background thread turns
them into the public feed URLs (every format), merges whatever piled up, and
POSTs ``hub.mode=publish`` with the URLs in batches to every hub, retrying a
failed batch with doubling delays.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlencode

import urllib3

from aggregator.config import Config

log = logging.getLogger("feedhub.websub")


class HubPublisher:
    """Pings the configured hubs for changed topics; ``publish`` returns at once."""

    def __init__(self, config: Config, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.hubs = config.websub.hubs
        self.sleep = sleep
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=config.websub.timeout))
        self._queue: queue.Queue[set[str] | None] = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: (hub, urls, ok) of every finished batch, newest last (bounded)
        self.sent: list[tuple[str, tuple[str, ...], bool]] = []

    def urls(self, topics: Iterable[str]) -> list[str]:
        """The public URLs of the topics, in every format."""
        # Here, not at the top: `feedhub collect` publishes through this class, and the feed
        # renderers' imports (feedgen, lxml, dateutil) would otherwise be part of its start-up.
        from feeds.render import SUFFIXES
        from feeds.select import topic_path

        base = self.config.server.base_url
        default = self.config.site.default_edition
        return sorted(f"{base}{topic_path(t, default)}.{suffix}" for t in set(topics) for suffix in SUFFIXES.values())

    def publish(self, topics: Iterable[str]) -> None:
        """Queue the topics for the hubs; never blocks."""
        topics = set(topics)
        if not self.hubs or not topics:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="websub", daemon=True)
                self._thread.start()
            self._idle.clear()
            self._queue.put(topics)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued was delivered or given up; False on timeout."""
        return self._idle.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=5)
                self._thread = None
        self.http.clear()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            topics = set(item)
            stop = False
            while True:  # merge whatever piled up while the last ping was under way
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                topics |= more
            urls = self.urls(topics)
            size = self.config.websub.batch
            for hub in self.hubs:
                for start in range(0, len(urls), size):
                    self._deliver(hub, tuple(urls[start:start + size]))
            if self._queue.empty():
                self._idle.set()
            if stop:
                return

    def _deliver(self, hub: str, urls: tuple[str, ...]) -> None:
        cfg = self.config.websub
        body = urlencode([("hub.mode", "publish"), *(("hub.url", u) for u in urls)])
        delay = cfg.retry_delay
        for attempt in range(1, cfg.attempts + 1):
            try:
                resp = self.http.request("POST", hub, body=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "User-Agent": self.config.collect.user_agent})
                if 200 <= resp.status < 300:
                    self._done(hub, urls, True)
                    return
                reason = f"HTTP {resp.status}"
            except urllib3.exceptions.HTTPError as e:
                reason = str(getattr(e, "reason", None) or e)
            if attempt < cfg.attempts:
                log.warning("hub %s refused %d URL(s) (%s); retrying in %.0f s", hub, len(urls), reason, delay)
                self.sleep(delay)
                delay *= 2
            else:
                log.error("hub %s: gave up after %d attempts (%s)", hub, attempt, reason)
        self._done(hub, urls, False)

    def _done(self, hub: str, urls: tuple[str, ...], ok: bool) -> None:
        self.sent.append((hub, urls, ok))
        del self.sent[:-1000]
