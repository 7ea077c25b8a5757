"""What admins and editors do, once, for both the admin API and the CLI (Miniflux's lesson: the
API and the UI call the same functions and hold no business logic of their own).

Every operation checks the actor's role, validates with config.toml's own messages, writes
the change and its audit row in one transaction, and returns what it did plus the public
feeds that changed (the caller tells the WebSub hubs). Errors are RequestErrors carrying an
HTTP status: the API answers with it, the CLI prints the message.
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from . import store
from .config import (
    Config,
    PartnerProfile,
    SourceConfig,
    check_profile,
    check_rules,
    check_source,
    profile_settings,
    rule_settings,
    source_settings,
    source_url_key,
)
from .errors import ConfigError, Conflict, FeedhubError, Forbidden, Invalid, NotFound
from .model import RawEntry, RawFeed
from .normalize import Context, normalize_entry, slugify

log = logging.getLogger("feedhub.admin")

#: the breaking desk's own source: its key cannot be a config source's id (ids are slugs)
DESK_KEY = "_desk"

#: settings whose change re-files a source's entries (its validators are forgotten, so the
#: next fetch parses and normalises everything again)
FILING_FIELDS = ("edition", "section", "region", "tags", "origin", "breaking", "rules", "mirrors", "embargo")


@dataclass(frozen=True)
class Actor:
    """Who acts: a user by name and role, through the API or the CLI."""

    name: str
    role: str
    via: str  # api | cli


#: what each role may do beyond reading (viewer reads only)
ABILITIES = {"admin": {"sources", "desk", "partners"}, "editor": {"desk"}, "viewer": set()}


def require(actor: Actor, ability: str) -> None:
    """Forbidden unless the actor's role has ``ability`` ("sources": change sources; "desk":
    breaking items, retractions, corrections)."""
    if ability not in ABILITIES.get(actor.role, set()):
        need = "editor or admin" if ability == "desk" else "admin"
        raise Forbidden(f"{actor.name} is a {actor.role}; this needs the {need} role")


@dataclass
class Done:
    """What an operation did: its result for the caller, and the feeds it changed."""

    result: Any = None
    topics: set[str] = field(default_factory=set)


def _problems(e: ConfigError, prefix: str = "") -> Invalid:
    pairs = []
    for p in e.problems:
        name, _, message = p.partition(": ")
        pairs.append((f"{prefix}{name}" if name else prefix.rstrip(".") or "body", message))
    return Invalid(pairs)


# --- sources ------------------------------------------------------------------------------

def sources() -> list[store.SourceHealth]:
    """Every source (not removed) with its health and settings."""
    return store.sources_health()


def source(key: str) -> store.SourceHealth:
    """One source with its health and settings (NotFound if none)."""
    found = store.sources_health([key])
    if not found:
        raise NotFound(f"no source {key!r}; GET /api/v1/sources (or `feedhub sources`) lists them")
    return found[0]


def _live(key: str) -> store.SourceState:
    state = store.source_state(key)
    if state is None or state.removed or state.managed == "desk":
        raise NotFound(f"no source {key!r}; GET /api/v1/sources (or `feedhub sources`) lists them")
    return state


def _check_unique(sc: SourceConfig, config: Config, except_key: str | None = None) -> None:
    urls = store.live_source_urls()
    mine = source_url_key(sc)
    for key, url in urls.items():
        if key == except_key:
            continue
        other = url.rstrip("/").lower()
        if other == mine or (sc.local_path is not None and url == sc.url):
            raise Conflict(f"source {key!r} already collects {sc.url!r}", field="url")
    unknown = [m for m in sc.mirrors if m not in urls or m == sc.id]
    if unknown:
        raise Invalid([("mirrors", f"{unknown[0]!r} is not another source's id")])


def add_source(actor: Actor, data: Any, config: Config, when: datetime) -> Done:
    """Create a source managed in the store from a config.toml-shaped table; collectors pick
    it up on their next claim."""
    require(actor, "sources")
    if isinstance(data, dict) and "id" not in data and isinstance(data.get("name"), str):
        data = {**data, "id": _key_for(data["name"])}
    try:
        sc = check_source(data, config)
    except ConfigError as e:
        raise _problems(e) from None
    state = store.source_state(sc.id)
    if state is not None and not state.removed:
        raise Conflict(f"a source with id {sc.id!r} exists already", field="id")
    _check_unique(sc, config)
    with store.write_transaction():
        store.create_source(sc.id, store.source_columns(sc, config.collect.interval), "store", when)
        store.audit(actor.name, actor.via, "source.add", f"source:{sc.id}", None, source_settings(sc), when)
    return Done(source(sc.id))


def _key_for(name: str) -> str:
    """A source id from a display name: its ASCII slug, made unique among known sources."""
    base = slugify(name).encode("ascii", "ignore").decode() or "source"
    base = "-".join(p for p in base.split("-") if p)[:80] or "source"
    key, n = base, 2
    while store.source_state(key) is not None:
        key, n = f"{base}-{n}", n + 1
    return key


def edit_source(actor: Actor, key: str, changes: Any, config: Config, when: datetime,
                action: str = "source.edit") -> Done:
    """Change some settings of a store-managed source (a config.toml-shaped partial table)."""
    require(actor, "sources")
    state = _live(key)
    if state.managed == "config":
        raise Conflict(f"source {key!r} is managed by {config.path.name}: change it there (and reload with "
                       "SIGHUP or a restart)", field=None)
    if not isinstance(changes, dict):
        raise Invalid([("body", "must be a JSON object of source fields")])
    if "id" in changes and changes["id"] != key:
        raise Invalid([("id", "a source's id cannot change; add a new source and remove this one")])
    merged = {**state.settings, **changes}
    try:
        sc = check_source(merged, config)
    except ConfigError as e:
        raise _problems(e) from None
    _check_unique(sc, config, except_key=key)
    after = source_settings(sc)
    columns = store.source_columns(sc, config.collect.interval)
    columns.update(store.moved_fields(state.url, sc.url))
    if any(state.settings.get(f) != after.get(f) for f in FILING_FIELDS):
        columns.update(etag=None, last_modified=None, content_hash=None)  # file everything again
    if state.enabled != sc.enabled and sc.enabled:
        columns["next_due_at"] = None  # enabled again: due now
    topics: set[str] = set()
    with store.write_transaction():
        store.update_source(state.id, columns)
        refile = state.in_latest != sc.in_latest  # compared with the row: what the index was filed by
        if refile or state.settings.get("rights", "everyone") != after["rights"]:
            # who may see its copy changed, or whether its entries are in the latest feeds
            topics = store.bump_source_topics(state.id, config.taxonomy.parents, refile=refile)
        store.audit(actor.name, actor.via, action, f"source:{key}", state.settings, after, when)
    return Done(source(key), topics)


def set_enabled(actor: Actor, key: str, enabled: bool, config: Config, when: datetime) -> Done:
    """Enable or disable a store-managed source (a disabled one keeps its entries published)."""
    return edit_source(actor, key, {"enabled": enabled}, config, when,
                       action="source.enable" if enabled else "source.disable")


def remove_source(actor: Actor, key: str, retract_entries: bool, config: Config, when: datetime) -> Done:
    """Remove a store-managed source. Its entries stay published unless ``retract_entries``."""
    require(actor, "sources")
    state = _live(key)
    if state.managed == "config":
        raise Conflict(f"source {key!r} is managed by {config.path.name}: remove it there")
    topics: set[str] = set()
    with store.write_transaction():
        ids = store.live_entry_ids(state.id) if retract_entries else []
        if ids:
            topics = store.retract(ids, when, f"withdrawn: the source {key!r} was removed", config.taxonomy.parents)
        store.remove_source(state.id, when)
        store.audit(actor.name, actor.via, "source.remove", f"source:{key}", state.settings,
                    {"removed": True, "entries_retracted": len(ids)}, when)
    return Done({"id": key, "removed": True, "entries_retracted": len(ids)}, topics)


def refresh_source(actor: Actor, key: str, when: datetime) -> Done:
    """Queue a source for fetching now: a running collector takes it within its tick."""
    require(actor, "sources")
    state = _live(key)
    with store.write_transaction():
        store.request_refresh(state.id, when)
        store.audit(actor.name, actor.via, "source.refresh", f"source:{key}", None, {"queued": True}, when)
    return Done({"id": key, "queued": True})


def fetch_log(key: str, limit: int, before: int | None) -> list[store.FetchLogRow]:
    """A source's fetch log, newest first."""
    return store.fetch_log(_live(key).id, limit, before)


def put_rules(actor: Actor, key: str, rules: Any, config: Config, when: datetime) -> Done:
    """Replace a store-managed source's rules (validated as config.toml's)."""
    require(actor, "sources")
    try:
        check_rules(rules, config)
    except ConfigError as e:
        raise _problems(e) from None
    return edit_source(actor, key, {"rules": rules}, config, when, action="source.rules")


def source_config(key: str, config: Config, rules: Any = None) -> SourceConfig:
    """A live source as the collector would build it (with ``rules`` in place of its own)."""
    state = _live(key)
    settings = dict(state.settings)
    if rules is not None:
        try:
            check_rules(rules, config)
        except ConfigError as e:
            raise _problems(e) from None
        settings["rules"] = rules
    try:
        return check_source(settings, config)
    except ConfigError as e:
        raise _problems(e) from None


def rule_view(sc: SourceConfig) -> list[dict[str, Any]]:
    """A source's rules as config.toml spells them."""
    return [rule_settings(r) for r in sc.rules]


# --- discovery, rules tests, OPML ---------------------------------------------------------

@dataclass(frozen=True)
class Found:
    """What a URL given to add a source turned out to be."""

    feed_url: str | None  # the one feed to add, or None
    title: str | None  # the feed's own title, for a default name
    candidates: list[Any]  # several feeds a page announces (discover.Candidate)


def discover(url: str, fetcher: Any) -> Found:
    """Fetch ``url``: a feed is taken as it is; an HTML page gives the feeds its
    <link rel="alternate"> announces (one is fetched for its title; several are candidates)."""
    from .discover import alternate_links, as_feed

    result = fetcher.fetch(url)
    body = result.body or b""
    feed = as_feed(body, result.url, result.headers.get("Content-Type"))
    if feed is not None:
        return Found(url, feed.title, [])
    links = alternate_links(body, result.url)
    if not links:
        raise Invalid([("url", f"{url} is neither a feed nor a page announcing one "
                               "(no <link rel=\"alternate\"> with a feed type)")])
    if len(links) > 1:
        return Found(None, None, links)
    inner = fetcher.fetch(links[0].url)
    feed = as_feed(inner.body or b"", inner.url, inner.headers.get("Content-Type"))
    if feed is None:
        raise Invalid([("url", f"the page announces {links[0].url}, which is not a feed we can read")])
    return Found(links[0].url, feed.title or links[0].title, [])


def try_rules(sc: SourceConfig, body: bytes, url: str, content_type: str | None, config: Config,
              now: datetime) -> list[dict[str, Any]]:
    """What each entry of a feed body would become under ``sc``'s defaults and rules (pure:
    writes nothing)."""
    from .parse import parse_feed

    feed = parse_feed(body, url, content_type)
    ctx = Context.from_config(config)
    out = []
    for raw in feed.entries:
        e = normalize_entry(raw, feed, sc, ctx, now)
        out.append({"title": e.title, "link": e.link, "kept": not e.dropped, "section": e.section,
                    "regions": list(e.regions), "tags": [t.name for t in e.tags], "breaking": e.breaking,
                    "decided_by": list(e.rule_trace)})
    return out


def trial_rules(key: str, rules: Any, config: Config, fetcher: Any, now: datetime) -> list[dict[str, Any]]:
    """Fetch a source's current feed and show what it would become under ``rules`` (None: its
    own); nothing is written."""
    sc = source_config(key, config, rules)
    state = _live(key)
    url = store.sources_health([key])[0].fetch_url or state.url
    result = fetcher.fetch(url, local_path=sc.local_path)
    return try_rules(sc, result.body or b"", result.url, result.headers.get("Content-Type"), config, now)


def import_opml(actor: Actor, body: bytes, config: Config, when: datetime, dry_run: bool) -> Done:
    """Add the feeds of an OPML document as store-managed sources. Each outline is "add" or
    "skip" with the reason (a URL already collected, a repeated outline, a bad field); a dry
    run writes nothing."""
    from .discover import OpmlError, read_opml

    require(actor, "sources")
    try:
        outlines = read_opml(body)
    except OpmlError as e:
        raise Invalid([("body", str(e))]) from None
    known = {url.rstrip("/").lower(): key for key, url in store.live_source_urls().items()}
    taken: set[str] = set()
    results: list[dict[str, Any]] = []
    adds: list[SourceConfig] = []
    for o in outlines:
        entry: dict[str, Any] = {"url": o.xml_url, "name": o.title or o.xml_url, "category": o.category}
        norm = o.xml_url.rstrip("/").lower()
        if norm in known:
            results.append({**entry, "action": "skip", "reason": f"already collected by source {known[norm]!r}"})
            continue
        if not o.xml_url.lower().startswith(("http://", "https://")):
            results.append({**entry, "action": "skip", "reason": "only http(s) feeds can be imported"})
            continue
        key = _key_for(entry["name"])
        while key in taken:
            key = f"{key}-{len(taken) + 1}"
        try:
            sc = check_source({"id": key, "name": entry["name"], "url": o.xml_url}, config)
        except ConfigError as e:
            results.append({**entry, "action": "skip", "reason": "; ".join(e.problems)})
            continue
        taken.add(key)
        known[norm] = key
        adds.append(sc)
        results.append({**entry, "id": key, "action": "add", "reason": None})
    summary = {"dry_run": dry_run, "added": 0 if dry_run else len(adds), "would_add": len(adds),
               "skipped": len(results) - len(adds), "outlines": results}
    if dry_run or not adds:
        return Done(summary)
    with store.write_transaction():
        for sc in adds:
            store.create_source(sc.id, store.source_columns(sc, config.collect.interval), "store", when)
            store.audit(actor.name, actor.via, "source.add", f"source:{sc.id}", None, source_settings(sc), when)
        store.audit(actor.name, actor.via, "sources.import", "sources", None,
                    {"added": [sc.id for sc in adds], "skipped": summary["skipped"]}, when)
    return Done(summary)


def export_opml(config: Config, when: datetime) -> bytes:
    """Every live source as OPML 2.0, grouped by kind."""
    from email.utils import format_datetime

    from .discover import Outline, write_opml

    outlines = [Outline(h.name, h.url, None, h.kind) for h in store.sources_health()
                if h.url.lower().startswith(("http://", "https://"))]
    return write_opml(f"{config.site.title}: sources", outlines, format_datetime(store.aware(when), usegmt=True))


# --- entries and the desk ---------------------------------------------------------------------

def entry(entry_id: int) -> store.EntryInfo:
    found = store.entry_infos([entry_id])
    if not found:
        raise NotFound(f"no entry {entry_id}; GET /api/v1/entries lists them")
    return found[0]


def _entry_view(e: store.EntryInfo) -> dict[str, Any]:
    return {"title": e.title, "section": e.section, "regions": list(e.regions), "tags": list(e.tags),
            "breaking": e.breaking, "retracted": e.retracted_at is not None,
            "retraction_reason": e.retraction_reason}


def retract(actor: Actor, entry_id: int, reason: str, config: Config, when: datetime) -> Done:
    """Retract an entry: an Atom tombstone with ``reason``, gone from RSS and JSON Feed."""
    require(actor, "desk")
    before = entry(entry_id)
    if not reason.strip():
        raise Invalid([("reason", "a retraction needs a reason (it is published as the tombstone's comment)")])
    if before.retracted_at is not None:
        return Done(before)  # nothing changes, so nothing is audited
    with store.write_transaction():
        topics = store.retract([entry_id], when, reason.strip(), config.taxonomy.parents)
        store.audit(actor.name, actor.via, "entry.retract", f"entry:{entry_id}", _entry_view(before),
                    {**_entry_view(before), "retracted": True, "retraction_reason": reason.strip()}, when)
    return Done(entry(entry_id), topics)


def unretract(actor: Actor, entry_id: int, reason: str, config: Config, when: datetime) -> Done:
    """Publish a retracted entry again (the reason is kept in the audit log)."""
    require(actor, "desk")
    before = entry(entry_id)
    if before.retracted_at is None:
        return Done(before)
    with store.write_transaction():
        topics = store.unretract([entry_id], when, config.taxonomy.parents)
        store.audit(actor.name, actor.via, "entry.unretract", f"entry:{entry_id}", _entry_view(before),
                    {**_entry_view(before), "retracted": False, "retraction_reason": None,
                     "reason": reason.strip() or None}, when)
    return Done(entry(entry_id), topics)


#: what a filing correction may set, and what each must be
CORRECTION_FIELDS = {"section": ((str, type(None)), "a string or null"), "regions": ((list,), "a list of strings"),
                     "tags": ((list,), "a list of strings"), "breaking": ((bool,), "true or false")}


def _check_correction(changes: Any, before: store.EntryInfo, config: Config) -> None:
    """Invalid naming every wrong field of a correction."""
    if not isinstance(changes, dict) or not changes:
        raise Invalid([("body", "must be a JSON object with section, regions, tags or breaking")])
    problems: list[tuple[str, str]] = []
    for name, value in changes.items():
        if name not in CORRECTION_FIELDS:
            problems.append((name, f"unknown field; a correction sets {', '.join(CORRECTION_FIELDS)}"))
        elif not isinstance(value, CORRECTION_FIELDS[name][0]):
            problems.append((name, f"must be {CORRECTION_FIELDS[name][1]}"))
    taxonomy = config.taxonomy
    section = changes.get("section")
    if isinstance(section, str) and section not in taxonomy.sections:
        problems.append(("section", f"unknown section {section!r}"))
    regions, tags = changes.get("regions"), changes.get("tags")
    for i, r in enumerate(regions if isinstance(regions, list) else []):
        if not isinstance(r, str) or r not in taxonomy.regions:
            problems.append((f"regions[{i}]", f"unknown region {r!r}"))
    for i, t in enumerate(tags if isinstance(tags, list) else []):
        if not isinstance(t, str) or not t.strip() or not slugify(t) or len(t) > 150:
            problems.append((f"tags[{i}]", "must be a non-empty tag name of at most 150 characters"))
    if problems:
        raise Invalid(problems)


def correct(actor: Actor, entry_id: int, changes: Any, config: Config, when: datetime) -> Done:
    """File an entry anew by hand (section, regions, tags, breaking). The correction is kept as
    a manual override: later fetches of its source do not undo it."""
    require(actor, "desk")
    before = entry(entry_id)
    _check_correction(changes, before, config)
    section = changes.get("section", before.section)
    regions = tuple(dict.fromkeys(changes.get("regions", before.regions)))
    tags = {slugify(t): t.strip() for t in changes.get("tags", before.tags)}
    breaking = bool(changes.get("breaking", before.breaking))
    override: dict[str, Any] = dict(before.override or {})
    override.update({k: v for k, v in (("section", section), ("regions", list(regions)),
                                       ("tags", [[s, n] for s, n in tags.items()]), ("breaking", breaking))
                     if k in changes})
    with store.write_transaction():
        topics = store.set_filing(entry_id, section, regions, tags, breaking, override, actor.name, when,
                                  config.taxonomy.parents)
        store.audit(actor.name, actor.via, "entry.correct", f"entry:{entry_id}", _entry_view(before),
                    {**_entry_view(before), "section": section, "regions": list(regions),
                     "tags": list(tags.values()), "breaking": breaking}, when)
    return Done(entry(entry_id), topics)


def push_breaking(actor: Actor, headline: Any, config: Config, when: datetime, link: Any = None,
                  body: Any = None, edition: Any = None, embargo_until: Any = None) -> Done:
    """The desk pushes a breaking item: in the breaking feeds on the very next request, or, with
    ``embargo_until`` (aware, or RFC 3339 text), in no feed before that instant."""
    require(actor, "desk")
    problems = []
    if not isinstance(headline, str) or not headline.strip():
        problems.append(("headline", "must be a non-empty string"))
    elif len(headline) > config.collect.caps.title:
        problems.append(("headline", f"must be at most {config.collect.caps.title} characters"))
    if link is not None and (not isinstance(link, str) or not link.lower().startswith(("http://", "https://"))):
        problems.append(("link", "must be an absolute http(s) URL"))
    if body is not None and not isinstance(body, str):
        problems.append(("body", "must be a string"))
    edition = config.site.default_edition if edition is None else edition
    if not isinstance(edition, str) or edition not in config.editions:
        problems.append(("edition", f"unknown edition {edition!r}; expected one of: {', '.join(config.editions)}"))
    embargo = _instant(embargo_until, "embargo_until", problems)
    if embargo is not None and embargo <= store.aware(when):
        problems.append(("embargo_until", "must be in the future"))
    elif embargo is not None and embargo > store.aware(when) + timedelta(days=config.collect.embargo_days):
        problems.append(("embargo_until", f"must be within {config.collect.embargo_days} days ([collect] "
                                          "embargo_days)"))
    if problems:
        raise Invalid(problems)
    assert isinstance(headline, str) and isinstance(edition, str)
    desk = SourceConfig(id=DESK_KEY, name="Newsroom desk", url=config.site.link, edition=edition, breaking=True,
                        embargo=True)
    ctx = Context.from_config(config)
    published = embargo or store.aware(when)
    raw = RawEntry(guid=f"desk-{uuid.uuid4().hex}", link=link, title=headline.strip(), title_is_html=False,
                   summary=body, summary_is_html=False, content=None, published=published, updated=published,
                   language=config.editions[edition].language)
    normal = normalize_entry(raw, RawFeed(format="desk", link=config.site.link), desk, ctx, store.stored(when))
    with store.write_transaction():
        source_id = store.desk_source(DESK_KEY, desk.name, desk.url, config.site.default_edition, when)
        row = store.SourceRow(id=source_id, key=DESK_KEY, name=desk.name, url=desk.url, fetch_url=None,
                              interval=0, breaking=True, etag=None, last_modified=None, content_hash=None,
                              id_rule="guid", redirect_target=None, redirect_count=0, feed_ttl=None,
                              consecutive_failures=0, settings=None)
        saved = store.save_entries(row, [normal], store.stored(when), config.taxonomy.parents,
                                   one_story_one_entry=False)
        entry_id = store.entry_ids(source_id, [normal.guid])[0]
        item = {"headline": normal.title, "link": normal.link, "body": normal.summary or None, "edition": edition,
                "embargo_until": embargo.isoformat() if embargo else None}
        store.audit(actor.name, actor.via, "breaking.push", f"entry:{entry_id}", None, item, when)
    return Done(entry(entry_id), set(saved.topics))


def _instant(value: Any, name: str, problems: list[tuple[str, str]]) -> datetime | None:
    """An aware instant from a datetime or RFC 3339 text (with a zone), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.append((name, f"must be an RFC 3339 date-time such as 2026-11-28T12:00:00Z, got {value!r}"))
            return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        problems.append((name, "must be a date-time with a time zone, e.g. 2026-11-28T12:00:00Z"))
        return None
    return value.astimezone(timezone.utc)


def take_off_ticker(actor: Actor, entry_id: int, config: Config, when: datetime) -> Done:
    """Take a breaking item off the ticker now: a desk item is retracted; a collected entry is
    filed as not breaking (a correction its source's next fetch keeps)."""
    require(actor, "desk")
    found = entry(entry_id)
    if not found.breaking or found.retracted_at is not None:
        raise NotFound(f"entry {entry_id} is not on the breaking ticker")
    if found.source == DESK_KEY:
        return retract(actor, entry_id, "taken off the breaking ticker", config, when)
    return correct(actor, entry_id, {"breaking": False}, config, when)


# --- partners ---------------------------------------------------------------------------------

#: partner statuses: a suspended partner's keys answer 401 until it is active again
PARTNER_STATUSES = ("active", "suspended")


def profiles(config: Config) -> dict[str, PartnerProfile]:
    """Every profile: config.toml's, and the API's (which win over config's of the same name).
    A stored profile that a reloaded taxonomy no longer fits is left out (config's, if any,
    applies), and its partners' feeds say so rather than serve the wrong copy."""
    out = dict(config.partner_profiles)
    for name, text in store.stored_profile_texts().items():
        cached = _checked_profiles.get((name, text, id(config)))
        # (the entry holds its config, so the id cannot be another config's meanwhile)
        checked = cached[1] if cached is not None and cached[0] is config else None
        if checked is None:
            try:
                checked = check_profile(name, json.loads(text), config)
            except (ConfigError, ValueError):
                log.warning("the API's profile %r no longer fits %s; it is not used", name, config.path.name)
                continue
            if len(_checked_profiles) > 1000:
                _checked_profiles.clear()
            _checked_profiles[(name, text, id(config))] = (config, checked)
        out[name] = checked
    return out


#: stored profiles already checked against a config: every partner request asks for its profile
_checked_profiles: dict[tuple[str, str, int], tuple[Config, PartnerProfile]] = {}


def profile(name: str, config: Config) -> PartnerProfile:
    found = profiles(config).get(name)
    if found is None:
        raise NotFound(f"no partner profile {name!r}; profiles: {', '.join(sorted(profiles(config))) or 'none'}")
    return found


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 63 or not name.replace("-", "").replace("_", "").isalnum() \
            or not name.isascii():
        raise Invalid([("name", "must be 1-63 ASCII letters, digits, '-' or '_'")])
    return name


def add_partner(actor: Actor, name: Any, profile_name: Any, contact: Any, config: Config, when: datetime) -> Done:
    """A new partner with its first key; the key is in the result, shown once, never stored."""
    from .auth import new_partner_key, token_digest

    require(actor, "partners")
    _check_name(name)
    if not isinstance(contact, str) or len(contact) > 300:
        raise Invalid([("contact", "must be a string of at most 300 characters")])
    if not isinstance(profile_name, str) or profile_name not in profiles(config):
        raise Invalid([("profile", f"unknown profile {profile_name!r}; profiles: "
                                   f"{', '.join(sorted(profiles(config))) or 'none (add [partners.profiles.NAME])'}")])
    key = new_partner_key()
    with store.write_transaction():
        info = store.add_partner(name, contact, profile_name, token_digest(key), when)
        store.audit(actor.name, actor.via, "partner.add", f"partner:{name}", None,
                    {"name": name, "profile": profile_name, "contact": contact}, when)
    return Done((info, key))


def edit_partner(actor: Actor, name: str, changes: Any, config: Config, when: datetime) -> Done:
    """Change a partner's contact, profile or status."""
    require(actor, "partners")
    before = store.partner(name)
    if not isinstance(changes, dict) or not changes:
        raise Invalid([("body", "must be a JSON object with contact, profile or status")])
    problems = [(k, "unknown field; a partner has contact, profile and status") for k in changes
                if k not in ("contact", "profile", "status")]
    if "profile" in changes and changes["profile"] not in profiles(config):
        problems.append(("profile", f"unknown profile {changes['profile']!r}"))
    if "status" in changes and changes["status"] not in PARTNER_STATUSES:
        problems.append(("status", f"must be one of {', '.join(PARTNER_STATUSES)}"))
    if "contact" in changes and (not isinstance(changes["contact"], str) or len(changes["contact"]) > 300):
        problems.append(("contact", "must be a string of at most 300 characters"))
    if problems:
        raise Invalid(problems)
    view = {"contact": before.contact, "profile": before.profile, "status": before.status}
    with store.write_transaction():
        store.update_partner(before.id, dict(changes))
        store.audit(actor.name, actor.via, "partner.edit", f"partner:{name}", view, {**view, **changes}, when)
    return Done(store.partner(name))


def rotate_key(actor: Actor, name: str, overlap_hours: Any, when: datetime) -> Done:
    """A new key for a partner; its other keys keep working for ``overlap_hours`` (so the
    partner can switch without a gap), then stop. The new key is in the result, shown once."""
    from datetime import timedelta

    from .auth import new_partner_key, token_digest

    require(actor, "partners")
    if not isinstance(overlap_hours, int) or isinstance(overlap_hours, bool) or not 0 <= overlap_hours <= 24 * 90:
        raise Invalid([("overlap_hours", "must be a whole number of hours from 0 to 2160")])
    info = store.partner(name)
    key = new_partner_key()
    with store.write_transaction():
        key_id = store.add_key(info.id, token_digest(key), when, when + timedelta(hours=overlap_hours))
        store.audit(actor.name, actor.via, "partner.rotate", f"partner:{name}", None,
                    {"key_id": key_id, "others_expire_in_hours": overlap_hours}, when)
    return Done((store.partner(name), key))


def revoke_partner_key(actor: Actor, name: str, key_id: int, when: datetime) -> Done:
    require(actor, "partners")
    info = store.partner(name)
    with store.write_transaction():
        revoked = store.revoke_key(info.id, key_id, when)
        if revoked:
            store.audit(actor.name, actor.via, "partner.revoke", f"partner:{name}", {"key_id": key_id},
                        {"key_id": key_id, "revoked": True}, when)
    return Done(store.partner(name))


def put_profile(actor: Actor, name: str, data: Any, config: Config, when: datetime) -> Done:
    """Set a profile through the API (it wins over config.toml's of the same name)."""
    require(actor, "partners")
    try:
        p = check_profile(name, data, config)
    except ConfigError as e:
        raise _problems(e) from None
    before = profiles(config).get(name)
    with store.write_transaction():
        store.put_profile(name, profile_settings(p), when)
        store.audit(actor.name, actor.via, "profile.put", f"profile:{name}",
                    profile_settings(before) if before else None, profile_settings(p), when)
    return Done(p)


def delete_profile(actor: Actor, name: str, config: Config, when: datetime) -> Done:
    """Drop the API's copy of a profile: config.toml's applies again (if it has one)."""
    require(actor, "partners")
    before = profiles(config).get(name)
    if name not in store.stored_profiles():
        raise NotFound(f"profile {name!r} was not set through the API" + (
            f"; it is {config.path.name}'s" if name in config.partner_profiles else ""))
    users = store.profile_in_use(name)
    if name not in config.partner_profiles and users:
        raise Conflict(f"partners {', '.join(users)} use profile {name!r}; move them to another one first")
    with store.write_transaction():
        store.delete_profile(name)
        store.audit(actor.name, actor.via, "profile.delete", f"profile:{name}",
                    profile_settings(before) if before else None, None, when)
    return Done({"name": name, "deleted": True, "config_applies": name in config.partner_profiles})


def audit_log(limit: int, before: int | None = None, target: str | None = None,
              actor: str | None = None) -> list[store.AuditRow]:
    return store.audit_rows(limit, before, target, actor)


def cli_actor() -> Actor:
    """Whoever runs the CLI has the config and the store: an admin, named after the OS user."""
    import getpass

    try:
        name = getpass.getuser()
    except Exception:  # no user name in a bare container
        name = "unknown"
    return Actor(f"cli:{name}"[:63], "admin", "cli")


def publish_with(publish: Callable[[set[str]], None] | None, done: Done) -> Done:
    """Tell the hubs about the feeds an operation changed (if anything changed)."""
    if publish is not None and done.topics:
        publish(done.topics)
    return done


def settings_json(settings: dict[str, Any]) -> str:
    return json.dumps(settings, ensure_ascii=False, sort_keys=True)


__all__ = ["Actor", "DESK_KEY", "Done", "FeedhubError", "add_source", "audit_log", "cli_actor", "correct",
           "edit_source", "entry", "fetch_log", "publish_with", "push_breaking", "put_rules", "refresh_source",
           "remove_source", "require", "retract", "rule_view", "set_enabled", "source", "source_config",
           "sources", "take_off_ticker", "unretract"]
