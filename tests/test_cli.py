"""The feedhub command, run as a real process: help, exit codes, init/collect/sources, and run."""
from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import feedparser
import pytest

from aggregator import store

from .conftest import NEWSROOM, ROOT, write_config

FEEDHUB = [sys.executable, "-m", "web.cli"]


def feedhub(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEEDHUB_CONFIG")}
    full_env.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([*FEEDHUB, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("command", [[], ["init"], ["collect"], ["serve"], ["run"], ["sources"], ["retract"],
                                     ["unretract"], ["backup"], ["rules"], ["rules", "test"], ["users"],
                                     ["users", "add"], ["users", "token"], ["users", "tokens"], ["users", "revoke"],
                                     ["sources", "add"], ["sources", "edit"], ["sources", "disable"],
                                     ["sources", "enable"], ["sources", "remove"], ["sources", "refresh"],
                                     ["sources", "import-opml"], ["sources", "export-opml"], ["breaking"],
                                     ["breaking", "push"], ["breaking", "off"]])
def test_help_everywhere(tmp_path: Path, command: list[str]):
    result = feedhub(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "usage: feedhub" in result.stdout


def test_missing_command_and_bad_config_exit_2(tmp_path: Path):
    assert feedhub(cwd=tmp_path).returncode == 2
    result = feedhub("--config", str(tmp_path / "nope.toml"), "init", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.toml: 1 problem(s) in the configuration" in result.stderr
    assert "the file does not exist" in result.stderr
    bad = write_config(tmp_path, "sqlite:///var/x.db",
                       '[[sources]]\nid = "x"\nname = "X"\nurl = "samples/cms-news.rss"\nsection = "sprots"\n')
    result = feedhub("--config", str(bad), "collect", cwd=tmp_path)
    assert result.returncode == 2
    assert "sources[0] (id 'x').section: unknown section 'sprots'; did you mean 'sports'?" in result.stderr


def test_init_collect_sources_on_a_fresh_store(tmp_path: Path, db_url: str):
    cfg = write_config(tmp_path, db_url)
    env = {"FEEDHUB_CONFIG": str(cfg)}
    init = feedhub("init", cwd=tmp_path, env=env)
    assert init.returncode == 0 and f"schema version {store.SCHEMA_VERSION}, 7 sources" in init.stdout, init.stderr
    collect = feedhub("collect", cwd=tmp_path, env=env)
    assert collect.returncode == 0, collect.stderr
    assert "7 source(s): 152 new, 0 updated, 0 failed" in collect.stdout
    again = feedhub("collect", "--source", "ticker", cwd=tmp_path, env=env)
    assert "1 source(s): 0 new, 0 updated, 0 failed" in again.stdout
    table = feedhub("sources", cwd=tmp_path, env=env)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "KIND", "STATUS"] and len(lines) == 8
    assert all(" ok " in line for line in lines[1:])
    data = json.loads(feedhub("sources", "--json", cwd=tmp_path, env=env).stdout)
    assert {d["id"]: d["entries_stored"] for d in data}["cms-news"] == 40
    assert all(d["status"] == "ok" and d["last_error"] is None for d in data)
    unknown = feedhub("collect", "--source", "nope", cwd=tmp_path, env=env)
    assert unknown.returncode == 2 and "unknown source 'nope'" in unknown.stderr


def test_a_collect_with_nothing_to_parse_loads_no_parser_or_renderer(tmp_path: Path):
    """A warm `collect` (cron runs it every few minutes) is mostly its own start-up: the parsers
    live in the parse processes, the renderers in the web layer, and peewee's URL backends are
    for PostgreSQL, so the command's process imports none of them when nothing changed."""
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db")
    assert feedhub("--config", str(cfg), "collect", cwd=tmp_path).returncode == 0
    script = (f"import sys; from web import cli; rc = cli.main(['--config', {str(cfg)!r}, 'collect']); "
              "heavy = ('feedparser', 'lxml', 'feedgen', 'playhouse.db_url', 'aggregator.parse', 'feeds.render'); "
              "print(rc, sorted(m for m in heavy if m in sys.modules))")
    again = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert "7 source(s): 0 new, 0 updated, 0 failed" in again.stdout, again.stderr
    assert again.stdout.strip().splitlines()[-1] == "0 []"


def test_collect_exits_1_when_every_source_fails(tmp_path: Path):
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db",
                       '[[sources]]\nid = "junk"\nname = "Junk"\nurl = "samples/junk.rss"\n')
    (tmp_path / "samples" / "junk.rss").write_text("this is not a feed", encoding="utf-8")
    result = feedhub("--config", str(cfg), "collect", cwd=tmp_path)
    assert result.returncode == 1 and "1 failed" in result.stdout
    table = feedhub("--config", str(cfg), "sources", cwd=tmp_path)
    assert "failing" in table.stdout and "not a recognised feed format" in table.stdout


def test_database_url_overrides_the_config(tmp_path: Path):
    cfg = write_config(tmp_path, "sqlite:///var/ignored.db")
    other = tmp_path / "other.db"
    result = feedhub("--config", str(cfg), "init", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{other}"})
    assert result.returncode == 0 and other.exists() and not (tmp_path / "var" / "ignored.db").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_collects_and_serves_every_edition(tmp_path: Path):
    """The quickstart's main job: `feedhub run` collects the samples and serves them on 127.0.0.1."""
    port = free_port()
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/var/run.db")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*FEEDHUB, "--config", str(cfg), "run", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = None
        deadline = time.monotonic() + 60  # readiness wait, not a speed assertion
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/feeds/latest.rss", timeout=5) as r:
                    body = r.read()
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.2)
        assert body is not None, proc.stdout.read() if proc.poll() is not None else "server did not answer"
        assert len(feedparser.parse(body).entries) == 50
        for path in ("/ar/feeds/latest.atom", "/es/feeds/breaking.json", "/feeds/section/politics.rss"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_run_stops_quietly_on_ctrl_c_and_sigterm(tmp_path: Path, sig: signal.Signals, code: int):
    """Ctrl-C reaches the whole process group (parse workers too); SIGTERM only the parent, as
    systemd and containers send it. Both: one line, the same exit codes as every command, no
    traceback from any process, and no claim left behind."""
    port = free_port()
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/var/run.db")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*FEEDHUB, "--config", str(cfg), "run", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 60  # readiness wait, not a speed assertion
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                break
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert "Traceback" not in out and "Error" not in out, out
    assert out.rstrip().endswith("feedhub: stopped")
    conn = sqlite3.connect(tmp_path / "var" / "run.db")
    assert conn.execute("SELECT count(*) FROM source WHERE lease_owner IS NOT NULL").fetchone() == (0,)
    conn.close()


def imports_of(package: str) -> set[str]:
    """Top-level packages imported anywhere in ``package``."""
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_import_direction_keeps_the_layers_apart():
    assert not imports_of("aggregator") & {"feeds", "web", "flask"}
    assert not imports_of("feeds") & {"web", "flask"}


DATABASE_MODULES = {"peewee", "playhouse", "sqlite3", "psycopg2"}
SQL_TEXT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA|WITH)\b")
#: modules that still talk to the database themselves: none any more, and the list only shrinks
STORE_WORK_LEFT: set[str] = set()


def database_use(path: Path) -> list[str]:
    """What in ``path`` talks to the database without the store: imports of a database module,
    SQL text, and the store's tables or connection used directly (store.Entry, store.db, ...)."""
    import aggregator.store.schema as schema

    tables = {name for name, value in vars(schema).items() if isinstance(value, type)
              and issubclass(value, schema.BaseModel)} | {"db"}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in DATABASE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in DATABASE_MODULES:
            found.append(f"imports {node.module}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.match(node.value):
            found.append(f"SQL text {node.value[:30]!r}")
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                and SQL_TEXT.match(str(node.values[0].value)):
            found.append(f"SQL text {str(node.values[0].value)[:30]!r}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "store" \
                and node.attr in tables:
            found.append(f"store.{node.attr}")
    return found


def test_sql_and_peewee_live_only_in_the_store():
    offenders = {}
    for top in ("aggregator", "feeds", "web"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel.startswith("aggregator/store/"):
                continue
            use = database_use(path)
            if use:
                offenders[rel] = sorted(set(use))
    assert set(offenders) - STORE_WORK_LEFT == set(), {k: v for k, v in offenders.items() if k not in STORE_WORK_LEFT}
    # A module that no longer talks to the database leaves the list for good.
    assert STORE_WORK_LEFT <= set(offenders), STORE_WORK_LEFT - set(offenders)


def test_rules_test_shows_what_each_entry_becomes_and_writes_nothing(tmp_path: Path):
    rules = ('\n[[sources.rules]]\nkeyword = "weather"\nsection = "environment"\ntag = "Weather"\n'
             '[[sources.rules]]\ncategory = "asia"\naction = "drop"\n')
    text = NEWSROOM.read_text(encoding="utf-8").replace('tags = ["Wire"]\n', 'tags = ["Wire"]\n' + rules)
    text = text.replace('url = "sqlite:///var/feedhub.db"', f'url = "sqlite:///{tmp_path}/never.db"')
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    import shutil

    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    out = feedhub("--config", str(tmp_path / "config.toml"), "rules", "test", "meridian-wire",
                  str(tmp_path / "samples" / "wire-agency.rdf"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["#", "KEPT", "SECTION"]
    weather = [line for line in lines if "Weather service" in line]
    assert weather and all("environment" in line and "rule 1 (keyword 'weather')" in line for line in weather)
    assert any(line.split()[1] == "no" and "rule 2 (category 'asia')" in line for line in lines[1:-1])
    assert lines[-1].startswith("25 entries:") and "dropped (2 rules)" in lines[-1]
    assert not (tmp_path / "never.db").exists()  # nothing written, not even a store
    bad = feedhub("--config", str(tmp_path / "config.toml"), "rules", "test", "nope", "x.rss", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown source 'nope'" in bad.stderr


def test_rules_test_fetches_a_url_through_the_guarded_fetcher(tmp_path: Path):
    from .faults import KeepAliveServer, Reply

    body = (ROOT / "samples" / "wire-agency.rdf").read_bytes()
    with KeepAliveServer({"/wire.rdf": Reply(200, body, {"Content-Type": "application/rdf+xml"})}) as srv:
        allowed = write_config(tmp_path, f"sqlite:///{tmp_path}/never.db",
                               collect='allow_networks = ["127.0.0.0/8"]\n')
        out = feedhub("--config", str(allowed), "rules", "test", "meridian-wire", srv.url("/wire.rdf"),
                      cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1].startswith("25 entries:")
        # Without allow_networks the same loopback URL is refused, as the collector refuses it.
        guarded = write_config(tmp_path / "guarded", f"sqlite:///{tmp_path}/never.db")
        refused = feedhub("--config", str(guarded), "rules", "test", "meridian-wire", srv.url("/wire.rdf"),
                          cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "loopback address" in refused.stderr.strip().splitlines()[-1]
    assert srv.requests == ["/wire.rdf"]  # the refused one never reached the server
    assert not (tmp_path / "never.db").exists()


def test_config_and_verbose_work_before_and_after_the_command(tmp_path: Path):
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db")
    for args in (["--config", str(cfg), "-v", "init"], ["init", "--config", str(cfg), "-v"],
                 ["-v", "init", "--config", str(cfg)]):
        result = feedhub(*args, cwd=tmp_path / "samples")  # no config.toml here: only --config finds it
        assert result.returncode == 0, (args, result.stderr)
        assert "DEBUG" in result.stderr  # -v took effect wherever it stood


def test_a_busy_port_is_one_line_with_exit_1(tmp_path: Path):
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = feedhub("--config", str(cfg), "serve", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"feedhub: error: cannot listen on 127.0.0.1:{port}: ") and "in use" in last


def test_a_closed_pipe_is_one_line_not_a_traceback(tmp_path: Path):
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db")
    assert feedhub("--config", str(cfg), "collect", cwd=tmp_path).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    # `feedhub rules test ... | head -1`: the reader leaves after one line, long before the
    # table (far more than a pipe holds) is written.
    from bench.feedserver import make_feed
    (tmp_path / "big.rss").write_bytes(make_feed(1, 3000))
    proc = subprocess.Popen([*FEEDHUB, "--config", str(cfg), "rules", "test", "cms-news", "big.rss"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].endswith("(broken pipe)")


def test_retract_finds_an_entry_by_the_guid_its_source_wrote_and_unretract_undoes_it(tmp_path: Path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "embargo.rss").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>E</title><link>https://e.example.org/</link>'
        "<description>d</description><item><title>Held story</title><guid>embargo-1</guid>"
        "<description>Lead.</description></item></channel></rss>", encoding="utf-8")
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db",
                       '[[sources]]\nid = "emb"\nname = "Embargo desk"\nurl = "samples/embargo.rss"\n'
                       'section = "politics"\n')
    assert feedhub("--config", str(cfg), "collect", cwd=tmp_path).returncode == 0
    gone = feedhub("--config", str(cfg), "retract", "embargo-1", cwd=tmp_path)  # as the source wrote it
    assert gone.returncode == 0 and "retracted 1 entry: Held story (from emb)" in gone.stdout, gone.stderr
    again = feedhub("--config", str(cfg), "retract", "embargo-1", cwd=tmp_path)
    assert "already retracted" in again.stdout
    back = feedhub("--config", str(cfg), "unretract", "embargo-1", cwd=tmp_path)
    assert back.returncode == 0 and "published again 1 entry: Held story" in back.stdout, back.stderr
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("SELECT retracted_at FROM entry").fetchall() == [(None,)]
    conn.close()
    missing = feedhub("--config", str(cfg), "unretract", "no-such-thing", cwd=tmp_path)
    assert missing.returncode == 1 and "no entry has the id, guid or link 'no-such-thing'" in missing.stderr


def test_the_package_declares_what_setuptools_would_warn_about():
    """A clean install: the two setuptools warnings of `pip install` stay fixed. `license` is an
    SPDX string (a table is deprecated), and every folder shipped with the code is a declared
    package (web/templates holds no Python, and setuptools warns about undeclared ones)."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert isinstance(meta["project"]["license"], str)
    declared = set(meta["tool"]["setuptools"]["packages"])
    shipped = {str(d.relative_to(ROOT)).replace("/", ".") for top in ("aggregator", "feeds", "web")
               for d in [ROOT / top, *(ROOT / top).rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(f.is_file() for f in d.iterdir())}
    assert shipped <= declared, shipped - declared
    requires = meta["build-system"]["requires"]
    assert any(r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77 for r in requires)
