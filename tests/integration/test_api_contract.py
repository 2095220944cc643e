"""API.md's rules through the gateway: auth, tenancy (404), forged tokens (401), CRUD, validation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.integration.helpers import Api

from automateos_devstack.testing import example_definition

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_register_login_me(api: Api):
    email = f"Mixed.Case-{time.time_ns()}@Example.com"
    r = api.http.post("/api/v1/auth/register", json={"email": email, "password": "x" * 256})
    assert r.status_code == 201
    user = r.json()
    assert set(user) == {"id", "email", "created_at"}
    assert user["email"] == email.lower()

    dup = api.http.post("/api/v1/auth/register", json={"email": email.upper(), "password": "y" * 8})
    assert (dup.status_code, dup.json()["error"]["code"]) == (409, "EMAIL_TAKEN")

    for body, field in (({"email": "not-an-email", "password": "x" * 8}, "email"),
                        ({"email": "a@example.com", "password": "x" * 7}, "password"),
                        ({"email": "a@example.com", "password": "x" * 257}, "password")):
        r = api.http.post("/api/v1/auth/register", json=body)
        assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]["field"]) == \
            (422, "VALIDATION_ERROR", field)

    r = api.http.post("/api/v1/auth/token", data={"username": email.upper(), "password": "x" * 256})
    assert r.status_code == 200
    tok = r.json()
    assert tok["token_type"] == "bearer" and tok["expires_in"] == 900
    me = api.http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tok['access_token']}"})
    assert me.json() == user
    assert (me.headers["x-content-type-options"], me.headers["cache-control"]) == ("nosniff", "no-store")

    # A session: the refresh token is exchanged once, then revoked by logout.
    fresh = api.http.post("/api/v1/auth/refresh", json={"refresh_token": tok["refresh_token"]})
    assert fresh.status_code == 200 and fresh.json()["refresh_token"] != tok["refresh_token"]
    me = api.http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"})
    assert me.json() == user
    latest = {"refresh_token": fresh.json()["refresh_token"]}
    assert api.http.post("/api/v1/auth/logout", json=latest).status_code == 204
    again = api.http.post("/api/v1/auth/refresh", json=latest)
    assert again.status_code == 401

    # Every character counts: only the 256th differs. Unknown email: the same answer.
    wrong = api.http.post("/api/v1/auth/token", data={"username": email, "password": "x" * 255 + "y"})
    unknown = api.http.post("/api/v1/auth/token", data={"username": "nobody@example.com", "password": "x" * 8})
    assert wrong.status_code == unknown.status_code == 401
    refused = {"error": {"code": "UNAUTHORIZED", "message": "Incorrect email or password"}}
    assert wrong.json() == unknown.json() == refused


def test_someone_elses_workflow_and_runs_are_404_everywhere(api: Api, echo_server):
    owner, other = api.register(), api.register()
    wf = api.create_workflow(owner, example_definition(f"{echo_server.url}/x"))
    run_id = httpx.post(wf["webhook_url"], json={}).json()["execution_id"]
    api.wait_run(owner, run_id)
    h = other["headers"]
    calls = [
        api.http.get(f"/api/v1/workflows/{wf['id']}", headers=h),
        api.http.put(f"/api/v1/workflows/{wf['id']}", json={"name": "mine now"}, headers=h),
        api.http.delete(f"/api/v1/workflows/{wf['id']}", headers=h),
        api.http.get(f"/api/v1/workflows/{wf['id']}/logs", headers=h),
        api.http.get(f"/api/v1/logs/{run_id}", headers=h),
        api.http.post(f"/api/v1/workflows/{wf['id']}/execute", json={}, headers=h),
    ]
    assert [(c.status_code, c.json()["error"]["code"]) for c in calls] == [(404, "NOT_FOUND")] * 6
    assert api.http.get("/api/v1/workflows", headers=h).json() == {"items": [], "total": 0}
    # ... and the owner's workflow is untouched.
    assert api.http.get(f"/api/v1/workflows/{wf['id']}", headers=owner["headers"]).json()["name"] == "wf"


@pytest.fixture(scope="module")
def forged(api: Api, pg_stack) -> dict[str, str]:
    """Tokens that must all be refused, built against the real keys of the running stack."""
    user = api.register()
    valid = user["token"]
    header = jwt.get_unverified_header(valid)
    claims = jwt.decode(valid, options={"verify_signature": False})
    jwks = api.http.get("/api/v1/auth/jwks.json").json()
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwks["keys"][0]))
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    private_pem = (pg_stack.data_dir / "keys" / "auth-signing-key.pem").read_bytes()

    def unsigned(alg: str, key: bytes | None) -> str:
        head = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": header["kid"]}).encode())
        body = b64(json.dumps(claims).encode())
        sig = b"" if key is None else hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(sig)}"

    h, _, s = valid.split(".")
    tampered = b64(json.dumps({**claims, "sub": str(int(claims["sub"]) + 1)}).encode())
    now = datetime.now(timezone.utc)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "alg none": unsigned("none", None),
        "HS256 keyed with the public key": unsigned("HS256", public_pem),
        "tampered payload": f"{h}.{tampered}.{s}",
        "expired": jwt.encode({**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)},
                              private_pem, algorithm="RS256", headers={"kid": header["kid"]}),
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, private_pem, algorithm="RS256",
                                     headers={"kid": header["kid"]}),
        "unknown key": jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "stranger"}),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/users/me"),                 # auth
    ("GET", "/api/v1/workflows"),                # workflows
    ("GET", "/api/v1/logs/00000000-0000-0000-0000-000000000000"),
    ("POST", "/api/v1/workflows/1/execute"),     # ingress
])
def test_forged_tokens_get_401_on_every_service(api: Api, forged, method, path):
    for name, token in forged.items():
        r = api.http.request(method, path, headers={"Authorization": f"Bearer {token}"}, json={})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "UNAUTHORIZED"), name
    r = api.http.request(method, path, json={})  # no token at all
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_crud_pagination_and_update_rules(api: Api, echo_server):
    user = api.register()
    h = user["headers"]
    made = [api.create_workflow(user, example_definition(f"{echo_server.url}/{i}"), name=f"wf{i}") for i in range(3)]

    page1 = api.http.get("/api/v1/workflows", params={"limit": 2, "offset": 0}, headers=h).json()
    page2 = api.http.get("/api/v1/workflows", params={"limit": 2, "offset": 2}, headers=h).json()
    assert page1["total"] == page2["total"] == 3
    assert [w["name"] for w in page1["items"] + page2["items"]] == ["wf2", "wf1", "wf0"]  # newest first
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}):
        r = api.http.get("/api/v1/workflows", params=params, headers=h)
        assert (r.status_code, r.json()["error"]["details"]["field"]) == (422, next(iter(params)))

    wf = made[0]
    r = api.http.put(f"/api/v1/workflows/{wf['id']}", json={"name": "renamed", "description": "d"}, headers=h)
    updated = r.json()
    assert r.status_code == 200
    assert (updated["name"], updated["description"], updated["version"]) == ("renamed", "d", 2)
    assert updated["webhook_url"] == wf["webhook_url"]  # never changes
    assert updated["definition"] == wf["definition"]

    bad = example_definition("not a url")
    r = api.http.put(f"/api/v1/workflows/{wf['id']}", json={"definition": bad}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "definition.nodes[1].config.url"
    assert api.http.get(f"/api/v1/workflows/{wf['id']}", headers=h).json()["version"] == 2  # unchanged

    assert api.http.delete(f"/api/v1/workflows/{wf['id']}", headers=h).status_code == 204
    assert api.http.get(f"/api/v1/workflows/{wf['id']}", headers=h).status_code == 404
    assert api.http.get("/api/v1/workflows", headers=h).json()["total"] == 2


@pytest.fixture(scope="module")
def author(api: Api) -> dict:
    return api.register()


@pytest.mark.parametrize(("mutate", "field", "issue_part"), [
    (lambda d: d["nodes"][1]["config"].update(url="ftp://x"), "definition.nodes[1].config.url", "URL"),
    (lambda d: d["nodes"][1].update(type="teleport"), "definition.nodes[1].type", "unknown node type"),
    (lambda d: d["connections"].append({"from": "filter-1", "to": "action-1"}), "definition.connections", "cycle"),
    (lambda d: d["connections"].append({"from": "action-1", "to": "ghost"}), "definition.connections[2].to",
     "no node"),
    (lambda d: d["nodes"][1]["config"].update(body="{{filter-1.body}}"), "definition.nodes[1].config.body",
     "does not run before"),
    (lambda d: d["nodes"][2]["config"].update(condition="{{action-1.status}} =="),
     "definition.nodes[2].config.condition", "CEL"),
    (lambda d: d["nodes"][0].update(id="action-1"), "definition.nodes[1].id", "duplicate"),
])
def test_invalid_definitions_point_at_the_field(api: Api, author, mutate, field, issue_part):
    user = author
    definition = example_definition("https://api.example.com/data")
    mutate(definition)
    r = api.http.post("/api/v1/workflows", json={"name": "bad", "definition": definition}, headers=user["headers"])
    err = r.json()["error"]
    assert (r.status_code, err["code"], err["message"]) == (422, "VALIDATION_ERROR", "Invalid workflow definition")
    assert err["details"]["field"] == field
    assert issue_part in err["details"]["issue"]


def test_node_types_are_listed_with_their_schemas(api: Api):
    user = api.register()
    types = api.http.get("/api/v1/node-types", headers=user["headers"]).json()
    assert [t["type"] for t in types] == ["delay", "filter", "http_request", "if", "loop", "manual", "merge",
                                          "schedule", "switch", "transform", "webhook"]
    http = next(t for t in types if t["type"] == "http_request")
    assert http["kind"] == "action"
    assert "url" in http["config_schema"]["properties"]


def test_health_and_docs_through_the_gateway(api: Api):
    checks = api.http.get("/healthz").json()["checks"]
    assert checks == {"auth": "ok", "workflows": "ok", "ingress": "ok", "engine": "ok"}
    for svc in ("auth", "workflows", "ingress", "engine"):
        health = api.http.get(f"/api/v1/{svc}/healthz")
        assert (health.status_code, health.json()["service"]) == (200, svc)
        spec = api.http.get(f"/api/v1/{svc}/openapi.json")
        assert spec.status_code == 200 and spec.json()["info"]["title"] == f"AutomateOS {svc}"
        assert "swagger-ui" in api.http.get(f"/api/v1/{svc}/docs").text
    assert api.http.get("/internal/v1/hooks/x").status_code == 404  # never routed
    # The gateway passes the caller's Host on, so redirects point at the public origin.
    r = api.http.get("/api/v1/node-types/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, f"{api.base_url}/api/v1/node-types")
    assert "AutomateOS" in api.http.get("/").text
