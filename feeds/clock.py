"""The one clock feeds are selected, held back (embargo, a partner's delay) and expired by: a
test sets ``clock`` to control time instead of sleeping."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


#: returns aware UTC
clock: Callable[[], datetime] = _utc_now


def now() -> datetime:
    """The current instant, aware UTC."""
    return clock()
