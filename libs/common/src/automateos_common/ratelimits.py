"""Rate limits written in the `limits` notation (`100/second`, `10 per 2 seconds`, several joined by `;`).

Parsed here so that a definition's `rate_limit` and the ingress's settings are checked by one rule at
save/start time; the counting is the ingress's (automateos_ingress.admission).
"""

from __future__ import annotations

from limits import RateLimitItem, parse_many

MAX_ITEMS = 4  # each is one counter, and one Redis call, per webhook


def parse_limits(spec: str) -> tuple[RateLimitItem, ...]:
    """`"100/second;1000/minute"` -> its items; empty -> none. ValueError (with a message for a 422) if bad."""
    if not spec.strip():
        return ()
    try:
        items = tuple(parse_many(spec))
    except ValueError:
        raise ValueError(f"{spec!r} is not a rate limit like '100/second' or '10 per 2 seconds;1000/hour'") from None
    if len(items) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} limits, separated by ';'")
    for item in items:
        if item.amount < 1:
            raise ValueError(f"{item} allows nothing: the amount must be at least 1")
    return items
