"""Users, roles and API tokens (issue 13, item 2): only hashes are stored; tokens are shown once."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aggregator import auth, store

from .conftest import ROOT, write_config
from .test_cli import FEEDHUB


def users(cfg: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FEEDHUB_CONFIG")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([*FEEDHUB, "--config", str(cfg), "users", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120, cwd=cfg.parent)


def test_users_tokens_and_revocation_through_the_command(tmp_path: Path, db_url: str):
    cfg = write_config(tmp_path, db_url)
    added = users(cfg, "add", "ana", "--role", "editor", stdin="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    made = users(cfg, "token", "ana", "--label", "newsroom CMS")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]  # the last line, for scripts
    assert token.startswith(auth.TOKEN_PREFIX) and len(token) > 40
    listed = users(cfg).stdout.splitlines()
    assert listed[0].split() == ["NAME", "ROLE", "TOKENS", "CREATED", "(UTC)"]
    assert listed[1].split()[:3] == ["ana", "editor", "1"]

    store.init_db(str(load_url(cfg)))
    # Only hashes are stored: the password as argon2id, the token as its SHA-256.
    stored_hash = store.password_hash("ana")
    assert stored_hash is not None and stored_hash.startswith("$argon2id$")
    assert auth.verify_password(stored_hash, "correct horse battery")
    assert not auth.verify_password(stored_hash, "correct horse batterY")
    [row] = list(store.ApiToken.select())
    assert row.token_hash == auth.token_digest(token) and token not in (row.token_hash, row.label)
    # A token names its user, and its use is noted.
    user = store.token_user(auth.token_digest(token), store.utcnow())
    assert user is not None and (user.name, user.role) == ("ana", "editor")
    assert store.list_tokens("ana")[0].last_used_at is not None
    assert store.token_user(auth.token_digest(token + "x"), store.utcnow()) is None
    store.db.close()

    revoked = users(cfg, "revoke", str(row.id))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert "was revoked already" in users(cfg, "revoke", str(row.id)).stdout
    store.init_db(str(load_url(cfg)))
    assert store.token_user(auth.token_digest(token), store.utcnow()) is None  # revoked: no longer lets anyone in
    tokens = users(cfg, "tokens", "ana").stdout.splitlines()
    assert len(tokens) == 2 and tokens[1].split()[0] == str(row.id) and tokens[1].rstrip()[-1].isdigit()


def load_url(cfg: Path) -> str:
    from aggregator.config import load_config

    return load_config(cfg, environ={}).database_url


@pytest.mark.parametrize("args,stdin,message", [
    (["add", "bob", "--role", "boss"], "long enough password\n", "unknown role 'boss'; roles: admin, editor, viewer"),
    (["add", "Bob Smith", "--role", "viewer"], "long enough password\n", "user name 'Bob Smith'"),
    (["add", "bob", "--role", "viewer"], "short\n", "the password must have at least 10 characters"),
])
def test_bad_users_are_refused_with_the_reason(tmp_path: Path, args: list[str], stdin: str, message: str):
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db")
    result = users(cfg, *args, stdin=stdin)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_name_is_taken_once_and_tokens_need_a_user(tmp_path: Path):
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path}/x.db")
    assert users(cfg, "add", "ana", "--role", "admin", stdin="long enough password\n").returncode == 0
    again = users(cfg, "add", "ana", "--role", "viewer", stdin="long enough password\n")
    assert again.returncode == 1 and "a user named 'ana' exists already" in again.stderr
    nobody = users(cfg, "token", "nobody")
    assert nobody.returncode == 1 and "no user named 'nobody'" in nobody.stderr
    missing = users(cfg, "revoke", "99")
    assert missing.returncode == 1 and "no token with id 99" in missing.stderr
