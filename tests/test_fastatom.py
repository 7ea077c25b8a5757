"""The fast Atom 1.0 reader must give exactly feedparser's result, or step aside.

Every Atom feed of the test bed and the samples, the benchmark's Atom feeds, and generated Atom
documents (any mix of the elements it models, in any order, with hostile text, plus what it
does not model) are parsed both ways and compared field by field.
"""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import fastatom
from bench.feedserver import make_mixed, mixed_format

from .conftest import ROOT
from .test_fastrss import TEXT, both

URL = "https://feeds.example.org/wire/atom.xml"
FILES = sorted((ROOT / "tests" / "data" / "feeds").glob("*.xml")) + sorted((ROOT / "samples").glob("*.atom"))


def test_same_result_on_every_bundled_atom_feed():
    taken = 0
    for path in FILES:
        body = path.read_bytes()
        fast, slow = both(body, URL)
        assert fast == slow, path.name
        taken += fastatom.read(body, URL, None) is not None
    assert taken >= 4  # the plain Atom feeds (one with xml:lang on the feed) really take the fast path


def test_same_result_on_the_benchmark_atom_feeds():
    atom = [n for n in range(40) if mixed_format(n) == "atom"][:6]
    assert any(n % 10 == 1 for n in atom)  # a large one among them
    for n in atom:
        body = make_mixed(n, 20)[1]
        assert fastatom.read(body, URL, None) is not None
        fast, slow = both(body, URL)
        assert fast.format == "atom10" and fast == slow


def test_what_it_does_not_model_goes_to_feedparser():
    plain = make_mixed(1, 3)[1]
    assert fastatom.read(plain, URL, None) is not None
    for body, content_type in [
        (plain.replace(b"<entry>", b'<entry xml:lang="fr">', 1), None),
        (plain.replace(b"<feed ", b'<feed xml:base="https://elsewhere.example/" ', 1), None),
        (plain.replace(b'type="html"', b'type="xhtml"', 1), None),
        (plain.replace(b"</title>", b"</title><title>again</title>", 1), None),
        (plain.replace(b"<entry>", b"<entry><contributor><name>A</name></contributor>", 1), None),
        (plain.replace(b"<entry>", b'<entry><content src="https://x.example/a"/>', 1), None),
        (plain.replace(b"<media:credit>", b"<media:description>A caption</media:description><media:credit>", 1),
         None),
        (plain, "text/xml"),
        (plain, "application/atom+xml; charset=iso-8859-1"),
        (plain[:-20], None),
    ]:
        assert fastatom.read(body, URL, content_type) is None
        fast, slow = both(body, content_type=content_type)
        assert fast == slow


@st.composite
def atom_documents(draw, modeled: bool = False) -> bytes:
    """Atom documents; ``modeled``: only what the fast reader models (it must take them all)."""
    def text(name: str, attrs: str = "") -> str:
        return f"<{name}{attrs}>{escape(draw(TEXT))}</{name}>"

    def construct(name: str) -> str:
        kinds = ["", ' type="text"', ' type="html"', ' type="HTML"', ' type="text/html"']
        kind = draw(st.sampled_from(kinds if modeled else [*kinds, ' type="xhtml"', ' type="image/png"']))
        return text(name, kind)

    emails = draw(st.booleans())

    def person(name: str) -> str:
        if modeled:  # a name always, and an e-mail in every person or in none (see fastatom._people)
            parts = [f"<name>R{escape(draw(TEXT).replace('@', ' at '))}</name>"] + ([f"<email>e{escape(draw(TEXT))}</email>"] if emails else [])
            if draw(st.booleans()):
                parts.insert(draw(st.integers(0, len(parts))), text("uri"))
            return f"<{name}>" + "".join(parts) + f"</{name}>"
        parts = draw(st.lists(st.sampled_from(["name", "email", "uri", "x:thing"]), max_size=3))
        return f"<{name}>" + "".join(text(p) for p in parts) + f"</{name}>"

    def link() -> str:
        attrs = [f"href={quoteattr(draw(TEXT))}"]
        rel = draw(st.sampled_from([None, "alternate", "ALTERNATE", "enclosure", "self", "related", "hub"]))
        if rel:
            attrs.append(f"rel={quoteattr(rel)}")
        kind = draw(st.sampled_from([None, "text/html", "application/xhtml+xml", "audio/mpeg", "TEXT/HTML"]))
        if kind:
            attrs.append(f"type={quoteattr(kind)}")
        if draw(st.booleans()):
            attrs.append(f"length={quoteattr(draw(TEXT))}")
        return "<link " + " ".join(attrs) + "/>"

    once = ["id", "title", "summary", "content", "published", "updated"]
    many = ["link", "author", "category", "rights", "media:thumbnail", "media:credit"]
    entry_kinds = st.sampled_from(once + many + ([] if modeled else ["link", "media:description", "unknown"]))
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        parts = []
        kinds = draw(st.lists(entry_kinds, max_size=10))
        if modeled:  # each of the once-only elements at most once
            kinds = [k for i, k in enumerate(kinds) if k not in once or k not in kinds[:i]]
        for kind in kinds:
            if kind in ("title", "summary", "content", "rights"):
                parts.append(construct(kind))
            elif kind == "link":
                parts.append(link())
            elif kind == "author":
                parts.append(person("author"))
            elif kind == "category":
                attrs = "".join(f" {a}={quoteattr(draw(TEXT))}" for a in
                                draw(st.lists(st.sampled_from(["term", "scheme", "label"]), max_size=3, unique=True)))
                parts.append(f"<category{attrs}/>")
            elif kind == "media:thumbnail":
                parts.append(f"<media:thumbnail url={quoteattr(draw(TEXT))} width=\"640\"/>")
            elif kind == "unknown":
                parts.append(text("x:thing"))
            else:
                parts.append(text(kind))
        entries.append("<entry>" + "".join(parts) + "</entry>")
    feed = [construct("title"), text("id"), link()]
    draw(st.randoms()).shuffle(feed)
    if draw(st.booleans()):
        feed.insert(draw(st.integers(0, 3)), person("author"))
    if draw(st.booleans()):
        feed.append(text("updated"))
    lang = draw(st.sampled_from(["", ' xml:lang="en"', ' xml:lang="ar_EG"', ' xml:lang=""']))
    return ('<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:media="http://search.yahoo.com/mrss/" xmlns:x="urn:example:x"' + lang + ">"
            + "".join(feed) + "".join(entries) + "</feed>").encode("utf-8")


CONTENT_TYPES = st.sampled_from([None, "application/atom+xml", "application/atom+xml; charset=utf-8",
                                 "text/xml", "text/xml; charset=UTF-8", "application/xml; charset=iso-8859-1"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=atom_documents(), url=st.sampled_from([URL, "", "samples/local.atom"]), content_type=CONTENT_TYPES)
def test_generated_atom_reads_the_same_both_ways(doc: bytes, url: str, content_type: str | None):
    fast, slow = both(doc, url, content_type)
    assert fast == slow


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=atom_documents(modeled=True), url=st.sampled_from([URL, "", "samples/local.atom"]))
def test_generated_atom_it_models_takes_the_fast_path_and_reads_the_same(doc: bytes, url: str):
    assert fastatom.read(doc, url, None) is not None
    fast, slow = both(doc, url)
    assert fast == slow
