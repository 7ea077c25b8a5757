"""A fast reader for plain, well-formed RSS 2.0: the same result as feedparser, in a tenth of the time.

feedparser reads a feed through a SAX handler in Python, and that is most of a
collector's CPU. Most feeds in the wild are simple, well-formed RSS 2.0, and for
those this module reads the tree lxml builds in C and produces exactly the
dictionaries feedparser would, applying the same rules (which element wins,
when a guid is a link, how a byline with an e-mail is split, how text is
cleaned). ``parse_xml_feed`` then builds entries from them with the same code
as for feedparser's output.

Exactness is bought with refusal: anything outside the small set of elements
and situations this reader models (another format, a DOCTYPE, xml:base or
xml:lang, an unknown or repeated element, markup inside a text element, HTTP
charsets, media captions that feedparser folds into the description, ...)
returns None and feedparser reads the feed. tests/test_fastrss.py checks that
both readers agree on every feed of the test bed, the samples, and generated
feeds. It borrows feedparser's own helpers (date parsing, URL joining, the cp1252
map, its HTML guess) so the rules cannot drift apart; they are internal to
feedparser, which is why pyproject pins feedparser below 7 and the tests compare.
"""
from __future__ import annotations

import codecs
import re
from typing import Any

from feedparser.datetimes import _parse_date as _feedparser_date
from feedparser.mixin import _cp1252, _FeedParserMixin
from feedparser.urls import _urljoin
from lxml import etree

_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_MEDIA = "{http://search.yahoo.com/mrss/}"
_ATOM_LINK = "{http://www.w3.org/2005/Atom}link"

# Channel children this reader understands or knows feedparser ignores for what we read.
_CHANNEL_PLAIN = {"title", "link", "description", "language", "copyright", "managingEditor", "webMaster",
                  "pubDate", "lastBuildDate", "category", "generator", "docs", "cloud", "ttl", "image",
                  "rating", "textInput", "skipHours", "skipDays", "item"}
_SY = "{http://purl.org/rss/1.0/modules/syndication/}"
# Dublin Core on a channel that feedparser files apart from the fields read here
_CHANNEL_DC = {_DC + name for name in ("date", "creator", "publisher", "rights", "subject")}
# Item children: (plain RSS) and namespaced ones; media containers may hold the listed media children.
_ITEM_TEXT = {"title", "link", "description", "author", "category", "comments", "guid", "pubDate", "source",
              _CONTENT + "encoded", _DC + "creator", _DC + "date", _DC + "subject", _DC + "language"}
_ITEM_ONCE = {"title", "link", "description", "guid", "pubDate", _CONTENT + "encoded", _DC + "date"}
_MEDIA_OK = {_MEDIA + "content", _MEDIA + "thumbnail", _MEDIA + "credit", _MEDIA + "group"}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, recover=False, huge_tree=False,
                          load_dtd=False, remove_comments=True, remove_pis=True)
# feedparser's own pattern for an e-mail address inside a byline
_EMAIL = re.compile(r"(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"
                    r"([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?")
_ENTITY_IN_LINK = re.compile("&([A-Za-z0-9_]+);")


class _Unsupported(Exception):
    """Something this reader does not model: feedparser reads the feed instead."""


def read(body: bytes, url: str, content_type: str | None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                      list[etree._Element]] | None:
    """(feed, entries, item elements) as feedparser would give them, or None to use feedparser."""
    root = tree(body, content_type)
    if root is None or root.tag != "rss" or root.get("version") != "2.0" or len(root) != 1 \
            or root[0].tag != "channel" or root[0].attrib:
        return None
    try:
        return _channel(root[0], url)
    except _Unsupported:
        return None


def tree(body: bytes, content_type: str | None, lang: bool = False) -> etree._Element | None:
    """The document's tree, or None for what the fast readers leave to feedparser: another
    media type (and text/xml's us-ascii default, RFC 3023), a DOCTYPE or entity, xml:base,
    xml:lang (``lang``: the caller checks it), mark-up that is not well-formed, and an HTTP
    charset that overrides the document's."""
    media_type, charset = _content_type(content_type)
    if media_type and (media_type not in _XML_TYPES or (media_type.startswith("text/") and not charset)):
        return None
    if b"<!DOCTYPE" in body[:2048] or b"<!ENTITY" in body or b"xml:base" in body \
            or (not lang and b"xml:lang" in body):
        return None
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None:
        return None
    if charset and _canonical(charset) != _canonical(root.getroottree().docinfo.encoding or "utf-8"):
        return None
    return root


def media_only(element: etree._Element) -> None:
    """Refuse a media element holding more than the media this reader models (captions, titles
    and categories change what feedparser makes of the entry's own text)."""
    for inner in element.iter():
        if inner.tag not in _MEDIA_OK:
            raise _Unsupported(f"media element {inner.tag}")


_XML_TYPES = {"application/rss+xml", "application/xml", "text/xml", "application/atom+xml", "application/rdf+xml"}

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_RSS1 = "{http://purl.org/rss/1.0/}"
#: RSS 2.0 item elements with no RSS 1.0 counterpart: in an RSS 1.0 feed feedparser's reading of
#: them is not modelled here
_RSS2_ONLY = {"guid", "pubDate", "author", "category", "comments", "source", "enclosure"}


def read_rdf(body: bytes, url: str, content_type: str | None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                          list[etree._Element]] | None:
    """RSS 1.0 (RDF) as feedparser would give it, or None to use feedparser.

    RSS 1.0 is RSS 2.0's item and channel elements in a namespace, items beside the channel, and
    an item's rdf:about, which feedparser takes as its id as written. Those elements are renamed
    and read with the RSS 2.0 rules above; anything else is refused as there.
    """
    root = tree(body, content_type)
    if root is None or root.tag != _RDF + "RDF" or root.attrib:
        return None
    try:
        return _rdf(root, url)
    except _Unsupported:
        return None


def _rss1_names(el: etree._Element) -> None:
    """RSS 1.0's namespaced elements under ``el`` renamed to their RSS 2.0 names (in place)."""
    for inner in el.iter():
        if isinstance(inner.tag, str) and inner.tag.startswith(_RSS1):
            name = inner.tag[len(_RSS1):]
            if name in _RSS2_ONLY:
                raise _Unsupported(f"RSS 1.0 element {name}")
            inner.tag = name
        elif isinstance(inner.tag, str) and inner.tag[:1] != "{":
            raise _Unsupported(f"an element without a namespace in RSS 1.0: {inner.tag}")


def _rdf(root: etree._Element, url: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[etree._Element]]:
    channel = None
    entries: list[dict[str, Any]] = []
    items: list[etree._Element] = []
    for child in root:
        if child.tag == _RSS1 + "channel":
            if channel is not None:
                raise _Unsupported("two channels")
            channel = child
        elif child.tag == _RSS1 + "item":
            about = child.attrib.pop(_RDF + "about", None)
            if child.attrib:
                raise _Unsupported("attributes on an item")
            _rss1_names(child)
            entry = _item(child, url)
            if about:  # feedparser: the item's id, as written (an id element would come after it)
                entry.setdefault("id", about)
            entries.append(entry)
            items.append(child)
        elif child.tag in (_RSS1 + "image", _RSS1 + "textinput"):
            continue  # filed apart from everything we read, as in RSS 2.0
        else:
            raise _Unsupported(f"RSS 1.0 element {child.tag}")
    if channel is None:
        raise _Unsupported("no channel")
    channel.attrib.pop(_RDF + "about", None)
    if channel.attrib:
        raise _Unsupported("attributes on the channel")
    for child in list(channel):
        if child.tag in (_RSS1 + "items", _RSS1 + "image", _RSS1 + "textinput"):
            channel.remove(child)  # the item list and references: nothing feedparser gives us
    _rss1_names(channel)
    feed, _, _ = _channel(channel, url)
    return feed, entries, items


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    """(media type, charset) of a Content-Type header, lower-cased."""
    if not value:
        return None, None
    media_type, *params = [part.strip() for part in value.lower().split(";")]
    charset = next((p.split("=", 1)[1].strip().strip('"') for p in params if p.startswith("charset=")), None)
    return media_type, charset


def _canonical(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return encoding.lower()


def _clean(text: str | None) -> str:
    """feedparser's treatment of every text value: stripped, mis-decoded UTF-8 repaired, cp1252 mapped.

    feedparser converts every document to UTF-8 before reading it, so its repair of UTF-8
    read as Latin-1 applies whatever the document's own encoding was.
    """
    out = (text or "").strip()
    try:
        out = out.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return out.translate(_cp1252)


def _text(el: etree._Element) -> str:
    if len(el):
        raise _Unsupported("markup inside a text element")
    return _clean(el.text)


# (C901: one branch per channel element, as feedparser reads them)
def _channel(channel: etree._Element, url: str) -> tuple[dict[str, Any], list[dict[str, Any]],  # noqa: C901
                                                                      list[etree._Element]]:
    feed: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    items: list[etree._Element] = []
    seen: set[str] = set()
    for child in channel:
        tag = child.tag
        if tag == _DC + "language":
            tag = "language"  # the same field in feedparser (one of the two, at most, is read here)
        if tag in ("title", "link", "language", "ttl", "description"):
            if tag in seen:
                raise _Unsupported(f"two channel <{tag}>")
            seen.add(tag)
        if tag == "item":
            if child.attrib:
                raise _Unsupported("attributes on an item")  # feedparser reads rdf:about, href, lastmod
            entries.append(_item(child, url))
            items.append(child)
        elif tag == "title":
            text = _text(child)
            feed["title"] = text
            feed["title_detail"] = {"type": _title_type(text), "language": None, "base": url}
        elif tag == "link":
            feed["link"] = _ENTITY_IN_LINK.sub(r"&\g<1>", _resolve(url, _text(child)))
        elif tag == "language":
            feed["language"] = _text(child)
        elif tag == "ttl":
            feed["ttl"] = _text(child)
        elif tag == _ATOM_LINK:
            if child.get("rel") not in ("self", "hub"):
                raise _Unsupported("an atom:link that could be the feed's link")
        elif tag in ("image", "textInput", "cloud", "skipHours", "skipDays") or tag.startswith(_SY):
            continue  # feedparser files these apart from everything we read
        elif tag in _CHANNEL_DC:
            if len(child):
                raise _Unsupported(f"markup inside channel <{tag}>")
        elif tag in _CHANNEL_PLAIN:
            if len(child):
                raise _Unsupported(f"markup inside channel <{tag}>")
        else:
            raise _Unsupported(f"channel element {tag}")
    return feed, entries, items


def _resolve(base: str, text: str) -> str:
    return _urljoin(base, text) if text else text  # feedparser leaves an empty value alone


def _title_type(text: str) -> str:
    # RSS titles are nominally plain text; feedparser guesses HTML as below.
    return "text/html" if _FeedParserMixin.looks_like_html(text) else "text/plain"


def _author(text: str) -> dict[str, str]:
    """feedparser's reading of a byline: "desk@example.org (Jane Roe)" -> name and email."""
    author, email = text, None
    found = _EMAIL.search(author)
    if found:
        email = found.group(0)
        author = author.replace(email, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "").strip()
        if author and author[0] == "(":
            author = author[1:]
        if author and author[-1] == ")":
            author = author[:-1]
        author = author.strip()
    out: dict[str, str] = {}
    if author:
        out["name"] = author
    if email:
        out["email"] = email
    return out


# (C901: one branch per RSS element, as feedparser reads them)
def _item(item: etree._Element, url: str) -> dict[str, Any]:  # noqa: C901
    e: dict[str, Any] = {}
    tags: list[dict[str, Any]] = []
    seen: set[str] = set()
    has_content = False
    guid_is_link = False
    # feedparser restores its current language when <language> closes, so (without xml:lang,
    # which sends the feed to feedparser) no entry text carries one: the feed's applies later.
    detail = {"language": None, "base": url}

    def add_tag(term: str | None, scheme: str | None, label: str | None = None) -> None:
        if not (term or scheme or label):
            return
        value = {"term": term, "scheme": scheme, "label": label}
        if value not in tags:
            tags.append(value)

    for child in item:
        tag = child.tag
        if tag in _ITEM_ONCE:
            if tag in seen:
                raise _Unsupported(f"two <{tag}> in one item")
            seen.add(tag)
        if tag in _MEDIA_OK:
            media_only(child)
            continue
        if tag not in _ITEM_TEXT and tag != "enclosure":
            raise _Unsupported(f"item element {tag}")
        if tag == "enclosure":
            # feedparser lower-cases attribute names (and rel/type values) and calls the URL href
            attrs = {k.lower(): v.lower() if k.lower() in ("rel", "type") else v for k, v in child.attrib.items()}
            href = attrs.get("url", attrs.get("uri", attrs.get("href")))
            if href:
                attrs.pop("url", None)
                attrs.pop("uri", None)
                attrs["href"] = href
            e.setdefault("enclosures", []).append({**attrs, "rel": "enclosure"})
            continue
        if child.attrib and tag in ("title", "description", _CONTENT + "encoded"):
            raise _Unsupported("attributes on a text element")  # type="html" and friends
        text = _text(child)
        if tag == "title":
            e["title"] = text
            e["title_detail"] = {"type": _title_type(text), **detail}
        elif tag == "link":
            link = _resolve(url, text).replace("&amp;", "&")
            e["link"] = _ENTITY_IN_LINK.sub(r"&\g<1>", link)
        elif tag == "guid":
            permalink = {k.lower(): v for k, v in child.attrib.items()}.get("ispermalink", "true") == "true"
            e["id"] = _resolve(url, text) if permalink else text
            guid_is_link = permalink
        elif tag == "description":
            if "summary" in e and not has_content:
                raise _Unsupported("a second description")
            e["summary"] = text
            e["summary_detail"] = {"type": "text/html", **detail}
        elif tag == _CONTENT + "encoded":
            has_content = True
            e.setdefault("content", []).append({"type": "text/html", "value": text, **detail})
            e.setdefault("summary", text)
        elif tag in ("author", _DC + "creator"):
            e.setdefault("authors", []).append(_author(text) if text else {})
            e["author"] = text
        elif tag in ("category", _DC + "subject"):
            attrs = {k.lower(): v for k, v in child.attrib.items()}
            add_tag(attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
            if text:
                if tags and not tags[-1]["term"]:
                    tags[-1]["term"] = text
                else:
                    add_tag(text, None)
        elif tag == "pubDate":
            e["published"] = text
            e["published_parsed"] = _feedparser_date(text)
        elif tag == _DC + "date":
            e["updated"] = text
            e["updated_parsed"] = _feedparser_date(text)
        # comments and source carry nothing we read
    if guid_is_link and "link" not in e:
        e["link"] = e["id"]  # a permalink guid stands in for a missing <link>
    if tags:
        e["tags"] = tags
    return e
