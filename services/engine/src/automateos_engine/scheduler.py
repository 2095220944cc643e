"""The scheduler: starts the runs of `schedule` triggers (`python -m automateos_engine scheduler`).

Any number may run. Each due fire time is claimed and its run queued in ONE MULTI/EXEC, under
WATCH on the workflow's schedule hash: the claim (the ZSET score moved to the next time, `last`
raised to the time fired) and the run's writes (its state, its event, its RQ job) commit together
or not at all. Two schedulers that claim the same time race on that WATCH and one EXEC fails;
a scheduler killed at any point has either queued the run and moved the time on, or done
neither. `last` is a second guard: a time at or before the latest one fired is never fired again
(say the workflows service, with a clock behind ours, published a time already fired).

Missed times (everything was down, or the scheduler was): a due time later than its grace
(min(AUTOMATEOS_SCHEDULER_GRACE_S, max(5 s, the schedule's period))) is missed, and with it every
fire time up to now; the schedule's `missed` policy then fires one catch-up run standing for all
of them (`fire_once`) or none (`skip`), and the schedule continues with its first time after now.
A due time within its grace is fired as usual, each one in turn.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from pydantic import Field
from redis import Redis
from redis.exceptions import RedisError, WatchError

from automateos_common.errors import error_body
from automateos_common.headers import security_headers
from automateos_common.jsonutil import isoformat, utcnow
from automateos_common.logs import setup_logging
from automateos_common.queue import enqueue_run, make_queue, new_run
from automateos_common.runs import RunStore
from automateos_common.schedule_state import CHANGES_CHANNEL, SCHED_KEY, ZSET_KEY
from automateos_common.schedules import Schedule, ScheduleError, from_ms, local_iso, to_ms
from automateos_common.settings import CommonSettings

log = logging.getLogger("automateos_engine.scheduler")
MIN_GRACE_S = 5.0
MAX_COUNTED = 1000  # missed times counted one by one (cron); a catch-up says "at least" beyond


class SchedulerSettings(CommonSettings):
    """The scheduler's settings: the common ones and its own. Not the engine's (`EngineSettings`): those
    bring the secret store (cryptography), which the scheduler never opens (~7 MB)."""

    scheduler_host: str = Field(default="127.0.0.1", description="Bind address of the scheduler's health endpoint.")
    scheduler_port: int = Field(default=8005, description="Port of the scheduler's health endpoint.")
    scheduler_grace_s: float = Field(
        default=60.0, ge=1.0, le=86_400.0,
        description="A schedule's fire time found later than min(this, max(5 s, the schedule's period)) was missed "
                    "(the scheduler or Redis was down): its `missed` policy applies instead of a normal run.",
    )
    scheduler_poll_s: float = Field(
        default=1.0, ge=0.05, le=10.0,
        description="Longest wait between two looks at the schedules (changes are announced and wake it sooner).",
    )


@lru_cache(maxsize=1)
def get_scheduler_settings() -> SchedulerSettings:
    return SchedulerSettings()


@dataclass(frozen=True)
class Fired:
    """What one claim did: `outcome` fired | caught_up | skipped | already_fired | raced | gone."""

    outcome: str
    workflow_id: int
    scheduled_ms: int
    run_id: str | None = None
    next_ms: int | None = None


def trigger_data(sched: Schedule, scheduled: datetime, fired: datetime,
                 catch_up: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's trigger data: the webhook trigger's shape, with the schedule's facts as the payload."""
    payload: dict[str, Any] = {
        "scheduled_at": isoformat(scheduled), "scheduled_local": local_iso(scheduled, sched.tz),
        "fired_at": isoformat(fired), "timezone": sched.timezone,
    }
    if sched.cron is not None:
        payload["cron"] = sched.cron
    else:
        payload["interval_seconds"] = sched.interval_s
    payload["catch_up"] = catch_up
    return {"payload": payload, "headers": {}, "query": {}, "method": None}


def missed_times(sched: Schedule, first: datetime, now: datetime) -> tuple[int, datetime, bool]:
    """(how many fire times in [first, now], the latest of them, whether the count stopped at MAX_COUNTED)."""
    if sched.interval_s is not None:
        n = (int(now.timestamp()) - int(first.timestamp())) // sched.interval_s
        return n + 1, first + timedelta(seconds=n * sched.interval_s), False
    count, latest = 1, first
    for t in sched.times_after(first, MAX_COUNTED):
        if t > now:
            return count, latest, False
        count, latest = count + 1, t
    # Still not past now: the latest time at or before now, found by stepping back from now.
    return count, _latest_at_or_before(sched, now, latest), True


def _latest_at_or_before(sched: Schedule, now: datetime, floor: datetime) -> datetime:
    for back in (3600, 86400, 31 * 86400, 366 * 86400):
        times = [t for t in sched.times_after(max(floor, now - timedelta(seconds=back)), MAX_COUNTED) if t <= now]
        if times:
            return times[-1]
    return floor


class Scheduler:
    def __init__(self, redis: Redis, queue_name: str, *, grace_s: float = 60.0, poll_s: float = 1.0,
                 batch: int = 100, clock: Callable[[], datetime] = utcnow) -> None:
        self.redis, self.queue = redis, make_queue(redis, queue_name)
        self.grace_s, self.poll_s, self.batch, self.clock = grace_s, poll_s, batch, clock
        self.last_ok = 0.0  # time.monotonic() of the last look that reached Redis

    def tick(self) -> float:
        """Fire what is due now; returns how long to wait before the next look (at most poll_s)."""
        now = self.clock()
        now_ms = to_ms(now)
        due = cast(list[tuple[bytes, float]],
                   self.redis.zrangebyscore(ZSET_KEY, "-inf", now_ms, start=0, num=self.batch, withscores=True))
        for member, score in due:
            try:
                self.fire(int(member), int(score), now)
            except RedisError:
                raise
            except Exception:  # one bad schedule must not stop the others
                log.exception("schedule of workflow %s could not be fired; retrying", member)
        self.last_ok = time.monotonic()
        if len(due) == self.batch:
            return 0.0
        first = cast(list[tuple[bytes, float]], self.redis.zrange(ZSET_KEY, 0, 0, withscores=True))
        if not first:
            return self.poll_s
        return max(0.0, min(self.poll_s, (first[0][1] - to_ms(self.clock())) / 1000))

    def grace_for(self, sched: Schedule, due: datetime) -> float:
        try:
            period = (sched.next_after(due) - due).total_seconds()
        except ScheduleError:
            period = self.grace_s
        return min(self.grace_s, max(MIN_GRACE_S, period))

    def fire(self, workflow_id: int, due_ms: int, now: datetime) -> Fired:
        """Claim the fire time `due_ms` of the workflow and queue its run, atomically (see the module doc)."""
        key = SCHED_KEY.format(workflow_id)
        with self.redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                raw = pipe.hgetall(key)
                score = pipe.zscore(ZSET_KEY, workflow_id)
                if score is None or int(score) != due_ms:
                    return Fired("raced", workflow_id, due_ms)  # another scheduler, or an edit, got there first
                spec = raw.get(b"spec")
                if not spec:
                    pipe.multi()
                    pipe.zrem(ZSET_KEY, workflow_id)
                    pipe.execute()
                    return Fired("gone", workflow_id, due_ms)
                sched = Schedule.from_json(spec)
                due, last_ms = from_ms(due_ms), int(raw.get(b"last") or 0)
                run_id, fired_ms, outcome = None, due_ms, "fired"
                catch_up: dict[str, Any] | None = None
                if due_ms <= last_ms:
                    outcome, fired_ms = "already_fired", last_ms
                    nxt = sched.next_after(max(from_ms(last_ms), due))
                elif (now - due).total_seconds() <= self.grace_for(sched, due):
                    nxt = sched.next_after(due)  # still at or before now: the next look fires it too
                else:
                    count, latest, capped = missed_times(sched, due, now)
                    nxt, fired_ms = sched.next_after(now), to_ms(latest)
                    outcome = "skipped" if sched.missed == "skip" else "caught_up"
                    catch_up = {"missed": count, "more": capped, "first": isoformat(due), "last": isoformat(latest)}
                pipe.multi()
                next_ms = to_ms(nxt)
                pipe.zadd(ZSET_KEY, {str(workflow_id): next_ms})
                pipe.hset(key, mapping={"next": next_ms, "last": max(fired_ms, last_ms)})
                if outcome in ("fired", "caught_up"):
                    scheduled = due if outcome == "fired" else from_ms(fired_ms)
                    run = new_run(workflow_id=workflow_id, owner_id=int(raw[b"owner"]), trigger="schedule",
                                  trigger_data=trigger_data(sched, scheduled, now,
                                                            catch_up if outcome == "caught_up" else None))
                    RunStore(self.redis).write_new(pipe, run)
                    enqueue_run(self.queue, run.id, pipeline=pipe)
                    run_id = run.id
                pipe.execute()
            except WatchError:
                return Fired("raced", workflow_id, due_ms)
        if catch_up is not None:
            log.warning("workflow %s: %s%s fire time(s) from %s to %s missed (the scheduler or Redis was down); %s; "
                        "next at %s", workflow_id, catch_up["missed"], "+" if catch_up["more"] else "",
                        catch_up["first"], catch_up["last"],
                        "skipped by its policy" if outcome == "skipped" else f"one catch-up run {run_id}",
                        isoformat(nxt))
        else:
            log.debug("workflow %s: %s at %s, run %s", workflow_id, outcome, isoformat(due), run_id)
        return Fired(outcome, workflow_id, due_ms, run_id, next_ms)

    def serve(self, stop: threading.Event) -> None:
        """Look, fire, wait for the next due time or a change announcement; until `stop`."""
        pubsub = None
        while not stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    pubsub.subscribe(CHANGES_CHANNEL)
                wait = self.tick()
                if wait > 0 and pubsub.get_message(timeout=wait) is not None:
                    while pubsub.get_message(timeout=0) is not None:  # one look for a burst of changes
                        pass
            except RedisError as exc:
                log.warning("scheduler: Redis unavailable (%s); retrying", exc)
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except RedisError:
                        pass
                    pubsub = None
                stop.wait(1.0)
        if pubsub is not None:
            pubsub.close()


def serve_health(scheduler: Scheduler, redis: Redis, host: str, port: int, *, stale_s: float) -> ThreadingHTTPServer:
    """`GET /healthz`: 200 while Redis answers and the loop looked recently; else 503 in the error envelope."""
    headers = [(k.decode(), v.decode()) for k, v in security_headers()]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/healthz", "/api/v1/scheduler/healthz"):
                self._send(404, error_body("NOT_FOUND", "Not found"))
                return
            try:
                redis.ping()
                checks = {"redis": "ok"}
            except RedisError as exc:
                checks = {"redis": f"unavailable: {type(exc).__name__}"}
            behind = time.monotonic() - scheduler.last_ok
            checks["loop"] = "ok" if behind <= stale_s else f"unavailable: no look for {behind:.0f} s"
            body: dict[str, Any] = {"status": "ok", "service": "scheduler", "checks": checks}
            if all(v == "ok" for v in checks.values()):
                self._send(200, body)
                return
            down = ", ".join(k for k, v in checks.items() if v != "ok")
            body.update(status="unavailable", **error_body("SERVICE_UNAVAILABLE", f"scheduler cannot serve: {down} "
                                                           "unavailable", {"checks": checks}))
            self._send(503, body, retry_after=True)

        def _send(self, status: int, body: dict[str, Any], retry_after: bool = False) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if retry_after:
                self.send_header("Retry-After", "5")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # no access log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="scheduler-health").start()
    return server


def run_scheduler(*, host: str | None = None, port: int | None = None) -> None:
    settings = get_scheduler_settings()
    setup_logging(settings.log_level)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
    scheduler = Scheduler(redis, settings.queue_name, grace_s=settings.scheduler_grace_s,
                          poll_s=settings.scheduler_poll_s)
    health_redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    server = serve_health(scheduler, health_redis, host or settings.scheduler_host, port or settings.scheduler_port,
                          stale_s=max(10.0, 5 * settings.scheduler_poll_s))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("scheduler started (grace %s s, health on %s:%s)", settings.scheduler_grace_s,
             *server.server_address[:2])
    try:
        scheduler.serve(stop)
    finally:
        server.shutdown()
        log.info("scheduler stopped")
