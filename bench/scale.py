"""bench/scale: does a feed cost the same after a year of news as after a few days?

Grows one store through the store's own write path (``store.save_entries``, batches of a
thousand entries, each in its own transaction, related entries and indexes included) to
10k, 100k and 1M entries of a synthetic newsroom: three editions (60% English, 20% Arabic,
20% Spanish), every section and subsection, 0-2 regions, 1-4 tags drawn from a long-tailed
(Zipf) vocabulary that grows with the store, 300 authors, 5% in coverage dossiers, 2%
breaking, 0.5% retracted, about 2,700 entries a day ending now (so 10k is the last four days
and 1M the last year). Titles and summaries are drawn from a Zipf vocabulary per language,
so a search word is as common at every size.

At each size it starts the real ``feedhub serve`` on the store and, over HTTP:
- cold: the first rendering of each feed kind (50 entries, Atom) by a freshly started server
  (median of 3 servers);
- hot: the same URL again (the render cache);
- deep paging: following ``next`` 20 times from the top of latest (mean per page);
- search: ``q`` with a common word, a rare word, a phrase, and a word no entry has;
- memory: the serving process's resident size after N distinct URLs (``--urls``);
and, in process, the write path: saving a batch of 100 new entries (mean of 9, each with its
share of the WAL checkpoint that copies their pages; see write_path).
It prints each figure's ratio against 10k; the last line is a JSON summary.

Every figure is taken with the store's files in the operating system's page cache, as on a
server whose memory holds the store: before the write path and before each fresh server, the
bench reads them (SQLite: the database and its WAL; PostgreSQL: the schema's tables, indexes
and TOAST with pg_prewarm, when the extension can be created). "Cold" is the first rendering
by a fresh process, not the first read from disk. Without this, how much of a 3 GB file the
machine had evicted since it was last touched decided the 1M figures: some hosts (this
project's VM among them) page out file pages no process touched for a minute.

    python -m bench.scale                 # SQLite, 10k, 100k, 1M
    python -m bench.scale --quick         # stops at 100k
    python -m bench.scale --postgres URL  # the same on PostgreSQL (a schema of its own)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator import model, store  # noqa: E402
from aggregator.config import Config, load_config  # noqa: E402

PER_DAY = 2740
#: the serving process's resident memory after --urls distinct URLs stays below this, with
#: the default [cache] memory_mb = 64 (README: "A year of news")
CEILING_MIB = 256
BATCH = 1000
#: the PostgreSQL schema the bench grows its store in (dropped and made again at each run)
PG_SCHEMA = "feedhub_scale"
EDITIONS = (("en", 0.6), ("ar", 0.2), ("es", 0.2))

# Syllables the synthetic words are made of (original, meaningless text: no real articles).
_SYLLABLES = {
    "en": ["ka", "lo", "ren", "tis", "mar", "ven", "do", "pri", "sel", "nu", "gar", "fen", "tor", "li", "bas"],
    "es": ["ma", "ño", "ci", "ón", "pe", "rá", "lu", "te", "sa", "gú", "ri", "do", "né", "va", "co"],
    "ar": ["كا", "لم", "سر", "نو", "حد", "بي", "تق", "رة", "مع", "فا", "جل", "ود", "صر", "هم", "دي"],
}


def vocabulary(language: str, size: int, seed: int) -> list[str]:
    """``size`` distinct synthetic words of ``language`` (Arabic ones sometimes with the article)."""
    rng = random.Random(f"{seed}-{language}")
    syl = _SYLLABLES[language]
    words: dict[str, None] = {}
    while len(words) < size:
        w = "".join(rng.choice(syl) for _ in range(rng.randint(2, 4)))
        if language == "ar" and rng.random() < 0.3:
            w = "ال" + w
        words[w] = None
    return list(words)


class Newsroom:
    """The synthetic entries, reproducible by seed and index (entry ``i`` is always the same)."""

    def __init__(self, config: Config, seed: int = 7):
        self.config, self.seed = config, seed
        tax = config.taxonomy
        self.sections = list(tax.sections)
        self.regions = list(tax.regions)
        self.coverage = list(tax.coverage)
        self.words = {lang: vocabulary(lang, 5000, seed) for lang, _ in EDITIONS}
        # Zipf weights over the vocabulary (rank ** -1.1), cumulated for random.choices.
        total, self._cum = 0.0, []
        for rank in range(1, 5001):
            total += rank ** -1.1
            self._cum.append(total)
        self.authors = [f"Writer {i:03d}" for i in range(300)]
        self.now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)

    def _zipf(self, rng: random.Random, n: int) -> int:
        return min(n - 1, int(rng.paretovariate(1.1)) - 1)

    def text(self, rng: random.Random, lang: str, count: int) -> str:
        return " ".join(rng.choices(self.words[lang], cum_weights=self._cum, k=count))

    def entry(self, i: int) -> model.Entry:
        rng = random.Random(self.seed * 1_000_003 + i)
        r = rng.random()
        edition = "en" if r < 0.6 else "ar" if r < 0.8 else "es"
        published = self.now - timedelta(seconds=int(i * 86400 / PER_DAY) + rng.randint(0, 30))
        # the tag vocabulary grows with the store: a long tail of rare tags
        tags = sorted({f"topic-{self._zipf(rng, 20 + i // 20)}" for _ in range(rng.randint(1, 4))})
        title = self.text(rng, edition, rng.randint(5, 10))
        summary = self.text(rng, edition, rng.randint(15, 30))
        guid = f"https://scale.example.org/{i}"
        return model.Entry(
            guid=guid, public_id=guid, title=title, link=guid, language=edition, edition=edition,
            summary=summary, content=f"<p>{summary}</p>", published=published, updated=published,
            section=rng.choice(self.sections),
            regions=tuple(sorted(set(rng.sample(self.regions, rng.randint(0, 2))))),
            tags=tuple(model.Tag(name=t.replace("-", " ").title(), slug=t) for t in tags),
            authors=(model.Author(name=(a := self.authors[self._zipf(rng, 300)]), slug=a.lower().replace(" ", "-"),
                                  url=None),),
            media=(), origin=None, breaking=rng.random() < 0.02, reading_time=1, date_missing=False,
            fingerprint=f"{i:064x}"[-64:],
            coverage=(rng.choice(self.coverage),) if self.coverage and rng.random() < 0.05 else ())


def source_rows(count: int) -> list[store.SourceRow]:
    """``count`` wire sources to file the entries under (made once)."""
    rows = []
    with store.write_transaction():
        for n in range(count):
            key = f"scale-{n}"
            src = store.Source.get_or_none(store.Source.key == key) or store.Source.create(
                key=key, url=f"https://scale.example.org/{n}.rss", name=f"Scale source {n}", kind="wire",
                managed="store")
            rows.append(store.SourceRow(
                id=src.id, key=key, name=src.name, url=src.url, fetch_url=None, interval=900, breaking=False,
                etag=None, last_modified=None, content_hash=None, id_rule="guid", redirect_target=None,
                redirect_count=0, feed_ttl=None, consecutive_failures=0, settings=None))
    return rows


def grow(newsroom: Newsroom, sources: list[store.SourceRow], start: int, stop: int,
         progress: bool = True) -> float:
    """Add entries ``start`` .. ``stop`` - 1 through save_entries; returns the seconds it took."""
    parents = newsroom.config.taxonomy.parents
    t0 = time.perf_counter()
    for first in range(start, stop, BATCH):
        batch = [newsroom.entry(i) for i in range(first, min(stop, first + BATCH))]
        source = sources[(first // BATCH) % len(sources)]
        with store.write_transaction():
            store.save_entries(source, batch, store.utcnow(), parents)
            # One in 200 is retracted, an hour after it was published (so tombstones are spread
            # over the year as they would be, not all made today).
            for e in batch[199::200]:
                ids = store.entry_ids(source.id, [e.guid])
                store.retract(ids, e.published + timedelta(hours=1), "retracted (bench)", parents)
        if progress and (first // BATCH) % 50 == 49:
            rate = (first + BATCH - start) / (time.perf_counter() - t0)
            print(f"    ... {first + BATCH:,} entries ({rate:,.0f}/s)", flush=True)
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _workers(master: int) -> list[int]:
    """The forks of ``master`` (its children running the same command line)."""
    def cmdline(pid: int | str) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master and cmdline(entry) == cmdline(master):
                out.append(int(entry))
    return out


class Server:
    """``feedhub serve`` on the bench store, as a user starts it (one worker process: the
    memory ceiling is per serving process, and cold/hot figures are one process's)."""

    def __init__(self, config_path: Path):
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        script = Path(sys.executable).parent / "feedhub"  # the installed command, as users run it
        command = [str(script)] if script.exists() else [sys.executable, "-m", "web.cli"]
        self.proc = subprocess.Popen(
            [*command, "--config", str(config_path), "serve", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (a store without sources reports itself unhealthy)
            except OSError:
                if self.proc.poll() is not None:
                    said = self.proc.stderr.read() if self.proc.stderr else b""
                    raise RuntimeError(f"feedhub serve exited: {said.decode(errors='replace')[-2000:]}")
                time.sleep(0.1)
        raise RuntimeError("feedhub serve did not start in 120 s")

    def get(self, path: str) -> float:
        return self.fetch(path)[0]

    def fetch(self, path: str) -> tuple[float, bytes]:
        """Seconds to answer ``path`` in full, and the body."""
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=120) as r:
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"{path}: {r.status}")
        return time.perf_counter() - t0, body

    def rss_mib(self) -> float:
        """Resident memory of the process that serves: the largest of the server's worker
        processes (gunicorn's master only watches them); the bench runs one."""
        found = [_rss_mib(pid) for pid in _workers(self.proc.pid)]
        return max(found) if found else _rss_mib(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def feed_kinds(newsroom: Newsroom) -> dict[str, str]:
    """Feed kind -> a path, chosen the same way at every size."""
    cov = newsroom.coverage[0] if newsroom.coverage else None
    since = (newsroom.now - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kinds = {
        "latest": "/feeds/latest.atom",
        "breaking": "/feeds/breaking.atom",
        "section (with subsections)": "/feeds/section/news.atom",
        "subsection": "/feeds/section/politics.atom",
        "region": "/feeds/region/asia.atom",
        "tag (common)": "/feeds/tag/topic-0.atom",
        "tag (rarer)": "/feeds/tag/topic-7.atom",
        "author": "/feeds/author/writer-003.atom",
        # (combinations that hold 50 entries at 10k already: a page that is fuller at a larger
        # size costs more to write, which is not what is measured here)
        "section + region": "/feeds/section/news.atom?region=mena",
        "region + tag": "/feeds/region/europe.atom?tag=topic-1",
        "since (6 hours)": f"/feeds/latest.atom?since={since}",
        "arabic edition": "/ar/feeds/latest.atom",
    }
    if cov:
        kinds["coverage"] = f"/feeds/coverage/{cov}.atom"
    words = newsroom.words["en"]
    kinds["search (common word)"] = f"/feeds/latest.atom?q={quote(words[0])}"
    kinds["search (rarer word)"] = f"/feeds/latest.atom?q={quote(words[40])}"
    kinds["search (phrase)"] = f"/feeds/latest.atom?q={quote(chr(34) + words[0] + ' ' + words[1] + chr(34))}"
    kinds["search (no match)"] = "/feeds/latest.atom?q=zzqxv"
    kinds["search (arabic)"] = f"/ar/feeds/latest.atom?q={quote(newsroom.words['ar'][3])}"
    return kinds


def page_cache_warmer(database_url: str, postgres_url: str | None) -> Callable[[], str]:
    """A function that reads the store's files into the OS page cache and says what it read."""
    if postgres_url is None:
        path = Path(database_url.removeprefix("sqlite:///"))

        def warm_sqlite() -> str:
            read = 0
            for part in (path, path.with_name(path.name + "-wal")):
                if part.exists():
                    with part.open("rb", buffering=0) as f:
                        while chunk := f.read(1 << 20):
                            read += len(chunk)
            return f"{read / 2**20:,.0f} MiB of files"
        return warm_sqlite

    import psycopg2

    def warm_postgres() -> str:
        conn = psycopg2.connect(postgres_url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                try:
                    cur.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
                except psycopg2.Error as e:
                    return f"nothing (pg_prewarm unavailable: {str(e).strip()})"
                # 'read': into the OS page cache, as for SQLite (shared_buffers hold a fraction).
                cur.execute("""SELECT coalesce(sum(pg_prewarm(c.oid::regclass, 'read')), 0) FROM pg_class c
                               WHERE c.relkind IN ('r', 'i', 't') AND (
                                 c.relnamespace = %(schema)s::regnamespace
                                 OR c.oid IN (SELECT reltoastrelid FROM pg_class
                                              WHERE relnamespace = %(schema)s::regnamespace))""",
                            {"schema": PG_SCHEMA})
                (blocks,) = cur.fetchone()
            return f"{blocks * 8 / 1024:,.0f} MiB of relations"
        finally:
            conn.close()
    return warm_postgres


def measure(config_path: Path, newsroom: Newsroom, urls: int,
            warm: Callable[[], str]) -> dict[str, dict[str, float]]:
    """Cold and hot milliseconds per feed kind and deep paging (three fresh servers: each
    rendering is the first of its URL, with no entry of it rendered before), then the memory
    of a fourth after ``urls`` distinct URLs. ``warm`` runs before each server starts."""
    kinds = feed_kinds(newsroom)
    cold: dict[str, list[float]] = {k: [] for k in kinds}
    hot: dict[str, list[float]] = {k: [] for k in kinds}
    paging: list[float] = []
    entries: dict[str, int] = {}
    tombstones: dict[str, int] = {}
    for _ in range(3):
        warm()
        server = Server(config_path)
        try:
            server.get("/es/feeds/section/sports.json?limit=3")  # the process's own first-request costs
            for kind, path in kinds.items():
                seconds, body = server.fetch(path)
                cold[kind].append(seconds * 1000)
                entries[kind] = body.count(b"<entry>")
                tombstones[kind] = body.count(b"<at:deleted-entry")
                hot[kind].append(min(server.get(path) for _ in range(3)) * 1000)
            paging.append(follow_next(server, 20))
        finally:
            server.close()
    out = {k: {"cold_ms": statistics.median(cold[k]), "hot_ms": statistics.median(hot[k]),
               "entries": float(entries[k]), "tombstones": float(tombstones[k])} for k in kinds}
    out["next x20 (each)"] = {"cold_ms": statistics.median(paging), "hot_ms": float("nan")}
    warm()
    server = Server(config_path)
    try:
        server.get("/es/feeds/section/sports.json?limit=3")
        before = server.rss_mib()
        tags = [f"topic-{n}" for n in range(100)]
        done = 0
        for n in range(urls):
            try:
                server.get(f"/feeds/tag/{tags[n % len(tags)]}.{('atom', 'rss', 'json')[n % 3]}?limit={1 + n % 200}")
                done += 1
            except OSError:
                pass
        out["memory"] = {"start_mib": before, "after_mib": server.rss_mib(), "urls": float(done)}
    finally:
        server.close()
    return out


def follow_next(server: Server, pages: int) -> float:
    """Mean milliseconds per page following JSON Feed's next_url ``pages`` times from the top."""
    times, url = [], f"http://127.0.0.1:{server.port}/feeds/latest.json"
    for _ in range(pages):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as r:
            doc = json.load(r)
        times.append((time.perf_counter() - t0) * 1000)
        url = doc.get("next_url")
        if not url:
            break
        url = url.replace(doc["feed_url"].split("/feeds/")[0], f"http://127.0.0.1:{server.port}")
    return statistics.mean(times)


#: batches of 100 new entries saved for the write-path figure
WRITE_BATCHES = 9


def write_path(newsroom: Newsroom, sources: list[store.SourceRow], at: int) -> float:
    """Milliseconds to save a batch of 100 new entries into the store as it is, counting each
    batch's share of copying its pages from SQLite's WAL into the database file.

    SQLite copies the WAL into the database (a checkpoint) inside whichever commit fills it
    past wal_autocheckpoint pages, so a handful of saves timed one by one either holds that
    commit or not, depending on how full the grow step left the WAL: run to run, the figure
    at 1M had moved from 1.5x to 1.9x of 10k on that alone. Here every size starts from an
    empty WAL, the WRITE_BATCHES saves run without automatic checkpoints, and the one
    checkpoint that copies all their pages is timed and shared among them: the long-run mean
    a collector pays. (PostgreSQL has no such cycle; its saves are timed the same way.)"""
    parents = newsroom.config.taxonomy.parents
    sqlite = store.is_sqlite()
    if sqlite:
        (autocheckpoint,) = store.db.obj.execute_sql("PRAGMA wal_autocheckpoint").fetchone()
        store.db.obj.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        store.db.obj.execute_sql("PRAGMA wal_autocheckpoint = 0")
    saved: list[tuple[store.SourceRow, list[str]]] = []
    total = 0.0
    try:
        for k in range(WRITE_BATCHES):
            base = 50_000_000 + at + k * 100
            batch = [newsroom.entry(i) for i in range(base, base + 100)]
            batch = [model.Entry(**{**e.__dict__, "published": newsroom.now - timedelta(seconds=j)})
                     for j, e in enumerate(batch)]
            t0 = time.perf_counter()
            with store.write_transaction():
                store.save_entries(sources[k], batch, store.utcnow(), parents)
            total += time.perf_counter() - t0
            saved.append((sources[k], [e.guid for e in batch]))
        if sqlite:
            t0 = time.perf_counter()
            store.db.obj.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
            total += time.perf_counter() - t0
    finally:
        if sqlite:
            store.db.obj.execute_sql(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint)}")
    # Take them out again, as retention does (a retraction would leave tombstones in the feeds,
    # more at each size): the next size starts clean.
    for source, guids in saved:
        store.remove_entries(store.entry_ids(source.id, guids), parents, store.utcnow())
    return total / WRITE_BATCHES * 1000


def make_config(folder: Path, database_url: str) -> Path:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/feedhub.db"', f'url = "{database_url}"')
    # No sample sources: the store holds the bench's newsroom only.
    head, _, _ = text.partition("[[sources]]")
    head = head.replace("\nworkers = 0 ", "\nworkers = 1 ", 1)
    assert "\nworkers = 1 " in head
    # Atom feeds carry the retractions of the last tombstone_days: at 10k (the last four days)
    # a 30-day window would hold a few days of them, at 100k and 1M all thirty, so the larger
    # stores' feeds would be longer documents. A window inside the smallest store's span
    # gives every size the same share (the counts are printed beside the entries).
    head = head.replace("\ntombstone_days = 30\n", "\ntombstone_days = 3\n", 1)
    assert "\ntombstone_days = 3\n" in head
    path = folder / "config.toml"
    path.write_text(head, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="stop at 100k entries")
    p.add_argument("--postgres", metavar="URL", help=f"run on PostgreSQL at URL (schema {PG_SCHEMA}, recreated)")
    p.add_argument("--urls", type=int, default=20_000, help="distinct URLs before the memory figure")
    p.add_argument("--sizes", help="comma-separated sizes (default 10000,100000,1000000)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [10_000, 100_000, 1_000_000]
    if args.quick:
        sizes = [s for s in sizes if s <= 100_000]
    tmp = Path(tempfile.mkdtemp(prefix="feedhub-scale-"))
    try:
        if args.postgres:
            import psycopg2

            conn = psycopg2.connect(args.postgres)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE; CREATE SCHEMA {PG_SCHEMA}")
            conn.close()
            sep = "&" if "?" in args.postgres else "?"
            url = f"{args.postgres}{sep}options={quote(f'-csearch_path={PG_SCHEMA}')}"
            label = "PostgreSQL"
        else:
            url = f"sqlite:///{tmp}/scale.db"
            label = "SQLite"
        config_path = make_config(tmp, url)
        cfg = load_config(config_path, environ={})
        store.init_db(cfg.database_url)
        store.prepare_index(cfg.taxonomy.parents)
        newsroom = Newsroom(cfg)
        sources = source_rows(40)
        warm = page_cache_warmer(url, args.postgres)
        print(f"bench/scale on {label}: sizes {', '.join(f'{s:,}' for s in sizes)}; cold = first rendering "
              f"of a URL by a freshly started `feedhub serve`, over HTTP, median of 3 servers, the store's "
              f"files in the OS page cache; memory after {args.urls:,} distinct URLs", flush=True)
        results: dict[int, dict[str, dict[str, float]]] = {}
        writes: dict[int, float] = {}
        have = 0
        for size in sizes:
            print(f"  growing the store to {size:,} entries ...", flush=True)
            took = grow(newsroom, sources, have, size)
            print(f"  {size - have:,} entries written in {took:.0f} s ({(size - have) / took:,.0f} entries/s)",
                  flush=True)
            have = size
            store.analyze()
            print(f"  read into the page cache before each measurement: {warm()}", flush=True)
            writes[size] = write_path(newsroom, sources, size)
            store.db.close()
            results[size] = measure(config_path, newsroom, args.urls, warm)
            store.db.connect(reuse_if_open=True)
            mem = results[size]["memory"]
            print(f"  at {size:,}: write path {writes[size]:.1f} ms per 100 entries; serving process "
                  f"{mem['start_mib']:.0f} MiB at start, {mem['after_mib']:.0f} MiB after {mem['urls']:,.0f} URLs",
                  flush=True)
        base = sizes[0]
        print(f"\n  {'feed':30s}" + "".join(f"{f'{s:,} cold ms':>16s}" for s in sizes)
              + "".join(f"{f'x{s // base} ratio':>12s}" for s in sizes[1:])
              + f"{'hot ms':>10s}{'entries':>9s}{'tombstones':>16s}")
        summary: dict[str, object] = {"store": label, "sizes": sizes, "feeds": {}, "write_ms": writes,
                                      "memory_mib": {s: results[s]["memory"]["after_mib"] for s in sizes}}
        worst = 0.0
        for kind in results[base]:
            if kind == "memory":
                continue
            cells = [results[s][kind]["cold_ms"] for s in sizes]
            ratios = [c / cells[0] for c in cells[1:]]
            worst = max([worst, *ratios])
            hot = results[sizes[-1]][kind]["hot_ms"]
            summary["feeds"][kind] = {"cold_ms": dict(zip(sizes, cells)), "ratios": ratios,  # type: ignore[index]
                                      "hot_ms": None if math.isnan(hot) else hot}  # (JSON has no NaN)
            print(f"  {kind:30s}" + "".join(f"{c:16.1f}" for c in cells) + "".join(f"{r:11.2f}x" for r in ratios)
                  + f"{hot:10.1f}"
                  + f"{'/'.join(str(int(results[s][kind].get('entries', 0))) for s in sizes):>9s}"
                  + f"{'/'.join(str(int(results[s][kind].get('tombstones', 0))) for s in sizes):>16s}")
        wr = [writes[s] / writes[base] for s in sizes[1:]]
        print(f"  {'write path, 100 entries':30s}" + "".join(f"{writes[s]:16.1f}" for s in sizes)
              + "".join(f"{r:11.2f}x" for r in wr))
        summary["worst_ratio"] = max([worst, *wr]) if wr else worst
        peak = max(results[s]["memory"]["after_mib"] for s in sizes)
        summary["memory_ceiling_mib"] = CEILING_MIB
        summary["memory_within_ceiling"] = peak < CEILING_MIB
        print(f"  serving process after {args.urls:,} distinct URLs: at most {peak:.0f} MiB "
              f"(ceiling {CEILING_MIB} MiB: {'met' if peak < CEILING_MIB else 'NOT met'})")
        print(json.dumps(summary, allow_nan=False))
    finally:
        store.db.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
