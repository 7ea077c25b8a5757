"""Who may do what: roles, password hashing and API tokens (pure; the store keeps the hashes).

Passwords are hashed with argon2id (memory-hard, via argon2-cffi), so a stolen store
does not give them away cheaply. API tokens are long random strings shown once; the
store keeps only their SHA-256, which is enough for values with 256 bits of entropy
(a memory-hard hash would cost every API request for nothing).
"""
from __future__ import annotations

import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import FeedhubError

#: what each role may do
ROLES: dict[str, str] = {
    "admin": "everything: sources, taxonomy, users, partners, and the desk",
    "editor": "the desk: breaking items, retractions, filing corrections",
    "viewer": "read: sources, health, entries, the audit log",
}
#: passwords shorter than this are refused
MIN_PASSWORD = 10
#: what every token starts with, so one found in a log or a paste is recognisable
TOKEN_PREFIX = "fh_"
#: partner keys look different from API tokens, so one is never mistaken for the other
PARTNER_KEY_PREFIX = "pk_"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


class AuthError(FeedhubError):
    """A user, role, password or token is not acceptable; the message says why."""


def check_user(name: str, role: str) -> None:
    """Raise AuthError unless ``name`` is a valid user name and ``role`` a known role."""
    if not _NAME.match(name):
        raise AuthError(f"user name {name!r}: use 1 to 63 lowercase letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (AuthError if it is too short)."""
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Does ``password`` match the stored hash?"""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A new API token: shown once, then only its digest is kept."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the store keeps of a token, and looks tokens up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_partner_key() -> str:
    """A new partner key: 256 random bits, URL-safe (it is part of the partner's feed URLs)."""
    return PARTNER_KEY_PREFIX + secrets.token_urlsafe(32)
