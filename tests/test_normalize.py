"""Pure normalisation rules, table-driven with inline data."""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone

import pytest

from aggregator.model import Category, Person, RawEntry, RawFeed, RawMedia
from aggregator.normalize import (
    Context,
    canonical_link,
    choose_id_rule,
    entry_dates,
    normalize_entry,
    normalize_feed,
    plain_text,
    public_id,
    sanitize_html,
    slugify,
    split_credit,
    truncate_words,
    xml_safe,
)
from aggregator.search import document

from .conftest import newsroom_config

NOW = datetime(2026, 11, 25, 12, 0)
CONFIG = newsroom_config()
CTX = Context.from_config(CONFIG)


@pytest.mark.parametrize("text, slug", [
    ("Gaza Strip", "gaza-strip"),
    ("Café Société", "cafe-societe"),
    ("  Arts & Culture ", "arts-culture"),
    ("Ürün Fiyatları", "urun-fiyatlari"),
    ("الطاقة المتجددة", "الطاقة-المتجددة"),
    ("مَعْرِضُ الكِتَاب", "معرض-الكتاب"),  # harakat are not part of a slug
    ("COVID-19", "covid-19"),
    ("Ñandú", "nandu"),
    ("Øresund Straße", "oresund-strasse"),
    ("!!!", ""),
])
def test_slugify(text: str, slug: str):
    assert slugify(text) == slug


@pytest.mark.parametrize("link, base, expected", [
    ("https://News.Example.org/a?utm_source=rss&utm_medium=x&id=3#top", None, "https://news.example.org/a?id=3"),
    ("/story/1?fbclid=abc&gclid=d", "https://n.example.org/feed", "https://n.example.org/story/1"),
    ("javascript:alert(1)", None, None),
    ("mailto:desk@example.org", None, None),
    ("", None, None),
    ("relative/only", None, None),
    ("https://n.example.org", None, "https://n.example.org/"),
])
def test_canonical_link(link, base, expected):
    assert canonical_link(link, base) == expected


@pytest.mark.parametrize("value, is_html, expected", [
    ("<p>Hello <b>world</b></p>", True, "Hello world"),
    ("Fish &amp; chips &lt;3", True, "Fish & chips <3"),
    ("a\n\n  b\tc", False, "a b c"),
    ("<script>alert(1)</script>Title", True, "Title"),
    ("bad\x00\x08char\ufffe", False, "badchar"),
    ("lone \ud800 surrogate", False, "lone surrogate"),
    ("<iframe><script>alert(1)</script>", True, "alert(1)"),  # raw text inside an iframe
    ("&amp;lt;script&amp;gt;x", True, "&lt;script&gt;x"),  # escaped twice: shows as text, never a tag
    ("<iframe><a onclick=alert(1)", True, "< a onclick=alert(1)"),  # an unterminated tag cannot open
    ("Team A <Team B", False, "Team A < Team B"),
    ("a < b and c > d", True, "a < b and c > d"),
    (None, True, ""),
])
def test_plain_text(value, is_html, expected):
    assert plain_text(value, is_html) == expected


def test_xml_safe_keeps_every_allowed_character():
    allowed = "tab\tnl\ncr\r é ع 😀 \ue000"
    assert xml_safe(allowed) == allowed


@pytest.mark.parametrize("html, expected", [
    ('<p onclick="x()">Hi</p><script>bad()</script>', "<p>Hi</p>"),
    ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
    ('<a href="/more">more</a>', '<a href="https://n.example.org/more" rel="noopener noreferrer">more</a>'),
    ('<img src="pic.jpg" alt="A pic" onerror="x()">', '<img src="https://n.example.org/pic.jpg" alt="A pic">'),
    ('<iframe src="https://evil.example.org"></iframe><p>ok</p>', "<p>ok</p>"),
    ('<figure><img src="https://n.example.org/i.jpg"><figcaption>Cap</figcaption></figure>',
     '<figure><img src="https://n.example.org/i.jpg"><figcaption>Cap</figcaption></figure>'),
    ('<table><tr><td colspan="2" style="color:red">x</td></tr></table>',
     '<table><tbody><tr><td colspan="2">x</td></tr></tbody></table>'),
    ("<style>p{}</style><!-- c --><p>t</p>", "<p>t</p>"),
])
def test_sanitize_html(html, expected):
    assert sanitize_html(html, base="https://n.example.org/feed") == expected


@pytest.mark.parametrize("caption, credit, expected", [
    ("Council chamber (AP)", None, ("Council chamber", "AP")),
    ("Council chamber (AP)", "Photo Desk", ("Council chamber (AP)", "Photo Desk")),
    ("Just a caption", None, ("Just a caption", None)),
    ("(AP)", None, ("(AP)", None)),
    (None, None, (None, None)),
])
def test_split_credit(caption, credit, expected):
    assert split_credit(caption, credit) == expected


def test_truncate_words():
    assert truncate_words("short", 10) == "short"
    assert truncate_words("one two three four", 12) == "one two…"


def test_public_id():
    assert public_id("https://n.example.org/1", "cms", "n.example.org,2026") == "https://n.example.org/1"
    assert public_id("tag:n.example.org,2026:1", "cms", "n.example.org,2026") == "tag:n.example.org,2026:1"
    made = public_id("cms-4", "cms", "n.example.org,2026")
    assert made.startswith("tag:n.example.org,2026:cms/") and made == public_id("cms-4", "cms", "n.example.org,2026")
    assert public_id("cms-4", "wire", "n.example.org,2026") != made  # per source


def test_dates_missing_future_and_updated():
    utc = timezone.utc
    d = entry_dates(RawEntry(), NOW)
    assert (d.published, d.updated, d.missing, d.clamped) == (NOW, NOW, True, False)
    far = RawEntry(published=datetime(2030, 1, 1, tzinfo=utc))
    d = entry_dates(far, NOW)
    assert (d.published, d.updated, d.missing, d.clamped) == (NOW, NOW, False, True)
    near = RawEntry(published=(NOW + timedelta(minutes=5)).replace(tzinfo=utc))
    d = entry_dates(near, NOW)
    assert d.published == NOW + timedelta(minutes=5) and not d.clamped  # within tolerance
    both = RawEntry(published=datetime(2026, 11, 20, 10, tzinfo=utc), updated=datetime(2026, 11, 20, 9, tzinfo=utc))
    assert entry_dates(both, NOW).updated == datetime(2026, 11, 20, 10)  # updated never before published


def test_raw_dates_are_kept_and_made_up_dates_do_not_churn():
    source = CONFIG.source("cms-news")
    raw = _entry(published=datetime(2031, 1, 1, tzinfo=timezone.utc), published_raw="Wed, 01 Jan 2031 00:00:00 GMT")
    first = normalize_entry(raw, RawFeed(format="rss20"), source, CTX, NOW)
    later = normalize_entry(raw, RawFeed(format="rss20"), source, CTX, NOW + timedelta(hours=1))
    assert first.date_clamped and first.published == NOW and first.published_raw == "Wed, 01 Jan 2031 00:00:00 GMT"
    assert first.fingerprint == later.fingerprint  # the clamped "now" is not a change


def _entry(**kw) -> RawEntry:
    defaults = dict(guid="g1", link="https://n.example.org/1", title="Title", summary="Summary")
    defaults.update(kw)
    return RawEntry(**defaults)


def test_normalize_entry_classifies_and_cleans():
    source = CONFIG.source("cms-news")
    raw = _entry(
        title="<b>Budget</b> approved", title_is_html=True,
        content='<p>Body text here.</p><img src="https://n.example.org/i.jpg" alt="Chamber (AP)">',
        categories=[Category("politics"), Category("Europe"), Category("Budget"), Category("Breaking")],
        authors=[Person("By Amina Rahal and Tomasz Wren")],
        published=datetime(2026, 11, 20, 10, tzinfo=timezone.utc),
    )
    e = normalize_entry(raw, RawFeed(format="rss20", language="en"), source, CTX, NOW)
    assert e.title == "Budget approved"
    assert e.section == "politics" and e.regions == ("europe",)
    assert [t.slug for t in e.tags] == ["budget"]
    assert e.breaking  # a "Breaking" category marks it, and is not a tag
    assert [(a.name, a.slug) for a in e.authors] == [("Amina Rahal", "amina-rahal"), ("Tomasz Wren", "tomasz-wren")]
    (img,) = e.media  # the first image of the body becomes the lead, caption/credit split
    assert (img.kind, img.lead, img.caption, img.credit) == ("image", True, "Chamber", "AP")
    assert e.edition == "en" and e.language == "en" and e.reading_time == 1
    assert e.published == datetime(2026, 11, 20, 10)
    # its search words are made here (a parse worker), as the store would make them
    assert e.words is not None and e.words.split() == document(e.title, e.summary) == ["budget", "approved", "summary"]


def test_relative_links_in_bodies_resolve_against_the_feeds_location():
    from aggregator.parse import parse_feed

    from .test_parse import RSS_20

    feed = parse_feed(RSS_20, url="https://c.example.org/feed.rss")
    e = normalize_entry(feed.entries[0], feed, CONFIG.source("cms-news"), CTX, NOW)
    assert e.content == '<p>Body <a href="https://c.example.org/more" rel="noopener noreferrer">more</a></p>'
    assert e.link == "https://c.example.org/4"


def test_source_defaults_and_edition_from_language():
    source = CONFIG.source("meridian-wire")
    e = normalize_entry(_entry(language="es"), RawFeed(format="rss10"), source, CTX, NOW)
    assert e.section == "news" and e.tags[0].slug == "wire" and e.origin == "Meridian Wire"
    assert e.edition == "es"  # a Spanish entry belongs to the Spanish edition
    ar = normalize_entry(_entry(), RawFeed(format="atom10", language="ar"), source, CTX, NOW)
    assert ar.edition == "ar" and ar.language == "ar"


def test_titles_lose_markup_even_when_called_text():
    source = CONFIG.source("cms-news")
    e = normalize_entry(_entry(title="<script>alert(1)</script><b>Budget</b> &amp; tax < 2%", title_is_html=False),
                        RawFeed(format="rss20"), source, CTX, NOW)
    assert e.title == "Budget & tax < 2%"


def test_breaking_by_prefix_per_language():
    source = CONFIG.source("cms-news")
    feed = RawFeed(format="rss20")
    assert normalize_entry(_entry(title="BREAKING: Storm"), feed, source, CTX, NOW).breaking
    assert normalize_entry(_entry(title="عاجل: عاصفة", language="ar"), feed, source, CTX, NOW).breaking
    assert normalize_entry(_entry(title="ÚLTIMA HORA: Tormenta", language="es"), feed, source, CTX, NOW).breaking
    assert not normalize_entry(_entry(title="Storm breaking records"), feed, source, CTX, NOW).breaking
    assert normalize_entry(_entry(), feed, CONFIG.source("ticker"), CTX, NOW).breaking  # breaking source


def test_identity_fallbacks():
    source = CONFIG.source("cms-news")
    feed = RawFeed(format="rss20")
    by_link = normalize_entry(_entry(guid=None, link="https://n.example.org/x?utm_source=a"), feed, source, CTX, NOW)
    assert by_link.guid == "https://n.example.org/x"
    by_hash = normalize_entry(_entry(guid=None, link=None, published_raw="Fri"), feed, source, CTX, NOW)
    assert by_hash.guid.startswith("sha256:") and by_hash.public_id.startswith("tag:news.example.org,2026:cms-news/")


def test_unchanged_entry_has_the_same_fingerprint_even_without_a_date():
    source = CONFIG.source("cms-news")
    feed = RawFeed(format="rss20")
    first = normalize_entry(_entry(), feed, source, CTX, NOW)
    later = normalize_entry(_entry(), feed, source, CTX, NOW + timedelta(hours=1))
    assert first.date_missing and first.fingerprint == later.fingerprint
    changed = normalize_entry(_entry(summary="New summary"), feed, source, CTX, NOW)
    assert changed.fingerprint != first.fingerprint


def test_duplicate_guid_in_one_feed_keeps_the_first():
    feed = RawFeed(format="rss20", entries=[_entry(title="First"), _entry(title="Second")])
    entries, warnings = normalize_feed(feed, CONFIG.source("cms-news"), CTX, NOW)
    assert [e.title for e in entries] == ["First"]
    assert warnings == ["duplicate id 'g1' in one feed; kept the first"]


def test_figcaption_gives_caption_and_credit():
    body = ('<figure><img src="https://n.example.org/i.jpg" alt="short alt">'
            '<figcaption>صورة من موقع الحدث (وكالة ميريديان)</figcaption></figure><p>نص</p>')
    e = normalize_entry(_entry(content=body), RawFeed(format="atom10"), CONFIG.source("cms-arabic"), CTX, NOW)
    (img,) = e.media
    assert (img.caption, img.credit, img.lead) == ("صورة من موقع الحدث", "وكالة ميريديان", True)
    with_media = _entry(content=body, media=[RawMedia("https://n.example.org/i.jpg", medium="image")])
    (img,) = normalize_entry(with_media, RawFeed(format="rss20"), CONFIG.source("cms-news"), CTX, NOW).media
    assert img.caption == "صورة من موقع الحدث"  # fills a caption media:content did not give


def test_media_lead_prefers_full_image_over_thumbnail():
    raw = _entry(media=[RawMedia("https://n.example.org/t.jpg", medium="image", origin="media:thumbnail"),
                        RawMedia("https://n.example.org/full.jpg", medium="image", origin="media:content"),
                        RawMedia("https://n.example.org/a.mp3", type="audio/mpeg", length=10),
                        RawMedia("javascript:x()", medium="image")])
    e = normalize_entry(raw, RawFeed(format="rss20"), CONFIG.source("cms-news"), CTX, NOW)
    assert [(m.url.rsplit("/", 1)[1], m.kind, m.lead) for m in e.media] == [
        ("full.jpg", "image", True), ("a.mp3", "audio", False), ("t.jpg", "image", False)]


def _feed(*items: tuple[str | None, str | None, str]) -> RawFeed:
    return RawFeed(format="rss20", entries=[RawEntry(guid=g, link=link, title=t) for g, link, t in items])


def test_identity_rule_stays_on_guids_that_work():
    feed = _feed(("a", "https://n.example.org/1", "One"), ("b", "https://n.example.org/2", "Two"))
    assert choose_id_rule(feed, CONFIG.source("cms-news"), "guid", {"https://n.example.org/1": "a"}) == ("guid", None)


def test_one_guid_on_different_links_falls_back_to_links():
    feed = _feed(("same", "https://n.example.org/1", "One"), ("same", "https://n.example.org/2", "Two"))
    rule, reason = choose_id_rule(feed, CONFIG.source("cms-news"), "guid", {})
    assert rule == "link" and "guid 'same' is used for 2 different links" in reason
    entries, _ = normalize_feed(feed, CONFIG.source("cms-news"), CTX, NOW, rule)
    assert [e.guid for e in entries] == ["https://n.example.org/1", "https://n.example.org/2"]  # both kept


def test_guids_that_change_on_every_fetch_fall_back_to_links():
    links = [f"https://n.example.org/{n}" for n in range(4)]
    feed = _feed(*((f"fresh-{n}", link, f"T{n}") for n, link in enumerate(links)))
    previous = {link: f"old-{n}" for n, link in enumerate(links)}
    rule, reason = choose_id_rule(feed, CONFIG.source("cms-news"), "guid", previous)
    assert rule == "link" and "guids change on every fetch (4 of 4 known links came with a new guid)" in reason
    assert choose_id_rule(feed, CONFIG.source("cms-news"), "guid", dict(list(previous.items())[:2]))[0] == "guid"


def test_one_link_for_different_entries_falls_back_to_title_and_date():
    feed = _feed((None, "https://n.example.org/", "One"), (None, "https://n.example.org/", "Two"))
    rule, reason = choose_id_rule(feed, CONFIG.source("cms-news"), "link", {})
    assert rule == "hash" and "is used for 2 different entries" in reason
    entries, _ = normalize_feed(feed, CONFIG.source("cms-news"), CTX, NOW, rule)
    assert len({e.guid for e in entries}) == 2 and all(e.guid.startswith("sha256:") for e in entries)


def test_ordered_rules_file_tag_flag_and_filter_entries():
    from aggregator.config import Rule

    rules = (Rule(0, keyword="storm", section="environment", tag="Weather"),
             Rule(1, pattern="*airport*", section="economy", breaking=True),
             Rule(2, category="Opinion", region="europe"),
             Rule(3, category="sponsored", action="drop"))
    source = dataclasses.replace(CONFIG.source("cms-news"), rules=rules)
    feed = RawFeed(format="rss20")

    def run(**kw):
        return normalize_entry(_entry(**kw), feed, source, CTX, NOW)

    storm = run(title="Storm closes the airport")  # two rules match: the first section wins
    assert storm.section == "environment" and [t.slug for t in storm.tags] == ["weather"] and storm.breaking
    assert storm.rule_trace == ("rule 1 (keyword 'storm')", "rule 2 (pattern '*airport*')")
    assert run(title="Airport reopens").section == "economy"
    assert run(categories=[Category("opinion")]).regions == ("europe",)  # categories compare by slug
    assert run(categories=[Category("Sponsored")]).dropped
    assert not run(title="Quiet day").rule_trace and run(title="Quiet day").section == "news"
    keep_only = dataclasses.replace(source, rules=(Rule(0, keyword="budget", action="keep"),))
    assert normalize_entry(_entry(title="Budget vote"), feed, keep_only, CTX, NOW).dropped is False
    dropped = normalize_entry(_entry(title="Other news"), feed, keep_only, CTX, NOW)
    assert dropped.dropped and dropped.rule_trace == ("no keep rule matched",)
    entries, _ = normalize_feed(RawFeed(format="rss20", entries=[_entry(guid="a", title="Budget vote"),
                                                                 _entry(guid="b", title="Other")]),
                                keep_only, CTX, NOW)
    assert [e.guid for e in entries] == ["a"]


@pytest.mark.parametrize("keyword,match,text,expected", [
    ("port", None, "The port reopens", True),
    ("port", None, "Airport expansion and quarterly reports", False),  # not inside other words
    ("port", None, "PORT, harbour and quay", True),
    ("port", "substring", "Airport expansion", True),  # asked for explicitly
    ("gaza strip", None, "Aid reaches the Gaza Strip today", True),
    ("ميناء", None, "افتتاح ميناء جديد في المدينة", True),  # Arabic words have boundaries too
    ("ميناء", None, "موانئ وميناءات", False),
    ("café", None, "Le Café Société ouvre", True),
])
def test_keyword_rules_match_whole_words_unless_asked(keyword, match, text, expected):
    from aggregator.config import Rule
    from aggregator.normalize import rule_matches

    assert rule_matches(Rule(0, keyword=keyword, match=match, tag="x"), RawEntry(), text, "") is expected


def test_patterns_are_bounded_wildcards_not_regular_expressions():
    from aggregator.config import Rule
    from aggregator.normalize import rule_matches

    rule = Rule(0, pattern="BREAKING*(?)*", section="live")
    assert rule_matches(rule, RawEntry(), "Breaking: storm (X) today", "")
    assert not rule_matches(Rule(0, pattern="a.c", tag="x"), RawEntry(), "abc", "")  # '.' is literal


def test_a_forbidden_character_cannot_hide_a_tag_opening():
    # Found by the property test: "\x08" between "<" and "?" was removed after the "<" check.
    for raw, is_html in (("0<\x08?", False), ("a <\x0bb onclick=x>", True), ("&lt;\x08script&gt;", True)):
        text = plain_text(raw, is_html)
        assert not re.search(r"<[A-Za-z!/?]", text), (raw, text)
        assert "\x08" not in text and "\x0b" not in text
