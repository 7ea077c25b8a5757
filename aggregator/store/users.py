"""Users and their API tokens: only hashes are kept (see aggregator.auth)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import peewee as pw

from ..errors import FeedhubError
from .connection import aware, stored, write_transaction
from .schema import ApiToken, User


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str
    created_at: datetime
    tokens: int  # live (not revoked) tokens


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class UserExists(FeedhubError):
    """A user of that name exists already."""


class NoSuchUser(FeedhubError):
    """No user (or token) has that name (or id)."""


def add_user(name: str, role: str, password_hash: str, when: datetime) -> None:
    """Create a user; UserExists if the name is taken."""
    try:
        with write_transaction():
            User.create(name=name, role=role, password_hash=password_hash, created_at=stored(when))
    except pw.IntegrityError:
        raise UserExists(f"a user named {name!r} exists already") from None


def list_users() -> list[UserInfo]:
    """Every user, by name, with how many live tokens each has."""
    live = dict(ApiToken.select(ApiToken.user, pw.fn.COUNT(ApiToken.id)).where(ApiToken.revoked_at.is_null())
                .group_by(ApiToken.user).tuples())
    return [UserInfo(u.id, u.name, u.role, aware(u.created_at), live.get(u.id, 0))
            for u in User.select().order_by(User.name)]


def add_token(user: str, label: str, digest: str, when: datetime) -> int:
    """Keep a new token's digest for ``user``; returns the token's id (NoSuchUser if none)."""
    with write_transaction():
        row = User.get_or_none(User.name == user)
        if row is None:
            raise NoSuchUser(f"no user named {user!r}; see `feedhub users`")
        return ApiToken.create(user=row.id, label=label, token_hash=digest, created_at=stored(when)).id


def list_tokens(user: str | None = None) -> list[TokenInfo]:
    """Tokens (of ``user``, or everyone's), newest first; revoked ones included, marked."""
    query = ApiToken.select(ApiToken, User.name).join(User)
    if user is not None:
        query = query.where(User.name == user)
    return [TokenInfo(t.id, t.user.name, t.label, aware(t.created_at), aware(t.last_used_at), aware(t.revoked_at))
            for t in query.order_by(ApiToken.id.desc())]


def revoke_token(token_id: int, when: datetime) -> bool:
    """Revoke a token now; False if it was revoked already (NoSuchUser if there is none)."""
    with write_transaction():
        row = ApiToken.get_or_none(ApiToken.id == token_id)
        if row is None:
            raise NoSuchUser(f"no token with id {token_id}; see `feedhub users tokens`")
        if row.revoked_at is not None:
            return False
        ApiToken.update(revoked_at=stored(when)).where(ApiToken.id == token_id).execute()
        return True


def token_user(digest: str, when: datetime) -> UserInfo | None:
    """The user a live token belongs to (noting its use), or None for an unknown or revoked one."""
    found = (ApiToken.select(ApiToken.id, User.id, User.name, User.role, User.created_at).join(User)
             .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_null()).tuples().first())
    if found is None:
        return None
    token_id, user_id, name, role, created = found
    ApiToken.update(last_used_at=stored(when)).where(ApiToken.id == token_id).execute()
    return UserInfo(user_id, name, role, aware(created), 0)


def password_hash(name: str) -> str | None:
    """A user's stored password hash, or None for an unknown user."""
    row = User.get_or_none(User.name == name)
    return row.password_hash if row else None


def set_password(name: str, password_hash: str) -> None:
    """Replace a user's password hash (NoSuchUser if there is none)."""
    with write_transaction():
        if User.update(password_hash=password_hash).where(User.name == name).execute() == 0:
            raise NoSuchUser(f"no user named {name!r}")
