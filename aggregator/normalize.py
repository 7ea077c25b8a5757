"""Pure normalisation: RawEntry -> Entry (ids, dates, text, sanitised HTML, media, taxonomy).

Nothing here touches the network, the disk or the store, so every rule is
tested with inline data.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import html
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import cast
from urllib.parse import SplitResult, parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

from .config import Caps, Config, Edition, Rule, SourceConfig, Taxonomy
from .model import Author, Entry, Media, RawEntry, RawFeed, RawMedia, Tag
from .search import document

# XML 1.0 allows only these characters; anything else (C0 controls, lone
# surrogates, U+FFFE/U+FFFF) would make every feed we generate invalid.
_XML_ILLEGAL = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WS = re.compile(r"\s+")
_TRAILING_CREDIT = re.compile(r"^(?P<caption>.*?)\s*\((?P<credit>[^()]{1,80})\)\s*$", re.S)
_TRACKING_PARAMS = re.compile(r"^(utm_[a-z_]+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|yclid|_ga|igshid)$", re.I)
_WORDS_PER_MINUTE = 200
FUTURE_TOLERANCE = timedelta(minutes=10)
SUMMARY_MAX = 320

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del",
    "div", "dl", "dt", "em", "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "li", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "blockquote": {"cite"}, "q": {"cite"}, "del": {"cite", "datetime"}, "ins": {"cite", "datetime"},
    "time": {"datetime"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan", "scope"},
    "abbr": {"title"}, "ol": {"start"},
    "*": {"lang", "dir"},
}
_URL_ATTRIBUTES = {"href", "src", "cite"}


#: longest slug stored (the store's slug columns hold 200 characters)
SLUG_MAX = 200


@dataclass(frozen=True)
class Context:
    """What normalisation needs from config, passed explicitly."""

    taxonomy: Taxonomy
    editions: dict[str, Edition]
    id_authority: str
    breaking_prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: slug of a section's / region's title -> its slug ("arts-culture" for "Arts & Culture"),
    #: computed once here rather than for every category of every entry
    section_by_title: dict[str, str] = field(default_factory=dict)
    region_by_title: dict[str, str] = field(default_factory=dict)
    caps: Caps = field(default_factory=Caps)
    #: how far ahead an embargo source's dates are believed
    embargo: timedelta = timedelta(days=14)

    def __post_init__(self) -> None:
        if not self.section_by_title:
            self.section_by_title.update({slugify(s.title): slug for slug, s in self.taxonomy.sections.items()})
        if not self.region_by_title:
            self.region_by_title.update({slugify(t): slug for slug, t in self.taxonomy.regions.items()})

    @classmethod
    def from_config(cls, config: Config) -> "Context":
        return cls(taxonomy=config.taxonomy, editions=config.editions,
                   id_authority=config.site.id_authority,
                   breaking_prefixes=config.collect.breaking_prefixes, caps=config.collect.caps,
                   embargo=timedelta(days=config.collect.embargo_days))


# --- text ------------------------------------------------------------------------

def xml_safe(text: str) -> str:
    """Remove characters XML 1.0 forbids (controls, lone surrogates, U+FFFE/U+FFFF)."""
    return _XML_ILLEGAL.sub("", text)


_COMPLETE_TAG = re.compile(r"<[A-Za-z!/?][^<>]*>")
# Where a block starts or ends, text on either side is separate words ("(AP)</figcaption><p>Text").
_BLOCK_EDGE = re.compile(r"<(?=/?(?:p|div|br|li|dd|dt|h[1-6]|figure|figcaption|blockquote|pre|ul|ol|table|tr|td|th"
                         r"|section|article|header|footer|aside)\b)", re.I)
_IMG_WITHOUT_SRC = re.compile(r"<img\b(?![^>]*\ssrc=)[^>]*>", re.I)
_TAG_START = re.compile(r"<(?=[A-Za-z!/?])")


def plain_text(value: str | None, is_html: bool = True) -> str:
    """Tags stripped, entities decoded, whitespace collapsed, XML-safe; never a complete tag.

    Readers render RSS descriptions and titles as HTML, so plain text must not
    carry a tag even when the source escaped it twice ("&amp;lt;script&amp;gt;"):
    decoding can reveal a tag, which is then stripped too.
    """
    if not value:
        return ""
    # Forbidden characters go first and after every decoding step: one left between "<" and
    # a letter would hide a tag from the checks below and reappear as "<b" once removed.
    text = xml_safe(value)
    if is_html and ("<" in text or "&" in text):  # else there is no markup to remove
        text = _BLOCK_EDGE.sub(" <", text)
        # nh3 with no allowed tags drops markup (and script/style contents) and
        # escapes the rest; unescape afterwards to get the plain characters.
        text = xml_safe(html.unescape(nh3.clean(text, tags=set(), clean_content_tags={"script", "style"})))
    for _ in range(5):  # each round peels one layer of escaping; five is more than any feed nests
        if not _COMPLETE_TAG.search(text):
            break
        text = xml_safe(html.unescape(_COMPLETE_TAG.sub("", text)))
    text = unicodedata.normalize("NFC", _COMPLETE_TAG.sub("", text))
    # A "<" that could still open a tag (an unterminated "<a onclick=...") gets a space
    # after it, so it is text in every HTML context: "Team A <Team B" -> "Team A < Team B".
    text = _TAG_START.sub("< ", text)
    return _WS.sub(" ", text).strip()


def sanitize_html(value: str | None, base: str | None = None) -> str:
    """Entry body HTML restricted to a news allow-list; only http(s)/mailto URLs, made absolute."""
    if not value:
        return ""

    def resolve(element: str, attribute: str, url: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES:
            return url
        absolute = _join(base, url.strip())
        scheme = urlsplit(absolute).scheme.lower()
        if scheme in ("http", "https", "mailto"):
            return absolute
        return None  # drop relative links we cannot resolve and every other scheme

    cleaned = nh3.clean(
        xml_safe(unicodedata.normalize("NFC", value)), tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
        attribute_filter=resolve, link_rel="noopener noreferrer",
        clean_content_tags={"script", "style"}, strip_comments=True)
    # An image whose source was unsafe (data:, javascript:) or unresolvable is nothing at all.
    return _IMG_WITHOUT_SRC.sub("", cleaned).strip()


def truncate_words(text: str, limit: int = SUMMARY_MAX) -> str:
    """Cut plain text at a word boundary, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.-")
    return cut + "…"


def cap_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the cut marked with an ellipsis.

    The cut never separates a letter from its combining marks (Arabic vowel signs,
    accents): a letter whose marks would be cut off goes with them.
    """
    if len(text) <= limit:
        return text
    end = max(limit - 1, 0)
    if end < len(text) and unicodedata.combining(text[end]):
        while end > 0 and unicodedata.combining(text[end - 1]):
            end -= 1
        end = max(end - 1, 0)  # the letter the marks belong to
    return text[:end].rstrip() + "…"


_TRUNCATED_BODY = "<p>…</p>"


def cap_html(value: str, limit: int) -> str:
    """Sanitised HTML cut to at most ``limit`` characters at an element boundary: whole
    top-level elements are kept while they fit, and a paragraph saying "…" marks the cut.
    A first element too long on its own gives its plain text, cut. The result is
    sanitised again, so it is as safe and well-formed as the input."""
    if len(value) <= limit:
        return value
    from lxml import etree
    from lxml import html as lxml_html

    budget = limit - len(_TRUNCATED_BODY)
    root = lxml_html.fragment_fromstring(value, create_parent="div")
    kept: list[str] = []
    used = 0
    lead = html.escape(root.text or "")
    if lead and len(lead) <= budget:
        kept.append(lead)
        used += len(lead)
    for child in root:
        part = etree.tostring(child, encoding="unicode", method="html", with_tail=True)
        if used + len(part) > budget:
            break
        kept.append(part)
        used += len(part)
    if not kept:
        text = " ".join(root.text_content().split())
        kept = [f"<p>{html.escape(cap_text(text, max(budget - 7, 1) // 2))}</p>"]  # escaping may double it
    out = nh3.clean("".join(kept) + _TRUNCATED_BODY, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                    url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer", strip_comments=True)
    return out if len(out) <= limit else _TRUNCATED_BODY


def cap_slug(slug: str) -> str:
    """A slug short enough for the store, cut at a word boundary where it has one."""
    if len(slug) <= SLUG_MAX:
        return slug
    cut = slug[:SLUG_MAX]
    return cut.rsplit("-", 1)[0] if "-" in cut else cut


# Latin letters that have no Unicode decomposition to an ASCII base letter.
_LATIN_FOLD = str.maketrans({"ı": "i", "ø": "o", "đ": "d", "ł": "l", "ß": "ss", "æ": "ae", "œ": "oe",
                             "þ": "th", "ð": "d", "ħ": "h", "ŧ": "t", "ŋ": "n"})


_ASCII_GAPS = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """Lowercase words joined by '-': Latin letters ASCII-folded, other scripts kept as they are."""
    if text.isascii():  # the common case, without the per-character Unicode work below
        return "-".join(_ASCII_GAPS.sub(" ", text.lower()).split())
    return _slugify_unicode(text)


@functools.lru_cache(maxsize=4096)  # tags and bylines repeat across a feed's entries
def _slugify_unicode(text: str) -> str:
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", text.strip().lower()).translate(_LATIN_FOLD):
        folded = unicodedata.normalize("NFKD", ch)
        base = folded[0] if folded else ch
        if base.isascii():
            out.append(base if base.isalnum() else " ")
        elif unicodedata.category(ch).startswith("M"):
            continue  # diacritics such as Arabic harakat do not belong in a slug
        elif ch.isalnum():
            out.append(ch)
        else:
            out.append(" ")
    return "-".join("".join(out).split())


# --- links and ids -------------------------------------------------------------

def _join(base: str | None, url: str) -> str:
    """``url`` resolved against ``base``; an absolute http(s) URL is already resolved."""
    if not base or url.startswith(("https://", "http://")):
        return url
    return urljoin(base, url)


def _absolute_http(url: str | None, base: str | None) -> SplitResult | None:
    """``url`` resolved against ``base`` and split, if it is an absolute http(s) URL."""
    if not url or not url.strip():
        return None
    absolute = _join(base, url.strip())
    parts = urlsplit(absolute)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return parts


def canonical_link(link: str | None, base: str | None = None) -> str | None:
    """Absolute http(s) URL without fragment and tracking parameters; None if unusable."""
    parts = _absolute_http(link, base)
    if parts is None:
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _TRACKING_PARAMS.match(k)]
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: not a usable link
        return None
    if port == _DEFAULT_PORTS[scheme]:
        netloc = netloc.rsplit(":", 1)[0]  # https://host:443/ is https://host/
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query, doseq=True), ""))


_DEFAULT_PORTS = {"http": 80, "https": 443}


_URI_ID = re.compile(r"^(https?://[^\s]+|tag:[^\s]+|urn:[a-z0-9][a-z0-9-]{0,31}:[^\s]+)$", re.I)


def public_id(guid: str, source_key: str, authority: str) -> str:
    """The id feeds publish: the source's guid when it is already a URI, else a tag: URI."""
    if _URI_ID.match(guid) and guid.isascii():
        return guid
    digest = hashlib.sha256(guid.encode("utf-8")).hexdigest()[:24]
    return f"tag:{authority}:{source_key}/{digest}"


ID_RULES = ("guid", "link", "hash")


def hash_id(title: str, date_raw: str | None) -> str:
    """The weakest identity: a hash of the entry's title and the date as the source wrote it."""
    basis = f"{title}\x00{date_raw or ''}"
    return "sha256:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()


def entry_guid(raw: RawEntry, link: str | None, title: str, rule: str = "guid") -> str:
    """Identity within the source under the source's rule: guid, else canonical link, else a hash."""
    if rule == "guid" and raw.guid and raw.guid.strip():
        return xml_safe(raw.guid.strip())
    if rule in ("guid", "link") and link:
        return link
    return hash_id(title, raw.published_raw or raw.updated_raw)


def _entry_base(raw: RawEntry, feed: RawFeed, source: SourceConfig) -> str | None:
    return raw.base or raw.link or feed.link or (source.url if "://" in source.url else None)


def choose_id_rule(feed: RawFeed, source: SourceConfig, current: str,
                   previous: dict[str, str]) -> tuple[str, str | None]:
    """The identity rule a source needs, and why it changed (None when it did not).

    Guids are unusable when one guid names different links, or when they change
    on every fetch (``previous``: stored link -> guid). Links are unusable when one
    link names entries with different titles. Rules only ever get weaker.
    """
    rule, reason = current, None
    pairs = [(canonical_link(r.link, _entry_base(r, feed, source)), (r.guid or "").strip(), r)
             for r in feed.entries]
    if rule == "guid":
        links_of: dict[str, set[str]] = {}
        for link, guid, _ in pairs:
            if guid and link:
                links_of.setdefault(guid, set()).add(link)
        shared = sorted(g for g, links in links_of.items() if len(links) > 1)
        known = [(link, guid) for link, guid, _ in pairs if guid and link in previous]
        changed = sum(1 for link, guid in known if previous[link] != guid)
        if shared:
            rule, reason = "link", (f"guid {shared[0]!r} is used for {len(links_of[shared[0]])} different "
                                    "links; entries are identified by their links")
        elif len(known) >= 3 and changed * 2 >= len(known):
            rule, reason = "link", (f"guids change on every fetch ({changed} of {len(known)} known links came "
                                    "with a new guid); entries are identified by their links")
    if rule == "link":
        titles_of: dict[str, set[str]] = {}
        for link, _, r in pairs:
            if link:
                titles_of.setdefault(link, set()).add(plain_text(r.title, True))
        shared = sorted(link for link, titles in titles_of.items() if len(titles) > 1)
        if shared:
            rule, reason = "hash", (f"the link {shared[0]} is used for {len(titles_of[shared[0]])} different "
                                    "entries; entries are identified by title and date")
    return rule, reason


# --- dates ---------------------------------------------------------------------------

def to_naive_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Dates:
    """An entry's instants in naive UTC, and what had to be made up about them."""

    published: datetime
    updated: datetime
    missing: bool  # no date at all: first-seen time used
    clamped: bool  # beyond FUTURE_TOLERANCE in the future: now used


def entry_dates(raw: RawEntry, now: datetime, embargo: timedelta | None = None) -> Dates:
    """Published and updated in naive UTC; a missing date is ``now`` (first seen), a future one
    clamped, unless ``embargo`` says how far ahead a date is an embargo time (then kept)."""
    published = raw.published or raw.updated
    missing = published is None
    pub = now if published is None else to_naive_utc(published)
    upd = to_naive_utc(raw.updated) if raw.updated else pub
    limit = now + max(FUTURE_TOLERANCE, embargo or FUTURE_TOLERANCE)
    clamped = pub > limit or upd > limit
    # A date beyond the tolerance is a source's clock or typo, not news from the future.
    if pub > limit:
        pub = now
    if upd > limit:
        upd = now
    return Dates(pub, max(upd, pub), missing, clamped)


# --- media -------------------------------------------------------------------------

def _media_kind(m: RawMedia) -> str:
    medium = (m.medium or "").lower()
    mime = (m.type or "").lower()
    for kind in ("image", "video", "audio"):
        if medium == kind or mime.startswith(kind + "/"):
            return kind
    path = urlsplit(m.url).path.lower()
    if path.endswith((".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")):
        return "image"
    if path.endswith((".mp4", ".webm", ".m3u8", ".mov")):
        return "video"
    if path.endswith((".mp3", ".m4a", ".ogg", ".opus")):
        return "audio"
    return "file"


def split_credit(caption: str | None, credit: str | None) -> tuple[str | None, str | None]:
    """Caption and credit; a trailing '(AP)' in the caption becomes the credit when none is given."""
    caption = plain_text(caption) or None
    credit = plain_text(credit) or None
    if caption and not credit:
        m = _TRAILING_CREDIT.match(caption)
        if m and m.group("caption").strip():
            caption, credit = m.group("caption").strip(), m.group("credit").strip()
    return caption, credit


_IMG_IN_BODY = re.compile(r"<img\b[^>]*\bsrc=\"(?P<src>[^\"]+)\"[^>]*>", re.I)
_ALT = re.compile(r"\balt=\"(?P<alt>[^\"]*)\"", re.I)
_DIMENSION = {d: re.compile(rf"\b{d}=\"(\d{{1,5}})\"", re.I) for d in ("width", "height")}
_FIGURE = re.compile(r"<figure\b[^>]*>(?P<inner>.*?)</figure>", re.I | re.S)
_FIGCAPTION = re.compile(r"<figcaption\b[^>]*>(?P<text>.*?)</figcaption>", re.I | re.S)


def figure_captions(content_html: str) -> dict[str, str]:
    """Image URL -> the text of its <figure>'s <figcaption> (the body is sanitised HTML)."""
    out: dict[str, str] = {}
    for fig in _FIGURE.finditer(content_html):
        img, cap = _IMG_IN_BODY.search(fig.group("inner")), _FIGCAPTION.search(fig.group("inner"))
        if img and cap and plain_text(cap.group("text")):
            out.setdefault(html.unescape(img.group("src")), plain_text(cap.group("text")))
    return out


def normalize_media(raw: list[RawMedia], content_html: str, base: str | None) -> tuple[Media, ...]:
    """Dedupe by URL, classify, split captions/credits, and flag the lead image."""
    out: list[Media] = []
    seen: set[str] = set()
    candidates = list(raw)
    figcaptions = figure_captions(content_html)
    if not any(_media_kind(m) == "image" for m in candidates):
        found = _IMG_IN_BODY.search(content_html)  # body is sanitised: quoted attributes only
        if found:
            alt = _ALT.search(found.group(0))
            width, height = (_DIMENSION[d].search(found.group(0)) for d in ("width", "height"))
            candidates.append(RawMedia(url=html.unescape(found.group("src")), medium="image",
                                       caption=html.unescape(alt.group("alt")) if alt else None,
                                       width=int(width.group(1)) if width else None,
                                       height=int(height.group(1)) if height else None,
                                       origin="body"))
    # A <figcaption> around the same image beats alt text and fills in a missing caption.
    candidates = [dataclasses.replace(m, caption=figcaptions[m.url])
                  if m.url in figcaptions and (m.origin == "body" or not m.caption) else m for m in candidates]
    # Thumbnails go last so that a full-size image, when present, is the lead.
    candidates.sort(key=lambda m: m.origin == "media:thumbnail")
    for m in candidates:
        url = canonical_media_url(m.url, base)
        if url is None or url in seen:
            continue
        seen.add(url)
        caption, credit = split_credit(m.caption, m.credit)
        kind = _media_kind(m)
        lead = kind == "image" and not any(x.lead for x in out)
        out.append(Media(kind=kind, url=url, type=m.type, length=m.length, width=m.width,
                         height=m.height, duration=m.duration, caption=caption, credit=credit,
                         lead=lead))
    return tuple(out)


def canonical_media_url(url: str | None, base: str | None) -> str | None:
    """Absolute http(s) media URL (query kept: image services use it), without fragment."""
    parts = _absolute_http(url, base)
    if parts is None:
        return None
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path, parts.query, ""))


# --- authors, taxonomy, breaking ------------------------------------------------------

# Only a free-standing conjunction splits a byline: Arabic "و" usually joins the
# next word and also occurs inside names, so it splits only with spaces around it.
_BYLINE_SPLIT = re.compile(r"\s*[,;]\s*|\s+(?:and|&|y|e|و)\s+", re.I)


def normalize_authors(raw: RawEntry, caps: Caps = Caps(), cut: list[str] | None = None) -> tuple[Author, ...]:
    """Authors with slugs; a byline 'By A and B' becomes two authors. Names, URLs and the
    number of authors are capped (``cut`` hears of each cap applied)."""
    out: list[Author] = []
    seen: set[str] = set()
    cut = cut if cut is not None else []
    for person in raw.authors[:caps.authors * 4]:  # bylines split into more; the cap is on those
        name = plain_text((person.name or "")[:caps.name * 20])
        name = re.sub(r"^(by|por|بقلم)\s+", "", name, flags=re.I)
        names = [n for n in _BYLINE_SPLIT.split(name) if n] if len(raw.authors) == 1 else [name]
        for n in names:
            if len(n) > caps.name:
                cut.append(f"author name ({len(n)} characters, limit {caps.name})")
                n = cap_text(n, caps.name)
            slug = cap_slug(slugify(n))
            if not slug or slug in seen:
                continue
            seen.add(slug)
            url = person.url if person.url and urlsplit(person.url).scheme in ("http", "https") \
                and len(person.url) <= caps.url else None
            out.append(Author(name=n, slug=slug, url=url if len(names) == 1 else None))
    if len(out) > caps.authors:
        cut.append(f"authors ({len(out)}, limit {caps.authors})")
        out = out[:caps.authors]
    return tuple(out)


def classify(raw: RawEntry, source: SourceConfig,
             ctx: Context) -> tuple[str | None, tuple[str, ...], tuple[Tag, ...], bool]:
    """(section, regions, tags, breaking-category) from categories plus the source's defaults.

    A category naming a known section/subsection or region (by slug or title)
    files the entry there; every other category is a tag.
    """
    tax = ctx.taxonomy
    by_title, region_by_title = ctx.section_by_title, ctx.region_by_title
    section: str | None = None
    regions: list[str] = []
    tags: list[Tag] = []
    breaking = False
    for cat in raw.categories:
        name = cap_text(plain_text((cat.label or cat.term or "")[:ctx.caps.name * 20], is_html=False),
                        ctx.caps.name)
        slug = cap_slug(slugify((cat.term or "")[:SLUG_MAX * 4]))
        if not slug:
            continue
        if slug == "breaking" or slug == "breaking-news":
            breaking = True
            continue
        sec = slug if slug in tax.sections else by_title.get(slug)
        reg = slug if slug in tax.regions else region_by_title.get(slug)
        if sec and (section is None or tax.sections[sec].parent == section):
            section = sec  # a subsection refines its own section
        elif reg:
            if reg not in regions:
                regions.append(reg)
        elif not sec and all(t.slug != slug for t in tags):
            tags.append(Tag(name=name, slug=slug))
    if section is None:
        section = source.section
    if not regions and source.region:
        regions.append(source.region)
    for t in source.tags:
        slug = slugify(t)
        if slug and all(x.slug != slug for x in tags):
            tags.append(Tag(name=t, slug=slug))
    return section, tuple(regions), tuple(tags), breaking


@functools.lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    """A rule's wildcard pattern (config allows at most three '*') as an anchored regex."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.casefold())
    return re.compile(body, re.S)


@functools.lru_cache(maxsize=1024)
def _whole_words(keyword: str) -> re.Pattern[str]:
    """``keyword`` as whole words: "port" finds "the port" and "Port," but not "airport" or
    "reports". \\w is Unicode-aware, so Arabic and accented words have boundaries too."""
    return re.compile(rf"(?<!\w){re.escape(keyword.casefold())}(?!\w)")


def rule_matches(rule: Rule, raw: RawEntry, title: str, summary: str) -> bool:
    if rule.category:
        wanted = slugify(rule.category)
        return any(slugify(c.term) == wanted or (c.label and slugify(c.label) == wanted) for c in raw.categories)
    if rule.keyword:
        text = f"{title}\n{summary}".casefold()
        if rule.match == "substring":
            return rule.keyword.casefold() in text
        return _whole_words(rule.keyword).search(text) is not None
    if rule.pattern:
        return _wildcard(rule.pattern).fullmatch(title.casefold()[:1000]) is not None
    return False


@dataclass
class Filed:
    """An entry's classification while rules are applied."""

    section: str | None
    regions: list[str]
    tags: list[Tag]
    breaking: bool
    trace: list[str] = field(default_factory=list)
    dropped: bool = False


def apply_rules(rules: tuple[Rule, ...], raw: RawEntry, title: str, summary: str, filed: Filed) -> Filed:
    """Ordered rules: the first matching rule that sets section or breaking wins; regions and
    tags add up; a drop rule removes the entry; with keep rules, an entry must match one."""
    section_set = breaking_set = kept = False
    for rule in rules:
        if not rule_matches(rule, raw, title, summary):
            continue
        filed.trace.append(rule.describe())
        if rule.section and not section_set:
            filed.section, section_set = rule.section, True
        if rule.region and rule.region not in filed.regions:
            filed.regions.append(rule.region)
        if rule.tag and all(t.slug != slugify(rule.tag) for t in filed.tags):
            filed.tags.append(Tag(name=rule.tag, slug=slugify(rule.tag)))
        if rule.breaking is not None and not breaking_set:
            filed.breaking, breaking_set = rule.breaking, True
        if rule.action == "drop":
            filed.dropped = True
        if rule.action == "keep":
            kept = True
    if any(r.action == "keep" for r in rules) and not kept:
        filed.dropped = True
        filed.trace.append("no keep rule matched")
    return filed


def has_breaking_prefix(title: str, language: str, ctx: Context) -> bool:
    primary = language.split("-")[0]
    prefixes = ctx.breaking_prefixes.get(primary, ()) + ctx.breaking_prefixes.get("*", ())
    folded = title.casefold()
    return any(folded.startswith(p.casefold()) for p in prefixes)


def pick_edition(language: str, source: SourceConfig, ctx: Context) -> str:
    """The edition whose language matches the entry's, else the source's own edition."""
    primary = language.split("-")[0]
    source_edition = ctx.editions.get(source.edition)
    if source_edition and source_edition.language.split("-")[0] == primary:
        return source.edition
    for code, ed in ctx.editions.items():
        if ed.language.split("-")[0] == primary:
            return code
    return source.edition


def match_coverage(tags: tuple[Tag, ...], title: str, summary: str, ctx: Context) -> tuple[str, ...]:
    """The dossiers an entry joins: one of their tags, or a keyword in its title or summary."""
    slugs = {t.slug for t in tags}
    text = f"{title}\n{summary}".casefold()
    return tuple(slug for slug, cov in ctx.taxonomy.coverage.items()
                 if slugs.intersection(cov.tags) or any(k in text for k in cov.keywords))


_ANY_TAG = re.compile(r"<[^>]*>")


def _words_in_html(clean_html: str) -> int:
    """Words of sanitised HTML (as plain_text would count them), without sanitising it again:
    the sanitiser's output has no comments, scripts or stray "<", so dropping tags is exact."""
    if not clean_html:
        return 0
    return len(html.unescape(_ANY_TAG.sub("", _BLOCK_EDGE.sub(" <", clean_html))).split())


# --- the whole entry -----------------------------------------------------------------

def normalize_entry(raw: RawEntry, feed: RawFeed, source: SourceConfig, ctx: Context,
                    now: datetime, id_rule: str = "guid") -> Entry:
    """Turn one parsed entry into a clean Entry; ``now`` is naive UTC (first-seen time)."""
    caps = ctx.caps
    cut: list[str] = []  # what the caps shortened, for the source's health
    if len(raw.categories) > caps.categories:
        cut.append(f"categories ({len(raw.categories)}, limit {caps.categories})")
        raw = dataclasses.replace(raw, categories=raw.categories[:caps.categories])
    base = _entry_base(raw, feed, source)
    link = canonical_link(raw.link, base)
    if link and len(link) > caps.url:
        cut.append(f"link ({len(link)} characters, limit {caps.url}; left out)")
        link = None
    content = sanitize_html(raw.content, base) if raw.content_is_html else \
        "".join(f"<p>{html.escape(p)}</p>" for p in plain_text(raw.content, False).split("\n\n") if p)
    summary_html = raw.summary or ""
    if not content and raw.summary and raw.summary_is_html and "<" in raw.summary:
        content = sanitize_html(raw.summary, base)  # RSS descriptions often carry the body
    summary = plain_text(summary_html, raw.summary_is_html) or plain_text(content)
    summary = truncate_words(summary, caps.summary)  # the lead: always short, so never reported
    if len(content) > caps.content:
        cut.append(f"body ({len(content)} characters, limit {caps.content})")
        content = cap_html(content, caps.content)
    # Titles are always read as markup: RSS titles often carry escaped HTML even where the
    # format calls them text, and a reader would show it as HTML. A hostile title is cut
    # before its markup is read, so its size costs nothing either.
    raw_title = raw.title[:caps.title * 20] if raw.title and len(raw.title) > caps.title * 20 else raw.title
    title = plain_text(raw_title, True) or truncate_words(summary, 80) or "(untitled)"
    if len(title) > caps.title or raw_title is not raw.title:
        cut.append(f"title ({len(raw.title or title)} characters, limit {caps.title})")
        title = cap_text(title, caps.title)
    source_edition = ctx.editions.get(source.edition)
    language = (raw.language or feed.language or
                (source_edition.language if source_edition else None) or "en").strip().lower()
    dates = entry_dates(raw, now, ctx.embargo if source.embargo else None)
    guid = entry_guid(raw, link, title, id_rule)
    section, regions, tags, breaking_cat = classify(raw, source, ctx)
    filed = apply_rules(source.rules, raw, title, summary, Filed(
        section, list(regions), list(tags),
        source.breaking or breaking_cat or has_breaking_prefix(title, language, ctx)))
    section, regions, tags, breaking = filed.section, tuple(filed.regions), tuple(filed.tags), filed.breaking
    authors = normalize_authors(raw, caps, cut)
    media = tuple(m for m in normalize_media(raw.media, content, base) if len(m.url) <= caps.url)
    if len(media) > caps.media:
        cut.append(f"media ({len(media)}, limit {caps.media})")
        media = media[:caps.media]
    words = _words_in_html(content) or len(summary.split())
    # What the fingerprint covers: every meaningful field (changing this set changes every
    # stored fingerprint, so every entry would look changed once).
    meaningful: dict[str, object] = dict(
        guid=guid, public_id=public_id(guid, source.id, ctx.id_authority), title=title, link=link,
        language=language, edition=pick_edition(language, source, ctx), summary=summary,
        content=content, published=dates.published, updated=dates.updated, section=section, regions=regions,
        tags=tags, authors=authors, media=media, origin=source.origin, breaking=breaking,
        reading_time=math.ceil(words / _WORDS_PER_MINUTE) if words else 0,
        date_missing=dates.missing, date_clamped=dates.clamped,
        published_raw=raw.published_raw, updated_raw=raw.updated_raw,
        coverage=match_coverage(tags, title, summary, ctx))
    # Built once, from typed values (the dict above is for the hash only): a second
    # construction cost a tenth of normalisation.
    return Entry(
        guid=guid, public_id=cast(str, meaningful["public_id"]), title=title, link=link, language=language,
        edition=cast(str, meaningful["edition"]), summary=summary, content=content, published=dates.published,
        updated=dates.updated, section=section, regions=regions, tags=tags, authors=authors, media=media,
        origin=source.origin, breaking=breaking, reading_time=cast(int, meaningful["reading_time"]),
        date_missing=dates.missing, date_clamped=dates.clamped, published_raw=raw.published_raw,
        updated_raw=raw.updated_raw, coverage=cast("tuple[str, ...]", meaningful["coverage"]),
        fingerprint=fingerprint(meaningful), title_key=title_key(title), rule_trace=tuple(filed.trace),
        dropped=filed.dropped, truncated=tuple(cut), words=" ".join(document(title, summary)))


def title_key(title: str) -> str:
    """A title folded for matching one story across sources: case, accents, punctuation, spacing."""
    return slugify(title)[:300]


def fingerprint(fields: dict[str, object]) -> str:
    """A hash of the meaningful fields; dates we made up (first-seen, clamped) are left out.

    Identity (guid, public id) is not content: re-identifying a source's entries
    must not make them look changed.
    """
    data = {k: v for k, v in fields.items() if k not in ("guid", "public_id")}
    if data.get("date_missing") or data.get("date_clamped"):
        data.pop("published", None)
        data.pop("updated", None)
    blob = json.dumps(data, default=_jsonable, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dict__"):
        return value.__dict__
    return str(value)


def normalize_feed(feed: RawFeed, source: SourceConfig, ctx: Context, now: datetime, id_rule: str = "guid",
                   dropped: list[str] | None = None) -> tuple[list[Entry], list[str]]:
    """Normalise every entry; the same id twice in one feed keeps the first. Returns warnings too.
    ``dropped`` receives the ids of the entries the source's keep/drop rules exclude."""
    out: list[Entry] = []
    warnings = list(feed.warnings)
    seen: set[str] = set()
    capped: dict[str, int] = {}
    for position, raw in enumerate(feed.entries):
        # An entry with no usable date is dated when it was first seen. Entries seen in one
        # fetch are a second apart, in the feed's own order (the first listed is the newest):
        # equal dates would scramble that order and fail the W3C validator's check that no
        # two entries share atom:updated.
        entry = normalize_entry(raw, feed, source, ctx, now - timedelta(seconds=position), id_rule)
        for what in entry.truncated:
            capped[what.split(" (", 1)[0]] = capped.get(what.split(" (", 1)[0], 0) + 1
            if len(capped) < 50 and sum(capped.values()) <= 20:  # the first few, in full
                warnings.append(f"entry {entry.guid[:100]!r}: {what} cut to the [collect] limit")
        if entry.dropped:
            if dropped is not None:
                dropped.append(entry.guid)
            continue  # a keep/drop filter of the source's rules
        if entry.guid in seen:
            warnings.append(f"duplicate id {entry.guid!r} in one feed; kept the first")
            continue
        seen.add(entry.guid)
        out.append(entry)
    if sum(capped.values()) > 20:
        warnings.append("fields cut to the [collect] limits in this fetch: "
                        + ", ".join(f"{what} ×{n}" for what, n in sorted(capped.items())))
    return out, warnings
