"""Public feeds: /feeds/..., /<edition>/feeds/..., the feed directory and /healthz."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TypedDict

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from lxml import etree

from aggregator import store
from aggregator.config import Config
from aggregator.errors import NotFound, StoreDamaged
from feeds import clock
from feeds.render import CONTENT_TYPES, SUFFIXES, render
from feeds.select import FeedRequest, build_feed, feed_path, parse_request

from .cache import RenderCache, Rendered
from .errors import RETRY_AFTER
from .hot import Replayable, offer, replay_kind

public = Blueprint("public", __name__)

SLUG_KINDS = ("section", "region", "tag", "author", "coverage")


def _config() -> Config:
    return current_app.config["FEEDHUB"]


def base_url() -> str:
    """The public URL prefix: configured, else the one this request came in on."""
    configured = _config().server.base_url
    # scheme and host (werkzeug checks trusted hosts); the host stays in its ASCII (punycode) form
    return configured or f"{request.scheme}://{request.host}"


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
def top_feed(name: str, edition: str | None = None) -> ResponseReturnValue:
    """/feeds/latest.<fmt> and /feeds/breaking.<fmt>, per edition."""
    stem, fmt = _split_format(name)
    if stem not in ("latest", "breaking"):
        raise NotFound(f"unknown feed {stem!r}; see /feeds/ for every feed")
    return _serve(stem, None, edition, fmt)  # parse_request validates the edition


@public.route("/feeds/<kind>/<name>")
@public.route("/<edition>/feeds/<kind>/<name>")
def slug_feed(kind: str, name: str, edition: str | None = None) -> ResponseReturnValue:
    """/feeds/{section,region,tag,author}/<slug>.<fmt>, per edition."""
    if kind not in SLUG_KINDS:
        raise NotFound(f"unknown feed kind {kind!r}; kinds: {', '.join(SLUG_KINDS)}")
    slug, fmt = _split_format(name)
    return _serve(kind, slug, edition, fmt)


def _serve(kind: str, slug: str | None, edition: str | None, fmt: str) -> ResponseReturnValue:
    config = _config()
    if edition == config.site.default_edition:
        # The main edition lives at the root; keep one canonical URL per feed.
        target = feed_path(kind, slug, edition, edition) + f".{fmt}"
        if request.query_string:
            target += "?" + request.query_string.decode("latin-1")
        return redirect(target, code=308)
    req: FeedRequest = parse_request(config, kind, slug, edition, request.args.to_dict())
    return respond_feed(req, base_url(), fmt)


def respond_feed(req: FeedRequest, base: str, fmt: str, audience: tuple[object, ...] = ()) -> Response:
    """The feed answer for ``req`` with its links under ``base``: rendered once per revision
    (and per ``audience``: a partner's key and profile), conditional GET by the RFCs. Only the
    public feeds (no audience) are offered to the hot layer, which answers without Flask: a
    partner's every request must be counted and limited."""
    config = _config()
    # The date is part of the key because tombstones leave Atom feeds as days pass.
    today = datetime.now(timezone.utc).date()
    key = (req.path, req.query_string(req.page), fmt, base, today, *audience)
    revision = current_app.extensions["feedhub.revisions"].get(req.topic)
    cache: RenderCache = current_app.extensions["feedhub.cache"]
    rendered = cache.get(key, revision, lambda: _render(req, config, base, fmt, revision))
    gzipped = rendered.gzipped is not None and "gzip" in request.accept_encodings
    headers = rendered.headers_for(gzipped)
    environ = request.environ
    body = rendered.gzipped if gzipped else rendered.body
    etag = headers["ETag"]
    answer = replay_kind(environ, etag)
    if answer is None or audience:
        # werkzeug answers the rest (lists, weak tags, dates, 412) by the RFCs
        resp = Response(body, headers=headers.copy())
        resp.make_conditional(request)
        if audience:
            resp.cache_control.public = False
            resp.cache_control.private = True  # a partner's copy, not for shared caches
            if resp.status_code == 304:
                for name in REPRESENTATION_ONLY:
                    resp.headers.pop(name, None)
        return resp
    # The two answers the hot path (web.hot) may replay while this rendering is current.
    offer(environ, Replayable(req.topic, rendered, today, gzipped, etag, answer))
    if answer == "304":
        # The common poll: the exact ETag we sent, nothing else conditional. RFC 9110 15.4.5:
        # a 304 carries the validators and caching fields, not the representation's metadata.
        not_modified = Response(status=304, headers=headers.copy())
        for name in REPRESENTATION_ONLY:
            not_modified.headers.pop(name, None)
        return not_modified
    return Response(body, headers=headers.copy())


# Representation metadata a 304 leaves out.
REPRESENTATION_ONLY = ("Content-Type", "Content-Encoding", "Content-Length")


#: the largest feed document sent: large consumers refuse bigger ones (Google News: 2 MB)
MAX_FEED_BYTES = 2 * 1024 * 1024


def _render(req: FeedRequest, config: Config, base: str, fmt: str, revision: int) -> Rendered:
    fragments = current_app.extensions["feedhub.fragments"]
    doc = build_feed(req, config, base, fmt, SUFFIXES)
    body = render(doc, fmt, fragments)
    while len(body) > MAX_FEED_BYTES and len(doc.items) > 1:
        # Too large for the consumers that matter: the same page with fewer entries, its
        # next link starting after the last one kept, so nothing is skipped.
        take = max(1, min(len(doc.items) - 1, len(doc.items) * MAX_FEED_BYTES * 9 // (len(body) * 10)))
        doc = build_feed(req, config, base, fmt, SUFFIXES, take=take)
        body = render(doc, fmt, fragments)
    links = [(doc.self_url, "self"), *((hub, "hub") for hub in doc.hubs)]
    links += [(url, rel) for url, rel in ((doc.first_url, "first"), (doc.previous_url, "previous"),
                                         (doc.next_url, "next")) if url]
    max_age = doc.max_age
    if doc.expires is not None:  # nobody should keep it past the moment it changes by itself
        max_age = max(1, min(max_age, int((doc.expires - clock.now()).total_seconds())))
    return Rendered.make(revision, body, hashlib.sha256(body).hexdigest()[:32], doc.updated,
                         ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links), CONTENT_TYPES[fmt],
                         max_age, doc.expires)


class FeedLinks(TypedDict):
    """One feed in the directory and the OPML list: its title and its URL in every format."""

    title: str
    urls: dict[str, str]


def feed_groups(edition: str, base: str) -> list[tuple[str, list[FeedLinks]]]:
    """Every public feed of an edition, grouped as the directory and the OPML list show them."""
    config = _config()

    def links(kind: str, slug: str | None, title: str) -> FeedLinks:
        path = feed_path(kind, slug, edition, config.site.default_edition)
        return {"title": title, "urls": {fmt: f"{base}{path}.{fmt}" for fmt in SUFFIXES}}

    sections = config.taxonomy.sections
    groups: list[tuple[str, list[FeedLinks]]] = [
        ("Main", [links("latest", None, "Latest news"), links("breaking", None, "Breaking news")]),
        ("Sections", [links("section", s.slug, s.title if not s.parent else f"{sections[s.parent].title}: {s.title}")
                      for s in sections.values()]),
        ("Regions", [links("region", slug, title) for slug, title in config.taxonomy.regions.items()]),
        ("Coverage", [links("coverage", slug, cov.title) for slug, cov in config.taxonomy.coverage.items()]),
    ]
    groups.append(("Tags", [links("tag", slug, name) for slug, name in store.edition_tags(edition)]))
    groups.append(("Authors", [links("author", slug, name) for slug, name in store.edition_authors(edition)]))
    return groups


@public.route("/feeds/")
@public.route("/<edition>/feeds/")
def directory(edition: str | None = None) -> str:
    """An HTML directory of the edition's feeds with autodiscovery links."""
    config = _config()
    edition = _edition(edition) or config.site.default_edition
    return render_template("directory.html", site=config.site, edition=config.editions[edition],
                           groups=feed_groups(edition, base_url()), editions=config.editions,
                           default_edition=config.site.default_edition)


@public.route("/feeds.opml")
def opml() -> Response:
    """Every public feed of every edition as OPML 2.0, grouped by edition and kind (Atom URLs)."""
    config = _config()
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = f"{config.site.title}: all feeds"
    newest = store.newest_change(config.editions)
    if newest:
        etree.SubElement(head, "dateModified").text = format_datetime(newest, usegmt=True)
    body = etree.SubElement(root, "body")
    base = base_url()
    for code, ed in config.editions.items():
        ed_outline = etree.SubElement(body, "outline", text=ed.title, title=ed.title)
        for group, feeds in feed_groups(code, base):
            group_outline = etree.SubElement(ed_outline, "outline", text=group, title=group)
            for feed in feeds:
                etree.SubElement(group_outline, "outline", type="rss", text=str(feed["title"]),
                                 title=str(feed["title"]), xmlUrl=feed["urls"]["atom"],
                                 htmlUrl=config.site.link, language=ed.language)
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    resp = Response(data, content_type="text/x-opml; charset=utf-8")
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.cache_control.public = True
    resp.cache_control.max_age = config.site.feed_max_age
    return resp


@public.route("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("public.directory"))


@public.route("/healthz")
def healthz() -> ResponseReturnValue:
    """Is the store readable? Live reads of what feeds read first, plus SQLite's integrity check
    (run at most every few minutes); 503 with the reason when the store is away or damaged."""
    try:
        body: dict[str, object] = {"status": "ok", **store.health_summary()}
        current_app.extensions["feedhub.integrity"].check()
    except Exception as e:
        failure = store.diagnose(e)
        if failure is None:
            raise
        store.reset_connection()
        status = "damaged" if isinstance(failure, StoreDamaged) else "unavailable"
        resp = current_app.json.response({"status": status, "error": str(failure)})
        resp.status_code = 503
        resp.headers["Retry-After"] = str(RETRY_AFTER)
    else:
        resp = current_app.json.response(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp
