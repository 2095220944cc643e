"""AutomateOS as a bench target: the four services and the scheduler as processes on real PostgreSQL and Redis.

Started like the `pg_stack` test fixture (automateos_devstack: PostgresServer, RedisServer,
Stack), with Redis append-only as in production. Beyond the `Target` interface it controls
the engine for the engine phase: how many workers of which class, and runs put on the queue
directly (what the ingress does after its lookup), released in one MULTI/EXEC.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import psycopg2
from redis import Redis
from rq import Worker
from rq.registry import StartedJobRegistry

from automateos_common.queue import accept_run, enqueue_run, make_queue, new_execution_id
from automateos_common.runs import RunState, RunStatus, RunStore
from automateos_common.settings import CommonSettings
from automateos_devstack.gateway import SERVICES
from automateos_devstack.servers import PostgresServer, RedisServer, free_port
from automateos_devstack.stack import Stack

from . import echo
from .proc import Memory, cpu_seconds, descendants, memory_of, parent_map, tree_memory
from .target import ProcessMemory, RunCounts, Target, Webhook

TRIGGER_ONLY: dict[str, Any] = {"nodes": [{"id": "trigger-1", "type": "webhook", "config": {"method": "POST"}}]}
QUEUE_NAME: str = CommonSettings.model_fields["queue_name"].default
FINISHED = ("success", "failed", "cancelled")


# Asked of the engine's code as it is on disk now, in the engine's environment: the code may change
# while a bench runs (the engine restarts between measurements), and the bench's own imports would not.
_ASK_WORKER_CLASS = "from automateos_engine.settings import get_settings; print(get_settings().worker_class)"


def chain_definition(length: int = 10) -> dict[str, Any]:
    """A webhook and length-1 `transform` nodes, each passing `n` on from its input."""
    nodes: list[dict[str, Any]] = [{"id": "hook", "type": "webhook", "config": {"method": "POST"}}]
    for i in range(1, length):
        ref = "{{input.payload.n}}" if i == 1 else "{{input.n}}"
        nodes.append({"id": f"t{i}", "type": "transform", "config": {"value": {"n": ref, "step": i}}})
    connections = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"nodes": nodes, "connections": connections}


def trigger_data(n: int) -> dict[str, Any]:
    """What the ingress makes of `POST {"n": n}` (automateos_ingress.payloads.trigger_data)."""
    return {"payload": {"n": n, "source": "bench"},
            "headers": {"host": "127.0.0.1", "content-type": "application/json", "user-agent": "bench"},
            "query": {}, "method": "POST"}


class AutomateOS(Target):
    name = "AutomateOS"
    routes = ("direct", "gateway")

    def __init__(self, work_dir: Path, *, workers: int, say: Callable[[str], None]) -> None:
        self.work_dir = work_dir
        self.say = say
        self.engine_workers = workers
        self.worker_class: str | None = None  # None: the engine's default
        self.resolved_worker_class = ""  # what the running engine uses, "(default)" marked
        self.pg: PostgresServer | None = None
        self.redis_server: RedisServer | None = None
        self.echo: subprocess.Popen[str] | None = None
        self.echo_url = ""
        self.stack: Stack | None = None
        self.redis: Redis | None = None
        self.db: Any = None
        self.api: httpx.Client | None = None
        self.headers: dict[str, str] = {}
        self.user_id = 0
        self.enqueue_method = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.say("starting PostgreSQL and Redis (real servers, as the integration tests do)")
        # Each kept before it starts, so that stop() finds it even when start() was interrupted half-way.
        self.pg = PostgresServer()
        self.pg.start()
        self.redis_server = RedisServer(data_dir=self.work_dir / "redis")  # append-only, as deployed
        self.redis_server.start()
        self.redis = Redis.from_url(self.redis_server.url)
        self.db = psycopg2.connect(host="127.0.0.1", port=self.pg.port, user="postgres", dbname=self.pg.database)
        self.db.autocommit = True
        self._start_echo()
        ports = {name: free_port() for name in (*SERVICES, "gateway")}
        env = {"AUTOMATEOS_DATA_DIR": str(self.work_dir / "data"), "REDIS_URL": self.redis_server.url,
               "DATABASE_URL": self.pg.url, "AUTOMATEOS_EGRESS_ALLOW": "127.0.0.1"}
        self.stack = Stack(env=env, ports=ports, workers=self.engine_workers, log_dir=self.log_dir)
        self.say(f"starting the services (logs in {self.log_dir})")
        self.stack.start()
        self.stack.wait_healthy(timeout=90)
        self._wait_workers(self.engine_workers)
        self._resolve_worker_class()
        self.api = httpx.Client(base_url=self.stack.gateway_url, timeout=30.0, trust_env=False)
        email, password = f"bench-{uuid.uuid4().hex[:8]}@example.com", "bench password, long enough"
        r = self.api.post("/api/v1/auth/register", json={"email": email, "password": password})
        _expect(r, 201, "register the bench user")
        self.user_id = int(r.json()["id"])
        r = self.api.post("/api/v1/auth/token", data={"username": email, "password": password})
        _expect(r, 200, "log in")
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    def _start_echo(self) -> None:
        self.echo, self.echo_url = echo.start()

    def stop(self) -> None:
        steps: list[tuple[str, Callable[[], None] | None]] = [
            ("API client", self.api.close if self.api else None),
            ("services", self.stack.stop if self.stack else None),
            ("echo server", self._stop_echo if self.echo else None),
            ("database connection", self.db.close if self.db else None),
            ("Redis client", self.redis.close if self.redis else None),
            ("Redis", self.redis_server.stop if self.redis_server else None),
            ("PostgreSQL", self.pg.stop if self.pg else None),
        ]
        for what, step in steps:
            if step is None:
                continue
            try:
                step()
            except Exception as exc:  # stop the rest whatever one of them does
                self.say(f"stopping {what} failed: {exc!r}")
        self.api = self.stack = self.echo = self.db = self.redis = self.redis_server = self.pg = None

    def _stop_echo(self) -> None:
        assert self.echo is not None
        if self.echo.poll() is None:
            self.echo.terminate()
            try:
                self.echo.wait(10)
            except subprocess.TimeoutExpired:
                self.echo.kill()
                self.echo.wait()

    # -- Target ------------------------------------------------------------------------------

    def create_workflow(self, label: str, definition: dict[str, Any]) -> Webhook:
        assert self.api is not None
        r = self.api.post("/api/v1/workflows", json={"name": label[:200], "definition": definition},
                          headers=self.headers)
        _expect(r, 201, f"create workflow {label!r}")
        body = r.json()
        return Webhook(label=label, url=str(body["webhook_url"]), key=str(body["id"]))

    def webhook(self, label: str, route: str = "direct", definition: dict[str, Any] | None = None) -> Webhook:
        """A fresh workflow of `definition` (None: trigger-only) and the URL of its webhook by `route`."""
        hook = self.create_workflow(label, TRIGGER_ONLY if definition is None else definition)
        if route == "gateway":
            return hook
        assert route == "direct" and self.stack is not None
        return Webhook(label=label, url=self.stack.url("ingress") + urlsplit(hook.url).path, key=hook.key)

    def run_counts(self, hook: Webhook) -> RunCounts:
        with self.db.cursor() as cur:
            cur.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = ANY(%s)), count(*) FILTER (WHERE status = 'success'),"
                " min(started_at), max(completed_at) FROM executions WHERE workflow_id = %s",
                (list(FINISHED), int(hook.key)))
            recorded, finished, succeeded, first, last = cur.fetchone()
        return RunCounts(recorded=recorded, finished=finished, succeeded=succeeded, first_started=first,
                         last_completed=last)

    def completed_times(self, hook: Webhook) -> list[datetime]:
        """`completed_at` of the workflow's ended runs in PostgreSQL: the engine's own timestamps (UTC), which
        the recorder copies from the run's state in Redis."""
        with self.db.cursor() as cur:
            cur.execute("SELECT completed_at FROM executions WHERE workflow_id = %s AND status = ANY(%s)"
                        " AND completed_at IS NOT NULL", (int(hook.key), list(FINISHED)))
            return [row[0] for row in cur.fetchall()]

    def _trees(self) -> dict[str, int]:
        """Name -> root pid of every process tree of the stack and its servers."""
        assert self.stack is not None
        trees = {name: proc.pid for name, proc in self.stack.procs.items()}
        for name, server in (("Redis", self.redis_server), ("PostgreSQL", self.pg)):
            if server is not None and server.proc is not None:
                trees[name] = server.proc.pid
        if self.echo is not None:  # the example's http_request calls it: busy in the sustained rows
            trees["echo server"] = self.echo.pid
        return trees

    def cpu_seconds(self) -> dict[str, float]:
        parents = parent_map()
        return {name: cpu_seconds(descendants(pid, parents)) for name, pid in self._trees().items()}

    def memory(self) -> list[ProcessMemory]:
        assert self.stack is not None and self.redis_server is not None and self.pg is not None
        parents = parent_map()
        out = []
        for name in (*SERVICES, "scheduler"):  # the scheduler: a process of the stack, as in compose
            if name not in self.stack.procs:
                continue
            mem = memory_of(descendants(self.stack.procs[name].pid, parents))
            note = f"supervisor + {self.engine_workers} {self.resolved_worker_class} workers" if name == "engine" \
                else ""
            out.append(ProcessMemory(name, mem, in_total=True, note=note))
        out.append(ProcessMemory("dev gateway", tree_memory(self.stack.procs["gateway"].pid), in_total=False,
                                 note="dev only (nginx in compose)"))
        for name, proc in (("Redis", self.redis_server.proc), ("PostgreSQL", self.pg.proc)):
            if proc is not None:
                out.append(ProcessMemory(name, memory_of(descendants(proc.pid, parents)), in_total=False,
                                         note="infrastructure"))
        return out

    # -- engine control ----------------------------------------------------------------------

    def _resolve_worker_class(self) -> None:
        assert self.stack is not None
        out = subprocess.run([sys.executable, "-c", _ASK_WORKER_CLASS], env=self.stack.full_env(),
                             capture_output=True, text=True, timeout=60)
        name = out.stdout.strip() or "unknown"
        self.resolved_worker_class = name if self.worker_class else f"{name} (default)"

    def stop_engine(self) -> None:
        """No workers at all (the supervisor starts at least one): the engine process goes."""
        assert self.stack is not None
        self.stack.stop("engine")
        self.engine_workers = 0

    def start_engine(self, workers: int) -> None:
        """The engine running with `workers` workers of the class it had; when it returns they are registered
        with RQ (and, with a backlog waiting, already at work). A no-op when it runs with that many."""
        assert self.stack is not None
        proc = self.stack.procs.get("engine")
        running = proc is not None and proc.poll() is None
        if running and self.engine_workers == workers:
            return
        if running:
            self.configure_engine(workers, self.worker_class)
            return
        self.stack.workers = self.engine_workers = workers
        self.stack.start("engine")
        self.stack.wait_healthy("engine", timeout=60)
        self._wait_workers(workers)

    def configure_engine(self, workers: int, worker_class: str | None) -> None:
        """Restart the engine with `workers` workers of `worker_class` (None: its default); idle when it returns."""
        assert self.stack is not None
        if (workers, worker_class) == (self.engine_workers, self.worker_class):
            return
        self.stack.stop("engine")
        env = {k: v for k, v in self.stack.env.items() if k != "AUTOMATEOS_WORKER_CLASS"}
        if worker_class is not None:
            env["AUTOMATEOS_WORKER_CLASS"] = worker_class
        self.stack.env = env
        self.stack.workers = workers
        self.engine_workers, self.worker_class = workers, worker_class
        self.stack.start("engine")
        self.stack.wait_healthy("engine", timeout=60)
        self._wait_workers(workers)
        self._resolve_worker_class()

    def _wait_workers(self, count: int, timeout: float = 60.0) -> None:
        """Until `count` of our engine's workers are registered with RQ (so they wait on the queue)."""
        assert self.stack is not None and self.redis is not None
        queue = make_queue(self.redis, QUEUE_NAME)
        deadline = time.monotonic() + timeout
        while True:
            ours = set(descendants(self.stack.procs["engine"].pid, parent_map()))
            ready = sum(1 for w in Worker.all(queue=queue) if w.pid in ours)
            if ready >= count:
                time.sleep(0.5)  # from registered to blocked on the queue
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready} of {count} engine workers registered with RQ after {timeout:.0f}s "
                                   f"(see {self.log_dir / 'engine.log'})")
            time.sleep(0.1)

    def enqueue(self, hook: Webhook, count: int) -> list[str]:
        """`count` runs of the workflow behind `hook`, all released to the workers at once."""
        assert self.redis is not None
        queue = make_queue(self.redis, QUEUE_NAME)
        runs = [RunState(id=new_execution_id(), workflow_id=int(hook.key), owner_id=self.user_id,
                         trigger="webhook", payload=trigger_data(i)["payload"], trigger_data=trigger_data(i))
                for i in range(count)]
        try:
            # submit_run's writes for every run in one transaction: the workers, idle on the queue,
            # all find work at the same moment, and none waits for the bench to enqueue.
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.multi()
                store = RunStore(self.redis)
                for run in runs:
                    store.write_new(pipe, run)
                    enqueue_run(queue, run.id, pipeline=pipe)
                pipe.execute()
            self.enqueue_method = "one MULTI/EXEC for all runs"
            return [run.id for run in runs]
        except (TypeError, AttributeError) as exc:  # the queue's internals changed: the public way, one by one
            self.say(f"batched enqueue failed ({exc!r}); using accept_run per run")
            ids = [accept_run(self.redis, queue, workflow_id=int(hook.key), owner_id=self.user_id,
                                        trigger="webhook", trigger_data=trigger_data(i)).id for i in range(count)]
            self.enqueue_method = "accept_run per run"
            return ids

    def backlog(self) -> int:
        """Jobs on the queue, being taken (RQ's intermediate list) or running (its started registry)."""
        assert self.redis is not None
        queue = make_queue(self.redis, QUEUE_NAME)
        started = StartedJobRegistry(queue=queue).get_job_count(cleanup=False)
        return int(queue.count) + int(self.redis.llen(queue.intermediate_queue_key)) + int(started)

    def discard_backlog(self) -> int:
        """Empty the queue (the runs stay `queued` for good); the jobs already running finish."""
        assert self.redis is not None
        empty = cast(Callable[[], int | None], make_queue(self.redis, QUEUE_NAME).empty)  # rq: untyped
        return int(empty() or 0)

    def run_states(self, ids: list[str]) -> RunCounts:
        """The runs as the engine left them in Redis (before the recorder has them)."""
        assert self.redis is not None
        runs = RunStore(self.redis).load_many(ids)
        done = [r for r in runs.values() if r.is_terminal]
        starts = [r.started_at for r in runs.values() if r.started_at is not None]
        ends = [r.completed_at for r in done if r.completed_at is not None]
        return RunCounts(recorded=len(runs), finished=len(done),
                         succeeded=sum(1 for r in done if r.status is RunStatus.SUCCESS),
                         first_started=min(starts, default=None), last_completed=max(ends, default=None))

    def worker_memory(self) -> list[Memory]:
        """Each engine worker's tree (worker, its work-horse and scheduler, if any), now."""
        assert self.stack is not None
        parents = parent_map()
        supervisor = self.stack.procs["engine"].pid
        # Every child of the supervisor is a worker: forked ones run its own command line, restarted ones `worker`.
        workers = [pid for pid, ppid in parents.items() if ppid == supervisor]
        return [memory_of(descendants(pid, parents)) for pid in sorted(workers)]


def _expect(r: httpx.Response, status: int, what: str) -> None:
    if r.status_code != status:
        raise RuntimeError(f"could not {what}: HTTP {r.status_code} {r.text[:500]}")

