"""The admin API (issue 13) over real HTTP: waitress on 127.0.0.1 as `feedhub serve` runs it, on
SQLite and PostgreSQL; feeds fetched from test servers on 127.0.0.1."""
from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from aggregator import auth, store
from aggregator.collect import Collector
from aggregator.config import Config, load_config

from .conftest import LOOPBACK, close_store, serving_app, write_config

ROLES = ("viewer", "editor", "admin")

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>{title}</title><link>http://127.0.0.1/</link><description>d</description>
{items}</channel></rss>"""
ITEM = ("<item><title>{title}</title><link>https://outlet.example.org/{n}</link><guid>https://outlet.example.org/{n}"
        "</guid><pubDate>Tue, 24 Nov 2026 1{n}:00:00 GMT</pubDate><description>Story {n} text.</description>"
        "<category>Politics</category></item>")


def rss(title: str, stories: list[tuple[int, str]]) -> str:
    return RSS.format(title=title, items="".join(ITEM.format(n=n, title=t) for n, t in stories))


PROFILES = """
[partners.profiles.standard]
sections = ["news"]
full_text = false
"""


@dataclass
class Api:
    port: int
    config: Config
    tokens: dict[str, str]
    folder: Path

    def call(self, method: str, path: str, role: str | None = None, body: Any = None, raw: bytes | None = None,
             headers: dict[str, str] | None = None, source_address: str | None = None
             ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60,
                                          source_address=(source_address, 0) if source_address else None)
        hdrs = dict(headers or {})
        if role is not None:
            hdrs["Authorization"] = f"Bearer {self.tokens[role]}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        kind = headers_out.get("content-type", "")
        parsed: Any = json.loads(payload) if "json" in kind and payload else payload
        return resp.status, headers_out, parsed

    def audit(self) -> list[dict[str, Any]]:
        status, _, body = self.call("GET", "/api/v1/audit?limit=200", "admin")
        assert status == 200
        return body["items"]


@contextmanager
def serving(cfg: Config, parts: str = "all") -> Iterator[int]:
    from web.app import create_app

    with serving_app(create_app(cfg, parts)) as port:
        yield port


def make_users(roles: tuple[str, ...] = ROLES) -> dict[str, str]:
    tokens = {}
    for role in roles:
        store.add_user(f"{role}-user", role, auth.hash_password("correct horse battery"), store.utcnow())
        tokens[role] = auth.new_token()
        store.add_token(f"{role}-user", "tests", auth.token_digest(tokens[role]), store.utcnow())
    return tokens


@pytest.fixture
def api(tmp_path: Path, db_url: str, samples_dir: Path) -> Iterator[Api]:
    (samples_dir / "desk-copy.rss").write_text(rss("Outlet", [(1, "Budget vote"), (2, "Port strike")]),
                                               encoding="utf-8")
    cfg = load_config(write_config(tmp_path, db_url, collect=LOOPBACK, extra=PROFILES), environ={})
    store.init_db(cfg.database_url)
    store.sync_sources(cfg)
    tokens = make_users()
    with serving(cfg) as port:
        yield Api(port, cfg, tokens, tmp_path)
    close_store()


def wait_for(check: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    """Poll until ``check`` gives something true (a deadline for a hung test, not a speed claim)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def add_local_source(a: Api, key: str = "outlet", path: str = "samples/desk-copy.rss") -> dict[str, Any]:
    status, _, body = a.call("POST", "/api/v1/sources", "admin",
                             {"id": key, "name": "Outlet", "url": path, "section": "news", "discover": False})
    assert status == 201, body
    return body


def collect_once(cfg: Config, keys: list[str] | None = None) -> None:
    with Collector(cfg) as c:
        summary = c.collect(source_ids=keys)
    assert not summary.failed, summary.failed


def entry_ids(a: Api, **query: str) -> list[int]:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    status, _, body = a.call("GET", f"/api/v1/entries?limit=200&{q}", "viewer")
    assert status == 200, body
    return [e["id"] for e in body["items"]]


# --- every endpoint, every role, no token --------------------------------------------------------

def _desk_item(a: Api) -> int:
    from aggregator import admin

    done = admin.push_breaking(admin.Actor("setup", "admin", "cli"), "Setup item", a.config, store.utcnow())
    return done.result.id


def _removable(a: Api) -> str:
    n = len(store.live_source_urls())
    key = f"spare-{n}"
    path = f"samples/spare-{n}.rss"
    (a.folder / path).write_text(rss("Spare", [(3, "Spare story")]), encoding="utf-8")
    add_local_source(a, key, path)
    return key


def _spare_profile(a: Api) -> str:
    from aggregator import admin

    name = f"spare-{len(store.stored_profiles())}"
    admin.put_profile(admin.Actor("setup", "admin", "cli"), name, {"full_text": True}, a.config, store.utcnow())
    return name


def _live_key(a: Api) -> int:
    return next(k.id for k in store.partner("gazette").keys if k.revoked_at is None)


OPML = b"""<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>
<outline text="Local"><outline type="rss" text="Town paper" xmlUrl="https://town.example.org/feed.xml"/></outline>
</body></opml>"""

#: (method, path (or a function of the API giving it), body, the least role that may, its status)
ENDPOINTS: list[tuple[str, Any, Any, str, int]] = [
    ("GET", "/api/v1/sources", None, "viewer", 200),
    ("POST", "/api/v1/sources", lambda a: {"url": f"samples/new-{len(store.live_source_urls())}.rss",
                                           "name": "New", "discover": False}, "admin", 201),
    ("GET", "/api/v1/sources/outlet", None, "viewer", 200),
    ("PATCH", "/api/v1/sources/outlet", {"region": "mena"}, "admin", 200),
    ("DELETE", lambda a: f"/api/v1/sources/{_removable(a)}", None, "admin", 200),
    ("POST", "/api/v1/sources/outlet/refresh", None, "admin", 202),
    ("GET", "/api/v1/sources/outlet/log", None, "viewer", 200),
    ("GET", "/api/v1/sources/outlet/rules", None, "viewer", 200),
    ("PUT", "/api/v1/sources/outlet/rules", {"rules": [{"keyword": "strike", "tag": "Labour"}]}, "admin", 200),
    ("POST", "/api/v1/sources/outlet/rules/test", {"rules": [{"keyword": "vote", "section": "politics"}]},
     "viewer", 200),
    ("POST", "/api/v1/sources/import?dry_run=1", OPML, "admin", 200),
    ("GET", "/api/v1/sources.opml", None, "viewer", 200),
    ("GET", "/api/v1/entries?q=vote&source=outlet&section=news&status=published", None, "viewer", 200),
    ("GET", lambda a: f"/api/v1/entries/{entry_ids(a, source='outlet')[0]}", None, "viewer", 200),
    ("POST", lambda a: f"/api/v1/entries/{entry_ids(a, source='outlet', status='published')[0]}/retract",
     {"reason": "wrong figures"}, "editor", 200),
    ("POST", lambda a: f"/api/v1/entries/{entry_ids(a, source='outlet', status='retracted')[0]}/unretract",
     {"reason": "figures checked"}, "editor", 200),
    ("PATCH", lambda a: f"/api/v1/entries/{entry_ids(a, source='outlet')[0]}", {"section": "politics"}, "editor", 200),
    ("POST", "/api/v1/breaking", {"headline": "Storm reaches the coast"}, "editor", 201),
    ("DELETE", lambda a: f"/api/v1/breaking/{_desk_item(a)}", None, "editor", 200),
    ("GET", "/api/v1/partners", None, "viewer", 200),
    ("POST", "/api/v1/partners", lambda a: {"name": f"p{len(store.partners())}", "profile": "standard"}, "admin", 201),
    ("GET", "/api/v1/partners/gazette", None, "viewer", 200),
    ("PATCH", "/api/v1/partners/gazette", {"contact": "desk@gazette.example"}, "admin", 200),
    ("POST", "/api/v1/partners/gazette/keys", {"overlap_hours": 1}, "admin", 201),
    ("DELETE", lambda a: f"/api/v1/partners/gazette/keys/{_live_key(a)}", None, "admin", 200),
    ("GET", "/api/v1/partners/gazette/usage?days=7", None, "viewer", 200),
    ("GET", "/api/v1/feeds/subscribers", None, "viewer", 200),
    ("GET", "/api/v1/partner-profiles", None, "viewer", 200),
    ("PUT", "/api/v1/partner-profiles/custom", {"full_text": True, "delay_minutes": 5}, "admin", 200),
    ("DELETE", lambda a: f"/api/v1/partner-profiles/{_spare_profile(a)}", None, "admin", 200),
    ("GET", "/api/v1/health", None, "viewer", 200),
    ("GET", "/api/v1/audit", None, "viewer", 200),
]


def test_every_endpoint_with_every_role_and_without_a_token(api: Api):
    for n in range(10):
        (api.folder / "samples" / f"new-{n}.rss").write_text(rss("New", [(4, "x")]), encoding="utf-8")
    (api.folder / "samples" / "desk-copy.rss").write_text(
        rss("Outlet", [(n, f"Budget vote, part {n}") for n in range(1, 8)]), encoding="utf-8")
    add_local_source(api)
    collect_once(api.config, ["outlet"])
    api.call("POST", f"/api/v1/entries/{entry_ids(api, source='outlet')[0]}/retract", "admin", {"reason": "setup"})
    assert api.call("POST", "/api/v1/partners", "admin", {"name": "gazette", "profile": "standard"})[0] == 201
    from web.app import create_app

    routes = create_app(api.config).url_map.bind("127.0.0.1")
    hit: set[str] = set()
    for method, path, body, least, ok in ENDPOINTS:
        def prepare() -> tuple[str, Any]:  # setup writes (a source to remove, ...) happen here
            return path(api) if callable(path) else path, body(api) if callable(body) else body

        def request(role: str | None, p: str, b: Any) -> tuple[int, dict[str, str], Any]:
            if isinstance(b, bytes):
                return api.call(method, p, role, raw=b, headers={"Content-Type": "text/x-opml"})
            return api.call(method, p, role, b)
        status, headers, problem = request(None, *prepare())
        assert status == 401, (method, path, problem)
        assert headers["content-type"] == "application/problem+json" and problem["status"] == 401
        assert headers["www-authenticate"].startswith("Bearer")
        for role in ROLES:
            allowed = ROLES.index(role) >= ROLES.index(least)
            p, b = prepare()
            hit.add(routes.match(p.split("?")[0], method)[0])
            before = len(api.audit())
            status, headers, answer = request(role, p, b)
            if allowed:
                assert status == ok, (method, path, role, answer)
            else:
                assert status == 403, (method, path, role, answer)
                assert headers["content-type"] == "application/problem+json" and role in answer["detail"]
                assert len(api.audit()) == before, "a refused request wrote to the audit log"
    every = {r.endpoint for r in routes.map.iter_rules() if r.endpoint.startswith("api.")}
    assert every - hit == {"api.openapi"}  # the one public endpoint: tested on its own


def test_every_route_of_the_api_is_in_the_openapi_document_which_is_valid(api: Api):
    from openapi_spec_validator import validate

    from web.api import api as blueprint
    from web.app import create_app

    status, _, doc = api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    validate(doc)
    app = create_app(api.config)
    routes = {(re.sub(r"<(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1")), method)
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith(blueprint.name + ".")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(p, m.upper()) for p, item in doc["paths"].items() for m in item if m != "parameters"}
    assert routes == documented


# --- the whole path: add through the API, a running collector, the public feed, the audit ---------

def test_add_a_source_by_its_page_refresh_it_and_read_it_in_the_public_feed(api: Api, httpserver: HTTPServer):
    stories = [(1, "Harbour reopens after storm")]
    httpserver.expect_request("/feed.xml").respond_with_handler(
        lambda req: __import__("werkzeug").Response(rss("Harbour Gazette", stories), content_type="application/rss+xml"))
    httpserver.expect_request("/").respond_with_data(
        f'<html><head><link rel="alternate" type="application/rss+xml" title="All news" '
        f'href="{httpserver.url_for("/feed.xml")}"></head><body>Hello</body></html>', content_type="text/html")
    status, headers, source = api.call("POST", "/api/v1/sources", "admin", {"url": httpserver.url_for("/")})
    assert status == 201, source
    assert source["url"] == httpserver.url_for("/feed.xml") and source["name"] == "Harbour Gazette"
    assert source["managed"] == "store" and source["read_only"] is False
    assert headers["location"] == f"/api/v1/sources/{source['id']}"
    key = source["id"]

    stop = threading.Event()
    collector = Collector(api.config)
    thread = threading.Thread(target=collector.run_forever, args=(stop,), kwargs={"tick": 0.2}, daemon=True)
    thread.start()
    try:
        def titles() -> list[str]:
            status, _, feed = api.call("GET", "/feeds/latest.json?limit=200")
            return [i["title"] for i in feed["items"]] if status == 200 else []
        wait_for(lambda: "Harbour reopens after storm" in titles(), "the new source's entry in /feeds/latest.json")
        stories.append((2, "Ferry timetable restored"))
        assert api.call("POST", f"/api/v1/sources/{key}/refresh", "admin")[0] == 202
        wait_for(lambda: "Ferry timetable restored" in titles(), "the refreshed entry in /feeds/latest.json")
    finally:
        stop.set()
        thread.join(timeout=30)
        collector.close()
    status, _, log = api.call("GET", f"/api/v1/sources/{key}/log", "viewer")
    assert status == 200 and [r["outcome"] for r in log["items"]][:2] == ["ok", "ok"]
    audit = api.audit()
    assert [(a["action"], a["actor"], a["via"], a["target"]) for a in audit[:2]] == [
        ("source.refresh", "admin-user", "api", f"source:{key}"), ("source.add", "admin-user", "api", f"source:{key}")]
    assert audit[1]["before"] is None and audit[1]["after"]["url"] == httpserver.url_for("/feed.xml")
    status, _, health = api.call("GET", "/api/v1/health", "viewer")
    assert status == 200 and health["collect_runs"] and health["collect_runs"][0]["sources"] >= 1


def test_a_page_with_several_feeds_answers_300_with_the_candidates_and_writes_nothing(api: Api, httpserver: HTTPServer):
    httpserver.expect_request("/").respond_with_data(
        '<html><head><link rel="alternate" type="application/rss+xml" title="News" href="/news.rss">'
        '<link rel="alternate" type="application/atom+xml" title="Sport" href="/sport.atom">'
        '<link rel="stylesheet" href="/s.css"></head></html>', content_type="text/html")
    before = len(api.call("GET", "/api/v1/sources?limit=200", "viewer")[2]["items"])
    status, _, body = api.call("POST", "/api/v1/sources", "admin", {"url": httpserver.url_for("/")})
    assert status == 300
    assert [(c["url"], c["title"]) for c in body["candidates"]] == [
        (httpserver.url_for("/news.rss"), "News"), (httpserver.url_for("/sport.atom"), "Sport")]
    assert len(api.call("GET", "/api/v1/sources?limit=200", "viewer")[2]["items"]) == before
    assert api.audit() == []


def test_a_page_without_a_feed_and_an_address_outside_allow_networks_are_named(api: Api, httpserver: HTTPServer):
    httpserver.expect_request("/plain").respond_with_data("<html><body>No feeds</body></html>",
                                                          content_type="text/html")
    status, _, body = api.call("POST", "/api/v1/sources", "admin", {"url": httpserver.url_for("/plain")})
    assert status == 422 and body["errors"][0]["field"] == "url" and "neither a feed" in body["errors"][0]["message"]
    status, _, body = api.call("POST", "/api/v1/sources", "admin", {"url": "http://10.1.2.3/feed"})
    assert status == 422 and body["errors"][0]["field"] == "url"
    assert api.audit() == []


# --- bad requests: exact fields, nothing written ---------------------------------------------

@pytest.mark.parametrize("body, field", [
    ({"url": "samples/desk-copy.rss", "name": "X", "interval": "soon", "discover": False}, "interval"),
    ({"url": "samples/desk-copy.rss", "name": "X", "colour": "red", "discover": False}, "colour"),
    ({"url": "samples/desk-copy.rss", "name": "X", "section": "sprots", "discover": False}, "section"),
    ({"url": "samples/desk-copy.rss", "name": "X", "tags": [1], "discover": False}, "tags"),
    ({"url": "samples/desk-copy.rss", "name": "X", "rules": [{"keyword": "a", "section": "nope"}],
      "discover": False}, "rules[0].section"),
    ({"url": "samples/desk-copy.rss", "name": "X", "discover": "yes"}, "discover"),
    ({"name": "X"}, "url"),
    ({"url": "../../etc/passwd", "name": "X", "discover": False}, "url"),
    ({"url": "samples/desk-copy.rss", "name": "X\nY", "discover": False}, "name"),
])
def test_wrong_fields_are_named_and_nothing_is_written(api: Api, body: dict[str, Any], field: str):
    status, headers, problem = api.call("POST", "/api/v1/sources", "admin", body)
    assert status == 422, problem
    assert headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert api.audit() == [] and "x" not in [s["id"] for s in api.call("GET", "/api/v1/sources", "viewer")[2]["items"]]


def test_bad_json_a_wrong_content_type_and_a_huge_body(api: Api):
    add_local_source(api)
    status, _, problem = api.call("PATCH", "/api/v1/sources/outlet", "admin", raw=b'{"name": ',
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in problem["detail"]
    status, _, problem = api.call("PATCH", "/api/v1/sources/outlet", "admin", raw=b'{"name": NaN}',
                                  headers={"Content-Type": "application/json"})
    assert status == 400
    status, _, problem = api.call("PATCH", "/api/v1/sources/outlet", "admin", raw=b'name=x',
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, _, problem = api.call("PATCH", "/api/v1/sources/outlet", "admin", raw=b"[1, 2]",
                                  headers={"Content-Type": "application/json"})
    assert status == 422 and problem["errors"][0]["field"] == "body"
    huge = json.dumps({"name": "x" * (1024 * 1024 + 10)}).encode()
    status, _, problem = api.call("PATCH", "/api/v1/sources/outlet", "admin", raw=huge,
                                  headers={"Content-Type": "application/json"})
    assert status == 413 and problem["status"] == 413
    status, _, problem = api.call("GET", "/api/v1/entries?limit=0", "viewer")
    assert status == 400 and "limit" in problem["detail"]
    status, _, problem = api.call("GET", "/api/v1/entries?status=gone", "viewer")
    assert status == 400 and "status" in problem["detail"]
    status, _, problem = api.call("GET", "/api/v1/entries/abc", "viewer")
    assert status == 400
    assert api.call("GET", "/api/v1/sources/outlet", "viewer")[2]["name"] == "Outlet"
    assert [a["action"] for a in api.audit()] == ["source.add"]


def test_config_sources_are_read_only_and_unknown_ones_are_404(api: Api):
    status, _, problem = api.call("PATCH", "/api/v1/sources/meridian-wire", "admin", {"name": "Other"})
    assert status == 409 and "config.toml" in problem["detail"]
    assert api.call("DELETE", "/api/v1/sources/meridian-wire", "admin")[0] == 409
    assert api.call("PUT", "/api/v1/sources/meridian-wire/rules", "admin", {"rules": []})[0] == 409
    status, _, source = api.call("GET", "/api/v1/sources/meridian-wire", "viewer")
    assert status == 200 and source["managed"] == "config" and source["read_only"] is True
    assert api.call("GET", "/api/v1/sources/nope", "viewer")[0] == 404
    assert api.call("GET", "/api/v1/no-such-thing", "viewer")[0] == 404
    assert api.audit() == []


def test_pages_follow_next_cursor_to_the_end(api: Api):
    seen: list[str] = []
    path = "/api/v1/sources?limit=2"
    while path:
        status, headers, page = api.call("GET", path, "viewer")
        assert status == 200 and len(page["items"]) <= 2
        seen += [s["id"] for s in page["items"]]
        if page["next"]:
            assert headers["link"] == f'<{page["next"]}>; rel="next"'
        path = page["next"] and page["next"].split(str(api.port), 1)[1]
    assert seen == sorted(s.id for s in api.config.sources)


# --- security -------------------------------------------------------------------------------

def test_failed_tokens_are_rate_limited_per_client_address(api: Api):
    for _ in range(10):
        assert api.call("GET", "/api/v1/sources", headers={"Authorization": "Bearer fh_wrong"})[0] == 401
    status, headers, problem = api.call("GET", "/api/v1/sources", "admin")
    assert status == 429 and int(headers["retry-after"]) >= 1 and problem["status"] == 429
    # Another address is not held back by this one's failures.
    assert api.call("GET", "/api/v1/sources", "admin", source_address="127.0.0.2")[0] == 200


def test_a_revoked_token_is_refused(api: Api):
    tokens = store.list_tokens("viewer-user")
    assert store.revoke_token(tokens[0].id, store.utcnow())
    status, _, problem = api.call("GET", "/api/v1/sources", "viewer")
    assert status == 401 and "revoked" in problem["detail"]
    assert api.call("GET", "/api/v1/sources", headers={"Authorization": f"Basic {api.tokens['admin']}"})[0] == 401


# --- the desk: corrections, retractions, breaking --------------------------------------------

def test_a_correction_survives_the_sources_next_fetches_and_shows_as_one(api: Api):
    add_local_source(api)
    collect_once(api.config, ["outlet"])
    strike = [e for e in api.call("GET", "/api/v1/entries?q=strike", "viewer")[2]["items"]][0]
    status, _, fixed = api.call("PATCH", f"/api/v1/entries/{strike['id']}", "editor",
                                {"section": "economy", "regions": ["europe"], "tags": ["Port strike", "Labour"]})
    assert status == 200, fixed
    assert fixed["correction"]["by"] == "editor-user" and fixed["correction"]["fields"]["section"] == "economy"
    feed = api.call("GET", "/feeds/region/europe.json")[2]
    assert strike["title"] in [i["title"] for i in feed["items"]]
    # The source changes the story, and is fetched again: the correction stays.
    (api.folder / "samples" / "desk-copy.rss").write_text(
        rss("Outlet", [(1, "Budget vote"), (2, "Port strike ends after talks")]), encoding="utf-8")
    collect_once(api.config, ["outlet"])
    collect_once(api.config, ["outlet"])
    after = api.call("GET", f"/api/v1/entries/{strike['id']}", "viewer")[2]
    assert after["title"] == "Port strike ends after talks"
    assert (after["section"], after["regions"], after["tags"]) == ("economy", ["europe"], ["Port strike", "Labour"])
    assert [i["title"] for i in api.call("GET", "/feeds/tag/labour.json")[2]["items"]] == [after["title"]]
    assert api.call("GET", "/api/v1/entries?status=corrected", "viewer")[2]["items"][0]["id"] == strike["id"]
    audit = api.audit()[0]
    assert audit["action"] == "entry.correct" and audit["before"]["section"] == strike["section"] != "economy"
    assert audit["after"]["section"] == "economy"
    status, _, problem = api.call("PATCH", f"/api/v1/entries/{strike['id']}", "editor",
                                  {"section": "nope", "regions": ["mars"], "flag": 1})
    assert status == 422 and {e["field"] for e in problem["errors"]} == {"section", "regions[0]", "flag"}


def test_retract_and_unretract_through_the_api_publish_and_withdraw_the_tombstone(api: Api):
    add_local_source(api)
    collect_once(api.config, ["outlet"])
    entry = api.call("GET", "/api/v1/entries?q=budget", "viewer")[2]["items"][0]
    assert api.call("POST", f"/api/v1/entries/{entry['id']}/retract", "editor", {})[0] == 422  # a reason is needed
    status, _, gone = api.call("POST", f"/api/v1/entries/{entry['id']}/retract", "editor", {"reason": "wrong figures"})
    assert status == 200 and gone["retracted"] and gone["retraction_reason"] == "wrong figures"
    atom = api.call("GET", "/feeds/latest.atom?limit=200")[2]
    assert b"deleted-entry" in atom and b"wrong figures" in atom
    status, _, back = api.call("POST", f"/api/v1/entries/{entry['id']}/unretract", "editor", {"reason": "checked"})
    assert status == 200 and not back["retracted"]
    assert entry["title"] in [i["title"] for i in api.call("GET", "/feeds/latest.json?limit=200")[2]["items"]]
    assert [a["action"] for a in api.audit()[:2]] == ["entry.unretract", "entry.retract"]


def test_a_breaking_push_is_in_the_ticker_on_the_next_request_and_pings_the_hubs(tmp_path: Path, db_url: str,
                                                                                 httpserver: HTTPServer):
    pings: list[str] = []
    httpserver.expect_request("/hub", method="POST").respond_with_handler(
        lambda req: (pings.append(req.get_data(as_text=True)), __import__("werkzeug").Response(status=204))[1])
    text = write_config(tmp_path, db_url, collect=LOOPBACK).read_text(encoding="utf-8")
    text = text.replace('base_url = ""', 'base_url = "https://feeds.example.org"', 1)
    (tmp_path / "config.toml").write_text(text + f'\n[websub]\nhubs = ["{httpserver.url_for("/hub")}"]\n',
                                          encoding="utf-8")
    cfg = load_config(tmp_path / "config.toml", environ={})
    store.init_db(cfg.database_url)
    tokens = make_users(("editor",))
    with serving(cfg) as port:
        a = Api(port, cfg, tokens, tmp_path)
        a.call("GET", "/feeds/breaking.json")  # cached now: the push must still show at once
        status, _, item = a.call("POST", "/api/v1/breaking", "editor",
                                 {"headline": "Bridge closed after collision", "link": "https://news.example.org/b"})
        assert status == 201, item
        feed = a.call("GET", "/feeds/breaking.json")[2]
        assert feed["items"][0]["title"] == "Bridge closed after collision"
        wait_for(lambda: any("breaking" in p for p in pings), "the hub ping")
        status, _, off = a.call("DELETE", f"/api/v1/breaking/{item['id']}", "editor")
        assert status == 200 and off["retracted"]
        assert "Bridge closed after collision" not in [i["title"] for i in a.call("GET", "/feeds/breaking.json")[2]["items"]]
        assert a.call("DELETE", f"/api/v1/breaking/{item['id']}", "editor")[0] == 404
        status, _, problem = a.call("POST", "/api/v1/breaking", "editor", {"headline": "", "edition": "fr"})
        assert status == 422 and {e["field"] for e in problem["errors"]} == {"headline", "edition"}
    close_store()


def test_removing_a_source_keeps_its_entries_unless_asked_to_retract_them(api: Api):
    add_local_source(api)
    (api.folder / "samples" / "second.rss").write_text(rss("Second", [(5, "Second outlet story")]), encoding="utf-8")
    add_local_source(api, "second", "samples/second.rss")
    collect_once(api.config, ["outlet", "second"])
    assert api.call("DELETE", "/api/v1/sources/outlet?entries=maybe", "admin")[0] == 400
    status, _, done = api.call("DELETE", "/api/v1/sources/outlet", "admin")
    assert status == 200 and done["entries_retracted"] == 0
    titles = [i["title"] for i in api.call("GET", "/feeds/latest.json?limit=200")[2]["items"]]
    assert "Budget vote" in titles
    status, _, done = api.call("DELETE", "/api/v1/sources/second?entries=retract", "admin")
    assert status == 200 and done["entries_retracted"] == 1
    titles = [i["title"] for i in api.call("GET", "/feeds/latest.json?limit=200")[2]["items"]]
    assert "Second outlet story" not in titles
    assert api.call("GET", "/api/v1/sources/outlet", "viewer")[0] == 404
    with Collector(api.config) as c:  # a removed source is never collected again
        assert "outlet" not in [o.source for o in c.collect().outcomes]


def test_rules_get_put_and_a_trial_that_writes_nothing(api: Api):
    add_local_source(api)
    collect_once(api.config, ["outlet"])
    status, _, problem = api.call("PUT", "/api/v1/sources/outlet/rules", "admin",
                                  {"rules": [{"keyword": "strike", "section": "nowhere"}, {"tag": "x"}]})
    assert status == 422
    assert {e["field"] for e in problem["errors"]} == {"rules[0].section", "rules[1]"}
    audit_before = api.audit()
    status, _, trial = api.call("POST", "/api/v1/sources/outlet/rules/test", "viewer",
                                {"rules": [{"keyword": "strike", "action": "drop"}]})
    assert status == 200 and trial["written"] is False and (trial["kept"], trial["dropped"]) == (1, 1)
    assert [e["decided_by"] for e in trial["entries"] if not e["kept"]] == [["rule 1 (keyword 'strike')"]]
    assert api.audit() == audit_before
    assert api.call("GET", "/api/v1/sources/outlet/rules", "viewer")[2] == {"rules": []}
    status, _, put = api.call("PUT", "/api/v1/sources/outlet/rules", "admin",
                              {"rules": [{"keyword": "strike", "tag": "Labour"}]})
    assert status == 200 and put == {"rules": [{"keyword": "strike", "tag": "Labour"}]}
    collect_once(api.config, ["outlet"])  # the changed rules file the entries again
    assert "Labour" in api.call("GET", "/api/v1/entries?q=strike", "viewer")[2]["items"][0]["tags"]


def test_opml_import_dry_run_then_for_real_and_export(api: Api):
    body = (b'<?xml version="1.0"?><opml version="2.0"><head/><body><outline text="Wires">'
            b'<outline type="rss" text="Town paper" xmlUrl="https://town.example.org/feed.xml"/>'
            b'<outline type="rss" text="Town paper again" xmlUrl="https://town.example.org/feed.xml/"/>'
            b'<outline type="rss" text="Ftp" xmlUrl="ftp://files.example.org/x"/></outline></body></opml>')
    status, _, dry = api.call("POST", "/api/v1/sources/import?dry_run=1", "admin", raw=body,
                              headers={"Content-Type": "text/x-opml"})
    assert status == 200 and dry["would_add"] == 1 and dry["added"] == 0 and dry["skipped"] == 2
    reasons = [o["reason"] for o in dry["outlines"] if o["action"] == "skip"]
    assert "already collected" in reasons[0] and "http(s)" in reasons[1]
    assert api.audit() == []
    status, _, done = api.call("POST", "/api/v1/sources/import", "admin", raw=body,
                               headers={"Content-Type": "text/x-opml"})
    assert status == 201 and done["added"] == 1
    src = api.call("GET", "/api/v1/sources/town-paper", "viewer")[2]
    assert src["url"] == "https://town.example.org/feed.xml" and src["managed"] == "store"
    status, headers, opml = api.call("GET", "/api/v1/sources.opml", "viewer")
    assert status == 200 and headers["content-type"].startswith("text/x-opml")
    from aggregator.discover import read_opml

    assert [o.xml_url for o in read_opml(opml)] == ["https://town.example.org/feed.xml"]
    entities = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE opml [{entities}]><opml version="2.0"><body>'
            '<outline text="&l9;" xmlUrl="https://bomb.example.org/&l9;"/></body></opml>').encode()
    status, _, problem = api.call("POST", "/api/v1/sources/import", "admin", raw=bomb,
                                  headers={"Content-Type": "text/x-opml"})
    assert status == 422 and "DOCTYPE" in problem["errors"][0]["message"]
    status, _, problem = api.call("POST", "/api/v1/sources/import", "admin", raw=b"<html>no</html>",
                                  headers={"Content-Type": "text/x-opml"})
    assert status == 422 and "opml" in problem["errors"][0]["message"]


def test_admin_api_off_or_on_its_own_listener(tmp_path: Path, db_url: str):
    cfg = load_config(write_config(tmp_path, db_url, extra="\n[admin]\nenabled = false\n"), environ={})
    store.init_db(cfg.database_url)
    tokens = make_users(("admin",))
    with serving(cfg) as port:
        a = Api(port, cfg, tokens, tmp_path)
        assert a.call("GET", "/api/v1/sources", "admin")[0] == 404
        assert a.call("GET", "/feeds/latest.json")[0] == 200
    cfg = load_config(write_config(tmp_path, db_url, extra='\n[admin]\nbind = "127.0.0.1:18081"\n'), environ={})
    with serving(cfg, "public") as public_port, serving(cfg, "admin") as admin_port:
        assert Api(public_port, cfg, tokens, tmp_path).call("GET", "/api/v1/sources", "admin")[0] == 404
        assert Api(admin_port, cfg, tokens, tmp_path).call("GET", "/api/v1/sources", "admin")[0] == 200
        assert Api(admin_port, cfg, tokens, tmp_path).call("GET", "/feeds/latest.json")[0] == 404
    close_store()


def test_a_desk_item_linking_to_a_stored_story_is_an_entry_of_its_own(api: Api):
    collect_once(api.config, ["cms-news"])
    story = store.list_entries(1, source="cms-news", status="published")[0]
    status, _, item = api.call("POST", "/api/v1/breaking", "editor", {"headline": "Update: " + story.title[:100],
                                                                     "link": story.link})
    assert status == 201, item
    assert item["source"] == "_desk" and item["link"] == story.link and item["id"] != story.id
    breaking = [i["title"] for i in api.call("GET", "/feeds/breaking.json?limit=200")[2]["items"]]
    assert "Update: " + story.title[:100] in breaking


def test_a_method_the_resource_lacks_is_405_with_allow(api: Api):
    status, headers, problem = api.call("PUT", "/api/v1/feeds/subscribers", "viewer", {"x": 1})
    assert status == 405 and problem["status"] == 405 and "GET" in headers["allow"]
    status, headers, _ = api.call("DELETE", "/feeds/latest.rss")
    assert status == 405 and "GET" in headers["allow"]
