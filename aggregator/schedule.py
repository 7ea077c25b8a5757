"""Pure scheduling: when a source is next due, after a success or a failure."""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import datetime

from .config import CollectConfig

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)\"?", re.I)


def max_age_seconds(cache_control: str | None) -> int | None:
    """max-age (or s-maxage) from a Cache-Control header; None when absent."""
    if not cache_control:
        return None
    found = [int(m.group(1)) for m in _MAX_AGE.finditer(cache_control)]
    return max(found) if found else None


def clamp(seconds: float, cfg: CollectConfig) -> float:
    return max(cfg.min_interval, min(cfg.max_interval, seconds))


def jittered(seconds: float, cfg: CollectConfig, rng: random.Random | None = None) -> float:
    """``seconds`` moved by up to +/- cfg.jitter of itself, so sources do not poll in lockstep."""
    if cfg.jitter <= 0:
        return seconds
    r = (rng or random).uniform(-cfg.jitter, cfg.jitter)
    return seconds * (1 + r)


def success_interval(configured: int, cfg: CollectConfig, *, ttl_minutes: int | None = None,
                     max_age: int | None = None, retry_after: int | None = None,
                     recent: Sequence[datetime] = (), breaking: bool = False) -> float:
    """Seconds until the next poll: the largest of the configured interval, the feed's ttl,
    the response's max-age and Retry-After, optionally stretched for rarely posting
    sources (never for breaking ones), clamped to the configured bounds (before jitter)."""
    candidates: list[float] = [configured, (ttl_minutes or 0) * 60, max_age or 0, retry_after or 0]
    if cfg.adaptive and not breaking:
        candidates.append(adaptive_interval(configured, recent))
    return clamp(max(candidates), cfg)


def adaptive_interval(configured: int, recent: Sequence[datetime]) -> float:
    """Half the median gap between a source's recent entries, but never below ``configured``.

    A source that posts every few minutes keeps its configured interval; one
    that posts twice a day is polled every few hours instead of every 15 minutes.
    """
    times = sorted(recent, reverse=True)[:20]
    if len(times) < 3:
        return configured
    gaps = sorted((a - b).total_seconds() for a, b in zip(times, times[1:], strict=False))
    median = gaps[len(gaps) // 2]
    return max(configured, median / 2)


def failure_delay(failures: int, configured: int, cfg: CollectConfig,
                  retry_after: int | None = None) -> float:
    """Seconds until retrying after ``failures`` consecutive failures.

    Retry-After (429/503) is honoured as given, up to max_interval; otherwise
    the delay doubles per failure from the configured interval, up to max_backoff.
    """
    if retry_after is not None:
        return min(max(retry_after, 1), cfg.max_interval)
    exponent = min(max(failures - 1, 0), 20)
    return min(configured * 2 ** exponent, cfg.max_backoff)
