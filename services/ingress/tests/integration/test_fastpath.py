"""The plain-ASGI webhook path answers exactly as the FastAPI route it stands in front of.

The same app is built twice on a real Redis, once with `WebhookFastPath` and once without, and
every kind of request goes to both: same status, body, headers that matter, and the same run
(trigger data) queued with its RQ job.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from automateos_common import catalog
from automateos_common.queue import RUN_JOB
from automateos_common.runs import RunStatus, RunStore
from automateos_ingress.accept import Acceptor
from automateos_ingress.fastpath import IngressApp
from automateos_ingress.main import create_app
from automateos_ingress.settings import IngressSettings, get_settings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

LIMIT = 64  # max body bytes, small to test the 413
SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "content-security-policy", "referrer-policy",
                    "cross-origin-resource-policy", "strict-transport-security")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def apps(redis_client, monkeypatch, tmp_path):
    kw = redis_client.connection_pool.connection_kwargs
    url = f"redis://{kw['host']}:{kw['port']}/{kw['db']}"
    env = {"REDIS_URL": url, "AUTOMATEOS_MAX_BODY_BYTES": str(LIMIT), "AUTOMATEOS_DATA_DIR": str(tmp_path),
           "AUTOMATEOS_QUEUE_NAME": "fastpath-test", "AUTOMATEOS_WORKFLOWS_URL": "http://127.0.0.1:9",
           "AUTOMATEOS_HSTS_MAX_AGE_S": "31536000"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    with redis_client.pipeline() as pipe:
        for wf, token, method, options in ((1, "post-token", "POST", {}), (2, "get-token", "GET", {}),
                                           *((10 + i, f"{kind}-token", "POST", {"auth": auth})
                                             for i, (kind, auth) in enumerate(AUTH.items()))):
            catalog.publish(pipe, catalog.CatalogEntry(workflow_id=wf, owner_id=7, is_active=True, version=1,
                                                      definition={}, webhook_token=token, webhook_method=method,
                                                      webhook_options=options))
        # A sync webhook whose run nothing executes here: 202 at its timeout (test_sync_response has the rest).
        catalog.publish(pipe, catalog.CatalogEntry(
            workflow_id=3, owner_id=7, is_active=True, version=1, definition={}, webhook_token="sync-token",
            webhook_method="POST", webhook_options={"response": {"mode": "sync", "timeout_s": 0.1}}))
        pipe.set(catalog.READY_KEY, "1")
        pipe.execute()

    async def credential(_self, token: str):  # the workflows service's answer (a process boundary)
        return CREDENTIALS.get(token)

    monkeypatch.setattr(Acceptor, "_hook_auth_record", credential)
    fast = create_app(IngressSettings())
    plain = create_app(IngressSettings(), fast_webhooks=False)
    assert isinstance(fast, IngressApp) and fast.fast_webhooks is not None and plain.fast_webhooks is None
    yield fast, plain
    get_settings.cache_clear()


async def _call(app, request: dict) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress.test") as client:
            return await client.request(**request)


# The triggers' `auth` options, and the credentials the workflows service opens for them (by hook token).
AUTH = {
    "hmac": {"type": "hmac", "credential": 4, "header": "X-Hub-Signature-256", "prefix": "sha256=",
             "encoding": "hex", "format": "plain", "tolerance_s": 300},
    "header": {"type": "header", "credential": 4, "header": "X-Webhook-Token"},
    "basic": {"type": "basic", "credential": 5, "realm": "hooks"},
    "gone": {"type": "hmac", "credential": 6, "header": "X-Hub-Signature-256", "prefix": "sha256=",
             "encoding": "hex", "format": "plain", "tolerance_s": 300},
}
SECRET = {"id": 4, "type": "webhook_secret", "version": 1, "fields": {"secret": "It's a Secret to Everybody"}}
CREDENTIALS = {"hmac-token": SECRET, "header-token": SECRET, "gone-token": None,
               "basic-token": {"id": 5, "type": "basic", "version": 1,
                               "fields": {"username": "u", "password": "p4ssw0rd-long-enough"}}}
GITHUB_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"  # of "Hello, World!"
BASIC_OK = "Basic " + base64.b64encode(b"u:p4ssw0rd-long-enough").decode()

CASES = {
    "json": {"method": "POST", "url": "/hooks/post-token?x=1&x=2&y=", "json": {"a": [1, "b"]},
             "headers": {"X-GitHub-Event": "push", "Authorization": "Bearer secret", "Cookie": "c=1"}},
    "form": {"method": "POST", "url": "/hooks/post-token", "content": b"a=1&a=2&b=",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    "binary": {"method": "POST", "url": "/hooks/post-token", "content": bytes(range(40)),
               "headers": {"Content-Type": "application/octet-stream"}},
    "empty": {"method": "POST", "url": "/hooks/post-token"},
    "get": {"method": "GET", "url": "/hooks/get-token?q=%C3%A9t%C3%A9"},
    "wrong method": {"method": "PUT", "url": "/hooks/post-token", "content": b"{}"},
    "unknown": {"method": "POST", "url": "/hooks/nope", "json": {}},
    "too large by header": {"method": "POST", "url": "/hooks/post-token", "content": b"x" * (LIMIT + 1)},
    "HEAD goes to FastAPI": {"method": "HEAD", "url": "/hooks/post-token"},
    "nested path goes to FastAPI": {"method": "POST", "url": "/hooks/post-token/more", "json": {}},
    "hmac signed": {"method": "POST", "url": "/hooks/hmac-token", "content": b"Hello, World!",
                    "headers": {"X-Hub-Signature-256": GITHUB_SIG}},
    "hmac unsigned": {"method": "POST", "url": "/hooks/hmac-token", "content": b"Hello, World!"},
    "hmac wrong": {"method": "POST", "url": "/hooks/hmac-token", "content": b"Hello, World?",
                   "headers": {"X-Hub-Signature-256": GITHUB_SIG}},
    "header token": {"method": "POST", "url": "/hooks/header-token", "json": {},
                     "headers": {"X-Webhook-Token": "It's a Secret to Everybody"}},
    "header token wrong": {"method": "POST", "url": "/hooks/header-token", "json": {},
                           "headers": {"X-Webhook-Token": "guess"}},
    "basic": {"method": "POST", "url": "/hooks/basic-token", "json": {}, "headers": {"Authorization": BASIC_OK}},
    "basic wrong": {"method": "POST", "url": "/hooks/basic-token", "json": {},
                    "headers": {"Authorization": "Basic " + base64.b64encode(b"u:nope").decode()}},
    "credential deleted": {"method": "POST", "url": "/hooks/gone-token", "content": b"Hello, World!",
                           "headers": {"X-Hub-Signature-256": GITHUB_SIG}},
    "sync, timed out": {"method": "POST", "url": "/hooks/sync-token", "json": {"a": 1}},
}
REFUSED = {"hmac unsigned", "hmac wrong", "header token wrong", "basic wrong", "credential deleted"}


@pytest.mark.parametrize("name", list(CASES))
async def test_fast_path_and_fastapi_route_answer_alike(apps, redis_client, name):
    fast, plain = apps
    answers = [await _call(app, CASES[name]) for app in (fast, plain)]
    a, b = answers
    assert a.status_code == b.status_code, (a.text, b.text)
    for header in ("content-type", "allow", "retry-after", "www-authenticate", *SECURITY_HEADERS):
        assert a.headers.get(header) == b.headers.get(header), header
    for header in SECURITY_HEADERS:  # present, not merely equally absent
        assert header in a.headers, header
    if name in REFUSED:  # one answer for every failure; nothing queued
        assert a.status_code == 401 and a.json() == {"error": {"code": "UNAUTHORIZED",
                                                               "message": "Webhook authentication failed"}}
        assert a.headers.get("www-authenticate") == ('Basic realm="hooks"' if name.startswith("basic") else None)
        assert redis_client.llen("rq:queue:fastpath-test") == 0
        assert redis_client.keys("aos:run:*") == []
    if a.status_code != 202:
        assert a.content == b.content
        return
    ids = [r.json()["execution_id"] for r in answers]
    assert [r.json() for r in answers] == [{"execution_id": i, "status": "queued"} for i in ids]
    assert [r.headers["location"] for r in answers] == [f"/api/v1/logs/{i}" for i in ids]
    sync = name.startswith("sync")
    assert [r.headers.get("x-execution-id") for r in answers] == (ids if sync else [None, None])
    runs = [RunStore(redis_client).load(i) for i in ids]
    assert all(r is not None and r.status is RunStatus.QUEUED for r in runs)
    assert runs[0].trigger_data == runs[1].trigger_data  # type: ignore[union-attr]
    assert "authorization" not in runs[0].trigger_data["headers"]  # type: ignore[union-attr]
    assert "x-webhook-token" not in runs[0].trigger_data["headers"]  # type: ignore[union-attr]  # a secret
    if name == "hmac signed":  # a signature is no secret: the workflow may look at it
        assert runs[0].trigger_data["headers"]["x-hub-signature-256"] == GITHUB_SIG  # type: ignore[union-attr]
    for i in ids:
        job = Job.fetch(i, connection=redis_client, serializer=JSONSerializer)
        assert (job.func_name, job.args, job.origin) == (RUN_JOB, [i], "fastpath-test")


async def test_a_body_over_the_limit_without_a_length_header_is_refused_while_reading(apps, redis_client):
    fast, _ = apps

    async def chunks():
        for _ in range(3):
            yield b"x" * (LIMIT // 2)

    r = await _call(fast, {"method": "POST", "url": "/hooks/post-token", "content": chunks()})
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert redis_client.llen("rq:queue:fastpath-test") == 0


async def test_redis_down_is_503_with_retry_after(apps, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens there
    get_settings.cache_clear()
    down = create_app(IngressSettings())
    r = await _call(down, CASES["json"])
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
