"""The `aws` secret store: sealed envelopes kept in AWS Secrets Manager, the row holding the secret's ARN.

Our envelope encryption stays on top of AWS's own (KMS) encryption: the value stored in AWS is the
sealed envelope (`SecretString`), so AWS never sees a plaintext, the master keys still decide who can
open a value, and the owner/credential binding (the envelope's associated data) still holds. On top of
that, `get` checks that the secret behind the row's ARN carries the name of that row's owner and
credential, so an ARN copied into another row is refused before anything is opened.

One secret per credential, named `<prefix><owner id>/<credential id>` and tagged with both ids; a new
value (rotation) is a new version of the same secret (same ARN). boto3 finds credentials its usual way
(environment, profile, instance or task role); only the region and, for moto or LocalStack, an endpoint
URL are ours to configure.
"""

from __future__ import annotations

from typing import Any

from .secretstore import Keyring, SecretRef, SecretStoreError, binding

TAG_OWNER = "automateos:owner_id"
TAG_CREDENTIAL = "automateos:credential_id"


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "") or type(exc).__name__)
    return type(exc).__name__


class AwsSecretStore:
    """Envelopes in AWS Secrets Manager; the credential's row keeps the secret's ARN."""

    def __init__(self, keyring: Keyring, *, region: str, prefix: str = "automateos/", recovery_days: int = 7,
                 endpoint_url: str | None = None, client: Any = None) -> None:
        self.keyring = keyring
        self.prefix = prefix
        self.recovery_days = recovery_days
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:  # the `aws` extra is not installed
                raise SecretStoreError("AUTOMATEOS_SECRET_STORE=aws needs boto3: "
                                       "pip install 'automateos-common[aws]'") from None
            # Creating a client reads no credential and opens no connection: the first call does.
            client = boto3.session.Session().client(
                "secretsmanager", region_name=region, endpoint_url=endpoint_url,
                config=Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}))
        self.client = client

    def secret_name(self, owner_id: int, credential_id: int) -> str:
        return f"{self.prefix}{owner_id}/{credential_id}"

    def _call(self, what: str, ref_name: str, method: str, **kwargs: Any) -> dict[str, Any]:
        """One Secrets Manager call; its failures as SecretStoreError naming the secret and AWS's error code
        (never the request, which may carry an envelope)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result: dict[str, Any] = getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code == "ResourceNotFoundException":
                raise SecretStoreError(f"{what}: the secret {ref_name} does not exist in AWS Secrets Manager") \
                    from None
            raise SecretStoreError(f"{what}: AWS Secrets Manager refused ({code}) for {ref_name}") from None
        except BotoCoreError as exc:  # no credentials, endpoint unreachable, timeouts ...
            raise SecretStoreError(f"{what}: AWS Secrets Manager is unreachable ({type(exc).__name__})") from None
        return result

    def _store(self, name: str, envelope: str, owner_id: int, credential_id: int) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            created: dict[str, Any] = self.client.create_secret(
                Name=name, SecretString=envelope, Description="AutomateOS credential (sealed envelope)",
                Tags=[{"Key": TAG_OWNER, "Value": str(owner_id)}, {"Key": TAG_CREDENTIAL, "Value": str(credential_id)}])
            return str(created["ARN"])
        except ClientError as exc:
            code = _code(exc)
            # AWS answers InvalidRequestException for a name scheduled for deletion (moto: ResourceExists).
            if code not in ("ResourceExistsException", "InvalidRequestException"):
                raise SecretStoreError(f"store: AWS Secrets Manager refused ({code}) for {name}") from None
        except BotoCoreError as exc:
            raise SecretStoreError(f"store: AWS Secrets Manager is unreachable ({type(exc).__name__})") from None
        if "DeletedDate" in self._call("store", name, "describe_secret", SecretId=name):
            # A former credential with the same owner and id (SQLite reuses the highest id after a delete)
            # whose secret waits out its recovery window: bring it back and give it the new value.
            self._call("store", name, "restore_secret", SecretId=name)
        put = self._call("store", name, "put_secret_value", SecretId=name, SecretString=envelope)
        return str(put["ARN"])

    def put(self, owner_id: int, credential_id: int, plaintext: bytes) -> str:
        envelope = self.keyring.seal(plaintext, binding(owner_id, credential_id))
        return self._store(self.secret_name(owner_id, credential_id), envelope, owner_id, credential_id)

    def _envelope(self, ref: SecretRef) -> str:
        if not ref.reference.startswith("arn:") or ":secretsmanager:" not in ref.reference:
            raise SecretStoreError("the credential's reference is not an AWS Secrets Manager ARN "
                                   "(was it stored with AUTOMATEOS_SECRET_STORE=database?)")
        got = self._call("read", ref.reference, "get_secret_value", SecretId=ref.reference)
        if got.get("Name") != self.secret_name(ref.owner_id, ref.credential_id):
            raise SecretStoreError("the secret behind this credential's ARN belongs to another credential")
        envelope = got.get("SecretString")
        if not isinstance(envelope, str):
            raise SecretStoreError("the secret behind this credential's ARN holds no sealed envelope")
        return envelope

    def get(self, ref: SecretRef) -> bytes:
        return self.keyring.open(self._envelope(ref), binding(ref.owner_id, ref.credential_id))

    def delete(self, ref: SecretRef) -> None:
        if not ref.reference.startswith("arn:"):
            return None  # nothing was ever stored in AWS for this row
        window: dict[str, Any] = ({"ForceDeleteWithoutRecovery": True} if self.recovery_days == 0
                                  else {"RecoveryWindowInDays": self.recovery_days})
        try:
            self._call("delete", ref.reference, "delete_secret", SecretId=ref.reference, **window)
        except SecretStoreError as exc:
            if "does not exist" not in str(exc):
                raise
        return None

    def rewrap(self, ref: SecretRef) -> str | None:
        """A new version of the secret with its data key wrapped by the primary master key; None when it already
        is (`keys rotate`). The value is not decrypted: only its data key is unwrapped and wrapped again."""
        envelope = self._envelope(ref)
        rewrapped = self.keyring.rewrap(envelope, binding(ref.owner_id, ref.credential_id))
        if rewrapped is None:
            return None
        put = self._call("re-wrap", ref.reference, "put_secret_value", SecretId=ref.reference,
                         SecretString=rewrapped)
        return str(put["ARN"])
