"""bench/serve: how cheaply feedhub serves feeds, against baselines measured in the same run.

Collects the sample newsroom into a temporary SQLite store, then measures,
through the WSGI interface (Flask's test client, so no network or server
differences dilute the ratios):
- hot: requests/s for /feeds/latest.atom served from the render cache, against
  a bare Flask endpoint returning the same bytes (target >= 0.8x);
- 304: requests/s for the same feed with If-None-Match;
- usage counting: the hot feed with counting off (every public feed request is counted, so
  this is the baseline of what counting costs), the hot feed asked by an aggregator whose User-Agent reports subscribers
  (each such request is counted, written in batches off the request path), and a partner's
  copy of the feed (a key, its profile, its usage counted; with no request limit, with the
  limit's token bucket in the store, and in Redis when one answers on 127.0.0.1:6379),
  each against the plain hot feed measured in the same run;
- cold render: one 50-entry feed selected from the store and written as Atom
  and as RSS, against feedgen alone building the same feed from data already
  in memory (target <= 1.5x). Measured twice: as it happens when a collect adds
  an entry to a feed (its cached rendering is invalid; the other 49 entries were
  already written for it or another feed, see feeds.render.Fragments), and from
  nothing (no entry written before, as after a restart).
The last line printed is one JSON object with the figures.

    python -m bench.serve            # longer runs
    python -m bench.serve --quick    # under a minute
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from feedgen.feed import FeedGenerator
from flask import Flask, Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator import store  # noqa: E402
from aggregator.collect import Collector  # noqa: E402
from aggregator.config import load_config  # noqa: E402
from feeds.model import FeedDoc  # noqa: E402
from feeds.render import SUFFIXES, Fragments, render  # noqa: E402
from feeds.select import build_feed, parse_request  # noqa: E402
from web import create_app  # noqa: E402

from . import overhttp  # noqa: E402


def rate(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(50):
        fn()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / elapsed


def best_time(fn, repeat: int) -> float:
    """The fastest of ``repeat`` runs (the least disturbed by the rest of the machine)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def feedgen_alone(doc: FeedDoc, fmt: str) -> bytes:
    """The same feed built with feedgen's own API only, from data already in memory."""
    fg = FeedGenerator()
    fg.id(doc.id)
    fg.title(doc.title)
    fg.description(doc.description)
    fg.link(href=doc.self_url, rel="self")
    fg.link(href=doc.home_url, rel="alternate")
    fg.language(doc.language)
    fg.author(name=doc.author_name)
    fg.updated(doc.updated)
    for item in doc.items:
        fe = fg.add_entry(order="append")
        fe.id(item.id)
        fe.title(item.title)
        if item.link:
            fe.link(href=item.link)
        fe.published(item.published)
        fe.updated(item.updated)
        for a in item.authors:
            fe.author(name=a.name)
        for t in item.terms:
            fe.category(term=t.slug, scheme=t.scheme, label=t.label)
        if item.summary:
            fe.summary(item.summary)
        if item.content:
            fe.content(item.content, type="html")
        elif not item.summary:
            fe.summary(item.title)
    return fg.atom_str() if fmt == "atom" else fg.rss_str()


def after_new_entry(select: Callable[[], FeedDoc], doc: FeedDoc, fmt: str, repeat: int) -> float:
    """Fastest select + render of the feed when its newest entry is the only one not yet written.

    Before each run (untimed) the feed as it was without that entry is rendered into
    fresh fragments, as the previous rendering of the feed would have left them.
    """
    best = float("inf")
    for _ in range(repeat):
        fragments = Fragments()
        render(dataclasses.replace(doc, items=doc.items[1:]), fmt, fragments)
        t0 = time.perf_counter()
        render(select(), fmt, fragments)
        best = min(best, time.perf_counter() - t0)
        assert fragments.written == len(doc.items)  # exactly one entry written in the timed run
    return best


def usage_figures(app: Flask, cfg, client, window: float) -> dict[str, float]:
    """Requests/s with usage counting on: an aggregator reporting subscribers on the hot feed, and
    a partner's feed (no limit; the limit's bucket in the store; in Redis if one answers)."""
    from aggregator import admin
    from web.limits import RedisBuckets, StoreBuckets

    agent = {"User-Agent": "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 42 subscribers)"}
    hot = app.extensions["feedhub.hot"]
    counting, hot.on_feed_request = hot.on_feed_request, None  # usage counting off: the baseline
    out = {"hot_not_counted": rate(lambda: client.get("/feeds/latest.atom"), window)}
    hot.on_feed_request = counting
    print(f"  hot feed, usage counting off:       {out['hot_not_counted']:8.0f} requests/s", flush=True)
    out["hot_counting_subscribers"] = rate(lambda: client.get("/feeds/latest.atom", headers=agent), window)
    print(f"  ... with subscribers counted:       {out['hot_counting_subscribers']:8.0f} requests/s", flush=True)
    actor = admin.Actor("bench", "admin", "cli")
    open_key = admin.add_partner(actor, "bench-open", "open", "", cfg, store.utcnow()).result[1]
    limited_key = admin.add_partner(actor, "bench-limited", "limited", "", cfg, store.utcnow()).result[1]
    path = f"/partner/{open_key}/feeds/latest.atom"
    out["partner"] = rate(lambda: client.get(path), window)
    print(f"  partner feed, usage counted:        {out['partner']:8.0f} requests/s", flush=True)
    etag = client.get(path).headers["ETag"]
    out["partner_304"] = rate(lambda: client.get(path, headers={"If-None-Match": etag}), window)
    print(f"  partner feed, 304:                  {out['partner_304']:8.0f} requests/s", flush=True)
    limited = f"/partner/{limited_key}/feeds/latest.atom"
    app.extensions["feedhub.buckets"] = StoreBuckets()
    out["partner_limited_store"] = rate(lambda: client.get(limited), window)
    print(f"  partner feed, limit kept in the store: {out['partner_limited_store']:5.0f} requests/s", flush=True)
    try:
        redis_buckets = RedisBuckets("redis://127.0.0.1:6379/15")
        redis_buckets.client.ping()
    except Exception as e:  # no Redis here: say so rather than guess
        print(f"  partner feed, limit kept in Redis:  (no Redis on 127.0.0.1:6379: {e})", flush=True)
    else:
        app.extensions["feedhub.buckets"] = redis_buckets
        out["partner_limited_redis"] = rate(lambda: client.get(limited), window)
        print(f"  partner feed, limit kept in Redis:  {out['partner_limited_redis']:8.0f} requests/s", flush=True)
    app.extensions["feedhub.usage"].close()
    return out


def bench_config(folder: Path, database_url: str) -> Path:
    """The project's config.toml with the store in ``folder`` (or ``database_url``) and the
    bundled samples as sources, plus two partner profiles for the usage figures."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///var/feedhub.db"', f'url = "{database_url}"')
    text = text.replace('samples_dir = "samples"', f'samples_dir = "{ROOT / "samples"}"')
    text = text.replace('url = "samples/', f'url = "{ROOT / "samples"}/')
    text += ("\n[partners.profiles.open]\nfull_text = true\nrate_limit = 0\n"
             "[partners.profiles.limited]\nfull_text = true\nrate_limit = 100000\nburst = 100000\n")
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def collect(path: Path):
    cfg = load_config(path, environ={})
    store.init_db(cfg.database_url)
    with Collector(cfg) as collector:
        collector.collect()
    store.close_connection()
    return cfg


def postgres_url(url: str) -> str:
    """``url`` with its own schema (created afresh), so the bench never touches other tables."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS feedhub_bench_serve CASCADE")
        cur.execute("CREATE SCHEMA feedhub_bench_serve")
    conn.close()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3Dfeedhub_bench_serve"


def over_http(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    """The first table: feedhub serve over HTTP against the bare app and nginx (see bench.overhttp)."""
    load = overhttp.Load(seconds=3.0 if args.quick else args.seconds)
    rounds = 1 if args.quick else args.rounds
    stores = [("SQLite", tmp / "sqlite")]
    if args.postgres:
        stores.append(("PostgreSQL", tmp / "postgres"))
    out: dict[str, object] = {}
    for label, folder in stores:
        folder.mkdir()
        url = f"sqlite:///{folder}/serve.db" if label == "SQLite" else postgres_url(args.postgres)
        path = bench_config(folder, url)
        collect(path)
        print(f"  over HTTP on {label}: measuring {rounds} round(s) of wrk "
              f"-t{load.threads} -c{load.connections} -d{load.seconds:g}s per contestant ...", flush=True)
        results = overhttp.run(path, load, rounds, log=lambda line: print(line, flush=True))
        print(f"\nfeedhub serve ({results['workers']} workers x {results['threads']} threads, gunicorn), "
              f"{results['path']} ({results['bytes']:,} bytes), {label}:", flush=True)
        print("\n".join(overhttp.report(results, "server")), flush=True)
        rps = results["rps"]
        assert isinstance(rps, dict)
        summary = {**rps, "hot_vs_bare": round(rps["feedhub"] / rps["bare"], 2),
                   "304_vs_bare": round(rps["feedhub 304"] / rps["bare 304"], 2)}
        if "nginx" in rps:
            summary["hot_vs_nginx"] = round(rps["feedhub"] / rps["nginx"], 2)
            summary["304_vs_nginx"] = round(rps["feedhub 304"] / rps["nginx 304"], 2)
        out[label.lower()] = summary
        print(flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter measuring windows, one round")
    p.add_argument("--http-only", action="store_true", help="only the over-HTTP table")
    p.add_argument("--wsgi-only", action="store_true", help="only the WSGI-level table")
    p.add_argument("--postgres", metavar="URL", help="also over HTTP on PostgreSQL at URL "
                   "(schema feedhub_bench_serve, recreated)")
    p.add_argument("--seconds", type=float, default=10.0, help="wrk's duration per measurement")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every contestant (median reported)")
    args = p.parse_args(argv)
    window = 2.0 if args.quick else 8.0
    repeat = 15 if args.quick else 60
    figures: dict[str, object] = {}

    with tempfile.TemporaryDirectory() as tmp:
        if not args.wsgi_only:
            if shutil.which("wrk") is None:
                print("bench/serve: wrk is not installed, so the over-HTTP table is skipped; "
                      "`make bench-tools` installs wrk and nginx (Debian packages)", flush=True)
                figures["http"] = "skipped: no wrk"
            else:
                print("bench/serve: the sample newsroom served over HTTP by `feedhub serve`, driven by wrk",
                      flush=True)
                figures["http"] = over_http(args, Path(tmp))
        if args.http_only:
            print(json.dumps(figures))
            return 0
        cfg = collect(bench_config(Path(tmp), f"sqlite:///{tmp}/serve.db"))

        app = create_app(cfg)
        client = app.test_client()
        hot = client.get("/feeds/latest.atom")
        body, etag = hot.get_data(), hot.headers["ETag"]
        bare = Flask("bare")
        bare.add_url_rule("/feeds/latest.atom", "bare",
                          lambda: Response(body, content_type="application/atom+xml; charset=utf-8"))
        bare_client = bare.test_client()
        assert bare_client.get("/feeds/latest.atom").get_data() == body

        print(f"bench/serve: the sample newsroom, {len(body)} bytes of Atom for /feeds/latest.atom "
              f"(50 entries), WSGI-level requests", flush=True)
        r_bare = rate(lambda: bare_client.get("/feeds/latest.atom"), window)
        print(f"  bare Flask endpoint, same bytes:   {r_bare:8.0f} requests/s", flush=True)
        r_hot = rate(lambda: client.get("/feeds/latest.atom"), window)
        print(f"  feedhub, hot feed (render cache):  {r_hot:8.0f} requests/s", flush=True)
        r_304 = rate(lambda: client.get("/feeds/latest.atom", headers={"If-None-Match": etag}), window)
        print(f"  feedhub, 304 Not Modified:         {r_304:8.0f} requests/s", flush=True)
        usage = usage_figures(app, cfg, client, window)

        with app.app_context():
            req = parse_request(cfg, "latest", None, None, {})
            base = "http://localhost"
            figures_render = {}
            for fmt in ("atom", "rss"):
                doc = build_feed(req, cfg, base, fmt, SUFFIXES)
                ours = after_new_entry(lambda f=fmt: build_feed(req, cfg, base, f, SUFFIXES), doc, fmt, repeat)
                scratch = best_time(lambda f=fmt: render(build_feed(req, cfg, base, f, SUFFIXES), f, Fragments()),
                                    repeat)
                alone = best_time(lambda d=doc, f=fmt: feedgen_alone(d, f), repeat)
                figures_render[fmt] = (ours, alone, scratch)
                print(f"  cold render, {fmt:4} (select + render): after a new entry {ours * 1000:5.1f} ms, "
                      f"from nothing {scratch * 1000:5.1f} ms; feedgen alone {alone * 1000:5.1f} ms "
                      f"-> {ours / alone:.2f}x (from nothing {scratch / alone:.2f}x)", flush=True)

    wsgi: dict[str, float] = {
        "bare_rps": round(r_bare), "hot_rps": round(r_hot), "not_modified_rps": round(r_304),
        "hot_vs_bare": round(r_hot / r_bare, 2),
    }
    for name, value in usage.items():
        wsgi[f"{name}_rps"] = round(value)
        wsgi[f"{name}_vs_hot"] = round(value / r_hot, 2)
    for fmt, (ours, alone, scratch) in figures_render.items():
        wsgi.update({
            f"cold_{fmt}_ms": round(ours * 1000, 2), f"feedgen_{fmt}_ms": round(alone * 1000, 2),
            f"cold_vs_feedgen_{fmt}": round(ours / alone, 2),
            f"scratch_{fmt}_ms": round(scratch * 1000, 2), f"scratch_vs_feedgen_{fmt}": round(scratch / alone, 2),
        })
    print(f"  ratios: hot feed {wsgi['hot_vs_bare']}x a bare endpoint (target >= 0.8); cold render after a "
          f"new entry {wsgi['cold_vs_feedgen_atom']}x (Atom) / {wsgi['cold_vs_feedgen_rss']}x (RSS) "
          f"feedgen alone (target <= 1.5); from nothing {wsgi['scratch_vs_feedgen_atom']}x / "
          f"{wsgi['scratch_vs_feedgen_rss']}x; every public request is counted: the hot feed is "
          f"{round(r_hot / usage['hot_not_counted'], 2)}x itself uncounted; subscribers "
          f"{wsgi['hot_counting_subscribers_vs_hot']}x the hot feed, a partner's feed {wsgi['partner_vs_hot']}x "
          f"(304 {wsgi['partner_304_vs_hot']}x), limited in the store {wsgi['partner_limited_store_vs_hot']}x"
          + (f", in Redis {wsgi['partner_limited_redis_vs_hot']}x" if "partner_limited_redis_vs_hot" in wsgi
             else ""))
    figures["wsgi"] = wsgi
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
