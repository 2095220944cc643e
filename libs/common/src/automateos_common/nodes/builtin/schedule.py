"""`schedule`: the trigger that starts a run at times given by a cron expression or an interval.

The engine's scheduler (`python -m automateos_engine scheduler`) fires it; the times are computed
by `automateos_common.schedules`. It has no webhook URL; `POST .../execute` still starts it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from ... import schedules
from ..base import Node, NodeConfig, NodeContext


class ScheduleConfig(NodeConfig):
    cron: str | None = Field(
        default=None, max_length=256,
        description="Cron expression: 5 fields (minute hour day-of-month month day-of-week), 6 with seconds "
                    "first, or @hourly/@daily/@weekly/@monthly/@yearly; read in `timezone`. Give this or "
                    "interval_seconds.",
    )
    interval_seconds: int | None = Field(
        default=None, ge=1, le=schedules.MAX_INTERVAL_S,
        description="Fire every N seconds, on the instants epoch + offset_seconds + k*N (stable across "
                    "restarts and edits). Give this or cron.",
    )
    offset_seconds: int = Field(default=0, ge=0, description="With interval_seconds: shifts its instants (< N).")
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone the cron expression is read in.")
    missed: Literal["skip", "fire_once"] = Field(
        default=schedules.DEFAULT_MISSED,
        description="Fire times missed while the scheduler or Redis was down: fire_once (one catch-up run "
                    "standing for all of them) or skip (none).",
    )


class ScheduleNode(Node):
    type = "schedule"
    inline = True
    kind = "trigger"
    title = "Schedule"
    description = ("Starts the workflow on a cron expression or a fixed interval, in a time zone; outputs "
                   "payload (scheduled_at, fired_at, timezone, ...), headers, query, method like the webhook trigger.")
    Config = ScheduleConfig

    # webhook_method stays None (Node's): no webhook URL, like `manual`.

    def check(self, config: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(config, ScheduleConfig)
        if config.cron is None and config.interval_seconds is None:
            return [("cron", "give 'cron' or 'interval_seconds'")]
        if config.cron is not None and config.interval_seconds is not None:
            return [("interval_seconds", "give 'cron' or 'interval_seconds', not both")]
        if config.cron is not None and config.offset_seconds:
            return [("offset_seconds", "only applies to interval_seconds")]
        try:
            sched = schedules.from_config(config.model_dump())
            sched.next_after(datetime.now(timezone.utc))  # an expression that never fires is an error too
        except schedules.ScheduleError as exc:
            return [(exc.field, exc.issue)]
        return []

    def run(self, ctx: NodeContext, config: ScheduleConfig, input: Any) -> Any:
        return dict(ctx.trigger)
