"""Fetching over real HTTP from a server on 127.0.0.1 that the test starts."""
from __future__ import annotations

import dataclasses
import gzip

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import CollectConfig
from aggregator.errors import FetchError
from aggregator.fetch import Fetcher

from .conftest import LOOPBACK, SAMPLES

RSS = (SAMPLES / "breaking.rss").read_bytes()


def source_toml(url: str, sid: str = "remote") -> str:
    return f'[[sources]]\nid = "{sid}"\nname = "Remote"\nurl = "{url}"\nsection = "live"\n'


def fetcher(**overrides) -> Fetcher:
    """A fetcher allowed to reach the test's own server on loopback."""
    overrides.setdefault("allow_networks", ("127.0.0.0/8", "::1/128"))
    return Fetcher(dataclasses.replace(CollectConfig(), **overrides))


def test_conditional_get_with_etag_and_last_modified(httpserver: HTTPServer, config_factory):
    seen: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        seen.append(dict(request.headers))
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response(RSS, content_type="application/rss+xml",
                        headers={"ETag": '"v1"', "Last-Modified": "Tue, 24 Nov 2026 18:00:00 GMT"})

    httpserver.expect_request("/feed.rss").respond_with_handler(handler)
    cfg = config_factory(source_toml(httpserver.url_for("/feed.rss")), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    first = Collector(cfg).collect()
    assert [(o.outcome, o.new, o.status) for o in first.outcomes] == [("ok", 15, 200)]
    row = store.Source.get(store.Source.key == "remote")
    assert row.etag == '"v1"' and row.last_modified == "Tue, 24 Nov 2026 18:00:00 GMT"
    second = Collector(cfg).collect()
    assert [(o.outcome, o.status) for o in second.outcomes] == [("not-modified", 304)]
    assert seen[1]["If-None-Match"] == '"v1"'
    assert seen[1]["If-Modified-Since"] == "Tue, 24 Nov 2026 18:00:00 GMT"
    assert "feedhub/" in seen[0]["User-Agent"] and "gzip" in seen[0]["Accept-Encoding"]
    assert store.Entry.select().count() == 15
    log = [r.outcome for r in store.FetchLog.select().order_by(store.FetchLog.id)]
    assert log == ["ok", "not-modified"]


def test_gzip_body_is_decoded(httpserver: HTTPServer):
    httpserver.expect_request("/gz").respond_with_data(
        gzip.compress(RSS), headers={"Content-Encoding": "gzip"}, content_type="application/rss+xml")
    result = fetcher().fetch(httpserver.url_for("/gz"))
    assert result.status == 200 and result.body == RSS


def test_gzip_bomb_is_stopped_at_the_decoded_limit(httpserver: HTTPServer):
    bomb = gzip.compress(b"<" * (5 * 1024 * 1024))  # ~5 KiB on the wire, 5 MiB decoded
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="sent more than 1048576 bytes \\(after decompression\\)"):
        fetcher(max_bytes=1024 * 1024).fetch(httpserver.url_for("/bomb"))


def test_declared_oversize_body_is_refused(httpserver: HTTPServer):
    httpserver.expect_request("/big").respond_with_data(b"x" * 5000)
    with pytest.raises(FetchError, match="declares 5000 bytes, over the limit of 1000"):
        fetcher(max_bytes=1000).fetch(httpserver.url_for("/big"))


def test_http_errors_are_reported_with_status(httpserver: HTTPServer, config_factory):
    httpserver.expect_request("/gone").respond_with_data("nope", status=404)
    cfg = config_factory(source_toml(httpserver.url_for("/gone")), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    (outcome,) = Collector(cfg).collect().outcomes
    assert outcome.outcome == "error" and outcome.status == 404
    row = store.Source.get(store.Source.key == "remote")
    assert row.last_error == f"HTTP 404 Not Found from {httpserver.url_for('/gone')}"
    assert row.last_error_kind == "fetch" and row.last_status == 404


def test_redirects_are_followed_up_to_five(httpserver: HTTPServer):
    for i in range(7):
        httpserver.expect_request(f"/r{i}").respond_with_data(
            "", status=302, headers={"Location": f"/r{i + 1}"})
    httpserver.expect_request("/r7").respond_with_data(RSS)
    ok = fetcher().fetch(httpserver.url_for("/r2"))  # five hops: r2 -> r7
    assert ok.body == RSS and ok.url == httpserver.url_for("/r7")
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher().fetch(httpserver.url_for("/r0"))


def test_permanent_redirect_is_reported(httpserver: HTTPServer):
    httpserver.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data(RSS)
    result = fetcher().fetch(httpserver.url_for("/old"))
    assert result.permanent_redirect == httpserver.url_for("/new")


def test_redirect_to_another_scheme_is_refused(httpserver: HTTPServer):
    httpserver.expect_request("/to-file").respond_with_data(
        "", status=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchError, match="only http and https are allowed"):
        fetcher().fetch(httpserver.url_for("/to-file"))


def test_connection_refused_is_a_fetch_error():
    with pytest.raises(FetchError, match="cannot fetch http://127.0.0.1:9/"):
        fetcher(timeout=2.0).fetch("http://127.0.0.1:9/")


def test_html_challenge_page_is_a_parse_error_not_a_crash(httpserver: HTTPServer, config_factory):
    httpserver.expect_request("/feed").respond_with_data(
        "<!DOCTYPE html><html><title>Just a moment...</title></html>", content_type="text/html")
    cfg = config_factory(source_toml(httpserver.url_for("/feed")), collect=LOOPBACK)
    store.init_db(cfg.database_url)
    (outcome,) = Collector(cfg).collect().outcomes
    assert outcome.outcome == "error" and "got an HTML page, not a feed" in outcome.error
