"""Shared fixtures: a config per test folder, the store on SQLite and (when asked) PostgreSQL.

Store-touching tests take the ``backend`` fixture, so they run once on SQLite
and again on PostgreSQL when FEEDHUB_TEST_POSTGRES_URL is set (.ci/run sets it).
Each PostgreSQL test gets a fresh schema, selected through search_path.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import psycopg2.errors
import pytest

from aggregator import store
from aggregator.collect import Collector
from aggregator.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
#: the tests' own copy of the sample newsroom's config (never the admin's config.toml)
NEWSROOM = Path(__file__).resolve().parent / "data" / "newsroom.toml"
SAMPLES = ROOT / "samples"
PG_URL = os.environ.get("FEEDHUB_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="FEEDHUB_TEST_POSTGRES_URL is not set")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


class PgSchema:
    """A throwaway PostgreSQL schema; its URL points search_path at it."""

    def __init__(self) -> None:
        assert PG_URL
        self.name = f"fh_test_{uuid.uuid4().hex[:12]}"
        self._admin("CREATE SCHEMA {}")
        sep = "&" if "?" in PG_URL else "?"
        self.url = f"{PG_URL}{sep}options={quote(f'-csearch_path={self.name}')}"

    def _admin(self, sql: str) -> None:
        conn = psycopg2.connect(PG_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.format(self.name))
        conn.close()

    def drop(self) -> None:
        close_store()
        # A connection of the code under test can still be finishing a write when the test
        # ends (seen once in CI: a deadlock between DROP SCHEMA, which locks table after
        # table, and that write). PostgreSQL ends one of the two; dropping again once the
        # other is done cleans up.
        for attempt in range(5):
            try:
                self._admin("DROP SCHEMA IF EXISTS {} CASCADE")
                return
            except psycopg2.errors.DeadlockDetected:
                if attempt == 4:
                    raise
                time.sleep(0.5)


def close_store() -> None:
    """Close this thread's store connection, if the proxy is bound and open."""
    if store.db.obj is not None and not store.db.is_closed():
        store.db.close()


def make_db_url(backend: str, folder: Path) -> tuple[str, PgSchema | None]:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'var' / 'feedhub.db'}", None
    schema = PgSchema()
    return schema.url, schema


LOOPBACK = 'allow_networks = ["127.0.0.0/8", "::1"]\n'


def write_config(folder: Path, db_url: str, sources: str | None = None, extra: str = "",
                 collect: str = "") -> Path:
    """A config.toml in ``folder`` using the project's taxonomy, with ``sources`` (default: the samples).

    ``collect`` is TOML added to the [collect] table (e.g. LOOPBACK for tests that fetch from 127.0.0.1).
    """
    base = NEWSROOM.read_text(encoding="utf-8")
    head, _, sample_sources = base.partition("# --- the bundled sample newsroom")
    head = re.sub(r'(?m)^url = ".*"$', lambda m: f'url = "{db_url}"', head, count=1)  # [database] url
    for line in collect.splitlines():  # an override replaces the file's own value
        key = line.split("=", 1)[0].strip()
        head = re.sub(rf"(?m)^{re.escape(key)}\s*=.*\n", "", head)
    head = head.replace("[collect]\n", "[collect]\n" + collect, 1)
    if sources is None:
        sources = "# --- the bundled sample newsroom" + sample_sources
    if not (folder / "samples" / "breaking.rss").exists():  # files a test put there first are kept
        shutil.copytree(SAMPLES, folder / "samples", dirs_exist_ok=True)
    path = folder / "config.toml"
    path.write_text(head + extra + "\n" + sources, encoding="utf-8")
    return path


def newsroom_config() -> Config:
    """The sample newsroom's config, written to a folder of its own (for module-level use)."""
    folder = Path(tempfile.mkdtemp(prefix="feedhub-newsroom-"))
    return load_config(write_config(folder, f"sqlite:///{folder / 'var' / 'feedhub.db'}"), environ={})


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    url, schema = make_db_url(backend, tmp_path)
    yield url
    close_store()
    if schema:
        schema.drop()


@pytest.fixture
def samples_dir(tmp_path: Path) -> Path:
    """tmp_path/samples with the bundled samples: a test puts its own feed files there before
    it builds the config that names them (the config refuses a file that is not there)."""
    shutil.copytree(SAMPLES, tmp_path / "samples", dirs_exist_ok=True)
    return tmp_path / "samples"


@pytest.fixture
def config_factory(tmp_path: Path, db_url: str):
    """Build a Config in tmp_path: ``config_factory(sources_toml=None, extra="", collect="")``."""
    def make(sources: str | None = None, extra: str = "", collect: str = "") -> Config:
        return load_config(write_config(tmp_path, db_url, sources, extra, collect), environ={})
    return make


@pytest.fixture
def config(config_factory) -> Config:
    """The sample newsroom's config, on this test's store."""
    return config_factory()


@pytest.fixture
def collected(config: Config) -> Config:
    """The sample newsroom collected into a fresh store."""
    store.init_db(config.database_url)
    summary = Collector(config).collect()
    assert not summary.failed, summary.failed
    return config


# A store holding the collected sample newsroom, shared by the read-only feed tests.
@pytest.fixture(scope="module", params=BACKENDS)
def newsroom(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    if request.param == "postgres" and not PG_URL:
        pytest.skip("FEEDHUB_TEST_POSTGRES_URL is not set")
    folder = tmp_path_factory.mktemp(f"newsroom-{request.param}")
    url, schema = make_db_url(request.param, folder)
    cfg = load_config(write_config(folder, url), environ={})
    store.init_db(cfg.database_url)
    summary = Collector(cfg).collect()
    assert not summary.failed, summary.failed
    store.db.close()
    yield cfg
    if schema:
        schema.drop()


@pytest.fixture
def client(newsroom: Config):
    from web import create_app

    app = create_app(newsroom)  # re-binds the store proxy to this module's database
    app.testing = True
    with app.test_client() as c:
        yield c


@contextmanager
def serving_app(app: Any, threads: int = 4) -> Iterator[int]:
    """A WSGI app under waitress on 127.0.0.1, as `feedhub serve` runs it; yields the port. On
    exit the server's threads end too, and their store connections with them."""
    import waitress

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)

    def run() -> None:
        try:
            server.run()
        except OSError:  # close() from the test's thread pulls the socket from under select()
            pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        server.close()
        server.task_dispatcher.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Debian chromium per test module (see tests/browser_support.py)."""
    from playwright.sync_api import sync_playwright

    from .browser_support import CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()
