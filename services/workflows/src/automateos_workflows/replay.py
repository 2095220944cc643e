"""Replaying a finished run: a new run with the same trigger, on the workflow's current definition.

From `failed`, the steps that succeeded before the failure are copied into the new run, so the
engine does not run them again; from `start`, nothing is. A step is copied only when it still
means the same thing under the current definition and nothing it depended on is re-run:

    top-level node (loop bodies run again with their loop; their iterations are never copied)
    the old run has a step with the same key and node type, and it succeeded
    its output is whole (history cut a big one to a marker: the nodes after it need every byte)
    every node it has an input from was copied too (the trigger has none)
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from automateos_common.errors import ConflictError
from automateos_common.jsonutil import utcnow
from automateos_common.nodes.definition import Plan
from automateos_common.queue import new_execution_id
from automateos_common.runs import RunState, RunStatus, StepState, StepStatus, is_truncated

ReplayFrom = Literal["failed", "start"]
REPLAYABLE = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED})


def check_replayable(old: RunState, replay_from: ReplayFrom) -> None:
    if old.status not in REPLAYABLE:
        raise ConflictError(f"only a finished execution can be replayed; this one is {old.status.value}")
    if replay_from == "failed" and old.status == RunStatus.SUCCESS:
        raise ConflictError('the execution succeeded: nothing failed to replay from; use {"from": "start"}')


def copied_steps(old: RunState, plan: Plan) -> list[StepState]:
    """The old run's steps the replay keeps, at their positions in the current plan."""
    old_steps = old.step_map()
    note = f"copied from execution {old.id}"
    copied: dict[str, StepState] = {}
    for position, node in enumerate(plan.nodes):
        if node.loop is not None:
            continue
        step = old_steps.get(node.id)
        if step is None or step.iteration is not None or step.type != node.type:
            continue
        if step.status != StepStatus.SUCCESS or is_truncated(step.output):
            continue
        if any(edge.src not in copied for edge in node.inbound):
            continue
        copied[node.id] = dataclasses.replace(step, position=position, note=note, resume_at=None,
                                              attempt_log=list(step.attempt_log))
    return list(copied.values())


def build_replay(old: RunState, plan: Plan | None, replay_from: ReplayFrom) -> RunState:
    """The new, queued run (not yet written). `plan` (the current definition's) is needed for `failed`."""
    check_replayable(old, replay_from)
    steps = copied_steps(old, plan) if replay_from == "failed" and plan is not None else []
    return RunState(
        id=new_execution_id(), workflow_id=old.workflow_id, owner_id=old.owner_id, trigger=old.trigger,
        payload=old.payload, trigger_data=dict(old.trigger_data) or {"payload": old.payload},
        created_at=utcnow(), replay_of=old.id, steps=steps,
    )
