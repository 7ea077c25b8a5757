"""Serving over real HTTP, as users see it: `feedhub serve` started as a user starts it, driven by
wrk, against baselines measured in the same run on the same machine:

- bare: a WSGI app that only returns the same bytes and headers (and the same 304), served by
  the same server (gunicorn, feedhub's own settings: workers, threads, keep-alive);
- nginx: the same bytes as a static file, one nginx worker per feedhub worker (if nginx is
  installed: `make bench-tools`).

Each figure is requests/s over the run (wrk -t2 -c32 by default); the contestants take turns,
round after round, and the median of the rounds is reported, so a slow minute of the machine
falls on all of them alike.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: the headers of feedhub's answer that the bare app sends too (same bytes on the wire, nearly)
COPIED = ("content-type", "etag", "last-modified", "cache-control", "vary", "link", "x-content-type-options")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_for(url: str, proc: subprocess.Popen[bytes], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            if fetch(url)[0] < 500:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer in {seconds:g} s")


@contextmanager
def process(argv: list[str], url: str, what: str, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    try:
        wait_for(url, proc, what)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- the bare baseline: same bytes, same server ---------------------------------------------

def bare_app(body: bytes, headers: list[tuple[str, str]], etag: str) -> Any:
    """A WSGI app that does nothing but answer with ``body`` (or 304 for exactly ``etag``)."""
    full = [*headers, ("Content-Length", str(len(body)))]
    not_modified = [(k, v) for k, v in headers if k.lower() != "content-type"]

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            start_response("304 Not Modified", list(not_modified))
            return []
        start_response("200 OK", list(full))
        return [body]
    return app


def serve_bare(config_path: str, body_path: str, headers_path: str, port: int) -> None:
    """Run the bare app under gunicorn with feedhub's own settings for ``config_path``."""
    from gunicorn.app.base import BaseApplication

    from aggregator.config import load_config
    from web.server import settings

    config = load_config(Path(config_path))
    lines = Path(headers_path).read_text(encoding="utf-8").splitlines()
    headers = [(k, v) for k, _, v in (line.partition(": ") for line in lines)]
    etag = dict((k.lower(), v) for k, v in headers).get("etag", "")
    app = bare_app(Path(body_path).read_bytes(), headers, etag)

    class Bare(BaseApplication):
        def load_config(self) -> None:
            for key, value in settings(config, [f"127.0.0.1:{port}"]).items():
                self.cfg.set(key, value)
            self.cfg.set("proc_name", "feedhub-bare")

        def load(self) -> Any:
            return app
    Bare().run()


# --- nginx ------------------------------------------------------------------------------------

def nginx_conf(folder: Path, port: int, workers: int) -> Path:
    (folder / "logs").mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(f"""
worker_processes {workers};
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {folder}/tmp;
    proxy_temp_path {folder}/tmp;
    fastcgi_temp_path {folder}/tmp;
    uwsgi_temp_path {folder}/tmp;
    scgi_temp_path {folder}/tmp;
    types {{ application/rss+xml rss; }}
    server {{
        listen 127.0.0.1:{port};
        root {folder}/www;
    }}
}}
""", encoding="utf-8")
    (folder / "tmp").mkdir(exist_ok=True)
    return conf


# --- wrk ----------------------------------------------------------------------------------------

@dataclass
class Load:
    threads: int = 2
    connections: int = 32
    seconds: float = 10.0


def wrk(url: str, load: Load, headers: dict[str, str] | None = None) -> float:
    """Requests/s wrk measured at ``url``; every answer must be 2xx or 3xx."""
    argv = ["wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{load.seconds:g}s"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or (errors and re.search(r"[1-9]", errors.group(1).split("timeout")[0])):
        raise RuntimeError(f"wrk saw failed requests at {url}:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(found.group(1))


@dataclass
class Contestant:
    name: str
    url: str
    headers: dict[str, str]
    rates: list[float]


def measure(contestants: list[Contestant], load: Load, rounds: int, log: Any) -> None:
    for r in range(rounds):
        for c in contestants:
            c.rates.append(wrk(c.url, load, c.headers))
            log(f"    round {r + 1}: {c.name}: {c.rates[-1]:,.0f} req/s")


def median(c: Contestant) -> float:
    return statistics.median(c.rates)


def run(config_path: Path, load: Load, rounds: int, log: Any, path: str = "/feeds/latest.rss") -> dict[str, Any]:
    """Measure one store (the config's database, already collected) over HTTP; returns figures."""
    from aggregator.config import load_config
    from web.server import worker_count

    config = load_config(config_path)
    workers = worker_count(config)
    feedhub_cmd = Path(sys.executable).parent / "feedhub"  # the installed command, as users run it
    tmp = Path(tempfile.mkdtemp(prefix="feedhub-overhttp-"))
    tmp.chmod(0o755)  # nginx's workers run as another user when started as root
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port, bare_port, nginx_port = free_port(), free_port(), free_port()
    results: dict[str, Any] = {"workers": workers, "threads": config.server.threads,
                               "wrk": f"-t{load.threads} -c{load.connections} -d{load.seconds:g}s",
                               "rounds": rounds, "path": path}
    try:
        with process([str(feedhub_cmd), "--config", str(config_path), "serve", "--port", str(port)],
                     f"http://127.0.0.1:{port}/healthz", "feedhub serve", env=env, cwd=config_path.parent):
            url = f"http://127.0.0.1:{port}{path}"
            status, headers, body = fetch(url)
            if status != 200:
                raise RuntimeError(f"{url} answered {status}")
            etag = headers["etag"]
            if fetch(url, {"If-None-Match": etag})[0] != 304:
                raise RuntimeError(f"{url} did not answer 304 to its own ETag")
            (tmp / "body").write_bytes(body)
            (tmp / "headers").write_text("\n".join(f"{k}: {headers[k]}" for k in COPIED if k in headers),
                                         encoding="utf-8")
            contestants = [Contestant("feedhub", url, {}, []),
                           Contestant("feedhub 304", url, {"If-None-Match": etag}, [])]
            bare_argv = [sys.executable, "-c", "import sys; from bench.overhttp import serve_bare; "
                         "serve_bare(*sys.argv[1:4], int(sys.argv[4]))",
                         str(config_path), str(tmp / "body"), str(tmp / "headers"), str(bare_port)]
            with process(bare_argv, f"http://127.0.0.1:{bare_port}/", "the bare app", env=env, cwd=ROOT):
                bare_url = f"http://127.0.0.1:{bare_port}{path}"
                assert fetch(bare_url)[2] == body
                contestants += [Contestant("bare", bare_url, {}, []),
                                Contestant("bare 304", bare_url, {"If-None-Match": etag}, [])]
                with nginx(tmp, nginx_port, workers, body, path) as nginx_url:
                    if nginx_url:
                        nginx_etag = fetch(nginx_url)[1]["etag"]
                        contestants += [Contestant("nginx", nginx_url, {}, []),
                                        Contestant("nginx 304", nginx_url, {"If-None-Match": nginx_etag}, [])]
                    for c in contestants:  # warm: every cache filled, every worker started
                        wrk(c.url, Load(load.threads, load.connections, 1), c.headers)
                    measure(contestants, load, rounds, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["rps"] = {c.name: round(median(c)) for c in contestants}
    results["bytes"] = len(body)
    return results


@contextmanager
def nginx(folder: Path, port: int, workers: int, body: bytes, path: str) -> Iterator[str | None]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        yield None
        return
    www = folder / "www" / path.lstrip("/")
    www.parent.mkdir(parents=True, exist_ok=True)
    www.write_bytes(body)
    conf = nginx_conf(folder, port, workers)
    with process([binary, "-c", str(conf), "-p", str(folder)], f"http://127.0.0.1:{port}{path}", "nginx"):
        yield f"http://127.0.0.1:{port}{path}"


def report(results: dict[str, Any], label: str) -> list[str]:
    """Table rows (markdown) with ratios to the bare app and to nginx."""
    rps = results["rps"]
    rows = [f"| {label} | requests/s | vs bare app, same server | vs nginx static |", "|---|---|---|---|"]
    for name in ("nginx", "nginx 304", "bare", "bare 304", "feedhub", "feedhub 304"):
        if name not in rps:
            continue
        kind = " 304" if name.endswith("304") else ""
        bare = rps.get("bare" + kind)
        ng = rps.get("nginx" + kind)
        rows.append(f"| {name} | {rps[name]:,} | {rps[name] / bare:.2f}x | "
                    f"{f'{rps[name] / ng:.2f}x' if ng else 'n/a'} |")
    return rows
