"""WebSub in (issue 19): feedhub subscribes to the hub a source names, the hub verifies and
delivers, and the delivery is stored like a fetched body. Against a real hub on 127.0.0.1
(bench.localhub) and the app served over real HTTP; the collector runs in this process."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import Config, load_config
from aggregator.subscribe import discover, signature_problem
from bench.localhub import LocalHub, atom_feed

from .conftest import LOOPBACK, close_store, write_config
from .test_reload import free_port, until

SOURCE = """
[[sources]]
id = "wire"
name = "Wire desk"
url = "{url}"
kind = "wire"
section = "news"
interval = 60
"""


@contextmanager
def newsroom(tmp_path: Path, db_url: str, hub: LocalHub, websub: str = "") -> Iterator[tuple[Config, int]]:
    """The app served on a free port, its base_url that port, with one source: the hub's feed."""
    import waitress

    from web import create_app

    port = free_port()
    cfg_path = write_config(tmp_path, db_url, sources=SOURCE.format(url=hub.topic),
                            extra="\n[websub]\nlease_seconds = 600\nverify_timeout = 30\n" + websub,
                            collect=LOOPBACK)
    text = cfg_path.read_text(encoding="utf-8").replace('base_url = ""', f'base_url = "http://127.0.0.1:{port}"')
    cfg_path.write_text(text, encoding="utf-8")
    config = load_config(cfg_path, environ={})
    app = create_app(config)
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield config, port
    finally:
        server.close()
        server.task_dispatcher.shutdown()
        app.extensions["feedhub.usage"].close()
        app.extensions["feedhub.streams"].close()
        close_store()


def source() -> store.Source:
    return store.Source.get(store.Source.key == "wire")


def subscription() -> store.websub.Subscription | None:
    sid = source().id
    return store.websub.by_source([sid]).get(sid)


def active(collector: Collector, hub: LocalHub) -> store.websub.Subscription:
    """Collect (the feed names the hub), ask the hub, and wait for its verification."""
    assert not collector.collect().failed
    sub = subscription()
    assert sub is not None and sub.state == "new" and sub.hub == hub.hub and sub.topic == hub.topic
    collector.subscriptions.tick(store.aware(store.utcnow()))
    assert subscription().state in ("requested", "active")
    sub = until(lambda: (s := subscription()) is not None and s.state == "active" and s, "the hub's verification")
    until(lambda: hub.subscribers, "the hub to count the subscriber (after our answer)")
    return sub


def shown_state(config: Config, port: int) -> dict[str, dict]:
    """The subscription as `feedhub sources --json` and GET /api/v1/sources/wire show it."""
    import contextlib
    import io

    from aggregator import auth
    from web import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["--config", str(config.path), "sources", "--json"]) == 0
    (listed,) = [s for s in json.loads(out.getvalue()) if s["id"] == "wire"]
    token = auth.new_token()
    try:
        store.add_user("websub-admin", "admin", auth.hash_password("a long enough password"), store.utcnow())
    except store.UserExists:
        pass
    store.add_token("websub-admin", "tests", auth.token_digest(token), store.utcnow())
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/sources/wire",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return {"cli": listed["websub"], "api": json.load(r)["websub"]}


def titles(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/feeds/latest.json?limit=200", timeout=10) as r:
        return [i["title"] for i in json.load(r)["items"]]


def test_subscribe_verify_deliver_renew(tmp_path: Path, db_url: str):
    with LocalHub(lease_seconds=600) as hub, newsroom(tmp_path, db_url, hub) as (config, port), \
            Collector(config) as collector:
        sub = active(collector, hub)
        assert sub.lease_seconds == 600 and sub.expires_at is not None
        assert hub.seen("subscribe-verified") == [f"http://127.0.0.1:{port}/websub/callback/{sub.callback_id}"]
        # the source still polls, as a safety net, at the push interval
        row = source()
        assert "A first wire story" in titles(port)

        hub.entries.insert(0, ("second", "Pushed: flood warning upriver", "Delivered by the hub."))
        assert hub.publish() == [202]
        assert collector.take_deliveries() == 1
        assert "Pushed: flood warning upriver" in titles(port)
        health = [h for h in store.sources_health() if h.key == "wire"][0]
        assert health.websub["state"] == "active" and health.websub["deliveries"] == 1
        assert store.fetch_log(row.id, 1)[0].outcome == "pushed"
        shown = shown_state(config, port)
        assert shown["cli"]["state"] == shown["api"]["state"] == "active"
        assert shown["api"]["hub"] == hub.hub and shown["api"]["topic"] == hub.topic
        assert "secret" not in shown["api"] and shown["cli"]["deliveries"] == 1

        # renewal: due at 80 % of the lease; the hub verifies again and the lease moves on
        later = store.aware(store.utcnow()) + timedelta(seconds=600 * 0.8 + 1)
        assert collector.subscriptions.tick(later) == 1
        until(lambda: len(hub.seen("subscribe-verified")) == 2, "the renewal's verification")
        renewed = until(lambda: (s := subscription()).verified_at > sub.verified_at and s, "the renewal stored")
        assert renewed.state == "active" and renewed.expires_at > sub.expires_at
        assert len(hub.seen("subscribe-request")) == 2


def test_a_pushed_source_polls_at_the_push_interval(tmp_path: Path, db_url: str):
    with LocalHub() as hub, newsroom(tmp_path, db_url, hub, "push_poll_interval = 3600\n") as (config, _), \
            Collector(config) as collector:
        active(collector, hub)
        collector._pushed = (0.0, set())  # (read again: the subscription became active just now)
        assert not collector.collect(source_ids=["wire"]).failed
        due = source().next_due_at
        assert due - store.utcnow() > timedelta(seconds=3600 * 0.8)  # (jitter aside)


def test_bad_signature_and_replay_are_not_applied(tmp_path: Path, db_url: str):
    with LocalHub() as hub, newsroom(tmp_path, db_url, hub) as (config, port), Collector(config) as collector:
        active(collector, hub)
        hub.entries.insert(0, ("forged", "Forged headline", "Not from the hub."))
        assert hub.publish(secret="not-the-secret") == [403]
        sub = subscription()
        assert sub.rejected == 1 and "does not match" in sub.last_error
        assert collector.take_deliveries() == 0 and "Forged headline" not in titles(port)

        # no signature at all
        body = hub.feed()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/websub/callback/{sub.callback_id}", data=body,
                                     method="POST", headers={"Content-Type": "application/atom+xml"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 403 and b"X-Hub-Signature" in refused.value.read()

        hub.entries[0] = ("genuine", "Genuine pushed headline", "From the hub.")
        body = hub.feed()
        assert hub.publish(body=body) == [202]
        assert hub.publish(body=body) == [200]  # the same content again: acknowledged, not kept twice
        assert collector.take_deliveries() == 1
        assert titles(port).count("Genuine pushed headline") == 1


def test_a_hub_that_never_verifies_is_asked_again_and_said(tmp_path: Path, db_url: str):
    with LocalHub(verify=False) as hub, newsroom(tmp_path, db_url, hub) as (config, port), \
            Collector(config) as collector:
        assert not collector.collect().failed
        now = store.aware(store.utcnow())
        collector.subscriptions.tick(now)
        sub = subscription()
        assert sub.state == "requested" and sub.last_error is None
        assert collector.subscriptions.tick(now + timedelta(seconds=10)) == 0  # not due yet
        assert collector.subscriptions.tick(now + timedelta(seconds=31)) == 1
        sub = subscription()
        assert sub.state == "requested" and "did not verify" in sub.last_error and sub.attempts == 2
        assert len(hub.seen("subscribe-request")) == 2
        # a verification for a topic we did not ask for, or an id we never gave, is refused
        base = f"http://127.0.0.1:{port}/websub/callback"
        for url in (f"{base}/{sub.callback_id}?hub.mode=subscribe&hub.topic=http://elsewhere/&hub.challenge=x",
                    f"{base}/nope?hub.mode=subscribe&hub.topic={hub.topic}&hub.challenge=x",
                    f"{base}/{sub.callback_id}?hub.mode=unsubscribe&hub.topic={hub.topic}&hub.challenge=x"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url, timeout=10)
            assert refused.value.code == 404
        # content before verification is not taken as a subscription's (signature or not)
        assert subscription().state == "requested"


def test_disabling_a_source_unsubscribes(tmp_path: Path, db_url: str):
    with LocalHub() as hub, newsroom(tmp_path, db_url, hub) as (config, port), Collector(config) as collector:
        sub = active(collector, hub)
        # the operator disables it in config.toml and reloads (as SIGHUP does)
        text = config.path.read_text(encoding="utf-8").replace('interval = 60\n', 'interval = 60\nenabled = false\n')
        config.path.write_text(text, encoding="utf-8")
        collector.reload(load_config(config.path, environ={}))
        collector.collect()  # (syncs the sources with the file)
        assert not source().enabled
        collector.subscriptions.tick(store.aware(store.utcnow()))
        assert store.websub.by_callback(sub.callback_id).state in ("unsubscribing", "ended")
        until(lambda: store.websub.by_callback(sub.callback_id).state == "ended", "the hub's unsubscribe verification")
        until(lambda: not hub.subscribers, "the hub to drop the subscriber (after our answer)")
        assert hub.seen("unsubscribe-verified")
        # a hub that delivers anyway is told the subscription has ended
        signature = hmac.new(sub.secret.encode(), b"<feed/>", hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/websub/callback/{sub.callback_id}", data=b"<feed/>",
                                     method="POST", headers={"X-Hub-Signature": f"sha256={signature}"})
        with pytest.raises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(req, timeout=10)
        assert gone.value.code == 410


def test_hostile_content_from_a_hub_is_refused_and_the_store_stays_whole(tmp_path: Path, db_url: str):
    with LocalHub() as hub, newsroom(tmp_path, db_url, hub) as (config, port), Collector(config) as collector:
        active(collector, hub)
        before = titles(port)
        assert hub.publish(body=b"<html><body>not a feed</body></html>", content_type="text/html") == [202]
        assert collector.take_deliveries() == 1
        sub = subscription()
        assert "not stored" in sub.last_error and "HTML page" in sub.last_error
        assert titles(port) == before
        assert source().lease_owner is None  # the claim was given back
        hub.entries.insert(0, ("after", "After the bad delivery", "Fine again."))
        assert hub.publish() == [202]
        assert collector.take_deliveries() == 1 and "After the bad delivery" in titles(port)


def test_no_subscription_without_a_base_url(tmp_path: Path, db_url: str):
    with LocalHub() as hub:
        cfg = load_config(write_config(tmp_path, db_url, sources=SOURCE.format(url=hub.topic), collect=LOOPBACK),
                          environ={})
        store.init_db(cfg.database_url)
        with Collector(cfg) as collector:
            assert not collector.collect().failed
            assert collector.subscriptions.tick(store.aware(store.utcnow())) == 0
        assert store.websub.by_source() == {} and not hub.seen("subscribe-request")
        close_store()


def test_discovery_reads_headers_atom_rss_and_json_feed():
    url = "https://wire.example.org/feed"
    atom = atom_feed("https://hub.example.org/", "https://wire.example.org/feed.xml", [("a", "t", "s")])
    assert discover(atom, {}, url) == (["https://hub.example.org/"], "https://wire.example.org/feed.xml")
    rss = (b'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
           b"<title>t</title><atom:link href='/hub' rel='hub'/><atom:link rel=\"self\" href=\"/rss\"/>"
           b'<item><title>x</title><atom:link rel="hub" href="https://not-this.example/"/></item></channel></rss>')
    assert discover(rss, {}, url) == (["https://wire.example.org/hub"], "https://wire.example.org/rss")
    header = {"Link": '<https://hub.example.net/>; rel="hub", <https://wire.example.org/topic>; rel="self"'}
    assert discover(b"<rss/>", header, url) == (["https://hub.example.net/"], "https://wire.example.org/topic")
    jf = json.dumps({"version": "https://jsonfeed.org/version/1.1", "feed_url": "https://wire.example.org/f.json",
                     "hubs": [{"type": "WebSub", "url": "https://hub.example.org/j"}, {"type": "rssCloud", "url": "x"}],
                     "items": []}).encode()
    assert discover(jf, {}, url) == (["https://hub.example.org/j"], "https://wire.example.org/f.json")
    assert discover(b"<rss><channel><item/></channel></rss>", {}, url) == ([], None)
    assert discover(b'<feed><link rel="hub" href="javascript:alert(1)"/></feed>', {}, url) == ([], None)


def test_signatures():
    body = b"content"
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature_problem("s3cret", body, good) is None
    assert signature_problem("s3cret", body, "sha1=" + hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()) is None
    assert "does not match" in signature_problem("s3cret", body + b"!", good)
    assert "no X-Hub-Signature" in signature_problem("s3cret", body, None)
    assert "md5" in signature_problem("s3cret", body, "md5=abc")
