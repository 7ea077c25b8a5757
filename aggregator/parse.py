"""bytes -> RawFeed. feedparser reads RSS/Atom; JSON Feed is read by our own code. No I/O.

feedparser is always handed a BytesIO: given a str or bytes it may treat the
value as a URL or a path and open it, which a hostile feed must never cause.
"""
from __future__ import annotations

import calendar
import io
import json
import re
import time
from datetime import datetime, timezone
from typing import Any

import feedparser
from feedparser.datetimes import _parse_date as _feedparser_date
from lxml import etree

from . import fastatom, fastrss
from .errors import ParseError, describe_failure
from .model import Category, Person, RawEntry, RawFeed, RawMedia

_MRSS = "http://search.yahoo.com/mrss/"
_ATOM = "http://www.w3.org/2005/Atom"
_ATOM03 = "http://purl.org/atom/ns#"
_RSS1 = "http://purl.org/rss/1.0/"
_JSONFEED_VERSIONS = {"https://jsonfeed.org/version/1": "json10",
                      "https://jsonfeed.org/version/1.1": "json11"}


def parse_feed(body: bytes, url: str = "", content_type: str | None = None) -> RawFeed:
    """Parse a feed body in any supported format; ParseError says why a body is not a feed."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"{" or (content_type and "json" in content_type.lower() and head != b"<"):
        return parse_json_feed(body)
    return parse_xml_feed(body, url, content_type)


# --- RSS / Atom via feedparser ----------------------------------------------------

def parse_xml_feed(body: bytes, url: str = "", content_type: str | None = None, fast: bool = True) -> RawFeed:
    """Parse RSS 0.9x/1.0/2.0 or Atom 0.3/1.0 bytes with feedparser.

    Plain, well-formed RSS 2.0 and 1.0 are read by fastrss instead (``fast``), and Atom 1.0 by
    fastatom, which give feedparser's own result several times faster; anything else goes to
    feedparser.
    """
    body = _replace_forbidden_references(body)
    if fast:
        quick = _fast_read(body, url, content_type)
        if quick is not None:
            return quick
    headers = {"content-location": url} if url else {}
    if content_type:
        headers["content-type"] = content_type
    try:
        # Sanitising and resolving URLs inside bodies is normalisation's job (nh3 with
        # the entry's base), so feedparser skips both: they were a fifth of its time.
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers,
                                  sanitize_html=False, resolve_relative_uris=False)
    except Exception as e:  # feedparser is tolerant; anything raised here is a real blow-up
        raise ParseError(describe_failure(e)) from e
    version = parsed.get("version") or ""
    if not version:
        sniff = body.lstrip()[:200].lower()
        if sniff.startswith((b"<!doctype html", b"<html")):
            raise ParseError("got an HTML page, not a feed (RSS, Atom or JSON Feed)")
        reason = parsed.get("bozo_exception")
        detail = f": {reason}" if reason else ""
        raise ParseError(f"not a recognised feed format (RSS, Atom or JSON Feed){detail}")
    feed = parsed.feed
    out = _raw_feed(_format_name(version), feed)
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if isinstance(problem, feedparser.CharacterEncodingOverride):
        out.warnings.append(f"the feed's declared character encoding is wrong; read as {parsed.get('encoding')}")
    elif problem is not None and not isinstance(problem, feedparser.NonXMLContentType):
        # (a missing or non-XML Content-Type says nothing about the document itself)
        out.warnings.append(f"feed is not well-formed, read leniently: {problem}")
    out.deleted = _tombstones(body)
    media_by_entry = _media_from_xml(body, len(parsed.entries))
    feed_authors = _feed_authors(feed) if out.format.startswith("atom") else []
    for i, item in enumerate(parsed.entries):
        entry = _entry_from_feedparser(item, media_by_entry[i] if media_by_entry else None)
        entry.authors = entry.authors or list(feed_authors)
        out.entries.append(entry)
    return out


def _fast_read(body: bytes, url: str, content_type: str | None) -> RawFeed | None:
    """The feed read by the fast reader for its format (picked from the document's start, so
    the body is parsed once), or None for feedparser."""
    head = body[:4096]
    if b"<rss" in head:
        reader, fmt = fastrss.read, "rss20"
    elif b"RDF" in head and b"purl.org/rss/1.0/" in head:
        reader, fmt = fastrss.read_rdf, "rss10"
    elif b"http://www.w3.org/2005/Atom" in head and b"<feed" in head:
        reader, fmt = fastatom.read, "atom10"
    else:
        return None
    quick = reader(body, url, content_type)
    if quick is None:
        return None
    feed, entries, items = quick
    out = _raw_feed(fmt, feed)
    authors = _feed_authors(feed) if fmt == "atom10" else []
    for e, item in zip(entries, items):
        entry = _entry_from_feedparser(e, _item_media(item))
        entry.authors = entry.authors or list(authors)
        out.entries.append(entry)
    return out


_CHAR_REF = re.compile(rb"&#([xX][0-9a-fA-F]{1,8}|[0-9]{1,10});")


def _forbidden(code: int) -> bool:
    """A code point XML 1.0 does not allow, even as a character reference."""
    return (code < 0x20 and code not in (0x9, 0xA, 0xD)) or 0xD800 <= code <= 0xDFFF \
        or code in (0xFFFE, 0xFFFF) or code > 0x10FFFF


def _fix_reference(match: re.Match[bytes]) -> bytes:
    ref = match.group(1)
    code = int(ref[1:], 16) if ref[:1] in (b"x", b"X") else int(ref)
    return b"&#xFFFD;" if _forbidden(code) else match.group(0)


def _replace_forbidden_references(body: bytes) -> bytes:
    """``&#xD800;`` and its kind name characters no XML document may hold: one of them made the
    parsers reject the whole feed. Each becomes U+FFFD, so it costs one character, not the feed.
    (References are ASCII in every encoding we read but UTF-16, where they cannot match.)"""
    if b"&#" not in body:
        return body
    return _CHAR_REF.sub(_fix_reference, body)


def _feed_authors(feed: Any) -> list[Person]:
    """Atom (RFC 4287 4.2.1): an entry without authors has the feed's."""
    return [Person(name=a.get("name"), url=a.get("href"), email=a.get("email"))
            for a in feed.get("authors") or [] if a.get("name")]


def _raw_feed(fmt: str, feed: Any) -> RawFeed:
    """The feed-level fields of feedparser's (or fastrss's) feed dictionary."""
    return RawFeed(format=fmt, title=feed.get("title"), link=feed.get("link"),
                   language=feed.get("language") or _detail_lang(feed.get("title_detail")),
                   ttl=_int(feed.get("ttl")))


def _format_name(version: str) -> str:
    if version.startswith("atom"):
        return "atom10" if version == "atom10" else "atom03"
    if version == "rss10" or version == "rss090":
        return "rss10"
    if version == "rss20" or version == "rss":
        return "rss20"
    return "rss09x"


def _entry_from_feedparser(e: Any, xml_media: list[RawMedia] | None) -> RawEntry:
    raw = RawEntry(guid=e.get("id") or None, link=e.get("link") or None, title=e.get("title"))
    title_detail = e.get("title_detail") or {}
    raw.title_is_html = "html" in (title_detail.get("type") or "")
    raw.language = _detail_lang(title_detail)
    raw.base = title_detail.get("base") or None
    summary_detail = e.get("summary_detail") or {}
    raw.summary = e.get("summary")
    raw.summary_is_html = (summary_detail.get("type") or "text/html") != "text/plain"
    contents = e.get("content") or []
    if contents:
        best = next((c for c in contents if "html" in (c.get("type") or "")), contents[0])
        raw.content = best.get("value")
        raw.content_is_html = (best.get("type") or "text/html") != "text/plain"
        raw.base = best.get("base") or raw.base
        raw.language = raw.language or best.get("language")
    for a in e.get("authors") or []:
        if a.get("name") or a.get("email"):
            raw.authors.append(Person(name=a.get("name") or a.get("email"),
                                      url=a.get("href"), email=a.get("email")))
    if not raw.authors and e.get("author"):
        raw.authors.append(Person(name=e["author"]))
    for t in e.get("tags") or []:
        if t.get("term"):
            raw.categories.append(Category(term=t["term"], scheme=t.get("scheme"), label=t.get("label")))
    raw.published, raw.published_raw = _fp_date(e, "published")
    raw.updated, raw.updated_raw = _fp_date(e, "updated")
    raw.media = xml_media if xml_media is not None else _media_from_feedparser(e)
    # feedparser files media:description text as the entry's description or
    # content; a caption is not the story, so drop text that is only a caption.
    captions = {m.caption for m in raw.media if m.caption}
    if raw.content and _bare(raw.content) in captions:
        raw.content = None
    if raw.summary and _bare(raw.summary) in captions:
        raw.summary = None
    for enc in e.get("enclosures") or []:
        href = enc.get("href")
        if href and not any(m.url == href for m in raw.media):
            raw.media.append(RawMedia(url=href, type=enc.get("type") or None,
                                      length=_int(enc.get("length")), origin="enclosure"))
    return raw


def _bare(text: str) -> str:
    """Text without surrounding markup feedparser may add (<p>...</p>) and whitespace."""
    text = text.strip()
    if text.startswith("<p>") and text.endswith("</p>") and text.count("<p>") == 1:
        text = text[3:-4]
    return " ".join(text.split())


def _fp_date(e: Any, name: str) -> tuple[datetime | None, str | None]:
    # dict.get bypasses FeedParserDict's deprecated updated -> published fallback,
    # which would report a never-updated entry as updated.
    raw = dict.get(e, name)
    parsed = dict.get(e, f"{name}_parsed")
    return _from_struct(parsed), raw


def _from_struct(parsed: time.struct_time | None) -> datetime | None:
    """feedparser's struct_time as an aware datetime; None for what no datetime can hold
    (feedparser reads "00" as the year -99)."""
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def _media_from_feedparser(e: Any) -> list[RawMedia]:
    """Fallback when the XML could not be re-read: feedparser's flattened media lists."""
    out: list[RawMedia] = []
    for m in e.get("media_content") or []:
        if m.get("url"):
            out.append(RawMedia(url=m["url"], medium=m.get("medium"), type=m.get("type"),
                                length=_int(m.get("filesize")), width=_int(m.get("width")),
                                height=_int(m.get("height")), duration=_int(m.get("duration")),
                                origin="media:content"))
    for m in e.get("media_thumbnail") or []:
        if m.get("url"):
            out.append(RawMedia(url=m["url"], medium="image", width=_int(m.get("width")),
                                height=_int(m.get("height")), origin="media:thumbnail"))
    return out


# feedparser folds media:description into the entry's own description and
# keeps media:credit apart from the item it belongs to, so captions and
# credits are read from the XML tree directly, item by item.
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, recover=True,
                            huge_tree=False, load_dtd=False)


def _media_from_xml(body: bytes, expected: int) -> list[list[RawMedia]] | None:
    if b"search.yahoo.com/mrss" not in body or expected == 0:
        return None
    try:
        root = etree.fromstring(body, parser=_SAFE_XML)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None:
        return None
    items = [el for el in root.iter() if isinstance(el.tag, str) and el.tag in (
        "item", f"{{{_RSS1}}}item", f"{{{_ATOM}}}entry", f"{{{_ATOM03}}}entry")]
    if len(items) != expected:
        return None  # cannot pair items with feedparser's entries reliably
    return [_item_media(item) for item in items]


_TOMBSTONES = "http://purl.org/atompub/tombstones/1.0"


def _tombstones(body: bytes) -> list[tuple[str, str | None]]:
    """at:deleted-entry refs (and comments) of an Atom feed; feedparser ignores them."""
    if _TOMBSTONES.encode() not in body:
        return []
    try:
        root = etree.fromstring(body, parser=_SAFE_XML)
    except (etree.XMLSyntaxError, ValueError):
        return []
    if root is None:
        return []
    out = []
    for el in root.iter(f"{{{_TOMBSTONES}}}deleted-entry"):
        ref = (el.get("ref") or "").strip()
        if ref:
            out.append((ref, _text(el.find(f"{{{_TOMBSTONES}}}comment"))))
    return out


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    text = "".join(el.itertext()).strip()
    return text or None


def _item_media(item: etree._Element) -> list[RawMedia]:
    out: list[RawMedia] = []
    item_desc = _mrss_text(item, "description")
    item_credit = _mrss_text(item, "credit")
    for el in item.iter(f"{{{_MRSS}}}content", f"{{{_MRSS}}}thumbnail"):
        url = el.get("url")
        if not url:
            continue
        parent = el.getparent()
        group_desc = _mrss_text(parent, "description") if parent is not None and parent is not item else None
        is_thumb = el.tag.endswith("thumbnail")
        out.append(RawMedia(
            url=url, medium="image" if is_thumb else el.get("medium"), type=el.get("type"),
            length=_int(el.get("fileSize")), width=_int(el.get("width")), height=_int(el.get("height")),
            duration=_int(el.get("duration")),
            caption=_mrss_text(el, "description") or group_desc or item_desc,
            credit=_mrss_text(el, "credit") or item_credit,
            origin="media:thumbnail" if is_thumb else "media:content"))
    return out


def _mrss_text(el: etree._Element, name: str) -> str | None:
    return _text(el.find(f"{{{_MRSS}}}{name}"))


def _detail_lang(detail: Any) -> str | None:
    return (detail or {}).get("language") or None


# --- JSON Feed ---------------------------------------------------------------------

def parse_json_feed(body: bytes) -> RawFeed:
    """Parse JSON Feed 1.0 or 1.1 (https://jsonfeed.org/version/1.1)."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ParseError(f"JSON Feed is not UTF-8: {e}") from e
    except json.JSONDecodeError as e:
        raise ParseError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    if not isinstance(data, dict):
        raise ParseError("a JSON Feed must be a JSON object")
    version = data.get("version")
    fmt = _JSONFEED_VERSIONS.get(str(version).rstrip("/"))
    if fmt is None:
        raise ParseError(f"unknown JSON Feed version {version!r}; expected "
                         "'https://jsonfeed.org/version/1' or '.../version/1.1'")
    items = data.get("items")
    if not isinstance(items, list):
        raise ParseError("a JSON Feed needs an 'items' array")
    out = RawFeed(format=fmt, title=_str(data.get("title")), link=_str(data.get("home_page_url")),
                  language=_str(data.get("language")))
    feed_authors = _json_authors(data)
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            out.warnings.append(f"items[{n}] is not an object; skipped")
            continue
        out.entries.append(_json_item(item, feed_authors))
    return out


def _json_item(item: dict[str, Any], feed_authors: list[Person]) -> RawEntry:
    guid = item.get("id")
    raw = RawEntry(
        guid=str(guid) if isinstance(guid, (str, int)) and not isinstance(guid, bool) and str(guid) else None,
        link=_str(item.get("url")) or _str(item.get("external_url")),
        title=_str(item.get("title")), title_is_html=False,
        summary=_str(item.get("summary")), summary_is_html=False,
        language=_str(item.get("language")),
    )
    if _str(item.get("content_html")):
        raw.content, raw.content_is_html = item["content_html"], True
    elif _str(item.get("content_text")):
        raw.content, raw.content_is_html = item["content_text"], False
    raw.authors = _json_authors(item) or list(feed_authors)
    tags = item.get("tags")
    for tag in tags if isinstance(tags, list) else []:  # a bare string is not a list of tags
        if isinstance(tag, str) and tag.strip():
            raw.categories.append(Category(term=tag))
    raw.published_raw = _str(item.get("date_published"))
    raw.updated_raw = _str(item.get("date_modified"))
    raw.published = parse_date(raw.published_raw)
    raw.updated = parse_date(raw.updated_raw)
    ext: dict[str, Any] = item["_feedhub"] if isinstance(item.get("_feedhub"), dict) else {}
    image = _str(item.get("image"))
    if image:
        raw.media.append(RawMedia(url=image, medium="image", origin="image",
                                  caption=_str(ext.get("image_caption")),
                                  credit=_str(ext.get("image_credit"))))
    for att in item.get("attachments") or []:
        if isinstance(att, dict) and _str(att.get("url")):
            raw.media.append(RawMedia(url=att["url"], type=_str(att.get("mime_type")),
                                      length=_int(att.get("size_in_bytes")),
                                      duration=_int(att.get("duration_in_seconds")),
                                      caption=_str(att.get("title")), origin="attachment"))
    return raw


def _json_authors(obj: dict[str, Any]) -> list[Person]:
    people = obj.get("authors")
    if not isinstance(people, list):
        single = obj.get("author")  # JSON Feed 1.0
        people = [single] if isinstance(single, dict) else []
    out = []
    for p in people:
        if isinstance(p, dict) and _str(p.get("name")):
            out.append(Person(name=p["name"], url=_str(p.get("url"))))
    return out


def parse_date(value: str | None) -> datetime | None:
    """An aware datetime from RFC 3339, RFC 822 or any form feedparser knows; None if unreadable."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    except ValueError:
        pass
    return _from_struct(_feedparser_date(value))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None
