"""Every public feed of the sample newsroom, in every format and edition, parsed back and checked.

Expected entries come from two independent places: the sample files themselves
(read here with feedparser/json, not through feedhub) for the latest feeds and
one fully checked entry, and direct store counts for every filtered feed.
"""
from __future__ import annotations

import dataclasses
import io
import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import feedparser
import jsonschema
import pytest
from lxml import etree

from aggregator import store
from aggregator.config import Config

from .conftest import SAMPLES

SCHEMA = json.loads((Path(__file__).parent / "data" / "jsonfeed-1.1.schema.json").read_text())
ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
FORMATS = {"rss": "application/rss+xml; charset=utf-8", "atom": "application/atom+xml; charset=utf-8",
           "json": "application/feed+json; charset=utf-8"}
#: the sample files whose entries are in each edition's latest feed (the ticker's are not:
#: a breaking source's entries are in breaking, section and tag feeds only)
EDITION_FILES = {"en": ["cms-news.rss", "cms-articles.atom", "wire-agency.rdf", "partner-outlet.json"],
                 "ar": ["arabic-edition.atom"], "es": ["spanish-edition.rss"]}


def prefix(edition: str) -> str:
    return "" if edition == "en" else f"/{edition}"


def sample_entries(edition: str) -> list[tuple[datetime, str]]:
    """(published, title) of every sample entry of an edition, read without feedhub."""
    out = []
    for name in EDITION_FILES[edition]:
        body = (SAMPLES / name).read_bytes()
        if name.endswith(".json"):
            for item in json.loads(body)["items"]:
                out.append((datetime.fromisoformat(item["date_published"]), item["title"]))
            continue
        for e in feedparser.parse(io.BytesIO(body)).entries:
            parsed = e.get("published_parsed") or e.get("updated_parsed")
            out.append((datetime(*parsed[:6], tzinfo=timezone.utc), e.title))
    return out


def get_json(client, url: str) -> dict:
    resp = client.get(url)
    assert resp.status_code == 200, (url, resp.get_data(as_text=True))
    data = json.loads(resp.get_data())
    jsonschema.validate(data, SCHEMA)
    return data


def all_feed_paths(edition: str, config: Config) -> list[str]:
    E = store.Entry
    paths = ["latest", "breaking"]
    paths += [f"section/{s}" for s in config.taxonomy.sections]
    paths += [f"region/{r}" for r in config.taxonomy.regions]
    paths += [f"coverage/{c}" for c in config.taxonomy.coverage]
    tags = (store.Tag.select(store.Tag.slug).join(store.EntryTag).join(E).where(E.edition == edition).distinct())
    paths += [f"tag/{quote(t.slug)}" for t in tags]
    authors = (store.Author.select(store.Author.slug).join(store.EntryAuthor).join(E)
               .where(E.edition == edition).distinct())
    paths += [f"author/{quote(a.slug)}" for a in authors]
    return [f"{prefix(edition)}/feeds/{p}" for p in paths]


def expected_count(path: str, edition: str, config: Config) -> int:
    """How many entries the feed at ``path`` holds, counted straight from the store."""
    E = store.Entry
    q = E.select().where(E.edition == edition)
    kind_slug = path.split("/feeds/", 1)[1]
    kind, _, slug = kind_slug.partition("/")
    from urllib.parse import unquote
    slug = unquote(slug)
    if kind == "breaking":
        q = q.where(E.breaking == True)  # noqa: E712
    elif kind == "section":
        q = q.where(E.section.in_(config.taxonomy.section_family(slug)))
    elif kind == "region":
        q = q.join(store.EntryRegion).where(store.EntryRegion.region == slug)
    elif kind == "tag":
        q = q.join(store.EntryTag).join(store.Tag).where(store.Tag.slug == slug)
    elif kind == "author":
        q = q.join(store.EntryAuthor).join(store.Author).where(store.Author.slug == slug)
    elif kind == "coverage":
        q = q.join(store.EntryCoverage).where(store.EntryCoverage.coverage == slug)
    return min(q.count(), 50)


@pytest.mark.parametrize("edition", ["en", "ar", "es"])
def test_every_public_feed_in_every_format(client, newsroom: Config, edition: str):
    checked = 0
    for path in all_feed_paths(edition, newsroom):
        want = expected_count(path, edition, newsroom)
        data = get_json(client, f"{path}.json")
        ids = [i["id"] for i in data["items"]]
        assert len(ids) == want, path
        assert data["language"] == newsroom.editions[edition].language
        dates = [i["date_published"] for i in data["items"]]
        assert dates == sorted(dates, reverse=True), f"{path}: not newest first"
        for fmt in ("rss", "atom"):
            resp = client.get(f"{path}.{fmt}")
            assert resp.status_code == 200 and resp.content_type == FORMATS[fmt], path
            parsed = feedparser.parse(io.BytesIO(resp.get_data()))
            assert not parsed.bozo, (path, fmt, parsed.bozo_exception)
            assert parsed.version == ("rss20" if fmt == "rss" else "atom10")
            assert [e.id for e in parsed.entries] == ids, f"{path}.{fmt}: entries differ from JSON"
            assert parsed.feed.language == newsroom.editions[edition].language
        checked += 1
    assert checked >= {"en": 60, "ar": 40, "es": 40}[edition]


@pytest.mark.parametrize("edition", ["en", "ar", "es"])
def test_latest_feed_matches_the_sample_files(client, edition: str):
    expected = [t for _, t in sorted(sample_entries(edition), key=lambda x: x[0], reverse=True)][:50]
    data = get_json(client, f"{prefix(edition)}/feeds/latest.json")
    assert [i["title"] for i in data["items"]] == expected
    rss = feedparser.parse(io.BytesIO(client.get(f"{prefix(edition)}/feeds/latest.rss").get_data()))
    assert [e.title for e in rss.entries] == expected
    atom = feedparser.parse(io.BytesIO(client.get(f"{prefix(edition)}/feeds/latest.atom").get_data()))
    assert [e.title for e in atom.entries] == expected


def first_cms_item() -> dict:
    """The first item of the CMS's RSS sample, read with lxml (the oracle for one full entry)."""
    root = etree.parse(str(SAMPLES / "cms-news.rss")).getroot()
    item = root.find("channel/item")
    dc = "{http://purl.org/dc/elements/1.1/}"
    media = item.find(f"{MEDIA}content")
    return {
        "title": item.findtext("title"),
        "link": item.findtext("link").split("?")[0],
        "guid": item.findtext("guid"),
        "summary": item.findtext("description"),
        "authors": [a.text for a in item.findall(f"{dc}creator")],
        "categories": [c.text for c in item.findall("category")],
        "published": parsedate_to_datetime(item.findtext("pubDate")),
        "image": media.get("url"),
        "caption": media.findtext(f"{MEDIA}description"),
        "credit": media.findtext(f"{MEDIA}credit"),
    }


def test_one_entry_keeps_every_field_in_every_format(client, newsroom: Config):
    want = first_cms_item()
    section = want["categories"][0]
    region = want["categories"][1]
    url = f"/feeds/section/{section}"
    # JSON Feed
    data = get_json(client, f"{url}.json?limit=200")
    (item,) = [i for i in data["items"] if i["id"] == want["guid"]]
    assert item["url"] == want["link"] and item["title"] == want["title"]
    assert item["summary"] == want["summary"]
    assert item["content_html"].startswith("<figure><img")
    assert item["image"] == want["image"]
    assert [a["name"] for a in item["authors"]] == want["authors"]
    assert item["date_published"] == want["published"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert item["_feedhub"]["section"] == section and item["_feedhub"]["regions"] == [region]
    assert item["_feedhub"]["image_caption"] == want["caption"]
    assert item["_feedhub"]["image_credit"] == want["credit"]
    assert set(item["tags"]) == set(want["categories"][2:])
    # RSS 2.0
    body = client.get(f"{url}.rss?limit=200").get_data()
    (e,) = [e for e in feedparser.parse(io.BytesIO(body)).entries if e.id == want["guid"]]
    assert e.link == want["link"] and e.title == want["title"] and e.summary == want["summary"]
    assert not e.guidislink  # the guid is not the item's link, so isPermaLink="false"
    assert [a["name"] for a in e.authors] == want["authors"]
    assert e.content[0]["value"].startswith("<figure><img")
    terms = {(t["scheme"], t["term"]) for t in e.tags}
    assert ("http://localhost/feeds/section/", newsroom.taxonomy.sections[section].title) in terms
    assert datetime(*e.published_parsed[:6], tzinfo=timezone.utc) == want["published"]
    rss_item = [i for i in etree.fromstring(body).iter("item") if i.findtext("guid") == want["guid"]][0]
    content = rss_item.find(f"{MEDIA}content")
    assert content.get("url") == want["image"] and content.get("isDefault") == "true"
    assert content.findtext(f"{MEDIA}description") == want["caption"]
    assert content.findtext(f"{MEDIA}credit") == want["credit"]
    assert rss_item.find(f"{MEDIA}thumbnail").get("url") == want["image"]
    # Atom 1.0
    body = client.get(f"{url}.atom?limit=200").get_data()
    (a,) = [a for a in feedparser.parse(io.BytesIO(body)).entries if a.id == want["guid"]]
    assert a.link == want["link"] and a.summary == want["summary"]
    assert a.content[0]["type"] == "text/html"
    assert [x["name"] for x in a.authors] == want["authors"]
    assert {(t["term"], t["label"]) for t in a.tags} >= {(section, newsroom.taxonomy.sections[section].title),
                                                          (region, newsroom.taxonomy.regions[region])}


def test_arabic_is_byte_exact_and_declared_in_every_format(client):
    title = "مَعْرِضُ الكِتَابِ يَفْتَحُ أَبْوَابَهُ لِلزُّوَّارِ فِي دَوْرَتِهِ العَاشِرَة"
    for fmt in FORMATS:
        body = client.get(f"/ar/feeds/latest.{fmt}").get_data()
        assert title.encode("utf-8") in body, fmt
    assert b"<language>ar</language>" in client.get("/ar/feeds/latest.rss").get_data()
    root = etree.fromstring(client.get("/ar/feeds/latest.atom").get_data())
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "ar"
    tag = quote("الكتب")
    data = get_json(client, f"/ar/feeds/tag/{tag}.json")
    assert data["items"] and all("الكتب" in i["tags"] for i in data["items"])


def test_feed_date_is_the_newest_entry_change_not_the_render_time(client):
    data = get_json(client, "/feeds/latest.json")
    newest = max(i["date_modified"] for i in data["items"])
    resp = client.get("/feeds/latest.atom")
    root = etree.fromstring(resp.get_data())
    assert root.findtext(f"{ATOM}updated") == newest.replace("Z", "+00:00")
    rss = etree.fromstring(client.get("/feeds/latest.rss").get_data())
    assert parsedate_to_datetime(rss.findtext("channel/lastBuildDate")) == datetime.fromisoformat(newest)
    assert resp.last_modified == datetime.fromisoformat(newest)
    # an empty feed still has a stable date: the newest change in its edition
    empty = client.get("/feeds/section/infographs.atom")
    assert etree.fromstring(empty.get_data()).findtext(f"{ATOM}updated") == newest.replace("Z", "+00:00")


def test_self_links_are_absolute_and_name_the_feed(client, newsroom: Config):
    url = "/feeds/region/europe.rss?limit=5&tag=climate"
    rss = etree.fromstring(client.get(url).get_data())
    self_link = rss.find(f"channel/{ATOM}link[@rel='self']").get("href")
    assert self_link == "http://localhost" + url  # exactly the URL it was fetched from
    atom = etree.fromstring(client.get(url.replace(".rss", ".atom")).get_data())
    assert atom.find(f"{ATOM}link[@rel='self']").get("href").startswith("http://localhost/feeds/region/europe.atom?")
    assert get_json(client, url.replace(".rss", ".json"))["feed_url"].startswith("http://localhost/")
    # with a configured public base URL, every link uses it
    from web import create_app

    cfg = dataclasses.replace(newsroom, server=dataclasses.replace(newsroom.server,
                                                                   base_url="https://feeds.example.org"))
    with create_app(cfg).test_client() as other:
        data = json.loads(other.get("/ar/feeds/latest.json").get_data())
    assert data["feed_url"] == "https://feeds.example.org/ar/feeds/latest.json"


@pytest.mark.parametrize("query, status, message", [
    ("limit=5", 200, None),
    ("limit=200", 200, None),
    ("limit=0", 400, "limit must be a whole number from 1 to 200, got '0'"),
    ("limit=201", 400, "limit must be a whole number from 1 to 200, got '201'"),
    ("limit=ten", 400, "got 'ten'"),
    ("limit=-3", 400, "got '-3'"),
    ("region=atlantis", 400, "region filter: unknown region 'atlantis'"),
    ("section=weather", 400, "section filter: unknown section 'weather'"),
    ("tag=no-such-tag", 400, "tag filter: unknown tag 'no-such-tag'"),
])
def test_query_parameters(client, query: str, status: int, message: str | None):
    resp = client.get(f"/feeds/latest.json?{query}")
    assert resp.status_code == status
    if message:
        error = json.loads(resp.get_data())["error"]
        assert error["status"] == status and message in error["message"]
        html = client.get(f"/feeds/latest.rss?{query}", headers={"Accept": "text/html"})
        assert html.status_code == status and message.replace("'", "&#39;") in html.get_data(as_text=True)


def test_limit_default_and_value(client):
    assert len(get_json(client, "/feeds/latest.json")["items"]) == 50
    assert len(get_json(client, "/feeds/latest.json?limit=7")["items"]) == 7
    assert len(get_json(client, "/feeds/latest.json?limit=200")["items"]) == 110  # the ticker's are not in it


@pytest.mark.parametrize("url, message", [
    ("/feeds/section/weather.rss", "unknown section 'weather'"),
    ("/feeds/region/atlantis.atom", "unknown region 'atlantis'"),
    ("/feeds/tag/no-such-tag.json", "unknown tag 'no-such-tag'"),
    ("/feeds/author/nobody.rss", "unknown author 'nobody'"),
    ("/fr/feeds/latest.rss", "unknown edition 'fr'"),
    ("/feeds/latest.xml", "unknown feed format"),
    ("/feeds/everything.rss", "unknown feed 'everything'"),
    ("/feeds/topic/x.rss", "unknown feed kind 'topic'"),
])
def test_unknown_feeds_are_404_with_a_clear_message(client, url: str, message: str):
    resp = client.get(url)
    assert resp.status_code == 404
    if url.endswith(".json"):  # API clients get JSON
        assert message in json.loads(resp.get_data())["error"]["message"]
    else:
        assert resp.content_type == "text/html; charset=utf-8"
        assert message.replace("'", "&#39;") in resp.get_data(as_text=True)


def test_filters_intersect(client, newsroom: Config):
    data = get_json(client, "/feeds/section/news.json?region=mena&limit=200")
    family = set(newsroom.taxonomy.section_family("news"))
    assert data["items"]
    for item in data["items"]:
        assert item["_feedhub"]["section"] in family and "mena" in item["_feedhub"]["regions"]
    E = store.Entry
    count = (E.select().join(store.EntryRegion)
             .where(E.edition == "en", E.section.in_(list(family)), store.EntryRegion.region == "mena").count())
    assert len(data["items"]) == count


def test_conditional_get_and_head(client):
    first = client.get("/feeds/breaking.rss")
    assert first.headers["Cache-Control"] == "public, max-age=30"
    assert client.get("/feeds/latest.rss").headers["Cache-Control"] == "public, max-age=300"
    again = client.get("/feeds/breaking.rss", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == first.headers["ETag"] and "Content-Type" not in again.headers
    assert again.headers["Cache-Control"] == "public, max-age=30"
    # a list of validators, and a weak comparison, are answered by werkzeug's full rules
    listed = client.get("/feeds/breaking.rss", headers={"If-None-Match": f'"other", {first.headers["ETag"]}'})
    assert listed.status_code == 304
    weak = client.get("/feeds/breaking.rss", headers={"If-None-Match": "W/" + first.headers["ETag"]})
    assert weak.status_code == 304
    assert client.get("/feeds/breaking.rss", headers={"If-None-Match": '"other"'}).status_code == 200
    since = client.get("/feeds/breaking.rss", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    head = client.head("/feeds/breaking.rss")
    assert head.status_code == 200 and head.get_data() == b"" and head.headers["ETag"] == first.headers["ETag"]


def test_main_edition_prefix_redirects_to_the_canonical_url(client):
    resp = client.get("/en/feeds/section/politics.atom?limit=3")
    assert resp.status_code == 308
    assert resp.headers["Location"] == "/feeds/section/politics.atom?limit=3"


def test_feedgen_defects_are_worked_around(client):
    atom = etree.fromstring(client.get("/feeds/section/videos.atom").get_data())
    entries = atom.findall(f"{ATOM}entry")
    rels = [link.get("rel") for e in entries for link in e.findall(f"{ATOM}link")]
    assert None not in rels and "enclosure" in rels and "alternate" in rels  # links keep rel
    assert entries[0].findtext(f"{ATOM}updated") == atom.findtext(f"{ATOM}updated")  # append order
    assert not atom.findall(f".//{MEDIA}group")  # no singleton media:group
    source = client.get("/feeds/tag/wire.atom").get_data()
    src = etree.fromstring(source).find(f"{ATOM}entry/{ATOM}source")
    assert src.findtext(f"{ATOM}id") == "tag:news.example.org,2026:source/meridian-wire"
    assert src.findtext(f"{ATOM}updated")


def test_directory_has_autodiscovery_and_right_to_left_arabic(client):
    page = client.get("/feeds/").get_data(as_text=True)
    assert 'rel="alternate" type="application/rss+xml"' in page
    assert 'href="http://localhost/feeds/section/politics.atom"' in page
    assert 'href="http://localhost/feeds/author/amina-rahal.json"' in page
    arabic = client.get("/ar/feeds/").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in arabic
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("edition, tag, title, about", [
    ("en", "climate", "Example Newsroom: Coverage: Climate Action", "how communities respond to a changing climate"),
    ("ar", "الطاقة-المتجددة", "غرفة أخبار المثال: تغطية خاصة: العمل المناخي", "كيف تواجه المجتمعات مناخًا متغيرًا"),
    ("es", "reforestacion", "Redacción Ejemplo: Cobertura: Acción climática", "cómo responden las comunidades")])
def test_coverage_dossiers_gather_entries_across_sections(client, edition: str, tag: str, title: str, about: str):
    data = get_json(client, f"{prefix(edition)}/feeds/coverage/climate-action.json?limit=200")
    assert data["title"] == title  # in the edition's own words
    assert about in data["description"]
    items = data["items"]
    assert items and all("climate-action" in i["_feedhub"]["coverage"] for i in items)
    assert any(tag in i["_feedhub"]["tags"] for i in items)
    for i in items:  # each joined by a dossier tag or a keyword
        text = (i["title"] + " " + i.get("summary", "")).casefold()
        assert (set(i["_feedhub"]["tags"]) & {"climate", "renewable-energy", "reforestation",
                                              "الطاقة-المتجددة", "reforestacion"}) or "solar" in text or "coral" in text
    if edition == "en":
        assert len({i["_feedhub"]["section"] for i in items}) >= 2  # across sections
    atom = etree.fromstring(client.get(f"{prefix(edition)}/feeds/coverage/climate-action.atom").get_data())
    label = {"en": "Climate Action", "ar": "العمل المناخي", "es": "Acción climática"}[edition]
    assert atom.find(f"{ATOM}entry/{ATOM}category[@term='climate-action']").get("label") == label
    assert client.get("/feeds/coverage/no-such-dossier.rss").status_code == 404


def test_healthz(client):
    data = json.loads(client.get("/healthz").get_data())
    assert data == {"status": "ok", "schema_version": store.SCHEMA_VERSION, "entries": 152,
                    "failing_sources": 0}
