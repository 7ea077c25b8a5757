"""bench/ingest: how fast feedhub collects, against baselines measured in the same run.

Serves N synthetic feeds from a local HTTP server on 127.0.0.1 (its own process). By default
the corpus is mixed as a newsroom's sources are: RSS 2.0, Atom 1.0, JSON Feed 1.1 and RSS 1.0
in turn, with media, Dublin Core and content namespaces, every tenth feed five times larger
(``--rss-only``: plain RSS 2.0, the corpus of earlier runs). It measures:
- baseline: feedparser alone parsing the same bodies, one process (JSON Feed bodies, which
  feedparser does not read, are given to json.loads: the cheapest reading there is);
- the command: the wall time of `feedhub collect` as a user runs it, start-up included, on an
  empty SQLite store (cold) and again (warm: every server answers 304; fastest of three);
- lemon24/reader (``--reader``): its cold update of the same feeds, as a command in a venv of
  its own that the bench creates (pip install reader), start-up included;
- in process: a full collect into an empty SQLite store (fetch, parse, normalise, store), the
  parse processes started before the clock;
- warm 304: the same collect again, every server answering 304 Not Modified;
- warm unchanged: again, the server sending the same bodies without validators
  (the body hash spares parsing and writing);
each warm collect is run three times and the fastest reported.
Prints ratios (cold vs baseline, cold vs each warm run); the last line is one
JSON object with every figure.

    python -m bench.ingest                # 500 feeds x 50 entries
    python -m bench.ingest --quick        # 120 x 30
    python -m bench.ingest --reader       # also lemon24/reader (creates its venv once)
"""
from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import feedparser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator import store  # noqa: E402
from aggregator.collect import Collector  # noqa: E402
from aggregator.config import load_config  # noqa: E402
from bench.feedserver import ProcessFeedServer, sources_toml  # noqa: E402


def write_config(folder: Path, server: ProcessFeedServer, feeds: int, workers: int, name: str = "bench") -> Path:
    base = (ROOT / "config.toml").read_text(encoding="utf-8")
    head = base.partition("# --- the bundled sample newsroom")[0]
    head = head.replace('url = "sqlite:///var/feedhub.db"', f'url = "sqlite:///{folder}/{name}.db"')
    # One local server stands in for many hosts: lift the per-host limit to the thread count.
    head = head.replace("workers = 4\n", f'workers = {workers}\nper_host = {workers}\n'
                        'allow_networks = ["127.0.0.0/8"]\njitter = 0.0\n')
    (folder / "samples").mkdir(exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(head + "\n" + sources_toml(server, feeds), encoding="utf-8")
    return path


def baseline_parse(bodies: list[bytes]) -> int:
    """Entries read by feedparser alone (json.loads for JSON Feed, which feedparser does not read)."""
    count = 0
    for body in bodies:
        if body[:1] == b"{":
            count += len(json.loads(body)["items"])
        else:
            count += len(feedparser.parse(io.BytesIO(body)).entries)
    return count


def command_seconds(argv: list[str], cwd: Path) -> float:
    """Wall time of a whole command, from spawning it to its exit (which must be 0)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEEDHUB_CONFIG")}
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


READER_SCRIPT = """
import sys
from reader import make_reader
reader = make_reader(sys.argv[1])
for url in sys.argv[3:]:
    reader.add_feed(url, exist_ok=True)
reader.update_feeds(workers=int(sys.argv[2]))
print(reader.get_entry_counts().total)
"""


def reader_python() -> Path:
    """A venv of its own with lemon24/reader (created once, under ~/.cache)."""
    venv = Path.home() / ".cache" / "feedhub-bench" / "reader-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"  (creating {venv} with lemon24/reader: pip install reader sgmllib3k)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "reader", "sgmllib3k"], check=True)
    return python


def reader_cold(urls: list[str], workers: int, folder: Path) -> tuple[float, int]:
    """lemon24/reader's cold update of ``urls`` as a command: (wall seconds, entries stored)."""
    python = reader_python()
    script = folder / "reader_update.py"
    script.write_text(READER_SCRIPT, encoding="utf-8")
    db = folder / "reader.sqlite"
    t0 = time.perf_counter()
    done = subprocess.run([str(python), str(script), str(db), str(workers), *urls], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"reader failed: {done.stderr[-2000:]}")
    return seconds, int(done.stdout.split()[-1])


WARM_RUNS = 3


def timed_outcomes(collector: Collector, expected: str) -> float:
    """Seconds for one collect in which every source ends with the ``expected`` outcome."""
    seconds, summary = timed(collector.collect)
    assert {o.outcome for o in summary.outcomes} == {expected}
    return seconds


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller run (120 feeds x 30 entries)")
    p.add_argument("--feeds", type=int)
    p.add_argument("--entries", type=int)
    p.add_argument("--workers", type=int, default=8, help="collector fetch threads")
    p.add_argument("--rss-only", action="store_true", help="plain RSS 2.0 only (the corpus of earlier runs)")
    p.add_argument("--reader", action="store_true", help="also time lemon24/reader (in a venv of its own)")
    args = p.parse_args(argv)
    feeds = args.feeds or (120 if args.quick else 500)
    entries = args.entries or (30 if args.quick else 50)
    mixed = not args.rss_only

    # An installed feedhub imports compiled modules: pip compiles them, and Python writes them at
    # the first run. A machine that sets PYTHONDONTWRITEBYTECODE (this project's does) would
    # compile every module at every start of the command, which no user's command does (0.1 s
    # of a warm collect's 0.7), so they are compiled first, as that first run would.
    compileall.compile_dir(str(ROOT / "aggregator"), quiet=1)
    compileall.compile_dir(str(ROOT / "feeds"), quiet=1)
    compileall.compile_dir(str(ROOT / "web"), quiet=1)
    # The feed server runs in its own process, as the feeds of a real collector run elsewhere.
    with ProcessFeedServer(feeds, entries, mixed=mixed) as server, tempfile.TemporaryDirectory() as tmp:
        bodies = list(server.bodies.values())
        t_base, total = timed(lambda: baseline_parse(bodies))
        corpus = ("mixed: RSS 2.0, Atom 1.0, JSON Feed 1.1, RSS 1.0 in turn, media/dc/content namespaces, "
                  "every 10th feed 5x larger" if mixed else "plain RSS 2.0")
        print(f"bench/ingest: {feeds} feeds, {total} entries ({corpus}), {sum(map(len, bodies)) >> 20} MiB, "
              f"{os.cpu_count()} cores, SQLite store", flush=True)
        print(f"  baseline  feedparser alone, 1 process: {t_base:7.2f} s  {total / t_base:8.0f} entries/s",
              flush=True)
        command = [str(Path(sys.executable).parent / "feedhub"), "--config",
                   str(write_config(Path(tmp), server, feeds, args.workers, "command")), "collect"]
        t_cmd = command_seconds(command, Path(tmp))
        print(f"  command   `feedhub collect`, cold:     {t_cmd:7.2f} s  {total / t_cmd:8.0f} entries/s "
              f"(start-up included)", flush=True)
        t_cmd_304 = min(command_seconds(command, Path(tmp)) for _ in range(WARM_RUNS))
        print(f"  command   `feedhub collect`, warm 304: {t_cmd_304:7.2f} s  (fastest of {WARM_RUNS})", flush=True)
        t_reader = None
        if args.reader:
            t_reader, stored = reader_cold([server.url(n) for n in range(feeds)], args.workers, Path(tmp))
            print(f"  lemon24/reader, cold update command:   {t_reader:7.2f} s  {stored / t_reader:8.0f} entries/s "
                  f"({stored} entries stored)", flush=True)

        cfg = load_config(write_config(Path(tmp), server, feeds, args.workers), environ={})
        store.init_db(cfg.database_url)
        with Collector(cfg) as collector:
            # The parse processes live as long as the collector (collect --loop and run start
            # them once); starting them is not part of collecting, so it happens before timing.
            collector.pool.start()
            t_cold, cold = timed(collector.collect)
            assert cold.new == total and not cold.failed, cold.failed[:3]
            print(f"  cold      full collect into SQLite:    {t_cold:7.2f} s  {total / t_cold:8.0f} entries/s",
                  flush=True)
            # A warm collect is short, so one run is at the mercy of a stray pause (a WAL
            # checkpoint left over from the cold run, a garbage collection): the fastest of
            # WARM_RUNS identical runs is reported.
            t_304 = min(timed_outcomes(collector, "not-modified") for _ in range(WARM_RUNS))
            print(f"  warm 304  every server says 304:       {t_304:7.2f} s  (fastest of {WARM_RUNS})",
                  flush=True)
            server.set_etags(False)
            store.Source.update(etag=None, last_modified=None).execute()
            t_same = min(timed_outcomes(collector, "unchanged") for _ in range(WARM_RUNS))
            print(f"  warm same bodies unchanged (hash):     {t_same:7.2f} s  (fastest of {WARM_RUNS})",
                  flush=True)
        hits = server.total_hits()
    assert hits == feeds * (2 + 3 * WARM_RUNS + (1 if args.reader else 0))

    figures = {
        "feeds": feeds, "entries": total, "cores": os.cpu_count(), "corpus": "mixed" if mixed else "rss",
        "baseline_entries_per_s": round(total / t_base, 1),
        "command_cold_s": round(t_cmd, 2), "command_cold_vs_baseline": round(t_base / t_cmd, 2),
        "command_warm_304_s": round(t_cmd_304, 2), "command_cold_vs_warm_304": round(t_cmd / t_cmd_304, 1),
        "cold_entries_per_s": round(total / t_cold, 1),
        "cold_vs_baseline": round(t_base / t_cold, 2),
        "warm_304_s": round(t_304, 3), "warm_unchanged_s": round(t_same, 3),
        "cold_vs_warm_304": round(t_cold / t_304, 1),
        "cold_vs_warm_unchanged": round(t_cold / t_same, 1),
    }
    if t_reader is not None:
        figures["reader_cold_s"] = round(t_reader, 2)
        figures["command_cold_vs_reader"] = round(t_reader / t_cmd, 2)
    print(f"  the command as users run it: cold {figures['command_cold_vs_baseline']}x feedparser alone "
          f"(target >= 2), " + (f"{figures['command_cold_vs_reader']}x lemon24/reader (target >= 3), "
                                 if t_reader is not None else "") +
          f"warm 304 {figures['command_cold_vs_warm_304']}x faster than cold (target >= 20)")
    print(f"  in process: cold is {figures['cold_vs_baseline']}x the feedparser-alone baseline; "
          f"warm 304 is {figures['cold_vs_warm_304']}x faster than cold, warm unchanged "
          f"{figures['cold_vs_warm_unchanged']}x")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
