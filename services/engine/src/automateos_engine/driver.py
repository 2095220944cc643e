"""Driving one run through its graph: which steps are ready, running them, and what follows.

One `RunDriver` per pick-up of a run. It works in rounds on the main thread: start every ready
step (up to `settings.max_parallel`, each attempt on a thread of its own), wait for an outcome,
record it in Redis at once, and look again. Nothing it knows lives only in memory: a run picked
up after a crash rebuilds the same picture from its steps.

A step's readiness comes from its inbound connections. A connection is *open* while its source
has not finished, *taken* when the source succeeded through it (the source's `branch`, if any,
is the connection's `output`, and the source did not stop its path), and *not taken* otherwise.
A step runs when none is open and at least one is taken, and is `skipped` when none is taken.
So a join after if/else runs after whichever branch ran, and a `merge` sees every branch settle.

A loop's body runs as one frame per item (step keys `node[i]`), at most `concurrency` frames at
a time. Waits (a delay, a retry's back-off) are steps in `waiting` with `resume_at`: a short one
is waited here, a long one parks the run (`waiting`) and gives the worker back.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from automateos_common.control import CANCELLED_MESSAGE
from automateos_common.errors import NodeError, NodeExecutionError, field_path
from automateos_common.jsonutil import isoformat, utcnow
from automateos_common.nodes.base import NodeContext, NodeResult
from automateos_common.nodes.definition import Edge, Plan, PlannedNode, validated_config
from automateos_common.nodes.templates import LOOP, TemplateError, resolve
from automateos_common.runs import RunState, RunStatus, StepState, StepStatus, step_key

from .retry import Failure, next_wait
from .threads import STEP_THREADS

log = logging.getLogger(__name__)

Frame = tuple[str, int] | None  # (loop id, item index) inside a loop's body; None at the top level


@dataclass
class EngineConfig:
    """What the engine's settings decide about every run (see EngineSettings for the knobs)."""

    lease_s: float = 8.0
    heartbeat_s: float = 0.5  # lease renewal and control-request polling
    delay_inline_max_s: float = 2.0  # waits up to this are waited on the worker; longer ones park the run
    node_timeout_s: float = 300.0  # an attempt's time limit when the node sets no `timeout_s`
    run_max_steps: int = 1000
    max_interruptions: int = 5  # pick-ups of a run found `running` (its worker died) before giving up


@dataclass
class Outcome:
    result: NodeResult | None = None
    failure: Failure | None = None
    config: BaseModel | None = None  # the resolved config (a loop needs it again for collect())


@dataclass
class InFlight:
    key: str
    node: PlannedNode
    frame: Frame
    attempt: int
    started: datetime
    deadline: float  # time.monotonic()
    timeout_s: float


@dataclass
class LoopState:
    items: list[Any]
    concurrency: int
    config: BaseModel
    next_index: int = 0
    active: set[int] = field(default_factory=set)
    results: dict[int, Any] = field(default_factory=dict)


class Stop(Exception):
    """The lease was lost: another worker owns the run now; write nothing more."""


class RunDriver:
    def __init__(self, *, run: RunState, plan: Plan, config: EngineConfig, persist: Any, node_context: Any,
                 control: Any) -> None:
        self.run = run
        self.plan = plan
        self.cfg = config
        self._persist = persist  # (steps, order=, result=, definition=, clear_control=) -> None
        # Writes wait here until the round ends (`_flush`), so a round is one Redis round trip; they are
        # always flushed before a step's thread starts and before the driver waits for anything.
        self._dirty: dict[str, StepState] = {}
        self._dirty_order = False
        self._dirty_run = False
        self._dirty_definition = False
        self._launch: list[tuple[InFlight, NodeContext, Any]] = []
        self._node_context = node_context  # (**kwargs) -> NodeContext
        self._control = control  # () -> "cancel" | "pause" | "lost" | None
        self.nodes = plan.by_id()
        self.steps = run.step_map()
        self.top = [n for n in plan.nodes if n.loop is None]
        self.loops: dict[str, LoopState] = {}
        self.inflight: dict[str, InFlight] = {}
        self.outcomes: queue.Queue[tuple[str, int, Outcome]] = queue.Queue()
        self.failure: str | None = None
        self.pausing = False
        started = run.started_at or utcnow()
        timeout = plan.settings.timeout_s
        self.run_deadline = started + timedelta(seconds=timeout) if timeout else None

    # ----------------------------------------------------------------- the loop

    def drive(self) -> datetime | None:
        """Run until the run finishes, pauses or parks; returns when it needs a worker again (parked)."""
        while True:
            control = self._control()
            if control == "lost":
                raise Stop
            if control == "cancel":
                self._finish_cancelled()
                return None
            if control == "pause":
                self.pausing = True
            if self.run_deadline is not None and utcnow() >= self.run_deadline:
                self._finish_timed_out()
                return None
            if self.failure is None and not self.pausing:
                self._advance()
            if self._launch or self.inflight:
                self._flush()  # before anything starts or is waited for; the endings below flush themselves
            for flight, ctx, node_input in self._launch:  # after their `running` state is in Redis
                STEP_THREADS.submit(self._attempt, flight, ctx, node_input)
            self._launch.clear()
            if not self.inflight:
                if self.failure is not None:
                    self._finish(RunStatus.FAILED)
                    return None
                if self.pausing:
                    self._finish_paused()
                    return None
                earliest = self._earliest_wait()
                if earliest is None:
                    self._finish(RunStatus.SUCCESS)
                    return None
                if self.run_deadline is not None:
                    earliest = min(earliest, self.run_deadline)
                delay = (earliest - utcnow()).total_seconds()
                if delay > self.cfg.delay_inline_max_s:
                    self._park(earliest)
                    return earliest
                self._flush()
                time.sleep(max(0.0, min(delay, self.cfg.heartbeat_s)))
                continue
            self._wait_for_outcomes()
            self._check_timeouts()

    def _wait_for_outcomes(self) -> None:
        timeout = self.cfg.heartbeat_s
        earliest = self._earliest_wait()
        if earliest is not None:
            timeout = min(timeout, max(0.0, (earliest - utcnow()).total_seconds()))
        if self.inflight:
            soonest = min(f.deadline for f in self.inflight.values())
            timeout = min(timeout, max(0.0, soonest - time.monotonic()))
        try:
            item = self.outcomes.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return
        self._on_outcome(*item)
        while True:  # everything else that finished meanwhile, in one go
            try:
                self._on_outcome(*self.outcomes.get_nowait())
            except queue.Empty:
                return

    # ----------------------------------------------------------------- what is ready

    # ----------------------------------------------------------------- writes

    def mark_started(self, *, definition: bool) -> None:
        """The run was just picked up: its state (and, newly pinned, its definition) goes out with the first round."""
        self._dirty_run = True
        self._dirty_definition = self._dirty_definition or definition

    def _save(self, steps: list[StepState], *, order: bool = False) -> None:
        for step in steps:
            self._dirty[step.key] = step
        self._dirty_order = self._dirty_order or order
        self._dirty_run = True

    def _flush(self, *, result: bool = False, clear_control: bool = False, release: bool = False,
               due: datetime | None = None) -> None:
        """Write what changed. `release`: this is the pick-up's last write; the lease goes back with it
        (`due`: when the run needs a worker again)."""
        if not (self._dirty_run or result or clear_control or release):
            return
        self._persist(list(self._dirty.values()), order=self._dirty_order, result=result,
                      definition=self._dirty_definition, clear_control=clear_control, release=release,
                      due=due.timestamp() if due is not None else None)
        self._dirty.clear()
        self._dirty_order = self._dirty_run = self._dirty_definition = False

    def prepare(self) -> None:
        """A step for every top-level node (a replay's copied steps and a resumed run's are kept)."""
        added = []
        for node in self.top:
            if node.id not in self.steps:
                step = StepState(node_id=node.id, type=node.type, position=0)
                self.run.steps.append(step)
                self.steps[node.id] = step
                added.append(step)
        if added:
            # Top-level steps in plan order, then loop items' steps as they were created.
            rank = {n.id: i for i, n in enumerate(self.top)}
            self.run.steps.sort(key=lambda s: (s.iteration is not None, rank.get(s.node_id, 0), s.position))
            for i, s in enumerate(self.run.steps):
                s.position = i
            self._save(self.run.steps, order=True)

    def _edge_state(self, edge: Edge, frame: Frame) -> str:
        """'open' (its source has not finished), 'taken' or 'dead'."""
        if frame is not None and edge.src == frame[0]:
            return "taken"  # the loop's `each` output, for this item
        src = self.steps.get(self._key(edge.src, frame))
        if src is None or not src.is_terminal:
            return "open"
        if src.status != StepStatus.SUCCESS or src.stopped:
            return "dead"
        if edge.output is not None and src.branch is not None and src.branch != edge.output:
            return "dead"
        return "taken"

    def _key(self, node_id: str, frame: Frame) -> str:
        return step_key(node_id, frame[1] if frame is not None and self.nodes[node_id].loop else None)

    def _frames(self) -> Iterator[tuple[PlannedNode, Frame]]:
        for node in self.top:
            yield node, None
        for loop_id, state in self.loops.items():
            body = [self.nodes[b] for b in self.nodes[loop_id].body]
            for i in sorted(state.active):
                for node in body:
                    yield node, (loop_id, i)

    def _advance(self) -> None:
        """Finish due waits, skip what cannot run, start what can; repeat until nothing changes."""
        changed = True
        while changed and self.failure is None:
            changed = False
            now = utcnow()
            for node, frame in list(self._frames()):
                if self.failure is not None:
                    return
                key = self._key(node.id, frame)
                step = self.steps[key]
                if step.status == StepStatus.WAITING:
                    if step.resume_at is not None and step.resume_at > now:
                        continue
                    if step.error is None:  # a delay: it is over
                        self._succeed(step, frame, step.output, note=step.note)
                        changed = True
                    elif len(self.inflight) < self.plan.settings.max_parallel:  # a retry's back-off is over
                        self._start(node, frame)
                        changed = True
                    continue
                if step.status not in (StepStatus.PENDING, StepStatus.RUNNING) or key in self.inflight:
                    continue
                if step.status == StepStatus.RUNNING and node.id in self.loops:
                    continue  # a loop whose items are running
                states = [self._edge_state(e, frame) for e in node.inbound]
                if "open" in states:
                    continue
                if node.inbound and "taken" not in states:
                    step.set_status(StepStatus.SKIPPED)
                    self._save([step])
                    self._frame_progress(frame)
                    changed = True
                    continue
                if len(self.inflight) >= self.plan.settings.max_parallel and not node.cls.inline:
                    continue
                self._start(node, frame)
                changed = True
            changed = self._start_iterations() or changed

    # ----------------------------------------------------------------- running a step

    def _scope(self, node: PlannedNode, frame: Frame) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(outputs visible to the node, its taken inputs by source, its loop variables)."""
        outputs = {n.id: self.steps[n.id].output for n in self.top if self.steps[n.id].status == StepStatus.SUCCESS}
        loop_vars: dict[str, Any] = {}
        if frame is not None:
            state = self.loops[frame[0]]
            for b in self.nodes[frame[0]].body:
                s = self.steps.get(step_key(b, frame[1]))
                if s is not None and s.status == StepStatus.SUCCESS:
                    outputs[b] = s.output
            loop_vars = {"item": state.items[frame[1]], "index": frame[1], "node": frame[0],
                         "count": len(state.items)}
        inputs: dict[str, Any] = {}
        for e in node.inbound:
            if self._edge_state(e, frame) != "taken":
                continue
            if frame is not None and e.src == frame[0]:
                inputs[e.src] = loop_vars["item"]
            else:
                inputs[e.src] = self.steps[self._key(e.src, frame)].output
        return outputs, inputs, loop_vars

    def _start(self, node: PlannedNode, frame: Frame) -> None:
        key = self._key(node.id, frame)
        step = self.steps[key]
        outputs, inputs, loop_vars = self._scope(node, frame)
        node_input = next(iter(inputs.values())) if len(inputs) == 1 else (inputs or None)
        now = utcnow()
        step.set_status(StepStatus.RUNNING)
        step.attempts += 1
        step.started_at = step.started_at or now
        step.input = node_input
        step.error = step.error_kind = step.note = None
        step.resume_at = None
        self._save([step])
        timeout = node.timeout_s or self.cfg.node_timeout_s
        scope = {**outputs, "trigger": self.run.trigger_data, "input": node_input}
        if frame is not None:
            scope[LOOP] = loop_vars
        ctx: NodeContext = self._node_context(
            node_id=node.id, scope=scope, outputs=outputs, attempt=step.attempts, inputs=inputs,
            iteration=frame[1] if frame is not None else None, deadline=time.monotonic() + timeout,
            retry_on=frozenset(node.retry.on) if node.retry else frozenset(),
        )
        flight = InFlight(key=key, node=node, frame=frame, attempt=step.attempts, started=now,
                          deadline=time.monotonic() + timeout, timeout_s=timeout)
        self.inflight[key] = flight
        if node.cls.inline:  # quick and without I/O: run it here, now
            self._on_outcome(key, flight.attempt, self._run_attempt(flight, ctx, node_input))
        else:
            self._launch.append((flight, ctx, node_input))

    def _attempt(self, flight: InFlight, ctx: NodeContext, node_input: Any) -> None:
        """One attempt, on a step thread (threads.py); the outcome goes back to the driver's queue."""
        self.outcomes.put((flight.key, flight.attempt, self._run_attempt(flight, ctx, node_input)))

    def _run_attempt(self, flight: InFlight, ctx: NodeContext, node_input: Any) -> Outcome:
        node = flight.node
        outcome = Outcome()
        try:
            raw = {k: (v if k in node.cls.raw_fields else resolve(v, ctx.scope)) for k, v in node.config.items()}
            config = validated_config(node.cls, raw, resolved=True)
            outcome.config = config
            out = node.cls().run(ctx, config, node_input)
            outcome.result = out if isinstance(out, NodeResult) else NodeResult(output=out)
        except NodeExecutionError as exc:
            outcome.failure = Failure(exc.message, exc.kind, exc.retry_after)
        except NodeError as exc:
            outcome.failure = Failure(exc.message)
        except TemplateError as exc:
            outcome.failure = Failure(str(exc))
        except PydanticValidationError as exc:
            e = exc.errors()[0]
            outcome.failure = Failure(f"config.{field_path(tuple(e['loc']))}: {e['msg']} (after resolving references)")
        except Exception as exc:
            # A bug in a node must not kill the run record; details go to the log, not to history.
            log.exception("node %s (%s) raised", flight.key, node.type)
            outcome.failure = Failure(f"internal error in node type '{node.type}' ({type(exc).__name__})")
        return outcome

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for flight in [f for f in self.inflight.values() if now > f.deadline]:
            # The attempt's thread is left to end on its own; whatever it returns later is ignored.
            self._on_outcome(flight.key, flight.attempt,
                             Outcome(failure=Failure(f"timed out after {flight.timeout_s:g}s", "timeout")))

    def _on_outcome(self, key: str, attempt: int, outcome: Outcome) -> None:
        flight = self.inflight.get(key)
        if flight is None or flight.attempt != attempt:
            return  # an abandoned attempt (timed out, cancelled) that ended after all
        del self.inflight[key]
        step, node, frame = self.steps[key], flight.node, flight.frame
        entry: dict[str, Any] = {"attempt": attempt, "started_at": _iso(flight.started), "completed_at": _iso(utcnow()),
                                 "error": None, "error_kind": None, "retry_in_s": None}
        if outcome.failure is not None:
            failure = outcome.failure
            entry.update(error=failure.message, error_kind=failure.kind)
            wait = next_wait(node.retry, step.attempts, failure)
            step.error, step.error_kind = failure.message, failure.kind
            if wait is not None and self.failure is None:
                entry["retry_in_s"] = round(wait, 3)
                step.attempt_log.append(entry)
                step.set_status(StepStatus.WAITING)
                step.resume_at = utcnow() + timedelta(seconds=wait)
                step.note = f"attempt {attempt} failed; next attempt in {wait:g}s"
                self._save([step])
                return
            step.attempt_log.append(entry)
            self._fail_step(step, failure.message)
            return
        result = outcome.result
        assert result is not None
        step.attempt_log.append(entry)
        if result.iterate is not None and node.cls.body_output is not None:
            assert outcome.config is not None
            self._begin_loop(step, node, result, outcome.config)
            return
        if result.wait_until is not None and result.wait_until > utcnow():
            step.set_status(StepStatus.WAITING)
            step.resume_at = result.wait_until
            step.output = result.output
            step.note = result.note
            self._save([step])
            return
        self._succeed(step, frame, result.output, note=result.note, branch=result.branch, stopped=result.stop)

    def _succeed(self, step: StepState, frame: Frame, output: Any, *, note: str | None,
                 branch: str | None = None, stopped: bool = False) -> None:
        step.set_status(StepStatus.SUCCESS)
        step.output, step.note, step.branch, step.stopped = output, note, branch, stopped
        step.error = step.error_kind = None
        step.resume_at = None
        step.completed_at = utcnow()
        self._save([step])
        self._frame_progress(frame)

    def _fail_step(self, step: StepState, message: str) -> None:
        step.set_status(StepStatus.FAILED)
        step.error = message
        step.resume_at = None
        step.completed_at = utcnow()
        self._save([step])
        if self.failure is None:
            self.failure = f"node '{step.key}' failed: {message}"
            where = self.nodes[step.node_id].loop
            if where is not None:
                loop_step = self.steps[where]
                if loop_step.status == StepStatus.RUNNING:
                    self.inflight.pop(where, None)
                    loop_step.set_status(StepStatus.FAILED)
                    loop_step.error = f"item {step.iteration}: node '{step.node_id}' failed: {message}"
                    loop_step.completed_at = utcnow()
                    self._save([loop_step])

    # ----------------------------------------------------------------- loops

    def _begin_loop(self, step: StepState, node: PlannedNode, result: NodeResult, config: BaseModel) -> None:
        items = list(result.iterate or [])
        state = LoopState(items=items, concurrency=max(1, result.concurrency), config=config)
        for i in range(len(items)):  # a resumed loop: the items whose steps exist already
            keys = [step_key(b, i) for b in node.body]
            if all(k in self.steps for k in keys):
                if all(self.steps[k].is_terminal for k in keys):
                    state.results[i] = self._item_result(node, i)
                else:
                    state.active.add(i)
                state.next_index = i + 1
        self.loops[node.id] = state
        step.note = result.note or f"{len(items)} items"
        self._save([step])
        self._maybe_finish_loop(node.id)

    def _start_iterations(self) -> bool:
        started = False
        for loop_id, state in self.loops.items():
            loop_step = self.steps[loop_id]
            if loop_step.status != StepStatus.RUNNING:
                continue
            body = self.nodes[loop_id].body
            while len(state.active) < state.concurrency and state.next_index < len(state.items):
                if len(self.run.steps) + len(body) > self.cfg.run_max_steps:
                    self._fail_step(loop_step, f"the run reached {self.cfg.run_max_steps} steps, its limit "
                                               "(AUTOMATEOS_RUN_MAX_STEPS)")
                    return started
                i = state.next_index
                state.next_index += 1
                new = []
                for b in body:
                    key = step_key(b, i)
                    if key not in self.steps:
                        s = StepState(node_id=b, type=self.nodes[b].type, position=len(self.run.steps),
                                      iteration=i, loop=loop_id)
                        self.run.steps.append(s)
                        self.steps[key] = s
                        new.append(s)
                if new:
                    self._save(new, order=True)
                state.active.add(i)
                started = True
        return started

    def _item_result(self, loop: PlannedNode, i: int) -> Any:
        body = set(loop.body)
        sinks = [b for b in loop.body if not any(e.dst in body for e in self.nodes[b].outbound)]
        ran = {b: self.steps[step_key(b, i)].output for b in sinks
               if self.steps[step_key(b, i)].status == StepStatus.SUCCESS}
        if len(sinks) == 1:
            return ran.get(sinks[0])
        return ran

    def _frame_progress(self, frame: Frame) -> None:
        if frame is None:
            return
        loop_id, i = frame
        state = self.loops[loop_id]
        loop = self.nodes[loop_id]
        if i in state.active and all(self.steps[step_key(b, i)].is_terminal for b in loop.body):
            state.active.discard(i)
            state.results[i] = self._item_result(loop, i)
            self._maybe_finish_loop(loop_id)

    def _maybe_finish_loop(self, loop_id: str) -> None:
        state = self.loops[loop_id]
        step = self.steps[loop_id]
        if step.status != StepStatus.RUNNING or len(state.results) < len(state.items):
            return
        node = self.nodes[loop_id]
        results = [state.results[i] for i in range(len(state.items))]
        try:
            done = node.cls().collect(state.config, state.items, results)
        except Exception as exc:
            log.exception("loop %s failed to collect its results", loop_id)
            self._fail_step(step, f"internal error in node type '{node.type}' ({type(exc).__name__})")
            return
        self._succeed(step, None, done.output, note=done.note or step.note, branch=done.branch,
                      stopped=done.stop)

    # ----------------------------------------------------------------- endings

    def _earliest_wait(self) -> datetime | None:
        waits = [s.resume_at for s in self.run.steps if s.status == StepStatus.WAITING and s.resume_at is not None]
        return min(waits) if waits else None

    def _close_open_steps(self, *, running: StepStatus, pending: StepStatus) -> None:
        changed = []
        for step in self.run.steps:
            if step.status == StepStatus.RUNNING:
                step.set_status(running)
            elif step.status == StepStatus.PENDING:
                step.set_status(pending)
            elif step.status == StepStatus.WAITING:
                step.set_status(StepStatus.CANCELLED)
            else:
                continue
            step.resume_at = None
            step.completed_at = step.completed_at or utcnow()
            changed.append(step)
        self.inflight.clear()  # their threads end on their own; what they return is ignored
        self._launch.clear()
        if changed:
            self._save(changed)

    def _result(self) -> Any:
        done = [self.steps[n.id] for n in self.top if self.steps[n.id].status == StepStatus.SUCCESS]
        return done[-1].output if done else None

    def _finish(self, status: RunStatus) -> None:
        self._close_open_steps(running=StepStatus.CANCELLED, pending=StepStatus.SKIPPED)
        run = self.run
        run.set_status(status)
        run.error_message = self.failure if status == RunStatus.FAILED else None
        run.result = self._result()
        run.completed_at = utcnow()
        run.resume_at = None
        self._flush(result=True, release=True)

    def _finish_timed_out(self) -> None:
        self.failure = f"the run timed out after {self.plan.settings.timeout_s:g}s (settings.timeout_s)"
        self._close_open_steps(running=StepStatus.CANCELLED, pending=StepStatus.SKIPPED)
        self._finish(RunStatus.FAILED)

    def _finish_cancelled(self) -> None:
        self._close_open_steps(running=StepStatus.CANCELLED, pending=StepStatus.CANCELLED)
        run = self.run
        run.set_status(RunStatus.CANCELLED)
        run.error_message = CANCELLED_MESSAGE
        run.result = self._result()
        run.completed_at = utcnow()
        run.resume_at = None
        self._flush(result=True, clear_control=True, release=True)

    def _finish_paused(self) -> None:
        self.run.set_status(RunStatus.PAUSED)
        self.run.resume_at = self._earliest_wait()
        self._flush(clear_control=True, release=True)

    def _park(self, until: datetime) -> None:
        self.run.set_status(RunStatus.WAITING)
        self.run.resume_at = until
        self._flush(release=True, due=until)


def _iso(dt: datetime) -> str:
    return isoformat(dt) or ""
