"""Breaking news end to end on loopback, as a newsroom runs it: `feedhub run` (gunicorn workers
and the collector) with a local WebSub hub (bench.localhub) for a wire source, and real clients.

Each round times, from the moment the news is sent to feedhub, when it appears
- in /feeds/breaking.json (a client polling it every 20 ms with conditional GET),
- at every one of N Server-Sent Events clients of /feeds/breaking/stream (1,000 by default),
- at a WebSub subscriber of our /feeds/breaking.json (the local hub, pinged by feedhub,
  fetches it and delivers it there),
for three ways in:
- push-in: the wire's hub delivers a new version of its feed (WebSub, signed);
- desk: an editor's push through the admin API (POST /api/v1/breaking);
- polled (the baseline, measured in the same run): a wire feed that names no hub, which feedhub
  sees when it next polls it (every 60 s, the common breaking-source interval); each polled
  round starts at a random moment of the interval, as news does.

Targets (issue 19): p95 under 1 s from push-in to every output; under 300 ms from a desk push to
the stream; every one of 1,000 stream clients within 1 s. The last line is a JSON summary.

    python -m bench.breaking [--clients 1000] [--rounds 20] [--baseline-rounds 3] [--postgres URL]
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.localhub import LocalHub
from bench.overhttp import free_port, wait_for
from bench.serve import bench_config, postgres_url

ROOT = Path(__file__).resolve().parent.parent

SOURCES = """
[[sources]]
id = "wire-push"
name = "Wire (WebSub hub)"
url = "{topic}"
kind = "wire"
edition = "en"
section = "news"
breaking = true
interval = 60

[[sources]]
id = "wire-polled"
name = "Wire (polled, no hub)"
url = "{plain}"
kind = "wire"
edition = "en"
section = "news"
breaking = true
interval = 60
"""


class Arrivals:
    """When each headline was first seen at each output (monotonic seconds), thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.feed: dict[str, float] = {}
        self.websub: dict[str, float] = {}
        self.stream: dict[str, list[float]] = defaultdict(list)

    def seen(self, where: dict[str, float], titles: list[str]) -> None:
        now = time.monotonic()
        with self.lock:
            for title in titles:
                where.setdefault(title, now)


# --- the outputs ---------------------------------------------------------------------------

def poll_feed(port: int, arrivals: Arrivals, stop: threading.Event) -> None:
    """A client polling /feeds/breaking.json every 20 ms with If-None-Match."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    etag = None
    while not stop.wait(0.02):
        try:
            conn.request("GET", "/feeds/breaking.json", headers={"If-None-Match": etag} if etag else {})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                etag = resp.getheader("ETag")
                arrivals.seen(arrivals.feed, [i["title"] for i in json.loads(body)["items"]])
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


async def _stream_client(port: int, arrivals: Arrivals, ready: list[int], failures: list[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /feeds/breaking/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            failures.append(status.decode().strip() or "the connection closed before an answer")
            return
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        ready[0] += 1
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"data: "):
                title = json.loads(line[6:])["title"]
                now = time.monotonic()
                with arrivals.lock:
                    arrivals.stream[title].append(now)
    except OSError as e:
        failures.append(repr(e))


def run_stream_clients(port: int, count: int, arrivals: Arrivals) -> tuple[list[int], list[str]]:
    """``count`` SSE clients on one asyncio loop in a thread of their own; returns (ready, failures)."""
    ready, failures = [0], list[str]()

    def main() -> None:
        async def all_clients() -> None:
            tasks = []
            for i in range(count):
                tasks.append(asyncio.create_task(_stream_client(port, arrivals, ready, failures)))
                if i % 50 == 49:
                    await asyncio.sleep(0.01)  # (the listen backlog is finite)
            await asyncio.gather(*tasks)
        asyncio.run(all_clients())
    threading.Thread(target=main, daemon=True).start()
    return ready, failures


def websub_listener(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, str]:
    """A WebSub subscriber of our breaking feed: verifies, and records headlines delivered."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            challenge = query.get("hub.challenge", [""])[0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(challenge)))
            self.end_headers()
            self.wfile.write(challenge)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                arrivals.seen(arrivals.websub, [i["title"] for i in json.loads(body)["items"]])
            except (ValueError, KeyError):
                pass
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/callback"


# --- feedhub -------------------------------------------------------------------------------

def cli(cfg: Path, *args: str, stdin: str = "") -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "web.cli", "--config", str(cfg), *args], input=stdin, env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout


def api(port: int, token: str, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(data).encode() if data is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def write_config(folder: Path, database_url: str, port: int, hub: LocalHub) -> Path:
    path = bench_config(folder, database_url)
    text = path.read_text(encoding="utf-8")
    text = text.replace("port = 8080", f"port = {port}", 1)
    text = text.replace('base_url = ""', f'base_url = "http://127.0.0.1:{port}"', 1)
    text = text.replace("[collect]\n", '[collect]\nallow_networks = ["127.0.0.0/8"]\n', 1)
    text += f'\n[websub]\nhubs = ["{hub.hub}"]\n\n[stream]\nmax_clients = 5000\n'
    text += SOURCES.format(topic=hub.topic, plain=f"{hub.url}/plain.xml")
    path.write_text(text, encoding="utf-8")
    return path


# --- measuring -----------------------------------------------------------------------------

def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def one_round(send: Any, title: str, arrivals: Arrivals, clients: int, deadline: float) -> dict[str, Any]:
    """Send one headline and wait for every output (or the deadline); latencies in seconds."""
    t0 = time.monotonic()
    send(title)
    end = t0 + deadline
    while time.monotonic() < end:
        with arrivals.lock:
            done = (title in arrivals.feed and title in arrivals.websub and len(arrivals.stream[title]) >= clients)
        if done:
            break
        time.sleep(0.01)
    with arrivals.lock:
        stream = [t - t0 for t in arrivals.stream.get(title, [])]
        return {"feed": arrivals.feed.get(title, float("nan")) - t0,
                "websub": arrivals.websub.get(title, float("nan")) - t0,
                "stream_p95": quantile(stream, 0.95), "stream_max": max(stream) if stream else float("nan"),
                "stream_received": len(stream)}


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def p(key: str, q: float) -> float:
        return round(quantile([r[key] for r in rounds], q), 3)
    return {"rounds": len(rounds),
            "feed_p50": p("feed", 0.5), "feed_p95": p("feed", 0.95),
            "stream_p50": p("stream_p95", 0.5), "stream_p95": p("stream_p95", 0.95),
            "stream_max": round(max(r["stream_max"] for r in rounds), 3) if rounds else None,
            "websub_p50": p("websub", 0.5), "websub_p95": p("websub", 0.95),
            "all_clients_every_round": all(r["stream_received"] >= r["clients"] for r in rounds)}


def main(argv: list[str] | None = None) -> int:  # noqa: C901
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="stream clients held open (default 1000)")
    parser.add_argument("--rounds", type=int, default=20, help="push-in and desk rounds each (default 20)")
    parser.add_argument("--baseline-rounds", type=int, default=3, help="polled rounds (up to 2 min each; default 3)")
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL (a schema of its own) instead of SQLite")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 512)), hard))

    tmp = Path(tempfile.mkdtemp(prefix="feedhub-bench-breaking-"))
    database = postgres_url(args.postgres) if args.postgres else f"sqlite:///{tmp / 'feedhub.db'}"
    arrivals = Arrivals()
    stop = threading.Event()
    with LocalHub() as hub:
        port = free_port()
        cfg = write_config(tmp, database, port, hub)
        cli(cfg, "users", "add", "desk", "--role", "admin", stdin="bench-password-1234\n")
        token = cli(cfg, "users", "token", "desk", "--label", "bench").strip().splitlines()[-1]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server_log = (tmp / "feedhub.log").open("w")  # (a pipe nobody reads would fill and stall it)
        proc = subprocess.Popen([sys.executable, "-m", "web.cli", "--config", str(cfg), "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=server_log)
        try:
            wait_for(f"http://127.0.0.1:{port}/healthz", proc, "feedhub run")
            listener, callback = websub_listener(arrivals)
            hub.subscribe_local(f"http://127.0.0.1:{port}/feeds/breaking.json", callback)
            deadline = time.monotonic() + 120
            while (api(port, token, "GET", "/api/v1/sources/wire-push")["websub"] or {}).get("state") != "active":
                if time.monotonic() > deadline:
                    raise RuntimeError("feedhub did not get subscribed to the wire's hub in 120 s")
                time.sleep(0.2)
            threading.Thread(target=poll_feed, args=(port, arrivals, stop), daemon=True).start()
            ready, failures = run_stream_clients(port, args.clients, arrivals)
            deadline = time.monotonic() + 60
            while ready[0] + len(failures) < args.clients and time.monotonic() < deadline:
                time.sleep(0.05)
            print(f"bench/breaking: `feedhub run` on {'PostgreSQL' if args.postgres else 'SQLite'}, "
                  f"{ready[0]} stream clients open ({len(failures)} refused{': ' + failures[0] if failures else ''}), "
                  f"{os.cpu_count()} cores", flush=True)
            time.sleep(1.0)
            results: dict[str, list[dict[str, Any]]] = {"push_in": [], "desk": [], "polled": []}

            def push_in(title: str) -> None:
                hub.entries.insert(0, (f"g{time.time_ns()}", title, "Delivered by the wire's hub."))
                statuses = hub.publish()
                if statuses != [202]:
                    raise RuntimeError(f"the hub's delivery was answered {statuses}")

            def desk(title: str) -> None:
                api(port, token, "POST", "/api/v1/breaking", {"headline": title})

            def polled(title: str) -> None:
                hub.plain_entries.insert(0, (f"p{time.time_ns()}", title, "Seen when polled."))

            for i in range(args.rounds):
                for kind, send in (("push_in", push_in), ("desk", desk)):
                    r = one_round(send, f"{kind} round {i + 1} headline {time.time_ns()}", arrivals, ready[0], 10)
                    r["clients"] = ready[0]
                    results[kind].append(r)
                    print(f"  round {i + 1:2} {kind:8} feed {r['feed']:6.3f} s, stream p95 {r['stream_p95']:6.3f} s "
                          f"(max {r['stream_max']:6.3f}, {r['stream_received']} clients), "
                          f"WebSub out {r['websub']:6.3f} s", flush=True)
            for i in range(args.baseline_rounds):
                # News breaks at any moment of the poll interval, not just after a poll: each
                # polled round starts at a random point of it (else every round waits a whole one).
                time.sleep(random.uniform(0, 60))
                r = one_round(polled, f"polled round {i + 1} headline {time.time_ns()}", arrivals, ready[0], 75)
                r["clients"] = ready[0]
                results["polled"].append(r)
            listener.shutdown()
        finally:
            stop.set()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = {kind: summarise(rounds) for kind, rounds in results.items()}
    print(f"\n{'way in':10} {'feed p50/p95':>16} {'stream p50/p95 (p95 of clients)':>34} {'WebSub out p50/p95':>20}")
    for kind, s in summary.items():
        print(f"{kind:10} {s['feed_p50']:7.3f}/{s['feed_p95']:6.3f} s {s['stream_p50']:17.3f}/{s['stream_p95']:6.3f} s"
              f"          {s['websub_p50']:7.3f}/{s['websub_p95']:6.3f} s")
    base = summary["polled"]
    ratios = {kind: {out: round(base[f"{out}_p50"] / summary[kind][f"{out}_p50"], 1)
                     for out in ("feed", "stream", "websub") if summary[kind][f"{out}_p50"] > 0}
              for kind in ("push_in", "desk")} if results["polled"] else {}
    targets = {
        "push_in_p95_under_1s": max(summary["push_in"][k] for k in ("feed_p95", "stream_p95", "websub_p95")) < 1.0,
        "desk_stream_p95_under_300ms": summary["desk"]["stream_p95"] < 0.3,
        "every_client_within_1s": summary["push_in"]["stream_max"] < 1.0 and summary["desk"]["stream_max"] < 1.0
        and summary["push_in"]["all_clients_every_round"] and summary["desk"]["all_clients_every_round"],
    }
    print(f"\nfaster than the polled baseline (p50 ratio, same run): {ratios}")
    print(f"targets: {targets}")
    print(json.dumps({"clients": ready[0], "refused": len(failures),
                      "store": "postgresql" if args.postgres else "sqlite",
                      "results": summary, "ratios_vs_polled": ratios, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
