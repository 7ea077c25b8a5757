"""Pure rendering: FeedDoc -> RSS 2.0 / Atom 1.0 (feedgen) / JSON Feed 1.1 (our own code) bytes.

feedgen defects worked around here, each covered by a test:
- ``add_entry`` prepends by default: entries are added with ``order="append"``;
- Atom entry links lose ``rel``/``type``/``length`` (feedgen reuses a variable):
  our extension rewrites every entry link itself;
- dates default to "now": the feed date and every entry date are always set;
- its media extension wraps a single item in ``media:group``: we write
  ``media:content``/``media:thumbnail`` directly;
- ``atom:source`` only gets title and link: ours carries id, self link and updated.

An entry is written once per format (and feed language) and its bytes reused by
every feed that holds it (see ``Fragments``): feedgen builds the feed around
the entries no feed has needed yet, and the rest are spliced in.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Hashable
from datetime import datetime, timezone
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from aggregator.model import Media
from aggregator.normalize import xml_safe

from .labels import directed_html
from .model import FeedDoc, FeedItem, LazyItems

# feedgen builds Atom elements without a namespace and writes xmlns as a plain
# attribute on the root, so elements we add to an Atom entry must do the same.
ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
MRSS_NS = "http://search.yahoo.com/mrss/"
TOMBSTONE_NS = "http://purl.org/atompub/tombstones/1.0"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
GENERATOR = ("feedhub", "0.1", "https://news.example.org/feedhub")

CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
SUFFIXES = {"rss": "rss", "atom": "atom", "json": "json"}


def render(doc: FeedDoc, fmt: str, fragments: "Fragments | None" = None) -> bytes:
    """Render ``doc`` in ``fmt`` ('rss', 'atom' or 'json'), reusing entries from ``fragments``."""
    if fmt == "rss":
        return render_rss(doc, fragments)
    if fmt == "atom":
        return render_atom(doc, fragments)
    if fmt == "json":
        return render_json(doc)
    raise ValueError(f"unknown format {fmt!r}")


class Fragments:
    """Entries already written as RSS items or Atom entries, the newest written kept.

    Keyed by the whole FeedItem (every field the entry's XML is made of, related
    entries included), or by its fingerprint (the store rows it was made of), plus
    the format and the feed's language, so an entry that changes in any way is
    simply a new key: nothing here can go stale. An entry shows in many feeds
    (latest, its section, regions, tags, author) and in every rendering of them
    until it changes, so most renderings write few entries.
    """

    def __init__(self, max_bytes: int = 16 << 20):
        self.max_bytes = max_bytes
        # Oldest written first; when full, those go. Not reordered on use: that would
        # hash each key twice per rendering, and feeds drop old entries anyway.
        self._parts: dict[Hashable, tuple[bytes, int]] = {}
        self.size = 0
        self._lock = threading.Lock()
        self.written = 0  # entries actually written by feedgen (for tests and the benchmark)

    def clear(self) -> None:
        """Forget every written entry."""
        with self._lock:
            self._parts.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._parts)

    def get(self, key: Hashable) -> bytes | None:
        found = self._parts.get(key)  # one dict lookup is atomic; writers hold the lock
        return found[0] if found is not None else None

    def put(self, key: Hashable, part: bytes) -> None:
        # The key holds the entry's text (its store rows), often more than the part itself:
        # both count against max_bytes.
        size = _weight(part)
        with self._lock:
            old = self._parts.pop(key, None)
            self.size += size - (old[1] if old is not None else 0)
            self._parts[key] = (part, size)
            while self.size > self.max_bytes and self._parts:
                self.size -= self._parts.pop(next(iter(self._parts)))[1]


#: what a written entry's key keeps alive, per byte of the entry's XML: the key holds the
#: entry's store rows (its title, summary and content as Python strings, its terms and related
#: rows), about as much text as the XML again, stored less compactly. Estimated rather than
#: walked: walking the key cost a third of a cold rendering.
KEY_WEIGHT = 2


def _weight(part: bytes) -> int:
    """About how many bytes a written entry and its key keep alive."""
    return len(part) * (1 + KEY_WEIGHT) + 512


# --- feedgen-based RSS and Atom ------------------------------------------------------

class _Namespaces(BaseExtension):
    """Feed-level part: our namespaces on the root; paging and hub links in RSS; tombstones in Atom."""

    doc: FeedDoc

    def extend_ns(self) -> dict[str, str]:
        return {"dc": DC_NS, "media": MRSS_NS}

    def extend_rss(self, rss: etree._Element) -> etree._Element:
        # feedgen writes only the self link into RSS; the others go in as atom:link too.
        channel = rss.find("channel")
        for rel, href in _feed_links(self.doc):
            etree.SubElement(channel, f"{{{ATOM_NS}}}link", rel=rel, href=href)
        channel.append(etree.Comment(ENTRIES_MARK))  # feedgen appends the items after it
        return rss

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        for t in self.doc.tombstones:
            # Declared here, not on the root: validators that do not know RFC 6721 (the W3C
            # one among them) warn about the namespace, so only feeds with tombstones carry it.
            gone = etree.SubElement(feed, f"{{{TOMBSTONE_NS}}}deleted-entry", ref=t.id,
                                    when=t.when.isoformat(), nsmap={"at": TOMBSTONE_NS})
            if t.reason:
                _sub(gone, f"{{{TOMBSTONE_NS}}}comment", t.reason)
        feed.append(etree.Comment(ENTRIES_MARK))  # feedgen appends the entries after it
        return feed


def _feed_links(doc: FeedDoc) -> list[tuple[str, str]]:
    """RFC 5005 paging links, WebSub hubs and a licence (RFC 4946), in the order feeds usually give them."""
    links = [("hub", hub) for hub in doc.hubs]
    if doc.licence:
        links.append(("license", doc.licence))
    for rel, href in (("first", doc.first_url), ("previous", doc.previous_url), ("next", doc.next_url)):
        if href:
            links.append((rel, href))
    return links


class _ItemExtras(BaseEntryExtension):
    """Entry-level part: everything feedgen leaves out or gets wrong for one item."""

    item: FeedItem
    doc: FeedDoc

    def extend_rss(self, el: etree._Element) -> etree._Element:
        item = self.item
        for a in item.authors:
            _sub(el, f"{{{DC_NS}}}creator", a.name)
        enclosure = _enclosure(item)
        if enclosure is not None:
            etree.SubElement(el, "enclosure", url=enclosure.url, length=str(enclosure.length),
                             type=enclosure.type or "application/octet-stream")
        if item.source and (item.source.url or item.source.link):
            _sub(el, "source", item.source.title, url=item.source.url or item.source.link or "")
        if item.rights:
            _sub(el, f"{{{DC_NS}}}rights", item.rights)
        _media(el, item)
        return el

    def extend_atom(self, el: etree._Element) -> etree._Element:
        item = self.item
        for old in el.findall("link"):
            el.remove(old)
        if item.link:
            etree.SubElement(el, "link", rel="alternate", type="text/html", href=item.link)
        for r in item.related:
            if r.url:
                etree.SubElement(el, "link", rel="related", type="text/html", href=r.url, title=xml_safe(r.title))
        for m in item.media:
            if m.kind in ("video", "audio", "file"):
                link = etree.SubElement(el, "link", rel="enclosure", href=m.url)
                if m.type:
                    link.set("type", m.type)
                if m.length:
                    link.set("length", str(m.length))
        if item.language and item.language != self.doc.language:
            el.set(XML_LANG, item.language)
        if item.source:
            src = etree.SubElement(el, "source")
            _sub(src, "id", item.source.id)
            _sub(src, "title", item.source.title)
            if item.source.link:
                etree.SubElement(src, "link", rel="alternate", href=item.source.link)
            if item.source.url:
                etree.SubElement(src, "link", rel="self", href=item.source.url)
            # atom:source needs an updated date; the entry's own is stable across
            # fetches (the source's fetch time would change every feed every poll).
            _sub(src, "updated", item.updated.isoformat())
        if item.rights:
            _sub(el, "rights", item.rights)
        _media(el, item)
        return el


def _sub(parent: etree._Element, tag: str, text: str, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, **attrs)
    el.text = xml_safe(text)
    return el


def _enclosure(item: FeedItem) -> Media | None:
    """RSS allows one enclosure: the first audio/video/file with a known type and length."""
    for m in item.media:
        if m.kind != "image" and m.type and m.length:
            return m
    return None


def _media(el: etree._Element, item: FeedItem) -> None:
    """media:content per image/video (caption and credit inside), media:thumbnail for the lead."""
    for m in item.media:
        if m.kind not in ("image", "video", "audio"):
            continue
        attrs = {"url": m.url, "medium": m.kind}
        if m.type:
            attrs["type"] = m.type
        if m.length:
            attrs["fileSize"] = str(m.length)
        if m.width:
            attrs["width"] = str(m.width)
        if m.height:
            attrs["height"] = str(m.height)
        if m.duration:
            attrs["duration"] = str(m.duration)
        if m.lead:
            attrs["isDefault"] = "true"
        content = etree.SubElement(el, f"{{{MRSS_NS}}}content", **attrs)
        if m.caption:
            _sub(content, f"{{{MRSS_NS}}}description", m.caption, type="plain")
        if m.credit:
            _sub(content, f"{{{MRSS_NS}}}credit", m.credit)
    lead = item.lead_image
    if lead is not None:
        thumb = etree.SubElement(el, f"{{{MRSS_NS}}}thumbnail", url=lead.url)
        if lead.width:
            thumb.set("width", str(lead.width))
        if lead.height:
            thumb.set("height", str(lead.height))


def _generator(doc: FeedDoc, fmt: str, items: list[FeedItem]) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("feedhub", _Namespaces, _ItemExtras)
    fg.feedhub.doc = doc
    fg.id(doc.id)
    fg.title(xml_safe(doc.title))
    fg.description(xml_safe(doc.description))
    fg.link(href=doc.self_url, rel="self",
            type="application/rss+xml" if fmt == "rss" else "application/atom+xml")
    if fmt == "atom":  # for RSS the feed-level extension writes these
        for rel, href in _feed_links(doc):
            fg.link(href=href, rel=rel)
    # feedgen takes RSS's channel <link> from the last link given: the home page.
    fg.link(href=doc.home_url, rel="alternate", type="text/html")
    fg.language(doc.language)
    fg.author(name=xml_safe(doc.author_name))
    # Sets atom:updated and RSS lastBuildDate; without it feedgen uses "now".
    fg.updated(doc.updated)
    if doc.rights:
        fg.rights(xml_safe(doc.rights))
    if doc.logo:  # RSS <image> (its title and link must be the channel's) and atom:logo
        fg.image(url=doc.logo, title=xml_safe(doc.title), link=doc.home_url)
    if doc.icon:
        fg.icon(doc.icon)
    fg.generator(*GENERATOR)
    fg.ttl(doc.ttl_minutes)
    for item in items:
        fe = fg.add_entry(order="append")
        fe.feedhub.item = item
        fe.feedhub.doc = doc
        if item.link:
            fe.guid(item.id, permalink=item.id == item.link)
            fe.link(href=item.link)
        else:
            fe.guid(item.id, permalink=False)
        fe.title(xml_safe(item.title))
        fe.published(item.published)
        fe.updated(item.updated)
        for a in item.authors:
            fe.author(name=xml_safe(a.name), **({"uri": a.url} if a.url else {}))
        for t in item.terms:
            fe.category(term=xml_safe(t.slug), scheme=t.scheme, label=xml_safe(t.label))
        if fmt == "atom" and not item.content and not item.link:
            # RFC 4287 4.1.1: an entry without an alternate link must have content. Here the
            # lead (or, for a bare headline, the headline) is all the text there is.
            fe.content(xml_safe(item.summary or item.title), type="text")
            continue
        if fmt == "atom" and not item.content and not item.summary:
            # A bare headline publishes no body in RSS and JSON Feed. Atom is the exception: the
            # W3C validator warns about an entry with no textual content, and about an empty
            # one, so the headline is its summary.
            fe.summary(xml_safe(item.title))
            continue
        # A headline with no other text (a ticker's one-liner) publishes no body: a reader
        # would show the headline twice.
        if item.summary:
            fe.summary(xml_safe(item.summary))
        if item.content:
            fe.content(xml_safe(directed_html(item.content, item.language)), type="html")
    return fg


def render_rss(doc: FeedDoc, fragments: Fragments | None = None) -> bytes:
    """RSS 2.0 with atom:link self, dc:creator, content:encoded, categories with domains, media."""
    return _render_xml(doc, "rss", fragments)


def render_atom(doc: FeedDoc, fragments: Fragments | None = None) -> bytes:
    """Atom 1.0 with correct link relations, categories with scheme and label, atom:source."""
    return _render_xml(doc, "atom", fragments)


# Where the feed-level extension leaves the entries' place in the document.
ENTRIES_MARK = "feedhub:entries"
_MARK = f"<!--{ENTRIES_MARK}-->".encode()
# How each format's entries end, and how its document ends after the last entry.
# Text and attribute values never hold a raw "<", so these only match real tags.
_ENTRY_END = {"atom": b"</entry>", "rss": b"</item>"}
_DOC_END = {"atom": b"</feed>", "rss": b"</channel></rss>"}


def _render_xml(doc: FeedDoc, fmt: str, fragments: Fragments | None) -> bytes:
    """feedgen writes the feed and the entries not in ``fragments``; the others are spliced in.

    The bytes are the same whichever entries were reused: each entry is what
    feedgen writes for it in any feed of the same format and language.
    """
    language = doc.language if fmt == "atom" else ""  # RSS items do not depend on it
    if isinstance(doc.items, LazyItems):  # items from the store: found without being built
        identities: list[Hashable] = list(doc.items.fingerprints)
    else:
        identities = [item if item.fingerprint is None else item.fingerprint for item in doc.items]
    keys = [(fmt, language, identity) for identity in identities]
    parts = [fragments.get(k) if fragments is not None else None for k in keys]
    missing = [doc.items[i] for i, part in enumerate(parts) if part is None]
    fg = _generator(doc, fmt, missing)
    if fmt == "atom":
        data = fg.atom_str(pretty=False, encoding="UTF-8", xml_declaration=True)
    else:
        data = fg.rss_str(pretty=False, encoding="UTF-8", xml_declaration=True)
    head, mark, rest = data.partition(_MARK)
    entry_end, doc_end = _ENTRY_END[fmt], _DOC_END[fmt]
    if not mark or not rest.endswith(doc_end):
        raise AssertionError(f"feedgen's {fmt} document is not laid out as expected")
    written = [part + entry_end for part in rest[:-len(doc_end)].split(entry_end)[:-1]]
    if len(written) != len(missing):
        raise AssertionError(f"{len(written)} {fmt} entries written for {len(missing)} items")
    fresh = iter(written)
    for i, part in enumerate(parts):
        if part is None:
            parts[i] = written_part = next(fresh)
            if fragments is not None:
                fragments.put(keys[i], written_part)
    if fragments is not None:
        fragments.written += len(missing)
    return head + b"".join(parts) + doc_end  # type: ignore[arg-type]


# --- JSON Feed 1.1 ---------------------------------------------------------------------

def rfc3339(dt: datetime) -> str:
    """An instant as JSON Feed dates write it (UTC, whole seconds)."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_item(item: FeedItem) -> dict[str, Any]:
    """One JSON Feed 1.1 item, with feedhub's own fields under ``_feedhub``."""
    out: dict[str, Any] = {"id": item.id}
    if item.link:
        out["url"] = item.link
    out["title"] = item.title
    if item.content:
        out["content_html"] = directed_html(item.content, item.language)
    else:
        # The spec requires one of the two; a headline with no other text has an empty body
        # (its title again would show twice in a reader).
        out["content_text"] = item.summary
    if item.summary:
        out["summary"] = item.summary
    lead = item.lead_image
    if lead is not None:
        out["image"] = lead.url
    out["date_published"] = rfc3339(item.published)
    out["date_modified"] = rfc3339(item.updated)
    if item.authors:
        out["authors"] = [{"name": a.name, **({"url": a.url} if a.url else {})} for a in item.authors]
    labels = [t.label for t in item.terms if t.kind == "tag"]
    if labels:
        out["tags"] = labels
    out["language"] = item.language
    attachments = [{
        "url": m.url, "mime_type": m.type or "application/octet-stream",
        **({"title": m.caption} if m.caption else {}),
        **({"size_in_bytes": m.length} if m.length else {}),
        **({"duration_in_seconds": m.duration} if m.duration else {}),
    } for m in item.media if m.kind != "image"]
    if attachments:
        out["attachments"] = attachments
    ext: dict[str, Any] = {"section": item.section, "regions": list(item.regions),
                           "tags": list(item.tags), "coverage": list(item.coverage), "breaking": item.breaking,
                           "reading_time": item.reading_time}
    if lead is not None:
        ext.update(image_caption=lead.caption, image_credit=lead.credit)
    if item.origin:
        ext["origin"] = item.origin
    if item.source:
        ext["source"] = {"title": item.source.title, "url": item.source.url or item.source.link}
    if item.related:
        ext["related"] = [{"id": r.id, "title": r.title, **({"url": r.url} if r.url else {})} for r in item.related]
    if item.rights:
        ext["rights"] = item.rights
    out["_feedhub"] = {k: v for k, v in ext.items() if v is not None}
    return out


def render_json(doc: FeedDoc) -> bytes:
    """JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/)."""
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": doc.title,
        "home_page_url": doc.home_url,
        "feed_url": doc.self_url,
        "description": doc.description,
        "language": doc.language,
        "authors": [{"name": doc.author_name}],
        "items": [json_item(i) for i in doc.items],
    }
    if doc.icon:  # one square image: large enough for an icon, and the favicon too
        feed["icon"] = doc.icon
        feed["favicon"] = doc.icon
    if doc.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in doc.hubs]
    if doc.next_url:
        feed["next_url"] = doc.next_url
    if doc.licence:
        feed["_feedhub"] = {"licence": doc.licence}
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
