"""RQ job entry points, enqueued by dotted string (`automateos_engine.jobs.run_execution`)."""

from __future__ import annotations

import os
from functools import lru_cache

import httpx
from redis import Redis
from rq import get_current_job

from automateos_common.nodes.egress import EgressPolicy, guarded_client
from automateos_common.nodes.registry import default_registry

from .credentials import CredentialSource
from .definitions import DefinitionSource
from .executor import Executor, Runtime
from .settings import get_settings


@lru_cache(maxsize=1)
def _http_client(pid: int) -> httpx.Client:  # noqa: ARG001 (keyed by pid: a forked child builds its own pool)
    return guarded_client(EgressPolicy.from_string(get_settings().egress_allow))


def build_runtime(redis: Redis) -> Runtime:
    settings = get_settings()
    return Runtime(
        redis=redis,
        registry=default_registry(),
        definitions=DefinitionSource(redis, settings.workflows_url, settings.internal_secret()),
        http_client=lambda: _http_client(os.getpid()),
        config=settings.engine_config(),
        credentials=_credentials(),
    )


@lru_cache(maxsize=1)
def _credentials() -> CredentialSource:
    settings = get_settings()
    return CredentialSource(settings.workflows_url, settings.internal_secret(),
                            settings.make_secret_store(settings.data_dir))


def run_execution(execution_id: str) -> None:
    """The job RQ runs (the forking worker, or any RQ worker); EngineSimpleWorker calls the Executor
    directly with the same runtime (worker.py)."""
    job = get_current_job()
    assert job is not None, "run_execution runs inside an RQ job"
    Executor(build_runtime(job.connection)).execute(execution_id)
