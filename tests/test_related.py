"""Related entries: stored when entries are written, ranked by shared tags and coverage,
published in JSON Feed (_feedhub.related) and Atom (link rel="related"), and kept fresh."""
from __future__ import annotations

import json
from pathlib import Path

from lxml import etree

from aggregator import store
from aggregator.collect import Collector
from web import create_app

from .test_feeds import ATOM

DESK = '[[sources]]\nid = "desk"\nname = "Desk"\nurl = "samples/desk.rss"\nkind = "wire"\n'

# (slug, title, day of November 2026, categories); "solar" in a title joins the climate-action dossier.
STORIES = [
    ("a", "Grid deal signed", 1, ["Ukraine", "Energy"]),
    ("b", "Talks resume", 2, ["Ukraine"]),
    ("c", "Grid deal extended", 3, ["Ukraine", "Energy"]),
    ("d", "Cup final tonight", 4, ["Football"]),
    ("e", "Power prices fall", 5, ["Energy"]),
    ("f", "Solar farm opens", 6, ["Farming"]),
    ("g", "Solar tariffs cut", 7, ["Trade"]),
]


def write_desk(folder: Path, titles: dict[str, str] | None = None) -> None:
    titles = titles or {}
    items = "".join(
        f"<item><title>{titles.get(slug, title)}</title><link>https://desk.example.org/{slug}</link>"
        f"<guid>https://desk.example.org/{slug}</guid><pubDate>{day:02d} Nov 2026 10:00:00 GMT</pubDate>"
        + "".join(f"<category>{c}</category>" for c in cats) + "<description>Body.</description></item>"
        for slug, title, day, cats in STORIES)
    (folder / "samples" / "desk.rss").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title>'
        f"<link>https://desk.example.org/</link><description>d</description>{items}</channel></rss>",
        encoding="utf-8")


def related_of(client, slug: str) -> list[tuple[str, str]]:
    items = json.loads(client.get("/feeds/latest.json?limit=50").get_data())["items"]
    (item,) = [i for i in items if i["id"] == f"https://desk.example.org/{slug}"]
    return [(r["url"].rsplit("/", 1)[1], r["title"]) for r in item["_feedhub"].get("related", [])]


def test_related_entries_ranked_published_and_kept_fresh(config_factory, samples_dir: Path, tmp_path: Path):
    write_desk(tmp_path)
    cfg = config_factory(DESK)
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert not c.collect().failed
    app = create_app(cfg)
    with app.test_client() as client:
        # Two shared tags beat one; among equals the newer story comes first. The reverse
        # links make the first story of a thread point to what came after it.
        assert [s for s, _ in related_of(client, "c")] == ["a", "e", "b"]
        assert [s for s, _ in related_of(client, "a")] == ["c", "e", "b"]
        assert related_of(client, "d") == []
        # A shared coverage dossier (climate-action, by the keyword "solar") weighs two tags.
        assert related_of(client, "g") == [("f", "Solar farm opens")]
        atom = etree.fromstring(client.get("/feeds/latest.atom?limit=50").get_data())
        entry = next(e for e in atom.findall(f"{ATOM}entry") if e.findtext(f"{ATOM}id").endswith("/c"))
        assert [(l.get("href"), l.get("title")) for l in entry.findall(f"{ATOM}link[@rel='related']")][:1] == [
            ("https://desk.example.org/a", "Grid deal signed")]
        before = client.get("/feeds/tag/football.json").headers["ETag"]

        # A related entry's new title shows in the lists that hold it (the cache is not stale).
        write_desk(tmp_path, {"a": "Grid deal signed, at last"})
        with Collector(cfg) as c:
            assert c.collect().updated == 1
        assert related_of(client, "c")[0] == ("a", "Grid deal signed, at last")
        # A feed holding none of it is not invalidated.
        assert client.get("/feeds/tag/football.json").headers["ETag"] == before

        # A retracted entry leaves every related list.
        assert store.retract([store.Entry.get(store.Entry.guid == "https://desk.example.org/a").id],
                             store.utcnow(), "error", cfg.taxonomy.parents)
        assert [s for s, _ in related_of(client, "c")] == ["e", "b"]
    assert store.Related.select().where(store.Related.entry == store.Related.related).count() == 0


def test_a_tag_on_every_entry_stays_bounded(config_factory, samples_dir: Path, tmp_path: Path):
    """Each entry keeps its RELATED_KEEP best; pools are bounded however common a tag is."""
    items = "".join(
        f"<item><title>Story {n}</title><link>https://desk.example.org/{n}</link>"
        f"<pubDate>{1 + n % 28:02d} Oct 2026 {n % 24:02d}:00:00 GMT</pubDate><category>Politics news</category>"
        f"<description>Body.</description></item>" for n in range(120))
    (tmp_path / "samples" / "desk.rss").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title>'
        f"<link>https://desk.example.org/</link><description>d</description>{items}</channel></rss>",
        encoding="utf-8")
    # Every tag counts here ([related] max_tag_share = 1): a tag on every entry would
    # otherwise relate nothing at all (the next test).
    cfg = config_factory(DESK, extra="[related]\nmax_tag_share = 1.0\n")
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        assert c.collect().new == 120
    own = store.Related.select().count()
    assert own <= 2 * store.RELATED_KEEP * 120
    with create_app(cfg).test_client() as client:
        items = json.loads(client.get("/feeds/latest.json?limit=100").get_data())["items"]
    assert all(1 <= len(i["_feedhub"]["related"]) <= store.RELATED_KEEP for i in items)
