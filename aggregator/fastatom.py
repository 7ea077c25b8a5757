"""A fast reader for plain, well-formed Atom 1.0: feedparser's result, several times faster.

The Atom twin of ``fastrss`` (read its docstring first): lxml builds the tree in C and this
module gives the dictionaries feedparser would give for what ``parse_xml_feed`` reads, by
feedparser's own rules. Among them:
- an entry's ``link`` is its last alternate HTML link, or else its id;
- a ``<summary>`` wins over ``<content>``, whose text is the summary when there is none;
- names and e-mail addresses are only stripped, while other text is also repaired (UTF-8 read as
  Latin-1) and has cp1252's extensions mapped;
- a link's type defaults to text/html, an enclosure's too;
- an author is read only when feedparser would not fill it in from the author before it.

Exactness is bought with refusal: xml:base, xml:lang anywhere but on the feed, a DOCTYPE, XHTML or out-of-line content,
content in other media types, a second summary or content, contributors, sources, tombstones,
extension elements other than the media thumbnails, contents and credits that ``parse`` reads
from the tree itself: any of them returns None, and feedparser reads the feed.
tests/test_fastatom.py compares both readers on the test bed, the samples, the benchmark's
Atom feeds and generated documents.
"""
from __future__ import annotations

from typing import Any

from feedparser.datetimes import _parse_date as _feedparser_date
from feedparser.urls import _urljoin
from lxml import etree

from .fastrss import _MEDIA_OK, _clean, _Unsupported, media_only, tree

_A = "{http://www.w3.org/2005/Atom}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: Atom text-construct types and the content types feedparser maps them to
_TEXT_TYPES = {"text": "text/plain", "html": "text/html", "text/plain": "text/plain", "text/html": "text/html"}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_FEED_IGNORED = {_A + name for name in ("generator", "icon", "logo", "rights", "subtitle", "updated", "category")}
_ENTRY_ONCE = {_A + name for name in ("id", "title", "summary", "content", "published", "updated")}


def read(body: bytes, url: str, content_type: str | None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                      list[etree._Element]] | None:
    """(feed, entries, entry elements) as feedparser would give them, or None to use feedparser."""
    if body.count(b"xml:lang") > 1:
        return None
    root = tree(body, content_type, lang=True)
    if root is None or root.tag != _A + "feed" or set(root.attrib) - {_XML_LANG}:
        return None  # (xml:lang once, on the feed: the language of everything in it)
    if b"xml:lang" in body and _XML_LANG not in root.attrib:
        return None
    try:
        return _feed(root, url, (root.get(_XML_LANG) or "").replace("_", "-") or None)
    except _Unsupported:
        return None


def _plain(el: etree._Element) -> str:
    """Text of an element that holds only text (feedparser's reading of most Atom elements)."""
    if len(el) or el.attrib:
        raise _Unsupported(f"markup or attributes in <{el.tag}>")
    return _clean(el.text)


def _uri(el: etree._Element, url: str) -> str:
    """A URI element's value (id, an author's uri): feedparser resolves it against the base first,
    then repairs and maps the text as any other."""
    if len(el) or el.attrib:
        raise _Unsupported(f"markup or attributes in <{el.tag}>")
    text = (el.text or "").strip()
    return _clean(_urljoin(url, text) if text else text)


def _construct(el: etree._Element, url: str, lang: str | None) -> tuple[str, dict[str, Any]]:
    """An Atom text construct (title, summary, content): its value and feedparser's detail."""
    if len(el) or set(el.attrib) - {"type"}:
        raise _Unsupported(f"markup or attributes in <{el.tag}>")
    kind = _TEXT_TYPES.get((el.get("type") or "text").lower())
    if kind is None:
        raise _Unsupported(f"<{el.tag}> of type {el.get('type')}")
    return _clean(el.text), {"type": kind, "language": lang, "base": url}


def _link(el: etree._Element, url: str) -> dict[str, Any]:
    if len(el):
        raise _Unsupported("markup inside a link")
    # feedparser lower-cases attribute names and the values of rel and type, calls url/uri href,
    # and gives every link but self a type of text/html when it has none
    attrs = {k.lower(): v.lower() if k.lower() in ("rel", "type") else v for k, v in el.attrib.items()}
    if any(k.startswith("{") for k in attrs):
        raise _Unsupported("a namespaced attribute on a link")
    attrs.setdefault("rel", "alternate")
    attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:  # (url wins over uri over href, as in feedparser's _enforce_href)
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    if "href" not in attrs:
        raise _Unsupported("a link without href")  # feedparser would read its text as the link
    attrs["href"] = _urljoin(url, attrs["href"])  # (an empty href is the base itself)
    return attrs


def _person(el: etree._Element, url: str) -> dict[str, str]:
    if el.attrib or (el.text or "").strip():
        raise _Unsupported("text or attributes in a person construct")
    out: dict[str, str] = {}
    for child in el:
        if child.attrib or len(child):
            raise _Unsupported("markup in a person construct")
        tag = child.tag
        if tag == _A + "name":
            out["name"] = (child.text or "").strip()  # names and e-mails are only stripped
        elif tag == _A + "email":
            out["email"] = (child.text or "").strip()
        elif tag == _A + "uri":
            out["href"] = _uri(child, url)
        else:
            raise _Unsupported(f"person element {tag}")
    return out


def _people(people: list[dict[str, str]]) -> list[dict[str, str]]:
    """Authors as feedparser leaves them, where that is simple. Each has a name. Of several, none
    has an e-mail address in its name, and all have an e-mail or none does: feedparser fills a
    later author in from the byline of the one before."""
    if any(not p.get("name") for p in people):
        raise _Unsupported("an author without a name")
    if len(people) > 1 and (any("@" in p["name"] for p in people)
                            or len({bool(p.get("email")) for p in people}) > 1):
        raise _Unsupported("authors feedparser would fill in from the one before")
    return people


def _feed(root: etree._Element, url: str,
          lang: str | None) -> tuple[dict[str, Any], list[dict[str, Any]], list[etree._Element]]:
    feed: dict[str, Any] = {"language": lang} if lang else {}
    entries: list[dict[str, Any]] = []
    elements: list[etree._Element] = []
    seen: set[str] = set()
    for child in root:
        tag = child.tag
        if tag == _A + "entry":
            entries.append(_entry(child, url, lang))
            elements.append(child)
            continue
        if tag in (_A + "id", _A + "title"):
            if tag in seen:
                raise _Unsupported(f"two feed <{tag}>")
            seen.add(tag)
        if tag == _A + "title":
            feed["title"], feed["title_detail"] = _construct(child, url, lang)
        elif tag == _A + "id":
            feed.setdefault("link", _uri(child, url))  # an id stands in for a missing link
        elif tag == _A + "link":
            link = _link(child, url)
            if link["rel"] == "alternate" and link["type"] in _HTML_TYPES:
                feed["link"] = link["href"]
        elif tag == _A + "author":
            feed.setdefault("authors", []).append(_person(child, url))
        elif tag in _FEED_IGNORED:
            if len(child):
                raise _Unsupported(f"markup inside feed <{tag}>")
        else:
            raise _Unsupported(f"feed element {tag}")
    if "authors" in feed:
        _people(feed["authors"])
    return feed, entries, elements


# (C901: one branch per Atom element, as feedparser reads them)
def _entry(entry: etree._Element, url: str, lang: str | None) -> dict[str, Any]:  # noqa: C901
    if entry.attrib:
        raise _Unsupported("attributes on an entry")
    e: dict[str, Any] = {}
    tags: list[dict[str, Any]] = []
    seen: set[str] = set()
    content_value = None
    for child in entry:
        tag = child.tag
        if tag in _ENTRY_ONCE:
            if tag in seen:
                raise _Unsupported(f"two <{tag}> in one entry")
            seen.add(tag)
        if tag in _MEDIA_OK:
            media_only(child)
            continue
        if tag == _A + "id":
            value = _uri(child, url)
            e["id"] = value
            e.setdefault("link", value)  # feedparser: an id is the link until a link says otherwise
        elif tag == _A + "title":
            e["title"], e["title_detail"] = _construct(child, url, lang)
        elif tag == _A + "link":
            link = _link(child, url)
            if link["rel"] == "enclosure":
                e.setdefault("enclosures", []).append(link)
            elif link["rel"] == "alternate" and link["type"] in _HTML_TYPES:
                e["link"] = link["href"]
        elif tag == _A + "summary":
            e["summary"], e["summary_detail"] = _construct(child, url, lang)
        elif tag == _A + "content":
            if "src" in child.attrib:
                raise _Unsupported("out-of-line content")
            content_value, detail = _construct(child, url, lang)
            e["content"] = [{**detail, "value": content_value}]
        elif tag == _A + "published":
            e["published"] = _plain(child)
            e["published_parsed"] = _feedparser_date(e["published"])
        elif tag == _A + "updated":
            e["updated"] = _plain(child)
            e["updated_parsed"] = _feedparser_date(e["updated"])
        elif tag == _A + "author":
            e.setdefault("authors", []).append(_person(child, url))
        elif tag == _A + "category":
            if len(child) or (child.text or "").strip():
                raise _Unsupported("text in a category")
            attrs = {k.lower(): v for k, v in child.attrib.items()}
            term, scheme, label = attrs.get("term"), attrs.get("scheme"), attrs.get("label")
            tag_value = {"term": term, "scheme": scheme, "label": label}
            if (term or scheme or label) and tag_value not in tags:
                tags.append(tag_value)
        elif tag == _A + "rights":
            _construct(child, url, lang)  # (read for its checks only; nothing here uses it)
        else:
            raise _Unsupported(f"entry element {tag}")
    if content_value is not None and "summary" not in e:
        e["summary"] = content_value  # feedparser copies text and HTML content to a missing summary
    if tags:
        e["tags"] = tags
    if "authors" in e:
        _people(e["authors"])
    return e
