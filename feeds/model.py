"""The feed model handed from selection to rendering: plain, format-neutral data."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import overload

from aggregator.model import Author, Media


@dataclass(frozen=True)
class Term:
    """A category in a published feed: section, region or tag, with its scheme URI."""

    kind: str  # section | region | tag
    slug: str
    label: str
    scheme: str


@dataclass(frozen=True)
class SourceRef:
    """Where a re-syndicated entry came from (RSS <source>, atom:source)."""

    title: str
    url: str | None  # the source feed's URL, when it has a public one
    link: str | None  # the source's home page
    id: str


@dataclass(frozen=True)
class RelatedRef:
    """An entry related to a published one (shared tags and coverage)."""

    id: str
    title: str
    url: str | None


@dataclass(frozen=True)
class FeedItem:
    """One entry as a feed publishes it; datetimes are aware UTC."""

    id: str
    title: str
    link: str | None
    summary: str
    content: str
    published: datetime
    updated: datetime
    language: str
    authors: tuple[Author, ...]
    terms: tuple[Term, ...]
    media: tuple[Media, ...]
    section: str | None
    regions: tuple[str, ...]
    tags: tuple[str, ...]
    breaking: bool
    origin: str | None
    reading_time: int
    source: SourceRef | None = None
    coverage: tuple[str, ...] = ()
    #: best first
    related: tuple[RelatedRef, ...] = ()
    #: the item's rights statement (its source's, else the site's)
    rights: str | None = None
    #: what the item was made of, as read from the store (plain tuples, cheap to hash and
    #: compare): equal fingerprints make equal items, so rendered entries are looked up
    #: by it (feeds.render.Fragments). None: look them up by the item itself.
    fingerprint: Hashable | None = field(default=None, compare=False, repr=False)

    def __hash__(self) -> int:
        # Rendered entries are looked up by the whole item (feeds.render.Fragments), for
        # every item of every rendering: hashing a few identifying fields spreads them as
        # well as hashing every body would, and equality still compares every field.
        return hash((self.id, self.updated, self.title))

    @property
    def lead_image(self) -> Media | None:
        return next((m for m in self.media if m.lead), None)


class LazyItems(Sequence[FeedItem]):
    """A page's items, each built on first use and then kept.

    Rendering looks entries up by fingerprint first (feeds.render.Fragments); an item
    whose written form is already there is never built at all.
    """

    def __init__(self, fingerprints: tuple[Hashable, ...], make: Callable[[int], FeedItem]):
        self.fingerprints = fingerprints
        self._make = make
        self._built: list[FeedItem | None] = [None] * len(fingerprints)

    def __len__(self) -> int:
        return len(self.fingerprints)

    @overload
    def __getitem__(self, index: int) -> FeedItem: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[FeedItem, ...]: ...

    def __getitem__(self, index: int | slice) -> FeedItem | tuple[FeedItem, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        item = self._built[index]  # IndexError past the end, as a sequence must
        if item is None:
            item = self._built[index] = self._make(index)
        return item

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    @property
    def built(self) -> int:
        """How many items have been built so far."""
        return sum(i is not None for i in self._built)

    def __repr__(self) -> str:
        return f"LazyItems({len(self)} items, {self.built} built)"


@dataclass(frozen=True)
class Tombstone:
    """A retracted entry, published as an Atom at:deleted-entry (RFC 6721)."""

    id: str
    when: datetime
    reason: str | None = None


@dataclass(frozen=True)
class FeedDoc:
    """A whole feed, ready for any of the three formats."""

    id: str
    title: str
    description: str
    self_url: str  # the URL of this feed in the format being rendered
    home_url: str  # the HTML page the feed corresponds to
    language: str
    updated: datetime
    #: a tuple, or LazyItems from the store
    items: Sequence[FeedItem]
    rights: str = ""
    #: how long pollers may cache it (Cache-Control max-age, seconds); RSS ttl follows it
    max_age: int = 300
    author_name: str = ""
    #: other formats of the same feed: format -> URL
    alternates: dict[str, str] = field(default_factory=dict)
    direction: str = "ltr"
    #: WebSub hubs that push this feed
    hubs: tuple[str, ...] = ()
    #: RFC 5005 paging (absolute URLs in this feed's format)
    first_url: str | None = None
    next_url: str | None = None
    previous_url: str | None = None
    tombstones: tuple[Tombstone, ...] = ()
    #: when the content changes by itself (breaking items ageing out, an embargo lifting);
    #: None: only on writes
    expires: datetime | None = None
    #: a licence link at feed level (a partner profile's)
    licence: str = ""
    #: absolute URLs of the feed's logo (wide) and icon (square); "" for none
    logo: str = ""
    icon: str = ""

    @property
    def ttl_minutes(self) -> int:
        """RSS ttl: the same lifetime as max_age, in whole minutes (at least one)."""
        return max(1, self.max_age // 60)
