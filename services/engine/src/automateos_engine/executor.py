"""The execution loop: run a workflow's nodes in plan order and record every step.

It never names a node type: each node is looked up in the registry, its config resolved
(`{{...}}` references) and validated against the node's own schema, then run. Every state
change is written to Redis at once (see automateos_common.runs), so a run that is picked up
again after a crash continues from its first unfinished step; finished steps are not re-run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError as PydanticValidationError
from redis import Redis

from automateos_common.errors import NodeError, ValidationError, field_path
from automateos_common.jsonutil import utcnow
from automateos_common.nodes.base import NodeContext, NodeResult
from automateos_common.nodes.definition import Plan, PlannedNode, validate_definition, validated_config
from automateos_common.nodes.registry import NodeRegistry
from automateos_common.nodes.templates import TemplateError, resolve
from automateos_common.runs import RunState, RunStatus, RunStore, StepState, StepStatus

from .definitions import DefinitionSource

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a run needs from its process: connections, the node registry, an HTTP client."""

    redis: Redis
    registry: NodeRegistry
    definitions: DefinitionSource
    http_client: Callable[[], httpx.Client]


def node_input_from(node: PlannedNode, outputs: dict[str, Any]) -> Any:
    """A node's input: its predecessor's output; with several, {predecessor id: output}."""
    if not node.predecessors:
        return None
    if len(node.predecessors) == 1:
        return outputs.get(node.predecessors[0])
    return {p: outputs.get(p) for p in node.predecessors}


class Executor:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.store = RunStore(runtime.redis)

    def _save(self, run: RunState, *, steps: list[StepState] | None = None, order: bool = False,
              result: bool = False) -> None:
        with self.rt.redis.pipeline(transaction=True) as pipe:
            self.store.write(pipe, run, steps=steps, order=order, result=result)
            pipe.execute()

    def _fail_run(self, run: RunState, message: str) -> None:
        now = utcnow()
        if run.status == RunStatus.QUEUED:
            run.started_at = now
        run.set_status(RunStatus.FAILED)
        run.error_message = message
        run.completed_at = now
        skipped = []
        for step in run.steps:
            if step.status in (StepStatus.PENDING, StepStatus.RUNNING):
                step.set_status(StepStatus.SKIPPED)
                skipped.append(step)
        self._save(run, steps=skipped, result=True)

    def execute(self, execution_id: str) -> RunState | None:
        run = self.store.load(execution_id)
        if run is None:
            log.warning("run %s not found in Redis; nothing to do", execution_id)
            return None
        if run.is_terminal:
            return run  # a duplicate delivery of a finished run
        entry = self.rt.definitions.get(run.workflow_id)
        if entry is None:
            self._fail_run(run, "the workflow no longer exists")
            return run
        try:
            plan = validate_definition(entry.definition, self.rt.registry)
        except ValidationError as exc:
            d = exc.details or {}
            self._fail_run(run, f"the workflow definition is invalid: {d.get('field')}: {d.get('issue')}")
            return run

        resumed = run.status == RunStatus.RUNNING
        run.set_status(RunStatus.RUNNING)
        if not resumed or not run.steps:
            run.started_at = run.started_at or utcnow()
            run.workflow_version = entry.version
            run.steps = [StepState(node_id=n.id, type=n.type, position=i) for i, n in enumerate(plan.nodes)]
            self._save(run, steps=run.steps, order=True)
        else:
            log.info("resuming run %s", run.id)
        self._run_plan(run, plan)
        return run

    def _run_plan(self, run: RunState, plan: Plan) -> None:
        steps = {s.node_id: s for s in run.steps}
        outputs: dict[str, Any] = {}
        last_output: Any = None
        halted = False  # a filter stopped the run, or a node failed
        failure: str | None = None
        for node in plan.nodes:
            step = steps[node.id]
            if step.status == StepStatus.SUCCESS:
                outputs[node.id] = last_output = step.output
                continue
            if step.status in (StepStatus.SKIPPED, StepStatus.FAILED):
                halted = True
                continue
            if halted:
                step.set_status(StepStatus.SKIPPED)
                self._save(run, steps=[step])
                continue
            result, error = self._run_step(run, node, step, outputs)
            if error is not None:
                failure = f"node '{node.id}' failed: {error}"
                halted = True
            else:
                assert result is not None
                outputs[node.id] = last_output = result.output
                halted = result.stop
        now = utcnow()
        run.completed_at = now
        run.result = last_output
        if failure is not None:
            run.set_status(RunStatus.FAILED)
            run.error_message = failure
        else:
            run.set_status(RunStatus.SUCCESS)
        self._save(run, result=True)

    def _run_step(self, run: RunState, node: PlannedNode, step: StepState,
                  outputs: dict[str, Any]) -> tuple[NodeResult | None, str | None]:
        node_input = node_input_from(node, outputs)
        step.set_status(StepStatus.RUNNING)
        step.attempts += 1
        step.started_at = utcnow()
        step.input = node_input
        step.error = None
        step.note = None
        self._save(run, steps=[step])

        scope = {**outputs, "trigger": run.trigger_data, "input": node_input}
        ctx = NodeContext(execution_id=run.id, workflow_id=run.workflow_id, node_id=node.id,
                          trigger=run.trigger_data, scope=scope, outputs=outputs, attempt=step.attempts,
                          http_client=self.rt.http_client)
        result: NodeResult | None = None
        error: str | None = None
        try:
            raw = {k: (v if k in node.cls.raw_fields else resolve(v, scope)) for k, v in node.config.items()}
            config = validated_config(node.cls, raw, resolved=True)
            out = node.cls().run(ctx, config, node_input)
            result = out if isinstance(out, NodeResult) else NodeResult(output=out)
        except NodeError as exc:
            error = exc.message
        except TemplateError as exc:
            error = str(exc)
        except PydanticValidationError as exc:
            e = exc.errors()[0]
            error = f"config.{field_path(tuple(e['loc']))}: {e['msg']} (after resolving references)"
        except Exception as exc:
            # A bug in a node must not kill the run record; details go to the log, not to history.
            log.exception("node %s (%s) raised", node.id, node.type)
            error = f"internal error in node type '{node.type}' ({type(exc).__name__})"

        step.completed_at = utcnow()
        if error is not None:
            step.set_status(StepStatus.FAILED)
            step.error = error
        else:
            assert result is not None
            step.set_status(StepStatus.SUCCESS)
            step.output = result.output
            step.note = result.note
        self._save(run, steps=[step])
        return result, error
