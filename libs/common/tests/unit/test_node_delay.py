"""The `delay` node: a duration or a time to wait until, returned as NodeResult.wait_until."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import NodeExecutionError, ValidationError
from automateos_common.nodes.base import NodeResult
from automateos_common.nodes.builtin import delay as delay_module
from automateos_common.nodes.builtin.delay import DelayConfig, DelayNode
from automateos_common.nodes.definition import validate_definition, validated_config
from automateos_common.nodes.registry import NodeRegistry, build_registry
from automateos_common.nodes.templates import resolve

NOW = datetime(2026, 11, 22, 4, 0, 0, tzinfo=timezone.utc)
INPUT = {"from": "previous"}


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return build_registry(entry_points_group=None)


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delay_module, "utcnow", lambda: NOW)


def run_delay(saved: dict[str, Any], payload: Any = None) -> NodeResult:
    """As the engine does: resolve the saved config, validate it, run."""
    trigger = trigger_data(payload)
    scope = {"trigger": trigger, "input": INPUT}
    config = validated_config(DelayNode, resolve(saved, scope), resolved=True)
    return DelayNode().run(node_context(trigger=trigger, scope=scope), config, INPUT)


def definition(config: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": [{"id": "t", "type": "webhook"}, {"id": "wait", "type": "delay", "config": config}]}


def save_errors(config: dict[str, Any], registry: NodeRegistry) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as excinfo:
        validate_definition(definition(config), registry)
    assert excinfo.value.status_code == 422
    assert excinfo.value.details is not None
    errors: list[dict[str, str]] = excinfo.value.details["errors"]
    return errors


@pytest.mark.parametrize(("config", "wait"), [
    ({"seconds": 30}, timedelta(seconds=30)),
    ({"minutes": 1.5}, timedelta(seconds=90)),
    ({"hours": 2, "minutes": 30}, timedelta(hours=2, minutes=30)),
    ({"days": 1, "hours": 1, "minutes": 1, "seconds": 1}, timedelta(days=1, seconds=3661)),
    ({"seconds": 0}, timedelta(0)),
    ({"days": 365}, timedelta(days=365)),
])
def test_a_duration(config: dict[str, Any], wait: timedelta) -> None:
    until = NOW + wait
    expected = f"waits until {until.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}"
    assert run_delay(config) == NodeResult(output=INPUT, wait_until=until, note=expected)


def test_durations_may_be_references() -> None:
    result = run_delay({"minutes": "{{trigger.payload.wait}}", "seconds": 5}, {"wait": 2})
    assert result.wait_until == NOW + timedelta(seconds=125)
    result = run_delay({"seconds": "{{trigger.payload.wait}}"}, {"wait": "7.5"})
    assert result.wait_until == NOW + timedelta(seconds=7.5)


def test_until_in_the_future_is_converted_to_utc() -> None:
    result = run_delay({"until": "2026-11-22T09:30:00+02:00"})
    assert result == NodeResult(output=INPUT, wait_until=datetime(2026, 11, 22, 7, 30, tzinfo=timezone.utc),
                                note="waits until 2026-11-22T07:30:00.000Z")
    assert result.wait_until is not None and result.wait_until.utcoffset() == timedelta(0)


def test_until_in_the_past_means_no_wait() -> None:
    result = run_delay({"until": "{{trigger.payload.at}}"}, {"at": "2026-11-21T00:00:00Z"})
    assert result == NodeResult(output=INPUT, wait_until=NOW, note="2026-11-21T00:00:00.000Z has passed; no wait")


def test_run_time_errors_after_resolution() -> None:
    with pytest.raises(NodeExecutionError) as excinfo:
        run_delay({"days": "{{trigger.payload.days}}"}, {"days": 400})
    assert excinfo.value.message == "days: the delay adds up to 400 days; at most 365 days"

    with pytest.raises(NodeExecutionError) as excinfo:
        run_delay({"days": "{{trigger.payload.days}}", "hours": 24}, {"days": 365})
    assert excinfo.value.message == "the delay adds up to 366 days; at most 365 days"

    with pytest.raises(NodeExecutionError) as excinfo:
        run_delay({"until": "{{trigger.payload.at}}"}, {"at": "2028-01-01T00:00:00Z"})
    assert excinfo.value.message == "until 2028-01-01T00:00:00.000Z is more than 365 days away"


@pytest.mark.parametrize(("payload", "error_type"), [
    ({"at": "2026-12-01T00:00:00"}, "timezone_aware"),
    ({"at": "tomorrow"}, "datetime_from_date_parsing"),
    ({"at": None}, None),
])
def test_a_reference_that_resolves_to_a_bad_time_fails_validation(payload: Any, error_type: str | None) -> None:
    if error_type is None:  # null: neither a duration nor a time is left
        with pytest.raises(NodeExecutionError) as excinfo:
            run_delay({"until": "{{trigger.payload.at}}"}, payload)
        assert excinfo.value.message == "give a duration (seconds, minutes, hours, days) or 'until'"
        return
    with pytest.raises(PydanticValidationError) as pyexc:
        run_delay({"until": "{{trigger.payload.at}}"}, payload)
    assert [(e["loc"], e["type"]) for e in pyexc.value.errors()] == [(("until",), error_type)]


def test_a_reference_that_resolves_to_a_negative_number_fails_validation() -> None:
    with pytest.raises(PydanticValidationError) as excinfo:
        run_delay({"seconds": "{{trigger.payload.n}}"}, {"n": -1})
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == [(("seconds",), "greater_than_equal")]


@pytest.mark.parametrize("config", [
    {"seconds": 10}, {"days": 365}, {"hours": "{{t.payload.h}}", "days": 365}, {"until": "2026-01-01T00:00:00Z"},
    {"until": "{{t.payload.at}}"}, {"minutes": 0},
])
def test_valid_at_save_time(config: dict[str, Any], registry: NodeRegistry) -> None:
    assert validate_definition(definition(config), registry).nodes[1].config == config


@pytest.mark.parametrize(("config", "errors"), [
    ({}, [("", "give a duration (seconds, minutes, hours, days) or 'until'")]),
    ({"seconds": None}, [("", "give a duration (seconds, minutes, hours, days) or 'until'")]),
    ({"seconds": 5, "until": "2026-01-01T00:00:00Z"},
     [(".until", "give either a duration (seconds, minutes, hours, days) or 'until', not both")]),
    ({"days": 366}, [(".days", "the delay adds up to 366 days; at most 365 days")]),
    ({"days": 365, "seconds": 86_400}, [("", "the delay adds up to 366 days; at most 365 days")]),
    ({"seconds": -1}, [(".seconds", "Input should be greater than or equal to 0")]),
    ({"minutes": "soon"}, [(".minutes", "Input should be a valid number, unable to parse string as a number")]),
    ({"hours": float("inf")}, [(".hours", "Input should be a finite number")]),
    ({"until": "2026-01-01T00:00:00"}, [(".until", "Input should have timezone info")]),
    ({"until": "next week"},
     [(".until", "Input should be a valid datetime or date, input is too short")]),
    ({"weeks": 1}, [(".weeks", "Extra inputs are not permitted")]),
])
def test_save_time_errors(config: dict[str, Any], errors: list[tuple[str, str]], registry: NodeRegistry) -> None:
    where = "definition.nodes[1].config"
    assert save_errors(config, registry) == [{"field": f"{where}{f}", "issue": i} for f, i in errors]


def test_check_skips_the_total_while_a_value_is_a_reference() -> None:
    config = DelayConfig.model_validate({"days": 365, "hours": "{{t.payload.h}}"})
    assert DelayNode().check(config) == []


def test_config_schema() -> None:
    schema = DelayConfig.model_json_schema()
    assert set(schema["properties"]) == {"seconds", "minutes", "hours", "days", "until"}
    assert "required" not in schema
