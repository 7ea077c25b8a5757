"""Fetching from HTTP/1.1 keep-alive servers: a reused connection must carry only its own answer.

Every response left partly unread (a redirect, an error or challenge page, a
410) used to go back to the pool dirty, so the next request on that connection,
often another source's, read the leftover body as its status line.
"""
from __future__ import annotations

import dataclasses

import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import CollectConfig
from aggregator.errors import FetchError
from aggregator.fetch import Fetcher

from .conftest import LOOPBACK, SAMPLES
from .faults import KeepAliveServer, Reply

RSS = (SAMPLES / "breaking.rss").read_bytes()
FEED = Reply(200, RSS, {"Content-Type": "application/rss+xml", "ETag": '"v1"'})
PAGE = b"<html><body>" + b"please wait while we check your browser " * 200 + b"</body></html>"


def fetcher() -> Fetcher:
    # per_host=1: one pooled connection, so every request reuses the previous one's
    return Fetcher(dataclasses.replace(CollectConfig(), allow_networks=("127.0.0.0/8",), per_host=1))


def outcome(f: Fetcher, url: str, **kw: str) -> tuple[object, ...]:
    try:
        r = f.fetch(url, **kw)
        return (r.status, len(r.body or b""))
    except FetchError as e:
        return ("error", e.kind, e.status)


def test_same_host_redirect_chain_on_one_connection():
    with KeepAliveServer({"/r": Reply(302, b"moved here", {"Location": "/r2"}),
                          "/r2": Reply(301, b"moved again", {"Location": "/feed"}),
                          "/feed": FEED}) as srv:
        f = fetcher()
        for _ in range(3):
            assert outcome(f, srv.url("/r")) == (200, len(RSS))
        assert srv.requests == ["/r", "/r2", "/feed"] * 3
        assert srv.connections == 1  # every hop and every fetch reused the one connection


@pytest.mark.parametrize("bad", [
    Reply(403, PAGE, {"cf-mitigated": "challenge", "Content-Type": "text/html"}),
    Reply(410, b"this feed is gone for good " * 30),
    Reply(500, b"<h1>internal error</h1>" * 40),
    Reply(404, b"not here"),
    Reply(429, b"slow down", {"Retry-After": "120"}),
    Reply(304, b""),
])
def test_an_error_body_never_reaches_the_next_request(bad: Reply):
    with KeepAliveServer({"/bad": bad, "/feed": FEED}) as srv:
        f = fetcher()
        expected_bad = outcome(f, srv.url("/bad"))
        for _ in range(3):  # interleaved: the good feed right after the bad answer, on its connection
            assert outcome(f, srv.url("/feed")) == (200, len(RSS))
            assert outcome(f, srv.url("/bad")) == expected_bad
        assert srv.connections == 1


def test_a_huge_error_body_costs_its_connection_not_the_next_answer():
    # Reading 5 MB of error page to keep a connection would cost more than a new connection.
    with KeepAliveServer({"/huge": Reply(503, b"x" * 5_000_000), "/feed": FEED}) as srv:
        f = fetcher()
        assert outcome(f, srv.url("/huge")) == ("error", "throttled", 503)
        assert outcome(f, srv.url("/feed")) == (200, len(RSS))
        assert srv.connections == 2  # the dirty connection was dropped, not reused


def test_a_body_over_the_size_cap_is_not_left_on_the_connection():
    with KeepAliveServer({"/big": Reply(200, b"<rss>" + b"a" * 300_000), "/feed": FEED}) as srv:
        f = Fetcher(dataclasses.replace(CollectConfig(), allow_networks=("127.0.0.0/8",), per_host=1,
                                        max_bytes=100_000))
        assert outcome(f, srv.url("/big"))[:2] == ("error", "too-large")
        assert outcome(f, srv.url("/feed")) == (200, len(RSS))


def test_interleaved_sources_on_one_host_each_get_their_own_outcome(config_factory):
    """A whole collect, twice, of sources sharing one keep-alive host: every source gets exactly
    its own outcome on the first run (a 410 is marked gone at once), and the same on the next."""
    routes = {
        "/ok": FEED,
        "/moved": Reply(302, b"see /ok2", {"Location": "/ok2"}),
        "/ok2": Reply(200, RSS.replace(b"<title>", b"<title>Two: ", 1), {"Content-Type": "application/rss+xml"}),
        "/challenge": Reply(403, PAGE, {"cf-mitigated": "challenge"}),
        "/gone": Reply(410, b"removed " * 50),
        "/broken": Reply(500, b"<h1>oops</h1>" * 100),
        "/cond": lambda h: Reply(304) if h.get("If-None-Match") == '"c1"' else Reply(
            200, RSS.replace(b"<title>", b"<title>Cond: ", 1), {"ETag": '"c1"'}),
    }
    with KeepAliveServer(routes) as srv:
        sources = "".join(
            f'[[sources]]\nid = "{name}"\nname = "{name}"\nurl = "{srv.url("/" + name)}"\nsection = "live"\n'
            for name in ("ok", "moved", "challenge", "gone", "broken", "cond"))
        cfg = config_factory(sources, collect=LOOPBACK + "workers = 1\nper_host = 1\n")
        store.init_db(cfg.database_url)
        with Collector(cfg) as c:
            first = {o.source: (o.outcome, o.status, o.error_kind) for o in c.collect().outcomes}
        assert first == {
            "ok": ("ok", 200, None), "moved": ("ok", 200, None), "challenge": ("error", 403, "challenge"),
            "gone": ("error", 410, "gone"), "broken": ("error", 500, "fetch"), "cond": ("ok", 200, None)}
        gone = store.Source.get(store.Source.key == "gone")
        assert gone.disabled_reason and "410" in gone.disabled_reason  # on the first collect
        with Collector(cfg) as c:
            second = {o.source: (o.outcome, o.status, o.error_kind) for o in c.collect().outcomes}
        assert second == {
            "ok": ("unchanged", 200, None),  # this route ignores If-None-Match: same body again
            "moved": ("unchanged", 200, None), "challenge": ("error", 403, "challenge"),
            "broken": ("error", 500, "fetch"), "cond": ("not-modified", 304, None)}
        assert srv.connections <= 2  # the collector reused its connection throughout


# --- broken HTTP: every error a sentence, never an exception's repr -------------------------

@pytest.mark.parametrize("answer,sentence", [
    (b"", "the server closed the connection without answering"),
    (b"HELLO THERE\r\n\r\n", "the server's answer was not valid HTTP"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n<rss>cut off",
     "the server closed the connection before sending the whole body"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 12\r\n\r\nnot gzip at", "compression"),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", "header line too long"),
])
def test_broken_http_is_described_in_a_sentence(answer: bytes, sentence: str):
    from .faults import RawServer

    with RawServer(answer) as srv:
        with pytest.raises(FetchError) as raised:
            fetcher().fetch(srv.url())
    message = str(raised.value)
    assert sentence in message
    for repr_marker in ("Error(", "('", "RemoteDisconnected", "IncompleteRead", "BadStatusLine", "ProtocolError"):
        assert repr_marker not in message, message


def test_a_refused_connection_is_a_sentence():
    from .faults import RawServer

    srv = RawServer(b"")
    srv.listener.close()  # nothing listens there any more
    with pytest.raises(FetchError) as raised:
        fetcher().fetch(srv.url())
    assert raised.value.kind == "fetch"
    assert str(raised.value).endswith("the server refused the connection (nothing listens on that port)")
