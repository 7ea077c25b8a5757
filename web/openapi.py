"""The admin API described as OpenAPI 3.1 (served at /api/v1/openapi.json; tests check it
against the OpenAPI schema and every route of the blueprint against it)."""
from __future__ import annotations

from typing import Any

from aggregator.config import Config
from aggregator.store import ENTRY_STATUSES

_STR: dict[str, Any] = {"type": "string"}
_STR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_INSTANT: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _page(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor", "next"], "properties": {
        "items": {"type": "array", "items": _ref(item)}, "next_cursor": _STR_NULL,
        "next": {"type": ["string", "null"], "description": "the next page's URL (also a Link rel=next header)"}}}


_ERRORS = {"400": _problem("a bad query parameter or a body that is not JSON"),
           "401": _problem("no token, or an unknown or revoked one"),
           "403": _problem("the token's role may not do this"),
           "413": _problem("the body is over 1 MiB"),
           "422": _problem("fields with wrong values or types; `errors` names each; nothing was written"),
           "429": _problem("too many failed authentications from this address; see Retry-After")}


def _op(summary: str, responses: dict[str, Any], role: str = "viewer", body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, errors: tuple[str, ...] = ("400", "401", "403", "429")
        ) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "description": f"Needs the {role} role (or above).",
                          "responses": {**responses, **{c: _ERRORS[c] for c in errors}}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
        op["responses"].update({c: _ERRORS[c] for c in ("413", "422")})
    if params:
        op["parameters"] = params
    return op


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or _STR}


_PAGING = [_q("limit", "items per page, 1-200 (default 50)", {"type": "integer", "minimum": 1, "maximum": 200}),
           _q("cursor", "the next_cursor of the previous page")]
_KEY = {"name": "key", "in": "path", "required": True, "description": "the source's id", "schema": _STR}
_ENTRY = {"name": "entry_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": _STR}
_JSON_BODY = "application/json"


def openapi_document(config: Config) -> dict[str, Any]:
    """The OpenAPI 3.1 document of /api/v1 for this deployment."""
    source_fields: dict[str, Any] = {
        "id": _STR, "name": _STR, "url": _STR, "kind": {"enum": ["cms", "wire", "partner"]},
        "edition": {"enum": sorted(config.editions)}, "section": _STR, "region": _STR,
        "tags": {"type": "array", "items": _STR}, "origin": _STR, "breaking": {"type": "boolean"},
        "interval": {"type": "integer", "minimum": 0}, "enabled": {"type": "boolean"},
        "ignore_updates": {"type": "boolean"}, "mirrors": {"type": "array", "items": _STR},
        "rules": {"type": "array", "items": _ref("Rule")},
        "rights": {"enum": ["own", "partners", "everyone"], "description": "who may redistribute its copy"},
        "rights_statement": _STR, "embargo": {"type": "boolean", "description": "future dates are embargoes"}}
    schemas: dict[str, Any] = {
        "Problem": {"type": "object", "description": "RFC 9457 problem details", "properties": {
            "type": _STR, "title": _STR, "status": {"type": "integer"}, "detail": _STR, "instance": _STR,
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "field": _STR_NULL, "message": _STR}}}}},
        "Rule": {"type": "object", "additionalProperties": False, "properties": {
            "category": _STR, "keyword": _STR, "pattern": _STR, "section": _STR, "region": _STR, "tag": _STR,
            "breaking": {"type": "boolean"}, "action": {"enum": ["keep", "drop"]},
            "match": {"enum": ["word", "substring"]}}},
        "SourceInput": {"type": "object", "additionalProperties": False, "required": ["url"],
                        "properties": {**source_fields, "discover": {
                            "type": "boolean", "description": "fetch the URL and find its feed (default true)"}}},
        "SourcePatch": {"type": "object", "additionalProperties": False, "properties": source_fields},
        "Source": {"type": "object", "properties": {
            **source_fields, "managed": {"enum": ["config", "store"]}, "read_only": {"type": "boolean"},
            "health": _ref("Health"), "websub": {"oneOf": [_ref("Subscription"), {"type": "null"}]},
            "links": {"type": "object"}}},
        "Subscription": {"type": "object", "description": "feedhub's WebSub subscription at the hub the source's "
                         "feed names (content arrives by push while it is active)", "properties": {
            "hub": _STR, "topic": _STR,
            "state": {"enum": ["new", "requested", "active", "denied", "unsubscribing", "ended"]},
            "requested_at": _INSTANT, "verified_at": _INSTANT, "lease_seconds": {"type": ["integer", "null"]},
            "expires_at": _INSTANT, "next_attempt_at": _INSTANT, "attempts": {"type": "integer"},
            "last_error": _STR_NULL, "deliveries": {"type": "integer"}, "rejected": {"type": "integer"},
            "last_delivery_at": _INSTANT}},
        "Health": {"type": "object", "properties": {
            "status": {"enum": ["ok", "failing", "gone", "never", "disabled"]}, "last_fetched_at": _INSTANT,
            "last_success_at": _INSTANT, "last_status": {"type": ["integer", "null"]}, "last_error": _STR_NULL,
            "consecutive_failures": {"type": "integer"}, "next_due_at": _INSTANT, "entries_seen": {"type": "integer"},
            "entries_stored": {"type": "integer"}, "fetch_url": _STR, "disabled_reason": _STR_NULL,
            "id_rule": _STR, "warnings": {"type": "array", "items": _STR}}},
        "Candidates": {"type": "object", "properties": {"detail": _STR, "candidates": {"type": "array", "items": {
            "type": "object", "properties": {"url": _STR, "title": _STR_NULL, "type": _STR}}}}},
        "FetchLogRow": {"type": "object", "properties": {
            "id": {"type": "integer"}, "started_at": _INSTANT, "duration_ms": {"type": "integer"},
            "status": {"type": ["integer", "null"]}, "outcome": _STR, "bytes": {"type": "integer"},
            "entries_new": {"type": "integer"}, "entries_updated": {"type": "integer"},
            "error_kind": _STR_NULL, "error": _STR_NULL}},
        "Entry": {"type": "object", "properties": {
            "id": {"type": "integer"}, "public_id": _STR, "title": _STR, "link": _STR_NULL, "source": _STR,
            "edition": _STR, "language": _STR, "section": _STR_NULL, "regions": {"type": "array", "items": _STR},
            "tags": {"type": "array", "items": _STR}, "breaking": {"type": "boolean"}, "published": _INSTANT,
            "updated": _INSTANT, "retracted": {"type": "boolean"}, "retracted_at": _INSTANT,
            "retraction_reason": _STR_NULL, "summary": _STR,
            "correction": {"type": ["object", "null"], "description": "an editor's filing correction, kept over "
                                                                        "what the source sends"}}},
        "Correction": {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
            "section": {"type": ["string", "null"]}, "regions": {"type": "array", "items": _STR},
            "tags": {"type": "array", "items": _STR}, "breaking": {"type": "boolean"}}},
        "Reason": {"type": "object", "additionalProperties": False, "required": ["reason"],
                   "properties": {"reason": _STR}},
        "BreakingInput": {"type": "object", "additionalProperties": False, "required": ["headline"], "properties": {
            "headline": _STR, "link": _STR, "body": _STR, "edition": {"enum": sorted(config.editions)},
            "embargo_until": {"type": "string", "format": "date-time",
                              "description": "in no feed before this instant"}}},
        "AuditRow": {"type": "object", "properties": {
            "id": {"type": "integer"}, "at": _INSTANT, "actor": _STR, "via": {"enum": ["api", "cli", "console"]},
            "action": _STR, "target": _STR, "before": {}, "after": {}}},
        "ImportResult": {"type": "object", "properties": {
            "dry_run": {"type": "boolean"}, "added": {"type": "integer"}, "would_add": {"type": "integer"},
            "skipped": {"type": "integer"}, "outlines": {"type": "array", "items": {"type": "object"}}}},
        "Partner": {"type": "object", "properties": {
            "name": _STR, "contact": _STR, "profile": _STR, "status": {"enum": ["active", "suspended"]},
            "created_at": _INSTANT, "keys": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"}, "created_at": _INSTANT, "expires_at": _INSTANT, "revoked_at": _INSTANT,
                "last_used_at": _INSTANT, "live": {"type": "boolean"}}}},
            "key": {"type": "string", "description": "only when a key is made: shown once, never stored"},
            "urls": {"type": "object"}}},
        "PartnerInput": {"type": "object", "additionalProperties": False, "required": ["name", "profile"],
                         "properties": {"name": _STR, "profile": _STR, "contact": _STR}},
        "PartnerPatch": {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
            "profile": _STR, "contact": _STR, "status": {"enum": ["active", "suspended"]}}},
        "Profile": {"type": "object", "additionalProperties": False, "properties": {
            "editions": {"type": "array", "items": _STR}, "sections": {"type": "array", "items": _STR},
            "regions": {"type": "array", "items": _STR}, "source_kinds": {"type": "array", "items": _STR},
            "full_text": {"type": "boolean"}, "images": {"type": "boolean"},
            "image_sources": {"type": "array", "items": _STR}, "delay_minutes": {"type": "integer", "minimum": 0},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 200}, "attribution": _STR,
            "attribution_link": _STR, "licence": _STR, "rate_limit": {"type": "integer", "minimum": 0},
            "burst": {"type": "integer", "minimum": 1}, "own_property": {"type": "boolean"}}},
        "RuleTrial": {"type": "object", "properties": {
            "entries": {"type": "array", "items": {"type": "object"}}, "kept": {"type": "integer"},
            "dropped": {"type": "integer"}, "written": {"const": False}}},
    }
    j = _JSON_BODY
    src = _json(_ref("Source"), "the source")
    entry = _json(_ref("Entry"), "the entry")
    paths: dict[str, Any] = {
        "/sources": {
            "get": _op("List sources with their health", {"200": _json(_page("Source"), "a page of sources")},
                       params=_PAGING),
            "post": _op("Add a source from a feed URL, or a page that announces feeds",
                        {"201": src, "300": _json(_ref("Candidates"), "the page announces several feeds"),
                         "409": _problem("the id or URL is taken")}, role="admin",
                        body={j: {"schema": _ref("SourceInput")}})},
        "/sources.opml": {"get": _op("Every source as OPML 2.0", {"200": {
            "description": "OPML", "content": {"text/x-opml": {"schema": _STR}}}})},
        "/sources/import": {"post": _op(
            "Add the feeds of an OPML document", {"200": _json(_ref("ImportResult"), "what a dry run would do"),
                                                  "201": _json(_ref("ImportResult"), "what was added and skipped")},
            role="admin", body={"text/x-opml": {"schema": _STR}, "application/xml": {"schema": _STR}},
            params=[_q("dry_run", "1: show what would be added or skipped, and why; write nothing")])},
        "/sources/{key}": {
            "parameters": [_KEY],
            "get": _op("One source with its health", {"200": src, "404": _problem("no such source")}),
            "patch": _op("Change a store-managed source's settings", {
                "200": src, "404": _problem("no such source"),
                "409": _problem("the source is managed by config.toml")}, role="admin",
                body={j: {"schema": _ref("SourcePatch")}}),
            "delete": _op("Remove a store-managed source (entries stay unless ?entries=retract)", {
                "200": _json({"type": "object"}, "removed"), "404": _problem("no such source"),
                "409": _problem("the source is managed by config.toml")}, role="admin",
                params=[_q("entries", "keep (default) or retract", {"enum": ["keep", "retract"]})])},
        "/sources/{key}/refresh": {"parameters": [_KEY], "post": _op(
            "Queue the source: a running collector fetches it within seconds",
            {"202": _json({"type": "object"}, "queued"), "404": _problem("no such source")}, role="admin")},
        "/sources/{key}/log": {"parameters": [_KEY], "get": _op(
            "The source's fetch log, newest first", {"200": _json(_page("FetchLogRow"), "a page of fetches"),
                                                     "404": _problem("no such source")}, params=_PAGING)},
        "/sources/{key}/rules": {
            "parameters": [_KEY],
            "get": _op("The source's rules", {"200": _json({"type": "object", "properties": {
                "rules": {"type": "array", "items": _ref("Rule")}}}, "its rules"), "404": _problem("no such source")}),
            "put": _op("Replace the source's rules (config.toml's validation)", {
                "200": _json({"type": "object"}, "the rules now"), "404": _problem("no such source"),
                "409": _problem("the source is managed by config.toml")}, role="admin",
                body={j: {"schema": {"type": "object", "required": ["rules"], "properties": {
                    "rules": {"type": "array", "items": _ref("Rule")}}}}})},
        "/sources/{key}/rules/test": {"parameters": [_KEY], "post": _op(
            "What the source's current feed would become under the rules given (written nowhere)",
            {"200": _json(_ref("RuleTrial"), "each entry's filing"), "404": _problem("no such source")},
            body={j: {"schema": {"type": "object", "properties": {"rules": {"type": "array",
                                                                             "items": _ref("Rule")}}}}})},
        "/entries": {"get": _op("Entries, newest first", {"200": _json(_page("Entry"), "a page of entries")},
                                params=[_q("q", "words in the title or summary"), _q("source", "a source id"),
                                        _q("section", "a section (its subsections too)"), _q("edition", "an edition"),
                                        _q("status", "which entries", {"enum": list(ENTRY_STATUSES)}), *_PAGING])},
        "/entries/{entry_id}": {
            "parameters": [_ENTRY],
            "get": _op("One entry", {"200": entry, "404": _problem("no such entry")}),
            "patch": _op("A filing correction, kept over what the source sends later",
                         {"200": entry, "404": _problem("no such entry")}, role="editor",
                         body={j: {"schema": _ref("Correction")}})},
        "/entries/{entry_id}/retract": {"parameters": [_ENTRY], "post": _op(
            "Retract: an Atom tombstone, gone from RSS and JSON Feed", {"200": entry, "404": _problem("no such entry")},
            role="editor", body={j: {"schema": _ref("Reason")}})},
        "/entries/{entry_id}/unretract": {"parameters": [_ENTRY], "post": _op(
            "Publish a retracted entry again", {"200": entry, "404": _problem("no such entry")}, role="editor",
            body={j: {"schema": _ref("Reason")}})},
        "/breaking": {"post": _op("Push a breaking item from the desk (in the breaking feeds at once; hubs pinged)",
                                  {"201": entry}, role="editor", body={j: {"schema": _ref("BreakingInput")}})},
        "/breaking/{entry_id}": {"parameters": [_ENTRY], "delete": _op(
            "Take an item off the ticker now", {"200": entry, "404": _problem("not on the ticker")}, role="editor")},
        "/partners": {
            "get": _op("Partners with their keys (never the keys themselves)",
                       {"200": _json(_page("Partner"), "a page of partners")}, params=_PAGING),
            "post": _op("Add a partner; its first key is in the answer, once", {
                "201": _json(_ref("Partner"), "the partner and its key"), "409": _problem("the name is taken")},
                role="admin", body={j: {"schema": _ref("PartnerInput")}})},
        "/partners/{name}": {
            "parameters": [_NAME],
            "get": _op("One partner", {"200": _json(_ref("Partner"), "the partner"),
                                       "404": _problem("no such partner")}),
            "patch": _op("Change a partner's contact, profile or status (suspended: its keys answer 401)", {
                "200": _json(_ref("Partner"), "the partner"), "404": _problem("no such partner")}, role="admin",
                body={j: {"schema": _ref("PartnerPatch")}})},
        "/partners/{name}/keys": {"parameters": [_NAME], "post": _op(
            "Rotate: a new key (in the answer, once); the others keep working for overlap_hours (default 24)",
            {"201": _json(_ref("Partner"), "the partner and its new key"), "404": _problem("no such partner")},
            role="admin", body={j: {"schema": {"type": "object", "properties": {
                "overlap_hours": {"type": "integer", "minimum": 0, "maximum": 2160}}}}})},
        "/partners/{name}/keys/{key_id}": {"parameters": [_NAME, {
            "name": "key_id", "in": "path", "required": True, "schema": {"type": "integer"}}], "delete": _op(
            "Revoke a key now", {"200": _json(_ref("Partner"), "the partner"), "404": _problem("no such key")},
            role="admin")},
        "/partners/{name}/usage": {"parameters": [_NAME], "get": _op(
            "A partner's requests per feed and day (requests, 200s, 304s, 429s, bytes, last seen) and User-Agents",
            {"200": _json({"type": "object"}, "usage"), "404": _problem("no such partner")},
            params=[_q("days", "how many days back, 1-366 (default 30)", {"type": "integer"})])},
        "/feeds/subscribers": {"get": _op(
            "Today's subscribers per public feed, as aggregators report them in their User-Agent (each once)",
            {"200": _json({"type": "object"}, "subscribers per feed path")})},
        "/partner-profiles": {"get": _op("Every partner profile: config.toml's and the API's", {
            "200": _json({"type": "object"}, "the profiles")})},
        "/partner-profiles/{name}": {
            "parameters": [_NAME],
            "put": _op("Set a profile (it wins over config.toml's of the same name)", {
                "200": _json(_ref("Profile"), "the profile")}, role="admin", body={j: {"schema": _ref("Profile")}}),
            "delete": _op("Drop the API's copy of a profile (config.toml's applies again)", {
                "200": _json({"type": "object"}, "dropped"), "404": _problem("not set through the API"),
                "409": _problem("partners use it and config.toml has none")}, role="admin")},
        "/health": {"get": _op("Health of every source, in summary, and the last collect runs",
                               {"200": _json({"type": "object"}, "health")})},
        "/audit": {"get": _op("Every change made through the API or the CLI, newest first",
                              {"200": _json(_page("AuditRow"), "a page of changes")},
                              params=[_q("target", "e.g. source:wire or entry:12"), _q("actor", "a user name"),
                                      *_PAGING])},
        "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {
            "200": _json({"type": "object"}, "OpenAPI 3.1")}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{config.site.title} admin API", "version": "1",
                 "description": "Sources, the desk, corrections, health and the audit log. Tokens come from "
                                "`feedhub users token NAME`; roles: admin (everything), editor (the desk: "
                                "breaking items, retractions, corrections), viewer (reads)."},
        "servers": [{"url": (config.server.base_url or "") + "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": schemas},
        "paths": paths,
    }
