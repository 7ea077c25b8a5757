"""Which entries a feed holds: validated feed requests -> FeedDoc, read from the store."""
from __future__ import annotations

import base64
import binascii
import dataclasses
import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

from aggregator import store
from aggregator.config import Config, PartnerProfile
from aggregator.errors import BadRequest, NotFound
from aggregator.model import Author, Media

from . import clock
from .labels import Labels, isolate
from .model import FeedDoc, FeedItem, LazyItems, RelatedRef, SourceRef, Term, Tombstone

FEED_KINDS = ("latest", "section", "region", "tag", "author", "coverage", "breaking")
FILTERS = ("section", "region", "tag", "author", "q", "since")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY = 100
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Cursor:
    """A position in a feed: the entry at (published, id) and every older one.

    Defined by the entry, not by an offset, so a page stays the same while
    new entries arrive at the top.
    """

    published: datetime  # UTC (aware from the store; naive when decoded from a link)
    entry_id: int

    def encode(self) -> str:
        raw = f"{self.published.strftime('%Y%m%dT%H%M%S')}.{self.entry_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            stamp, _, ident = raw.partition(".")
            return cls(datetime.strptime(stamp, "%Y%m%dT%H%M%S"), int(ident))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadRequest(f"page: {text!r} is not a page of this feed; follow the feed's next link") from None


@dataclass(frozen=True)
class FeedRequest:
    """A validated request for one feed (format-independent)."""

    kind: str
    edition: str
    slug: str | None = None
    limit: int = DEFAULT_LIMIT
    #: intersecting filters from the query string, as given (order and spelling): (name, value)
    filters: tuple[tuple[str, str], ...] = field(default=())
    #: the recognised query parameters (limit and filters) in the request's own order, so the
    #: feed's self link is the URL it was fetched from; None means "limit, then filters"
    order: tuple[str, ...] | None = None
    #: the edition served at the root (its feeds have no /<edition> prefix)
    default_edition: str = "en"
    #: the page: this entry and older ones; None for the first page
    page: Cursor | None = None
    #: a partner's profile (what its feeds hold, and how); None for the public feeds
    profile: PartnerProfile | None = None

    @property
    def path(self) -> str:
        """The feed's path without format suffix, e.g. ``/ar/feeds/section/politics``."""
        return feed_path(self.kind, self.slug, self.edition, self.default_edition)

    @property
    def topic(self) -> str:
        """The change counter this feed's content depends on (see store.Topic)."""
        return f"{self.edition}:{self.kind}" + (f":{self.slug}" if self.slug else "")

    def query_string(self, page: Cursor | None = None) -> str:
        """The feed's query string: its parameters in the request's order, then the page."""
        values = dict(self.filters)
        if self.limit != DEFAULT_LIMIT or (self.order and "limit" in self.order):
            values["limit"] = str(self.limit)
        order = self.order if self.order is not None else ("limit", *(k for k, _ in self.filters))
        params = [(k, values[k]) for k in order if k in values]
        if page is not None:
            params.append(("page", page.encode()))
        return urlencode(params)


def feed_path(kind: str, slug: str | None, edition: str, default_edition: str) -> str:
    """The public path of a feed, without its format suffix."""
    prefix = "" if edition == default_edition else f"/{edition}"
    if kind in ("latest", "breaking"):
        return f"{prefix}/feeds/{kind}"
    return f"{prefix}/feeds/{kind}/{quote(slug or '', safe='')}"


def topic_path(topic: str, default_edition: str) -> str:
    """The feed path of a topic key such as ``ar:section:politics``."""
    edition, kind, *rest = topic.split(":", 2)
    return feed_path(kind, rest[0] if rest else None, edition, default_edition)


def _since(raw: str) -> datetime:
    """``since`` as aware UTC (a date means its midnight UTC)."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"since must be an RFC 3339 date or time such as 2026-11-24 or "
                         f"2026-11-24T18:00:00Z, got {raw!r}") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:59-23:59 is past the last representable instant
        raise BadRequest(f"since is out of range: {raw!r} is not between years 1 and 9999 in UTC") from None


# (C901: one check per parameter)
def parse_request(config: Config, kind: str, slug: str | None, edition: str | None,  # noqa: C901
                  args: dict[str, str]) -> FeedRequest:
    """Validate a feed request; NotFound for unknown feeds/slugs, BadRequest for bad parameters."""
    default = config.site.default_edition
    edition = edition or default
    # No slug or parameter of ours holds a control character, and PostgreSQL refuses NUL in
    # any string: such a request is the client's mistake (400), never the store's (500).
    for name, value in [("feed", slug or ""), *args.items()]:
        if _CONTROL.search(value) or _CONTROL.search(name):
            where = "the feed's name" if name == "feed" else f"parameter {_CONTROL.sub('?', name)!r}"
            raise (NotFound if name == "feed" else BadRequest)(f"{where} contains a control character")
    if edition not in config.editions:
        raise NotFound(f"unknown edition {edition!r}; editions: {', '.join(sorted(config.editions))}")
    if kind not in FEED_KINDS:
        raise NotFound(f"unknown feed kind {kind!r}")
    tax = config.taxonomy
    if kind == "section" and slug not in tax.sections:
        raise NotFound(f"unknown section {slug!r}; see /feeds/ for the list of feeds")
    if kind == "region" and slug not in tax.regions:
        raise NotFound(f"unknown region {slug!r}; regions: {', '.join(sorted(tax.regions))}")
    if kind == "tag" and store.tag_name(slug or "") is None:
        raise NotFound(f"unknown tag {slug!r}")
    if kind == "author" and store.author_name(slug or "") is None:
        raise NotFound(f"unknown author {slug!r}")
    if kind == "coverage" and slug not in tax.coverage:
        raise NotFound(f"unknown coverage {slug!r}; dossiers: {', '.join(sorted(tax.coverage)) or 'none'}")
    limit = DEFAULT_LIMIT
    if "limit" in args:
        raw = args["limit"]
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}")
        limit = int(raw)
    filters: list[tuple[str, str]] = []
    for name, value in args.items():
        if name not in FILTERS:
            continue
        if name == "section" and value not in tax.sections:
            raise BadRequest(f"section filter: unknown section {value!r}")
        if name == "region" and value not in tax.regions:
            raise BadRequest(f"region filter: unknown region {value!r}; regions: "
                             f"{', '.join(sorted(tax.regions))}")
        if name == "tag" and store.tag_name(value) is None:
            raise BadRequest(f"tag filter: unknown tag {value!r}")
        if name == "author" and store.author_name(value) is None:
            raise BadRequest(f"author filter: unknown author {value!r}")
        if name == "q" and not 1 <= len(" ".join(value.split())) <= MAX_QUERY:
            raise BadRequest(f"q must be 1 to {MAX_QUERY} characters of text to search for")
        if name == "since":
            _since(value)
        filters.append((name, value))
    page = Cursor.decode(args["page"]) if args.get("page") else None
    order = tuple(k for k in args if k == "limit" or k in FILTERS)
    return FeedRequest(kind=kind, edition=edition, slug=slug if kind not in ("latest", "breaking") else None,
                       limit=limit, filters=tuple(filters), default_edition=default, page=page, order=order)


_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def feed_query(req: FeedRequest, config: Config) -> store.FeedQuery:
    """What the feed holds (its kind and filters), in the store's terms."""
    criteria: list[tuple[str, Any]] = []
    wanted = [(req.kind, req.slug)] if req.slug else []
    for kind, value in wanted + list(req.filters):
        if kind in ("section", "region", "tag", "author", "coverage"):
            criteria.append((kind, value))
        elif kind == "q":
            criteria.append(("q", " ".join(value.split())))
        elif kind == "since":
            criteria.append(("since", _since(value)))
    breaking = req.kind == "breaking"
    now = clock.now()
    since = now - timedelta(hours=config.site.breaking_hours) if breaking and config.site.breaking_hours else None
    profile = req.profile
    # An entry published in the future (an embargo) is in no feed before its time; a partner's
    # delay holds items back further. Rights: public feeds carry copy anyone may redistribute;
    # partners also what partners may; our own properties everything.
    if profile is None:
        return store.FeedQuery(req.edition, tuple(criteria), breaking, since, until=now, rights=PUBLIC_RIGHTS)
    rights = OWN_RIGHTS if profile.own_property else PARTNER_RIGHTS
    sections = tuple(s for p in profile.sections for s in config.taxonomy.section_family(p))
    return store.FeedQuery(req.edition, tuple(criteria), breaking, since,
                           until=now - timedelta(minutes=profile.delay_minutes),
                           rights=rights, source_kinds=profile.source_kinds,
                           sections_any=sections, regions_any=profile.regions)


#: what each audience may be given, by a source's rights (config.RIGHTS)
PUBLIC_RIGHTS = ("everyone",)
PARTNER_RIGHTS = ("partners", "everyone")
OWN_RIGHTS = ("own", "partners", "everyone")


@dataclass
class Page:
    """One page of a feed: its rows, and where the neighbouring pages start."""

    rows: list[store.PageRow]
    next: Cursor | None
    previous: Cursor | None
    has_previous: bool
    #: the store query the page was read with
    query: store.FeedQuery | None = None


def select_page(req: FeedRequest, config: Config, take: int | None = None) -> Page:
    """The page's live entries, newest first (one extra row tells whether a next page exists).

    ``take`` (at most the request's limit) makes the page hold fewer entries than asked,
    its next link starting right after them: for a page that would be too large to send.
    """
    limit = min(req.limit, req.profile.page_size) if req.profile else req.limit
    size = limit if take is None else max(1, min(take, limit))
    query = feed_query(req, config)
    start = (req.page.published, req.page.entry_id) if req.page else None
    rows = store.page_rows(query, start, size + 1)
    nxt = Cursor(rows[size].published, rows[size].id) if len(rows) > size else None
    rows = rows[:size]
    previous, has_previous = None, False
    if req.page and rows:
        newer = store.newer_rows(query, rows[0], limit + 1)
        has_previous = bool(newer)
        # The previous page is the `limit` entries just newer than this one; it starts at
        # the newest of them, unless nothing is newer still: then it is page one itself.
        if len(newer) > limit:
            top_id, top_published = newer[limit - 1]
            previous = Cursor(top_published, top_id)
    return Page(rows=rows, next=nxt, previous=previous, has_previous=has_previous, query=query)


def load_items(rows: list[store.PageRow], req: FeedRequest, config: Config, base_url: str,
               query: store.FeedQuery | None = None) -> LazyItems:
    """Entries with authors, terms, media and related entries: four plain queries for a whole page.

    The store reads what items are made of for the whole page at once (store.item_rows).
    Each item is built only when it is used: a rendering that reuses an entry's written
    form needs just its fingerprint.
    """
    if not rows:
        return LazyItems((), _no_item)
    query = query or feed_query(req, config)
    raw = store.item_rows([r.id for r in rows], query.until, query.rights)
    sources = store.feed_sources(sorted({r.source for r in rows}))
    refs = {key: _source_ref(src, config) for key, src in sources.items()}
    terms = _Terms(req, config, base_url)
    shape = _Shape.of(req.profile, config.site.rights)
    # The rest of an item comes from the config (taxonomy titles, id authority), fixed for
    # the life of an app and so of the render cache's entries, the scheme prefix, and the
    # partner's shaping (a partner's summary-only item must never be a public item's twin).
    fingerprints = tuple((r, tuple(raw[r.id]), sources[r.source], terms.scheme, shape) for r in rows)
    return LazyItems(fingerprints, lambda i: shape.apply(
        _item(rows[i], refs[rows[i].source], raw[rows[i].id], terms, fingerprints[i]), sources[rows[i].source]))


@dataclass(frozen=True)
class _Shape:
    """How a profile shapes items (the public feeds: not at all, beyond the rights statement)."""

    site_rights: str
    full_text: bool = True
    images: bool = True
    image_sources: tuple[str, ...] = ()
    attribution: str = ""
    attribution_link: str = ""

    @classmethod
    def of(cls, profile: PartnerProfile | None, site_rights: str) -> "_Shape":
        if profile is None:
            return cls(site_rights)
        return cls(site_rights, profile.full_text, profile.images, profile.image_sources, profile.attribution,
                   profile.attribution_link)

    def apply(self, item: FeedItem, source: store.FeedSource) -> FeedItem:
        changes: dict[str, Any] = {"rights": source.rights_statement or self.site_rights or None}
        if not self.full_text:
            changes["content"] = ""
        if not self.images or (self.image_sources and source.key not in self.image_sources):
            changes["media"] = ()
        if self.attribution:
            line = html.escape(self.attribution)
            if self.attribution_link:
                line = f'<a href="{html.escape(self.attribution_link, quote=True)}">{line}</a>'
            changes["summary"] = f"{item.summary} — {self.attribution}" if item.summary else self.attribution
            if self.full_text and item.content:
                changes["content"] = f"{item.content}<p>{line}</p>"
        return dataclasses.replace(item, **changes)


def _no_item(index: int) -> FeedItem:
    raise IndexError(index)


def select_items(req: FeedRequest, config: Config, base_url: str) -> list[FeedItem]:
    """The feed's entries on the requested page, newest first."""
    return list(load_items(select_page(req, config).rows, req, config, base_url))


def select_tombstones(req: FeedRequest, config: Config) -> list[Tombstone]:
    """Entries of this feed retracted within the configured period (for Atom's at:deleted-entry)."""
    window = clock.now() - timedelta(days=config.site.tombstone_days)
    return [Tombstone(id=public_id, when=when, reason=reason)
            for public_id, when, reason in store.tombstone_rows(feed_query(req, config), window, MAX_LIMIT)]


class _Terms:
    """The categories of one page's entries: a section or tag on fifty entries is one Term."""

    def __init__(self, req: FeedRequest, config: Config, base_url: str):
        prefix = "" if req.edition == config.site.default_edition else f"/{req.edition}"
        self.scheme = f"{base_url}{prefix}/feeds/"
        self.taxonomy = config.taxonomy
        self.labels = Labels(config, req.edition)
        self._made: dict[tuple[str, str, str], Term] = {}

    def term(self, kind: str, slug: str, label: str) -> Term:
        made = self._made.get((kind, slug, label))
        if made is None:
            made = self._made[(kind, slug, label)] = Term(kind, slug, label, f"{self.scheme}{kind}/")
        return made

    def of(self, section: str | None, regions: list[str], tags: list[tuple[str, str]],
           coverage: list[str]) -> tuple[Term, ...]:
        tax, term, labels = self.taxonomy, self.term, self.labels
        terms: list[Term] = []
        if section in tax.sections:
            terms.append(term("section", section, labels.section(section)))
        terms += [term("region", r, labels.region(r)) for r in regions]
        terms += [term("tag", slug, name) for slug, name in tags]
        terms += [term("coverage", slug, labels.coverage(slug)) for slug in coverage if slug in tax.coverage]
        return tuple(terms)


def _source_ref(src: store.FeedSource, config: Config) -> SourceRef | None:
    """Where wire and partner copy came from (it is re-syndicated); None for our own CMS."""
    if src.kind == "cms":
        return None
    public_url = src.url if src.url.startswith(("http://", "https://")) else None
    return SourceRef(title=src.feed_title or src.name, url=public_url, link=src.feed_link,
                     id=f"tag:{config.site.id_authority}:source/{src.key}")


def _item(row: store.PageRow, source: SourceRef | None, raw: list[tuple[Any, ...]], terms: _Terms,
          fingerprint: tuple[Any, ...]) -> FeedItem:
    authors: list[Author] = []
    tags: list[tuple[str, str]] = []
    regions: list[str] = []
    coverage: list[str] = []
    media: list[Media] = []
    related: list[RelatedRef] = []
    for r in raw:
        kind = r[0]
        if kind == "a":
            authors.append(Author(name=r[2], slug=r[3], url=r[4]))
        elif kind == "t":
            tags.append((r[2], r[3]))
        elif kind == "r":
            regions.append(r[2])
        elif kind == "c":
            coverage.append(r[2])
        elif kind == "m":
            media.append(Media(r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], bool(r[11])))
        else:
            related.append(RelatedRef(id=r[2], title=r[3], url=r[4]))
    # A body that only says the headline again (a ticker's one-liner) is not published.
    summary = "" if repeats_title(row.title, row.summary) else row.summary
    content = "" if row.content and repeats_title(row.title, _TAG.sub(" ", row.content)) else row.content
    return FeedItem(
        id=row.public_id, title=row.title, link=row.link, summary=summary, content=content,
        published=row.published, updated=row.updated,
        language=row.language, authors=tuple(authors), terms=terms.of(row.section, regions, tags, coverage),
        media=tuple(media), section=row.section,
        regions=tuple(regions), tags=tuple(s for s, _ in tags), breaking=row.breaking,
        origin=row.origin, reading_time=row.reading_time, source=source, coverage=tuple(coverage),
        related=tuple(related), fingerprint=fingerprint)


_TAG = re.compile(r"<[^>]*>")
_WORD = re.compile(r"\w+")


def repeats_title(title: str, text: str) -> bool:
    """Does ``text`` say nothing its title does not (the same words in the same order, within
    it: "BREAKING: Bridge closed" and "Bridge closed.")? Case, markup
    and punctuation aside."""
    said = _WORD.findall(html.unescape(text).casefold())
    if not said:
        return bool(text)  # only punctuation or markup: nothing to say either
    words = _WORD.findall(title.casefold())
    span = len(said)
    return any(words[i:i + span] == said for i in range(len(words) - span + 1))


def cache_lifetime(kind: str, config: Config) -> int:
    """How long pollers may keep a feed of this kind (seconds): the one place that decides it."""
    return config.site.breaking_max_age if kind == "breaking" else config.site.feed_max_age


def feed_title(req: FeedRequest, config: Config) -> str:
    """Human title of a feed in its edition's words, e.g. 'Example Newsroom: Politics'."""
    labels = Labels(config, req.edition)
    display = store.tag_name(req.slug or "") if req.kind == "tag" else \
        store.author_name(req.slug or "") if req.kind == "author" else None
    what = labels.feed_name(req.kind, req.slug, display)
    if req.filters:
        what += " (" + ", ".join(isolate(f"{k}: {v}", labels.direction) for k, v in req.filters) + ")"
    return f"{labels.site_title}: {what}"


def newest_change(req: FeedRequest, config: Config) -> datetime:
    """The feed's date when a page is empty: the newest change of the feed, else of its edition."""
    newest = store.newest_update(feed_query(req, config)) or store.newest_update(store.FeedQuery(req.edition))
    return newest or EPOCH


def build_feed(req: FeedRequest, config: Config, base_url: str, fmt: str,
               formats: dict[str, str], take: int | None = None) -> FeedDoc:
    """Select a feed's page and describe the feed; ``formats`` maps format -> file suffix.
    ``take``: hold at most that many entries (see select_page)."""
    page = select_page(req, config, take)
    items = load_items(page.rows, req, config, base_url, page.query)
    tombstones = select_tombstones(req, config) if fmt == "atom" and req.page is None else []

    def url(f: str, cursor: Cursor | None = None, first: bool = False) -> str:
        qs = req.query_string(None if first else cursor)
        return f"{base_url}{req.path}.{formats[f]}" + (f"?{qs}" if qs else "")

    alternates = {f: url(f, req.page) for f in formats}
    edition = config.editions[req.edition]
    # From the rows, not the items: the items are built only if the rendering needs them.
    changes = [r.updated for r in page.rows] + [t.when for t in tombstones]
    updated = max(changes) if changes else newest_change(req, config)
    feed_key = req.path.lstrip("/") + (f"?{req.query_string()}" if req.query_string() else "")
    if req.profile is not None:  # another document than the public feed: its own id
        feed_key = f"partner-profile/{req.profile.name}/{feed_key}"
    labels = Labels(config, req.edition)
    about = labels.coverage_description(req.slug or "") if req.kind == "coverage" else ""
    expires = None
    if req.kind == "breaking" and config.site.breaking_hours and page.rows:
        # The ticker changes with the clock too: it is valid until its oldest item leaves.
        oldest = min(r.published for r in page.rows)
        expires = oldest + timedelta(hours=config.site.breaking_hours)
    if req.page is None and page.query is not None and page.query.until is not None:
        # ... and when the next held-back entry (an embargo, a partner's delay) comes out.
        held = store.next_visible(page.query) if req.profile else store.next_held(req.edition, page.query.until)
        if held is not None:
            delay = timedelta(minutes=req.profile.delay_minutes) if req.profile else timedelta(0)
            expires = min(expires, held + delay) if expires else held + delay
    title = feed_title(req, config)
    return FeedDoc(
        id=f"tag:{config.site.id_authority}:{feed_key}", title=title,
        description=f"{title}. {about or labels.site_description}",
        logo=_absolute(labels.image("logo"), base_url), icon=_absolute(labels.image("icon"), base_url),
        self_url=alternates[fmt], home_url=config.site.link, language=edition.language,
        updated=updated, items=items, rights=config.site.rights,
        max_age=cache_lifetime(req.kind, config), author_name=labels.site_title, alternates=alternates,
        direction=edition.direction, hubs=config.websub.hubs,
        first_url=url(fmt, first=True) if req.page else None,
        next_url=url(fmt, page.next) if page.next else None,
        previous_url=(url(fmt, page.previous) if page.previous else url(fmt, first=True))
        if page.has_previous else None,
        tombstones=tuple(tombstones), expires=expires,
        licence=req.profile.licence if req.profile else "")


def _absolute(url: str, base_url: str) -> str:
    """A configured logo or icon as an absolute URL (a path is on this site)."""
    return f"{base_url}{url}" if url.startswith("/") else url
