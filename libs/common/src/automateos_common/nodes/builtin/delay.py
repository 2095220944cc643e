"""`delay`: wait for a duration, or until a point in time, then pass the input on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AwareDatetime, Field

from ...errors import NodeExecutionError
from ...jsonutil import isoformat, utcnow
from ..base import Node, NodeConfig, NodeContext, NodeResult, Templated

MAX_DAYS = 365
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86_400}
Amount = Templated[Annotated[float, Field(ge=0, allow_inf_nan=False)]]


class DelayConfig(NodeConfig):
    seconds: Amount | None = Field(default=None, description="Seconds to wait; added to the other units.")
    minutes: Amount | None = Field(default=None, description="Minutes to wait; added to the other units.")
    hours: Amount | None = Field(default=None, description="Hours to wait; added to the other units.")
    days: Amount | None = Field(default=None, description="Days to wait; added to the other units.")
    until: Templated[AwareDatetime] | None = Field(
        default=None,
        description="Wait until this ISO-8601 time, which must name its offset (2026-12-01T09:00:00+01:00); "
                    "a time already past means no wait. Instead of a duration.",
    )


def _amounts(config: DelayConfig) -> dict[str, Any]:
    return {unit: getattr(config, unit) for unit in UNIT_SECONDS if getattr(config, unit) is not None}


def _problems(config: DelayConfig) -> list[tuple[str, str]]:
    """The rules across fields, checked at save time and again once references are resolved."""
    amounts = _amounts(config)
    if config.until is None and not amounts:
        return [("", "give a duration (seconds, minutes, hours, days) or 'until'")]
    if config.until is not None and amounts:
        return [("until", "give either a duration (seconds, minutes, hours, days) or 'until', not both")]
    if amounts and all(isinstance(v, float) for v in amounts.values()):
        total = sum(v * UNIT_SECONDS[unit] for unit, v in amounts.items())
        if total > MAX_DAYS * 86_400:
            where = next(iter(amounts)) if len(amounts) == 1 else ""
            return [(where, f"the delay adds up to {total / 86_400:g} days; at most {MAX_DAYS} days")]
    return []


class DelayNode(Node):
    type = "delay"
    inline = True
    title = "Delay"
    description = ("Waits for a duration (seconds, minutes, hours and days added up, at most 365 days) or "
                   "until a time, then continues with its input unchanged. Long waits hold no worker.")
    Config = DelayConfig

    def check(self, config: DelayConfig) -> list[tuple[str, str]]:  # type: ignore[override]
        return _problems(config)

    def run(self, ctx: NodeContext, config: DelayConfig, input: Any) -> NodeResult:
        problems = _problems(config)
        if problems:
            where, issue = problems[0]
            raise NodeExecutionError(f"{where}: {issue}" if where else issue)
        now = utcnow()
        if config.until is None:
            total = sum(v * UNIT_SECONDS[unit] for unit, v in _amounts(config).items())
            wait_until = now + timedelta(seconds=total)
            return NodeResult(output=input, wait_until=wait_until, note=f"waits until {isoformat(wait_until)}")
        assert isinstance(config.until, datetime)  # resolved: a template string failed validation
        until = config.until.astimezone(timezone.utc)
        if until > now + timedelta(days=MAX_DAYS):
            raise NodeExecutionError(f"until {isoformat(until)} is more than {MAX_DAYS} days away")
        if until <= now:
            return NodeResult(output=input, wait_until=now, note=f"{isoformat(until)} has passed; no wait")
        return NodeResult(output=input, wait_until=until, note=f"waits until {isoformat(until)}")
