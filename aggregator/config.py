"""config.toml -> frozen dataclasses, validated, one clear message per mistake.

Every mistake found is reported at once (a wrong type, an unknown key, a
duplicate source URL, a source naming an unknown section...), each naming the
file, the key and what would be right, so that an admin fixes the file in one
pass instead of one error per run.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .words import LABEL_KEYS, builtin_label

DEFAULT_CONFIG = "config.toml"
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SOURCE_KINDS = ("cms", "wire", "partner")
#: who may redistribute a source's copy, narrowest first: our own sites only (partner
#: profiles marked own_property), partners too, or everyone (the public feeds too)
RIGHTS = ("own", "partners", "everyone")


@dataclass(frozen=True)
class Edition:
    """One edition of the site (English main, Arabic and Spanish sisters)."""

    code: str
    title: str
    language: str
    direction: str = "ltr"
    #: the site's title and description in this edition ("": the site's own, [site])
    site_title: str = ""
    site_description: str = ""
    #: the words feeds and pages show around the labels ("latest", "breaking", "tag", ...):
    #: feeds.labels has them for English, Arabic and Spanish; these override them
    labels: dict[str, str] = field(default_factory=dict)
    #: the feed's logo (wide) and icon (square), absolute URLs or paths on this site
    #: ("": the site's, [site] logo and icon)
    logo: str = ""
    icon: str = ""


@dataclass(frozen=True)
class Section:
    """A section or subsection; ``parent`` is None for a top-level section."""

    slug: str
    title: str
    parent: str | None = None
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class Coverage:
    """A curated dossier grouping entries across sections (a war, an election)."""

    slug: str
    title: str
    description: str = ""
    #: tag slugs, and plain keywords found in title or summary (case-insensitive), that file an entry here
    tags: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    #: its entries are never removed by retention ([store] keep_days)
    keep: bool = False


@dataclass(frozen=True)
class Taxonomy:
    """The site's navigation: sections (with subsections), regions and coverage dossiers."""

    sections: dict[str, Section]
    regions: dict[str, str]
    coverage: dict[str, Coverage] = field(default_factory=dict)
    #: labels in the other editions: "section:politics", "region:asia", "coverage:<slug>",
    #: "coverage-description:<slug>" -> edition -> text (see feeds.labels)
    translations: dict[str, dict[str, str]] = field(default_factory=dict)

    def section_family(self, slug: str) -> tuple[str, ...]:
        """The slugs a section feed holds: the section itself and all its subsections."""
        sec = self.sections[slug]
        return (slug, *sec.children)

    def top_section(self, slug: str) -> str:
        """The top-level section of a section or subsection slug."""
        return self.sections[slug].parent or slug

    @property
    def parents(self) -> dict[str, str]:
        """Subsection slug -> its section's slug (a subsection's entries are in both feeds)."""
        return {slug: sec.parent for slug, sec in self.sections.items() if sec.parent}


@dataclass(frozen=True)
class Rule:
    """One ordered per-source rule: a matcher, and what a match does.

    Matchers: ``category`` (a category of the entry, compared by slug),
    ``keyword`` (whole words in title or summary, case-insensitive, in any script;
    ``match = "substring"`` to match inside words too) or
    ``pattern`` (text with ``*`` and ``?`` wildcards, at most three ``*``, matched
    against the title: bounded, never a free regular expression).
    """

    index: int
    category: str | None = None
    keyword: str | None = None
    pattern: str | None = None
    section: str | None = None
    region: str | None = None
    tag: str | None = None
    breaking: bool | None = None
    action: str | None = None  # keep | drop
    #: how a keyword matches: "word" (whole words, the default) or "substring"
    match: str | None = None

    def describe(self) -> str:
        what = (f"category {self.category!r}" if self.category else
                f"keyword {self.keyword!r}" if self.keyword else f"pattern {self.pattern!r}")
        return f"rule {self.index + 1} ({what})"


@dataclass(frozen=True)
class SourceConfig:
    """One incoming feed as the admin configured it."""

    id: str
    name: str
    url: str
    kind: str = "cms"
    edition: str = "en"
    section: str | None = None
    region: str | None = None
    tags: tuple[str, ...] = ()
    origin: str | None = None
    breaking: bool = False
    interval: int | None = None
    enabled: bool = True
    #: store entries once and never apply the source's later changes to them
    ignore_updates: bool = False
    #: sources carrying the same stories under other links: a story with the same
    #: normalised title within MIRROR_WINDOW is stored once
    mirrors: tuple[str, ...] = ()
    #: ordered classification rules and keep/drop filters (see Rule)
    rules: tuple[Rule, ...] = ()
    #: absolute path for local sample files, None for http(s) sources
    local_path: Path | None = None
    #: who may redistribute its copy: "own" (our own sites), "partners", "everyone" (see RIGHTS)
    rights: str = "everyone"
    #: the rights statement every item of this source carries ("" : the site's)
    rights_statement: str = ""
    #: a future date from this source is an embargo: the entry is in no feed before it
    #: (within [collect] embargo_days; further ahead it is a clock error, and clamped)
    embargo: bool = False
    #: its entries are in the latest feeds (default: yes, but not for a breaking source,
    #: whose one-liners stay in breaking, section and tag feeds)
    in_latest: bool = True


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    #: public URL prefix used for self links; empty means "from the request"
    base_url: str = ""
    #: threads per worker process
    threads: int = 8
    #: worker processes serving the feeds; 0 means one per core
    workers: int = 0
    #: seconds between SQLite integrity checks made for /healthz (each reads every page once)
    integrity_check_every: int = 3600


@dataclass(frozen=True)
class StreamConfig:
    """Live streams (Server-Sent Events at a feed's path + ``/stream``), per web process."""

    #: open streams a web process holds; past it, 503 with Retry-After
    max_clients: int = 1000
    #: seconds between heartbeats on an idle stream (proxies drop silent connections)
    heartbeat: float = 15.0
    #: events sent at most when a client resumes with Last-Event-ID
    replay: int = 200


@dataclass(frozen=True)
class CacheConfig:
    """Shared state of several web processes beyond the store."""

    #: Redis for partner request limits ("redis://127.0.0.1:6379/0"); empty: kept in the store
    redis_url: str = ""
    #: what each web process keeps of rendered feeds and written entries, in MiB (3/4 and 1/4)
    memory_mb: int = 64


@dataclass(frozen=True)
class StoreConfig:
    """How long the store keeps entries, and how often a command checks a SQLite file."""

    #: entries published longer ago than this many days are removed (0: keep everything),
    #: except those in a dossier marked keep
    keep_days: int = 0
    #: a command that opens a SQLite store (collect, serve, run) first runs its integrity check
    #: when no check has passed for this many hours (0: at every start)
    integrity_check_hours: float = 24.0


@dataclass(frozen=True)
class RelatedConfig:
    """What makes entries related beyond sharing a tag or a dossier."""

    #: a tag on more than this share of an edition's recent entries does not relate them
    max_tag_share: float = 0.1
    #: how many of an edition's newest entries that share is counted over
    recent_entries: int = 1000


@dataclass(frozen=True)
class AdminConfig:
    """The admin API: on the public listener, on its own (``bind``), or off."""

    enabled: bool = True
    #: "host:port" of a separate listener for /api/v1 (empty: the public listener serves it)
    bind: str = ""

    @property
    def address(self) -> tuple[str, int] | None:
        if not self.bind:
            return None
        host, _, port = self.bind.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class SiteConfig:
    title: str = "feedhub"
    link: str = "https://news.example.org/"
    description: str = "News feeds"
    #: authority and date of the tag: URIs minted for entries and feeds (RFC 4151)
    id_authority: str = "news.example.org,2026"
    rights: str = ""
    default_edition: str = "en"
    #: cache lifetime announced to pollers (seconds) for ordinary feeds and the ticker
    feed_max_age: int = 300
    breaking_max_age: int = 30
    #: how long a retracted entry stays in Atom feeds as a tombstone
    tombstone_days: int = 30
    #: hours after which a breaking item leaves the breaking feed (0: it never does)
    breaking_hours: int = 0
    #: the feeds' logo (wide, RSS <image> and atom:logo) and icon (square, atom:icon, JSON
    #: Feed icon and favicon): absolute URLs, or paths on this site such as /static/logo.png
    logo: str = ""
    icon: str = ""


@dataclass(frozen=True)
class CollectConfig:
    interval: int = 900
    #: bounds every computed poll interval (ttl, max-age, Retry-After) is clamped to
    min_interval: int = 60
    max_interval: int = 86400
    #: cap of the exponential backoff after failures
    max_backoff: int = 6 * 3600
    #: +/- fraction of random jitter on every next-due time, so sources spread out
    jitter: float = 0.1
    #: stretch intervals of sources that post rarely (breaking sources stay fast)
    adaptive: bool = False
    timeout: float = 20.0
    #: wall-clock limit of one whole fetch (connect, redirects, body)
    total_timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    user_agent: str = "feedhub/0.1 (+https://news.example.org/feedhub)"
    samples_dir: Path = Path("samples")
    workers: int = 4
    #: fetches at once per host
    per_host: int = 2
    #: parser processes (0: one per core) and the wall-clock limit of one parse
    parse_workers: int = 0
    parse_timeout: float = 30.0
    #: how long a collector's claim on a source lasts before another may take it
    lease_seconds: int = 300
    #: fetches a permanent redirect must repeat before the source's URL moves
    redirect_confirmations: int = 3
    #: changes an entry may receive; later ones are ignored (a feed rewriting itself cannot churn)
    max_revisions: int = 50
    #: how far ahead an embargo source's future dates are believed (days); beyond, clamped
    embargo_days: int = 14
    #: networks (CIDR) and host names sources may reach besides public addresses
    allow_networks: tuple[str, ...] = ()
    fetch_log_keep: int = 200
    breaking_prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: what one entry may bring in ([collect] max_title, max_summary, ...)
    caps: Caps = field(default_factory=lambda: Caps())


@dataclass(frozen=True)
class Caps:
    """How much of each field one entry may bring in (``[collect] max_<field>``): a hostile or
    broken source cannot make the store, or every feed holding the entry, grow without bound.
    Lengths are in characters. The defaults keep every entry under 1 MB in any format we
    write, even escaped twice."""

    title: int = 500
    summary: int = 320  # the plain-text lead
    content: int = 100_000  # sanitised HTML
    name: int = 150  # an author's or a tag's
    authors: int = 20
    categories: int = 50
    media: int = 20  # images, videos and enclosures
    url: int = 2048  # a link or media URL


#: the [collect] keys of the caps ("max_title" -> Caps.title)
CAP_KEYS = {f"max_{f.name}": f.name for f in dataclasses.fields(Caps)}


@dataclass(frozen=True)
class WebSubConfig:
    """WebSub publishing: the hubs to ping when feeds change."""

    hubs: tuple[str, ...] = ()
    #: topic URLs per ping request, attempts per ping, and the first retry delay (doubling)
    batch: int = 50
    attempts: int = 4
    retry_delay: float = 2.0
    timeout: float = 10.0
    #: subscribe to the hubs sources name (needs server.base_url: the hubs call us back there)
    subscribe: bool = True
    #: the lease asked of a source's hub, in seconds (the hub may grant another); renewed before it ends
    lease_seconds: int = 864000
    #: seconds between polls of a source whose content arrives by push (the safety net)
    push_poll_interval: int = 900
    #: seconds a hub has to verify a request before it is asked again (doubling, up to 6 hours)
    verify_timeout: int = 300


@dataclass(frozen=True)
class PartnerProfile:
    """What a partner's feeds hold and how (``[partners.profiles.NAME]``, or the API's copy)."""

    name: str
    #: editions, sections (with their subsections), regions and source kinds included; empty: all
    editions: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    source_kinds: tuple[str, ...] = ()
    #: the whole body, or the summary only
    full_text: bool = False
    #: images (and other media) included, and from which sources (empty: every source)
    images: bool = True
    image_sources: tuple[str, ...] = ()
    #: items reach the partner this many minutes after publication
    delay_minutes: int = 0
    #: entries per page (a request's limit is capped to it); pages stay under 2 MB
    page_size: int = 50
    #: a line (and link) appended to every item, and a licence link at feed level
    attribution: str = ""
    attribution_link: str = ""
    licence: str = ""
    #: requests a minute per key (a token bucket refilled at this rate), bursts of up to
    #: ``burst``; 0: no limit
    rate_limit: int = 120
    burst: int = 60
    #: the partner is one of our own sites: copy licensed for our own sites only is included
    own_property: bool = False


#: a profile's keys, as config.toml and the API spell them, with their types and defaults
PROFILE_SPEC: dict[str, tuple[type, Any]] = {
    "editions": (list, []), "sections": (list, []), "regions": (list, []), "source_kinds": (list, []),
    "full_text": (bool, False), "images": (bool, True), "image_sources": (list, []), "delay_minutes": (int, 0),
    "page_size": (int, 50), "attribution": (str, ""), "attribution_link": (str, ""), "licence": (str, ""),
    "rate_limit": (int, 120), "burst": (int, 60), "own_property": (bool, False)}


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; passed explicitly, never global."""

    path: Path
    database_url: str
    server: ServerConfig
    site: SiteConfig
    collect: CollectConfig
    editions: dict[str, Edition]
    taxonomy: Taxonomy
    sources: tuple[SourceConfig, ...]
    websub: WebSubConfig = field(default_factory=WebSubConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    partner_profiles: dict[str, PartnerProfile] = field(default_factory=dict)
    cache: CacheConfig = field(default_factory=CacheConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    related: RelatedConfig = field(default_factory=RelatedConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    #: what is not wrong but should be looked at (a label with no translation for an
    #: edition), one line each naming the key; shown by `feedhub check` and logged at start
    warnings: tuple[str, ...] = ()

    def source(self, source_id: str) -> SourceConfig:
        """The source with that id (KeyError if none)."""
        for s in self.sources:
            if s.id == source_id:
                return s
        raise KeyError(source_id)


# --- validation helpers ------------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a table"}


class _Checker:
    """Collects problems while reading raw TOML data against simple specs."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []
        #: the edition codes, once read (labels name them)
        self.editions: tuple[str, ...] = ()

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def table(self, data: Any, key: str, spec: dict[str, tuple[type, Any]]) -> dict[str, Any]:
        """Check a table against ``spec`` (name -> (type, default)); return values with defaults."""
        out: dict[str, Any] = {}
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.problem(key, f"must be a table, got {_describe(data)}")
            data = {}
        for name in data:
            if name not in spec:
                self.unknown(f"{key}.{name}" if key else name, name, spec)
        for name, (typ, default) in spec.items():
            full = f"{key}.{name}" if key else name
            if name not in data:
                if default is _REQUIRED:
                    self.problem(full, f"is required ({_TYPE_NAMES.get(typ, typ.__name__)})")
                out[name] = None if default is _REQUIRED else default
                continue
            out[name] = self.value(data[name], full, typ, default)
        return out

    def value(self, value: Any, key: str, typ: type, default: Any) -> Any:
        ok = isinstance(value, typ) and not (typ in (int, float) and isinstance(value, bool))
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            self.problem(key, f"must be {_TYPE_NAMES.get(typ, typ.__name__)}, got {_describe(value)}")
            return None if default is _REQUIRED else default
        return value

    def unknown(self, key: str, name: str, allowed: Any) -> None:
        close = difflib.get_close_matches(name, list(allowed), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        self.problem(key, f"unknown key; {hint}allowed keys: {', '.join(sorted(allowed))}")


_REQUIRED = object()


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    for typ, name in _TYPE_NAMES.items():
        if isinstance(value, typ):
            return f"{name} ({value!r})" if typ in (str, int, float) else name
    return type(value).__name__


def _one_of(value: str, choices: Any) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}expected one of: {', '.join(sorted(choices))}"


# --- loading -------------------------------------------------------------------

def config_path_from_env(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Which config file to read: ``--config``, else ``FEEDHUB_CONFIG``, else ./config.toml."""
    return Path(explicit or os.environ.get("FEEDHUB_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """Read and validate a config file; ``DATABASE_URL`` in ``environ`` overrides the database."""
    env = os.environ if environ is None else environ
    cfg_path = Path(path) if path is not None else config_path_from_env()
    try:
        raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(cfg_path), ["the file does not exist (use --config or FEEDHUB_CONFIG)"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(cfg_path), [f"cannot be read: {e}"]) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(cfg_path), [f"is not valid TOML: {e}"]) from e
    return parse_config(raw, cfg_path, env)


# (C901: a flat sequence of independent table checks)
def parse_config(raw: dict[str, Any], path: Path, environ: Mapping[str, str] | None = None) -> Config:  # noqa: C901
    """Validate already-parsed TOML data; relative paths resolve against the file's folder."""
    env = {} if environ is None else environ
    c = _Checker(path)
    base = path.resolve().parent
    top = c.table(raw, "", {
        "database": (dict, {}), "server": (dict, {}), "site": (dict, {}), "collect": (dict, {}),
        "editions": (dict, _REQUIRED), "sections": (dict, _REQUIRED), "regions": (dict, {}),
        "sources": (list, []), "websub": (dict, {}), "coverage": (dict, {}), "admin": (dict, {}),
        "partners": (dict, {}), "cache": (dict, {}), "store": (dict, {}), "related": (dict, {}),
        "stream": (dict, {}),
    })

    db = c.table(top["database"], "database", {"url": (str, "sqlite:///var/feedhub.db")})
    from_env = bool(env.get("DATABASE_URL"))
    db_url = env.get("DATABASE_URL") or db["url"]
    db_url = _resolve_db_url(db_url, base, c,
                             "DATABASE_URL (the environment, overriding database.url)" if from_env else "database.url")

    srv = c.table(top["server"], "server", {
        "host": (str, "127.0.0.1"), "port": (int, 8080), "base_url": (str, ""), "threads": (int, 8),
        "workers": (int, 0), "integrity_check_every": (int, ServerConfig.integrity_check_every)})
    if srv["port"] is not None and not 0 < srv["port"] < 65536:
        c.problem("server.port", f"must be between 1 and 65535, got {srv['port']}")
    if srv["base_url"]:
        parts = urlsplit(srv["base_url"])
        if parts.scheme not in ("http", "https") or not parts.netloc:
            c.problem("server.base_url", f"must be an absolute http(s) URL such as "
                      f"'https://feeds.example.org', got {srv['base_url']!r}")
        srv["base_url"] = srv["base_url"].rstrip("/")
    for key in ("threads", "integrity_check_every"):
        if srv[key] is not None and srv[key] < 1:
            c.problem(f"server.{key}", f"must be at least 1, got {srv[key]}")
    if srv["workers"] is not None and srv["workers"] < 0:
        c.problem("server.workers", f"must be 0 (one per core) or more, got {srv['workers']}")
    server = ServerConfig(**srv)

    editions = _editions(top["editions"], c)
    c.editions = tuple(editions)
    site_raw = c.table(top["site"], "site", {
        "title": (str, SiteConfig.title), "link": (str, SiteConfig.link),
        "description": (str, SiteConfig.description), "id_authority": (str, SiteConfig.id_authority),
        "rights": (str, ""), "default_edition": (str, "en"),
        "feed_max_age": (int, SiteConfig.feed_max_age), "breaking_max_age": (int, SiteConfig.breaking_max_age),
        "tombstone_days": (int, SiteConfig.tombstone_days), "breaking_hours": (int, 0),
        "logo": (str, ""), "icon": (str, "")})
    for name in ("logo", "icon"):
        _image_url(site_raw[name], f"site.{name}", c)
    if site_raw["breaking_hours"] is not None and site_raw["breaking_hours"] < 0:
        c.problem("site.breaking_hours", "must be 0 (never) or a positive number of hours")
    for key in ("feed_max_age", "breaking_max_age", "tombstone_days"):
        if site_raw[key] is not None and site_raw[key] < 1:
            c.problem(f"site.{key}", f"must be a positive integer, got {site_raw[key]}")
    if editions and site_raw["default_edition"] not in editions:
        c.problem("site.default_edition", f"unknown edition {site_raw['default_edition']!r}; "
                  + _one_of(site_raw["default_edition"], editions))
    if not re.match(r"^[A-Za-z0-9.-]+,\d{4}(-\d{2}(-\d{2})?)?$", site_raw["id_authority"] or ""):
        c.problem("site.id_authority", "must be 'domain,YYYY' (RFC 4151 tag authority), e.g. "
                  "'news.example.org,2026'")
    site = SiteConfig(**site_raw)

    d = CollectConfig()
    col = c.table(top["collect"], "collect", {
        "interval": (int, d.interval), "min_interval": (int, d.min_interval),
        "max_interval": (int, d.max_interval), "max_backoff": (int, d.max_backoff),
        "jitter": (float, d.jitter), "adaptive": (bool, d.adaptive),
        "timeout": (float, d.timeout), "total_timeout": (float, d.total_timeout),
        "max_bytes": (int, d.max_bytes), "user_agent": (str, d.user_agent),
        "samples_dir": (str, "samples"), "workers": (int, d.workers), "per_host": (int, d.per_host),
        "parse_workers": (int, d.parse_workers), "parse_timeout": (float, d.parse_timeout),
        "lease_seconds": (int, d.lease_seconds), "redirect_confirmations": (int, d.redirect_confirmations),
        "max_revisions": (int, d.max_revisions), "embargo_days": (int, d.embargo_days),
        "allow_networks": (list, []), "fetch_log_keep": (int, d.fetch_log_keep),
        "breaking_prefixes": (dict, {}), **{k: (int, getattr(d.caps, f)) for k, f in CAP_KEYS.items()}})
    for key in ("interval", "min_interval", "max_interval", "max_backoff", "max_bytes", "workers",
                "per_host", "lease_seconds", "redirect_confirmations", "max_revisions", "fetch_log_keep",
                "embargo_days",
                *CAP_KEYS):
        if col[key] is not None and col[key] < 1:
            c.problem(f"collect.{key}", f"must be a positive integer, got {col[key]}")
    if col["parse_workers"] is not None and col["parse_workers"] < 0:
        c.problem("collect.parse_workers", "must be 0 (one per core) or more")
    for key in ("timeout", "total_timeout", "parse_timeout"):
        if col[key] is not None and col[key] <= 0:
            c.problem(f"collect.{key}", "must be a positive number of seconds")
    if col["jitter"] is not None and not 0 <= col["jitter"] < 1:
        c.problem("collect.jitter", f"must be a fraction from 0 up to 1, got {col['jitter']}")
    if (col["min_interval"] or 0) > (col["max_interval"] or 0):
        c.problem("collect.min_interval", "must not be larger than collect.max_interval")
    col["allow_networks"] = _allow_networks(col["allow_networks"] or [], c)
    prefixes: dict[str, tuple[str, ...]] = {}
    for lang, values in (col["breaking_prefixes"] or {}).items():
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            c.problem(f"collect.breaking_prefixes.{lang}", "must be a list of non-empty strings")
            continue
        prefixes[lang] = tuple(values)
    col["breaking_prefixes"] = prefixes
    col["samples_dir"] = (base / col["samples_dir"]).resolve()
    col["caps"] = Caps(**{f: col.pop(k) for k, f in CAP_KEYS.items()})
    collect = CollectConfig(**col)

    websub = _websub(top["websub"], server, c)
    adm = c.table(top["admin"], "admin", {"enabled": (bool, True), "bind": (str, "")})
    if adm["bind"]:
        host, _, port = adm["bind"].rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            c.problem("admin.bind", f"must be 'host:port', e.g. '127.0.0.1:8081', got {adm['bind']!r}")
        elif (host.strip("[]"), int(port)) == (server.host, server.port):
            c.problem("admin.bind", "is the public listener (server.host and server.port); leave it empty to "
                      "serve the API there, or choose another port")
    taxonomy = _taxonomy(top["sections"], top["regions"], c)
    translations = dict(taxonomy.translations)
    taxonomy = Taxonomy(sections=taxonomy.sections, regions=taxonomy.regions,
                        coverage=_coverage(top["coverage"], c, translations), translations=translations)
    sources = _sources(top["sources"], c, base, collect.samples_dir, editions, taxonomy)
    cache = c.table(top["cache"], "cache", {"redis_url": (str, ""), "memory_mb": (int, CacheConfig.memory_mb)})
    if cache["memory_mb"] is not None and cache["memory_mb"] < 4:
        c.problem("cache.memory_mb", f"must be at least 4 (MiB), got {cache['memory_mb']}")
    kept = c.table(top["store"], "store", {"keep_days": (int, 0), "integrity_check_hours": (
        float, StoreConfig.integrity_check_hours)})
    if kept["keep_days"] is not None and kept["keep_days"] < 0:
        c.problem("store.keep_days", f"must be 0 (keep everything) or a number of days, got {kept['keep_days']}")
    if kept["integrity_check_hours"] < 0:  # (a value of the wrong type is a problem already, and the default)
        c.problem("store.integrity_check_hours",
                  f"must be 0 (check at every start) or a number of hours, got {kept['integrity_check_hours']}")
    if cache["redis_url"] and urlsplit(cache["redis_url"]).scheme not in ("redis", "rediss", "unix"):
        c.problem("cache.redis_url", f"must be a redis://, rediss:// or unix:// URL, got {cache['redis_url']!r}")
    rel = c.table(top["related"], "related", {"max_tag_share": (float, RelatedConfig.max_tag_share),
                                              "recent_entries": (int, RelatedConfig.recent_entries)})
    if rel["max_tag_share"] is not None and not 0 < rel["max_tag_share"] <= 1:
        c.problem("related.max_tag_share", f"must be a share above 0 and at most 1 (1: every tag counts), "
                  f"got {rel['max_tag_share']}")
    if rel["recent_entries"] is not None and rel["recent_entries"] < 1:
        c.problem("related.recent_entries", f"must be a positive number of entries, got {rel['recent_entries']}")
    sd = StreamConfig()
    live = c.table(top["stream"], "stream", {"max_clients": (int, sd.max_clients), "heartbeat": (float, sd.heartbeat),
                                             "replay": (int, sd.replay)})
    if live["max_clients"] is not None and live["max_clients"] < 0:
        c.problem("stream.max_clients", f"must be 0 (no streams) or more, got {live['max_clients']}")
    if live["heartbeat"] is not None and not 0 < live["heartbeat"] <= 300:
        c.problem("stream.heartbeat", f"must be above 0 and at most 300 seconds, got {live['heartbeat']}")
    if live["replay"] is not None and not 0 <= live["replay"] <= 10_000:
        c.problem("stream.replay", f"must be from 0 to 10000 events, got {live['replay']}")
    partners = c.table(top["partners"], "partners", {"profiles": (dict, {})})
    profiles = {name: _profile(name, data, f"partners.profiles.{name}", c, editions, taxonomy)
                for name, data in (partners["profiles"] or {}).items()}

    if c.problems:
        raise ConfigError(str(path), c.problems)
    return Config(path=path, database_url=db_url, server=server, site=site, collect=collect,
                  editions=editions, taxonomy=taxonomy, sources=sources, websub=websub,
                  admin=AdminConfig(enabled=adm["enabled"] is not False, bind=adm["bind"] or ""),
                  partner_profiles=profiles,
                  cache=CacheConfig(redis_url=cache["redis_url"] or "", memory_mb=cache["memory_mb"]),
                  store=StoreConfig(keep_days=kept["keep_days"] or 0,
                                    integrity_check_hours=kept["integrity_check_hours"]),
                  related=RelatedConfig(max_tag_share=rel["max_tag_share"], recent_entries=rel["recent_entries"]),
                  stream=StreamConfig(max_clients=live["max_clients"], heartbeat=live["heartbeat"],
                                      replay=live["replay"]),
                  warnings=_translation_warnings(taxonomy, editions, site.default_edition))


# (C901: one check per profile key, in order)
def _profile(name: str, data: Any, key: str, c: _Checker, editions: dict[str, Edition],  # noqa: C901
             taxonomy: Taxonomy) -> PartnerProfile:
    if not SLUG_RE.match(name):
        c.problem(key or "name", "profile names are lowercase words joined by '-', e.g. 'regional-papers'")
    d = c.table(data, key, PROFILE_SPEC)
    choices: dict[str, Any] = {"editions": editions, "sections": taxonomy.sections, "regions": taxonomy.regions,
                               "source_kinds": SOURCE_KINDS}
    for field_name, allowed in choices.items():
        values = d[field_name] or []
        for i, v in enumerate(values):
            if not isinstance(v, str) or v not in allowed:
                c.problem(_field(key, f"{field_name}[{i}]"), f"unknown {field_name.rstrip('s').replace('_', ' ')} "
                          f"{v!r}; " + _one_of(str(v), allowed))
    if not all(isinstance(v, str) for v in d["image_sources"] or []):
        c.problem(_field(key, "image_sources"), "must be a list of source ids")
    for name_, low, high in (("delay_minutes", 0, 7 * 24 * 60), ("page_size", 1, 200), ("rate_limit", 0, 100_000),
                             ("burst", 1, 100_000)):
        if d[name_] is not None and not low <= d[name_] <= high:
            c.problem(_field(key, name_), f"must be from {low} to {high}, got {d[name_]}")
    for name_ in ("attribution_link", "licence"):
        if d[name_] and urlsplit(d[name_]).scheme not in ("http", "https"):
            c.problem(_field(key, name_), f"must be an absolute http(s) URL, got {d[name_]!r}")
    if d["attribution"] and (len(d["attribution"]) > 300 or not _one_line(d["attribution"])):
        c.problem(_field(key, "attribution"), "must be one line of at most 300 characters")
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if v is not None}
    return PartnerProfile(name=name, **fields)


def check_profile(name: str, data: Any, config: Config) -> PartnerProfile:
    """Validate one profile table (from the admin API) with config.toml's messages."""
    c = _Checker(config.path)
    profile = _profile(name, data, "", c, config.editions, config.taxonomy)
    if c.problems:
        raise ConfigError("profile", c.problems)
    return profile


def profile_settings(p: PartnerProfile) -> dict[str, Any]:
    """A profile as config.toml spells it."""
    return {k: list(getattr(p, k)) if isinstance(getattr(p, k), tuple) else getattr(p, k) for k in PROFILE_SPEC}


def _websub(raw: dict[str, Any], server: ServerConfig, c: _Checker) -> WebSubConfig:
    d = WebSubConfig()
    w = c.table(raw, "websub", {"hubs": (list, []), "batch": (int, d.batch), "attempts": (int, d.attempts),
                                "retry_delay": (float, d.retry_delay), "timeout": (float, d.timeout),
                                "subscribe": (bool, d.subscribe), "lease_seconds": (int, d.lease_seconds),
                                "push_poll_interval": (int, d.push_poll_interval),
                                "verify_timeout": (int, d.verify_timeout)})
    hubs = []
    for i, hub in enumerate(w["hubs"] or []):
        parts = urlsplit(hub) if isinstance(hub, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            c.problem(f"websub.hubs[{i}]", f"must be a hub's http(s) URL, got {hub!r}")
            continue
        hubs.append(hub)
    if hubs and not server.base_url:
        # Topic URLs must be the public feed URLs, and a collector has no request to learn them from.
        c.problem("websub.hubs", "publishing to a hub needs server.base_url, the feeds' public URL prefix")
    for key in ("batch", "attempts"):
        if w[key] is not None and w[key] < 1:
            c.problem(f"websub.{key}", f"must be a positive integer, got {w[key]}")
    for key in ("retry_delay", "timeout"):
        if w[key] is not None and w[key] <= 0:
            c.problem(f"websub.{key}", "must be a positive number of seconds")
    for key, low, high in (("lease_seconds", 60, 365 * 86400), ("push_poll_interval", 60, 7 * 86400),
                           ("verify_timeout", 5, 86400)):
        if w[key] is not None and not low <= w[key] <= high:
            c.problem(f"websub.{key}", f"must be from {low} to {high} seconds, got {w[key]}")
    return WebSubConfig(hubs=tuple(hubs), batch=w["batch"], attempts=w["attempts"],
                        retry_delay=w["retry_delay"], timeout=w["timeout"], subscribe=w["subscribe"] is not False,
                        lease_seconds=w["lease_seconds"], push_poll_interval=w["push_poll_interval"],
                        verify_timeout=w["verify_timeout"])


def _allow_networks(values: list[Any], c: _Checker) -> tuple[str, ...]:
    """CIDRs (or single addresses) and host names that sources may reach although not public."""
    out: list[str] = []
    for i, value in enumerate(values):
        key = f"collect.allow_networks[{i}]"
        if not isinstance(value, str) or not value.strip():
            c.problem(key, "must be a CIDR such as '10.1.0.0/16', an address, or a host name")
            continue
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            if "/" in value:
                c.problem(key, _bad_cidr(value.strip()))
                continue
            if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$", value.strip()):
                c.problem(key, f"{value!r} is neither a CIDR, an address nor a host name")
                continue
            out.append(value.strip().lower())
    return tuple(out)


def _bad_cidr(value: str) -> str:
    """Why ``value`` (with a '/') is not a network, in words."""
    address, _, prefix = value.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{value!r} is not a CIDR: {address!r} is not an IPv4 or IPv6 address"
    most = 32 if ip.version == 4 else 128
    if not (prefix.isascii() and prefix.isdigit()) or int(prefix) > most:
        return (f"{value!r} is not a CIDR: the prefix length /{prefix} is out of range; "
                f"an IPv{ip.version} network has /0 to /{most} (e.g. '{address}/{16 if most == 32 else 64}')")
    return f"{value!r} is not a CIDR"


def _resolve_db_url(url: str, base: Path, c: _Checker, key: str = "database.url") -> str:
    """Make a relative SQLite path absolute against the config folder; check the scheme.
    ``key`` names where the URL came from (the config key, or the DATABASE_URL variable)."""
    scheme = url.split(":", 1)[0]
    if scheme == "sqlite":
        rest = url[len("sqlite://"):] if url.startswith("sqlite://") else None
        if rest is None or not rest.startswith("/"):
            c.problem(key, f"a SQLite URL looks like 'sqlite:///var/feedhub.db', got {url!r}")
            return url
        if rest == "/:memory:":
            return url
        p = Path(rest[1:]) if not rest.startswith("//") else Path(rest[1:])
        if not p.is_absolute():
            p = base / p
        return f"sqlite:///{p}"
    if scheme in ("postgres", "postgresql"):
        return url
    c.problem(key, f"unsupported database {scheme!r}; use 'sqlite:///path.db' or "
              "'postgresql://user@host:5432/dbname'")
    return url


def _editions(raw: dict[str, Any], c: _Checker) -> dict[str, Edition]:
    out: dict[str, Edition] = {}
    for code, data in (raw or {}).items():
        key = f"editions.{code}"
        if not re.match(r"^[a-z]{2,3}$", code):
            c.problem(key, "edition codes are two or three lowercase letters, e.g. 'en', 'ar', 'es'")
            continue
        d = c.table(data, key, {"title": (str, _REQUIRED), "language": (str, code),
                                "direction": (str, "ltr"), "site_title": (str, ""), "site_description": (str, ""),
                                "labels": (dict, {}), "logo": (str, ""), "icon": (str, "")})
        if d["direction"] not in ("ltr", "rtl"):
            c.problem(f"{key}.direction", f"must be 'ltr' or 'rtl', got {d['direction']!r}")
        labels: dict[str, str] = {}
        for name, text in (d["labels"] or {}).items():
            if name not in LABEL_KEYS:
                c.unknown(f"{key}.labels.{name}", name, LABEL_KEYS)
            elif not isinstance(text, str) or not text.strip() or not _one_line(text):
                c.problem(f"{key}.labels.{name}", f"must be one line of text, got {_describe(text)}")
            else:
                labels[name] = text.strip()
        for name in ("site_title", "site_description"):
            if d[name] and not _one_line(d[name]):
                c.problem(f"{key}.{name}", "must be one line of text")
        for name in ("logo", "icon"):
            _image_url(d[name], f"{key}.{name}", c)
        out[code] = Edition(code=code, title=d["title"] or code, language=d["language"],
                            direction=d["direction"], site_title=(d["site_title"] or "").strip(),
                            site_description=(d["site_description"] or "").strip(), labels=labels,
                            logo=d["logo"] or "", icon=d["icon"] or "")
    if not out and raw is not None:
        c.problem("editions", "at least one edition is required, e.g. [editions.en] title = \"English\"")
    return out


def _image_url(value: str, key: str, c: _Checker) -> None:
    """A logo or icon: an absolute http(s) URL, or a path on this site ("/static/logo.png")."""
    if not value:
        return
    parts = urlsplit(value)
    if value.startswith("/") and not value.startswith("//") and not parts.scheme:
        return
    if parts.scheme not in ("http", "https") or not parts.netloc or not _one_line(value) or " " in value:
        c.problem(key, f"must be an absolute http(s) URL or a path on this site starting with '/', got {value!r}")


def _titles(data: Any, key: str, c: _Checker) -> dict[str, str]:
    """A label's per-edition forms: ``titles = { ar = "...", es = "..." }``."""
    if not isinstance(data, dict):
        c.problem(key, f"must be a table of edition = title, e.g. {{ ar = \"...\", es = \"...\" }}, "
                  f"got {_describe(data)}")
        return {}
    out: dict[str, str] = {}
    for edition, text in data.items():
        if c.editions and edition not in c.editions:
            c.problem(f"{key}.{edition}", f"unknown edition {edition!r}; " + _one_of(edition, c.editions))
        elif not isinstance(text, str) or not text.strip() or not _one_line(text):
            c.problem(f"{key}.{edition}", f"must be one line of text, got {_describe(text)}")
        else:
            out[edition] = text.strip()
    return out


def _label(value: Any, key: str, c: _Checker, what: str) -> tuple[str, dict[str, str]] | None:
    """A subsection's or region's label: its title, or a table with ``title`` and ``titles``."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict):
        d = c.table(value, key, {"title": (str, _REQUIRED), "titles": (dict, {})})
        return d["title"] or "", _titles(d["titles"] or {}, f"{key}.titles", c)
    c.problem(key, f"must be the {what}'s title (a string), or a table such as "
              f"{{ title = \"...\", titles = {{ ar = \"...\" }} }}, got {_describe(value)}")
    return None


def _translation_warnings(taxonomy: Taxonomy, editions: dict[str, Edition], default: str) -> tuple[str, ...]:
    """One line per label an edition shows in the main edition's words (it still works)."""
    others = [e for code, e in editions.items() if code != default]
    warnings: list[str] = []
    places = {"section": "sections.{slug}.titles", "region": "regions.{slug}.titles",
              "coverage": "coverage.{slug}.titles", "coverage-description": "coverage.{slug}.descriptions"}
    for ed in others:
        for label, text in _taxonomy_labels(taxonomy):
            if text and ed.code not in taxonomy.translations.get(label, {}):
                kind, _, slug = label.partition(":")
                section = taxonomy.sections.get(slug)
                place = places[kind].format(slug=f"{section.parent}.subsections.{slug}"
                                            if kind == "section" and section and section.parent else slug)
                warnings.append(f"{place}.{ed.code}: no {ed.title} ({ed.code}) form; {text!r} is shown")
        if not ed.site_title:
            warnings.append(f"editions.{ed.code}.site_title: no {ed.title} ({ed.code}) site title; "
                            "the site's own is shown")
        for name in LABEL_KEYS:
            if name not in ed.labels and builtin_label(ed.language, name) is None:
                warnings.append(f"editions.{ed.code}.labels.{name}: no {ed.title} ({ed.code}) form; "
                                f"{builtin_label('en', name)!r} is shown")
    return tuple(warnings)


def _taxonomy_labels(taxonomy: Taxonomy) -> list[tuple[str, str]]:
    labels = [(f"section:{slug}", s.title) for slug, s in taxonomy.sections.items()]
    labels += [(f"region:{slug}", title) for slug, title in taxonomy.regions.items()]
    for slug, cov in taxonomy.coverage.items():
        labels += [(f"coverage:{slug}", cov.title), (f"coverage-description:{slug}", cov.description)]
    return labels


def _taxonomy(sections_raw: dict[str, Any], regions_raw: dict[str, Any], c: _Checker) -> Taxonomy:
    sections: dict[str, Section] = {}
    translations: dict[str, dict[str, str]] = {}
    for slug, data in (sections_raw or {}).items():
        key = f"sections.{slug}"
        if not SLUG_RE.match(slug):
            c.problem(key, "section slugs are lowercase words joined by '-', e.g. 'arts-culture'")
        d = c.table(data, key, {"title": (str, _REQUIRED), "subsections": (dict, {}), "titles": (dict, {})})
        children = []
        for sub, value in (d["subsections"] or {}).items():
            skey = f"{key}.subsections.{sub}"
            label = _label(value, skey, c, "subsection")
            if label is None:
                continue
            if not SLUG_RE.match(sub):
                c.problem(skey, "subsection slugs are lowercase words joined by '-'")
            if sub in sections or sub in (sections_raw or {}):
                # Section feeds are addressed by slug alone, so slugs must be unique site-wide.
                c.problem(skey, f"slug {sub!r} is already used by another section or subsection")
                continue
            sections[sub] = Section(slug=sub, title=label[0], parent=slug)
            translations[f"section:{sub}"] = label[1]
            children.append(sub)
        if slug in sections:
            c.problem(key, f"slug {slug!r} is already used by a subsection")
            continue
        sections[slug] = Section(slug=slug, title=d["title"] or slug, children=tuple(children))
        translations[f"section:{slug}"] = _titles(d["titles"] or {}, f"{key}.titles", c)
    regions: dict[str, str] = {}
    for slug, value in (regions_raw or {}).items():
        label = _label(value, f"regions.{slug}", c, "region")
        if label is None:
            continue
        if not SLUG_RE.match(slug):
            c.problem(f"regions.{slug}", "region slugs are lowercase words joined by '-'")
        if slug in sections:
            # A category, a rule or a ?section=/?region= filter names a slug alone: one slug
            # for two things would silently file entries under only one of them.
            what = "subsection" if sections[slug].parent else "section"
            c.problem(f"regions.{slug}", f"slug {slug!r} is already a {what}; regions and sections "
                      "need different slugs (e.g. '{slug}-region')".replace("{slug}", slug))
            continue
        regions[slug] = label[0]
        translations[f"region:{slug}"] = label[1]
    return Taxonomy(sections=sections, regions=regions, translations=translations)


def _coverage(raw: dict[str, Any], c: _Checker,
              translations: dict[str, dict[str, str]]) -> dict[str, Coverage]:
    """The dossiers; their labels in other editions go into ``translations``."""
    from .normalize import slugify  # pure helper; imported here to keep config importable alone

    out: dict[str, Coverage] = {}
    for slug, data in (raw or {}).items():
        key = f"coverage.{slug}"
        if not SLUG_RE.match(slug):
            c.problem(key, "coverage slugs are lowercase words joined by '-', e.g. 'election-2026'")
        d = c.table(data, key, {"title": (str, _REQUIRED), "description": (str, ""), "tags": (list, []),
                                "keywords": (list, []), "keep": (bool, False), "titles": (dict, {}),
                                "descriptions": (dict, {})})
        translations[f"coverage:{slug}"] = _titles(d["titles"] or {}, f"{key}.titles", c)
        translations[f"coverage-description:{slug}"] = _titles(d["descriptions"] or {}, f"{key}.descriptions", c)
        for name in ("tags", "keywords"):
            if not all(isinstance(v, str) and v.strip() for v in d[name] or []):
                c.problem(f"{key}.{name}", "must be a list of non-empty strings")
                d[name] = []
        if not d["tags"] and not d["keywords"]:
            c.problem(key, "needs tags or keywords, or no entry can ever join it")
        out[slug] = Coverage(slug=slug, title=d["title"] or slug, description=d["description"],
                             tags=tuple(slugify(t) for t in d["tags"]),
                             keywords=tuple(k.strip().casefold() for k in d["keywords"]), keep=bool(d["keep"]))
    return out


_SOURCE_SPEC: dict[str, tuple[type, Any]] = {
    "id": (str, _REQUIRED), "name": (str, _REQUIRED), "url": (str, _REQUIRED),
    "kind": (str, "cms"), "edition": (str, "en"), "section": (str, ""), "region": (str, ""),
    "tags": (list, []), "origin": (str, ""), "breaking": (bool, False), "interval": (int, 0),
    "enabled": (bool, True), "ignore_updates": (bool, False), "mirrors": (list, []), "rules": (list, []),
    "rights": (str, "everyone"), "rights_statement": (str, ""), "embargo": (bool, False),
    "in_latest": (bool, None),
}

_RULE_SPEC: dict[str, tuple[type, Any]] = {
    "category": (str, ""), "keyword": (str, ""), "pattern": (str, ""), "section": (str, ""),
    "region": (str, ""), "tag": (str, ""), "breaking": (bool, None), "action": (str, ""), "match": (str, ""),
}


def _rules(raw: list[Any], key: str, c: _Checker, taxonomy: Taxonomy) -> tuple[Rule, ...]:
    out = []
    for i, data in enumerate(raw):
        rkey = _field(key, f"rules[{i}]")
        d = c.table(data, rkey, _RULE_SPEC)
        matchers = [m for m in ("category", "keyword", "pattern") if d[m]]
        if len(matchers) != 1:
            c.problem(rkey, "needs exactly one of category, keyword or pattern to match on")
        if d["pattern"] and (d["pattern"].count("*") > 3 or len(d["pattern"]) > 200):
            c.problem(f"{rkey}.pattern", "patterns are bounded: at most three '*' and 200 characters")
        if d["section"] and d["section"] not in taxonomy.sections:
            c.problem(f"{rkey}.section",
                      f"unknown section {d['section']!r}; " + _one_of(d["section"], taxonomy.sections))
        if d["region"] and d["region"] not in taxonomy.regions:
            c.problem(f"{rkey}.region", f"unknown region {d['region']!r}; " + _one_of(d["region"], taxonomy.regions))
        if d["match"] and d["match"] not in ("word", "substring"):
            c.problem(f"{rkey}.match", f"must be 'word' (whole words, the default) or 'substring', got {d['match']!r}")
        elif d["match"] and not d["keyword"]:
            c.problem(f"{rkey}.match", "only keyword rules have a match mode")
        if d["action"] and d["action"] not in ("keep", "drop"):
            c.problem(f"{rkey}.action", f"must be 'keep' or 'drop', got {d['action']!r}")
        if not any(d[k] for k in ("section", "region", "tag", "action")) and d["breaking"] is None:
            c.problem(rkey, "does nothing: give section, region, tag, breaking or action")
        out.append(Rule(index=i, **{k: (v if v != "" else None) for k, v in d.items()}))
    return tuple(out)


def _sources(raw: list[Any], c: _Checker, base: Path, samples_dir: Path,
             editions: dict[str, Edition], taxonomy: Taxonomy) -> tuple[SourceConfig, ...]:
    out: list[SourceConfig] = []
    seen_ids: dict[str, int] = {}
    seen_urls: dict[str, int] = {}
    for i, data in enumerate(raw or []):
        key = f"sources[{i}]"
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            key = f"sources[{i}] (id {data['id']!r})"
        sc = _source(data, key, c, base, samples_dir, editions, taxonomy)
        if sc.id in seen_ids:
            c.problem(f"{key}.id", f"duplicate source id; sources[{seen_ids[sc.id]}] already uses it")
        seen_ids.setdefault(sc.id, i)
        if sc.url:
            norm = source_url_key(sc)
            if norm in seen_urls:
                c.problem(f"{key}.url", f"duplicate source URL; sources[{seen_urls[norm]}] already "
                          f"collects {sc.url!r}")
            seen_urls.setdefault(norm, i)
        out.append(sc)
    ids = {s.id for s in out}
    for i, s in enumerate(out):
        for m in s.mirrors:
            if m not in ids or m == s.id:
                c.problem(f"sources[{i}] (id {s.id!r}).mirrors", f"{m!r} is not another source's id; "
                          + _one_of(m, ids - {s.id}))
    return tuple(out)


def _one_line(text: str) -> bool:
    """No control characters (line breaks included): what a name or URL may hold."""
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def source_url_key(sc: SourceConfig) -> str:
    """What two sources must not share: the same feed URL (case and a trailing slash aside),
    or the same local file."""
    return sc.url.rstrip("/").lower() if sc.local_path is None else str(sc.local_path)


def _field(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


# (C901: one check per source key, in order)
def _source(data: Any, key: str, c: _Checker, base: Path, samples_dir: Path,  # noqa: C901
            editions: dict[str, Edition], taxonomy: Taxonomy) -> SourceConfig:
    """One source table, checked field by field; ``key`` prefixes the problems ("" for none)."""
    d = c.table(data, key, _SOURCE_SPEC)
    sid, url = d["id"], d["url"]
    if sid is not None and not SLUG_RE.match(sid):
        c.problem(_field(key, "id"), "source ids are lowercase words joined by '-', e.g. 'wire-agency'")
    if sid is not None and len(sid) > 100:
        c.problem(_field(key, "id"), "must be at most 100 characters")
    if d["name"] is not None and not d["name"].strip():
        c.problem(_field(key, "name"), "must not be empty")
    elif d["name"] is not None and (len(d["name"]) > 150 or not _one_line(d["name"])):
        c.problem(_field(key, "name"), "must be one line of at most 150 characters")
    local_path = None
    if url is not None:
        url, local_path = _source_location(url, _field(key, "url"), c, base, samples_dir)
    if d["kind"] not in SOURCE_KINDS:
        c.problem(_field(key, "kind"), f"unknown kind {d['kind']!r}; " + _one_of(d["kind"], SOURCE_KINDS))
    if editions and d["edition"] not in editions:
        c.problem(_field(key, "edition"), f"unknown edition {d['edition']!r}; " + _one_of(d["edition"], editions))
    if d["section"] and d["section"] not in taxonomy.sections:
        c.problem(_field(key, "section"), f"unknown section {d['section']!r}; "
                  + _one_of(d["section"], taxonomy.sections))
    if d["region"] and d["region"] not in taxonomy.regions:
        c.problem(_field(key, "region"), f"unknown region {d['region']!r}; "
                  + _one_of(d["region"], taxonomy.regions))
    rules = _rules(d["rules"] or [], key, c, taxonomy)
    tags = d["tags"] or []
    if not all(isinstance(t, str) and t.strip() and len(t) <= 150 and _one_line(t) for t in tags) \
            or len(tags) > 50:
        c.problem(_field(key, "tags"), "must be a list of at most 50 non-empty names of one line, each at most "
                  "150 characters")
        tags = []
    if d["origin"] and (len(d["origin"]) > 150 or not _one_line(d["origin"])):
        c.problem(_field(key, "origin"), "must be one line of at most 150 characters")
    if url is not None and (len(url) > 2048 or not _one_line(url) or " " in url.strip()):
        c.problem(_field(key, "url"), "must be one URL (no spaces or control characters, at most 2048 characters)")
    mirrors = d["mirrors"] or []
    if not all(isinstance(m, str) for m in mirrors):
        c.problem(_field(key, "mirrors"), "must be a list of source ids")
        mirrors = []
    if d["interval"] and d["interval"] < 1:
        c.problem(_field(key, "interval"), "must be a positive number of seconds")
    if d["rights"] not in RIGHTS:
        c.problem(_field(key, "rights"), f"must be one of {', '.join(RIGHTS)} (who may redistribute its copy), "
                  f"got {d['rights']!r}")
    if d["rights_statement"] and (len(d["rights_statement"]) > 300 or not _one_line(d["rights_statement"])):
        c.problem(_field(key, "rights_statement"), "must be one line of at most 300 characters")
    return SourceConfig(
        id=sid or "source", name=d["name"] or "", url=url or "", kind=d["kind"] or "cms",
        edition=d["edition"] or "en", section=d["section"] or None, region=d["region"] or None,
        tags=tuple(tags), origin=d["origin"] or None, breaking=bool(d["breaking"]),
        interval=d["interval"] or None, enabled=d["enabled"] is not False,
        ignore_updates=bool(d["ignore_updates"]), mirrors=tuple(mirrors), rules=rules, local_path=local_path,
        rights=d["rights"] if d["rights"] in RIGHTS else "everyone", rights_statement=d["rights_statement"] or "",
        embargo=bool(d["embargo"]),
        in_latest=not d["breaking"] if d["in_latest"] is None else bool(d["in_latest"]))


#: the fields of a source, as config.toml and the admin API spell them
SOURCE_FIELDS = tuple(_SOURCE_SPEC)


@functools.lru_cache(maxsize=16)
def _folder(path: Path) -> Path:
    # (resolving the path walks it with a system call per part: a cold collect of 300 store
    # sources spent 3% of its time here, once per source)
    return path.resolve().parent


def check_source(data: Any, config: Config) -> SourceConfig:
    """Validate one source table (from the admin API or the store) against ``config``'s
    editions, taxonomy and samples folder, with config.toml's own messages; ConfigError lists
    every problem as "field: message"."""
    c = _Checker(config.path)
    sc = _source(data, "", c, _folder(config.path), config.collect.samples_dir, config.editions,
                 config.taxonomy)
    if c.problems:
        raise ConfigError("source", c.problems)
    return sc


def source_settings(sc: SourceConfig) -> dict[str, Any]:
    """A source as the table config.toml would hold (what the store keeps, and the API shows):
    check_source(source_settings(sc), config) gives ``sc`` back."""
    out: dict[str, Any] = {"id": sc.id, "name": sc.name, "url": sc.url, "kind": sc.kind, "edition": sc.edition,
                           "section": sc.section or "", "region": sc.region or "", "tags": list(sc.tags),
                           "origin": sc.origin or "", "breaking": sc.breaking, "interval": sc.interval or 0,
                           "enabled": sc.enabled, "ignore_updates": sc.ignore_updates, "mirrors": list(sc.mirrors),
                           "rules": [rule_settings(r) for r in sc.rules], "rights": sc.rights,
                           "rights_statement": sc.rights_statement, "embargo": sc.embargo,
                           "in_latest": sc.in_latest}
    return out


def rule_settings(rule: Rule) -> dict[str, Any]:
    """A rule as config.toml spells it (only the keys it sets)."""
    return {k: getattr(rule, k) for k in _RULE_SPEC if getattr(rule, k) is not None}


def check_rules(raw: Any, config: Config) -> tuple[Rule, ...]:
    """Validate a list of rules with config.toml's messages (ConfigError: "rules[0].section: ...")."""
    c = _Checker(config.path)
    if not isinstance(raw, list):
        c.problem("rules", f"must be a list, got {_describe(raw)}")
        raise ConfigError("rules", c.problems)
    rules = _rules(raw, "", c, config.taxonomy)
    if c.problems:
        raise ConfigError("rules", c.problems)
    return rules


def _source_location(url: str, key: str, c: _Checker, base: Path,
                     samples_dir: Path) -> tuple[str, Path | None]:
    """http(s) URLs pass through; anything else must be a file under the samples directory."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        if not parts.netloc:
            c.problem(key, f"{url!r} has no host")
        return url, None
    if parts.scheme not in ("", "file") or (parts.scheme == "" and "://" in url):
        c.problem(key, f"unsupported scheme {parts.scheme!r}; sources are http(s) URLs or "
                  "files under the samples directory")
        return url, None
    raw_path = parts.path if parts.scheme == "file" else url
    p = Path(raw_path)
    resolved = (p if p.is_absolute() else base / p).resolve()
    # resolve() follows symlinks, so a link out of the samples folder is refused too.
    if not resolved.is_relative_to(samples_dir):
        c.problem(key, f"local files must be under the samples directory {samples_dir}, "
                  f"got {resolved}")
        return url, None
    if not resolved.is_file():
        c.problem(key, f"the file {resolved} does not exist" if not resolved.exists()
                  else f"{resolved} is not a file")
        return url, None
    return url, resolved
