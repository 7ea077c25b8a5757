"""Public feeds: /feeds/..., /<edition>/feeds/..., the feed directory and /healthz."""
from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import NamedTuple, NotRequired, TypedDict

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from lxml import etree

from aggregator import store
from aggregator.config import Config
from aggregator.errors import BadRequest, NotFound, StoreDamaged
from feeds import clock
from feeds.labels import Labels, language_direction
from feeds.render import CONTENT_TYPES, SUFFIXES, render
from feeds.select import FeedRequest, build_feed, cache_lifetime, feed_path, feed_query, parse_request

from .cache import RenderCache, Rendered
from .errors import RETRY_AFTER, error_response
from .hot import Replayable, offer, replay_kind
from .stream import HEADERS as STREAM_HEADERS
from .stream import StreamHub, StreamResponse, parse_event_id

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
    """/feeds/latest.<fmt> and /feeds/breaking.<fmt>, per edition; without a suffix, the feed's page."""
    if "." not in name:  # no slug holds a dot: a name without one is a feed's page
        if name not in ("latest", "breaking"):
            raise NotFound(f"unknown feed {name!r}; see /feeds/ for every feed")
        return _feed_page(name, None, _edition(edition))
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
    if "." not in name:
        return _feed_page(kind, name, _edition(edition))
    slug, fmt = _split_format(name)
    return _serve(kind, slug, edition, fmt)


@public.route("/feeds/<name>/stream")
@public.route("/<edition>/feeds/<name>/stream")
def top_stream(name: str, edition: str | None = None) -> ResponseReturnValue:
    """/feeds/latest/stream and /feeds/breaking/stream, per edition: the feed live (web.stream)."""
    if name not in ("latest", "breaking"):
        raise NotFound(f"unknown feed {name!r}; see /feeds/ for every feed")
    return _stream(name, None, edition)


@public.route("/feeds/<kind>/<name>/stream")
@public.route("/<edition>/feeds/<kind>/<name>/stream")
def slug_stream(kind: str, name: str, edition: str | None = None) -> ResponseReturnValue:
    """/feeds/{section,region,tag,author,coverage}/<slug>/stream, per edition."""
    if kind not in SLUG_KINDS:
        raise NotFound(f"unknown feed kind {kind!r}; kinds: {', '.join(SLUG_KINDS)}")
    return _stream(kind, name, edition)


def _to_root(kind: str, slug: str | None, edition: str, tail: str) -> ResponseReturnValue:
    """308 to the same feed (``tail``: its format suffix, "/stream" or nothing for its page) at
    the root: the main edition lives there, one canonical URL per feed."""
    target = feed_path(kind, slug, edition, edition) + tail
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    return redirect(target, code=308)


def _stream(kind: str, slug: str | None, edition: str | None) -> ResponseReturnValue:
    config = _config()
    if edition == config.site.default_edition:
        return _to_root(kind, slug, edition, "/stream")
    args = request.args.to_dict()
    for name in ("q", "page"):
        if name in args:
            raise BadRequest(f"{name} is not available on a live stream; it sends every entry of the feed "
                             "as it is written")
    last = request.headers.get("Last-Event-ID", args.pop("last_event_id", ""))
    req: FeedRequest = parse_request(config, kind, slug, edition, args)
    if request.method == "HEAD":
        return Response(headers=STREAM_HEADERS)
    hub: StreamHub = current_app.extensions["feedhub.streams"]
    if hub.full():
        resp = error_response(503, "this server holds as many live streams as it may; please retry shortly")
        resp.headers["Retry-After"] = str(RETRY_AFTER)
        return resp
    client, head = hub.register(req, base_url(), parse_event_id(last) if last else None)
    return StreamResponse(hub, client, head)


def _serve(kind: str, slug: str | None, edition: str | None, fmt: str) -> ResponseReturnValue:
    config = _config()
    if edition == config.site.default_edition:
        return _to_root(kind, slug, edition, f".{fmt}")
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
    """One feed in the directory and the OPML list: its title, its URL in every format and its
    HTML page; with ``stats``, what it holds (see feed_groups)."""

    title: str
    urls: dict[str, str]
    page: str
    summary: NotRequired[store.FeedSummary]


class FeedGroup(NamedTuple):
    """The feeds of one kind: ``key`` names the kind (main, sections, regions, coverage, tags,
    authors), ``label`` is what the edition calls it."""

    key: str
    label: str
    feeds: list[FeedLinks]


#: entries counted per feed in the directory: past it, "1000+" (the count walks at most that)
COUNT_CAP = 1000


def feed_groups(edition: str, base: str, stats: bool = False) -> list[FeedGroup]:
    """Every public feed of an edition, grouped by kind, in the edition's words. With
    ``stats``, each carries its summary (count, newest), and feeds with no entry are left out."""
    config = _config()
    labels = Labels(config, edition)

    def links(kind: str, slug: str | None, title: str) -> FeedLinks:
        path = feed_path(kind, slug, edition, config.site.default_edition)
        feed: FeedLinks = {"title": title, "urls": {fmt: f"{base}{path}.{fmt}" for fmt in SUFFIXES},
                           "page": f"{base}{path}"}
        if stats:
            req = FeedRequest(kind=kind, edition=edition, slug=slug, default_edition=config.site.default_edition)
            feed["summary"] = store.feed_summary(feed_query(req, config), COUNT_CAP)
        return feed

    sections = config.taxonomy.sections
    groups = [
        FeedGroup("main", labels.word("group_main"),
                  [links("latest", None, labels.word("latest")), links("breaking", None, labels.word("breaking"))]),
        FeedGroup("sections", labels.word("group_sections"),
                  [links("section", slug, labels.section_path(slug))
                   for top in sections.values() if not top.parent for slug in (top.slug, *top.children)]),
        FeedGroup("regions", labels.word("group_regions"),
                  [links("region", slug, labels.region(slug)) for slug in config.taxonomy.regions]),
        FeedGroup("coverage", labels.word("group_coverage"),
                  [links("coverage", slug, labels.coverage(slug)) for slug in config.taxonomy.coverage]),
        FeedGroup("tags", labels.word("group_tags"),
                  [links("tag", slug, name) for slug, name in store.edition_tags(edition)]),
        FeedGroup("authors", labels.word("group_authors"),
                  [links("author", slug, name) for slug, name in store.edition_authors(edition)]),
    ]
    if stats:
        groups = [g._replace(feeds=[f for f in g.feeds if f["summary"].entries]) for g in groups]
        groups = [g for g in groups if g.feeds]
    return groups


_directories: dict[tuple[str, str], tuple[float, list[FeedGroup]]] = {}
_directories_lock = threading.Lock()
#: how long a directory's counts are reused (seconds): they cost a walk of every feed's index
DIRECTORY_MAX_AGE = 60
#: directories kept at once (editions x the hosts they are asked under)
DIRECTORY_KEYS = 32


def directory_groups(edition: str, base: str) -> list[FeedGroup]:
    """The edition's non-empty feeds with their summaries, reused for DIRECTORY_MAX_AGE (one
    thread works them out; the others wait for it rather than all walking the index)."""
    key = (edition, base)
    with _directories_lock:
        now = time.monotonic()
        found = _directories.get(key)
        if found is None or found[0] < now:
            # The base comes from the request's Host when [server] base_url is not set: keep
            # only what is still fresh, and at most DIRECTORY_KEYS of it, whatever hosts ask.
            for stale in [k for k, (expires, _) in _directories.items() if expires < now]:
                del _directories[stale]
            while len(_directories) >= DIRECTORY_KEYS:
                del _directories[next(iter(_directories))]
            found = _directories[key] = (now + DIRECTORY_MAX_AGE, feed_groups(edition, base, stats=True))
    return found[1]


def _page_headers(resp: Response, max_age: int) -> Response:
    resp.cache_control.public = True
    resp.cache_control.max_age = max_age
    resp.headers["X-Content-Type-Options"] = "nosniff"
    # The pages' own script and styles only; images from anywhere (entries' lead images).
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; script-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    resp.add_etag()
    resp.make_conditional(request)
    return resp


def _editions_nav(config: Config, path_of: Callable[[str], str]) -> list[dict[str, str]]:
    return [{"code": code, "title": ed.title, "language": ed.language, "direction": ed.direction,
             "href": path_of(code)} for code, ed in config.editions.items()]


@public.route("/feeds/")
@public.route("/<edition>/feeds/")
def directory(edition: str | None = None) -> ResponseReturnValue:
    """The edition's feeds for people: grouped by kind, each with its entry count, last update
    and newest headline, a filter box, and links to each feed's page, formats and the OPML."""
    config = _config()
    edition = _edition(edition) or config.site.default_edition
    default = config.site.default_edition
    base = base_url()
    labels = Labels(config, edition)
    body = render_template(
        "directory.html", labels=labels, edition=config.editions[edition],
        groups=directory_groups(edition, base), cap=COUNT_CAP,
        editions=_editions_nav(config, lambda code: feed_path("latest", None, code, default)[:-len("latest")]),
        main=[feed_path(k, None, edition, default) for k in ("latest", "breaking")], base=base,
        opml=f"{base}/feeds.opml", formats=FORMAT_NAMES)
    return _page_headers(Response(body, content_type="text/html; charset=utf-8"), DIRECTORY_MAX_AGE)


#: the formats as the pages name them
FORMAT_NAMES = {"rss": "RSS 2.0", "atom": "Atom 1.0", "json": "JSON Feed 1.1"}
#: entries a feed page shows unless ?limit= says otherwise
PAGE_ENTRIES = 20


def _feed_page(kind: str, slug: str | None, edition: str | None) -> ResponseReturnValue:
    """A feed's page for people: what the feed holds, in the edition's language and direction,
    with its subscribe links (the feed URLs stay exactly as they are)."""
    config = _config()
    if edition == config.site.default_edition:
        return _to_root(kind, slug, edition, "")
    args = request.args.to_dict()
    feed = parse_request(config, kind, slug, edition, args)  # the feed the page subscribes to
    req = feed if "limit" in args else dataclasses.replace(feed, limit=PAGE_ENTRIES)
    base = base_url()
    doc = build_feed(req, config, base, "json", SUFFIXES)
    labels = Labels(config, req.edition)
    qs = feed.query_string()
    feed_urls = {fmt: f"{base}{req.path}.{fmt}" + (f"?{qs}" if qs else "") for fmt in SUFFIXES}
    default = config.site.default_edition
    body = render_template(
        "feed.html", doc=doc, labels=labels, edition=config.editions[req.edition], urls=feed_urls,
        formats=FORMAT_NAMES, items=list(doc.items), directory=feed_path("latest", None, req.edition, default)[
            :-len("latest")],
        editions=_editions_nav(config, lambda code: feed_path(kind, slug, code, default)),
        local_time=_local_time, direction=language_direction)
    return _page_headers(Response(body, content_type="text/html; charset=utf-8"),
                         cache_lifetime(req.kind, config))


def _local_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@public.route("/feeds.opml")
def opml() -> Response:
    """Every public feed with entries, of every edition, as OPML 2.0, grouped by edition and kind
    in each edition's words (Atom URLs)."""
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
        labels = Labels(config, code)
        ed_outline = etree.SubElement(body, "outline", text=ed.title, title=labels.site_title)
        for group in directory_groups(code, base):
            group_outline = etree.SubElement(ed_outline, "outline", text=group.label, title=group.label)
            for feed in group.feeds:
                etree.SubElement(group_outline, "outline", type="rss", text=feed["title"],
                                 title=feed["title"], xmlUrl=feed["urls"]["atom"],
                                 htmlUrl=feed["page"], language=ed.language)
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
    (run every [server] integrity_check_every s, beside the probes: a probe never waits for one
    after the first); 503 with the reason when the store is away or damaged."""
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
