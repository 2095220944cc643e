"""The failed-login slowdown's curve: nothing below the threshold, then doubling, bounded."""

from __future__ import annotations

from automateos_auth.ratelimit import Limiter
from automateos_auth.settings import AuthSettings


def delays(**settings: object) -> list[float]:
    limiter = Limiter(AuthSettings.model_validate({"rate_limit_storage": "memory", **settings}))
    out = []
    for _ in range(8):
        out.append(limiter.login_delay("a@example.com"))
        limiter.login_failed("a@example.com")
    return out


def test_the_curve():
    assert delays(login_slowdown_after=3, login_slowdown_base_s=0.5, login_slowdown_max_s=3) == [
        0, 0, 0, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_off_when_the_bound_is_zero():
    assert delays(login_slowdown_after=1, login_slowdown_max_s=0) == [0.0] * 8


def test_a_success_clears_the_count_and_accounts_are_apart():
    limiter = Limiter(AuthSettings(rate_limit_storage="memory", login_slowdown_after=1, login_slowdown_base_s=1))
    for _ in range(3):
        limiter.login_failed("a@example.com")
    assert (limiter.login_delay("a@example.com"), limiter.login_delay("b@example.com")) == (4.0, 0.0)
    limiter.login_succeeded("A@example.com")
    assert limiter.login_delay("a@example.com") == 0.0
