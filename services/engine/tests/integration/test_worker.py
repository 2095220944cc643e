"""A job enqueued the way the ingress does it is run by a real RQ worker (JSON serializer, no pickle)."""

from __future__ import annotations

import json
import zlib

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from services.engine.tests.factories import publish, queue_run

from automateos_common.queue import make_queue
from automateos_common.runs import RunStatus, RunStore
from automateos_devstack.testing import example_definition
from automateos_engine import settings as engine_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def engine_env(monkeypatch, redis_client, echo_server):
    url = redis_client.connection_pool.connection_kwargs
    monkeypatch.setenv("REDIS_URL", f"redis://{url['host']}:{url['port']}/{url['db']}")
    monkeypatch.setenv("AUTOMATEOS_EGRESS_ALLOW", "127.0.0.1")
    monkeypatch.setenv("AUTOMATEOS_INTERNAL_TOKEN", "test-secret")
    engine_settings.get_settings.cache_clear()
    yield
    engine_settings.get_settings.cache_clear()


def test_rq_worker_runs_the_queued_job_end_to_end(redis_client, echo_server, engine_env):
    publish(redis_client, example_definition(url=f"{echo_server.url}/data"))
    queued = queue_run(redis_client, {"via": "rq"})
    # RQ stores (function, instance, args, kwargs) zlib-compressed; with the JSON serializer, no pickle.
    data = json.loads(zlib.decompress(redis_client.hget(f"rq:job:{queued.id}", "data")))
    assert data == ["automateos_engine.jobs.run_execution", None, [queued.id], {}]

    worker = SimpleWorker([make_queue(redis_client, "test")], connection=redis_client, serializer=JSONSerializer)
    assert worker.work(burst=True) is True

    run = RunStore(redis_client).load(queued.id)
    assert run.status == RunStatus.SUCCESS
    assert run.steps[1].output["body"]["echo"] == {"via": "rq"}
    assert echo_server.requests[-1]["body"] == {"via": "rq"}
