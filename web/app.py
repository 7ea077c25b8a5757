"""The Flask app factory: wires config, the store and the blueprints together."""
from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from aggregator import store
from aggregator.config import Config
from feeds.render import Fragments

from .api import api
from .cache import RenderCache
from .console import console
from .errors import register_error_handlers
from .hot import HotFeeds
from .limits import buckets_for
from .metrics import metrics
from .partner import partner
from .public import public
from .stream import StreamHub
from .subscriber import subscriber
from .usage import UsageRecorder
from .websub import HubPublisher

#: what an app serves: everything, the public side only, or the admin API only (for a
#: deployment that keeps the API on its own listener: [admin] bind)
PARTS = ("all", "public", "admin")


def create_app(config: Config, parts: str = "all") -> Flask:
    """Build the WSGI app for ``config``; opens (and if needed creates) the store.

    "all" serves the public feeds and, when [admin] enabled and no [admin] bind, /api/v1.
    """
    if parts not in PARTS:
        raise ValueError(parts)
    app = Flask(__name__)
    app.config["FEEDHUB"] = config
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Arabic stays readable
    database = store.init_db(config.database_url)
    store.prepare_index(config.taxonomy.parents)  # a store from an older feedhub, a moved subsection

    @app.before_request
    def _connect() -> None:
        # Each server thread keeps its connection from request to request: opening one
        # (and SQLite's pragmas) cost more than serving a cached feed.
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _drop_broken(exc: BaseException | None) -> None:
        # A connection that broke during the request (the database restarted, the link
        # dropped) must not poison the thread's next requests.
        store.reset_connection()

    app.extensions["feedhub.integrity"] = store.IntegrityWatch(
        config.server.integrity_check_every, start_max_age=config.store.integrity_check_hours * 3600)
    memory = config.cache.memory_mb << 20
    app.extensions["feedhub.cache"] = RenderCache(max_bytes=memory * 3 // 4)
    app.extensions["feedhub.fragments"] = Fragments(max_bytes=memory // 4)
    revisions = app.extensions["feedhub.revisions"] = store.TopicRevisions(database)
    usage = app.extensions["feedhub.usage"] = UsageRecorder()
    app.extensions["feedhub.buckets"] = buckets_for(config.cache.redis_url)
    app.wsgi_app = app.extensions["feedhub.hot"] = HotFeeds(  # type: ignore[method-assign]
        app.wsgi_app, revisions, on_feed_request=usage.public)
    if parts != "admin":
        app.extensions["feedhub.streams"] = StreamHub(config, database, revisions)
        app.register_blueprint(public)
        app.register_blueprint(partner)
        app.register_blueprint(subscriber)
        app.register_blueprint(metrics)
    if config.admin.enabled and (parts == "admin" or (parts == "all" and not config.admin.bind)):
        app.register_blueprint(api)
        app.register_blueprint(console)
        app.extensions["feedhub.publisher"] = HubPublisher(config)
        # Console sessions: signed with a secret the store keeps, so every web process accepts
        # them; HttpOnly and SameSite=Lax always, Secure when the request came over HTTPS.
        app.secret_key = store.session_secret()
        app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                          SESSION_COOKIE_NAME="feedhub_session", PERMANENT_SESSION_LIFETIME=12 * 3600)
        app.session_interface = _SecureWhenHttps()
    register_error_handlers(app)
    return app


class _SecureWhenHttps(SecureCookieSessionInterface):
    """The session cookie is Secure exactly when the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


#: settings a running server cannot take from a reloaded file (they need a restart)
RESTART_ONLY = ("database_url", "server", "admin", "cache", "stream")


def with_started(started: Config, new: Config) -> tuple[Config, list[str]]:
    """A reloaded config as a running server takes it (SIGHUP): ``new``, with the settings that
    need a restart (database, listeners, workers, caches) kept at their ``started`` values, and
    the names of those that changed in the file."""
    need_restart = [name for name in RESTART_ONLY if getattr(started, name) != getattr(new, name)]
    if need_restart:
        import dataclasses

        new = dataclasses.replace(new, **{name: getattr(started, name) for name in need_restart})
    return new, need_restart
