"""/api/v1/credentials on real Redis and SQLite/PostgreSQL: write-only values, owners, names, in-use
checks, and the sealed record the engine fetches."""

from __future__ import annotations

import pytest
from services.workflows.tests.factories import ServiceClient
from sqlmodel import Session

from automateos_common.secretstore import SecretRef
from automateos_workflows.models import Credential

pytestmark = pytest.mark.integration

OWNER, OTHER = 1, 2
TOKEN = "ghp_0123456789abcdefSECRET"


def create(service: ServiceClient, user: int = OWNER, **body: object):
    body = {"name": "github", "type": "bearer", "data": {"token": TOKEN}, **body}
    return service.client.post("/api/v1/credentials", json=body, headers=service.headers(user))


def uses(cred: object) -> dict:
    return {"nodes": [{"id": "t", "type": "webhook"},
                      {"id": "a", "type": "http_request",
                       "config": {"url": "https://api.example.com/x", "credential": cred}}]}


def test_create_shows_no_value_and_seals_it(service: ServiceClient):
    r = create(service)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "name", "type", "fields", "hint", "used_by", "created_at", "updated_at"}
    assert body["name"] == "github" and body["type"] == "bearer"
    assert body["fields"] == {}
    assert body["hint"] == "****CRET"
    assert body["used_by"] == []
    assert TOKEN not in r.text and "0123456789" not in r.text
    with Session(service.engine) as session:
        row = session.get(Credential, body["id"])
        assert row is not None
        assert TOKEN not in row.secret_ref
        store = service.app.state.secret_store
        assert store.get(SecretRef(OWNER, row.id, row.secret_ref)) == f'{{"token":"{TOKEN}"}}'.encode()


@pytest.mark.parametrize(("type_", "data", "fields", "hint"), [
    ("api_key", {"key": "k" * 20 + "wxyz", "location": "query", "name": "api_key"},
     {"location": "query", "name": "api_key"}, "****wxyz"),
    ("basic", {"username": "alice", "password": "short"}, {"username": "alice"}, None),
    ("header", {"name": "X-Token", "value": "v" * 12}, {"name": "X-Token"}, "****vvvv"),
    ("oauth2_client", {"client_id": "cid", "client_secret": "s" * 30, "token_url": "https://idp.example/token",
                       "scopes": ["read", "write"]},
     {"client_id": "cid", "token_url": "https://idp.example/token", "scopes": ["read", "write"]}, "****ssss"),
])
def test_every_type_shows_its_public_fields_only(service: ServiceClient, type_, data, fields, hint):
    r = create(service, type=type_, data=data)
    assert r.status_code == 201, r.text
    assert r.json()["fields"] == fields
    assert r.json()["hint"] == hint


@pytest.mark.parametrize(("type_", "data", "field"), [
    ("bearer", {}, "data.token"),
    ("bearer", {"token": TOKEN, "extra": 1}, "data.extra"),
    ("bearer", {"token": TOKEN + "\r\nX-Injected: 1"}, "data.token"),
    ("basic", {"username": "a:b", "password": "p"}, "data.username"),
    ("header", {"name": "bad header", "value": "v"}, "data.name"),
    ("api_key", {"key": "k", "location": "cookie"}, "data.location"),
    ("oauth2_client", {"client_id": "c", "client_secret": "s", "token_url": "not a url"}, "data.token_url"),
])
def test_a_wrong_shape_is_422_pointing_at_the_field(service: ServiceClient, type_, data, field):
    r = create(service, type=type_, data=data)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR"
    assert err["details"]["field"] == field
    assert TOKEN not in r.text


def test_bad_names_and_types_are_422(service: ServiceClient):
    assert create(service, name="1abc").json()["error"]["details"]["field"] == "name"
    assert create(service, type="password").json()["error"]["details"]["field"] == "type"


def test_names_are_unique_per_owner(service: ServiceClient):
    assert create(service).status_code == 201
    r = create(service)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "CREDENTIAL_NAME_TAKEN"
    assert create(service, OTHER).status_code == 201  # another owner's namespace


def test_list_get_and_someone_elses_is_404(service: ServiceClient):
    ids = [create(service, name=f"c{i}").json()["id"] for i in range(3)]
    create(service, OTHER, name="theirs")
    r = service.client.get("/api/v1/credentials?limit=2&offset=0", headers=service.headers(OWNER))
    assert r.status_code == 200
    assert r.json()["total"] == 3
    assert [c["id"] for c in r.json()["items"]] == [ids[2], ids[1]]
    assert TOKEN not in r.text
    assert service.client.get(f"/api/v1/credentials/{ids[0]}", headers=service.headers(OWNER)).json()["name"] == "c0"
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        r = service.client.request(method, f"/api/v1/credentials/{ids[0]}", headers=service.headers(OTHER),
                                   json={"name": "x"} if method in ("PUT", "PATCH") else None)
        assert r.status_code == 404, method
        assert r.json()["error"]["code"] == "NOT_FOUND"


def test_update_renames_and_replaces_the_value(service: ServiceClient):
    cid = create(service).json()["id"]
    r = service.client.patch(f"/api/v1/credentials/{cid}", json={"name": "gh"}, headers=service.headers(OWNER))
    assert r.status_code == 200 and r.json()["name"] == "gh" and r.json()["hint"] == "****CRET"
    r = service.client.put(f"/api/v1/credentials/{cid}", json={"data": {"token": "new-token-value-9876"}},
                           headers=service.headers(OWNER))
    assert r.status_code == 200 and r.json()["hint"] == "****9876"
    with Session(service.engine) as session:
        row = session.get(Credential, cid)
        assert row is not None and row.version == 2
        assert service.app.state.secret_store.get(SecretRef(OWNER, cid, row.secret_ref)) == \
            b'{"token":"new-token-value-9876"}'
    r = service.client.put(f"/api/v1/credentials/{cid}", json={"data": {"password": "x"}},
                           headers=service.headers(OWNER))
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "data.token"
    create(service, name="other")
    r = service.client.put(f"/api/v1/credentials/{cid}", json={"name": "other"}, headers=service.headers(OWNER))
    assert r.status_code == 409 and r.json()["error"]["code"] == "CREDENTIAL_NAME_TAKEN"


def test_workflows_must_reference_credentials_the_owner_has(service: ServiceClient):
    theirs = create(service, OTHER).json()["id"]
    for ref in ("github", theirs, 999999):
        r = service.client.post("/api/v1/workflows", json={"name": "w", "definition": uses(ref)},
                                headers=service.headers(OWNER))
        assert r.status_code == 422, ref
        assert r.json()["error"]["details"]["field"] == "definition.nodes[1].config.credential"
    cid = create(service).json()["id"]
    wf = service.create_workflow(OWNER, uses("github"))
    r = service.client.put(f"/api/v1/workflows/{wf['id']}", json={"definition": uses("nope")},
                           headers=service.headers(OWNER))
    assert r.status_code == 422
    assert service.create_workflow(OWNER, uses(cid))["id"] > wf["id"]


def test_used_by_delete_and_rename_in_use(service: ServiceClient):
    cid = create(service).json()["id"]
    by_name = service.create_workflow(OWNER, uses("github"))
    by_id = service.create_workflow(OWNER, uses(str(cid)))
    expected = [{"id": by_name["id"], "name": "wf"}, {"id": by_id["id"], "name": "wf"}]
    assert service.client.get(f"/api/v1/credentials/{cid}", headers=service.headers(OWNER)).json()["used_by"] == \
        expected
    r = service.client.delete(f"/api/v1/credentials/{cid}", headers=service.headers(OWNER))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "CREDENTIAL_IN_USE"
    assert r.json()["error"]["details"]["workflows"] == expected
    r = service.client.patch(f"/api/v1/credentials/{cid}", json={"name": "renamed"}, headers=service.headers(OWNER))
    assert r.status_code == 409
    assert r.json()["error"]["details"]["workflows"] == [{"id": by_name["id"], "name": "wf"}]
    r = service.client.delete(f"/api/v1/credentials/{cid}?force=true", headers=service.headers(OWNER))
    assert r.status_code == 204
    assert service.client.get(f"/api/v1/credentials/{cid}", headers=service.headers(OWNER)).status_code == 404


def test_the_engine_gets_the_sealed_record_over_the_internal_api_only(service: ServiceClient):
    cid = create(service).json()["id"]
    internal = {"X-AutomateOS-Internal": "internal-test"}
    for ref in ("github", str(cid)):
        r = service.client.get(f"/internal/v1/credentials/{OWNER}/{ref}", headers=internal)
        assert r.status_code == 200
        assert r.json()["id"] == cid and r.json()["type"] == "bearer"
        assert TOKEN not in r.text  # sealed: only a holder of the master key opens it
    assert service.client.get(f"/internal/v1/credentials/{OTHER}/github", headers=internal).status_code == 404
    assert service.client.get(f"/internal/v1/credentials/{OWNER}/github").status_code == 404


def test_creating_changing_and_deleting_a_credential_are_security_events(service: ServiceClient, audit_lines):
    cid = create(service).json()["id"]
    assert service.client.patch(f"/api/v1/credentials/{cid}", json={"data": {"token": TOKEN + "-2"}},
                                headers=service.headers(OWNER)).status_code == 200
    assert service.client.get(f"/api/v1/credentials/{cid}", headers=service.headers(OTHER)).status_code == 404
    assert service.client.delete(f"/api/v1/credentials/{cid}", headers=service.headers(OWNER)).status_code == 204
    events = [(e["event"], e["user_id"], e.get("details", {}).get("credential_id")) for e in audit_lines.events()]
    assert events == [("credential.created", OWNER, cid), ("credential.updated", OWNER, cid),
                      ("access.denied", OWNER, None), ("credential.deleted", OWNER, cid)]
    assert TOKEN not in "\n".join(audit_lines.lines)
