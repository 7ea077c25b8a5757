"""/partner/...: a partner's feeds under its terms (its profile), by key in the URL or as a
Bearer token, and the partner's own page."""
from __future__ import annotations

import dataclasses
import hashlib

from flask import Blueprint, Response, current_app, render_template, request
from flask.typing import ResponseReturnValue

from aggregator import admin, auth, store
from aggregator.config import Config, PartnerProfile
from aggregator.errors import NotFound, RequestError, TooManyRequests, Unauthorized
from feeds.render import SUFFIXES
from feeds.select import parse_request

from .limits import NOT_MODIFIED_COST, Buckets
from .public import SLUG_KINDS, _split_format, base_url, feed_groups, respond_feed
from .usage import UsageRecorder

partner = Blueprint("partner", __name__, url_prefix="/partner")

#: the one answer to a key that does not open anything: which part was wrong is not said
BAD_KEY = "unknown, revoked or expired partner key"


class ProfileMissing(RequestError):
    """A partner's profile is gone (removed from config, or no longer fits it)."""

    status = 503


def _config() -> Config:
    return current_app.config["FEEDHUB"]


def _holder(key: str) -> store.KeyHolder:
    if not key.startswith(auth.PARTNER_KEY_PREFIX) or len(key) > 100:
        raise Unauthorized(BAD_KEY)
    holder = store.key_holder(auth.token_digest(key), store.utcnow())
    if holder is None:
        raise Unauthorized(BAD_KEY)
    return holder


def _bearer() -> str:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send the partner key as 'Authorization: Bearer KEY', or use /partner/KEY/feeds/...")
    return key.strip()


def _profile(holder: store.KeyHolder) -> PartnerProfile:
    try:
        return admin.profile(holder.profile, _config())
    except NotFound:
        raise ProfileMissing(f"your terms (profile {holder.profile!r}) are being changed; please retry later, "
                             "or ask the newsroom") from None


def _feed(key: str, space: str, edition: str | None, kind: str, name: str) -> Response:
    """Serve one feed to the partner holding ``key``; links stay under ``space``."""
    holder = _holder(key)
    profile = _profile(holder)
    config = _config()
    if kind not in ("latest", "breaking") and kind not in SLUG_KINDS:
        raise NotFound(f"unknown feed kind {kind!r}; kinds: {', '.join(SLUG_KINDS)}")
    stem, fmt = _split_format(name)
    slug: str | None = None
    if kind in ("latest", "breaking"):
        if stem != kind:
            raise NotFound(f"unknown feed {stem!r}; see your page, /partner/KEY/")
    else:
        slug = stem
    edition = edition or config.site.default_edition
    if profile.editions and edition not in profile.editions:
        raise NotFound(f"the {edition!r} edition is not in your terms; editions: {', '.join(profile.editions)}")
    usage: UsageRecorder = current_app.extensions["feedhub.usage"]
    feed = request.path.removeprefix(f"/partner/{key}" if space != "/partner" else "/partner")
    agent = request.headers.get("User-Agent", "")
    conditional = bool(request.headers.get("If-None-Match") or request.headers.get("If-Modified-Since"))
    cost = NOT_MODIFIED_COST if conditional else 1.0
    buckets: Buckets = current_app.extensions["feedhub.buckets"]
    # Named by the key's hash, not its row id: a Redis shared by several stores never mixes them.
    bucket = f"partner-key:{auth.token_digest(key)[:32]}"
    if profile.rate_limit:
        wait = buckets.take(bucket, cost, profile.rate_limit, profile.burst)
        if wait > 0:
            usage.partner(holder.partner_id, holder.key_id, feed, 429, 0, agent)
            raise TooManyRequests(f"over your limit of {profile.rate_limit} requests a minute (bursts of "
                                  f"{profile.burst}); a 304 costs {NOT_MODIFIED_COST}: send If-None-Match", wait)
    req = parse_request(config, kind, slug, edition, request.args.to_dict())
    req = dataclasses.replace(req, profile=profile)
    terms = hashlib.sha256(repr(profile).encode()).hexdigest()[:16]  # a changed profile renders anew
    resp = respond_feed(req, base_url() + space, fmt, audience=("partner", holder.partner_id, terms))
    if profile.rate_limit and conditional and resp.status_code != 304:
        buckets.take(bucket, 1.0 - cost, profile.rate_limit, profile.burst, force=True)  # it was a full answer
    usage.partner(holder.partner_id, holder.key_id, feed, resp.status_code, resp.calculate_content_length() or 0,
                  agent)
    return resp


@partner.route("/<key>/feeds/<name>")
def top_by_key(key: str, name: str) -> ResponseReturnValue:
    if key in _config().editions:  # /partner/<edition>/feeds/...: the Bearer form, another edition
        return _feed(_bearer(), "/partner", key, name.partition(".")[0], name)
    return _feed(key, f"/partner/{key}", None, name.partition(".")[0], name)


@partner.route("/<key>/feeds/<kind>/<name>")
def slug_by_key(key: str, kind: str, name: str) -> ResponseReturnValue:
    if key in _config().editions:
        return _feed(_bearer(), "/partner", key, kind, name)
    return _feed(key, f"/partner/{key}", None, kind, name)


@partner.route("/<key>/<edition>/feeds/<name>")
def top_edition_by_key(key: str, edition: str, name: str) -> ResponseReturnValue:
    return _feed(key, f"/partner/{key}", _edition(edition), name.partition(".")[0], name)


@partner.route("/<key>/<edition>/feeds/<kind>/<name>")
def slug_edition_by_key(key: str, edition: str, kind: str, name: str) -> ResponseReturnValue:
    return _feed(key, f"/partner/{key}", _edition(edition), kind, name)


@partner.route("/feeds/<name>")
def top_by_bearer(name: str) -> ResponseReturnValue:
    return _feed(_bearer(), "/partner", None, name.partition(".")[0], name)


@partner.route("/feeds/<kind>/<name>")
def slug_by_bearer(kind: str, name: str) -> ResponseReturnValue:
    return _feed(_bearer(), "/partner", None, kind, name)


def _edition(edition: str) -> str:
    if edition not in _config().editions:
        raise NotFound(f"unknown edition {edition!r}; editions: {', '.join(sorted(_config().editions))}")
    return edition


@partner.route("/<key>/")
def page(key: str) -> ResponseReturnValue:
    """The partner's own page: its feeds, terms and limits."""
    holder = _holder(key)
    profile = _profile(holder)
    config = _config()
    base = f"{base_url()}/partner/{key}"
    editions = [e for e in config.editions if not profile.editions or e in profile.editions]
    groups = {e: [(group.label, [link for link in group.feeds if _in_scope(link["urls"]["atom"], profile, config)])
                  for group in feed_groups(e, base) if group.key in ("main", "sections", "regions")]
              for e in editions}
    resp = Response(render_template("partner.html", site=config.site, partner=holder, profile=profile,
                                    editions={e: config.editions[e] for e in editions}, groups=groups,
                                    formats=list(SUFFIXES), usage=usage_by_day(holder.partner_id, 14)),
                    mimetype="text/html")
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


def usage_by_day(partner_id: int, days: int) -> list[dict[str, object]]:
    """A partner's usage of the last ``days`` days, summed over feeds, newest first."""
    from datetime import timedelta

    since = store.utcnow().date() - timedelta(days=days - 1)
    out: dict[object, dict[str, object]] = {}
    for u in store.partner_usage(partner_id, since):
        day = out.setdefault(u.day, {"day": u.day.isoformat(), "requests": 0, "ok": 0, "not_modified": 0,
                                     "limited": 0, "bytes": 0})
        for name in ("requests", "ok", "not_modified", "limited", "bytes"):
            day[name] = int(day[name]) + getattr(u, name)  # type: ignore[call-overload]
    return list(out.values())


def _in_scope(url: str, profile: PartnerProfile, config: Config) -> bool:
    """Is a section or region feed inside the profile's sections and regions (others are empty)?"""
    path = url.split("/feeds/", 1)[1]
    kind, _, rest = path.partition("/")
    slug = rest.rpartition(".")[0]
    if kind == "section" and profile.sections:
        family = {s for p in profile.sections for s in config.taxonomy.section_family(p)}
        return slug in family or any(p in config.taxonomy.section_family(slug) for p in profile.sections)
    if kind == "region" and profile.regions:
        return slug in profile.regions
    return True


__all__ = ["partner"]
