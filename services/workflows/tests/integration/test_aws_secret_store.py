"""AUTOMATEOS_SECRET_STORE=aws against moto's server mode (a real HTTP process on loopback, no internet), on
real Redis and SQLite/PostgreSQL: the row holds only the secret's ARN, AWS holds only our sealed envelope, a
new value is a new version of the same secret, the engine opens it, a moved ARN or envelope does not open,
`keys rotate` re-wraps the envelopes inside AWS, and a missing secret is a clear error."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import httpx
import pytest
from services.workflows.tests.conftest import service_settings
from services.workflows.tests.factories import ServiceClient, ThreadedServer, token_verifier
from sqlmodel import Session

from automateos_common.awsstore import TAG_CREDENTIAL, TAG_OWNER, AwsSecretStore
from automateos_common.errors import NodeExecutionError
from automateos_common.secretstore import SecretRef, SecretSettings, SecretStoreError, new_master_key_text
from automateos_engine.credentials import CredentialSource
from automateos_engine.settings import EngineSettings
from automateos_workflows import credentials as crud
from automateos_workflows.__main__ import main
from automateos_workflows.keys import rotate
from automateos_workflows.main import create_app
from automateos_workflows.models import Credential
from automateos_workflows.schemas import CredentialCreate
from automateos_workflows.settings import WorkflowsSettings, get_settings

pytestmark = pytest.mark.integration

OWNER, OTHER = 1, 2
TOKEN = "ghp_0123456789abcdefSECRET"
REGION = "eu-west-1"


@pytest.fixture
def aws(aws_env: str):
    return boto3.client("secretsmanager", region_name=REGION, endpoint_url=aws_env)


@pytest.fixture
def aws_service(tmp_path, db_url, redis_client, aws_env) -> Iterator[ServiceClient]:
    kwargs = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    settings = service_settings(tmp_path, db_url, redis_url, secret_store="aws", aws_region=REGION,
                                aws_endpoint_url=aws_env, aws_secret_recovery_days=7)
    app = create_app(settings)
    app.dependency_overrides[get_settings] = lambda: settings
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url, trust_env=False) as client:
        app.state.token_verifier = token_verifier(settings)
        yield ServiceClient(client=client, app=app, settings=settings, redis=redis_client)


def create(service: ServiceClient, user: int = OWNER, **body: object) -> httpx.Response:
    body = {"name": "github", "type": "bearer", "data": {"token": TOKEN}, **body}
    return service.client.post("/api/v1/credentials", json=body, headers=service.headers(user))


def row(service: ServiceClient, cid: int) -> Credential:
    with Session(service.engine) as session:
        cred = session.get(Credential, cid)
        assert cred is not None
        return cred


def engine_source(service: ServiceClient, aws_env: str) -> CredentialSource:
    """The engine's side, configured as an operator would: same master key (the data folder's), same store."""
    settings = EngineSettings.model_validate({"data_dir": service.settings.data_dir, "secret_store": "aws",
                                              "aws_region": REGION, "aws_endpoint_url": aws_env})
    return CredentialSource(str(service.client.base_url), "internal-test",
                            settings.make_secret_store(settings.data_dir), client=service.client)


def test_create_get_update_delete(aws_service: ServiceClient, aws, aws_env):
    r = create(aws_service)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert TOKEN not in r.text
    ref = row(aws_service, cid).secret_ref
    # The row holds only the ARN: no envelope, no ciphertext.
    assert ref.startswith(f"arn:aws:secretsmanager:{REGION}:") and ref.endswith(f":secret:automateos/{OWNER}/{cid}-"
                                                                                 f"{ref.rsplit('-', 1)[1]}")
    assert "{" not in ref and '"ct"' not in ref
    described = aws.describe_secret(SecretId=ref)
    assert described["Name"] == f"automateos/{OWNER}/{cid}"
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == {TAG_OWNER: str(OWNER), TAG_CREDENTIAL: str(cid)}
    stored = aws.get_secret_value(SecretId=ref)["SecretString"]
    assert TOKEN not in stored and '"kid":"mk-' in stored  # AWS holds our sealed envelope, never the value

    source = engine_source(aws_service, aws_env)
    assert source.open(OWNER, "github").fields == {"token": TOKEN}

    # A new value (rotation): a new version of the same secret, same ARN; the old one is not deleted.
    r = aws_service.client.put(f"/api/v1/credentials/{cid}", json={"data": {"token": "new-token-value-9876"}},
                               headers=aws_service.headers(OWNER))
    assert r.status_code == 200, r.text
    assert row(aws_service, cid).secret_ref == ref
    assert row(aws_service, cid).version == 2
    versions = aws.list_secret_version_ids(SecretId=ref)["Versions"]
    assert len(versions) == 2
    assert "DeletedDate" not in aws.describe_secret(SecretId=ref)
    assert source.open(OWNER, cid).fields == {"token": "new-token-value-9876"}

    r = aws_service.client.delete(f"/api/v1/credentials/{cid}", headers=aws_service.headers(OWNER))
    assert r.status_code == 204
    assert "DeletedDate" in aws.describe_secret(SecretId=ref)  # scheduled, within its recovery window
    store = aws_service.app.state.secret_store
    with pytest.raises(SecretStoreError, match="refused") as err:
        store.get(SecretRef(OWNER, cid, ref))
    assert TOKEN not in str(err.value)


def test_a_reused_id_brings_the_deleted_secret_back(aws_service: ServiceClient, aws):
    cid = create(aws_service).json()["id"]
    aws_service.client.delete(f"/api/v1/credentials/{cid}", headers=aws_service.headers(OWNER))
    store = aws_service.app.state.secret_store
    ref = store.put(OWNER, cid, b'{"token":"again"}')  # what SQLite's reuse of the highest id would do
    assert "DeletedDate" not in aws.describe_secret(SecretId=ref)
    assert store.get(SecretRef(OWNER, cid, ref)) == b'{"token":"again"}'


def test_immediate_delete_and_a_missing_secret_is_a_clear_error(aws_service: ServiceClient, aws, aws_env):
    store = AwsSecretStore(aws_service.app.state.secret_store.keyring, region=REGION, endpoint_url=aws_env,
                           recovery_days=0)
    ref = store.put(OWNER, 5, b'{"token":"x"}')
    store.delete(SecretRef(OWNER, 5, ref))
    with pytest.raises(aws.exceptions.ResourceNotFoundException):
        aws.describe_secret(SecretId=ref)
    with pytest.raises(SecretStoreError, match="does not exist in AWS Secrets Manager"):
        store.get(SecretRef(OWNER, 5, ref))
    store.delete(SecretRef(OWNER, 5, ref))  # already gone: nothing to do

    # Through the engine: the step fails with a message, and no value.
    cid = create(aws_service).json()["id"]
    aws.delete_secret(SecretId=row(aws_service, cid).secret_ref, ForceDeleteWithoutRecovery=True)
    with pytest.raises(NodeExecutionError, match=r"cannot be opened: .*does not exist") as err:
        engine_source(aws_service, aws_env).open(OWNER, cid)
    assert TOKEN not in str(err.value)


def test_a_moved_arn_or_envelope_does_not_open(aws_service: ServiceClient, aws, aws_env):
    mine = create(aws_service).json()["id"]
    other = create(aws_service, name="second", data={"token": "second-token-abcdef"}).json()["id"]
    theirs = create(aws_service, OTHER).json()["id"]
    store = aws_service.app.state.secret_store
    arn = row(aws_service, mine).secret_ref
    for owner, cid in ((OWNER, other), (OTHER, theirs)):
        with pytest.raises(SecretStoreError, match="belongs to another credential"):
            store.get(SecretRef(owner, cid, arn))
    # The ARN copied into another row of the database: the engine refuses it.
    with Session(aws_service.engine) as session:
        cred = session.get(Credential, other)
        assert cred is not None
        cred.secret_ref = arn
        session.add(cred)
        session.commit()
    with pytest.raises(NodeExecutionError, match="belongs to another credential"):
        engine_source(aws_service, aws_env).open(OWNER, other)
    # The envelope itself copied into another credential's secret: its binding does not match.
    envelope = aws.get_secret_value(SecretId=arn)["SecretString"]
    aws.put_secret_value(SecretId=row(aws_service, theirs).secret_ref, SecretString=envelope)
    with pytest.raises(SecretStoreError, match="cannot be opened"):
        store.get(SecretRef(OTHER, theirs, row(aws_service, theirs).secret_ref))
    # A database-store envelope is no ARN.
    with pytest.raises(SecretStoreError, match="not an AWS Secrets Manager ARN"):
        store.get(SecretRef(OWNER, mine, envelope))


def test_keys_rotate_rewraps_inside_aws(db_engine, db_url, tmp_path, aws, aws_env, monkeypatch, capsys):
    old, new = new_master_key_text(), new_master_key_text()

    def store(*keys: str) -> AwsSecretStore:
        made = SecretSettings(master_keys=",".join(keys), secret_store="aws", aws_region=REGION,
                              aws_endpoint_url=aws_env).make_secret_store(tmp_path)
        assert isinstance(made, AwsSecretStore)
        return made

    with Session(db_engine) as session:
        for i in range(3):
            crud.create(session=session, owner_id=1 + i % 2, store=store(old),
                        data=CredentialCreate(name=f"c{i}", type="bearer", data={"token": f"token-{i}"}))
        crud.create(session=session, owner_id=1, store=store(new),
                    data=CredentialCreate(name="late", type="bearer", data={"token": "token-late"}))
        session.commit()
        creds = list(session.exec(Credential.__table__.select()).all())  # type: ignore[attr-defined]
    refs = {c.id: SecretRef(c.owner_id, c.id, c.secret_ref) for c in creds}
    during = store(new, old)
    values = {cid: during.get(ref) for cid, ref in refs.items()}

    report = rotate(db_engine, during, batch=2)
    assert (report.rewrapped, report.current, report.failed) == (3, 1, {})
    assert rotate(db_engine, during).rewrapped == 0

    after = store(new)  # the old key removed: every value still opens
    for cid, ref in refs.items():
        assert after.get(ref) == values[cid]
        envelope = aws.get_secret_value(SecretId=ref.reference)["SecretString"]
        assert after.keyring.envelope_kid(envelope) == after.keyring.primary.kid
    versions = {cid: len(aws.list_secret_version_ids(SecretId=ref.reference)["Versions"]) for cid, ref in refs.items()}
    assert sorted(versions.values()) == [1, 2, 2, 2]  # a new version for each re-wrapped one, same ARN
    with Session(db_engine) as session:
        assert {c.id: c.secret_ref for c in session.exec(Credential.__table__.select()).all()} == \
            {cid: ref.reference for cid, ref in refs.items()}  # type: ignore[attr-defined]

    # The command, as an operator runs it with the aws store: nothing left to re-wrap, exit 0.
    settings = WorkflowsSettings.model_validate({"database_url": db_url, "master_keys": f"{new},{old}",
                                                 "data_dir": tmp_path / "data", "secret_store": "aws",
                                                 "aws_region": REGION, "aws_endpoint_url": aws_env})
    monkeypatch.setattr("automateos_workflows.__main__.get_settings", lambda: settings)
    assert main(["keys", "rotate"]) == 0
    assert "0 credentials re-wrapped" in capsys.readouterr().out


def test_aws_unreachable_is_503_with_no_secret(tmp_path, db_url, redis_client, aws_env):
    kwargs = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    settings = service_settings(tmp_path, db_url, redis_url, secret_store="aws", aws_region=REGION,
                                aws_endpoint_url="http://127.0.0.1:9")  # nothing listens there
    app = create_app(settings)
    app.dependency_overrides[get_settings] = lambda: settings
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url, trust_env=False) as client:
        app.state.token_verifier = token_verifier(settings)
        service = ServiceClient(client=client, app=app, settings=settings, redis=redis_client)
        r = create(service)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert "unreachable" in r.json()["error"]["message"]
        assert TOKEN not in r.text
        assert service.client.get("/api/v1/credentials", headers=service.headers(OWNER)).json()["total"] == 0
