"""Editions that read as their own (issue 18): labels in each edition's words, right-to-left
bodies, feed identity, the latest feed without the ticker, bodies that only repeat their title,
related entries that are related, the directory and a page for every feed."""
from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from flask import Flask
from lxml import etree

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import load_config
from aggregator.errors import ConfigError
from feeds.labels import FSI, PDI, isolate
from feeds.select import repeats_title
from web.app import create_app

from .conftest import write_config

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"


@pytest.fixture
def made() -> Iterator[list[Flask]]:
    """The apps a test makes, their usage writers closed after it (each holds a connection to
    the store: left open, a run of tests on PostgreSQL runs out of connections)."""
    apps: list[Flask] = []
    yield apps
    for a in apps:
        a.extensions["feedhub.usage"].close()


def new_app(made: list[Flask], config) -> Flask:
    made.append(create_app(config))
    return made[-1]


@pytest.fixture
def app(collected, made):
    return new_app(made, collected)


def get(client, path: str) -> bytes:
    resp = client.get(path)
    assert resp.status_code == 200, (path, resp.status_code, resp.get_data(as_text=True)[:300])
    return resp.get_data()


# --- labels ------------------------------------------------------------------------------

def test_every_format_carries_the_editions_own_labels(app):
    with app.test_client() as c:
        rss = etree.fromstring(get(c, "/ar/feeds/section/news.rss"))
        assert rss.findtext("channel/title") == "غرفة أخبار المثال: أخبار"
        assert rss.findtext("channel/description").startswith("غرفة أخبار المثال: أخبار. أخبار وتحليلات")
        labels = {el.text for el in rss.findall("channel/item/category")}
        assert "أخبار" in labels or "سياسة" in labels or "اقتصاد" in labels
        assert not labels & {"News", "Politics", "Economy", "Middle East & North Africa"}
        atom = etree.fromstring(get(c, "/es/feeds/latest.atom"))
        assert atom.findtext(f"{ATOM}title") == "Redacción Ejemplo: Últimas noticias"
        sections = {el.get("label") for el in atom.findall(f"{ATOM}entry/{ATOM}category")
                    if el.get("scheme", "").endswith("/es/feeds/section/")}
        assert sections and sections <= {"Noticias", "Política", "Economía", "Deportes", "Arte y cultura", "Salud",
                                         "Miscelánea", "Tecnología", "Medio ambiente"}
        data = json.loads(get(c, "/ar/feeds/breaking.json"))
        assert data["title"] == "غرفة أخبار المثال: أخبار عاجلة"
        assert json.loads(get(c, "/feeds/latest.json"))["title"] == "Example Newsroom: Latest news"


def test_a_missing_translation_is_a_warning_naming_the_key_and_falls_back(tmp_path: Path, db_url: str, capsys,
                                                                          made):
    path = write_config(tmp_path, db_url)
    text = path.read_text(encoding="utf-8")
    text = text.replace('politics = { title = "Politics", titles = { ar = "سياسة", es = "Política" } }',
                        'politics = { title = "Politics", titles = { es = "Política" } }')
    text = re.sub(r'site_title = "غرفة أخبار المثال"\n', "", text)
    path.write_text(text, encoding="utf-8")
    cfg = load_config(path, environ={})
    assert "sections.news.subsections.politics.titles.ar: no العربية (ar) form; 'Politics' is shown" in cfg.warnings
    assert any(w.startswith("editions.ar.site_title:") for w in cfg.warnings)
    assert len(cfg.warnings) == 2
    from web.cli import main

    assert main(["--config", str(path), "check"]) == 0  # valid: the warnings are printed, one a line
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("warning: sections.news.subsections.politics.titles.ar:") and out[-1].endswith(
        "valid; 2 warning(s)")
    store.init_db(cfg.database_url)
    with Collector(cfg) as col:
        col.collect(source_ids=["cms-arabic"])
    with new_app(made, cfg).test_client() as c:
        title = etree.fromstring(get(c, "/ar/feeds/section/politics.rss")).findtext("channel/title")
    # the main edition's words, the English name isolated inside the right-to-left title
    assert title == f"{FSI}Example Newsroom{PDI} (العربية): Politics"


@pytest.mark.parametrize("change, message", [
    (('titles = { ar = "أخبار", es = "Noticias" }', 'titles = { ar = "أخبار", fr = "Nouvelles" }'),
     "sections.news.titles.fr: unknown edition 'fr'"),
    (('site_title = "Redacción Ejemplo"', 'site_title = "Redacción Ejemplo"\nlabels = { lastest = "x" }'),
     "editions.es.labels.lastest: unknown key; did you mean 'latest'?"),
    (('asia = { title = "Asia", titles', 'asia = { name = "Asia", titles'), "regions.asia.name: unknown key"),
    (('logo = "/static/logo.png"', 'logo = "logo.png"'), "site.logo: must be an absolute http(s) URL or a path"),
])
def test_bad_label_config_is_refused_with_the_key(tmp_path: Path, db_url: str, change: tuple[str, str],
                                                   message: str):
    path = write_config(tmp_path, db_url)
    text = path.read_text(encoding="utf-8")
    assert change[0] in text
    path.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert message in str(e.value)


def test_bidi_isolation_wraps_only_text_of_the_other_direction():
    assert isolate("Example Newsroom", "rtl") == f"{FSI}Example Newsroom{PDI}"
    assert isolate("العربية", "rtl") == "العربية"
    assert isolate("Gaza Strip", "ltr") == "Gaza Strip"
    assert isolate("قطاع غزة", "ltr") == f"{FSI}قطاع غزة{PDI}"
    assert isolate("2026", "rtl") == "2026"  # digits have no direction of their own


def test_arabic_bodies_are_right_to_left_in_every_format(app):
    with app.test_client() as c:
        data = json.loads(get(c, "/ar/feeds/latest.json"))
        bodies = [i["content_html"] for i in data["items"] if "content_html" in i]
        assert bodies and all(b.startswith('<div dir="rtl">') for b in bodies)
        rss = etree.fromstring(get(c, "/ar/feeds/latest.rss"))
        encoded = [el.text for el in rss.iter(CONTENT)]
        assert encoded and all(t.startswith('<div dir="rtl">') for t in encoded)
        atom = etree.fromstring(get(c, "/ar/feeds/latest.atom"))
        html_bodies = [el.text for el in atom.iter(f"{ATOM}content") if el.get("type") == "html"]
        assert html_bodies and all(t.startswith('<div dir="rtl">') for t in html_bodies)
        english = json.loads(get(c, "/feeds/latest.json"))["items"]
        assert not any(i.get("content_html", "").startswith("<div dir=") for i in english)


def test_feeds_carry_the_logo_and_icon(app):
    with app.test_client() as c:
        rss = etree.fromstring(get(c, "/feeds/latest.rss"))
        image = rss.find("channel/image")
        assert image.findtext("url") == "http://localhost/static/logo.png"
        assert image.findtext("title") == rss.findtext("channel/title")  # RSS: the same as the channel's
        assert image.findtext("link") == rss.findtext("channel/link")
        atom = etree.fromstring(get(c, "/ar/feeds/latest.atom"))
        assert atom.findtext(f"{ATOM}logo") == "http://localhost/static/logo.png"
        assert atom.findtext(f"{ATOM}icon") == "http://localhost/static/icon.png"
        data = json.loads(get(c, "/es/feeds/latest.json"))
        assert data["icon"] == data["favicon"] == "http://localhost/static/icon.png"
        assert get(c, "/static/logo.png").startswith(b"\x89PNG")
        assert get(c, "/static/icon.png").startswith(b"\x89PNG")


# --- the latest feed is not a ticker -----------------------------------------------------

def test_a_breaking_sources_entries_stay_out_of_latest_but_in_its_other_feeds(app, collected):
    ticker = store.Source.get(store.Source.key == "ticker")
    ticker_ids = {e.public_id for e in store.Entry.select().where(store.Entry.source == ticker)}
    assert len(ticker_ids) == 15
    with app.test_client() as c:
        latest = {i["id"] for i in json.loads(get(c, "/feeds/latest.json?limit=200"))["items"]}
        breaking = {i["id"] for i in json.loads(get(c, "/feeds/breaking.json?limit=200"))["items"]}
        live = {i["id"] for i in json.loads(get(c, "/feeds/section/live.json?limit=200"))["items"]}
    assert not latest & ticker_ids and ticker_ids <= breaking and ticker_ids <= live


def test_in_latest_changed_in_config_refiles_the_sources_entries(collected, made):
    path = collected.path
    text = path.read_text(encoding="utf-8")
    marker = 'breaking = true\ninterval = 60\n'
    assert marker in text
    path.write_text(text.replace(marker, marker + "in_latest = true\n", 1), encoding="utf-8")
    cfg = load_config(path, environ={})
    assert cfg.source("ticker").in_latest and not collected.source("ticker").in_latest
    app = new_app(made, collected)
    with app.test_client() as c:
        before = json.loads(get(c, "/feeds/latest.json?limit=200"))["items"]
        store.sync_sources(cfg)  # what collect, serve and a reload do with a changed config
        after = json.loads(get(c, "/feeds/latest.json?limit=200"))["items"]
    assert len(after) == len(before) + 15  # the feed changed with it (its counter was bumped)


def test_a_body_that_only_repeats_the_title_is_not_published(app):
    assert repeats_title("BREAKING: Bridge closed", "Bridge closed.")
    assert repeats_title("عاجل: انقطاع الكهرباء", "انقطاع الكهرباء")
    assert not repeats_title("Bridge closed", "Bridge closed after a collision on Tuesday")
    with app.test_client() as c:
        items = json.loads(get(c, "/feeds/breaking.json?limit=200"))["items"]
        one_liners = [i for i in items if not i.get("summary")]
        assert one_liners and all(i["content_text"] == "" and "content_html" not in i for i in one_liners)
        rss = feedparser.parse(io.BytesIO(get(c, "/feeds/breaking.rss?limit=200")))
        assert not rss.bozo
        titles = {i["title"] for i in one_liners}
        plain = [e for e in rss.entries if e.title in titles]
        assert plain and all("summary" not in e and "content" not in e for e in plain)


# --- related entries that are related ----------------------------------------------------

def _related_ids(client, path: str) -> dict[str, set[str]]:
    items = json.loads(get(client, path))["items"]
    return {i["id"]: {r["id"] for r in i["_feedhub"].get("related", [])} for i in items}


def test_a_sources_default_tag_does_not_relate_its_entries(app, collected):
    wire = store.Source.get(store.Source.key == "meridian-wire")
    wire_ids = {e.public_id for e in store.Entry.select().where(store.Entry.source == wire)}
    with app.test_client() as c:
        related = _related_ids(c, "/feeds/tag/wire.json?limit=200")
    assert set(related) == wire_ids  # every wire item is in the tag's feed ...
    # ... but "Wire" alone relates none of them: what relates them is a tag or dossier they share.
    tags = {e.public_id: {t.slug for t in store.Tag.select().join(store.EntryTag).where(
        store.EntryTag.entry == e.id)} - {"wire"} for e in store.Entry.select().where(store.Entry.source == wire)}
    coverage = {e.public_id: {c.coverage for c in store.EntryCoverage.select().where(store.EntryCoverage.entry == e.id)}
                for e in store.Entry.select().where(store.Entry.source == wire)}
    for entry, others in related.items():
        for other in others & wire_ids:
            assert tags[entry] & tags[other] or coverage[entry] & coverage[other], (entry, other)


def test_a_tag_on_most_recent_entries_does_not_relate_them(config_factory, tmp_path: Path, made):
    items = "".join(
        f"<item><title>Story {n}</title><link>https://desk.example.org/{n}</link>"
        f"<pubDate>{1 + n % 28:02d} Oct 2026 {n % 24:02d}:00:00 GMT</pubDate><category>Politics news</category>"
        + ("<category>Harbour</category>" if n % 40 == 0 else "")
        + "<description>Body.</description></item>" for n in range(160))
    (tmp_path / "samples").mkdir(exist_ok=True)
    (tmp_path / "samples" / "desk.rss").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title>'
        f"<link>https://desk.example.org/</link><description>d</description>{items}</channel></rss>",
        encoding="utf-8")
    cfg = config_factory('[[sources]]\nid = "desk"\nname = "Desk"\nurl = "samples/desk.rss"\nkind = "wire"\n')
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert c.collect().new == 160
    with new_app(made, cfg).test_client() as client:
        related = _related_ids(client, "/feeds/latest.json?limit=200")
    harbour = {f"https://desk.example.org/{n}" for n in range(0, 160, 40)}
    # "Politics news", on every entry, relates nothing; "Harbour", on four of them, relates those four
    assert {k for k, v in related.items() if v} == harbour
    assert all(related[k] <= harbour for k in harbour)


# --- the directory, the OPML and the feed pages ------------------------------------------

def test_the_directory_groups_non_empty_feeds_with_counts_and_newest(app):
    with app.test_client() as c:
        page = get(c, "/feeds/").decode()
        arabic = get(c, "/ar/feeds/").decode()
        spanish = get(c, "/es/feeds/").decode()
        assert client_status(c, "/feeds/section/infographs.rss") == 200  # an empty feed still answers
    assert '<html lang="en" dir="ltr">' in page and '<html lang="ar" dir="rtl">' in arabic
    for heading in ("Main feeds", "Sections", "Regions", "Coverage", "Tags", "Authors"):
        assert f">{heading}</h2>" in page
    for heading in ("الأقسام", "المناطق", "الوسوم"):
        assert f">{heading}</h2>" in arabic
    assert ">Secciones</h2>" in spanish and 'Redacción Ejemplo: Canales' in spanish
    assert "/feeds/section/infographs" not in page  # no entries: not listed
    assert 'href="http://localhost/feeds/section/politics"' in page  # the feed's page
    assert 'href="http://localhost/feeds/section/politics.atom"' in page
    assert 'href="http://localhost/feeds.opml"' in page and 'data-feed-filter' in page
    assert re.search(r"Entries: \d+ · Updated: <time", page)
    assert "Newest: <a href=" in page
    assert 'rel="alternate" type="application/rss+xml"' in page


def client_status(client, path: str) -> int:
    return client.get(path).status_code


def test_the_opml_lists_non_empty_feeds_in_each_editions_words(app):
    with app.test_client() as c:
        opml = etree.fromstring(get(c, "/feeds.opml"))
    urls = [o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")]
    assert "http://localhost/feeds/latest.atom" in urls
    assert not any("/section/infographs" in u for u in urls)
    arabic = next(o for o in opml.find("body") if o.get("text") == "العربية")
    assert {o.get("text") for o in arabic} >= {"الخلاصات الرئيسية", "الأقسام"}
    assert any(o.get("htmlUrl") == "http://localhost/ar/feeds/latest" for o in arabic.iter("outline"))


@pytest.mark.parametrize("path, title", [
    ("/feeds/latest", "Example Newsroom: Latest news"),
    ("/ar/feeds/latest", "غرفة أخبار المثال: آخر الأخبار"),
    ("/es/feeds/section/news", "Redacción Ejemplo: Noticias"),
    ("/feeds/region/europe", "Example Newsroom: Europe"),
    ("/feeds/coverage/climate-action", "Example Newsroom: Coverage: Climate Action"),
    ("/feeds/tag/wire", "Example Newsroom: Tag: Wire"),
    ("/feeds/author/amina-rahal", "Example Newsroom: Author: Amina Rahal"),
    ("/feeds/breaking", "Example Newsroom: Breaking news"),
])
def test_every_feed_has_a_page_for_people(app, path: str, title: str):
    with app.test_client() as c:
        resp = c.get(path)
        assert resp.status_code == 200 and resp.content_type == "text/html; charset=utf-8"
        page = resp.get_data(as_text=True)
        assert f"<h1>{title}</h1>" in page
        for fmt, kind in (("rss", "application/rss+xml"), ("atom", "application/atom+xml"),
                          ("json", "application/feed+json")):
            assert f'type="{kind}"' in page and f'value="http://localhost{path}.{fmt}?limit=20"' not in page
            assert f'value="http://localhost{path}.{fmt}"' in page  # the feed URL, exactly as it is
        assert "<article" in page and "<time" in page
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
        etag = resp.headers["ETag"]
        assert c.get(path, headers={"If-None-Match": etag}).status_code == 304


def test_feed_pages_answer_like_the_feeds_for_wrong_names(app):
    with app.test_client() as c:
        assert c.get("/feeds/section/no-such-section").status_code == 404
        assert c.get("/feeds/tag/no-such-tag").status_code == 404
        assert c.get("/xx/feeds/latest").status_code == 404
        assert c.get("/feeds/latest.xml").status_code == 404  # a format we do not make
        moved = c.get("/en/feeds/section/politics?region=europe")
        assert moved.status_code == 308 and moved.headers["Location"].endswith("/feeds/section/politics?region=europe")
        assert c.get("/feeds/section/politics?region=nowhere").status_code == 400
        filtered = get(c, "/feeds/section/news?region=europe").decode()
        assert 'value="http://localhost/feeds/section/news.rss?region=europe"' in filtered


def test_in_latest_changed_through_the_admin_api_refiles_a_store_managed_source(config_factory, made):
    from aggregator import admin

    actor = admin.Actor("tests", "admin", "cli")
    cfg = config_factory(sources="")  # no source in config.toml: the ticker is the store's own
    store.init_db(cfg.database_url)
    now = store.utcnow()
    admin.add_source(actor, {"id": "desk-ticker", "name": "Ticker", "url": "samples/breaking.rss",
                             "breaking": True}, cfg, now)
    with Collector(cfg) as col:
        assert col.collect().new == 15
    with new_app(made, cfg).test_client() as c:
        assert json.loads(get(c, "/feeds/latest.json"))["items"] == []  # a breaking source: not in latest
        done = admin.edit_source(actor, "desk-ticker", {"in_latest": True}, cfg, now)
        assert "en:latest" in done.topics
        assert len(json.loads(get(c, "/feeds/latest.json"))["items"]) == 15
        admin.edit_source(actor, "desk-ticker", {"in_latest": False}, cfg, now)
        assert json.loads(get(c, "/feeds/latest.json"))["items"] == []


def test_the_directories_kept_stay_bounded_whatever_hosts_ask(app):
    from web import public

    public._directories.clear()
    with app.test_client() as c:
        for n in range(public.DIRECTORY_KEYS + 10):
            assert c.get("/feeds/", headers={"Host": f"host{n}.example.org"}).status_code == 200
    assert len(public._directories) == public.DIRECTORY_KEYS
    assert ("en", f"http://host{public.DIRECTORY_KEYS + 9}.example.org") in public._directories  # the newest kept
