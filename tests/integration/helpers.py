"""Helpers for the end-to-end tests: an API client for the gateway and the API.md example."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

_seq = itertools.count()


class Api:
    """A client for the gateway with small helpers for the common flows."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30.0, trust_env=False)

    def register(self, email: str | None = None, password: str = "correct horse battery staple") -> dict[str, Any]:
        email = email or f"user{next(_seq)}-{uuid.uuid4().hex[:8]}@example.com"
        r = self.http.post("/api/v1/auth/register", json={"email": email, "password": password})
        assert r.status_code == 201, r.text
        token = self.login(email, password)
        return {"email": email, "password": password, "token": token, "headers": {"Authorization": f"Bearer {token}"},
                "id": r.json()["id"]}

    def login(self, email: str, password: str) -> str:
        r = self.http.post("/api/v1/auth/token", data={"username": email, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def create_workflow(self, user: dict[str, Any], definition: dict[str, Any], **extra: Any) -> dict[str, Any]:
        r = self.http.post("/api/v1/workflows", json={"name": "wf", "definition": definition, **extra},
                           headers=user["headers"])
        assert r.status_code == 201, r.text
        return dict(r.json())

    def wait_run(self, user: dict[str, Any], execution_id: str, timeout: float = 20.0,
                 until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        until = until or (lambda run: run["status"] in ("success", "failed", "cancelled"))
        deadline = time.monotonic() + timeout
        while True:
            r = self.http.get(f"/api/v1/logs/{execution_id}", headers=user["headers"])
            assert r.status_code == 200, r.text
            run = r.json()
            if until(run):
                return dict(run)
            if time.monotonic() > deadline:
                raise AssertionError(f"run {execution_id} still {run['status']} after {timeout}s")
            time.sleep(0.05)
