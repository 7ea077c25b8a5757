"""Token buckets kept in the store, so that every web process shares one allowance per key."""
from __future__ import annotations

import peewee as pw

from .connection import db, write_transaction
from .schema import RateBucket


def take_tokens(key: str, cost: float, rate: float, capacity: float, now: float, force: bool = False) -> float:
    """Take ``cost`` tokens from the bucket ``key`` (refilled at ``rate`` a second up to
    ``capacity``; a new bucket starts full). Returns 0 when taken, else the seconds until
    there would be enough; nothing is taken then (``force``: taken all the same, the bucket
    going into debt: the rest of a cost learnt after answering). One short write transaction (on
    PostgreSQL the row is locked, so concurrent processes take turns on it)."""
    with write_transaction():
        sql = f"SELECT tokens, updated FROM {RateBucket._meta.table_name} WHERE key = {db.obj.param}"
        if isinstance(db.obj, pw.PostgresqlDatabase):
            sql += " FOR UPDATE"
        row = db.obj.execute_sql(sql, (key,)).fetchone()
        tokens = capacity if row is None else min(capacity, row[0] + max(0.0, now - row[1]) * rate)
        if tokens < cost and not force:
            return (cost - tokens) / rate if rate > 0 else 60.0
        if row is None:
            RateBucket.insert(key=key, tokens=tokens - cost, updated=now).on_conflict(
                conflict_target=[RateBucket.key],
                update={RateBucket.tokens: tokens - cost, RateBucket.updated: now}).execute()
        else:
            RateBucket.update(tokens=tokens - cost, updated=now).where(RateBucket.key == key).execute()
        return 0.0
