"""CLI parity with the admin API (issue 13, item 4): the same operations, the same messages, the
same audit log (via "cli")."""
from __future__ import annotations

from pathlib import Path

from pytest_httpserver import HTTPServer

from aggregator import store
from aggregator.config import load_config

from .conftest import LOOPBACK, close_store, write_config
from .test_admin_api import rss
from .test_cli import feedhub


def test_sources_breaking_and_retractions_from_the_command_line_are_audited(tmp_path: Path, db_url: str,
                                                                           samples_dir: Path):
    (samples_dir / "town.rss").write_text(rss("Town paper", [(1, "Council meets"), (2, "Market opens")]),
                                          encoding="utf-8")
    cfg = write_config(tmp_path, db_url)

    def run(*args: str, ok: int = 0) -> str:
        result = feedhub("--config", str(cfg), *args, cwd=tmp_path)
        assert result.returncode == ok, (args, result.stdout, result.stderr)
        return result.stdout + result.stderr

    assert "added source town" in run("sources", "add", "samples/town.rss", "--id", "town", "--name", "Town paper",
                                      "--section", "news", "--tag", "Local")
    assert "unknown section 'nws'; did you mean 'news'?" in run("sources", "edit", "town", "--section", "nws", ok=1)
    assert "changed source town" in run("sources", "edit", "town", "--region", "europe")
    assert "not collected while disabled" in run("sources", "disable", "town")
    assert "collected from a collector's next claim" in run("sources", "enable", "town")
    assert "managed by config.toml" in run("sources", "edit", "meridian-wire", "--name", "X", ok=1)
    assert "queued town" in run("sources", "refresh", "town")
    run("collect", "--source", "town")
    listed = run("sources")
    assert any(line.split()[:3] == ["town", "cms", "ok"] and "store" in line.split() for line in listed.splitlines())
    pushed = run("breaking", "push", "Flood warning for the valley", "--link", "https://news.example.org/flood")
    assert "pushed entry" in pushed
    assert "retracted 1 entry" in run("retract", "https://outlet.example.org/1", "--reason", "wrong date")
    assert "published again 1 entry" in run("unretract", "https://outlet.example.org/1", "--reason", "date fixed")
    opml = tmp_path / "list.opml"
    opml.write_bytes(b'<?xml version="1.0"?><opml version="2.0"><head/><body>'
                     b'<outline type="rss" text="Harbour" xmlUrl="https://harbour.example.org/rss"/></body></opml>')
    dry = run("sources", "import-opml", str(opml), "--dry-run")
    assert "would add 1 source(s), skipped 0 (dry run: nothing written)" in dry
    assert "added 1 source(s)" in run("sources", "import-opml", str(opml))
    assert 'xmlUrl="https://harbour.example.org/rss"' in run("sources", "export-opml")
    assert "removed source town; its entries stay published" in run("sources", "remove", "town")
    assert "no source 'town'" in run("sources", "refresh", "town", ok=1)

    store.init_db(load_config(cfg, environ={}).database_url)
    actions = [(a.action, a.via) for a in reversed(store.audit_rows(100))]
    assert actions == [("source.add", "cli"), ("source.edit", "cli"), ("source.disable", "cli"),
                       ("source.enable", "cli"), ("source.refresh", "cli"), ("breaking.push", "cli"),
                       ("entry.retract", "cli"), ("entry.unretract", "cli"), ("source.add", "cli"),
                       ("sources.import", "cli"), ("source.remove", "cli")]
    edit = [a for a in store.audit_rows(100) if a.action == "source.edit"][0]
    assert edit.actor.startswith("cli:") and edit.before["region"] == "" and edit.after["region"] == "europe"
    close_store()


def test_sources_add_lists_the_feeds_of_a_page_that_has_several(tmp_path: Path, db_url: str, httpserver: HTTPServer):
    httpserver.expect_request("/").respond_with_data(
        '<html><head><link rel="alternate" type="application/rss+xml" title="News" href="/news.rss">'
        '<link rel="alternate" type="application/feed+json" title="JSON" href="/feed.json"></head></html>',
        content_type="text/html")
    cfg = write_config(tmp_path, db_url, collect=LOOPBACK)
    result = feedhub("--config", str(cfg), "sources", "add", httpserver.url_for("/"), cwd=tmp_path)
    assert result.returncode == 2
    assert httpserver.url_for("/news.rss") in result.stderr and httpserver.url_for("/feed.json") in result.stderr


def test_partners_from_the_command_line(tmp_path: Path, db_url: str):
    cfg = write_config(tmp_path, db_url, extra='\n[partners.profiles.regional]\nsections = ["news"]\n')

    def run(*args: str, ok: int = 0) -> str:
        result = feedhub("--config", str(cfg), "partners", *args, cwd=tmp_path)
        assert result.returncode == ok, (args, result.stdout, result.stderr)
        return result.stdout + result.stderr

    added = run("add", "gazette", "--profile", "regional", "--contact", "desk@gazette.example")
    key = added.strip().splitlines()[-1]
    assert key.startswith("pk_") and len(key) > 40
    assert "unknown profile 'nope'" in run("add", "other", "--profile", "nope", ok=1)
    assert "exists already" in run("add", "gazette", "--profile", "regional", ok=1)
    listed = run()
    assert listed.splitlines()[1].split()[:3] == ["gazette", "regional", "active"] and key not in listed
    new = run("rotate", "gazette", "--overlap-hours", "0").strip().splitlines()[-1]
    assert new.startswith("pk_") and new != key
    assert "revoked" in run("revoke", "gazette", "2")
    assert "is suspended" in run("suspend", "gazette") and "is active" in run("resume", "gazette")
    assert "regional" in run("profiles")
    store.init_db(load_config(cfg, environ={}).database_url)
    info = store.partner("gazette")
    assert info.contact == "desk@gazette.example" and [k.revoked_at is not None for k in info.keys] == [True, False]
    assert [a.action for a in reversed(store.audit_rows(20))] == [
        "partner.add", "partner.rotate", "partner.revoke", "partner.edit", "partner.edit"]
    close_store()
