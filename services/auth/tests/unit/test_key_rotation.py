"""Signing-key rotation: the old key stays published (and verifying) until its grace ends."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta

import jwt
import pytest

from automateos_auth import keys as keys_module
from automateos_auth.keys import KeyRing, SigningKey, load_retired, rotate_key
from automateos_auth.settings import AuthSettings
from automateos_common.jsonutil import utcnow


@pytest.fixture
def settings(tmp_path) -> AuthSettings:
    return AuthSettings(data_dir=tmp_path, access_token_ttl_s=600)


def test_rotation_retires_the_old_key_for_the_grace_period(settings, tmp_path):
    ring = KeyRing(settings)
    old = ring.current
    old_token, _ = ring.issue(user_id=1, email="a@example.com", settings=settings)
    now = utcnow()
    retired = rotate_key(settings, now=now)
    assert retired.kid == old.kid
    # Default grace: the access-token lifetime + 300 s (rounded up to the next second).
    assert timedelta(seconds=900) < retired.until - now <= timedelta(seconds=901)
    [path] = (tmp_path / "keys" / "retired").iterdir()
    assert path.name.endswith(f"-{old.kid}.pub.pem") and b"PRIVATE" not in path.read_bytes()
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "auth-signing-key.pem").st_mode) == 0o600

    ring.maybe_reload(force=True)
    new = ring.current
    assert new.kid != old.kid
    assert list(ring.public_keys(now)) == [new.kid, old.kid]
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid, old.kid]
    new_token, _ = ring.issue(user_id=1, email="a@example.com", settings=settings)
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    assert jwt.get_unverified_header(old_token)["kid"] == old.kid
    # After the grace the old key is gone.
    assert list(ring.public_keys(retired.until)) == [new.kid]
    assert list(ring.public_keys(retired.until - timedelta(seconds=1))) == [new.kid, old.kid]


def test_a_running_ring_notices_a_rotation_within_the_check_interval(settings, monkeypatch):
    ring = KeyRing(settings)
    old = ring.current.kid
    rotate_key(settings)
    assert ring.current.kid == old  # not looked yet
    monkeypatch.setattr(keys_module, "RELOAD_CHECK_S", 0.0)
    assert ring.current.kid != old


def test_grace_setting_and_expired_retired_keys_are_pruned(tmp_path):
    settings = AuthSettings(data_dir=tmp_path, auth_key_grace_s=60)
    now = utcnow()
    first = rotate_key(settings, now=now)
    assert timedelta(seconds=60) < first.until - now <= timedelta(seconds=61)
    second = rotate_key(settings, now=now + timedelta(seconds=120))  # the first one's grace is over
    assert [k.kid for k in load_retired(tmp_path / "keys" / "retired")] == [second.kid]


def test_a_key_given_inline_cannot_be_rotated_by_the_command(tmp_path):
    pem = (tmp_path / "k.pem")
    SigningKey.from_settings(AuthSettings(data_dir=tmp_path, auth_private_key_file=None))
    pem.write_bytes((tmp_path / "keys" / "auth-signing-key.pem").read_bytes())
    settings = AuthSettings(data_dir=tmp_path, auth_private_key=pem.read_text())
    with pytest.raises(RuntimeError, match="AUTOMATEOS_AUTH_PRIVATE_KEY"):
        rotate_key(settings)


def test_unreadable_retired_files_are_skipped(settings, tmp_path):
    rotate_key(settings)
    (tmp_path / "keys" / "retired" / "20990101T000000Z-broken.pub.pem").write_text("not a key")
    (tmp_path / "keys" / "retired" / "notes.txt").write_text("ignored")
    assert len(load_retired(tmp_path / "keys" / "retired")) == 1


def test_the_rotate_key_command(tmp_path):
    env = {**os.environ, "AUTOMATEOS_DATA_DIR": str(tmp_path)}
    SigningKey.from_settings(AuthSettings(data_dir=tmp_path))
    before = SigningKey.from_settings(AuthSettings(data_dir=tmp_path)).kid
    r = subprocess.run([sys.executable, "-m", "automateos_auth", "rotate-key", "--grace-s", "120"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"retired key {before}: published until ")
    assert SigningKey.from_settings(AuthSettings(data_dir=tmp_path)).kid != before
    assert "PRIVATE" not in r.stdout + r.stderr
    bad = subprocess.run([sys.executable, "-m", "automateos_auth", "rotate-key", "--grace-s", "-1"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--grace-s must be 0 or more" in bad.stderr
