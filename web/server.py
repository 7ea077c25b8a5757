"""`feedhub serve` and `feedhub run`: the feeds served by gunicorn, one worker process per core.

One Python process serves one request at a time (the GIL), so a single process leaves every
other core idle. Here gunicorn's master binds the listeners and forks worker processes
(gthread: a few threads each, keep-alive); each worker builds its own app, with its own render
cache and hot path. They stay exact together because every answer is checked against the
store's change counters (``store.TopicRevisions``), which see any process's commit.

The master does the work that must happen once: it opens and checks the store, re-indexes it
when needed, and validates a reloaded config.toml before any worker sees it. It never keeps a
database connection across a fork. Nothing is collected here: `run` starts its collector as a
separate process (see web.cli).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from aggregator import store
from aggregator.config import Config
from aggregator.errors import FeedhubError

log = logging.getLogger(__name__)

#: the address families a listener host may name (an IPv6 host comes in brackets or bare)
_WILDCARDS = ("0.0.0.0", "::", "")


def worker_count(config: Config) -> int:
    """Worker processes to serve with: [server] workers, or one per core when it is 0."""
    return config.server.workers or os.cpu_count() or 1


def _address(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_free(host: str, port: int, what: str) -> None:
    """Refuse, with a plain message, to start on an address another server holds.

    gunicorn would retry for five seconds and then exit with its own wording; the operator
    needs to know which listener it was and what to do.
    """
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as e:
            raise FeedhubError(f"cannot listen on {host}:{port}: {e.strerror or e}; is another server running "
                               f"there? (choose another port for {what})") from None


def settings(config: Config, binds: list[str]) -> dict[str, Any]:
    """gunicorn's settings for serving ``config`` on ``binds`` (bench/serve runs its baseline
    app with the same ones)."""
    return {
        "bind": binds,
        "workers": worker_count(config),
        # gthread: keep-alive connections, and a slow client or a cold render does not hold
        # the whole process (the app is thread-safe: one store connection per thread).
        "worker_class": "gthread",
        "threads": config.server.threads,
        "keepalive": 5,
        # A cold feed over a big store renders in well under a second; a worker silent for
        # this long is stuck, and the master replaces it.
        "timeout": 120,
        "graceful_timeout": 20,
        "proc_name": "feedhub",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "control_socket_disable": True,
    }


class ByListener:
    """One worker serves both listeners when the admin API has its own ([admin] bind): a request
    goes to the admin app exactly when it arrived on the admin listener's socket."""

    def __init__(self, public: Callable[..., Iterable[bytes]], admin: Callable[..., Iterable[bytes]],
                 admin_host: str, admin_port: int):
        self.public, self.admin = public, admin
        self.admin_host, self.admin_port = admin_host.strip("[]"), admin_port

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return (self.admin if self.is_admin(environ) else self.public)(environ, start_response)

    def is_admin(self, environ: dict[str, Any]) -> bool:
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return False
        local = sock.getsockname()  # the address the connection was accepted on
        return local[1] == self.admin_port and (self.admin_host in _WILDCARDS or local[0] == self.admin_host)


class Helper:
    """A process the master keeps beside its workers (`run`'s collector): started before the
    workers, told of SIGHUP, started again if it dies, stopped with the server."""

    #: seconds between a helper's death and its restart (a crash loop must not spin)
    RESTART_AFTER = 2.0

    def __init__(self, name: str, argv: list[str]):
        self.name, self.argv = name, argv
        self.proc: subprocess.Popen[bytes] | None = None
        self._died_at: float | None = None

    def start(self) -> None:
        # Ctrl-C reaches the whole process group; the master stops the helper itself (SIGTERM)
        # once the workers are down, and an interrupt mid-import would only print a traceback.
        self.proc = subprocess.Popen(self.argv, preexec_fn=_ignore_interrupt)
        self._died_at = None

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def check(self, stopping: bool) -> None:
        """Reap the helper if it exited (before gunicorn's waitpid(-1) takes its status), and
        start it again once RESTART_AFTER has passed."""
        if self.proc is not None and self.proc.poll() is not None:
            if not stopping:
                log.error("the %s stopped (exit status %s); starting it again in %g s",
                          self.name, self.proc.returncode, self.RESTART_AFTER)
            self.proc, self._died_at = None, time.monotonic()
        if (self.proc is None and not stopping and self._died_at is not None
                and time.monotonic() - self._died_at >= self.RESTART_AFTER):
            self.start()

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("the %s did not stop within %g s; killed", self.name, timeout)
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _ignore_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _FeedhubArbiter(Arbiter):
    """gunicorn's master, with feedhub's stop and reload: the signal that stopped it is kept
    (the command exits 130 or 143, as every command does), and SIGHUP restarts the workers
    only with a config.toml that loaded cleanly (a broken file is refused, the old one stays)."""

    server: FeedhubServer

    def __init__(self, app: FeedhubServer):
        self.server = app
        super().__init__(app)

    def handle_hup(self) -> None:
        if self.server.on_hangup():
            super().handle_hup()
            for helper in self.server.helpers:
                helper.signal(signal.SIGHUP)

    def reap_workers(self) -> None:
        for helper in self.server.helpers:
            helper.check(stopping=self.server.stopped_by is not None)
        super().reap_workers()

    def manage_workers(self) -> None:
        for helper in self.server.helpers:
            helper.check(stopping=self.server.stopped_by is not None)
        super().manage_workers()

    def handle_term(self) -> None:
        self.server.stopped_by = signal.SIGTERM
        super().handle_term()

    def handle_int(self) -> None:
        self.server.stopped_by = signal.SIGINT
        super().handle_int()

    def handle_quit(self) -> None:
        self.server.stopped_by = signal.SIGINT
        super().handle_quit()


class FeedhubServer(BaseApplication):
    """gunicorn, configured from feedhub's Config instead of gunicorn's command line."""

    def __init__(self, config: Config, host: str, port: int, reload: Callable[[], Config | None],
                 helpers: list[Helper] | None = None):
        self.config = config
        self.helpers = helpers or []
        self.host, self.port = host, port
        #: reads config.toml again; None when it is refused (it says why itself)
        self._reload = reload
        self.stopped_by: int | None = None
        self._apps: list[Any] = []
        super().__init__(prog="feedhub")

    # --- master side ----------------------------------------------------------------------

    def load_config(self) -> None:
        c = self.config
        binds = [_address(self.host, self.port)]
        if self.separate_admin:
            assert c.admin.address is not None
            binds.append(_address(*c.admin.address))
        for key, value in {**settings(c, binds), "worker_exit": _worker_exit}.items():
            self.cfg.set(key, value)

    @property
    def separate_admin(self) -> bool:
        return self.config.admin.enabled and self.config.admin.address is not None

    def run(self) -> int | None:
        """Serve until stopped; returns the signal that stopped the server (None: it halted).

        Only the master returns. A worker process leaves through os._exit when gunicorn is done
        with it: the command's own code after serving (stopping helpers, printing) is the master's.
        """
        # The workers open their own connections: none may be inherited through fork.
        store.close_connection()
        master = os.getpid()
        for helper in self.helpers:
            helper.start()
        try:
            _FeedhubArbiter(self).run()
        except SystemExit as e:
            if os.getpid() != master:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(e.code if isinstance(e.code, int) else 1)
            if e.code not in (0, None) and self.stopped_by is None:
                raise FeedhubError(f"the server stopped (gunicorn exit status {e.code}); "
                                   "its log lines above say why") from None
        finally:
            if os.getpid() == master:
                for helper in self.helpers:
                    helper.stop()
        return self.stopped_by

    def on_hangup(self) -> bool:
        """SIGHUP in the master: take a config that loads, or keep the running one."""
        new = self._reload()
        store.close_connection()  # the reload used the store; the new workers must not inherit it
        if new is None:
            return False
        from .app import with_started

        # Listeners, workers, the database and the caches stay as started (the reload warned).
        self.config, _ = with_started(self.config, new)
        return True

    # --- worker side ----------------------------------------------------------------------

    def load(self) -> Callable[..., Iterable[bytes]]:
        """The WSGI app of one worker process (built after the fork, with the master's config)."""
        from .app import create_app

        if not self.separate_admin:
            app = create_app(self.config, "all")
            self._apps = [app]
            return app
        assert self.config.admin.address is not None
        public, admin = create_app(self.config, "public"), create_app(self.config, "admin")
        self._apps = [public, admin]
        return ByListener(public, admin, *self.config.admin.address)

    def close_apps(self) -> None:
        """What a worker writes at exit: the usage counted and not yet written."""
        for app in self._apps:
            app.extensions["feedhub.usage"].close()
            publisher = app.extensions.get("feedhub.publisher")
            if publisher is not None:
                publisher.close()
        self._apps = []


def _worker_exit(arbiter: Any, worker: Any) -> None:
    app = getattr(worker, "app", None)
    if isinstance(app, FeedhubServer):
        app.close_apps()
