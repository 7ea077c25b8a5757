"""Entries missing any combination of fields render in every format and edition, as the W3C
validator and the JSON Feed 1.1 spec require; one bad character costs one character."""
from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import feedparser
import jsonschema
import pytest
from lxml import etree

from aggregator import store
from aggregator.collect import Collector

from .test_feeds import SCHEMA

FIELDS = ("title", "link", "guid", "date", "summary", "body", "author")
ATOM = "{http://www.w3.org/2005/Atom}"
BASE = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def item(n: int, present: dict[str, bool], lang: str) -> str:
    word = {"en": "Harbour", "ar": "الميناء", "es": "Puerto"}[lang]
    parts = []
    if present["title"]:
        parts.append(f"<title>{word} story {n}</title>")
    if present["link"]:
        parts.append(f"<link>https://{lang}.example.org/story/{n}</link>")
    if present["guid"]:
        parts.append(f'<guid isPermaLink="false">{lang}-item-{n}</guid>')
    if present["date"]:
        parts.append(f"<pubDate>{format_datetime(BASE - timedelta(minutes=n), usegmt=True)}</pubDate>")
    if present["summary"]:
        parts.append(f"<description>{word} lead number {n}.</description>")
    if present["body"]:
        parts.append(f"<content:encoded><![CDATA[<p>{word} body {n}.</p>]]></content:encoded>")
    if present["author"]:
        parts.append(f"<dc:creator>Reporter {n % 3}</dc:creator>")
    return "<item>" + "".join(parts) + "</item>"


def feed(lang: str) -> str:
    combos = [dict(zip(FIELDS, bits)) for bits in itertools.product([True, False], repeat=len(FIELDS))]
    items = "".join(item(n, present, lang) for n, present in enumerate(combos))
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>Sparse {lang}</title><link>https://{lang}.example.org/</link><description>d</description>"
            f"<language>{lang}</language>{items}</channel></rss>")


@pytest.fixture
def sparse(config_factory, tmp_path):
    sources = ""
    for lang in ("en", "ar", "es"):
        (tmp_path / "samples").mkdir(exist_ok=True)
        (tmp_path / "samples" / f"sparse-{lang}.rss").write_text(feed(lang), encoding="utf-8")
        sources += (f'[[sources]]\nid = "sparse-{lang}"\nname = "Sparse {lang}"\n'
                    f'url = "samples/sparse-{lang}.rss"\nedition = "{lang}"\nsection = "politics"\n')
    cfg = config_factory(sources)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        summary = c.collect()
    assert not summary.failed, summary.failed
    return cfg


def test_every_combination_of_missing_fields_renders_in_every_format_and_edition(sparse):
    from web import create_app

    client = create_app(sparse).test_client()
    stored = store.Entry.select().count()
    assert stored >= 3 * 100  # nearly every combination is an entry (one with nothing at all is not)
    for edition in ("", "/ar", "/es"):
        for path in ("/feeds/latest", "/feeds/section/politics"):
            seen = 0
            page = f"{edition}{path}.atom?limit=200"
            atom = client.get(page)
            assert atom.status_code == 200, (page, atom.data[:300])
            root = etree.fromstring(atom.data)
            for entry in root.iter(f"{ATOM}entry"):
                seen += 1
                # RFC 4287: id, title, updated; content or an alternate link; an author (or the feed's)
                assert entry.find(f"{ATOM}id").text and entry.find(f"{ATOM}updated").text
                assert entry.find(f"{ATOM}title") is not None
                alternate = [ln for ln in entry.iter(f"{ATOM}link") if ln.get("rel", "alternate") == "alternate"]
                assert alternate or entry.find(f"{ATOM}content") is not None
                assert entry.find(f"{ATOM}content") is not None or entry.find(f"{ATOM}summary") is not None
            assert seen > 100
            # Entries we had to date ourselves (first seen) never share atom:updated (a W3C warning).
            updated = [e.findtext(f"{ATOM}updated") for e in root.iter(f"{ATOM}entry")]
            assert len(updated) == len(set(updated)), page
            rss = client.get(f"{edition}{path}.rss?limit=200")
            assert rss.status_code == 200
            parsed = feedparser.parse(rss.data)
            assert not parsed.bozo and len(parsed.entries) == seen
            for e in parsed.entries:  # RSS 2.0: an item has a title or a description
                assert e.get("title") or e.get("description")
            js = client.get(f"{edition}{path}.json?limit=200")
            assert js.status_code == 200
            data = json.loads(js.data)
            jsonschema.validate(data, SCHEMA)
            assert len(data["items"]) == seen
            for it in data["items"]:  # JSON Feed 1.1: id, and content_html or content_text (a
                # bare headline's is empty: its title again would show twice)
                assert it["id"] and ("content_html" in it or "content_text" in it)
                assert it.get("content_html") or it.get("content_text") or it.get("summary") is None


def test_a_lone_surrogate_costs_one_character_not_the_feed(config_factory, tmp_path):
    (tmp_path / "samples").mkdir(exist_ok=True)
    (tmp_path / "samples" / "odd.rss").write_bytes(
        b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Odd</title>'
        b"<link>https://odd.example.org/</link><description>d</description>"
        b"<item><title>Bad &#xD800; char</title><link>https://odd.example.org/1</link></item>"
        b"<item><title>Also &#55296; and &#x0; and &#xFFFF;</title><link>https://odd.example.org/2</link></item>"
        b"<item><title>Fine &#x41; &#1575;</title><link>https://odd.example.org/3</link></item>"
        b"</channel></rss>")
    cfg = config_factory('[[sources]]\nid = "odd"\nname = "Odd"\nurl = "samples/odd.rss"\nsection = "live"\n')
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        [outcome] = c.collect().outcomes
    assert (outcome.outcome, outcome.new) == ("ok", 3), outcome.error
    titles = sorted(t for (t,) in store.Entry.select(store.Entry.title).tuples())
    assert titles == ["Also \ufffd and \ufffd and \ufffd", "Bad \ufffd char", "Fine A \u0627"]
