"""One health computation: `feedhub sources`, /healthz and /metrics say the same of every source."""
from __future__ import annotations

import json
import re

from aggregator import store
from aggregator.collect import Collector

from .conftest import LOOPBACK
from .faults import KeepAliveServer, Reply
from .test_cli import feedhub

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://t.example.org/</link>' \
      b"<description>d</description><item><title>One</title><link>https://t.example.org/1</link></item></channel></rss>"


def test_every_view_gives_each_source_the_same_status(config_factory, tmp_path):
    with KeepAliveServer({"/ok": Reply(200, RSS), "/gone": Reply(410, b"gone"), "/broken": Reply(500, b"x")}) as srv:
        sources = "".join(f'[[sources]]\nid = "{n}"\nname = "{n}"\nurl = "{srv.url("/" + n)}"\n'
                          for n in ("ok", "gone", "broken"))
        sources += '[[sources]]\nid = "later"\nname = "later"\nurl = "https://never.example.org/f"\n'
        sources += '[[sources]]\nid = "off"\nname = "off"\nurl = "https://off.example.org/f"\nenabled = false\n'
        cfg = config_factory(sources, collect=LOOPBACK)
        store.init_db(cfg.database_url)
        with Collector(cfg) as c:
            c.collect(source_ids=["ok", "gone", "broken"])
    expected = {"ok": "ok", "gone": "gone", "broken": "failing", "later": "never", "off": "disabled"}
    assert {h.key: h.status for h in store.sources_health()} == expected
    assert store.status_counts() == {"ok": 1, "failing": 1, "gone": 1, "never": 1, "disabled": 1}
    # the command line
    listed = json.loads(feedhub("--config", str(tmp_path / "config.toml"), "sources", "--json", cwd=tmp_path).stdout)
    assert {d["id"]: d["status"] for d in listed} == expected
    assert {d["id"]: d["entries_stored"] for d in listed}["ok"] == 1
    assert all(d["last_fetched_at"] is None or d["last_fetched_at"].endswith("Z") for d in listed)
    # /healthz and /metrics: a gone source is gone, not failing
    from web import create_app

    client = create_app(cfg).test_client()
    assert client.get("/healthz").json["failing_sources"] == 1
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r"^feedhub_failing_sources 1\.0$", text, re.M)
    assert re.search(r"^feedhub_gone_sources 1\.0$", text, re.M)
    for status, count in {"ok": 1, "failing": 1, "gone": 1, "never": 1, "disabled": 1}.items():
        assert re.search(rf'^feedhub_sources{{status="{status}"}} {count}\.0$', text, re.M), status
