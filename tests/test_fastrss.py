"""The fast RSS 2.0 reader must give exactly feedparser's result, or step aside.

Every feed of the test bed and the samples, the benchmark's feeds, and generated
RSS 2.0 documents (any mix of the elements it models, in any order, with hostile
text, plus elements it does not model) are parsed both ways and compared field by field.
"""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import fastrss
from aggregator.parse import parse_xml_feed
from bench.feedserver import make_feed

from .conftest import ROOT

URL = "https://feeds.example.org/wire/rss.xml"
FILES = sorted((ROOT / "tests" / "data" / "feeds").glob("*.xml")) + sorted((ROOT / "samples").glob("*.r*"))


def both(body: bytes, url: str = URL, content_type: str | None = None):
    return (parse_xml_feed(body, url, content_type, fast=True),
            parse_xml_feed(body, url, content_type, fast=False))


def test_same_result_on_every_bundled_feed():
    taken = 0
    for path in FILES:
        fast, slow = both(path.read_bytes())
        assert fast == slow, path.name
        taken += fastrss.read(path.read_bytes(), URL, None) is not None
    assert taken >= 15  # the plain RSS 2.0 feeds really take the fast path


def test_same_result_on_the_benchmark_feeds():
    for n in range(10):
        body = make_feed(n, 30)
        assert fastrss.read(body, URL, None) is not None
        fast, slow = both(body)
        assert fast == slow


def test_what_it_does_not_model_goes_to_feedparser():
    plain = make_feed(1, 3)
    assert fastrss.read(plain, URL, None) is not None
    for body, content_type in [
        (plain.replace(b"<channel>", b'<channel xml:lang="en">'), None),
        (plain.replace(b"<rss ", b'<!DOCTYPE rss [<!ENTITY x "y">]><rss '), None),
        (plain.replace(b"</title>", b"</title><itunes:author xmlns:itunes="
                                    b'"http://www.itunes.com/dtds/podcast-1.0.dtd">A</itunes:author>', 1), None),
        (plain.replace(b"<item>", b"<item><title>one</title>", 1), None),  # a second title
        (plain.replace(b'version="2.0"', b'version="0.92"'), None),
        (plain, "text/xml"),
        (plain, "application/rss+xml; charset=iso-8859-1"),
        (plain[:-20], None),  # not well-formed
    ]:
        assert fastrss.read(body, URL, content_type) is None
        fast, slow = both(body, content_type=content_type)
        assert fast == slow


# Text that exercises feedparser's cleaning: markup and entities, cp1252 controls,
# UTF-8 read as Latin-1, e-mail bylines, whitespace, URLs relative and absolute.
XML_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff") \
    .filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20)
PIECES = st.sampled_from([
    "<b>bold</b>", "&amp;", "&lt;p&gt;x&lt;/p&gt;", "\x93quoted\x94", "Ã©tÃ©", "desk@example.org",
    "(Jane Roe)", "By A and B", " ", "\n", "/relative/path?a=1&b=2", "https://x.example/a#f", "&#38;",
    "Tue, 24 Nov 2026 09:00:00 GMT", "2026-11-24T09:00:00+05:30", "yesterday", "true", "false",
    "<script>x</script>", "]]>", "Ω", "عاجل",
])
TEXT = st.lists(st.one_of(st.text(XML_CHARS, max_size=12), PIECES), max_size=4).map("".join)


@st.composite
def rss_documents(draw) -> bytes:
    def el(name: str, attrs: str = "") -> str:
        return f"<{name}{attrs}>{escape(draw(TEXT))}</{name}>"

    item_kinds = st.sampled_from(["title", "link", "description", "guid", "guid-false", "guid-true", "author",
                                  "dc:creator", "category", "category-domain", "dc:subject", "pubDate",
                                  "dc:date", "content:encoded", "enclosure", "comments", "media:content",
                                  "media:description", "unknown"])
    items = []
    for _ in range(draw(st.integers(0, 3))):
        parts = []
        for kind in draw(st.lists(item_kinds, max_size=9)):
            if kind == "guid-false":
                parts.append(el("guid", ' isPermaLink="false"'))
            elif kind == "guid-true":
                parts.append(el("guid", f" isPermaLink={quoteattr(draw(st.sampled_from(['true', 'True'])))}"))
            elif kind == "category-domain":
                parts.append(el("category", f" domain={quoteattr(draw(TEXT))}"))
            elif kind == "enclosure":
                parts.append(f"<enclosure url={quoteattr(draw(TEXT))} length={quoteattr(draw(TEXT))} "
                             f"type={quoteattr(draw(st.sampled_from(['audio/MPEG', 'image/jpeg', ''])))}/>")
            elif kind == "media:content":
                parts.append(f"<media:content url={quoteattr(draw(TEXT))} medium=\"image\">"
                             f"{el('media:credit')}</media:content>")
            elif kind == "unknown":
                parts.append(el("x:thing"))
            else:
                parts.append(el(kind))
        items.append("<item>" + "".join(parts) + "</item>")
    channel = [el("title"), el("link"), el("description")]
    if draw(st.booleans()):
        channel.insert(draw(st.integers(0, 3)), el("language"))
    if draw(st.booleans()):
        channel.append(f"<ttl>{draw(st.integers(-5, 500))}</ttl>")
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/" '
            'xmlns:x="urn:example:x"><channel>' + "".join(channel) + "".join(items)
            + "</channel></rss>").encode("utf-8")


CONTENT_TYPES = st.sampled_from([None, "application/rss+xml", "application/rss+xml; charset=utf-8",
                                 "text/xml", "text/xml; charset=UTF-8", "application/xml; charset=iso-8859-1",
                                 "text/html; charset=utf-8"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=rss_documents(), url=st.sampled_from([URL, "", "samples/local.rss"]), content_type=CONTENT_TYPES,
       latin1=st.booleans())
def test_generated_feeds_read_the_same_both_ways(doc: bytes, url: str, content_type: str | None, latin1: bool):
    if latin1:  # the same document declared and written as ISO-8859-1, where it can be
        try:
            doc = doc.decode("utf-8").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("iso-8859-1")
        except UnicodeEncodeError:
            pass
    fast, slow = both(doc, url, content_type)
    assert fast == slow


# --- RSS 1.0 ----------------------------------------------------------------------------------

def test_rss10_takes_the_fast_path_and_reads_the_same():
    from bench.feedserver import make_mixed, mixed_format

    bodies = [make_mixed(n, 10)[1] for n in range(40) if mixed_format(n) == "rdf"][:5]
    bodies += [p.read_bytes() for p in sorted((ROOT / "tests" / "data" / "feeds").glob("*.rdf"))]
    for body in bodies:
        assert fastrss.read_rdf(body, URL, None) is not None
        fast, slow = both(body)
        assert fast.format == "rss10" and fast == slow


@st.composite
def rdf_documents(draw, modeled: bool = False) -> bytes:
    def el(name: str, attrs: str = "") -> str:
        return f"<{name}{attrs}>{escape(draw(TEXT))}</{name}>"

    once = ["title", "link", "description", "dc:date", "content:encoded"]
    many = ["dc:creator", "dc:subject", "dc:language", "media:content"]
    kinds = st.sampled_from(once + many + ([] if modeled else ["guid", "media:description", "unknown", "title"]))
    items = []
    for _ in range(draw(st.integers(0, 3))):
        chosen = draw(st.lists(kinds, max_size=8))
        if modeled:
            chosen = [k for i, k in enumerate(chosen) if k not in once or k not in chosen[:i]]
        parts = []
        for kind in chosen:
            if kind == "media:content":
                parts.append(f"<media:content url={quoteattr(draw(TEXT))}>{el('media:credit')}</media:content>")
            elif kind == "unknown":
                parts.append(el("x:thing"))
            else:
                parts.append(el(kind))
        about = f" rdf:about={quoteattr(draw(TEXT))}" if draw(st.booleans()) else ""
        items.append(f"<item{about}>" + "".join(parts) + "</item>")
    channel = [el("title"), el("link"), el("description")]
    if draw(st.booleans()):
        channel.insert(draw(st.integers(0, 3)), el("dc:language"))
    if draw(st.booleans()):
        channel.append(el("dc:date"))
    channel.append("<items><rdf:Seq><rdf:li rdf:resource=\"https://x.example/1\"/></rdf:Seq></items>")
    return ('<?xml version="1.0" encoding="UTF-8"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            'xmlns="http://purl.org/rss/1.0/" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/" '
            'xmlns:x="urn:example:x"><channel rdf:about="https://x.example/">' + "".join(channel) + "</channel>"
            + "".join(items) + "</rdf:RDF>").encode("utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=rdf_documents(), url=st.sampled_from([URL, "", "samples/local.rdf"]), content_type=CONTENT_TYPES)
def test_generated_rss10_reads_the_same_both_ways(doc: bytes, url: str, content_type: str | None):
    fast, slow = both(doc, url, content_type)
    assert fast == slow


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=rdf_documents(modeled=True), url=st.sampled_from([URL, "", "samples/local.rdf"]))
def test_generated_rss10_it_models_takes_the_fast_path(doc: bytes, url: str):
    assert fastrss.read_rdf(doc, url, None) is not None
    fast, slow = both(doc, url)
    assert fast == slow
