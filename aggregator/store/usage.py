"""Usage of the feeds: partners' requests per feed and day, and the subscribers aggregators
report for public feeds. Written in batches by the web layer, added up across processes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import peewee as pw

from .connection import aware, insert_rows, stored, write_transaction
from .schema import FeedRequests, FeedSubscribers, PartnerAgent, PartnerKey, PartnerUsage


@dataclass
class UsageCount:
    """Requests of one partner for one feed on one day (one batch's, or the stored total)."""

    partner_id: int
    feed: str
    day: date
    requests: int = 0
    ok: int = 0
    not_modified: int = 0
    limited: int = 0
    bytes: int = 0
    last_seen: datetime | None = None


def add_usage(counts: list[UsageCount], agents: list[tuple[int, date, str]],
              subscribers: list[tuple[str, date, str, int]], key_uses: dict[int, datetime],
              requests: list[tuple[str, date, int]] | None = None) -> None:
    """Add a batch in one transaction: counters add up, agents and keys' last use are noted,
    and an aggregator's subscriber count for a feed and day keeps its largest report."""
    table = PartnerUsage._meta.table_name
    with write_transaction():
        insert_rows(PartnerUsage, ("partner_id", "feed", "day", "requests", "ok", "not_modified", "limited", "bytes",
                                   "last_seen"),
                    [(c.partner_id, c.feed, c.day, c.requests, c.ok, c.not_modified, c.limited, c.bytes,
                      stored(c.last_seen) if c.last_seen else None)
                     for c in sorted(counts, key=lambda c: (c.partner_id, c.feed, c.day))],
                    f' ON CONFLICT (partner_id, feed, "day") DO UPDATE SET requests = "{table}".requests + '
                    f'excluded.requests, ok = "{table}".ok + excluded.ok, not_modified = "{table}".not_modified + '
                    f'excluded.not_modified, "limited" = "{table}"."limited" + excluded."limited", '
                    f'bytes = "{table}".bytes + excluded.bytes, last_seen = excluded.last_seen')
        insert_rows(PartnerAgent, ("partner_id", "day", "agent"), sorted(set(agents)), " ON CONFLICT DO NOTHING")
        sub_table = FeedSubscribers._meta.table_name
        insert_rows(FeedSubscribers, ("feed", "day", "aggregator", "subscribers"), sorted(subscribers),
                    f' ON CONFLICT (feed, "day", aggregator) DO UPDATE SET subscribers = '
                    f'CASE WHEN excluded.subscribers > "{sub_table}".subscribers THEN excluded.subscribers '
                    f'ELSE "{sub_table}".subscribers END')
        req_table = FeedRequests._meta.table_name
        insert_rows(FeedRequests, ("feed", "day", "requests"), sorted(requests or []),
                    f' ON CONFLICT (feed, "day") DO UPDATE SET requests = "{req_table}".requests + excluded.requests')
        for key_id, when in sorted(key_uses.items()):
            PartnerKey.update(last_used_at=stored(when)).where(PartnerKey.id == key_id).execute()


def partner_usage(partner_id: int, since: date) -> list[UsageCount]:
    """A partner's usage per feed and day since ``since``, newest day first."""
    return [UsageCount(u.partner_id, u.feed, u.day if isinstance(u.day, date) else date.fromisoformat(u.day),
                       u.requests, u.ok, u.not_modified, u.limited, u.bytes, aware(u.last_seen))
            for u in PartnerUsage.select().where(PartnerUsage.partner == partner_id, PartnerUsage.day >= since)
            .order_by(PartnerUsage.day.desc(), PartnerUsage.feed)]


def partner_agents(partner_id: int, since: date) -> list[str]:
    """The User-Agents a partner's requests came with since ``since``."""
    return sorted({a for (a,) in PartnerAgent.select(PartnerAgent.agent).where(
        PartnerAgent.partner == partner_id, PartnerAgent.day >= since).tuples()})


def feed_subscribers(day: date) -> dict[str, int]:
    """Public feed path -> subscribers on ``day``, summed over aggregators (each counted once)."""
    out: dict[str, int] = {}
    for feed, n in FeedSubscribers.select(FeedSubscribers.feed, FeedSubscribers.subscribers).where(
            FeedSubscribers.day == day).tuples():
        out[feed] = out.get(feed, 0) + n
    return out


def feed_requests(since: date, limit: int) -> list[tuple[str, int]]:
    """The most requested public feeds since ``since``: (path, requests), most first."""
    total = FeedRequests.select(FeedRequests.feed, pw.fn.SUM(FeedRequests.requests).alias("n")).where(
        FeedRequests.day >= since).group_by(FeedRequests.feed)
    return [(f, int(n)) for f, n in total.order_by(pw.SQL("n").desc(), FeedRequests.feed).limit(limit).tuples()]
