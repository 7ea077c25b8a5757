"""WebSub subscriptions feedhub holds at its sources' hubs, and the content the hubs deliver.

States of a subscription (aggregator.subscribe moves them):
- ``new``: wanted (a fetch found a hub), not yet asked for;
- ``requested``: the hub accepted the request and is to verify our intent;
- ``active``: verified; content arrives by push until ``expires_at`` (renewed before);
- ``denied``: the hub refused it (asked again a day later);
- ``unsubscribing``: the source was disabled, removed or moved hub: the hub is told to stop;
- ``ended``: the hub confirmed (or gave up being told); kept for the record.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw

from .connection import aware, stored, write_transaction
from .schema import Source, WebSubDelivery, WebSubSubscription

S = WebSubSubscription
D = WebSubDelivery

#: states in which a subscription is the source's (one at most per source, hub and topic)
LIVE = ("new", "requested", "active", "denied")
#: states the collector acts on when they are due
ACTIONABLE = (*LIVE, "unsubscribing")


@dataclass(frozen=True)
class Subscription:
    """A subscription as the collector, the callback and admins see it (instants aware UTC)."""

    id: int
    source_id: int | None
    callback_id: str
    hub: str
    topic: str
    secret: str
    state: str
    requested_at: datetime | None
    verified_at: datetime | None
    lease_seconds: int | None
    expires_at: datetime | None
    next_attempt_at: datetime | None
    attempts: int
    last_error: str | None
    deliveries: int
    rejected: int
    last_delivery_at: datetime | None

    def view(self) -> dict[str, object]:
        """What admins are shown (no secret)."""
        def iso(when: datetime | None) -> str | None:
            return when.isoformat().replace("+00:00", "Z") if when is not None else None
        return {"hub": self.hub, "topic": self.topic, "state": self.state,
                "requested_at": iso(self.requested_at), "verified_at": iso(self.verified_at),
                "lease_seconds": self.lease_seconds, "expires_at": iso(self.expires_at),
                "next_attempt_at": iso(self.next_attempt_at), "attempts": self.attempts,
                "last_error": self.last_error, "deliveries": self.deliveries, "rejected": self.rejected,
                "last_delivery_at": iso(self.last_delivery_at)}


def _of(r: WebSubSubscription) -> Subscription:
    return Subscription(
        id=r.id, source_id=r.source_id, callback_id=r.callback_id, hub=r.hub, topic=r.topic, secret=r.secret,
        state=r.state, requested_at=aware(r.requested_at), verified_at=aware(r.verified_at),
        lease_seconds=r.lease_seconds, expires_at=aware(r.expires_at), next_attempt_at=aware(r.next_attempt_at),
        attempts=r.attempts, last_error=r.last_error, deliveries=r.deliveries, rejected=r.rejected,
        last_delivery_at=aware(r.last_delivery_at))


def _unsubscribing(now: datetime) -> dict[str, object]:
    """The fields of a subscription the hub is to be told to end, from ``now`` on."""
    return {"state": "unsubscribing", "next_attempt_at": stored(now), "attempts": 0, "last_error": None}


def want_subscription(source_id: int, hub: str, topic: str, now: datetime) -> bool:
    """The source's feed names ``hub`` for ``topic``: make sure a subscription is wanted there,
    and that any other of the source's is ended. True when a new one was made."""
    with write_transaction():
        live = list(S.select().where(S.source == source_id, S.state.in_(LIVE)))
        if any(r.hub == hub and r.topic == topic for r in live):
            return False
        others = [r.id for r in live]
        if others:
            S.update(**_unsubscribing(now)).where(S.id.in_(others)).execute()
        S.insert(source=source_id, callback_id=secrets.token_urlsafe(24), hub=hub, topic=topic,
                 secret=secrets.token_hex(32), state="new", created_at=stored(now),
                 next_attempt_at=stored(now)).execute()
        return True


def retire_orphans(now: datetime) -> int:
    """Subscriptions of sources disabled, removed or gone become ``unsubscribing``; returns how many."""
    gone = Source.select(Source.id).where((Source.enabled == False) | Source.removed_at.is_null(False))  # noqa: E712
    with write_transaction():
        return (S.update(**_unsubscribing(now))
                .where(S.state.in_(LIVE), S.source.is_null() | S.source.in_(gone)).execute())


def due(now: datetime, limit: int = 100) -> list[Subscription]:
    """Subscriptions the collector should act on now (ask, ask again, renew, unsubscribe)."""
    return [_of(r) for r in S.select().where(S.state.in_(ACTIONABLE), S.next_attempt_at <= stored(now))
            .order_by(S.next_attempt_at).limit(limit)]


def update_unless_answered(sub_id: int, was: str, sent_at: datetime, **fields: object) -> bool:
    """Set fields after a request to the hub, unless the hub has answered it meanwhile (a hub
    may verify before its 202 reaches us): the subscription is still in ``was`` and was not
    verified since ``sent_at``. Returns whether it was set."""
    values = {k: stored(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    with write_transaction():
        return bool(S.update(**values).where(
            S.id == sub_id, S.state == was,
            S.verified_at.is_null() | (S.verified_at < stored(sent_at))).execute())


def by_callback(callback_id: str) -> Subscription | None:
    row = S.get_or_none(S.callback_id == callback_id)
    return _of(row) if row is not None else None


def verified(callback_id: str, mode: str, lease_seconds: int | None, now: datetime, renew_at: datetime) -> None:
    """The hub verified our intent: a subscription is active until its lease ends (renewed at
    ``renew_at``); an unsubscription is over."""
    with write_transaction():
        if mode == "subscribe":
            S.update(state="active", verified_at=stored(now), lease_seconds=lease_seconds,
                     expires_at=stored(now + timedelta(seconds=lease_seconds)) if lease_seconds else None,
                     next_attempt_at=stored(renew_at), attempts=0, last_error=None
                     ).where(S.callback_id == callback_id).execute()
        else:
            S.update(state="ended", next_attempt_at=None, last_error=None).where(S.callback_id == callback_id).execute()


def denied(callback_id: str, reason: str, now: datetime, retry_at: datetime) -> None:
    with write_transaction():
        S.update(state="denied", last_error=f"the hub denied the subscription: {reason}"[:2000],
                 next_attempt_at=stored(retry_at), expires_at=None).where(S.callback_id == callback_id).execute()


def receive(sub_id: int, body: bytes, content_type: str | None, digest: str, now: datetime) -> bool:
    """Keep delivered content for the collector; False when this exact content was delivered
    before (a replay or a hub's retry): it is not applied again."""
    with write_transaction():
        fresh = not D.select(D.id).where(D.subscription == sub_id, D.digest == digest).exists()
        if fresh:
            D.insert(subscription=sub_id, digest=digest, received_at=stored(now), body=body,
                     content_type=content_type).on_conflict_ignore().execute()
        S.update(deliveries=S.deliveries + 1, last_delivery_at=stored(now)).where(S.id == sub_id).execute()
        return fresh


def reject(sub_id: int, why: str) -> None:
    """Content refused (a signature that does not verify): counted, and said."""
    with write_transaction():
        S.update(rejected=S.rejected + 1, last_error=why[:2000]).where(S.id == sub_id).execute()


@dataclass(frozen=True)
class Delivery:
    id: int
    subscription_id: int
    source_key: str | None
    #: whether the source is enabled and not removed
    source_live: bool
    topic: str
    body: bytes
    content_type: str | None
    received_at: datetime


def pending(limit: int = 50) -> list[Delivery]:
    """Delivered content not stored yet, oldest first."""
    rows = (D.select(D.id, D.subscription, Source.key, Source.enabled, Source.removed_at, S.topic, D.body,
                     D.content_type, D.received_at)
            .join(S).join(Source, pw.JOIN.LEFT_OUTER, on=(S.source == Source.id))
            .where(D.processed_at.is_null()).order_by(D.id).limit(limit).tuples())
    return [Delivery(i, sub, key, bool(key is not None and enabled and removed is None), topic, bytes(body or b""),
                     ct, aware(at))
            for i, sub, key, enabled, removed, topic, body, ct, at in rows]


def any_pending() -> bool:
    """Whether any delivered content waits (one indexed look, made every tenth of a second)."""
    return D.select(D.id).where(D.processed_at.is_null()).limit(1).exists()


def delivered(delivery_id: int, outcome: str, now: datetime) -> None:
    """The delivery was stored (or refused): its body is dropped, its digest kept for replays."""
    with write_transaction():
        D.update(processed_at=stored(now), outcome=outcome[:2000], body=None).where(D.id == delivery_id).execute()


def prune_deliveries(before: datetime) -> int:
    """Forget processed deliveries received before ``before`` (their digests guard against replays until then)."""
    with write_transaction():
        return D.delete().where(D.processed_at.is_null(False), D.received_at < stored(before)).execute()


def by_source(source_ids: list[int] | None = None) -> dict[int, Subscription]:
    """Each source's current subscription (the newest that is not ended), for health views."""
    query = S.select().where(S.state != "ended", S.source.is_null(False)).order_by(S.id)
    if source_ids is not None:
        query = query.where(S.source.in_(source_ids))
    return {r.source_id: _of(r) for r in query}


def pushed_sources(now: datetime) -> set[int]:
    """Sources whose content arrives by push now (an active, unexpired subscription)."""
    return {i for (i,) in S.select(S.source).where(S.state == "active", S.source.is_null(False),
                                                   (S.expires_at.is_null()) | (S.expires_at > stored(now))).tuples()}


__all__ = ["Subscription", "Delivery", "want_subscription", "retire_orphans", "due", "update_unless_answered",
           "by_callback", "verified", "denied", "receive", "reject", "pending", "any_pending", "delivered",
           "prune_deliveries", "by_source", "pushed_sources"]
