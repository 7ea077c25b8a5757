"""The WebSub callback: where the hubs of feedhub's sources verify our intent and deliver content.

``GET /websub/callback/<id>`` answers a hub's verification: the challenge is echoed only for
what feedhub asked for (a subscription it wants, an unsubscription it sent), anything else is
404. ``POST`` delivers content: it must carry a valid ``X-Hub-Signature`` made with the
subscription's own secret (else 403, and the subscription says why); content delivered before
(a replay, a hub's retry) is acknowledged and not applied again; the rest is kept for the
collector, which stores it as it stores a fetched body (aggregator.subscribe).
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

from flask import Blueprint, Response, current_app, request

from aggregator import store
from aggregator.config import Config
from aggregator.errors import BadRequest, NotFound
from aggregator.subscribe import renew_at, signature_problem

from .errors import error_response

subscriber = Blueprint("subscriber", __name__)

#: how long after a hub's denial it is asked again
DENIED_RETRY = timedelta(days=1)
#: the longest lease taken from a hub (a hub that grants more is renewed as if it granted this)
MAX_LEASE = 365 * 86400


def _config() -> Config:
    return current_app.config["FEEDHUB"]


def _subscription(callback_id: str) -> store.websub.Subscription:
    sub = store.websub.by_callback(callback_id) if len(callback_id) <= 64 else None
    if sub is None:
        raise NotFound("no such subscription")
    return sub


@subscriber.get("/websub/callback/<callback_id>")
def verify(callback_id: str) -> Response:
    """A hub verifies intent (or says it denied the subscription)."""
    sub = _subscription(callback_id)
    args = request.args
    mode, topic = args.get("hub.mode", ""), args.get("hub.topic", "")
    now = store.aware(store.utcnow())
    if mode == "denied":
        if topic != sub.topic:
            raise NotFound("no such subscription for that topic")
        store.websub.denied(callback_id, args.get("hub.reason", "no reason given"), now, now + DENIED_RETRY)
        return Response("", status=200, mimetype="text/plain")
    if mode not in ("subscribe", "unsubscribe"):
        raise BadRequest("hub.mode must be subscribe, unsubscribe or denied")
    challenge = args.get("hub.challenge", "")
    if not challenge:
        raise BadRequest("hub.challenge is missing")
    wanted = ("new", "requested", "active", "denied") if mode == "subscribe" else ("unsubscribing",)
    # Only what we asked for: a hub (or anyone) verifying a subscription we did not ask for, or
    # no longer want, is told there is none, and nothing changes.
    if topic != sub.topic or sub.state not in wanted:
        raise NotFound(f"no {mode} request for that topic is pending here")
    lease: int | None = None
    if mode == "subscribe":
        raw = args.get("hub.lease_seconds", "")
        if raw:
            if not raw.isdigit():
                raise BadRequest("hub.lease_seconds must be a whole number of seconds")
            lease = min(int(raw), MAX_LEASE)
    config = _config()
    store.websub.verified(callback_id, mode, lease, now, renew_at(now, lease, config))
    return Response(challenge, status=200, mimetype="text/plain")


@subscriber.post("/websub/callback/<callback_id>")
def deliver(callback_id: str) -> Response:
    """A hub delivers content for a subscription."""
    sub = _subscription(callback_id)
    if sub.state in ("unsubscribing", "ended"):
        # RFC-style "we do not want it": the hub stops delivering.
        return error_response(410, "this subscription has ended")
    if sub.state not in ("active", "requested"):
        raise NotFound("no active subscription here")
    limit = _config().collect.max_bytes
    if request.content_length is not None and request.content_length > limit:
        return error_response(413, f"content larger than {limit} bytes ([collect] max_bytes)")
    body = request.stream.read(limit + 1)  # (a chunked body has no length to check first)
    if len(body) > limit:
        return error_response(413, f"content larger than {limit} bytes ([collect] max_bytes)")
    problem = signature_problem(sub.secret, body, request.headers.get("X-Hub-Signature"))
    if problem is not None:
        store.websub.reject(sub.id, f"content refused: {problem}")
        return error_response(403, problem)
    digest = hashlib.sha256(body).hexdigest()
    fresh = store.websub.receive(sub.id, body, request.headers.get("Content-Type"), digest,
                                 store.aware(store.utcnow()))
    if not fresh:
        return Response("already received\n", status=200, mimetype="text/plain")
    return Response("accepted\n", status=202, mimetype="text/plain")
