"""The ``feedhub`` command: init, collect, serve, run, sources.

Exit codes: 0 success; 1 a command failed (e.g. every source failed); 2 bad
usage or configuration; 3 the store could not be opened.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from aggregator import admin, store
from aggregator.auth import AuthError
from aggregator.collect import Collector, CollectSummary, SourceOutcome
from aggregator.config import Config, config_path_from_env, load_config
from aggregator.errors import ConfigError, FeedhubError, StoreError

from .websub import HubPublisher

log = logging.getLogger("feedhub")


class _Parser(argparse.ArgumentParser):
    """A subcommand's parser: takes the common options and hands them to its own subcommands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _common_options(self, argparse.SUPPRESS)

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", _Parser)
        return super().add_subparsers(**kwargs)


def _common_options(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("--config", metavar="FILE", default=default,
                   help="config file (default: $FEEDHUB_CONFIG, else ./config.toml)")
    p.add_argument("-v", "--verbose", action="store_true", default=default or False,
                   help="log debug details")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="feedhub",
        description="Collect news feeds into one store and republish them as RSS, Atom and JSON Feed.")
    _common_options(p, None)
    # Every command takes them after its name too (`feedhub collect --config FILE -v`): there
    # they default to "not given", so they never undo the same option given before the name.
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    sub.add_parser("check", help="check config.toml: every mistake (exit 2), then every warning (exit 0)",
                   description="Read config.toml and report every mistake (exit 2) or, when there is "
                               "none, every warning, such as a label with no translation for an edition.")
    sub.add_parser("init", help="create the store (or migrate an older one)",
                   description="Create the store's schema, or migrate an existing store to this version.")
    c = sub.add_parser("collect", help="collect every enabled source once (or keep polling)",
                       description="Fetch, parse and store every enabled source.")
    c.add_argument("--loop", action="store_true", help="keep polling sources when they fall due")
    c.add_argument("--source", action="append", metavar="ID", help="only this source (repeatable)")
    s = sub.add_parser("serve", help="serve the feeds over HTTP",
                       description="Serve the republished feeds: gunicorn, one worker process per core "
                                   "(server.workers).")
    s.add_argument("--host", help="address to bind (default from config: server.host)")
    s.add_argument("--port", type=int, help="port (default from config: server.port)")
    r = sub.add_parser("run", help="collect now, keep collecting, and serve the feeds",
                       description="The main job: collect once, then poll in the background while serving.")
    r.add_argument("--host", help="address to bind (default from config: server.host)")
    r.add_argument("--port", type=int, help="port (default from config: server.port)")
    ret = sub.add_parser("retract", help="retract an entry: a tombstone in Atom, gone from RSS and JSON",
                         description="Retract an entry by its id, guid or link. It is published as an "
                                     "Atom tombstone (RFC 6721) and dropped from RSS and JSON Feed.")
    ret.add_argument("entry", help="the entry's public id, its guid at the source, or its link")
    ret.add_argument("--reason", default="retracted by the newsroom", help="the tombstone's comment")
    unret = sub.add_parser("unretract", help="publish a retracted entry again",
                           description="Undo a retraction: the entry is back in every feed that holds it, "
                                       "and its tombstone leaves the Atom feeds.")
    unret.add_argument("entry", help="the entry's public id, its guid at the source, or its link")
    unret.add_argument("--reason", default="published again by the newsroom", help="why (kept in the audit log)")
    rules = sub.add_parser("rules", help="try a source's rules on a feed file",
                           description="Work with per-source classification rules.")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    rt = rules_sub.add_parser("test", help="show what each entry of FILE or URL would become (writes nothing)",
                              description="Parse FILE (or fetch URL) as SOURCE would, apply its defaults and "
                                          "rules, and show "
                                          "each entry's section, regions, tags, breaking flag, whether it is "
                                          "kept, and which rules decided. The store is not touched.")
    rt.add_argument("source", metavar="SOURCE", help="a source id from the config")
    rt.add_argument("file", metavar="FILE|URL",
                    help="a feed file, or an http(s) URL fetched as the collector would (RSS, Atom or JSON Feed)")
    bk = sub.add_parser("backup", help="copy the SQLite store to FILE while feedhub keeps running",
                        description="Take a consistent copy of the SQLite store (SQLite's online backup "
                                    "API), safe while collectors write. For PostgreSQL use pg_dump.")
    bk.add_argument("file", metavar="FILE", help="where to write the copy (replaced if it exists)")
    pr = sub.add_parser("prune", help="remove entries older than [store] keep_days (retention)",
                        description="Remove the entries published more than [store] keep_days days ago, with "
                                    "their children and search rows, in small batches (collectors and readers "
                                    "keep going). Entries in a dossier marked keep = true stay. `collect --loop` "
                                    "and `run` do this every hour by themselves.")
    pr.add_argument("--dry-run", action="store_true", help="only show what would be removed")
    users = sub.add_parser("users", help="list users; add them, give them API tokens, revoke tokens",
                           description="Users and their API tokens. Without an action: list the users.")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION")
    ua = users_sub.add_parser("add", help="add a user; the password is read from standard input",
                              description="Add a user with a role (admin, editor or viewer). The password is "
                                          "read from standard input (the first line), never from the command "
                                          "line, and stored as an argon2id hash.")
    ua.add_argument("name", metavar="NAME")
    ua.add_argument("--role", required=True, help="admin, editor or viewer")
    ut = users_sub.add_parser("token", help="make an API token for a user (printed once, as the last line)",
                              description="Make a new API token for NAME. It is printed once, as the last line; "
                                          "only its hash is stored.")
    ut.add_argument("name", metavar="NAME")
    ut.add_argument("--label", default="", help="what the token is for, e.g. 'newsroom CMS'")
    uts = users_sub.add_parser("tokens", help="list API tokens with their last use",
                               description="List API tokens (of NAME, or everyone's) with their last use.")
    uts.add_argument("name", metavar="NAME", nargs="?")
    ur = users_sub.add_parser("revoke", help="revoke an API token by its id",
                              description="Revoke an API token now, by the id `feedhub users tokens` shows.")
    ur.add_argument("token_id", metavar="TOKEN_ID", type=int)
    src = sub.add_parser("sources", help="list sources with their health; add, edit, remove, refresh, OPML",
                         description="Sources and their health. Without an action: a table of every source. "
                                     "Sources added here (or through the API) live in the store; those in "
                                     "config.toml are managed there and read-only here.")
    src.add_argument("--json", action="store_true", help="print JSON for scripts")
    src_sub = src.add_subparsers(dest="sources_command", metavar="ACTION")
    sa = src_sub.add_parser("add", help="add a source from a feed URL, or a page that announces its feed",
                            description="Add a source. A page URL is fetched and its <link rel=\"alternate\"> "
                                        "feed is used; when it announces several, they are listed to choose from.")
    sa.add_argument("url", metavar="URL")
    se = src_sub.add_parser("edit", help="change a store-managed source's settings",
                            description="Change settings of a source made with `sources add` or the API.")
    se.add_argument("id", metavar="ID")
    se.add_argument("--url")
    sa.add_argument("--id", dest="new_id", help="the source's id (default: made from its name)")
    for parser in (sa, se):
        parser.add_argument("--name", help="display name (default, when adding: the feed's own title)")
        parser.add_argument("--kind", help="cms, wire or partner")
        parser.add_argument("--edition", help="the edition its entries belong to")
        parser.add_argument("--section", help="default section")
        parser.add_argument("--region", help="default region")
        parser.add_argument("--tag", action="append", dest="tags", metavar="TAG", help="default tag (repeatable)")
        parser.add_argument("--origin", help="the originating agency shown as its source")
        parser.add_argument("--interval", type=int, help="seconds between polls")
        parser.add_argument("--breaking", action=argparse.BooleanOptionalAction, default=None,
                            help="may raise breaking items")
        parser.add_argument("--rules", metavar="FILE", help="a TOML file of [[rules]] tables (config.toml's form)")
    sa.add_argument("--no-discover", action="store_true", help="take the URL as the feed's, without fetching it")
    for action, text in (("disable", "stop collecting a source (its entries stay published)"),
                         ("enable", "collect a disabled source again"),
                         ("refresh", "queue a source: a running collector fetches it within seconds")):
        src_sub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".").add_argument(
            "id", metavar="ID")
    sr = src_sub.add_parser("remove", help="remove a store-managed source (its entries stay published)",
                            description="Remove a source made with `sources add` or the API. Its entries stay "
                                        "published unless --retract-entries.")
    sr.add_argument("id", metavar="ID")
    sr.add_argument("--retract-entries", action="store_true", help="retract its entries too (tombstones)")
    si = src_sub.add_parser("import-opml", help="add the feeds of an OPML file",
                            description="Add every feed of an OPML file as a source; feeds already collected "
                                        "are skipped, each with the reason.")
    si.add_argument("file", metavar="FILE")
    si.add_argument("--dry-run", action="store_true", help="show what would be added or skipped; write nothing")
    sx = src_sub.add_parser("export-opml", help="print every source as OPML 2.0",
                            description="Write every http(s) source as OPML 2.0 to standard output (or FILE).")
    sx.add_argument("file", metavar="FILE", nargs="?")
    prt = sub.add_parser("partners", help="partner sites: add them, rotate and revoke their keys, suspend them",
                         description="Partners pull feeds under a profile's terms with a key. Without an action: "
                                     "list them with their keys (never the keys themselves).")
    prt_sub = prt.add_subparsers(dest="partners_command", metavar="ACTION")
    pa = prt_sub.add_parser("add", help="add a partner; its key is printed once, as the last line",
                            description="Add a partner with a profile ([partners.profiles.NAME] in config.toml, "
                                        "or set through the API). Its key is printed once, as the last line; only "
                                        "its hash is stored.")
    pa.add_argument("name", metavar="NAME")
    pa.add_argument("--profile", required=True, help="the profile deciding what its feeds hold")
    pa.add_argument("--contact", default="", help="who to call about it (an e-mail address, say)")
    pr = prt_sub.add_parser("rotate", help="a new key (last line); the others keep working for the overlap",
                            description="Make a new key for NAME, printed once as the last line. Its other keys "
                                        "keep working for --overlap-hours (default 24), then stop.")
    pr.add_argument("name", metavar="NAME")
    pr.add_argument("--overlap-hours", type=int, default=24)
    pv = prt_sub.add_parser("revoke", help="revoke one key now", description="Revoke a partner's key now, by the "
                                                                            "id `feedhub partners` shows.")
    pv.add_argument("name", metavar="NAME")
    pv.add_argument("key_id", metavar="KEY_ID", type=int)
    for action, text in (("suspend", "suspend a partner: every key answers 401 until it is resumed"),
                         ("resume", "resume a suspended partner")):
        prt_sub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".").add_argument(
            "name", metavar="NAME")
    prt_sub.add_parser("profiles", help="list the partner profiles", description="Every partner profile, "
                                                                               "config.toml's and the API's.")
    brk = sub.add_parser("breaking", help="the breaking desk: push an item to the ticker, or take one off",
                         description="Breaking items pushed from the desk are in /feeds/breaking at once.")
    brk_sub = brk.add_subparsers(dest="breaking_command", metavar="ACTION", required=True)
    bp = brk_sub.add_parser("push", help="push a breaking item", description="Push a breaking headline.")
    bp.add_argument("headline", metavar="HEADLINE")
    bp.add_argument("--link", help="the story's URL")
    bp.add_argument("--body", help="a line or two of text")
    bp.add_argument("--edition", help="the edition (default: site.default_edition)")
    bo = brk_sub.add_parser("off", help="take an item off the ticker now",
                            description="Take a breaking item off the ticker, by the entry id the API shows.")
    bo.add_argument("entry_id", metavar="ENTRY_ID", type=int)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, containers, kill): stop exactly as Ctrl-C does."""


#: the stopping signal received, if any: waitress swallows the interrupt it raises and
#: returns normally, so the server commands check this to exit as every command does
_signalled: list[int] = []


def _on_signal(signum: int, frame: object) -> None:
    _signalled.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _raise_if_signalled() -> None:
    if _signalled:
        raise Terminated() if _signalled[-1] == signal.SIGTERM else KeyboardInterrupt()


#: what to do with a reloaded config.toml (set by serve, run and collect --loop)
_reloaders: list[Callable[[Config], None]] = []
_config_file: list[Path] = []


def _on_hangup(signum: int, frame: object) -> None:
    # The reload reads files and the store: not inside a signal handler's frame.
    threading.Thread(target=reload_config, name="reload", daemon=True).start()


def reload_config() -> Config | None:
    """Read config.toml again and hand it to the running parts; an invalid file is refused
    with config's own messages, and the old config keeps running (None)."""
    if not _config_file:
        return None
    try:
        config = load_config(_config_file[0])
    except ConfigError as e:
        log.error("SIGHUP: not reloaded, the running configuration stays: %s", e)
        return None
    for reload in list(_reloaders):
        try:
            reload(config)
        except Exception as e:
            log.error("SIGHUP: reloading failed (%s); the running configuration stays where it was not applied", e)
            return None
    log.info("SIGHUP: reloaded %s (%d sections, %d regions, %d editions, %d sources)", config.path,
             len(config.taxonomy.sections), len(config.taxonomy.regions), len(config.editions), len(config.sources))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored (nohup, &)
            signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGHUP, _on_hangup)
    try:
        _config_file[:] = [config_path_from_env(args.config)]
        config = load_config(_config_file[0])
        if args.command != "check":
            for warning in config.warnings:  # the file works; what it lacks is said at every start
                log.warning("%s: %s", config.path.name, warning)
        return COMMANDS[args.command](config, args)
    except ConfigError as e:
        print(f"feedhub: {e}", file=sys.stderr)
        return 2
    except AuthError as e:  # a bad user name, role or password is bad usage
        print(f"feedhub: {e}", file=sys.stderr)
        return 2
    except StoreError as e:
        print(f"feedhub: store error: {e}", file=sys.stderr)
        return 3
    except FeedhubError as e:
        print(f"feedhub: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print("feedhub: stopped", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:
        # The reader of our output went away (`feedhub sources | head`). Point stdout at
        # nothing, so the interpreter's own flush at exit cannot fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("feedhub: error: the output was closed before everything was written (broken pipe)",
              file=sys.stderr)
        return 1


def open_store(config: Config) -> None:
    """Open (create, migrate) the store and refuse to work on a damaged one (exit 3): SQLite's
    integrity check reads the whole file, so it runs when none has passed for
    ``[store] integrity_check_hours``, not at every start of a command run from cron."""
    store.init_db(config.database_url)
    store.check_integrity(max_age=config.store.integrity_check_hours * 3600)


def cmd_backup(config: Config, args: argparse.Namespace) -> int:
    store.init_db(config.database_url)
    target = Path(args.file)
    if not store.is_sqlite():
        print("feedhub: backup copies SQLite stores; for PostgreSQL use pg_dump, e.g.\n"
              f"  pg_dump --format=custom --file={target} '{store.redact_url(config.database_url)}'",
              file=sys.stderr)
        return 2
    size = store.backup_sqlite(target)
    print(f"backed up {store.redact_url(config.database_url)} to {target} ({size:,} bytes, checked)")
    return 0


def cmd_prune(config: Config, args: argparse.Namespace) -> int:
    from aggregator.collect import prune

    store.init_db(config.database_url)
    if not config.store.keep_days:
        print("retention is off ([store] keep_days = 0 in config.toml): every entry is kept")
        return 0
    store.prepare_index(config.taxonomy.parents)
    report = prune(config, store.aware(store.utcnow()), dry_run=args.dry_run)
    assert report is not None
    verb = "would remove" if args.dry_run else "removed"
    kept = [slug for slug, cov in config.taxonomy.coverage.items() if cov.keep]
    print(f"{verb} {report.removed:,} entr{'y' if report.removed == 1 else 'ies'} published before "
          f"{_when(report.cutoff)} UTC ({config.store.keep_days} days), {report.tombstones:,} of them retracted"
          + (f", in {report.batches} batch(es)" if not args.dry_run and report.batches else ""))
    for edition, count in sorted(report.by_edition.items()):
        print(f"  {edition}: {count:,}")
    if report.removed:
        print(f"  published from {_when(report.oldest)} to {_when(report.newest)} UTC")
    if kept:
        print(f"kept {report.kept:,} older entr{'y' if report.kept == 1 else 'ies'} in dossiers marked keep: "
              f"{', '.join(kept)}")
    return 0


def cmd_users(config: Config, args: argparse.Namespace) -> int:
    from aggregator import auth

    store.init_db(config.database_url)
    action = args.users_command
    if action is None:
        print(format_table([("NAME", "ROLE", "TOKENS", "CREATED (UTC)")] + [
            (u.name, u.role, str(u.tokens), _when(u.created_at)) for u in store.list_users()]))
        return 0
    if action == "add":
        auth.check_user(args.name, args.role)
        password = _read_password()
        store.add_user(args.name, args.role, auth.hash_password(password), store.utcnow())
        print(f"added {args.name} ({args.role}): {auth.ROLES[args.role]}")
        return 0
    if action == "token":
        token = auth.new_token()
        token_id = store.add_token(args.name, args.label, auth.token_digest(token), store.utcnow())
        print(f"token {token_id} for {args.name}{f' ({args.label})' if args.label else ''}; it is shown only now, "
              "store it safely:")
        print(token)
        return 0
    if action == "tokens":
        print(format_table([("ID", "USER", "LABEL", "CREATED (UTC)", "LAST USED (UTC)", "REVOKED (UTC)")] + [
            (str(t.id), t.user, t.label or "-", _when(t.created_at), _when(t.last_used_at), _when(t.revoked_at))
            for t in store.list_tokens(args.name)]))
        return 0
    revoked = store.revoke_token(args.token_id, store.utcnow())
    print(f"token {args.token_id} {'revoked' if revoked else 'was revoked already'}")
    return 0


def _read_password() -> str:
    """The password: asked for twice on a terminal, else the first line of standard input."""
    from aggregator.auth import AuthError

    if sys.stdin.isatty():
        import getpass

        first, again = getpass.getpass("password: "), getpass.getpass("again: ")
        if first != again:
            raise AuthError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_init(config: Config, args: argparse.Namespace) -> int:
    store.init_db(config.database_url)
    known = store.sync_sources(config)
    print(f"store ready at {store.redact_url(config.database_url)} "
          f"(schema version {store.schema_version()}, {known} sources)")
    return 0


class Progress:
    """A live one-line progress bar on a terminal; one plain line per source otherwise."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = self.done = self.new = self.updated = self.failed = 0

    def claimed(self, count: int) -> None:
        """Sources are claimed in batches: the total grows as each batch is taken."""
        self.total += count
        self._draw()

    def update(self, o: SourceOutcome) -> None:
        self.done += 1
        self.new += o.new
        self.updated += o.updated
        self.failed += o.outcome == "error"
        if self.tty:
            self._draw()
        else:
            detail = o.error if o.outcome == "error" else f"{o.new} new, {o.updated} updated"
            print(f"  {o.source:<24} {o.outcome:<13} {detail}", file=self.stream, flush=True)

    def _draw(self) -> None:
        if not self.tty:
            return
        filled = int(self.WIDTH * self.done / self.total) if self.total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} sources  {self.new} new  "
                          f"{self.updated} updated  {self.failed} failed")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def summary_table(summary: CollectSummary) -> str:
    """Per-source results of one collect run, then the totals."""
    header = ("SOURCE", "OUTCOME", "NEW", "UPDATED", "HTTP", "MS", "ERROR")
    rows = [header] + [(o.source, o.outcome, str(o.new), str(o.updated), str(o.status or "-"),
                        str(o.duration_ms), o.error or "") for o in summary.outcomes]
    return "\n".join([format_table(rows), _summary_line(summary)])


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the first is the header) as left-aligned columns two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _summary_line(summary: CollectSummary) -> str:
    return (f"{len(summary.outcomes)} source(s): {summary.new} new, {summary.updated} updated, "
            f"{len(summary.failed)} failed")


def cmd_collect(config: Config, args: argparse.Namespace) -> int:
    open_store(config)
    store.sync_sources(config)
    if args.source:  # (every source's health is read only to check the names asked for)
        known = {h.key for h in store.sources_health()}
        for sid in args.source:
            if sid not in known:
                print(f"feedhub: unknown source {sid!r}; sources: {', '.join(sorted(known))}", file=sys.stderr)
                return 2
    publisher = HubPublisher(config)
    with Collector(config, on_topics=publisher.publish) as collector:
        if args.loop:
            _reloaders.append(collector.reload)
            stop = threading.Event()
            try:
                collector.run_forever(stop)  # logs one line per cycle
            except KeyboardInterrupt:
                stop.set()
            publisher.close()
            return 0
        progress = Progress()
        summary = collector.collect(source_ids=args.source, progress=progress.update,
                                    on_claimed=progress.claimed)
        progress.finish()
    publisher.close()
    print(summary_table(summary))
    # Exit non-zero only when nothing worked: one broken source is news for the health table.
    return 1 if summary.outcomes and len(summary.failed) == len(summary.outcomes) else 0


def _serve(config: Config, host: str, port: int, helpers: list[Any] | None = None) -> None:
    from .app import with_started
    from .server import FeedhubServer, check_free, worker_count

    open_store(config)
    # Once, here, before any worker starts: a store from an older feedhub or a moved subsection
    # is re-indexed by one process, not raced by every worker.
    store.prepare_index(config.taxonomy.parents)
    check_free(host, port, "the feeds")
    if config.admin.enabled and config.admin.address is not None:
        check_free(*config.admin.address, "the admin API ([admin] bind)")
        print(f"serving the admin API on http://{config.admin.bind}/api/v1/", flush=True)

    def reload(new: Config) -> None:
        store.sync_sources(new)
        _, stale = with_started(config, new)
        if stale:
            log.warning("SIGHUP: %s changed in the file; that needs a restart", ", ".join(stale))
    _reloaders.append(reload)
    workers = worker_count(config)
    print(f"serving feeds on http://{host}:{port}/feeds/ with {workers} worker process"
          f"{'es' if workers != 1 else ''} (Ctrl-C stops)", flush=True)
    server = FeedhubServer(config, host, port, reload=reload_config, helpers=helpers)
    try:
        stopped_by = server.run()
    finally:
        _reloaders.remove(reload)
    if stopped_by is not None:
        _signalled.append(stopped_by)
    _raise_if_signalled()


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    _serve(config, args.host or config.server.host, args.port or config.server.port)
    return 0


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    from .server import Helper

    open_store(config)
    publisher = HubPublisher(config)
    try:  # however it stops (Ctrl-C, SIGTERM, an error), the collector gives back its claims
        with Collector(config, on_topics=publisher.publish) as collector:
            progress = Progress()
            summary = collector.collect(progress=progress.update, on_claimed=progress.claimed)
            progress.finish()
    finally:
        publisher.close()
    print(summary_table(summary), flush=True)
    # The first collect is done; from here sources are polled when they fall due, by one
    # collector process beside the web workers (a collector thread in the master would be
    # forked into every worker mid-write).
    argv = [sys.executable, "-m", "web.cli", "--config", str(_config_file[0]), "collect", "--loop"]
    if args.verbose:
        argv.append("-v")
    _serve(config, args.host or config.server.host, args.port or config.server.port,
           helpers=[Helper("collector", argv)])
    return 0


def _found(identifier: str) -> list[store.FoundEntry]:
    from aggregator.normalize import canonical_link

    found = store.find_entries(identifier, canonical_link(identifier) if "://" in identifier else None)
    if not found:
        print(f"feedhub: no entry has the id, guid or link {identifier!r}", file=sys.stderr)
    return found


def cmd_retract(config: Config, args: argparse.Namespace) -> int:
    return _retraction(config, args.entry, "retracted", lambda entry_id, now: admin.retract(
        admin.cli_actor(), entry_id, args.reason, config, now))


def cmd_unretract(config: Config, args: argparse.Namespace) -> int:
    return _retraction(config, args.entry, "published again", lambda entry_id, now: admin.unretract(
        admin.cli_actor(), entry_id, args.reason, config, now))


def _retraction(config: Config, identifier: str, done: str, change: Callable[[int, datetime], admin.Done]) -> int:
    """Retract or publish again the entries known by ``identifier`` (each in the audit log);
    tell the hubs which feeds changed, and the admin what happened."""
    store.init_db(config.database_url)
    found = _found(identifier)
    if not found:
        return 1
    topics: set[str] = set()
    now = store.utcnow()
    for e in found:
        topics |= change(e.id, now).topics
    if not topics:
        print(f"nothing to do: {found[0].title} is already {'retracted' if found[0].retracted else 'published'}")
        return 0
    _tell_hubs(config, topics)
    titles = "; ".join(f"{e.title} (from {e.source})" for e in found)
    print(f"{done} {len(found)} entr{'y' if len(found) == 1 else 'ies'}: {titles} ({len(topics)} feeds changed)")
    return 0


def cmd_rules(config: Config, args: argparse.Namespace) -> int:
    from aggregator.normalize import Context, normalize_entry
    from aggregator.parse import parse_feed

    try:
        source = config.source(args.source)
    except KeyError:  # a source managed in the store
        store.init_db(config.database_url)
        try:
            source = admin.source_config(args.source, config)
        except FeedhubError:
            known = sorted({s.id for s in config.sources} | {h.key for h in store.sources_health()})
            print(f"feedhub: unknown source {args.source!r}; sources: {', '.join(known)}", file=sys.stderr)
            return 2
    if args.file.lower().startswith(("http://", "https://")):
        from aggregator.fetch import Fetcher

        # The collector's own fetcher: the same address guard, size cap and timeouts.
        fetcher = Fetcher(config.collect)
        try:
            result = fetcher.fetch(args.file)
        finally:
            fetcher.close()
        assert result.body is not None  # no validators were sent, so no 304
        feed = parse_feed(result.body, result.url, result.headers.get("Content-Type"))
    else:
        path = Path(args.file)
        try:
            body = path.read_bytes()
        except OSError as e:
            print(f"feedhub: cannot read {path}: {e.strerror}", file=sys.stderr)
            return 1
        feed = parse_feed(body, path.resolve().as_uri())
    ctx = Context.from_config(config)
    now = store.utcnow()
    header = ("#", "KEPT", "SECTION", "REGIONS", "TAGS", "BREAKING", "TITLE", "DECIDED BY")
    rows = [header]
    for n, raw in enumerate(feed.entries, 1):
        entry = normalize_entry(raw, feed, source, ctx, now)
        rows.append((str(n), "no" if entry.dropped else "yes", entry.section or "-", ",".join(entry.regions) or "-",
                     ",".join(t.slug for t in entry.tags) or "-", "yes" if entry.breaking else "no",
                     entry.title[:60], "; ".join(entry.rule_trace) or "source defaults and categories"))
    print(format_table(rows))
    kept = sum(1 for r in rows[1:] if r[1] == "yes")
    print(f"{len(rows) - 1} entries: {kept} kept, {len(rows) - 1 - kept} dropped ({len(source.rules)} rules)")
    return 0


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def cmd_sources(config: Config, args: argparse.Namespace) -> int:
    store.init_db(config.database_url)
    store.sync_sources(config)
    action = getattr(args, "sources_command", None)
    if action is not None:
        return SOURCE_ACTIONS[action](config, args)
    sources = store.sources_health()
    if args.json:
        data = [{
            "id": h.key, "name": h.name, "url": h.url, "kind": h.kind, "enabled": h.enabled, "managed": h.managed,
            "status": h.status, "last_fetched_at": _iso(h.last_fetched_at),
            "last_success_at": _iso(h.last_success_at), "last_status": h.last_status,
            "last_error": h.last_error, "consecutive_failures": h.consecutive_failures,
            "next_due_at": _iso(h.next_due_at), "entries_seen": h.entries_seen,
            "fetch_url": h.fetch_url, "disabled_reason": h.disabled_reason,
            "id_rule": h.id_rule, "id_rule_reason": h.id_rule_reason, "warnings": list(h.warnings),
            "entries_stored": h.entries_stored, "websub": h.websub,
        } for h in sources]
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    header = ("ID", "KIND", "STATUS", "LAST SUCCESS (UTC)", "FAILS", "NEXT DUE (UTC)", "ENTRIES", "MANAGED",
              "LAST ERROR")
    table = [header] + [(h.key, h.kind, h.status, _when(h.last_success_at), str(h.consecutive_failures),
                         _when(h.next_due_at), str(h.entries_stored), h.managed, h.last_error or "")
                        for h in sources]
    print(format_table(table))
    return 0


def _source_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as options, in config.toml's spelling."""
    changes: dict[str, Any] = {}
    for name in ("name", "kind", "edition", "section", "region", "origin", "interval", "breaking", "url"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    if args.tags is not None:
        changes["tags"] = args.tags
    if args.rules:
        import tomllib

        try:
            changes["rules"] = tomllib.loads(Path(args.rules).read_text(encoding="utf-8")).get("rules", [])
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise FeedhubError(f"cannot read rules from {args.rules}: {e}") from None
    return changes


def _changed(what: str, h: store.SourceHealth) -> int:
    state = "collected from a collector's next claim" if h.enabled else "not collected while disabled"
    print(f"{what} source {h.key} ({h.name}): {h.url}; {state}")
    return 0


def _source_add(config: Config, args: argparse.Namespace) -> int:
    from aggregator.fetch import Fetcher

    data = _source_changes(args)
    data["url"] = args.url
    if args.new_id:
        data["id"] = args.new_id
    if not args.no_discover and args.url.lower().startswith(("http://", "https://")):
        fetcher = Fetcher(config.collect)
        try:
            found = admin.discover(args.url, fetcher)
        finally:
            fetcher.close()
        if found.candidates:
            print(f"feedhub: {args.url} announces {len(found.candidates)} feeds; add one of them:", file=sys.stderr)
            for c in found.candidates:
                print(f"  {c.url}  ({c.type}{', ' + c.title if c.title else ''})", file=sys.stderr)
            return 2
        data["url"] = found.feed_url
        data.setdefault("name", (found.title or "").strip()[:150] or found.feed_url)
    return _changed("added", admin.add_source(admin.cli_actor(), data, config, store.utcnow()).result)


def _source_edit(config: Config, args: argparse.Namespace) -> int:
    changes = _source_changes(args)
    if not changes:
        print("feedhub: nothing to change; give --name, --url, --section, ... (see --help)", file=sys.stderr)
        return 2
    return _changed("changed", admin.edit_source(admin.cli_actor(), args.id, changes, config, store.utcnow()).result)


def _source_enable(config: Config, args: argparse.Namespace) -> int:
    enable = args.sources_command == "enable"
    done = admin.set_enabled(admin.cli_actor(), args.id, enable, config, store.utcnow())
    return _changed("enabled" if enable else "disabled", done.result)


def _source_remove(config: Config, args: argparse.Namespace) -> int:
    done = admin.remove_source(admin.cli_actor(), args.id, args.retract_entries, config, store.utcnow())
    _tell_hubs(config, done.topics)
    kept = "its entries were retracted" if args.retract_entries else "its entries stay published"
    print(f"removed source {args.id}; {kept} ({done.result['entries_retracted']} retracted)")
    return 0


def _source_refresh(config: Config, args: argparse.Namespace) -> int:
    admin.refresh_source(admin.cli_actor(), args.id, store.utcnow())
    print(f"queued {args.id}: a running collector (`collect --loop` or `run`) fetches it within seconds")
    return 0


def _source_import(config: Config, args: argparse.Namespace) -> int:
    try:
        body = Path(args.file).read_bytes()
    except OSError as e:
        raise FeedhubError(f"cannot read {args.file}: {e.strerror}") from None
    result = admin.import_opml(admin.cli_actor(), body, config, store.utcnow(), args.dry_run).result
    rows = [("ACTION", "ID", "URL", "REASON")] + [
        (o["action"], o.get("id") or "-", o["url"], o["reason"] or "") for o in result["outlines"]]
    print(format_table(rows))
    verb = "would add" if args.dry_run else "added"
    print(f"{verb} {result['would_add']} source(s), skipped {result['skipped']}"
          + (" (dry run: nothing written)" if args.dry_run else ""))
    return 0


def _source_export(config: Config, args: argparse.Namespace) -> int:
    body = admin.export_opml(config, store.utcnow())
    if args.file:
        Path(args.file).write_bytes(body)
        print(f"wrote {args.file}")
    else:
        sys.stdout.write(body.decode("utf-8"))
    return 0


SOURCE_ACTIONS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "add": _source_add, "edit": _source_edit, "disable": _source_enable, "enable": _source_enable,
    "remove": _source_remove, "refresh": _source_refresh, "import-opml": _source_import,
    "export-opml": _source_export}


def cmd_partners(config: Config, args: argparse.Namespace) -> int:
    store.init_db(config.database_url)
    actor, now, action = admin.cli_actor(), store.utcnow(), args.partners_command
    if action is None:
        rows: list[tuple[str, ...]] = [("NAME", "PROFILE", "STATUS", "CONTACT", "KEYS (ID: STATE, LAST USED)")]
        for partner in store.partners():
            keys = "; ".join(f"{k.id}: {_key_state(k, now)}, {_when(k.last_used_at)}" for k in partner.keys)
            rows.append((partner.name, partner.profile, partner.status, partner.contact or "-", keys or "-"))
        print(format_table(rows))
        return 0
    if action == "profiles":
        stored = store.stored_profiles()
        rows = [("PROFILE", "SET IN", "EDITIONS", "SECTIONS", "TEXT", "DELAY", "LIMIT")]
        for name, p in sorted(admin.profiles(config).items()):
            rows.append((name, "api" if name in stored else config.path.name, ",".join(p.editions) or "all",
                         ",".join(p.sections) or "all", "full" if p.full_text else "summary",
                         f"{p.delay_minutes} min", f"{p.rate_limit}/min" if p.rate_limit else "none"))
        print(format_table(rows))
        return 0
    if action == "add":
        info, key = admin.add_partner(actor, args.name, args.profile, args.contact, config, now).result
        print(f"added partner {info.name} ({info.profile}); its key is shown only now, store it safely. Its feeds: "
              f"{config.server.base_url or ''}/partner/KEY/feeds/latest.atom, its page: /partner/KEY/")
        print(key)
        return 0
    if action == "rotate":
        info, key = admin.rotate_key(actor, args.name, args.overlap_hours, now).result
        print(f"new key for {info.name}; its other keys stop in {args.overlap_hours} h. Shown only now:")
        print(key)
        return 0
    if action == "revoke":
        admin.revoke_partner_key(actor, args.name, args.key_id, now)
        print(f"key {args.key_id} of {args.name} revoked")
        return 0
    status = "suspended" if action == "suspend" else "active"
    admin.edit_partner(actor, args.name, {"status": status}, config, now)
    print(f"partner {args.name} is {status}")
    return 0


def _key_state(k: store.KeyInfo, now: datetime) -> str:
    if k.revoked_at is not None:
        return "revoked"
    if k.expires_at is not None:
        return "expired" if k.expires_at <= store.aware(now) else f"expires {_when(k.expires_at)}"
    return "live"


def cmd_breaking(config: Config, args: argparse.Namespace) -> int:
    store.init_db(config.database_url)
    actor, now = admin.cli_actor(), store.utcnow()
    if args.breaking_command == "push":
        done = admin.push_breaking(actor, args.headline, config, now, link=args.link, body=args.body,
                                   edition=args.edition)
        print(f"pushed entry {done.result.id} to the {done.result.edition} breaking ticker: {done.result.title}")
    else:
        done = admin.take_off_ticker(actor, args.entry_id, config, now)
        print(f"took entry {args.entry_id} off the ticker: {done.result.title}")
    _tell_hubs(config, done.topics)
    return 0


def _tell_hubs(config: Config, topics: set[str]) -> None:
    if topics and config.websub.hubs:
        publisher = HubPublisher(config)
        publisher.publish(topics)
        publisher.close()


def _iso(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    """The config is valid (main reports mistakes, exit 2): print its warnings, one per line."""
    for warning in config.warnings:
        print(f"warning: {warning}")
    print(f"{config.path}: valid; {len(config.warnings)} warning(s)")
    return 0


COMMANDS = {"check": cmd_check, "init": cmd_init,
            "collect": cmd_collect, "serve": cmd_serve, "run": cmd_run, "backup": cmd_backup,
            "prune": cmd_prune, "unretract": cmd_unretract, "users": cmd_users, "breaking": cmd_breaking,
            "partners": cmd_partners,
            "sources": cmd_sources, "retract": cmd_retract, "rules": cmd_rules}

if __name__ == "__main__":
    sys.exit(main())
