"""A node's retry policy applied to one failed attempt: try again, and after how long?

The back-off comes from tenacity's wait strategies (exponential or fixed, capped at `max_s`);
a `Retry-After` the other side sent wins when it is longer. The engine never sleeps a thread
for it: the step waits (`waiting`, `resume_at`) and a long wait parks the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass

import tenacity

from automateos_common.nodes.definition import RetryPolicy

# A Retry-After longer than this is cut to it (a week: the longest `max_s` a policy may have).
RETRY_AFTER_CAP_S = 7 * 86_400.0


@dataclass(frozen=True)
class Failure:
    message: str
    kind: str | None = None  # timeout | connection_error | 5xx | 429 | None (another error)
    retry_after: float | None = None


def _wait_strategy(policy: RetryPolicy) -> tenacity.wait.wait_base:
    if policy.backoff == "fixed":
        return tenacity.wait_fixed(min(policy.initial_s, policy.max_s))
    return tenacity.wait_exponential(multiplier=policy.initial_s, max=policy.max_s, exp_base=2)


def _call_state(attempt: int) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return state


def matches(policy: RetryPolicy, failure: Failure) -> bool:
    return "error" in policy.on or (failure.kind is not None and failure.kind in policy.on)


def next_wait(policy: RetryPolicy | None, attempts_done: int, failure: Failure) -> float | None:
    """Seconds to wait before attempt `attempts_done + 1`, or None when the step has failed for good."""
    if policy is None or attempts_done >= policy.max_attempts or not matches(policy, failure):
        return None
    wait = float(_wait_strategy(policy)(_call_state(attempts_done)))
    if failure.retry_after is not None:
        wait = max(wait, min(failure.retry_after, RETRY_AFTER_CAP_S))
    return wait
