"""The one exception hierarchy of feedhub.

Foreign errors (urllib3, feedparser, peewee, tomllib) are wrapped at the
boundary where they occur (``raise FetchError(...) from e``) so that callers
only ever need to know these classes.
"""
from __future__ import annotations


class FeedhubError(Exception):
    """Base of every error feedhub raises on purpose."""


class ConfigError(FeedhubError):
    """config.toml is unreadable or invalid; ``problems`` lists every mistake found."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s) in the configuration:\n{lines}")


class SourceError(FeedhubError):
    """A problem with one source; recorded on the source, never fatal to the others."""

    #: short machine-readable class shown in the fetch log and health table
    kind = "error"


class FetchError(SourceError):
    """Retrieving a source failed (network, HTTP status, size, refused location).

    ``kind`` says which (fetch, timeout, too-large, gone, throttled, challenge,
    blocked) because the collector reacts differently: a 410 disables the
    source, a 429/503 waits for ``retry_after`` seconds, the rest back off.
    """

    kind = "fetch"

    def __init__(self, message: str, status: int | None = None, kind: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        if kind is not None:
            self.kind = kind


class ParseError(SourceError):
    """A source's body is not a feed we can read."""

    kind = "parse"


class StoreError(FeedhubError):
    """The store could not be opened, created or written."""


class StoreUnavailable(StoreError):
    """The store stopped answering (connection lost and not regained, locked too long)."""


class StoreDamaged(StoreError):
    """The store's files are corrupt: restore a backup."""


class StoreFull(FeedhubError):
    """The store has no room left (disk or quota full); the command fails (exit 1), the store
    stays intact, and the next run after space is freed collects everything."""


class ClaimLost(SourceError):
    """Another collector took over a source while this one was still working on it (its
    lease ran out); nothing is written for it by this collector."""

    kind = "claim-lost"


class RequestError(FeedhubError):
    """A client asked for something wrong; ``status`` is the HTTP status to answer."""

    status = 400


class BadRequest(RequestError):
    """A query parameter or path part has a bad value."""

    status = 400


class NotFound(RequestError):
    """An unknown feed, slug or edition."""

    status = 404


class Unauthorized(RequestError):
    """No credentials, or wrong ones."""

    status = 401


class Forbidden(RequestError):
    """The caller is known, and their role may not do this."""

    status = 403


class TooManyRequests(RequestError):
    """Past a request limit; ``retry_after``: whole seconds to wait."""

    status = 429

    def __init__(self, message: str, retry_after: float):
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(message)


class Conflict(RequestError):
    """The request clashes with what is stored (a taken id or URL, a source config.toml owns)."""

    status = 409

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class Invalid(RequestError):
    """A request body with wrong fields; ``problems`` names each one: (field, message)."""

    status = 422

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.problems))


def describe_failure(e: BaseException) -> str:
    """A sentence for an unexpected failure while reading a feed, for the source's health table
    (which admins read): never an exception's repr. The details belong in the log."""
    if isinstance(e, RecursionError):
        return "the feed is nested too deeply to read (a hostile or broken document)"
    if isinstance(e, MemoryError):
        return "the feed needs more memory than a parser may use (a hostile or broken document)"
    if isinstance(e, UnicodeError):
        return "the feed's text could not be decoded (its character encoding is broken)"
    return "an internal error stopped feedhub from reading this feed; the details are in the collector's log"
