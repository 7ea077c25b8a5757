"""One mapping from feedhub's errors (and HTTP errors) to short, clear responses.

API clients (a .json feed, or an Accept header preferring JSON) get JSON;
people and feed readers get a small HTML page.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from aggregator import store
from aggregator.errors import RequestError, TooManyRequests

log = logging.getLogger("feedhub.web")


def wants_json() -> bool:
    if request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/feed+json"])
    return best in ("application/json", "application/feed+json")


def error_response(status: int, message: str) -> Response:
    if wants_json():
        resp = jsonify({"error": {"status": status, "message": message}})
    else:
        resp = Response(render_template("error.html", status=status, message=message),
                        mimetype="text/html")
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


#: seconds a client is asked to wait when the store is briefly unavailable
RETRY_AFTER = 5


def unavailable_response(reason: Exception) -> Response:
    """503 with Retry-After: the store is unreachable, lost or damaged, not the client's fault."""
    log.warning("%s: %s", request.path, reason)
    message = "the feed store is unavailable at the moment; please retry shortly"
    if _is_api():
        from .api import problem

        resp = problem(503, message)
    else:
        resp = error_response(503, message)
    resp.headers["Retry-After"] = str(RETRY_AFTER)
    return resp


def _is_api() -> bool:
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RequestError)
    def _request_error(e: RequestError) -> Response:
        if _is_api():
            from .api import problem_for

            return problem_for(e)
        resp = error_response(e.status, str(e))
        if e.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="feedhub partners"'
        if isinstance(e, TooManyRequests):
            resp.headers["Retry-After"] = str(e.retry_after)
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Response | HTTPException:
        if e.code and e.code < 400:
            return e  # redirects pass through untouched
        if _is_api():
            from .api import problem_for

            if e.code == 404:
                return problem_for(type(e)("no such API resource; the API is described at /api/v1/openapi.json"))
            resp = problem_for(e)
        else:
            resp = error_response(e.code or 500, e.description or e.name)
        # RFC 9110 15.5.6: a 405 says which methods the resource has.
        for name, value in e.get_headers():
            if name.lower() == "allow":
                resp.headers["Allow"] = value
        return resp

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        reason = store.diagnose(e)
        if reason is not None:
            store.reset_connection()  # this thread's next request starts on a new connection
            return unavailable_response(reason)
        log.exception("unhandled error on %s", request.path)
        if _is_api():
            from .api import problem

            return problem(500, "internal error; the administrators have been told")
        return error_response(500, "internal error; the administrators have been told")
