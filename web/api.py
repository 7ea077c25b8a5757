"""/api/v1: the admin API (JSON, Bearer tokens, RFC 9457 problems, OpenAPI 3.1).

Every handler parses and checks the request, calls aggregator.admin (which checks roles,
validates, writes with an audit row) and shapes the answer: no business logic lives here.
"""
from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from aggregator import admin, auth, store
from aggregator.admin import Actor
from aggregator.config import SOURCE_FIELDS, Config
from aggregator.errors import (
    BadRequest,
    Conflict,
    FetchError,
    Invalid,
    ParseError,
    RequestError,
    TooManyRequests,
    Unauthorized,
)

from .openapi import openapi_document

api = Blueprint("api", __name__, url_prefix="/api/v1")

#: the largest request body the API reads
MAX_BODY = 1024 * 1024
#: failed authentications allowed per client address within FAILURE_WINDOW seconds
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0

_TITLES = {300: "Multiple Choices", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


class FailureLimiter:
    """Failed authentications per client address, in a sliding window: past the limit, the
    address gets 429 until its oldest failure leaves the window, whatever token it sends."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        seen = self._failures.setdefault(address, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen

    def blocked_for(self, address: str) -> float:
        """Seconds the address must wait (0: not blocked)."""
        with self._lock:
            now = self.clock()
            seen = self._recent(address, now)
            if len(seen) < self.limit:
                if not seen:
                    self._failures.pop(address, None)
                return 0.0
            return seen[0] + self.window - now

    def failed(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            self._recent(address, now).append(now)
            if len(self._failures) > 100_000:  # bounded, whatever an attacker does
                self._failures.clear()


class TooManyFailures(TooManyRequests):
    def __init__(self, wait: float):
        super().__init__(f"too many failed authentications from this address; try again in {int(wait) + 1} s",
                         wait)


class TooLarge(RequestError):
    status = 413


class Unsupported(RequestError):
    status = 415


def problem(status: int, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem document."""
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status, "detail": detail,
            "instance": request.path, **extra}
    resp = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def problem_for(e: Exception) -> Response:
    """The problem document for one of our errors (or an HTTP error) raised under /api/."""
    if isinstance(e, Invalid):
        return problem(422, "the request has invalid fields; nothing was written",
                       errors=[{"field": f, "message": m} for f, m in e.problems])
    if isinstance(e, Conflict):
        extra = {"errors": [{"field": e.field, "message": str(e)}]} if e.field else {}
        return problem(409, str(e), **extra)
    if isinstance(e, TooManyRequests):
        resp = problem(429, str(e))
        resp.headers["Retry-After"] = str(e.retry_after)
        return resp
    if isinstance(e, Unauthorized):
        resp = problem(401, str(e))
        resp.headers["WWW-Authenticate"] = 'Bearer realm="feedhub"'
        return resp
    if isinstance(e, RequestError):
        return problem(e.status, str(e))
    if isinstance(e, HTTPException):
        return problem(e.code or 500, e.description or e.name)
    raise e


def _config() -> Config:
    return current_app.config["FEEDHUB"]


def _now() -> datetime:
    return store.utcnow()


def _limiter() -> FailureLimiter:
    return current_app.extensions.setdefault("feedhub.api_failures", FailureLimiter())


@api.before_request
def _authenticate() -> None:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise TooLarge(f"the request body is {request.content_length} bytes; the API reads at most {MAX_BODY}")
    request.max_content_length = MAX_BODY  # a chunked body is cut off at the limit too
    for name, value in [("path", request.path), *request.args.items(multi=True)]:
        if _CONTROL.search(value) or _CONTROL.search(name):
            raise BadRequest(f"the {'path' if name == 'path' else f'parameter {name!r}'} holds control characters")
    if request.endpoint == "api.openapi":
        return
    address = request.remote_addr or "unknown"
    wait = _limiter().blocked_for(address)
    if wait > 0:
        raise TooManyFailures(wait)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("this API needs a token: send 'Authorization: Bearer TOKEN' "
                           "(make one with `feedhub users token NAME`)")
    if scheme.lower() != "bearer" or not token.strip():
        _limiter().failed(address)
        raise Unauthorized("the Authorization header must be 'Bearer TOKEN'")
    digest = auth.token_digest(token.strip())
    user = store.token_user(digest, _now())
    # The lookup is by SHA-256 of the token, so timing tells nothing about the token itself;
    # the comparison below is constant-time all the same.
    if user is None or not hmac.compare_digest(digest, auth.token_digest(token.strip())):
        _limiter().failed(address)
        raise Unauthorized("unknown or revoked token")
    g.actor = Actor(user.name, user.role, "api")


def _actor() -> Actor:
    actor: Actor = g.actor
    return actor


def _publish(done: admin.Done) -> admin.Done:
    publisher = current_app.extensions.get("feedhub.publisher")
    return admin.publish_with(publisher.publish if publisher else None, done)


def _body(kind: type = dict) -> Any:
    """The JSON request body: an object (or ``kind``); 400 says exactly what is wrong."""
    mime = request.mimetype or ""
    if mime != "application/json" and not mime.endswith("+json"):
        raise Unsupported(f"send the body as application/json (got {mime or 'no Content-Type'})")
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    except ValueError as e:
        raise BadRequest(f"the body is not valid JSON: {e}") from None
    if not isinstance(data, kind):
        raise Invalid([("body", f"must be a JSON {'object' if kind is dict else 'array'}")])
    bad = _control_chars(data)
    if bad:
        raise Invalid(bad)
    return data


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def _control_chars(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Fields of a JSON value whose text holds characters no feed may carry (NUL, controls,
    lone surrogates): named, so nothing half-written reaches the store or a feed."""
    if isinstance(value, str):
        return [(path or "body", "must not contain control characters")] if _CONTROL.search(value) else []
    if isinstance(value, dict):
        found = []
        for k, v in value.items():
            key = f"{path}.{k}" if path else str(k)
            found += _control_chars(k, key) + _control_chars(v, key)
        return found
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _control_chars(v, f"{path}[{i}]")]
    return []


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _fields(data: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    problems = [(k, f"unknown field; allowed: {', '.join(allowed)}") for k in data if k not in allowed]
    problems += [(k, "is required") for k in required if k not in data]
    if problems:
        raise Invalid(problems)


def _str_field(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise Invalid([(name, "must be a string")])
    return value


def _limit() -> int:
    raw = request.args.get("limit", "50")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise BadRequest(f"limit must be a whole number from 1 to 200, got {raw!r}")
    return int(raw)


def _cursor() -> int | None:
    raw = request.args.get("cursor")
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"cursor must be the next_cursor of a previous page, got {raw!r}")
    return int(raw)


def _page(items: list[Any], limit: int, cursor_of: Callable[[Any], str], view: Callable[[Any], Any]) -> Response:
    """A page of a list: items, and the cursor and URL of the next page (also a Link header)."""
    more = len(items) > limit
    items = items[:limit]
    next_cursor = cursor_of(items[-1]) if more and items else None
    next_url = None
    if next_cursor is not None:
        args = {k: v for k, v in request.args.items() if k != "cursor"}
        next_url = f"{request.base_url}?{urlencode({**args, 'cursor': next_cursor})}"
    resp = _json({"items": [view(i) for i in items], "next_cursor": next_cursor, "next": next_url})
    if next_url:
        resp.headers["Link"] = f'<{next_url}>; rel="next"'
    return resp


def _json(data: Any, status: int = 200) -> Response:
    resp = Response(json.dumps(data, ensure_ascii=False, default=_iso), status=status, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(type(value).__name__)


def _fetcher() -> Any:
    from aggregator.fetch import Fetcher

    return Fetcher(_config().collect)


def _fetch_problem(e: FetchError | ParseError) -> Invalid:
    return Invalid([("url", str(e))])


# --- views --------------------------------------------------------------------------------------

def source_view(h: store.SourceHealth) -> dict[str, Any]:
    base = f"/api/v1/sources/{h.key}"
    return {**{k: h.settings.get(k) for k in SOURCE_FIELDS}, "id": h.key, "managed": h.managed,
            "read_only": h.managed == "config",
            "health": {"status": h.status, "last_fetched_at": h.last_fetched_at, "last_success_at": h.last_success_at,
                       "last_status": h.last_status, "last_error": h.last_error,
                       "consecutive_failures": h.consecutive_failures, "next_due_at": h.next_due_at,
                       "entries_seen": h.entries_seen, "entries_stored": h.entries_stored, "fetch_url": h.fetch_url,
                       "disabled_reason": h.disabled_reason, "id_rule": h.id_rule, "warnings": list(h.warnings)},
            "websub": h.websub,
            "links": {"self": base, "log": f"{base}/log", "rules": f"{base}/rules"}}


def entry_view(e: store.EntryInfo) -> dict[str, Any]:
    return {"id": e.id, "public_id": e.public_id, "title": e.title, "link": e.link, "source": e.source,
            "edition": e.edition, "language": e.language, "section": e.section, "regions": list(e.regions),
            "tags": list(e.tags), "breaking": e.breaking, "published": e.published, "updated": e.updated,
            "retracted": e.retracted_at is not None, "retracted_at": e.retracted_at,
            "retraction_reason": e.retraction_reason, "summary": e.summary,
            "correction": ({"fields": e.override, "by": e.override_by, "at": e.override_at}
                           if e.override is not None else None)}


# --- sources ------------------------------------------------------------------------------------

@api.get("/openapi.json")
def openapi() -> Response:
    return _json(openapi_document(_config()))


def _page_by_name(items: list[Any], name: Callable[[Any], str], view: Callable[[Any], Any]) -> Response:
    """A page of a list sorted by a name: the cursor is the last name of the previous page."""
    limit, after = _limit(), request.args.get("cursor")
    found = [i for i in items if after is None or name(i) > after]
    return _page(found[:limit + 1], limit, name, view)


@api.get("/sources")
def list_sources() -> Response:
    return _page_by_name(admin.sources(), lambda h: h.key, source_view)


@api.post("/sources")
def add_source() -> Response:
    data = _body()
    _fields(data, SOURCE_FIELDS + ("discover",), required=("url",))
    actor = _actor()
    admin.require(actor, "sources")
    discover = data.pop("discover", True)
    if not isinstance(discover, bool):
        raise Invalid([("discover", "must be true or false")])
    url = _str_field(data, "url")
    if discover and url.lower().startswith(("http://", "https://")):
        fetcher = _fetcher()
        try:
            found = admin.discover(url, fetcher)
        except (FetchError, ParseError) as e:
            raise _fetch_problem(e) from None
        finally:
            fetcher.close()
        if found.candidates:
            return _json({"detail": f"{url} announces {len(found.candidates)} feeds; POST again with one of "
                                    "them as url", "candidates": [
                                        {"url": c.url, "title": c.title, "type": c.type} for c in found.candidates]},
                         status=300)
        assert found.feed_url is not None
        data["url"] = found.feed_url
        if "name" not in data:
            data["name"] = (found.title or "").strip()[:150] or found.feed_url
    done = admin.add_source(actor, data, _config(), _now())
    resp = _json(source_view(done.result), status=201)
    resp.headers["Location"] = f"/api/v1/sources/{done.result.key}"
    return resp


@api.get("/sources.opml")
def export_opml() -> Response:
    resp = Response(admin.export_opml(_config(), _now()), mimetype="text/x-opml")
    resp.headers["Content-Disposition"] = 'attachment; filename="sources.opml"'
    return resp


@api.post("/sources/import")
def import_opml() -> Response:
    dry = request.args.get("dry_run", "0")
    if dry not in ("0", "1", "true", "false"):
        raise BadRequest(f"dry_run must be 1 or 0, got {dry!r}")
    body = request.get_data(cache=True)
    done = admin.import_opml(_actor(), body, _config(), _now(), dry_run=dry in ("1", "true"))
    return _json(done.result, status=200 if dry in ("1", "true") else 201)


@api.get("/sources/<key>")
def get_source(key: str) -> Response:
    return _json(source_view(admin.source(key)))


@api.patch("/sources/<key>")
def edit_source(key: str) -> Response:
    data = _body()
    _fields(data, SOURCE_FIELDS)
    return _json(source_view(admin.edit_source(_actor(), key, data, _config(), _now()).result))


@api.delete("/sources/<key>")
def remove_source(key: str) -> Response:
    mode = request.args.get("entries", "keep")
    if mode not in ("keep", "retract"):
        raise BadRequest(f"entries must be 'keep' (the default) or 'retract', got {mode!r}")
    done = _publish(admin.remove_source(_actor(), key, mode == "retract", _config(), _now()))
    return _json(done.result)


@api.post("/sources/<key>/refresh")
def refresh_source(key: str) -> Response:
    return _json(admin.refresh_source(_actor(), key, _now()).result, status=202)


@api.get("/sources/<key>/log")
def source_log(key: str) -> Response:
    limit = _limit()
    rows = admin.fetch_log(key, limit + 1, _cursor())
    return _page(rows, limit, lambda r: str(r.id), lambda r: {
        "id": r.id, "started_at": r.started_at, "duration_ms": r.duration_ms, "status": r.status,
        "outcome": r.outcome, "bytes": r.bytes, "entries_new": r.entries_new, "entries_updated": r.entries_updated,
        "error_kind": r.error_kind, "error": r.error})


@api.get("/sources/<key>/rules")
def get_rules(key: str) -> Response:
    return _json({"rules": admin.rule_view(admin.source_config(key, _config()))})


@api.put("/sources/<key>/rules")
def put_rules(key: str) -> Response:
    data = _body()
    _fields(data, ("rules",), required=("rules",))
    admin.put_rules(_actor(), key, data["rules"], _config(), _now())
    return _json({"rules": admin.rule_view(admin.source_config(key, _config()))})


@api.post("/sources/<key>/rules/test")
def test_rules(key: str) -> Response:
    data = _body()
    _fields(data, ("rules",))
    fetcher = _fetcher()
    try:
        results = admin.trial_rules(key, data.get("rules"), _config(), fetcher, store.stored(_now()))
    except (FetchError, ParseError) as e:
        raise Invalid([("source", f"its feed could not be read: {e}")]) from None
    finally:
        fetcher.close()
    kept = sum(1 for r in results if r["kept"])
    return _json({"entries": results, "kept": kept, "dropped": len(results) - kept, "written": False})


# --- entries and the desk -------------------------------------------------------------------

@api.get("/entries")
def list_entries() -> Response:
    config, limit = _config(), _limit()
    status = request.args.get("status")
    if status is not None and status not in store.ENTRY_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(store.ENTRY_STATUSES)}, got {status!r}")
    section = request.args.get("section")
    if section is not None and section not in config.taxonomy.sections:
        raise BadRequest(f"unknown section {section!r}")
    edition = request.args.get("edition")
    if edition is not None and edition not in config.editions:
        raise BadRequest(f"unknown edition {edition!r}")
    q = request.args.get("q") or None
    if q is not None and (len(q) > 200 or any(ord(c) < 32 for c in q)):
        raise BadRequest("q must be at most 200 characters of text")
    family = config.taxonomy.section_family(section) if section else ()
    rows = store.list_entries(limit + 1, _cursor(), q=q, source=request.args.get("source") or None,
                              section=section, sections=family, status=status, edition=edition,
                              now=store.stored(_now()))
    return _page(rows, limit, lambda e: str(e.id), entry_view)


def _entry_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"an id here is a whole number, got {raw!r}")
    return int(raw)


@api.get("/entries/<entry_id>")
def get_entry(entry_id: str) -> Response:
    return _json(entry_view(admin.entry(_entry_id(entry_id))))


@api.patch("/entries/<entry_id>")
def correct_entry(entry_id: str) -> Response:
    data = _body()
    done = _publish(admin.correct(_actor(), _entry_id(entry_id), data, _config(), _now()))
    return _json(entry_view(done.result))


def _reason(required: bool) -> str:
    data = _body() if request.get_data(cache=True) else {}
    _fields(data, ("reason",), required=("reason",) if required else ())
    return _str_field(data, "reason")


@api.post("/entries/<entry_id>/retract")
def retract_entry(entry_id: str) -> Response:
    number = _entry_id(entry_id)  # checked before the body, so a bad id is the first thing said
    done = _publish(admin.retract(_actor(), number, _reason(True), _config(), _now()))
    return _json(entry_view(done.result))


@api.post("/entries/<entry_id>/unretract")
def unretract_entry(entry_id: str) -> Response:
    number = _entry_id(entry_id)  # checked before the body, so a bad id is the first thing said
    done = _publish(admin.unretract(_actor(), number, _reason(True), _config(), _now()))
    return _json(entry_view(done.result))


@api.post("/breaking")
def push_breaking() -> Response:
    data = _body()
    _fields(data, ("headline", "link", "body", "edition", "embargo_until"), required=("headline",))
    done = _publish(admin.push_breaking(_actor(), data["headline"], _config(), _now(), link=data.get("link"),
                                        body=data.get("body"), edition=data.get("edition"),
                                        embargo_until=data.get("embargo_until")))
    resp = _json(entry_view(done.result), status=201)
    resp.headers["Location"] = f"/api/v1/entries/{done.result.id}"
    return resp


@api.delete("/breaking/<entry_id>")
def take_off_ticker(entry_id: str) -> Response:
    done = _publish(admin.take_off_ticker(_actor(), _entry_id(entry_id), _config(), _now()))
    return _json(entry_view(done.result))


# --- partners ------------------------------------------------------------------------------

def partner_view(p: store.PartnerInfo, key: str | None = None) -> dict[str, Any]:
    now = _now()
    out: dict[str, Any] = {
        "name": p.name, "contact": p.contact, "profile": p.profile, "status": p.status, "created_at": p.created_at,
        "keys": [{"id": k.id, "created_at": k.created_at, "expires_at": k.expires_at, "revoked_at": k.revoked_at,
                  "last_used_at": k.last_used_at,
                  "live": k.revoked_at is None and (k.expires_at is None or k.expires_at > store.aware(now))}
                 for k in p.keys]}
    if key is not None:
        base = _config().server.base_url or request.host_url.rstrip("/")
        out["key"] = key  # shown once: only its hash is kept
        out["urls"] = {"page": f"{base}/partner/{key}/", "latest": f"{base}/partner/{key}/feeds/latest.atom",
                       "bearer": f"{base}/partner/feeds/latest.atom"}
    return out


@api.get("/partners")
def list_partners() -> Response:
    return _page_by_name(store.partners(), lambda p: p.name, partner_view)


@api.post("/partners")
def add_partner() -> Response:
    data = _body()
    _fields(data, ("name", "profile", "contact"), required=("name", "profile"))
    info, key = admin.add_partner(_actor(), data["name"], data["profile"], data.get("contact", ""), _config(),
                                  _now()).result
    resp = _json(partner_view(info, key), status=201)
    resp.headers["Location"] = f"/api/v1/partners/{info.name}"
    return resp


@api.get("/partners/<name>")
def get_partner(name: str) -> Response:
    return _json(partner_view(store.partner(name)))


@api.patch("/partners/<name>")
def edit_partner(name: str) -> Response:
    return _json(partner_view(admin.edit_partner(_actor(), name, _body(), _config(), _now()).result))


@api.post("/partners/<name>/keys")
def rotate_partner_key(name: str) -> Response:
    data = _body() if request.get_data(cache=True) else {}
    _fields(data, ("overlap_hours",))
    info, key = admin.rotate_key(_actor(), name, data.get("overlap_hours", 24), _now()).result
    return _json(partner_view(info, key), status=201)


@api.delete("/partners/<name>/keys/<key_id>")
def revoke_partner_key(name: str, key_id: str) -> Response:
    return _json(partner_view(admin.revoke_partner_key(_actor(), name, _entry_id(key_id), _now()).result))


@api.get("/partners/<name>/usage")
def partner_usage(name: str) -> Response:
    from datetime import timedelta

    days = request.args.get("days", "30")
    if not days.isascii() or not days.isdigit() or not 1 <= int(days) <= 366:
        raise BadRequest(f"days must be a whole number from 1 to 366, got {days!r}")
    info = store.partner(name)
    since = store.utcnow().date() - timedelta(days=int(days) - 1)
    return _json({"partner": name, "since": since.isoformat(), "days": [
        {"day": u.day.isoformat(), "feed": u.feed, "requests": u.requests, "ok": u.ok,
         "not_modified": u.not_modified, "limited": u.limited, "bytes": u.bytes, "last_seen": u.last_seen}
        for u in store.partner_usage(info.id, since)],
        "user_agents": store.partner_agents(info.id, since)})


@api.get("/feeds/subscribers")
def subscribers() -> Response:
    day = store.utcnow().date()
    return _json({"day": day.isoformat(), "feeds": store.feed_subscribers(day)})


@api.get("/partner-profiles")
def list_profiles() -> Response:
    from aggregator.config import profile_settings

    stored = store.stored_profiles()
    return _json({"items": [{"name": name, "set_through": "api" if name in stored else "config",
                             **profile_settings(p)} for name, p in sorted(admin.profiles(_config()).items())]})


@api.put("/partner-profiles/<name>")
def put_profile(name: str) -> Response:
    from aggregator.config import profile_settings

    p = admin.put_profile(_actor(), name, _body(), _config(), _now()).result
    return _json({"name": name, "set_through": "api", **profile_settings(p)})


@api.delete("/partner-profiles/<name>")
def delete_profile(name: str) -> Response:
    return _json(admin.delete_profile(_actor(), name, _config(), _now()).result)


# --- health and audit -----------------------------------------------------------------------

@api.get("/health")
def health() -> Response:
    summary = store.health_summary()
    sources = admin.sources()
    return _json({"summary": {**summary, "sources": store.status_counts()},
                  "sources": [{"id": h.key, "name": h.name, **source_view(h)["health"]} for h in sources],
                  "collect_runs": [dict(r) for r in store.recent_runs(10)]})


@api.get("/audit")
def audit() -> Response:
    limit = _limit()
    rows = admin.audit_log(limit + 1, _cursor(), target=request.args.get("target") or None,
                           actor=request.args.get("actor") or None)
    return _page(rows, limit, lambda a: str(a.id), lambda a: {
        "id": a.id, "at": a.at, "actor": a.actor, "via": a.via, "action": a.action, "target": a.target,
        "before": a.before, "after": a.after})
