from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from redis import Redis
from sqlalchemy import Engine
from sqlmodel import Session

from automateos_common.auth import JWKSCache, TokenVerifier, jwks_document
from automateos_common.jsonutil import utcnow
from automateos_common.runs import RunState, RunStatus, RunStore, StepState, StepStatus
from automateos_devstack.servers import free_port
from automateos_workflows import crud
from automateos_workflows.models import Workflow
from automateos_workflows.recorder import Recorder
from automateos_workflows.schemas import WorkflowCreate
from automateos_workflows.settings import WorkflowsSettings

SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "workflows-test-key"


def definition(url: str = "https://api.example.com/data") -> dict[str, Any]:
    return {"nodes": [{"id": "t", "type": "webhook"},
                      {"id": "a", "type": "http_request", "config": {"url": url}}]}


def make_workflow(engine: Engine, *, owner_id: int = 1, active: bool = True, name: str = "wf") -> Workflow:
    with Session(engine, expire_on_commit=False) as session:
        wf = crud.create_workflow(session=session, owner_id=owner_id,
                                  data=WorkflowCreate(name=name, definition=definition(), is_active=active))
        session.commit()
        return wf


def token_verifier(settings: WorkflowsSettings) -> TokenVerifier:
    """Verifies tokens signed with SIGNING_KEY, as if auth's JWKS had published it."""
    cache = JWKSCache(settings.auth_url + "/jwks.json")
    cache.load(jwks_document({KID: SIGNING_KEY.public_key()}))
    return TokenVerifier(cache, issuer=settings.jwt_issuer, audience=settings.jwt_audience)


def bearer(user_id: int, settings: WorkflowsSettings) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"sub": str(user_id), "iat": now, "exp": now + 600, "iss": settings.jwt_issuer,
                        "aud": settings.jwt_audience}, SIGNING_KEY, algorithm="RS256", headers={"kid": KID})
    return {"Authorization": f"Bearer {token}"}


class ThreadedServer:
    """An app served by uvicorn in a thread of this process: real HTTP, and its app.state at hand."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="workflows-test-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the workflows app did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class ServiceClient:
    """The in-process workflows app, and helpers to put runs where the tests need them."""

    client: httpx.Client
    app: FastAPI
    settings: WorkflowsSettings
    redis: Redis
    users: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        engine: Engine = self.app.state.engine
        return engine

    def headers(self, user_id: int) -> dict[str, str]:
        if user_id not in self.users:
            self.users[user_id] = bearer(user_id, self.settings)
        return self.users[user_id]

    def create_workflow(self, user_id: int, definition: dict[str, Any], **extra: Any) -> dict[str, Any]:
        r = self.client.post("/api/v1/workflows", json={"name": "wf", "definition": definition, **extra},
                             headers=self.headers(user_id))
        assert r.status_code == 201, r.text
        return dict(r.json())

    def put_run(self, wf: dict[str, Any], user_id: int, status: RunStatus, steps: list[StepState] | None = None,
                **fields: Any) -> RunState:
        """A run written straight to Redis in the state the test needs: no job, so no worker touches it."""
        now = utcnow()
        trigger_data = fields.pop("trigger_data", {"payload": {"n": 1}, "headers": {"x-test": "1"},
                                                   "query": {"q": "v"}, "method": "POST"})
        run = RunState(id=fields.pop("id", f"run-{time.time_ns()}"), workflow_id=wf["id"], owner_id=user_id,
                       trigger="webhook", payload=trigger_data.get("payload"), trigger_data=trigger_data,
                       status=status, steps=steps or [], **fields)
        if status != RunStatus.QUEUED:
            run.started_at = run.started_at or now
            run.workflow_version = wf["version"]
        if run.is_terminal:
            run.completed_at = run.completed_at or now
        with self.redis.pipeline() as pipe:
            RunStore(self.redis).write_new(pipe, run)
            if run.result is not None:  # a new run has none; this one is further along
                RunStore(self.redis).write(pipe, run, result=True)
            pipe.execute()
        return run

    def record(self) -> int:
        """Copy what changed in Redis to the database, as the recorder thread would."""
        rec = Recorder(self.engine, self.redis, value_limit=self.settings.step_output_max_bytes)
        rec.ensure_group()
        n = 0
        while True:
            done = rec.step(block_ms=10)
            if not done:
                return n
            n += done

    def expire(self, run_id: str) -> None:
        """The run's Redis copy is gone (finished long ago): only the database has it."""
        self.redis.delete(RunStore.key(run_id))


def step(node_id: str, position: int, status: StepStatus, type_: str = "http_request", **fields: Any) -> StepState:
    fields.setdefault("attempts", 0 if status in (StepStatus.PENDING, StepStatus.SKIPPED) else 1)
    return StepState(node_id=node_id, type=type_, position=position, status=status, **fields)
