"""Partners, their keys (only hashes are kept) and the profiles set through the API."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee as pw

from ..errors import Conflict, NotFound
from .connection import aware, db, savepoint, stored
from .schema import Partner, PartnerKey, StoredProfile


@dataclass(frozen=True)
class KeyInfo:
    id: int
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class PartnerInfo:
    id: int
    name: str
    contact: str
    profile: str
    status: str
    created_at: datetime
    keys: tuple[KeyInfo, ...] = ()


def _info(p: Partner, keys: list[KeyInfo]) -> PartnerInfo:
    return PartnerInfo(p.id, p.name, p.contact, p.profile, p.status, aware(p.created_at), tuple(keys))


def _keys(partner_ids: list[int]) -> dict[int, list[KeyInfo]]:
    out: dict[int, list[KeyInfo]] = {}
    for k in PartnerKey.select().where(PartnerKey.partner.in_(partner_ids)).order_by(PartnerKey.id.desc()):
        out.setdefault(k.partner_id, []).append(KeyInfo(k.id, aware(k.created_at), aware(k.expires_at),
                                                        aware(k.revoked_at), aware(k.last_used_at)))
    return out


def add_partner(name: str, contact: str, profile: str, digest: str, when: datetime) -> PartnerInfo:
    """A new partner with its first key (inside the caller's transaction)."""
    try:
        with savepoint():
            partner_id = Partner.insert(name=name, contact=contact, profile=profile, status="active",
                                        created_at=stored(when)).execute()
    except pw.IntegrityError:
        raise Conflict(f"a partner named {name!r} exists already", field="name") from None
    PartnerKey.insert(partner=partner_id, key_hash=digest, created_at=stored(when)).execute()
    return partner(name)


def partners() -> list[PartnerInfo]:
    """Every partner, by name, with its keys (newest first)."""
    rows = list(Partner.select().order_by(Partner.name))
    keys = _keys([p.id for p in rows])
    return [_info(p, keys.get(p.id, [])) for p in rows]


def partner(name: str) -> PartnerInfo:
    """One partner with its keys (NotFound if none)."""
    p = Partner.get_or_none(Partner.name == name)
    if p is None:
        raise NotFound(f"no partner {name!r}; GET /api/v1/partners (or `feedhub partners`) lists them")
    return _info(p, _keys([p.id]).get(p.id, []))


def update_partner(partner_id: int, fields: dict[str, Any]) -> None:
    Partner.update(**fields).where(Partner.id == partner_id).execute()


def add_key(partner_id: int, digest: str, when: datetime, retire_others_at: datetime | None) -> int:
    """A new key; the partner's other live keys keep working until ``retire_others_at`` (the
    rotation's overlap), or for ever when None."""
    if retire_others_at is not None:
        PartnerKey.update(expires_at=stored(retire_others_at)).where(
            PartnerKey.partner == partner_id, PartnerKey.revoked_at.is_null(),
            PartnerKey.expires_at.is_null() | (PartnerKey.expires_at > stored(retire_others_at))).execute()
    return PartnerKey.insert(partner=partner_id, key_hash=digest, created_at=stored(when)).execute()


def revoke_key(partner_id: int, key_id: int, when: datetime) -> bool:
    """Revoke one of the partner's keys now; False if it was revoked already."""
    row = PartnerKey.get_or_none(PartnerKey.id == key_id, PartnerKey.partner == partner_id)
    if row is None:
        raise NotFound(f"the partner has no key {key_id}")
    if row.revoked_at is not None:
        return False
    PartnerKey.update(revoked_at=stored(when)).where(PartnerKey.id == key_id).execute()
    return True


@dataclass(frozen=True)
class KeyHolder:
    """Who a live key belongs to."""

    key_id: int
    partner_id: int
    name: str
    profile: str


def key_holder(digest: str, when: datetime) -> KeyHolder | None:
    """The active partner a live key belongs to (not revoked, not past its overlap), or None."""
    # Plain SQL: asked on every partner request, and building it through peewee cost more than
    # the indexed lookup itself.
    k, p, param = PartnerKey._meta.table_name, Partner._meta.table_name, db.obj.param
    row = db.obj.execute_sql(
        f"SELECT k.id, p.id, p.name, p.profile FROM {k} k JOIN {p} p ON p.id = k.partner_id "
        f"WHERE k.key_hash = {param} AND k.revoked_at IS NULL AND p.status = 'active' "
        f"AND (k.expires_at IS NULL OR k.expires_at > {param})", (digest, stored(when))).fetchone()
    return KeyHolder(*row) if row else None


def note_key_use(key_ids: list[int], when: datetime) -> None:
    """Record when keys were last used (written in batches, off the request path)."""
    if key_ids:
        PartnerKey.update(last_used_at=stored(when)).where(PartnerKey.id.in_(sorted(set(key_ids)))).execute()


def stored_profiles() -> dict[str, dict[str, Any]]:
    """Profiles set through the API: name -> settings."""
    return {name: json.loads(text) for name, text in stored_profile_texts().items()}


def stored_profile_texts() -> dict[str, str]:
    """Profiles set through the API: name -> settings as stored (JSON text), in one plain query
    (asked on every partner request)."""
    return dict(db.obj.execute_sql(f"SELECT name, settings FROM {StoredProfile._meta.table_name}").fetchall())


def put_profile(name: str, settings: dict[str, Any], when: datetime) -> None:
    StoredProfile.insert(name=name, settings=json.dumps(settings, sort_keys=True), updated_at=stored(when)
                         ).on_conflict(conflict_target=[StoredProfile.name],
                                       update={StoredProfile.settings: json.dumps(settings, sort_keys=True),
                                               StoredProfile.updated_at: stored(when)}).execute()


def delete_profile(name: str) -> bool:
    return StoredProfile.delete().where(StoredProfile.name == name).execute() > 0


def profile_in_use(name: str) -> list[str]:
    """Names of the partners using a profile."""
    return [n for (n,) in Partner.select(Partner.name).where(Partner.profile == name).tuples()]
