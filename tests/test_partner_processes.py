"""Partner limits and usage across two web processes (issue 14): `feedhub serve` twice on one
store, requests split between them; the usage counts add up exactly and one allowance holds for
both (in the store, and in Redis)."""
from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from aggregator import admin, store
from aggregator.config import load_config

from .conftest import close_store, write_config
from .test_reload import free_port, start, status_of, until

PROFILE = """
[partners.profiles.tight]
rate_limit = 1
burst = 6
"""


def _two_servers(tmp_path: Path, db_url: str, extra: str = "") -> tuple[Path, list[int], list]:
    cfg = write_config(tmp_path, db_url, extra=PROFILE + extra)
    config = load_config(cfg, environ={})
    store.init_db(config.database_url)
    procs, ports = [], []
    for _ in range(2):
        port = free_port()
        text = cfg.read_text(encoding="utf-8")
        other = cfg.with_name(f"config-{port}.toml")
        other.write_text(text.replace("port = 8080", f"port = {port}"), encoding="utf-8")
        procs.append(start(other, "serve"))
        ports.append(port)
    for port in ports:
        until(lambda p=port: status_of(p, "/healthz") == 200, f"the server on {port}")
    return cfg, ports, procs


def _stop(procs: list) -> list[str]:
    errs = []
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        errs.append(proc.communicate(timeout=60)[1])
    return errs


@pytest.mark.parametrize("redis", [False, True], ids=["store-buckets", "redis-buckets"])
def test_one_allowance_and_exact_usage_across_two_processes(tmp_path: Path, db_url: str, redis: bool):
    import http.client

    extra = '\n[cache]\nredis_url = "redis://127.0.0.1:6379/15"\n' if redis else ""
    cfg, ports, procs = _two_servers(tmp_path, db_url, extra)
    config = load_config(cfg, environ={})
    name = f"gazette-{uuid.uuid4().hex[:6]}"
    key = admin.add_partner(admin.Actor("t", "admin", "cli"), name, "tight", "", config, store.utcnow()).result[1]
    statuses = []
    try:
        for i in range(10):  # alternating between the two processes
            conn = http.client.HTTPConnection("127.0.0.1", ports[i % 2], timeout=60)
            conn.request("GET", f"/partner/{key}/feeds/latest.rss", headers={"User-Agent": f"Bot/{i % 2}"})
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
            conn.close()
    finally:
        errs = _stop(procs)  # each writes what it counted and had not written yet
    # Six in the burst, shared by both processes; the rest over the limit (1 a minute).
    assert statuses[:6] == [200] * 6 and statuses[6:] == [429] * 4, (statuses, errs)
    partner = store.partner(name)
    usage = store.partner_usage(partner.id, store.utcnow().date())
    assert [(u.feed, u.requests, u.ok, u.limited) for u in usage] == [("/feeds/latest.rss", 10, 6, 4)]
    assert store.partner_agents(partner.id, store.utcnow().date()) == ["Bot/0", "Bot/1"]
    close_store()
