"""Plain data passed between parse, normalise and the store (no behaviour, no I/O)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Person:
    """An author as a feed names them."""

    name: str
    url: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Category:
    """A category / tag as a feed gives it (RSS category, Atom category, JSON Feed tag)."""

    term: str
    scheme: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class RawMedia:
    """A media reference found in a feed entry, before normalisation."""

    url: str
    medium: str | None = None  # image / video / audio, when the feed says
    type: str | None = None
    length: int | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    caption: str | None = None
    credit: str | None = None
    origin: str = "enclosure"  # media:content, media:thumbnail, enclosure, image, attachment


@dataclass
class RawEntry:
    """One entry as parsed, format-independent but not yet cleaned."""

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    title_is_html: bool = False
    summary: str | None = None
    summary_is_html: bool = True
    content: str | None = None
    content_is_html: bool = True
    authors: list[Person] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)
    published: datetime | None = None  # aware, any zone
    updated: datetime | None = None
    published_raw: str | None = None
    updated_raw: str | None = None
    media: list[RawMedia] = field(default_factory=list)
    language: str | None = None
    base: str | None = None  # base URL for resolving relative links in the content


@dataclass
class RawFeed:
    """A whole parsed feed."""

    format: str  # rss20, rss10, rss09x, atom10, atom03, json11, json10
    title: str | None = None
    link: str | None = None
    language: str | None = None
    ttl: int | None = None
    entries: list[RawEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: ids the source says it deleted (Atom tombstones, RFC 6721): (ref, comment)
    deleted: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class Media:
    """A cleaned media item; the first image flagged ``lead`` is the card's picture."""

    kind: str  # image | video | audio | file
    url: str
    type: str | None = None
    length: int | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    caption: str | None = None
    credit: str | None = None
    lead: bool = False


@dataclass(frozen=True)
class Author:
    """A cleaned author with the slug of their author feed."""

    name: str
    slug: str
    url: str | None = None


@dataclass(frozen=True)
class Tag:
    name: str
    slug: str


@dataclass(frozen=True)
class Entry:
    """A normalised entry, ready to store. Datetimes are naive UTC."""

    guid: str
    public_id: str
    title: str
    link: str | None
    language: str
    edition: str
    summary: str
    content: str
    published: datetime
    updated: datetime
    section: str | None
    regions: tuple[str, ...]
    tags: tuple[Tag, ...]
    authors: tuple[Author, ...]
    media: tuple[Media, ...]
    origin: str | None
    breaking: bool
    reading_time: int
    date_missing: bool
    fingerprint: str
    #: coverage dossiers the entry belongs to (slugs)
    coverage: tuple[str, ...] = ()
    #: a future date was replaced by the time we saw it
    date_clamped: bool = False
    #: the dates exactly as the source wrote them
    published_raw: str | None = None
    updated_raw: str | None = None
    #: the title folded for matching the same story across mirror sources
    title_key: str = ""
    #: the source's rules that matched, in order, and whether a keep/drop filter removed it
    rule_trace: tuple[str, ...] = ()
    dropped: bool = False
    #: fields the [collect] caps shortened, each with its size and limit ("title (5000000 characters, limit 500)")
    truncated: tuple[str, ...] = ()
    #: the searchable words (search.document of title and summary) joined by spaces, made where
    #: the entry is normalised, in a parse worker, so the one writing process need not; None:
    #: the writer makes them (an entry built elsewhere: the desk, a test)
    words: str | None = None
