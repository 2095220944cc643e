"""Envelope encryption of credential values: binding, tampering, wrong keys, master-key rotation."""

from __future__ import annotations

import base64

import orjson
import pytest

from automateos_common.secretstore import (
    DatabaseSecretStore,
    Keyring,
    SecretRef,
    SecretSettings,
    SecretStoreError,
    new_master_key_text,
    parse_master_key,
)

VALUE = b'{"token": "ghp_s3cret-value"}'


def store(*texts: str) -> DatabaseSecretStore:
    return DatabaseSecretStore(Keyring([parse_master_key(t) for t in texts]))


def test_round_trip_and_nothing_in_clear() -> None:
    s = store(new_master_key_text())
    ref = s.put(7, 42, VALUE)
    assert b"s3cret" not in ref.encode()
    assert s.get(SecretRef(7, 42, ref)) == VALUE
    env = orjson.loads(ref)
    assert env["alg"] == "A256GCM"
    assert len(base64.b64decode(env["n"])) == 12
    assert s.put(7, 42, VALUE) != ref  # a fresh data key and nonce each time


@pytest.mark.parametrize(("owner", "cred"), [(8, 42), (7, 43)])
def test_an_envelope_moved_to_another_row_does_not_open(owner: int, cred: int) -> None:
    s = store(new_master_key_text())
    ref = s.put(7, 42, VALUE)
    with pytest.raises(SecretStoreError, match="cannot be opened"):
        s.get(SecretRef(owner, cred, ref))


@pytest.mark.parametrize("part", ["ct", "n", "wk"])
def test_a_tampered_envelope_does_not_open(part: str) -> None:
    s = store(new_master_key_text())
    env = orjson.loads(s.put(1, 1, VALUE))
    raw = bytearray(base64.b64decode(env[part]))
    raw[-1] ^= 1
    env[part] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SecretStoreError):
        s.get(SecretRef(1, 1, orjson.dumps(env).decode()))


def test_a_wrong_key_does_not_open() -> None:
    ref = store(new_master_key_text()).put(1, 1, VALUE)
    with pytest.raises(SecretStoreError, match="is not configured"):
        store(new_master_key_text()).get(SecretRef(1, 1, ref))
    # Same key id claimed, other key material: GCM refuses it.
    env = orjson.loads(ref)
    other = parse_master_key(new_master_key_text())
    forged = Keyring([type(other)(env["kid"], other.key)])
    with pytest.raises(SecretStoreError, match="cannot be opened"):
        DatabaseSecretStore(forged).get(SecretRef(1, 1, ref))


@pytest.mark.parametrize("bad", ["", "not json", "{}", '{"v": 1, "kid": "x"}'])
def test_a_malformed_envelope_is_an_error(bad: str) -> None:
    with pytest.raises(SecretStoreError):
        store(new_master_key_text()).get(SecretRef(1, 1, bad))


def test_master_keys_must_be_32_bytes_of_base64() -> None:
    with pytest.raises(SecretStoreError, match="32 bytes"):
        parse_master_key(base64.b64encode(b"short").decode())
    with pytest.raises(SecretStoreError, match="base64"):
        parse_master_key("%%%")


def test_rotation_both_keys_open_during_it_and_the_old_one_is_unneeded_after() -> None:
    old, new = new_master_key_text(), new_master_key_text()
    before = store(old)
    refs = {(1, i): before.put(1, i, VALUE + str(i).encode()) for i in range(3)}
    during = store(new, old)  # the new key first: it seals; both open
    written_during = during.put(1, 99, b"new")
    assert orjson.loads(written_during)["kid"] == during.keyring.primary.kid
    for (owner, cred), ref in refs.items():
        assert during.get(SecretRef(owner, cred, ref)) == VALUE + str(cred).encode()
    # Re-wrap one row, as an interrupted `keys rotate` would have, then all of them (idempotent).
    first = during.rewrap(SecretRef(1, 0, refs[(1, 0)]))
    assert first is not None
    refs[(1, 0)] = first
    for key, ref in list(refs.items()):
        again = during.rewrap(SecretRef(*key, ref))
        if key == (1, 0):
            assert again is None
        else:
            assert again is not None
            assert orjson.loads(again)["ct"] == orjson.loads(ref)["ct"]  # only the data key is re-wrapped
            refs[key] = again
    assert during.rewrap(SecretRef(1, 99, written_during)) is None
    after = store(new)  # the old key removed
    for (owner, cred), ref in refs.items():
        assert after.get(SecretRef(owner, cred, ref)) == VALUE + str(cred).encode()
    assert after.get(SecretRef(1, 99, written_during)) == b"new"
    with pytest.raises(SecretStoreError):
        store(old).get(SecretRef(1, 1, refs[(1, 1)]))


def test_settings_order_and_dev_key(tmp_path) -> None:
    a, b = new_master_key_text(), new_master_key_text()
    ring = SecretSettings(master_keys=f"{a}, {b}").keyring(tmp_path)
    assert [k.key for k in ring.keys] == [parse_master_key(a).key, parse_master_key(b).key]
    f = tmp_path / "mk"
    f.write_text(b + "\n")
    assert SecretSettings(master_key_file=f).keyring(tmp_path).primary.key == parse_master_key(b).key
    dev = SecretSettings().keyring(tmp_path / "data")
    assert (tmp_path / "data" / "master-key").stat().st_mode & 0o777 == 0o600
    assert SecretSettings().keyring(tmp_path / "data").primary == dev.primary  # generated once, then read


def test_keys_come_from_the_environment(tmp_path, monkeypatch) -> None:
    a, b = new_master_key_text(), new_master_key_text()
    monkeypatch.setenv("AUTOMATEOS_MASTER_KEY", a)
    assert SecretSettings().keyring(tmp_path).primary.key == parse_master_key(a).key
    monkeypatch.setenv("AUTOMATEOS_MASTER_KEYS", f"{b},{a}")
    assert [k.key for k in SecretSettings().keyring(tmp_path).keys] == [parse_master_key(b).key,
                                                                       parse_master_key(a).key]
    assert not (tmp_path / "master-key").exists()  # configured keys: no dev key generated


def test_the_store_is_chosen_and_checked_when_the_settings_are_read(monkeypatch, tmp_path) -> None:
    from pydantic import ValidationError

    from automateos_common.awsstore import AwsSecretStore

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AUTOMATEOS_AWS_REGION", "AUTOMATEOS_SECRET_STORE"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(SecretSettings().make_secret_store(tmp_path), DatabaseSecretStore)
    monkeypatch.setenv("AUTOMATEOS_SECRET_STORE", "vault")
    with pytest.raises(ValidationError, match="AUTOMATEOS_SECRET_STORE must be 'database' or 'aws', not 'vault'"):
        SecretSettings()
    monkeypatch.setenv("AUTOMATEOS_SECRET_STORE", "aws")
    with pytest.raises(ValidationError, match="AUTOMATEOS_SECRET_STORE=aws needs a region"):
        SecretSettings()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")  # boto3's usual variables count
    assert SecretSettings().aws_region == "eu-central-1"
    monkeypatch.setenv("AUTOMATEOS_AWS_REGION", "us-west-2")  # ours first
    settings = SecretSettings()
    assert settings.aws_region == "us-west-2"
    store = settings.make_secret_store(tmp_path)
    assert isinstance(store, AwsSecretStore)
    assert store.client.meta.region_name == "us-west-2"  # no AWS call: a client is made without one
    assert store.secret_name(3, 9) == "automateos/3/9"
    monkeypatch.setenv("AUTOMATEOS_AWS_SECRET_RECOVERY_DAYS", "3")
    with pytest.raises(ValidationError, match=r"must be 0 \(delete at once\) or 7-30"):
        SecretSettings()
