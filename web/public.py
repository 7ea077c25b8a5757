"""Public feeds: /feeds/..., /<edition>/feeds/..., the feed directory and /healthz."""
from __future__ import annotations

import hashlib
from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from aggregator import store
from aggregator.config import Config
from aggregator.errors import NotFound
from feeds.render import CONTENT_TYPES, SUFFIXES, render
from feeds.select import FeedRequest, build_feed, feed_path, parse_request

public = Blueprint("public", __name__)

SLUG_KINDS = ("section", "region", "tag", "author")


def _config() -> Config:
    return current_app.config["FEEDHUB"]


def base_url() -> str:
    """The public URL prefix: configured, else the one this request came in on."""
    configured = _config().server.base_url
    return configured or request.host_url.rstrip("/")


def _split_format(name: str) -> tuple[str, str]:
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix not in SUFFIXES:
        raise NotFound(f"unknown feed format in {name!r}; use .rss (RSS 2.0), .atom (Atom 1.0) "
                       "or .json (JSON Feed 1.1)")
    return stem, suffix


def _edition(edition: str | None) -> str | None:
    config = _config()
    if edition is not None and edition not in config.editions:
        raise NotFound(f"unknown edition {edition!r}; editions: {', '.join(sorted(config.editions))}")
    return edition


@public.route("/feeds/<name>")
@public.route("/<edition>/feeds/<name>")
def top_feed(name: str, edition: str | None = None) -> Response:
    """/feeds/latest.<fmt> and /feeds/breaking.<fmt>, per edition."""
    stem, fmt = _split_format(name)
    if stem not in ("latest", "breaking"):
        raise NotFound(f"unknown feed {stem!r}; see /feeds/ for every feed")
    return _serve(stem, None, _edition(edition), fmt)


@public.route("/feeds/<kind>/<name>")
@public.route("/<edition>/feeds/<kind>/<name>")
def slug_feed(kind: str, name: str, edition: str | None = None) -> Response:
    """/feeds/{section,region,tag,author}/<slug>.<fmt>, per edition."""
    if kind not in SLUG_KINDS:
        raise NotFound(f"unknown feed kind {kind!r}; kinds: {', '.join(SLUG_KINDS)}")
    slug, fmt = _split_format(name)
    return _serve(kind, slug, _edition(edition), fmt)


def _serve(kind: str, slug: str | None, edition: str | None, fmt: str) -> Response:
    config = _config()
    if edition == config.site.default_edition:
        # The main edition lives at the root; keep one canonical URL per feed.
        target = feed_path(kind, slug, edition, edition) + f".{fmt}"
        if request.query_string:
            target += "?" + request.query_string.decode("latin-1")
        return redirect(target, code=308)
    req: FeedRequest = parse_request(config, kind, slug, edition, request.args.to_dict())
    doc = build_feed(req, config, base_url(), fmt, SUFFIXES)
    body = render(doc, fmt)
    resp = Response(body, content_type=CONTENT_TYPES[fmt])
    resp.set_etag(hashlib.sha256(body).hexdigest()[:32])
    resp.last_modified = doc.updated
    max_age = config.site.breaking_max_age if kind == "breaking" else config.site.feed_max_age
    resp.cache_control.public = True
    resp.cache_control.max_age = max_age
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Link"] = f'<{doc.self_url}>; rel="self"'
    return resp.make_conditional(request)


@public.route("/feeds/")
@public.route("/<edition>/feeds/")
def directory(edition: str | None = None) -> str:
    """An HTML directory of the edition's feeds with autodiscovery links."""
    config = _config()
    edition = _edition(edition) or config.site.default_edition
    ed = config.editions[edition]
    base = base_url()

    def links(kind: str, slug: str | None, title: str) -> dict[str, object]:
        path = feed_path(kind, slug, edition, config.site.default_edition)
        return {"title": title, "urls": {fmt: f"{base}{path}.{fmt}" for fmt in SUFFIXES}}

    groups: list[tuple[str, list[dict[str, object]]]] = [
        ("Main", [links("latest", None, "Latest news"), links("breaking", None, "Breaking news")]),
        ("Sections", [links("section", s.slug, s.title if not s.parent else f"{config.taxonomy.sections[s.parent].title}: {s.title}")
                      for s in config.taxonomy.sections.values()]),
        ("Regions", [links("region", slug, title) for slug, title in config.taxonomy.regions.items()]),
    ]
    E = store.Entry
    tag_rows = (store.Tag.select(store.Tag).join(store.EntryTag).join(E)
                .where(E.edition == edition).distinct().order_by(store.Tag.slug))
    groups.append(("Tags", [links("tag", t.slug, t.name) for t in tag_rows]))
    author_rows = (store.Author.select(store.Author).join(store.EntryAuthor).join(E)
                   .where(E.edition == edition).distinct().order_by(store.Author.slug))
    groups.append(("Authors", [links("author", a.slug, a.name) for a in author_rows]))
    return render_template("directory.html", site=config.site, edition=ed, groups=groups,
                           editions=config.editions, default_edition=config.site.default_edition)


@public.route("/")
def index() -> Response:
    return redirect(url_for("public.directory"))


@public.route("/healthz")
def healthz() -> Response:
    """Liveness plus a glance at the store: entries stored and failing sources."""
    failing = store.Source.select().where(store.Source.consecutive_failures > 0,
                                          store.Source.enabled == True).count()  # noqa: E712
    body = {"status": "ok", "schema_version": store.schema_version(),
            "entries": store.Entry.select().count(), "failing_sources": failing}
    resp = current_app.json.response(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp
