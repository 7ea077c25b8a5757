"""SIGHUP reloads config.toml (issue 13): `serve`, `run` and `collect --loop` take the new
taxonomy, editions and provisioned sources without a restart; an invalid file is refused with
config's own messages and the running config stays."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import load_config

from .conftest import ROOT, close_store, write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(port: int, path: str) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def until(check, what: str, seconds: float = 60):  # a deadline for a hung test, not a speed claim
    deadline = time.monotonic() + seconds
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return found


def start(cfg: Path, *command: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEEDHUB_CONFIG")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, "-m", "web.cli", "--config", str(cfg), *command], env=env,
                            cwd=cfg.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("command", ["serve", "run"])
def test_sighup_takes_a_new_region_and_refuses_a_broken_file(tmp_path: Path, db_url: str, command: str):
    port = free_port()
    cfg = write_config(tmp_path, db_url, extra="\n[admin]\nenabled = true\n")
    text = cfg.read_text(encoding="utf-8").replace("port = 8080", f"port = {port}")
    assert f"port = {port}" in text
    cfg.write_text(text, encoding="utf-8")
    proc = start(cfg, command)
    try:
        until(lambda: status_of(port, "/feeds/latest.rss") == 200, "the server")
        assert status_of(port, "/feeds/region/arctic.rss") == 404
        cfg.write_text(text.replace('[regions]\n', '[regions]\narctic = "Arctic"\n'), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        until(lambda: status_of(port, "/feeds/region/arctic.rss") == 200, "the reloaded region")
        # A broken file: refused, and the running config (with the new region) stays.
        cfg.write_text(text.replace('[regions]\n', '[regions]\narctic = "Arctic"\n')
                       .replace('section = "news"', 'section = "nwes"', 1), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)  # (no event to wait on: the old config simply stays)
        assert status_of(port, "/feeds/region/arctic.rss") == 200
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"{command} did not stop on SIGTERM:\n{err}") from None
    assert "not reloaded, the running configuration stays" in err
    assert "unknown section 'nwes'; did you mean 'news'?" in err
    assert "SIGHUP: reloaded" in err


def test_sighup_makes_collect_loop_provision_a_new_source(tmp_path: Path, db_url: str, samples_dir: Path):
    cfg = write_config(tmp_path, db_url)
    text = cfg.read_text(encoding="utf-8")
    proc = start(cfg, "collect", "--loop")
    store.init_db(load_config(cfg, environ={}).database_url)
    try:
        until(lambda: any(h.last_fetched_at for h in store.sources_health()), "the first collect")
        cfg.write_text(text + '\n[[sources]]\nid = "second-ticker"\nname = "Second ticker"\n'
                              'url = "samples/breaking.rss"\nkind = "cms"\nbreaking = true\n'
                              .replace("samples/breaking.rss", "samples/ticker-copy.rss"), encoding="utf-8")
        (samples_dir / "ticker-copy.rss").write_bytes((samples_dir / "breaking.rss").read_bytes())
        proc.send_signal(signal.SIGHUP)
        found = until(lambda: [h for h in store.sources_health(["second-ticker"]) if h.last_fetched_at],
                      "the new source collected by the running loop")
        assert found[0].managed == "config" and found[0].status == "ok"
    finally:
        stop(proc)
        close_store()


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, as systemd stops a service; killed if it has not stopped within a minute."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def test_a_collector_reload_uses_the_new_taxonomy_from_its_next_run(tmp_path: Path, db_url: str):
    cfg = load_config(write_config(tmp_path, db_url), environ={})
    store.init_db(cfg.database_url)
    with Collector(cfg) as c:
        c.collect()
        text = cfg.path.read_text(encoding="utf-8").replace('[regions]\n', '[regions]\narctic = "Arctic"\n')
        cfg.path.write_text(text, encoding="utf-8")
        c.reload(load_config(cfg.path, environ={}))
        c.collect()
        assert "arctic" in c.ctx.taxonomy.regions and "arctic" in c.config.taxonomy.regions
    close_store()
