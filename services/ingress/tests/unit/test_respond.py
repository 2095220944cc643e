"""The answer to a sync webhook for each state its run can be in (respond.sync_answer: pure)."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from automateos_common.errors import RunFailedError
from automateos_common.jsonutil import utcnow
from automateos_common.runs import RunStatus
from automateos_ingress.respond import RunOutcome, _settled, sync_answer

ID = "0190a000-0000-7000-8000-000000000001"
HEADERS = [(b"location", f"/api/v1/logs/{ID}".encode()), (b"x-execution-id", ID.encode())]


def test_success_answers_the_output_with_the_status_code() -> None:
    out = RunOutcome(RunStatus.SUCCESS, output={"a": [1, "é"]})
    assert sync_answer(ID, out, {"status_code": 201}, output_limit=1024) == (201, orjson.dumps({"a": [1, "é"]}),
                                                                            HEADERS)
    assert sync_answer(ID, RunOutcome(RunStatus.SUCCESS, output="text"), {}, output_limit=1024)[:2] == (200, b'"text"')
    assert sync_answer(ID, RunOutcome(RunStatus.SUCCESS), {}, output_limit=1024)[:2] == (200, b"null")


def test_a_big_output_is_the_history_marker() -> None:
    status, body, _ = sync_answer(ID, RunOutcome(RunStatus.SUCCESS, output="x" * 5000), {}, output_limit=1024)
    marker = orjson.loads(body)
    assert status == 200 and marker["_truncated"] is True and marker["size_bytes"] == 5002


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PAUSED])
def test_a_run_not_ended_is_202_with_its_status(status: RunStatus) -> None:
    assert sync_answer(ID, RunOutcome(status), {}, output_limit=1024) == (
        202, orjson.dumps({"execution_id": ID, "status": status.value}), HEADERS)


def test_a_run_gone_from_redis_is_202_queued() -> None:
    assert sync_answer(ID, None, {}, output_limit=1024)[:2] == (202, orjson.dumps({"execution_id": ID,
                                                                                   "status": "queued"}))


@pytest.mark.parametrize(("status", "message"), [(RunStatus.FAILED, "The run failed: boom"),
                                                 (RunStatus.CANCELLED, "The run was cancelled: boom")])
def test_failed_and_cancelled_are_run_failed(status: RunStatus, message: str) -> None:
    with pytest.raises(RunFailedError) as excinfo:
        sync_answer(ID, RunOutcome(status, error_message="boom"), {}, output_limit=1024)
    exc = excinfo.value
    assert (exc.status_code, exc.code, exc.message) == (502, "RUN_FAILED", message)
    assert exc.details == {"execution_id": ID, "status": status.value}
    assert exc.headers == {"location": f"/api/v1/logs/{ID}", "x-execution-id": ID}
    with pytest.raises(RunFailedError, match=r"^The run failed$"):
        sync_answer(ID, RunOutcome(RunStatus.FAILED), {}, output_limit=1024)


def test_settled() -> None:
    assert not _settled(None, 5)
    assert not _settled(RunOutcome(RunStatus.RUNNING), 5)
    assert _settled(RunOutcome(RunStatus.SUCCESS), 5) and _settled(RunOutcome(RunStatus.PAUSED), 5)
    soon, late = utcnow() + timedelta(seconds=1), utcnow() + timedelta(seconds=60)
    assert not _settled(RunOutcome(RunStatus.WAITING, resume_at=soon), 5)  # resumes before the timeout: wait
    assert _settled(RunOutcome(RunStatus.WAITING, resume_at=late), 5)  # parked past it: 202 now


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_failing_while_waiting_keeps_what_was_known(anyio_backend: str) -> None:
    """The run is queued already: a Redis error while waiting must not turn into a 503 (a retry would run it twice)."""
    from automateos_common.fastredis import PipelinedRedis
    from automateos_ingress.respond import RunWaiter

    dead = PipelinedRedis.from_url("redis://127.0.0.1:9/0", timeout=0.5, connect_timeout=0.5)  # nothing listens
    waiter = RunWaiter("redis://127.0.0.1:9/0", dead, output_limit=1024)
    known = RunOutcome(RunStatus.RUNNING)
    assert await waiter._look(ID, None, known) is known
    with waiter.watching() as run_id:
        assert await waiter.answer(run_id, {"timeout_s": 0.2}) == (
            202, orjson.dumps({"execution_id": run_id, "status": "queued"}),
            [(b"location", f"/api/v1/logs/{run_id}".encode()), (b"x-execution-id", run_id.encode())])
    await dead.aclose()
