"""Where credential values live: the `SecretStore` protocol and its database implementation.

Envelope encryption (AES-256-GCM, `cryptography`'s AESGCM), per value:

    value  --AESGCM(data key, random 96-bit nonce, aad)-->  ciphertext
    data key (random 256 bits) --AESGCM(master key, random nonce, aad + key id)-->  wrapped key

The associated data binds the owner id and the credential id, so a ciphertext copied to another
row (another owner, another credential) fails to open. The envelope names the master key (`kid`)
it was wrapped with; several master keys may be configured at once (the first one seals, any of
them opens), which is how `keys rotate` re-wraps every row without downtime.

The database store's reference *is* the sealed envelope (a JSON string kept in the credential's
row); the `aws` store (awsstore.py) keeps the envelope in AWS Secrets Manager and returns the
secret's ARN. Callers pass the row's owner and id with the reference (`SecretRef`), never ones read
from the envelope, so the binding is checked against where the envelope was found.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from .settings import CommonSettings, read_or_create_file

if TYPE_CHECKING:
    from .awsstore import AwsSecretStore

KEY_BYTES = 32
NONCE_BYTES = 12
ENVELOPE_VERSION = 1


class SecretStoreError(Exception):
    """A value could not be sealed or opened (no key, wrong key, tampered or moved envelope)."""


@dataclass(frozen=True)
class SecretRef:
    """A stored value's reference and the row it belongs to (the binding the store checks)."""

    owner_id: int
    credential_id: int
    reference: str


class SecretStore(Protocol):
    def put(self, owner_id: int, credential_id: int, plaintext: bytes) -> str:
        """Store a value; returns the reference to keep in the credential's row."""
        ...

    def get(self, ref: SecretRef) -> bytes:
        """The value; SecretStoreError when it cannot be opened."""
        ...

    def delete(self, ref: SecretRef) -> None:
        """Forget a value (the row itself is deleted by its owner)."""
        ...


@dataclass(frozen=True)
class MasterKey:
    kid: str
    key: bytes


def key_id(key: bytes) -> str:
    """A master key's id: a short fingerprint (names the key in envelopes and logs, reveals nothing of it)."""
    return "mk-" + hashlib.sha256(b"automateos master key id\0" + key).hexdigest()[:12]


def parse_master_key(text: str) -> MasterKey:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretStoreError("a master key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise SecretStoreError(f"a master key must be {KEY_BYTES} bytes (base64 of 32 random bytes), "
                               f"not {len(key)}")
    return MasterKey(key_id(key), key)


def new_master_key_text() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise SecretStoreError("malformed envelope")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SecretStoreError("malformed envelope") from None


def binding(owner_id: int, credential_id: int) -> bytes:
    return f"automateos/credential/v{ENVELOPE_VERSION}/owner={owner_id}/credential={credential_id}".encode()


class Keyring:
    """The configured master keys; the first one seals, any one opens (by the envelope's `kid`)."""

    def __init__(self, keys: Sequence[MasterKey]) -> None:
        if not keys:
            raise SecretStoreError("no master key is configured (AUTOMATEOS_MASTER_KEY or AUTOMATEOS_MASTER_KEYS)")
        self.keys = list(keys)
        self.by_kid = {k.kid: k for k in self.keys}

    @property
    def primary(self) -> MasterKey:
        return self.keys[0]

    def _wrap(self, data_key: bytes, aad: bytes) -> tuple[str, str]:
        mk = self.primary
        nonce = os.urandom(NONCE_BYTES)
        return mk.kid, _b64(nonce + AESGCM(mk.key).encrypt(nonce, data_key, aad + b"/kid=" + mk.kid.encode()))

    def _unwrap(self, kid: str, wrapped: bytes, aad: bytes) -> bytes:
        mk = self.by_kid.get(kid)
        if mk is None:
            raise SecretStoreError(f"the master key {kid} that sealed this value is not configured")
        try:
            return AESGCM(mk.key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                          aad + b"/kid=" + kid.encode())
        except InvalidTag:
            raise SecretStoreError("the value cannot be opened (wrong key, or moved or altered)") from None

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
        kid, wrapped = self._wrap(data_key, aad)
        return orjson.dumps({"v": ENVELOPE_VERSION, "alg": "A256GCM", "kid": kid, "wk": wrapped,
                             "n": _b64(nonce), "ct": _b64(ciphertext)}).decode()

    @staticmethod
    def _parse(envelope: str) -> dict[str, object]:
        try:
            data = orjson.loads(envelope)
        except orjson.JSONDecodeError:
            raise SecretStoreError("malformed envelope") from None
        if not isinstance(data, dict) or data.get("v") != ENVELOPE_VERSION \
                or not all(isinstance(data.get(k), str) for k in ("kid", "wk", "n", "ct")):
            raise SecretStoreError("malformed envelope")
        return data

    def open(self, envelope: str, aad: bytes) -> bytes:
        data = self._parse(envelope)
        data_key = self._unwrap(str(data["kid"]), _unb64(data["wk"]), aad)
        try:
            return AESGCM(data_key).decrypt(_unb64(data["n"]), _unb64(data["ct"]), aad)
        except InvalidTag:
            raise SecretStoreError("the value cannot be opened (wrong key, or moved or altered)") from None

    def envelope_kid(self, envelope: str) -> str:
        return str(self._parse(envelope)["kid"])

    def rewrap(self, envelope: str, aad: bytes) -> str | None:
        """The envelope with its data key wrapped by the primary key; None when it already is.
        The value itself is not decrypted: only the data key is unwrapped and wrapped again."""
        data = self._parse(envelope)
        if data["kid"] == self.primary.kid:
            return None
        data_key = self._unwrap(str(data["kid"]), _unb64(data["wk"]), aad)
        data["kid"], data["wk"] = self._wrap(data_key, aad)
        return orjson.dumps(data).decode()


class RewrappingStore(SecretStore, Protocol):
    """A store `keys rotate` can re-wrap: every store we ship."""

    keyring: Keyring

    def rewrap(self, ref: SecretRef) -> str | None:
        """The new reference once the value's data key is wrapped by the primary key; None when it already is."""
        ...


class DatabaseSecretStore:
    """The default store: the sealed envelope is the reference, kept in the credential's own row."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def put(self, owner_id: int, credential_id: int, plaintext: bytes) -> str:
        return self.keyring.seal(plaintext, binding(owner_id, credential_id))

    def get(self, ref: SecretRef) -> bytes:
        return self.keyring.open(ref.reference, binding(ref.owner_id, ref.credential_id))

    def delete(self, ref: SecretRef) -> None:  # noqa: ARG002 (the protocol's signature)
        return None  # the envelope goes with its row

    def rewrap(self, ref: SecretRef) -> str | None:
        """The reference re-wrapped under the primary master key; None when it already is (`keys rotate`)."""
        return self.keyring.rewrap(ref.reference, binding(ref.owner_id, ref.credential_id))


class SecretSettings(CommonSettings):
    """Master keys and the store, for the services that seal (workflows) or open (engine) values."""

    secret_store: Literal["database", "aws"] = Field(
        default="database",
        description="Where credential values are kept: `database` (envelope-encrypted in the credential's row) or "
                    "`aws` (the envelope in AWS Secrets Manager, the row holding its ARN) (AUTOMATEOS_SECRET_STORE).")
    aws_region: str | None = Field(
        default=None, validation_alias=AliasChoices("AUTOMATEOS_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
        description="AWS region of the `aws` store (AUTOMATEOS_AWS_REGION, else AWS_REGION or AWS_DEFAULT_REGION).")
    aws_endpoint_url: str | None = Field(
        default=None, description="Secrets Manager endpoint instead of AWS's own, e.g. moto or LocalStack "
                                  "(AUTOMATEOS_AWS_ENDPOINT_URL).")
    aws_secret_prefix: str = Field(
        default="automateos/", min_length=1, max_length=256, pattern=r"^[A-Za-z0-9/_+=.@-]+$",
        description="Start of every secret's name: `<prefix><owner id>/<credential id>` "
                    "(AUTOMATEOS_AWS_SECRET_PREFIX).")
    aws_secret_recovery_days: int = Field(
        default=7, ge=0, le=30,
        description="Recovery window of a deleted credential's secret, 7-30 days; 0 deletes it at once, with no "
                    "recovery (AUTOMATEOS_AWS_SECRET_RECOVERY_DAYS).")
    master_key: SecretStr | None = Field(
        default=None, description="Base64 of the 32-byte master key (AUTOMATEOS_MASTER_KEY).")
    master_keys: SecretStr | None = Field(
        default=None,
        description="Several master keys during a rotation: comma-separated base64 keys, the new one first; it "
                    "seals new values, every one opens (AUTOMATEOS_MASTER_KEYS).")
    master_key_file: Path | None = Field(
        default=None,
        description="A file holding the master key (or one key a line, the new one first): the compose secret "
                    "(AUTOMATEOS_MASTER_KEY_FILE).")

    @field_validator("secret_store", mode="before")
    @classmethod
    def _known_store(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in ("database", "aws"):
            raise ValueError(f"AUTOMATEOS_SECRET_STORE must be 'database' or 'aws', not {v!r}")
        return v

    @model_validator(mode="after")
    def _store_settings(self) -> SecretSettings:
        if self.secret_store == "aws" and not (self.aws_region or "").strip():
            raise ValueError("AUTOMATEOS_SECRET_STORE=aws needs a region: set AUTOMATEOS_AWS_REGION "
                             "(or AWS_REGION / AWS_DEFAULT_REGION)")
        if 0 < self.aws_secret_recovery_days < 7:
            raise ValueError("AUTOMATEOS_AWS_SECRET_RECOVERY_DAYS must be 0 (delete at once) or 7-30 "
                             "(AWS's recovery window)")
        return self

    def keyring(self, data_dir: Path) -> Keyring:
        """The configured keys (AUTOMATEOS_MASTER_KEYS, then _KEY, then _KEY_FILE, in that order when several
        are set); with none, a dev key generated into the data folder on first use."""
        texts: list[str] = []
        if self.master_keys is not None:
            texts += self.master_keys.get_secret_value().split(",")
        if self.master_key is not None:
            texts.append(self.master_key.get_secret_value())
        if self.master_key_file is not None:
            try:
                texts += self.master_key_file.read_text().splitlines()
            except OSError as exc:
                raise SecretStoreError(f"cannot read AUTOMATEOS_MASTER_KEY_FILE: {exc.strerror}") from None
        if not texts:
            texts = read_or_create_file(data_dir / "master-key", new_master_key_text).splitlines()
        keys: list[MasterKey] = []
        for text in texts:
            if text.strip():
                key = parse_master_key(text)
                if key.kid not in {k.kid for k in keys}:
                    keys.append(key)
        return Keyring(keys)

    def make_secret_store(self, data_dir: Path) -> DatabaseSecretStore | AwsSecretStore:
        """The configured store (AUTOMATEOS_SECRET_STORE): the one factory of workflows and the engine."""
        keyring = self.keyring(data_dir)
        if self.secret_store == "aws":
            from .awsstore import AwsSecretStore

            assert self.aws_region is not None  # checked when the settings were read
            return AwsSecretStore(keyring, region=self.aws_region.strip(), prefix=self.aws_secret_prefix,
                                  recovery_days=self.aws_secret_recovery_days, endpoint_url=self.aws_endpoint_url)
        return DatabaseSecretStore(keyring)
