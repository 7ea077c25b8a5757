"""/admin: the newsroom's console, server-rendered (Flask + Jinja, a little plain JavaScript).

Every page calls aggregator.admin and the store's functions, as the API does: no second copy
of the logic. Sessions are signed cookies (HttpOnly, SameSite=Lax, Secure over HTTPS); every
form carries a CSRF token; every page checks the user's role on the server.
"""
from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from aggregator import admin, auth, store
from aggregator.admin import Actor
from aggregator.config import SOURCE_FIELDS, Config
from aggregator.errors import ConfigError, FeedhubError, Forbidden, Invalid, RequestError

from .api import FailureLimiter
from .charts import ingest_chart

console = Blueprint("console", __name__, url_prefix="/admin")

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


def _config() -> Config:
    return current_app.config["FEEDHUB"]


def _limiter() -> FailureLimiter:
    return current_app.extensions.setdefault("feedhub.console_failures", FailureLimiter(limit=5, window=300))


# --- sessions, CSRF, roles ----------------------------------------------------------------------

@console.before_request
def _load_user() -> ResponseReturnValue | None:
    g.user = None
    name = session.get("user")
    if name:
        # The role is read on every request: a change of role (or a removed user) applies at once.
        user = next((u for u in store.list_users() if u.name == name), None)
        if user is None:
            session.clear()
        else:
            g.user = user
    if request.method == "POST":
        sent = request.form.get("csrf", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            return Response(render_template("console/refused.html", reason="the form had no valid CSRF token "
                                            "(reload the page and try again)"), status=400)
    if g.user is None and request.endpoint not in ("console.login", "console.static"):
        return redirect(url_for("console.login", next=request.path))
    return None


def csrf_token() -> str:
    """The session's CSRF token (made on first use), for every form."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def _actor() -> Actor:
    return Actor(g.user.name, g.user.role, "console")


def needs(ability: str) -> Callable[[F], F]:
    """The view needs an ability beyond reading (see admin.ABILITIES); checked on the server."""
    def wrap(view: F) -> F:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            try:
                admin.require(_actor(), ability)
            except Forbidden as e:
                return Response(render_template("console/refused.html", reason=str(e)), status=403)
            return view(*args, **kwargs)
        return checked  # type: ignore[return-value]
    return wrap


def can(ability: str) -> bool:
    """For templates: may the user do this? (The server checks again when it is done.)"""
    return g.user is not None and ability in admin.ABILITIES.get(g.user.role, set())


@console.app_template_global("console_globals")
def _globals() -> dict[str, Any]:
    return {"csrf": csrf_token(), "user": g.get("user"), "can": can, "site": _config().site,
            "editions": _config().editions}


def _done(message: str, endpoint: str, **values: Any) -> Response:
    flash(message, "ok")
    return redirect(url_for(endpoint, **values))  # type: ignore[return-value]


def _problem(e: FeedhubError) -> str:
    if isinstance(e, Invalid):
        return "; ".join(f"{f}: {m}" for f, m in e.problems)
    return str(e)


# --- login, logout, password --------------------------------------------------------------------

@console.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    error = None
    address = request.remote_addr or "unknown"
    if request.method == "POST":
        wait = _limiter().blocked_for(address)
        name, password = request.form.get("name", ""), request.form.get("password", "")
        stored = store.password_hash(name) if name and not wait else None
        if wait:
            error = f"too many failed logins from this address; try again in {int(wait) + 1} s"
        elif stored and auth.verify_password(stored, password):
            nxt = request.args.get("next", "")
            session.clear()
            session.permanent = True
            session["user"] = name
            csrf_token()
            return redirect(nxt if nxt.startswith("/admin") and not nxt.startswith("//") else url_for("console.home"))
        else:
            _limiter().failed(address)
            error = "wrong name or password"
    resp = Response(render_template("console/login.html", error=error), status=401 if error else 200)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@console.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("console.login"))


@console.route("/password", methods=["GET", "POST"])
def password() -> ResponseReturnValue:
    error = None
    if request.method == "POST":
        stored = store.password_hash(g.user.name)
        new, again = request.form.get("new", ""), request.form.get("again", "")
        if not stored or not auth.verify_password(stored, request.form.get("current", "")):
            error = "the current password is wrong"
        elif new != again:
            error = "the two new passwords differ"
        else:
            try:
                store.set_password(g.user.name, auth.hash_password(new))
            except auth.AuthError as e:
                error = str(e)
            else:
                store.audit(g.user.name, "console", "user.password", f"user:{g.user.name}", None, {"changed": True},
                            store.utcnow())
                return _done("password changed", "console.home")
    return render_template("console/password.html", error=error)


# --- dashboard ----------------------------------------------------------------------------------------

@console.get("/")
def home() -> ResponseReturnValue:
    now = store.utcnow()
    health = admin.sources()
    troubled = [h for h in health if h.status in ("failing", "gone")]
    hours = store.ingest_by_hour(store.aware(now) - timedelta(hours=48))
    breaking = store.list_entries(20, status="breaking", now=store.stored(now))
    live_breaking = [e for e in breaking if e.published <= store.aware(now)]
    top = store.feed_requests(store.aware(now).date() - timedelta(days=6), 10)
    subscribers = store.feed_subscribers(store.aware(now).date())
    return render_template("console/dashboard.html", troubled=troubled, runs=store.recent_runs(8),
                           subscribers=sorted(subscribers.items(), key=lambda kv: -kv[1])[:10],
                           chart=ingest_chart(hours, store.aware(now)), breaking=live_breaking, top=top,
                           counts=store.status_counts(), total=len(health))


# --- sources ------------------------------------------------------------------------------------

SORTS = {"id": lambda h: h.key, "status": lambda h: (h.status, h.key), "failures": lambda h: -h.consecutive_failures,
         "entries": lambda h: -h.entries_stored, "last_success": lambda h: h.last_success_at.timestamp()
         if h.last_success_at else 0.0, "next_due": lambda h: h.next_due_at.timestamp() if h.next_due_at else 0.0}


@console.get("/sources")
def sources() -> ResponseReturnValue:
    found = admin.sources()
    q = request.args.get("q", "").strip().lower()
    status = request.args.get("status", "")
    if q:
        found = [h for h in found if q in h.key.lower() or q in h.name.lower() or q in h.url.lower()]
    if status in store.STATUSES:
        found = [h for h in found if h.status == status]
    sort = request.args.get("sort", "id")
    found.sort(key=SORTS.get(sort, SORTS["id"]))
    return render_template("console/sources.html", sources=found, q=q, status=status, sort=sort,
                           statuses=store.STATUSES)


@console.route("/sources/new", methods=["GET", "POST"])
@needs("sources")
def source_new() -> ResponseReturnValue:
    error, candidates = None, []
    form = request.form.to_dict() if request.method == "POST" else {}
    if request.method == "POST":
        data = _source_form(form, partial=False)
        url = data.get("url", "")
        try:
            if form.get("exact") != "on" and url.lower().startswith(("http://", "https://")):
                from aggregator.fetch import Fetcher

                fetcher = Fetcher(_config().collect)
                try:
                    found = admin.discover(url, fetcher)
                finally:
                    fetcher.close()
                if found.candidates:
                    candidates = found.candidates
                    raise _Choose()
                data["url"] = found.feed_url
                if not data.get("name"):
                    data["name"] = (found.title or "").strip()[:150] or found.feed_url
            done = admin.add_source(_actor(), data, _config(), store.utcnow())
            return _done(f"added {done.result.key}", "console.source", key=done.result.key)
        except _Choose:
            error = f"{url} announces {len(candidates)} feeds: pick one"
        except FeedhubError as e:
            error = _problem(e)
    return render_template("console/source_new.html", error=error, candidates=candidates, form=form)


class _Choose(Exception):
    """Discovery found several feeds: the form lists them."""


#: source fields the edit form has, as text inputs (lists are comma-separated)
TEXT_FIELDS = ("name", "url", "kind", "edition", "section", "region", "origin", "rights", "rights_statement")


def _source_form(form: dict[str, str], partial: bool) -> dict[str, Any]:
    """Form fields as a config.toml source table."""
    data: dict[str, Any] = {k: form[k].strip() for k in TEXT_FIELDS if k in form and (form[k].strip() or partial)}
    if "id" in form and form["id"].strip():
        data["id"] = form["id"].strip()
    if "tags" in form:
        data["tags"] = [t.strip() for t in form["tags"].split(",") if t.strip()]
    if "interval" in form and form["interval"].strip():
        raw = form["interval"].strip()
        data["interval"] = int(raw) if raw.isdigit() else raw
    for flag in ("breaking", "ignore_updates", "embargo"):
        if partial or flag in form:
            data[flag] = form.get(flag) == "on"
    return data


def _rules_from(text: str) -> Any:
    """Rules typed in the editor: TOML [[rules]] tables (config.toml's own form) or JSON."""
    import tomllib

    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    try:
        return tomllib.loads(text).get("rules", [])
    except tomllib.TOMLDecodeError as e:
        raise Invalid([("rules", f"not valid TOML ([[rules]] tables) or JSON: {e}")]) from None


def _rules_text(rules: list[dict[str, Any]]) -> str:
    lines = []
    for rule in rules:
        lines.append("[[rules]]")
        lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in rule.items()]
        lines.append("")
    return "\n".join(lines)


@console.route("/sources/<key>", methods=["GET", "POST"])
def source(key: str) -> ResponseReturnValue:
    h = admin.source(key)
    error, trial = None, None
    rules_text = _rules_text(h.settings.get("rules", []))
    if request.method == "POST":
        action = request.form.get("action", "save")
        try:
            if action == "test":  # a dry run: readers may, nothing is written
                rules_text = request.form.get("rules", "")
                from aggregator.fetch import Fetcher

                fetcher = Fetcher(_config().collect)
                try:
                    trial = admin.trial_rules(key, _rules_from(rules_text), _config(), fetcher,
                                              store.stored(store.utcnow()))
                finally:
                    fetcher.close()
            else:
                admin.require(_actor(), "sources")
                now = store.utcnow()
                if action == "save":
                    changes = _source_form(request.form.to_dict(), partial=True)
                    changes["rules"] = _rules_from(request.form.get("rules", ""))
                    admin.edit_source(_actor(), key, changes, _config(), now)
                    return _done("saved", "console.source", key=key)
                if action in ("enable", "disable"):
                    admin.set_enabled(_actor(), key, action == "enable", _config(), now)
                    return _done(f"{action}d", "console.source", key=key)
                if action == "refresh":
                    admin.refresh_source(_actor(), key, now)
                    return _done("queued: a running collector fetches it within seconds; this page shows the "
                                 "outcome", "console.source", key=key, refreshed=store.aware(now).isoformat())
                if action == "remove":
                    admin.remove_source(_actor(), key, request.form.get("retract") == "on", _config(), now)
                    return _done(f"removed {key}", "console.sources")
        except Forbidden as e:
            return Response(render_template("console/refused.html", reason=str(e)), status=403)
        except (FeedhubError, ConfigError) as e:
            error = _problem(e)
        h = admin.source(key)
    log = admin.fetch_log(key, 30, None)
    return render_template("console/source.html", h=h, error=error, trial=trial, rules_text=rules_text, log=log,
                           fields=SOURCE_FIELDS, refreshed=request.args.get("refreshed"))


@console.get("/sources/<key>/status")
def source_status(key: str) -> ResponseReturnValue:
    """The source's last fetch, for the page's refresh indicator (polled by a few lines of JS)."""
    h = admin.source(key)
    return {"last_fetched_at": h.last_fetched_at.isoformat() if h.last_fetched_at else None,
            "status": h.status, "last_error": h.last_error, "next_due_at": h.next_due_at.isoformat()
            if h.next_due_at else None, "entries": h.entries_stored}


@console.route("/sources/import", methods=["GET", "POST"])
@needs("sources")
def opml_import() -> ResponseReturnValue:
    preview, error = None, None
    if request.method == "POST":
        upload = request.files.get("opml")
        body = upload.read(1024 * 1024 + 1) if upload else request.form.get("body", "").encode("utf-8")
        confirm = request.form.get("confirm") == "1"
        try:
            if len(body) > 1024 * 1024:
                raise Invalid([("opml", "the file is over 1 MiB")])
            result = admin.import_opml(_actor(), body, _config(), store.utcnow(), dry_run=not confirm).result
            if confirm:
                return _done(f"added {result['added']} source(s), skipped {result['skipped']}", "console.sources")
            preview = {"result": result, "body": body.decode("utf-8", "replace")}
        except FeedhubError as e:
            error = _problem(e)
    return render_template("console/opml.html", preview=preview, error=error)


@console.get("/sources.opml")
def opml_export() -> ResponseReturnValue:
    resp = Response(admin.export_opml(_config(), store.utcnow()), mimetype="text/x-opml")
    resp.headers["Content-Disposition"] = 'attachment; filename="sources.opml"'
    return resp


# --- the desk -----------------------------------------------------------------------------------

@console.route("/desk", methods=["GET", "POST"])
def desk() -> ResponseReturnValue:
    error = None
    if request.method == "POST":
        try:
            admin.require(_actor(), "desk")
            action, now = request.form.get("action", ""), store.utcnow()
            entry_id = int(request.form.get("entry", "0") or 0)
            if action == "push":
                done = admin.push_breaking(_actor(), request.form.get("headline", ""), _config(), now,
                                           link=request.form.get("link") or None,
                                           body=request.form.get("body") or None,
                                           edition=request.form.get("edition") or None)
                _publish(done)
                return _done(f"pushed to the {done.result.edition} ticker: {done.result.title}", "console.desk")
            if action == "off":
                _publish(admin.take_off_ticker(_actor(), entry_id, _config(), now))
                return _done("taken off the ticker", "console.desk")
            if action in ("retract", "unretract"):
                change = admin.retract if action == "retract" else admin.unretract
                _publish(change(_actor(), entry_id, request.form.get("reason", ""), _config(), now))
                return _done(f"{action}ed entry {entry_id}", "console.desk", q=request.args.get("q", ""))
            if action == "correct":
                changes: dict[str, Any] = {"section": request.form.get("section") or None,
                                           "regions": request.form.getlist("regions"),
                                           "tags": [t.strip() for t in request.form.get("tags", "").split(",")
                                                    if t.strip()],
                                           "breaking": request.form.get("breaking") == "on"}
                _publish(admin.correct(_actor(), entry_id, changes, _config(), now))
                return _done(f"filed entry {entry_id} anew", "console.desk", q=request.args.get("q", ""))
            error = f"unknown action {action!r}"
        except Forbidden as e:
            return Response(render_template("console/refused.html", reason=str(e)), status=403)
        except (FeedhubError, ValueError) as e:
            error = _problem(e) if isinstance(e, FeedhubError) else "the entry id must be a number"
    q = request.args.get("q", "").strip()[:200] or None
    status = request.args.get("status") if request.args.get("status") in store.ENTRY_STATUSES else None
    now = store.utcnow()
    entries = store.list_entries(50, q=q, status=status, now=store.stored(now))
    ticker = [e for e in store.list_entries(30, status="breaking", now=store.stored(now))]
    return render_template("console/desk.html", entries=entries, ticker=ticker, q=q or "", status=status or "",
                           error=error, taxonomy=_config().taxonomy, statuses=store.ENTRY_STATUSES,
                           now=store.aware(now))


def _publish(done: admin.Done) -> None:
    publisher = current_app.extensions.get("feedhub.publisher")
    admin.publish_with(publisher.publish if publisher else None, done)


# --- partners, users and tokens, audit ----------------------------------------------------------

@console.route("/partners", methods=["GET", "POST"])
def partners() -> ResponseReturnValue:
    error, shown_key = None, None
    if request.method == "POST":
        try:
            admin.require(_actor(), "partners")
            action, now, name = request.form.get("action", ""), store.utcnow(), request.form.get("name", "")
            if action == "add":
                info, shown_key = admin.add_partner(_actor(), name, request.form.get("profile", ""),
                                                    request.form.get("contact", ""), _config(), now).result
            elif action == "rotate":
                info, shown_key = admin.rotate_key(_actor(), name, int(request.form.get("overlap", "24") or 24),
                                                   now).result
            elif action == "revoke":
                admin.revoke_partner_key(_actor(), name, int(request.form.get("key_id", "0")), now)
                return _done("key revoked", "console.partners")
            elif action in ("suspend", "resume"):
                admin.edit_partner(_actor(), name, {"status": "suspended" if action == "suspend" else "active"},
                                   _config(), now)
                return _done(f"{name} {action}ed" if action == "resume" else f"{name} suspended", "console.partners")
        except Forbidden as e:
            return Response(render_template("console/refused.html", reason=str(e)), status=403)
        except (FeedhubError, ValueError) as e:
            error = _problem(e) if isinstance(e, FeedhubError) else "the key id and overlap are numbers"
    since = store.utcnow().date() - timedelta(days=6)
    usage = {p.name: store.partner_usage(p.id, since) for p in store.partners()}
    restricted = [h for h in admin.sources() if h.settings.get("rights", "everyone") != "everyone"]
    return render_template("console/partners.html", partners=store.partners(), usage=usage, error=error,
                           shown_key=shown_key, profiles=admin.profiles(_config()), restricted=restricted,
                           base=_config().server.base_url or request.host_url.rstrip("/"))


@console.route("/users", methods=["GET", "POST"])
@needs("partners")  # admins only
def users() -> ResponseReturnValue:
    error, shown_token = None, None
    if request.method == "POST":
        action, now = request.form.get("action", ""), store.utcnow()
        try:
            if action == "add":
                name, role = request.form.get("name", ""), request.form.get("role", "")
                auth.check_user(name, role)
                store.add_user(name, role, auth.hash_password(request.form.get("password", "")), now)
                store.audit(g.user.name, "console", "user.add", f"user:{name}", None, {"role": role}, now)
                return _done(f"added {name} ({role})", "console.users")
            if action == "token":
                name = request.form.get("name", "")
                shown_token = auth.new_token()
                token_id = store.add_token(name, request.form.get("label", ""), auth.token_digest(shown_token), now)
                store.audit(g.user.name, "console", "token.add", f"user:{name}", None, {"token_id": token_id}, now)
            if action == "revoke":
                token_id = int(request.form.get("token_id", "0"))
                if store.revoke_token(token_id, now):
                    store.audit(g.user.name, "console", "token.revoke", f"token:{token_id}", None,
                                {"revoked": True}, now)
                return _done(f"token {token_id} revoked", "console.users")
        except (FeedhubError, auth.AuthError, ValueError) as e:
            error = str(e)
    return render_template("console/users.html", users=store.list_users(), tokens=store.list_tokens(),
                           error=error, shown_token=shown_token, roles=auth.ROLES)


@console.get("/audit")
def audit() -> ResponseReturnValue:
    before = request.args.get("before", "")
    rows = admin.audit_log(51, int(before) if before.isdigit() else None,
                           target=request.args.get("target") or None, actor=request.args.get("actor") or None)
    return render_template("console/audit.html", rows=rows[:50], more=rows[50].id if len(rows) > 50 else None)


@console.errorhandler(RequestError)
def _request_error(e: RequestError) -> ResponseReturnValue:
    return Response(render_template("console/refused.html", reason=str(e)), status=e.status)
