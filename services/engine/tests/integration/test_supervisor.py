"""`automateos-engine run`: workers forked from the supervisor (shared pages), a dead one replaced by a
fresh process, health that counts them, and a stop that takes them all down."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from rq import Worker
from services.engine.tests.factories import publish, queue_run, wait_for

from automateos_common.queue import make_queue
from automateos_common.runs import RunStatus, RunStore
from automateos_devstack.servers import free_port

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return sorted(out)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_the_supervisor_forks_its_workers_replaces_a_dead_one_and_stops_them_all(redis_client):
    proc, port, workers = _start(redis_client)
    queue = make_queue(redis_client, "test")  # the queue queue_run fills
    try:
        def registered() -> list[Worker]:
            return [w for w in Worker.all(queue=queue) if w.pid in _children(proc.pid)]

        # Forked: children of the supervisor running its own command line (a spawned worker says `worker`).
        assert all(" run " in _cmdline(w.pid) for w in workers)
        health = wait_for(lambda: _get(port), 30, "the health endpoint")
        assert health.status_code == 200 and health.json()["checks"]["workers"] == "ok"

        transform = {"id": "v", "type": "transform", "config": {"value": "{{trigger.payload.n}}"}}
        publish(redis_client, {"nodes": [{"id": "t", "type": "webhook"}, transform]})
        runs = [queue_run(redis_client, {"n": i}) for i in range(20)]
        wait_for(lambda: all((r := RunStore(redis_client).load(q.id)) and r.status == RunStatus.SUCCESS for q in runs),
               30, "the runs to be executed by the forked workers")

        doomed = workers[0].pid
        os.kill(doomed, signal.SIGKILL)
        replaced = wait_for(lambda: [w for w in registered() if w.pid != doomed and w.pid != workers[1].pid], 30,
                          "a replacement worker")
        assert " worker" in _cmdline(replaced[0].pid)  # a fresh process, not a fork of a threaded supervisor
        wait_for(lambda: _get(port) and _get(port).json()["checks"]["workers"] == "ok", 30, "health to recover")
        pids = [w.pid for w in registered()]
        proc.send_signal(signal.SIGTERM)  # to the supervisor alone, as `docker stop` does
        assert proc.wait(30) == 0
        assert not [pid for pid in pids if _alive(pid)]  # it stopped its workers before it went
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _get(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return None


def _session(sid: int) -> list[int]:
    """Live processes of session `sid` (the supervisor's, started with start_new_session)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                out.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return out


def _start(redis_client) -> tuple[subprocess.Popen[bytes], int, list[Worker]]:
    kw = redis_client.connection_pool.connection_kwargs
    port = free_port()
    env = {**os.environ, "REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}", "AUTOMATEOS_QUEUE_NAME": "test",
           "AUTOMATEOS_INTERNAL_TOKEN": "t", "AUTOMATEOS_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "automateos_engine", "run", "--workers", "2", "--port", str(port)],
                            env=env, start_new_session=True)
    queue = make_queue(redis_client, "test")
    try:
        workers = wait_for(lambda: len(ws := [w for w in Worker.all(queue=queue) if w.pid in _children(proc.pid)])
                           == 2 and ws, 60, "two workers to register")
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc, port, workers


def test_a_signal_to_the_whole_group_stops_every_worker_and_replaces_none(redis_client):
    # Ctrl-C in `make dev`, or a process manager signalling the group: the workers get the signal as
    # soon as the supervisor does, and exit first; the supervisor must not take that for a crash.
    proc, port, _ = _start(redis_client)
    try:
        wait_for(lambda: _get(port), 30, "the health endpoint")  # its signal handling is up
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        time.sleep(2.5)  # a replacement would be started ~1.5 s after a worker's exit
        assert _session(proc.pid) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_no_worker_outlives_a_killed_supervisor(redis_client):
    proc, _, workers = _start(redis_client)
    try:
        os.kill(workers[0].pid, signal.SIGKILL)  # so that one worker is a replacement (spawned, not forked)
        queue = make_queue(redis_client, "test")
        wait_for(lambda: len([w for w in Worker.all(queue=queue) if w.pid in _children(proc.pid)]) == 2, 30,
                 "a replacement worker")
        proc.kill()  # SIGKILL: no clean-up of its own; the kernel tells its workers (PR_SET_PDEATHSIG)
        proc.wait()
        wait_for(lambda: _session(proc.pid) == [], 30, "the workers to exit after their supervisor")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
