"""Schedule maths: when a `schedule` trigger fires, for cron expressions and fixed intervals.

Shared by the workflows service (which shows the next fire times and publishes the schedule to
Redis) and the engine's scheduler (which fires it), so both compute the same instants.

- **cron**: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, or
  an alias (`@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually`), read
  in the schedule's IANA time zone by croniter. Daylight-saving changes follow Vixie cron (what
  Debian's cron, cronsim and croner do): a time that falls into a spring-forward gap fires at the
  first instant after the gap; in a fall-back hour, which happens twice, a job whose minute and
  hour fields are both fixed fires once (on the first pass), while a job whose minute or hour
  field starts with `*` fires on both passes (it is about elapsed time, not a wall-clock time).
- **interval**: every `interval_seconds`, on the instants `epoch + offset_seconds + n * interval`
  (Temporal's IntervalSpec): fixed in absolute time, so they are the same after any restart or
  edit, and not moved by daylight saving (the time zone only names the instants in payloads).

Every function takes and returns timezone-aware datetimes; fire times are whole seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

Missed = Literal["skip", "fire_once"]
MISSED_POLICIES: tuple[str, ...] = ("skip", "fire_once")
DEFAULT_MISSED: Missed = "fire_once"
ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
MAX_INTERVAL_S = 366 * 86400
# How far ahead croniter looks for a match before calling an expression one that never fires.
_MAX_YEARS = 10


class ScheduleError(ValueError):
    """A schedule that cannot be used; `field` is the config field at fault."""

    def __init__(self, field: str, issue: str) -> None:
        super().__init__(issue)
        self.field, self.issue = field, issue


def normalize_cron(expr: str) -> str:
    """The expression as croniter reads it: aliases expanded, whitespace collapsed; ScheduleError if bad."""
    text = " ".join(expr.split())
    if text.lower() in ALIASES:
        return ALIASES[text.lower()]
    if text.startswith("@"):
        raise ScheduleError("cron", f"unknown alias {text!r}; known: {', '.join(sorted(ALIASES))}")
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise ScheduleError("cron", f"a cron expression has 5 fields (minute hour day month weekday) or 6 "
                                    f"(seconds first); this one has {len(fields) if text else 0}")
    if any(f.upper().startswith("H") for f in fields):  # croniter's hashed 'H' needs an id we do not give
        raise ScheduleError("cron", "'H' (hashed) values are not supported")
    if not croniter.is_valid(text, second_at_beginning=True):
        try:
            croniter(text, datetime(2026, 1, 1, tzinfo=timezone.utc), second_at_beginning=True)
        except (CroniterError, ValueError) as exc:
            raise ScheduleError("cron", f"not a valid cron expression: {exc}") from None
        raise ScheduleError("cron", "not a valid cron expression")
    return text


def zone(name: str) -> ZoneInfo:
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError("timezone", f"unknown time zone {name!r}; use an IANA name like 'Europe/Berlin' "
                                        "or 'UTC'") from None


@dataclass(frozen=True)
class Schedule:
    """A validated schedule: exactly one of `cron` (normalised) and `interval_s`."""

    cron: str | None = None
    interval_s: int | None = None
    offset_s: int = 0
    timezone: str = "UTC"
    missed: Missed = DEFAULT_MISSED

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_s is None):
            raise ScheduleError("cron", "give exactly one of 'cron' and 'interval_seconds'")
        zone(self.timezone)
        if self.cron is not None:
            object.__setattr__(self, "cron", normalize_cron(self.cron))
        else:
            assert self.interval_s is not None
            if not 1 <= self.interval_s <= MAX_INTERVAL_S:
                raise ScheduleError("interval_seconds", f"must be 1 to {MAX_INTERVAL_S} seconds")
            if not 0 <= self.offset_s < self.interval_s:
                raise ScheduleError("offset_seconds", "must be at least 0 and less than interval_seconds")
        if self.missed not in MISSED_POLICIES:
            raise ScheduleError("missed", f"must be one of {', '.join(MISSED_POLICIES)}")

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Schedule:
        return cls(**json.loads(raw))

    @property
    def fingerprint(self) -> str:
        """Changes when anything that decides the fire times or the missed policy changes."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (UTC). ScheduleError if there is none."""
        if self.interval_s is not None:
            step, offset = self.interval_s, self.offset_s
            n = (int(after.timestamp() // 1) - offset) // step + 1
            return datetime.fromtimestamp(offset + n * step, timezone.utc)
        return next(self._cron_times(after))

    def times_after(self, after: datetime, count: int) -> list[datetime]:
        if self.interval_s is not None:
            first = self.next_after(after)
            return [first + timedelta(seconds=self.interval_s * i) for i in range(count)]
        out: list[datetime] = []
        for t in self._cron_times(after):
            out.append(t)
            if len(out) == count:
                break
        return out

    def _cron_times(self, after: datetime) -> Iterator[datetime]:
        assert self.cron is not None
        tz = self.tz
        fields = self.cron.split(" ")
        minute, hour = (fields[1], fields[2]) if len(fields) == 6 else (fields[0], fields[1])
        elapsed_time_job = minute.startswith("*") or hour.startswith("*")
        # Whole seconds: croniter skips a match when the start has a fraction of a second.
        start = after.astimezone(tz).replace(microsecond=0)
        it = croniter(self.cron, start, second_at_beginning=True, max_years_between_matches=_MAX_YEARS)
        while True:
            try:
                t = it.get_next(datetime)
            except CroniterBadDateError:
                raise ScheduleError("cron", f"the expression never matches a date within {_MAX_YEARS} years") from None
            if t.fold == 1 and not elapsed_time_job and t.replace(fold=0).utcoffset() != t.utcoffset():
                continue  # the second pass of a fall-back hour: this wall-clock time already fired
            yield t.astimezone(timezone.utc)


def from_config(config: dict[str, Any]) -> Schedule:
    """The schedule of a `schedule` node's config (as saved); ScheduleError if it is not usable."""
    interval = config.get("interval_seconds")
    return Schedule(cron=config.get("cron"), interval_s=int(interval) if interval is not None else None,
                    offset_s=int(config.get("offset_seconds") or 0), timezone=config.get("timezone") or "UTC",
                    missed=config.get("missed") or DEFAULT_MISSED)


def schedule_of(definition: dict[str, Any]) -> Schedule | None:
    """The schedule of a definition whose trigger is a `schedule` node; None otherwise or if unusable."""
    for node in definition.get("nodes", []) if isinstance(definition, dict) else []:
        if isinstance(node, dict) and node.get("type") == "schedule":
            try:
                return from_config(node.get("config") or {})
            except (ScheduleError, TypeError, ValueError):
                return None
    return None


def local_iso(t: datetime, tz: ZoneInfo) -> str:
    """ISO 8601 in the schedule's zone, with its offset: `2026-03-29T03:00:00+02:00`."""
    return t.astimezone(tz).isoformat(timespec="seconds")


def to_ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def from_ms(ms: int | float) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, timezone.utc)
