"""The tables (peewee models), the schema version, and the migrations from older stores."""
from __future__ import annotations

from collections.abc import Callable

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from ..errors import StoreDamaged, StoreError, StoreFull
from .connection import db, open_database, redact_url, reset_connection, utcnow, write_transaction
from .integrity import diagnose

SCHEMA_VERSION = 14


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


class MetaInfo(BaseModel):
    key = pw.CharField(primary_key=True, max_length=64)
    value = pw.TextField()

    class Meta:
        table_name = "feedhub_meta"

    @classmethod
    def put(cls, key: str, value: str) -> None:
        """Set one row, whether or not it exists (one statement: safe when processes race)."""
        cls.insert(key=key, value=value).on_conflict(
            conflict_target=[cls.key], update={cls.value: pw.EXCLUDED.value}).execute()


class Source(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    key = pw.CharField(unique=True, max_length=100)
    url = pw.TextField()
    name = pw.TextField()
    kind = pw.CharField(max_length=16, default="cms")
    edition = pw.CharField(max_length=8, default="en")
    enabled = pw.BooleanField(default=True)
    breaking = pw.BooleanField(default=False)
    interval = pw.IntegerField(default=900)
    # what the feed says of itself (for atom:source / RSS <source> on re-syndicated entries)
    feed_title = pw.TextField(null=True)
    feed_link = pw.TextField(null=True)
    feed_ttl = pw.IntegerField(null=True)  # minutes, as the feed last said
    # HTTP validators and body hash from the last successful fetch
    etag = pw.TextField(null=True)
    last_modified = pw.TextField(null=True)
    content_hash = pw.CharField(max_length=64, null=True)
    # where fetches go now: the config URL, or a permanent redirect's target once confirmed
    fetch_url = pw.TextField(null=True)
    redirect_target = pw.TextField(null=True)
    redirect_count = pw.IntegerField(default=0)
    # set when the publisher answered 410 Gone; polling stops until the URL changes
    disabled_reason = pw.TextField(null=True)
    # how entries are identified (guid, else link, else hash) and why it was weakened
    id_rule = pw.CharField(max_length=8, default="guid")
    id_rule_reason = pw.TextField(null=True)
    # a collector's claim: no other collector takes the source until lease_until
    lease_owner = pw.CharField(max_length=100, null=True)
    lease_until = pw.DateTimeField(null=True)
    # health
    last_fetched_at = pw.DateTimeField(null=True)
    last_success_at = pw.DateTimeField(null=True)
    last_status = pw.IntegerField(null=True)
    last_error = pw.TextField(null=True)
    last_error_kind = pw.CharField(max_length=32, null=True)
    consecutive_failures = pw.IntegerField(default=0)
    #: what the last parse of the feed warned about (fields cut to the caps, a wrong charset, ...)
    warnings = pw.TextField(null=True)
    next_due_at = pw.DateTimeField(null=True, index=True)
    entries_seen = pw.IntegerField(default=0)
    created_at = pw.DateTimeField(default=utcnow)
    #: who owns the source's settings: "config" (provisioned from config.toml, read-only to the
    #: API), "store" (made through the API or the CLI) or "desk" (the breaking desk's own items)
    managed = pw.CharField(max_length=8, default="config")
    #: the source's settings as config.toml spells a source table (JSON); the collector builds
    #: each claimed source from them, so a change takes effect on its next claim
    settings = pw.TextField(null=True)
    #: set when an admin removed the source: it is never collected, its entries stay (or were
    #: retracted), and it leaves the API's lists
    removed_at = pw.DateTimeField(null=True)
    #: who may redistribute its copy (config.RIGHTS) and the statement its items carry
    rights = pw.CharField(max_length=16, default="everyone")
    rights_statement = pw.TextField(default="")
    #: its entries are in the latest feeds (a ticker's one-liners are in breaking only)
    in_latest = pw.BooleanField(default=True)
    #: when an admin last asked for a fetch now: a fetch that started before it does not
    #: consume it (the request came while that fetch was in flight)
    refresh_requested_at = pw.DateTimeField(null=True)


class Entry(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    # (no index of its own: (source, guid) and (source, published) begin with it, and each
    # index is one more B-tree every new entry is written into)
    source = pw.ForeignKeyField(Source, backref="entries", on_delete="CASCADE", index=False)
    guid = pw.TextField()  # identity within the source
    public_id = pw.TextField(index=True)  # what feeds publish as id/guid
    title = pw.TextField()
    link = pw.TextField(null=True, index=True)  # one story through two sources is found by its link
    language = pw.CharField(max_length=16)
    edition = pw.CharField(max_length=8)
    summary = pw.TextField(default="")
    content = pw.TextField(default="")
    section = pw.CharField(max_length=64, null=True, index=True)
    origin = pw.TextField(null=True)
    breaking = pw.BooleanField(default=False)
    reading_time = pw.IntegerField(default=0)
    published = pw.DateTimeField()
    updated = pw.DateTimeField()
    date_missing = pw.BooleanField(default=False)
    date_clamped = pw.BooleanField(default=False)
    published_raw = pw.TextField(null=True)  # the dates exactly as the source wrote them
    updated_raw = pw.TextField(null=True)
    first_seen = pw.DateTimeField(default=utcnow)
    stored_at = pw.DateTimeField(default=utcnow)  # last time the store wrote this row
    fingerprint = pw.CharField(max_length=64)
    # a retraction is published (Atom tombstone), never silently dropped
    retracted_at = pw.DateTimeField(null=True)
    retraction_reason = pw.TextField(null=True)
    revision = pw.IntegerField(default=0)  # how many times the source changed it
    title_key = pw.CharField(max_length=300, default="", index=True)  # see normalize.title_key
    #: an editor's filing correction (JSON: section, regions, tags, breaking), applied over
    #: whatever the source sends later, with who made it and when
    override = pw.TextField(null=True)
    override_by = pw.CharField(max_length=63, null=True)
    override_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("source", "guid"), True),
            (("edition", "published"), False),
            (("edition", "breaking", "published"), False),
            # `since` (entries changed since) and tombstones (retracted since) read a time range
            (("edition", "updated"), False),
            (("edition", "retracted_at"), False),
            # a source's newest entries (previous ids, its publishing rhythm)
            (("source", "published"), False),
            # what was written since a moment: the live streams (web.stream) and their resumes
            (("stored_at",), False),
        )


class Author(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    slug = pw.CharField(unique=True, max_length=200)
    name = pw.TextField()
    url = pw.TextField(null=True)


class EntryAuthor(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    entry = pw.ForeignKeyField(Entry, backref="author_links", on_delete="CASCADE", index=False)  # (entry, author)
    author = pw.ForeignKeyField(Author, backref="entry_links", on_delete="CASCADE")
    position = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("entry", "author"), True),)


class Tag(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    slug = pw.CharField(unique=True, max_length=200)
    name = pw.TextField()


class EntryTag(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    entry = pw.ForeignKeyField(Entry, backref="tag_links", on_delete="CASCADE", index=False)  # (entry, tag)
    tag = pw.ForeignKeyField(Tag, backref="entry_links", on_delete="CASCADE", index=False)  # (tag, entry)
    position = pw.IntegerField(default=0)

    class Meta:
        # (tag, entry): the newest entries of a tag, for related entries, without a scan
        indexes = ((("entry", "tag"), True), (("tag", "entry"), False))


class EntryRegion(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    entry = pw.ForeignKeyField(Entry, backref="region_links", on_delete="CASCADE", index=False)  # (entry, region)
    region = pw.CharField(max_length=64, index=True)

    class Meta:
        indexes = ((("entry", "region"), True),)


class EntrySource(BaseModel):
    """Another source that carried an entry already stored from its first source."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    entry = pw.ForeignKeyField(Entry, backref="also_from", on_delete="CASCADE")
    source = pw.ForeignKeyField(Source, backref="carried", on_delete="CASCADE")
    guid = pw.TextField()  # the entry's identity in that source
    first_seen = pw.DateTimeField()

    class Meta:
        indexes = ((("source", "guid"), True),)


class EntryCoverage(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    entry = pw.ForeignKeyField(Entry, backref="coverage_links", on_delete="CASCADE", index=False)  # (entry, coverage)
    coverage = pw.CharField(max_length=100)  # (coverage, entry)

    class Meta:
        indexes = ((("entry", "coverage"), True), (("coverage", "entry"), False))


class Related(BaseModel):
    """Entry -> a related entry (shared tags and coverage), with the score that ranks it.

    Written when an entry is stored: its own best matches, and the reverse link on each
    of them, so earlier coverage of a story points forward to what came after.
    """

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    entry = pw.ForeignKeyField(Entry, backref="related_links", on_delete="CASCADE", index=False)  # (entry, related)
    related = pw.ForeignKeyField(Entry, backref="related_from", on_delete="CASCADE")
    score = pw.IntegerField()

    class Meta:
        indexes = ((("entry", "related"), True), (("related",), False))


class Media(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    entry = pw.ForeignKeyField(Entry, backref="media", on_delete="CASCADE")
    position = pw.IntegerField(default=0)
    kind = pw.CharField(max_length=16)
    url = pw.TextField()
    type = pw.CharField(max_length=100, null=True)
    length = pw.BigIntegerField(null=True)
    width = pw.IntegerField(null=True)
    height = pw.IntegerField(null=True)
    duration = pw.IntegerField(null=True)
    caption = pw.TextField(null=True)
    credit = pw.TextField(null=True)
    lead = pw.BooleanField(default=False)


class FetchLog(BaseModel):
    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    source = pw.ForeignKeyField(Source, backref="fetch_log", on_delete="CASCADE")
    started_at = pw.DateTimeField(index=True)
    duration_ms = pw.IntegerField(default=0)
    status = pw.IntegerField(null=True)
    outcome = pw.CharField(max_length=16)  # ok | not-modified | unchanged | error
    bytes = pw.IntegerField(default=0)
    entries_new = pw.IntegerField(default=0)
    entries_updated = pw.IntegerField(default=0)
    error_kind = pw.CharField(max_length=32, null=True)
    error = pw.TextField(null=True)


class SourceUrlHistory(BaseModel):
    """Every URL a source moved away from (after confirmed permanent redirects)."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    source = pw.ForeignKeyField(Source, backref="url_history", on_delete="CASCADE")
    old_url = pw.TextField()
    new_url = pw.TextField()
    moved_at = pw.DateTimeField()
    reason = pw.TextField()


class Metric(BaseModel):
    """Monotonic counters shared by every collector process (read by /metrics)."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    name = pw.CharField(max_length=100)
    labels = pw.CharField(max_length=200, default="")
    value = pw.FloatField(default=0)

    class Meta:
        indexes = ((("name", "labels"), True),)


class Topic(BaseModel):
    """A public feed's change counter ("en:section:politics"), bumped with the entries it holds.

    The render cache is valid while a feed's revision is unchanged, and the
    WebSub hub is told about exactly the topics a collect bumped.
    """

    key = pw.CharField(primary_key=True, max_length=300)
    revision = pw.BigIntegerField(default=0)
    changed_at = pw.DateTimeField()


class User(BaseModel):
    """Someone who runs feedhub: an admin, an editor at the desk, or a viewer (aggregator.auth)."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    name = pw.CharField(unique=True, max_length=63)
    role = pw.CharField(max_length=16)
    password_hash = pw.TextField()  # argon2id
    created_at = pw.DateTimeField()


class ApiToken(BaseModel):
    """An API token of a user: only its SHA-256 is kept; the token itself is shown once."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    user = pw.ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    label = pw.TextField(default="")
    token_hash = pw.CharField(unique=True, max_length=64)
    created_at = pw.DateTimeField()
    last_used_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)


class Audit(BaseModel):
    """Every change made through the admin API or the CLI: who, how, what, and the values
    before and after (JSON), written in the change's own transaction."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    at = pw.DateTimeField(index=True)
    actor = pw.CharField(max_length=63)
    via = pw.CharField(max_length=8)  # api | cli
    action = pw.CharField(max_length=40)
    target = pw.TextField()
    before = pw.TextField(null=True)
    after = pw.TextField(null=True)


class Partner(BaseModel):
    """A partner site pulling our feeds under the terms of a profile."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    name = pw.CharField(unique=True, max_length=63)
    contact = pw.TextField(default="")
    profile = pw.CharField(max_length=63)
    status = pw.CharField(max_length=16, default="active")  # active | suspended
    created_at = pw.DateTimeField()


class PartnerKey(BaseModel):
    """A partner's key: only its SHA-256 is kept. A rotated-out key works until expires_at."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    partner = pw.ForeignKeyField(Partner, backref="keys", on_delete="CASCADE")
    key_hash = pw.CharField(unique=True, max_length=64)
    created_at = pw.DateTimeField()
    expires_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)
    last_used_at = pw.DateTimeField(null=True)


class StoredProfile(BaseModel):
    """A partner profile set through the admin API (JSON, config.toml's spelling); it wins over
    config.toml's profile of the same name until deleted."""

    name = pw.CharField(primary_key=True, max_length=63)
    settings = pw.TextField()
    updated_at = pw.DateTimeField()


class RateBucket(BaseModel):
    """A token bucket (a partner key's request allowance), shared by every web process."""

    key = pw.CharField(primary_key=True, max_length=100)
    # Double precision: PostgreSQL's REAL (what FloatField makes there) cannot hold an epoch
    # timestamp to the second.
    tokens = pw.DoubleField()
    updated = pw.DoubleField()  # seconds since the epoch


class PartnerUsage(BaseModel):
    """Requests of a partner for one feed on one day (UTC), added up from every web process."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    partner = pw.ForeignKeyField(Partner, backref="usage", on_delete="CASCADE")
    feed = pw.CharField(max_length=300)
    day = pw.DateField()
    requests = pw.IntegerField(default=0)
    ok = pw.IntegerField(default=0)
    not_modified = pw.IntegerField(default=0)
    limited = pw.IntegerField(default=0)
    bytes = pw.BigIntegerField(default=0)
    last_seen = pw.DateTimeField()

    class Meta:
        indexes = ((("partner", "feed", "day"), True),)


class PartnerAgent(BaseModel):
    """A User-Agent a partner's requests came with, per day."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    partner = pw.ForeignKeyField(Partner, backref="agents", on_delete="CASCADE")
    day = pw.DateField()
    agent = pw.CharField(max_length=200)

    class Meta:
        indexes = ((("partner", "day", "agent"), True),)


class FeedSubscribers(BaseModel):
    """Subscribers an aggregator reports for a public feed in its User-Agent, per day."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    feed = pw.CharField(max_length=300)
    day = pw.DateField()
    aggregator = pw.CharField(max_length=200)
    subscribers = pw.IntegerField()

    class Meta:
        indexes = ((("feed", "day", "aggregator"), True),)


class FeedRequests(BaseModel):
    """Requests for a public feed per day, added up from every web process (the console's "most
    requested feeds")."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    feed = pw.CharField(max_length=300)
    day = pw.DateField()
    requests = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("feed", "day"), True),)


class FeedKey(BaseModel):
    """A public feed's number in the feed index (store.index): its topic key, such as
    ``en:section:politics``, is stored once here instead of once per entry."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    key = pw.CharField(unique=True, max_length=300)


class CollectRun(BaseModel):
    """One collect run of one collector: when, how many sources, with what result."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    owner = pw.CharField(max_length=100)
    started_at = pw.DateTimeField(index=True)
    finished_at = pw.DateTimeField()
    sources = pw.IntegerField(default=0)
    new = pw.IntegerField(default=0)
    updated = pw.IntegerField(default=0)
    failed = pw.IntegerField(default=0)


class WebSubSubscription(BaseModel):
    """feedhub subscribed to a source's hub (WebSub): the hub, the topic, the secret content is
    signed with, and where the subscription stands (see aggregator.subscribe for the states).
    The source may be gone (null): the row stays until the hub has been told to stop."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    source = pw.ForeignKeyField(Source, null=True, on_delete="SET NULL")
    #: the opaque last part of the callback URL (/websub/callback/<callback_id>)
    callback_id = pw.CharField(unique=True, max_length=64)
    hub = pw.TextField()
    topic = pw.TextField()
    secret = pw.CharField(max_length=128)
    state = pw.CharField(max_length=16, index=True)
    created_at = pw.DateTimeField()
    requested_at = pw.DateTimeField(null=True)
    verified_at = pw.DateTimeField(null=True)
    lease_seconds = pw.IntegerField(null=True)
    expires_at = pw.DateTimeField(null=True)
    #: when the collector next acts on it (asks, asks again, renews, unsubscribes)
    next_attempt_at = pw.DateTimeField(null=True, index=True)
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(null=True)
    deliveries = pw.IntegerField(default=0)
    rejected = pw.IntegerField(default=0)
    last_delivery_at = pw.DateTimeField(null=True)


class WebSubDelivery(BaseModel):
    """Content a hub delivered: kept until the collector has stored it (parsed like a fetched
    body), and its digest for a while after, so a delivery replayed is not applied twice."""

    id = pw.AutoField()  # (peewee's implicit key, declared so type checkers see it)
    subscription = pw.ForeignKeyField(WebSubSubscription, on_delete="CASCADE")
    digest = pw.CharField(max_length=64)
    received_at = pw.DateTimeField()
    body = pw.BlobField(null=True)
    content_type = pw.TextField(null=True)
    processed_at = pw.DateTimeField(null=True, index=True)
    outcome = pw.TextField(null=True)

    class Meta:
        indexes = ((("subscription", "digest"), True),)


MODELS: tuple[type[BaseModel], ...] = (
    MetaInfo, Source, Entry, Author, EntryAuthor, Tag, EntryTag, EntryRegion, EntryCoverage, EntrySource, Media,
    Related, FetchLog,
    SourceUrlHistory, Metric, Topic, User, ApiToken, Audit, CollectRun, Partner, PartnerKey,
    StoredProfile, RateBucket, PartnerUsage, PartnerAgent, FeedSubscribers, FeedRequests, FeedKey,
    WebSubSubscription, WebSubDelivery)


# The PostgreSQL advisory lock key (any constant) that processes opening one store take while
# they create or migrate its schema.
_SCHEMA_LOCK = 0x66656564


def _schema_version() -> int | None:
    if not MetaInfo.table_exists():
        return None
    row = MetaInfo.get_or_none(MetaInfo.key == "schema_version")
    return int(row.value) if row else None


def init_db(url: str) -> pw.Database:
    """Open the store, create the schema when missing, and migrate an older one.

    A store already at this version gets no DDL at all: even ``CREATE INDEX IF NOT EXISTS``
    takes a SHARE lock on its table in PostgreSQL before it looks, so a process starting
    beside running writers (a second web process, the collector) could deadlock with them.
    Processes that do need to create or migrate take one advisory lock in turn, and each
    re-reads the version once it holds it.
    """
    database = open_database(url)
    try:
        try:
            _open(database)
        except (pw.OperationalError, pw.InterfaceError):
            if not _connection_lost(database):
                raise
            # The connection was ended under us (a restart, a failover, pg_terminate_backend),
            # perhaps mid-creation: that transaction rolled back with it and the advisory lock
            # went with the session, so starting over on a new connection is safe.
            reset_connection()
            _open(database)
    except (StoreError, StoreFull):
        raise
    except Exception as e:
        failure = diagnose(e)
        if isinstance(failure, (StoreDamaged, StoreFull)):
            raise failure from e
        if isinstance(e, pw.PeeweeException) or type(e).__module__.startswith(("psycopg2", "sqlite3")):
            raise StoreError(f"cannot prepare the store at {redact_url(url)}: {e}") from e
        raise
    return database


def _open(database: pw.Database) -> None:
    database.connect(reuse_if_open=True)
    if _schema_version() == SCHEMA_VERSION:
        return
    postgres = isinstance(database, pw.PostgresqlDatabase)
    if postgres:
        database.execute_sql("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
    try:
        _prepare(database)
    finally:
        if postgres and not _connection_lost(database):
            database.execute_sql("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


def _connection_lost(database: pw.Database) -> bool:
    return isinstance(database, pw.PostgresqlDatabase) and not database.is_closed() \
        and not database.is_connection_usable()


def _prepare(database: pw.Database) -> None:
    """Create what is missing and migrate an older schema (the caller holds the schema lock)."""
    found = _schema_version()
    if found == SCHEMA_VERSION:
        return  # another process did it while this one waited
    if found is not None:
        _migrate(found, database)  # before create_tables: current indexes need current columns
    with write_transaction():
        database.create_tables(MODELS, safe=True)
        from .index import create_tables  # (it reads these models)

        create_tables(database)
        if found is None:
            MetaInfo.insert(key="schema_version", value=str(SCHEMA_VERSION)).on_conflict_ignore().execute()


def _migrate(found: int, database: pw.Database) -> None:
    """Bring a store at schema ``found`` up to SCHEMA_VERSION, one step per transaction.

    SQLite cannot add a NOT NULL column in place, so the migrator rebuilds the
    table (copy, drop, rename); with foreign keys enforced, dropping the old
    ``source`` table would cascade-delete every entry. Enforcement is switched
    off for the migration (SQLite only allows that outside a transaction), and
    the result is checked with foreign_key_check before it is switched back on.
    """
    if found > SCHEMA_VERSION:
        raise StoreError(f"the store has schema version {found}, newer than this feedhub "
                         f"({SCHEMA_VERSION}); upgrade feedhub")
    sqlite = isinstance(database, pw.SqliteDatabase)
    if sqlite:
        database.pragma("foreign_keys", 0)
    try:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            with write_transaction():
                MIGRATIONS[version](database)
                if sqlite and database.execute_sql("PRAGMA foreign_key_check").fetchall():
                    raise StoreError(f"migrating to schema {version} broke foreign keys; nothing was changed")
                MetaInfo.update(value=str(version)).where(MetaInfo.key == "schema_version").execute()
    finally:
        if sqlite:
            database.pragma("foreign_keys", 1)


def _to_v2(database: pw.Database) -> None:
    """v2: redirects, 410, leases on sources; URL history and metrics tables (created after)."""
    have = {c.name for c in database.get_columns(Source._meta.table_name)}
    migrator = SchemaMigrator.from_database(database)
    steps = [migrator.add_column(Source._meta.table_name, name, Source._meta.fields[name])
             for name in ("feed_ttl", "fetch_url", "redirect_target", "redirect_count",
                          "disabled_reason", "lease_owner", "lease_until") if name not in have]
    migrate(*steps)


def _to_v3(database: pw.Database) -> None:
    """v3: retractions, revisions, raw dates on entries; identity rules on sources; topic and
    coverage tables (created with the other missing tables)."""
    migrator = SchemaMigrator.from_database(database)
    have_source = {c.name for c in database.get_columns(Source._meta.table_name)}
    migrate(*[migrator.add_column(Source._meta.table_name, name, Source._meta.fields[name])
              for name in ("id_rule", "id_rule_reason") if name not in have_source])
    have = {c.name for c in database.get_columns(Entry._meta.table_name)}
    migrate(*[migrator.add_column(Entry._meta.table_name, name, Entry._meta.fields[name])
              for name in ("retracted_at", "retraction_reason", "revision", "date_clamped",
                           "published_raw", "updated_raw", "title_key") if name not in have])


def _to_v4(database: pw.Database) -> None:
    """v4: related entries. The new table and the (tag, entry) and (coverage, entry) indexes are
    created with the other missing tables; entries stored before get related ones as new
    entries arrive (the reverse links), and their own when they next change."""


def _to_v5(database: pw.Database) -> None:
    """v5: the warnings of a source's last parse (fields cut to the caps), kept in its health."""
    have = {c.name for c in database.get_columns(Source._meta.table_name)}
    if "warnings" not in have:
        migrate(SchemaMigrator.from_database(database).add_column(
            Source._meta.table_name, "warnings", Source._meta.fields["warnings"]))


def _to_v6(database: pw.Database) -> None:
    """v6: users and API tokens (new tables, created with the other missing tables)."""


def _to_v7(database: pw.Database) -> None:
    """v7: sources managed in the store (settings, owner, removal), editors' corrections on
    entries; the audit and collect-run tables are created with the other missing tables."""
    migrator = SchemaMigrator.from_database(database)
    for model, names in ((Source, ("managed", "settings", "removed_at")),
                         (Entry, ("override", "override_by", "override_at"))):
        have = {c.name for c in database.get_columns(model._meta.table_name)}
        migrate(*[migrator.add_column(model._meta.table_name, name, model._meta.fields[name])
                  for name in names if name not in have])


def _to_v8(database: pw.Database) -> None:
    """v8: rights on sources; partners, their keys and stored profiles (new tables)."""
    have = {c.name for c in database.get_columns(Source._meta.table_name)}
    migrator = SchemaMigrator.from_database(database)
    migrate(*[migrator.add_column(Source._meta.table_name, name, Source._meta.fields[name])
              for name in ("rights", "rights_statement") if name not in have])


def _to_v9(database: pw.Database) -> None:
    """v9: refresh requests that an in-flight fetch does not use up; feed request counts (a new
    table, created with the other missing tables)."""
    have = {c.name for c in database.get_columns(Source._meta.table_name)}
    if "refresh_requested_at" not in have:
        migrate(SchemaMigrator.from_database(database).add_column(
            Source._meta.table_name, "refresh_requested_at", Source._meta.fields["refresh_requested_at"]))


def _to_v10(database: pw.Database) -> None:
    """v10: the feed and search indexes (store.index) and the time-range indexes on entries,
    created with the other missing tables and indexes; the index is filled by index.prepare
    at the next start, in batches."""


def _to_v11(database: pw.Database) -> None:
    """v11: whether a source's entries are in the latest feeds (true for every source, as the
    feed index holds them; the next sync with config.toml files a breaking source's entries
    again, see store.sync_sources)."""
    have = {c.name for c in database.get_columns(Source._meta.table_name)}
    if "in_latest" not in have:
        migrate(SchemaMigrator.from_database(database).add_column(
            Source._meta.table_name, "in_latest", Source._meta.fields["in_latest"]))


def _to_v12(database: pw.Database) -> None:
    """v12: the index on entries' write time for live streams, and the WebSub subscriptions and
    deliveries (created with the other missing tables and indexes)."""


def _to_v13(database: pw.Database) -> None:
    """v13: the per-feed retraction index (store.index), filled from the entries retracted so far;
    on PostgreSQL, more planner statistics for the search words (used from the next ANALYZE)."""
    from . import index  # (it reads these models)

    index.create_tables(database)
    database.execute_sql(
        f"INSERT INTO {index.RETRACTION_TABLE} (feed_id, retracted, key) "
        f"SELECT fe.feed_id, e.retracted_at, fe.key FROM {Entry._meta.table_name} e "
        f"JOIN {index.FEED_TABLE} fe ON fe.key = {index.key_sql('e')} "
        f"WHERE e.retracted_at IS NOT NULL ON CONFLICT DO NOTHING")


#: indexes that a composite index beginning with the same column made redundant (schema 14)
_REDUNDANT_INDEXES = ("entry_source_id", "entry_author_entry_id", "entry_tag_entry_id", "entry_tag_tag_id",
                      "entry_region_entry_id", "entry_coverage_entry_id", "entry_coverage_coverage", "related_entry_id")


def _to_v14(database: pw.Database) -> None:
    """v14: indexes that only repeated the first column of another index are dropped. Every new
    entry and each of its tags, authors, regions, dossiers and related links was written into
    them: the inserts into those tables took 15% longer with them (measured on SQLite)."""
    for name in _REDUNDANT_INDEXES:
        database.execute_sql(f'DROP INDEX IF EXISTS "{name}"')


# version -> function that upgrades a store from version-1 to version
MIGRATIONS: dict[int, Callable[[pw.Database], None]] = {2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5, 6: _to_v6,
                                                             7: _to_v7, 8: _to_v8, 9: _to_v9,
                                                             10: _to_v10, 11: _to_v11, 12: _to_v12,
                                                             13: _to_v13, 14: _to_v14}


def schema_version() -> int:
    """The schema version recorded in the open store."""
    return int(MetaInfo.get(MetaInfo.key == "schema_version").value)
