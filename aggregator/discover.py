"""Feed discovery and OPML: from a page's <link rel="alternate"> to feed URLs, and sources to and
from OPML 2.0. Pure functions over bytes; fetching is the caller's (aggregator.fetch)."""
from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import quoteattr

from lxml import etree

from .errors import FeedhubError, ParseError
from .model import RawFeed
from .parse import parse_feed

#: the feed types a page's alternate links may announce
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/json",
              "application/rdf+xml", "text/xml", "application/xml")


@dataclass(frozen=True)
class Candidate:
    """A feed a page announces."""

    url: str
    title: str | None
    type: str


class _Alternates(HTMLParser):
    def __init__(self, base: str):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.found: list[Candidate] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base":
            href = dict(attrs).get("href")
            if href:
                self.base = urljoin(self.base, href)
            return
        if tag not in ("link", "a"):
            return
        a = {k.lower(): (v or "") for k, v in attrs}
        rels = a.get("rel", "").lower().split()
        kind = a.get("type", "").lower().split(";")[0].strip()
        if "alternate" not in rels or kind not in FEED_TYPES or not a.get("href"):
            return
        url = urljoin(self.base, a["href"].strip())
        if urlsplit(url).scheme in ("http", "https") and all(c.url != url for c in self.found):
            self.found.append(Candidate(url, a.get("title") or None, kind))


def alternate_links(html: bytes, base: str) -> list[Candidate]:
    """The feeds a page announces with <link rel="alternate" type="...">, in page order."""
    parser = _Alternates(base)
    try:
        parser.feed(html[:2_000_000].decode("utf-8", "replace"))
        parser.close()
    except Exception:  # a broken page still gives what was found before the break
        pass
    return parser.found


def as_feed(body: bytes, url: str, content_type: str | None) -> RawFeed | None:
    """The body parsed as a feed, or None when it is not one (an HTML page, say)."""
    if (content_type or "").lower().startswith("text/html") or body.lstrip()[:15].lower().startswith(
            (b"<!doctype html", b"<html")):
        return None
    try:
        return parse_feed(body, url, content_type)
    except ParseError:
        return None


# --- OPML ----------------------------------------------------------------------------------

class OpmlError(FeedhubError):
    """An OPML document that cannot be read."""


@dataclass(frozen=True)
class Outline:
    """A subscription in an OPML file."""

    title: str
    xml_url: str
    html_url: str | None
    category: str | None


def read_opml(body: bytes) -> list[Outline]:
    """The feed outlines of an OPML document (any depth; a parent outline is the category).
    Entities are never expanded and no DTD is loaded, so a hostile file cannot blow up."""
    if b"<!doctype" in body[:65536].lower():
        # OPML needs no DTD, and entity declarations are how XML bombs and file reads start.
        raise OpmlError("the document declares a DOCTYPE; OPML needs none, and entity declarations are refused")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_pis=True)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as e:
        raise OpmlError(f"not well-formed XML: {e}") from None
    if etree.QName(root).localname != "opml":
        raise OpmlError(f"the document's root is <{etree.QName(root).localname}>, not <opml>")
    body_el = root.find("body")
    if body_el is None:
        raise OpmlError("the OPML document has no <body>")
    out: list[Outline] = []

    def walk(el: etree._Element, category: str | None) -> None:
        for child in el:
            if not isinstance(child.tag, str) or child.tag != "outline":
                continue
            xml_url = (child.get("xmlUrl") or child.get("xmlurl") or "").strip()
            title = (child.get("title") or child.get("text") or "").strip()
            if xml_url:
                out.append(Outline(title, xml_url, (child.get("htmlUrl") or "").strip() or None, category))
            walk(child, title or category)
    walk(body_el, None)
    return out


def write_opml(title: str, outlines: list[Outline], created: str) -> bytes:
    """An OPML 2.0 document listing ``outlines`` (grouped by category)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">', "  <head>",
             f"    <title>{_text(title)}</title>", f"    <dateCreated>{_text(created)}</dateCreated>", "  </head>",
             "  <body>"]
    groups: dict[str | None, list[Outline]] = {}
    for o in outlines:
        groups.setdefault(o.category, []).append(o)
    for category, items in groups.items():
        indent = "    "
        if category:
            lines.append(f"    <outline text={quoteattr(category)} title={quoteattr(category)}>")
            indent = "      "
        for o in items:
            html = f" htmlUrl={quoteattr(o.html_url)}" if o.html_url else ""
            lines.append(f"{indent}<outline type=\"rss\" text={quoteattr(o.title)} title={quoteattr(o.title)} "
                         f"xmlUrl={quoteattr(o.xml_url)}{html}/>")
        if category:
            lines.append("    </outline>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
