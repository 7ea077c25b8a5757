"""Any request a client can send gets an answer below 500 and never a traceback.

Hypothesis throws arbitrary strings (NUL, huge, non-UTF-8 bytes, percent-encoded
garbage, dates at the ends of time) at every path segment and query parameter of
every route, through the whole WSGI stack (the hot layer in front of Flask
included), on the collected sample newsroom.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config import Config

PARAMS = ("limit", "section", "region", "tag", "author", "q", "since", "page", "format", "x")
FEEDS = ("latest", "breaking", "section/politics", "region/mena", "tag/gaza-strip", "author/x",
         "coverage/x")
SUFFIXES = ("", ".rss", ".atom", ".json", ".xml", ".RSS", ".json.json")
TEMPLATES = ("/feeds/{a}{s}", "/{e}/feeds/{a}{s}", "/feeds/{a}/{b}{s}", "/{e}/feeds/{a}/{b}{s}",
             "/{e}/feeds/", "/feeds.opml", "/healthz", "/metrics", "/{a}", "/feeds/{a}/{b}/{c}")

# Strings meant to break parsers: ends of time, NUL, huge, surrogates, encodings, paths.
NASTY = st.sampled_from([
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "0000-00-00", "-1", "0", "201", "1e9",
    "99999999999999999999999999", "\x00", "%00", "%ff%fe", "%c3%28", "%ed%a0%80", "\ud800", "../../etc/passwd",
    "a" * 5000, " ", "", "..", "%2e%2e", "ar", "en", "latest", "politics", "تقنية", "\u202e", "<script>",
    "2026-11-24T18:00:00Z", "2026-02-30", "NaN", "inf", "%", "%%", "?", "#", "&", "=",
])
# Mostly the nasty ones; arbitrary text and bytes (percent-encoded) the rest of the time.
PIECE = st.one_of(NASTY, NASTY, NASTY, st.text(max_size=30), st.binary(max_size=20).map(lambda b: quote(b, safe="")))
FEED_TEMPLATES = TEMPLATES[:4]


@pytest.fixture(scope="module")
def wsgi_client(newsroom: Config):
    from web import create_app

    app = create_app(newsroom)
    return app.test_client()


def _encode(piece: str, raw: bool) -> str:
    # Either percent-encoded (any text reaches the app) or left raw where the client library allows.
    if raw and all(0x21 <= ord(c) < 0x7f and c not in "#?/%" for c in piece):
        return piece
    return quote(piece.encode("utf-8", "surrogatepass"), safe="")


def check(client, path: str, params: list[tuple[str, str]], raw: bool, method: str) -> None:
    query = "&".join(f"{k}={_encode(v, raw)}" for k, v in params)
    resp = client.open(path + ("?" + query if query else ""), method=method,
                       headers={"Accept": "application/json"} if raw else {})
    assert resp.status_code < 500, (path, query, resp.status_code, resp.data[:300])
    body = resp.get_data()
    assert b"Traceback" not in body and b'File "' not in body, (path, query)


QUERY = st.lists(st.tuples(st.sampled_from(PARAMS), PIECE), min_size=1, max_size=4)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feed=st.sampled_from(FEEDS), edition=st.sampled_from(["", "/ar", "/es"]),
       suffix=st.sampled_from(SUFFIXES[:4]), params=QUERY, raw=st.booleans(),
       method=st.sampled_from(["GET", "HEAD"]))
def test_no_parameter_on_a_real_feed_gets_a_5xx(wsgi_client, feed, edition, suffix, params, raw, method):
    check(wsgi_client, f"{edition}/feeds/{feed}{suffix}", params, raw, method)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=st.sampled_from(TEMPLATES), a=st.one_of(st.sampled_from(FEEDS), PIECE), b=PIECE, c=PIECE,
       e=st.one_of(st.sampled_from(["ar", "es", "en", "fr"]), PIECE), s=st.sampled_from(SUFFIXES),
       params=st.lists(st.tuples(st.sampled_from(PARAMS), PIECE), max_size=3), raw=st.booleans(),
       method=st.sampled_from(["GET", "HEAD"]))
def test_no_path_gets_a_5xx_or_a_traceback(wsgi_client, template, a, b, c, e, s, params, raw, method):
    path = template.format(a=a if a in FEEDS else _encode(a, raw), b=_encode(b, raw), c=_encode(c, raw),
                           e=_encode(e, raw), s=s)
    check(wsgi_client, path, params, raw, method)


@pytest.mark.parametrize("query", ["since=9999-12-31T23:59:59-23:59", "since=0001-01-01T00:00:00%2B23:59",
                                   "tag=%00", "region=a%00b", "q=%00", "author=%1f", "%00=1", "limit=%C2%B2",
                                   "limit=%D9%A3",
                                   "limit=%00", "since=%ff", "page=%ed%a0%80", "tag=" + "a" * 100_000])
def test_known_bad_parameters_are_400(wsgi_client, query):
    resp = wsgi_client.get("/feeds/latest.rss?" + query)
    assert resp.status_code == 400, resp.data[:300]


def test_a_control_character_in_a_slug_is_404_not_500(wsgi_client):
    for path in ("/feeds/tag/%00.rss", "/feeds/author/a%00b.json", "/ar/feeds/tag/%0a.atom"):
        resp = wsgi_client.get(path)
        assert resp.status_code == 404, (path, resp.data[:200])
