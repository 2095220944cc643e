"""Schedule maths: cron (5/6 fields, aliases, time zones, DST) and anchored intervals; the node's checks."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from automateos_common.errors import ValidationError
from automateos_common.nodes.definition import validate_definition
from automateos_common.nodes.registry import default_registry
from automateos_common.schedules import Schedule, ScheduleError, from_config, local_iso, schedule_of

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_five_fields_in_utc() -> None:
    s = Schedule(cron="*/15 9 * * 1-5")
    # Friday 2026-12-04 09:20 -> 09:30, 09:45, then Monday 09:00
    assert s.times_after(utc(2026, 12, 4, 9, 20), 3) == [utc(2026, 12, 4, 9, 30), utc(2026, 12, 4, 9, 45),
                                                          utc(2026, 12, 7, 9, 0)]


def test_six_fields_have_seconds_first() -> None:
    s = Schedule(cron="*/20 * * * * *")
    assert s.times_after(utc(2026, 1, 1, 10, 0, 5), 3) == [utc(2026, 1, 1, 10, 0, 20), utc(2026, 1, 1, 10, 0, 40),
                                                           utc(2026, 1, 1, 10, 1, 0)]


def test_next_is_strictly_after_and_ignores_fractions() -> None:
    s = Schedule(cron="* * * * * *")
    assert s.next_after(utc(2026, 1, 1, 10, 0, 1)) == utc(2026, 1, 1, 10, 0, 2)
    # croniter alone would answer :02 from :00.5 (it skips a match after a fractional start)
    assert s.next_after(datetime(2026, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)) == utc(2026, 1, 1, 10, 0, 1)


def test_aliases_and_whitespace() -> None:
    assert Schedule(cron="@daily").cron == "0 0 * * *"
    assert Schedule(cron="  0   12 * *  * ").cron == "0 12 * * *"
    assert Schedule(cron="@hourly").next_after(utc(2026, 1, 1, 10, 5)) == utc(2026, 1, 1, 11, 0)


def test_cron_is_read_in_the_time_zone() -> None:
    s = Schedule(cron="0 9 * * *", timezone="America/New_York")
    assert s.next_after(utc(2026, 12, 1, 0, 0)) == utc(2026, 12, 1, 14, 0)  # 09:00 EST = 14:00 UTC
    assert local_iso(s.next_after(utc(2026, 12, 1, 0, 0)), s.tz) == "2026-12-01T09:00:00-05:00"


def test_spring_forward_gap_fires_once_right_after_it() -> None:
    # Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    s = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    times = s.times_after(utc(2026, 3, 27, 12, 0), 3)
    assert [local_iso(t, s.tz) for t in times] == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_fall_back_hour_fixed_time_fires_once() -> None:
    # Europe/Berlin 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    s = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    times = s.times_after(utc(2026, 10, 24, 12, 0), 3)
    assert [local_iso(t, s.tz) for t in times] == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"]
    # started during the second pass (after the first 02:30 fired): not again
    assert local_iso(s.next_after(utc(2026, 10, 25, 1, 15)), s.tz) == "2026-10-26T02:30:00+01:00"


def test_fall_back_hour_elapsed_time_job_fires_on_both_passes() -> None:
    s = Schedule(cron="*/30 * * * *", timezone="Europe/Berlin")
    times = s.times_after(utc(2026, 10, 24, 23, 45), 5)  # 01:45 CEST
    assert times == [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0),
                     utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 0)]  # every 30 min of real time


def test_interval_is_anchored_on_the_epoch_plus_offset() -> None:
    s = Schedule(interval_s=300)
    assert s.times_after(utc(2026, 1, 1, 10, 2, 30), 2) == [utc(2026, 1, 1, 10, 5), utc(2026, 1, 1, 10, 10)]
    assert s.next_after(utc(2026, 1, 1, 10, 5)) == utc(2026, 1, 1, 10, 10)  # strictly after
    shifted = Schedule(interval_s=3600, offset_s=90, timezone="Asia/Kolkata")
    assert shifted.next_after(utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 10, 1, 30)
    # the time zone names the instants; it does not move them
    assert local_iso(shifted.next_after(utc(2026, 1, 1, 10, 0)), shifted.tz) == "2026-01-01T15:31:30+05:30"


def test_interval_ignores_dst() -> None:
    s = Schedule(interval_s=3600, timezone="Europe/Berlin")
    times = s.times_after(utc(2026, 10, 24, 23, 30), 4)
    assert [t - times[0] for t in times] == [t - utc(2026, 10, 25, 0) for t in (
        utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3))]


@pytest.mark.parametrize(("config", "field", "issue"), [
    ({}, "cron", "give 'cron' or 'interval_seconds'"),
    ({"cron": "* * * * *", "interval_seconds": 5}, "interval_seconds", "not both"),
    ({"cron": "* * *"}, "cron", "this one has 3"),
    ({"cron": "* * * * * * *"}, "cron", "this one has 7"),
    ({"cron": "61 * * * *"}, "cron", "not a valid cron expression"),
    ({"cron": "0 0 30 2 *"}, "cron", "never matches"),
    ({"cron": "@reboot"}, "cron", "unknown alias"),
    ({"cron": "H * * * *"}, "cron", "'H'"),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
    ({"cron": "* * * * *", "timezone": "../../etc/passwd"}, "timezone", "unknown time zone"),
    ({"interval_seconds": 0}, "interval_seconds", "greater than or equal to 1"),
    ({"interval_seconds": 60, "offset_seconds": 60}, "offset_seconds", "less than interval_seconds"),
    ({"cron": "* * * * *", "offset_seconds": 5}, "offset_seconds", "only applies to interval_seconds"),
    ({"cron": "* * * * *", "missed": "all"}, "missed", "'skip' or 'fire_once'"),
    ({"cron": "* * * * *", "at": 1}, "at", "Extra inputs"),
])
def test_bad_configs_are_422_pointing_at_the_field(config: dict[str, Any], field: str, issue: str) -> None:
    definition = {"nodes": [{"id": "tick", "type": "schedule", "config": config},
                            {"id": "t", "type": "transform", "config": {"value": "{{trigger.payload.scheduled_at}}"}}]}
    with pytest.raises(ValidationError) as exc:
        validate_definition(definition, default_registry())
    assert exc.value.details["field"] == f"definition.nodes[0].config.{field}"
    assert issue in exc.value.details["issue"]


def test_good_configs_validate_and_are_read_back() -> None:
    for config in ({"cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris", "missed": "skip"},
                   {"interval_seconds": 1}, {"cron": "*/5 * * * * *"}):
        validate_definition({"nodes": [{"id": "tick", "type": "schedule", "config": config}]}, default_registry())
    s = schedule_of({"nodes": [{"id": "tick", "type": "schedule", "config": {"interval_seconds": 10}}]})
    assert s == Schedule(interval_s=10, missed="fire_once")
    assert schedule_of({"nodes": [{"id": "w", "type": "webhook"}]}) is None
    assert Schedule.from_json(s.to_json()) == s
    assert s.fingerprint != from_config({"interval_seconds": 10, "missed": "skip"}).fingerprint


def test_schedule_error_carries_its_field() -> None:
    with pytest.raises(ScheduleError) as exc:
        Schedule(cron="* * * * *", timezone="Nowhere/Land")
    assert exc.value.field == "timezone"
