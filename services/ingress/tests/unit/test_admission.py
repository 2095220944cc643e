"""The pure parts of admission: limits' notation, the queue gauge's hysteresis and its Retry-After."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from automateos_common.errors import QueueFullError
from automateos_common.nodes.builtin.webhook import WebhookConfig, WebhookNode
from automateos_common.ratelimits import parse_limits
from automateos_ingress.admission import RETRY_AFTER_UNKNOWN_S, QueueGauge
from automateos_ingress.settings import IngressSettings


def test_limits_notation():
    assert [str(i) for i in parse_limits("100/second; 1000 per hour")] == ["100 per 1 second", "1000 per 1 hour"]
    assert parse_limits("  ") == ()
    for bad in ("abc", "0/second", "1/second;2/second;3/minute;4/hour;5/day", "100/fortnight"):
        with pytest.raises(ValueError):
            parse_limits(bad)


def test_a_webhook_rate_limit_is_checked_at_save_time_and_published_as_an_option():
    with pytest.raises(ValidationError) as info:
        WebhookConfig.model_validate({"rate_limit": "lots"})
    assert info.value.errors()[0]["loc"] == ("rate_limit",)
    assert WebhookNode.webhook_options({"rate_limit": " 10/second "}) == {"rate_limit": "10/second"}
    assert WebhookNode.webhook_options({"method": "GET"}) == {}


def test_the_address_limit_setting_is_checked_at_start():
    with pytest.raises(ValidationError):
        IngressSettings(webhook_ip_rate_limit="fast")
    assert IngressSettings(webhook_ip_rate_limit="10/second").webhook_ip_rate_limit == "10/second"


def test_the_gauge_refuses_at_the_limit_and_resumes_below_90_percent():
    g = QueueGauge(None, "q", max_depth=100, interval_s=0.2)
    g.observe(99, 0.0)
    g.check()
    g.observe(100, 0.2)
    with pytest.raises(QueueFullError) as info:
        g.check()
    assert info.value.headers == {"Retry-After": str(RETRY_AFTER_UNKNOWN_S)}  # not draining: the fallback
    g.observe(95, 0.4)
    assert g.full  # between 90 % and the limit: still refusing (no flapping)
    g.observe(89, 0.6)
    assert not g.full
    g.check()


def test_retry_after_is_the_time_to_drain_to_the_resume_mark():
    g = QueueGauge(None, "q", max_depth=1000, interval_s=0.2)
    g.observe(1400, 0.0)
    g.observe(1300, 1.0)  # 100 runs/s drained
    assert g.drain_per_s == 100
    assert g.retry_after_s() == 4  # (1300 - 900) / 100
    g.observe(1300, 2.0)  # stalled: the smoothed rate falls, the wait grows
    assert g.retry_after_s() == 6  # 400 / 70 = 5.7
    g.observe(100_000, 3.0)
    assert g.retry_after_s() == 60  # bounded
    fast = QueueGauge(None, "q", max_depth=1000, interval_s=0.2)
    fast.observe(2000, 0.0)
    fast.observe(1000, 0.1)
    assert fast.retry_after_s() == 1  # at least a second
