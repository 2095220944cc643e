"""The pure checks of webhook authentication (hookauth.refusal) and of dedup keys (dedup.once_for)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from automateos_common.catalog import HookTarget
from automateos_common.nodes.builtin.webhook import WebhookConfig, WebhookNode
from automateos_ingress import dedup
from automateos_ingress.hookauth import dropped_headers, refusal
from automateos_ingress.payloads import HookRequest

SECRET = {"id": 4, "type": "webhook_secret", "version": 1, "fields": {"secret": "It's a Secret to Everybody"}}
BASIC = {"id": 5, "type": "basic", "version": 1, "fields": {"username": "hooks", "password": "pa:ss word"}}
GITHUB = {"type": "hmac", "credential": 4, "header": "X-Hub-Signature-256", "prefix": "sha256=", "encoding": "hex",
          "format": "plain", "tolerance_s": 300}
STRIPE = {**GITHUB, "header": "Stripe-Signature", "format": "stripe", "prefix": ""}
NOW = 1_700_000_000


def req(headers: dict[str, str], body: bytes = b"") -> HookRequest:
    return HookRequest(method="POST", headers=[(k.lower(), v) for k, v in headers.items()], query=[], body=body)


def stripe_sig(t: int, body: bytes, secret: str = "It's a Secret to Everybody") -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_githubs_documented_example_passes():
    # docs.github.com, "Validating webhook deliveries": this secret and payload give this signature.
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert refusal(GITHUB, SECRET, req({"X-Hub-Signature-256": sig}, b"Hello, World!"), now=NOW) is None
    assert refusal(GITHUB, SECRET, req({"X-Hub-Signature-256": sig.upper().replace("SHA256=", "sha256=")},
                                       b"Hello, World!"), now=NOW) is None


@pytest.mark.parametrize(("headers", "body", "reason"), [
    ({}, b"Hello, World!", "no signature header"),
    ({"X-Hub-Signature-256": "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}, b"Hello, World!",
     "signature header without its prefix"),
    ({"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
     b"Hello, World?", "signature mismatch"),
    ({"X-Hub-Signature-256": "sha256=nothex\u00e9"}, b"Hello, World!", "signature mismatch"),
])
def test_a_bad_github_signature_is_refused(headers, body, reason):
    assert refusal(GITHUB, SECRET, req(headers, body), now=NOW) == reason


def test_base64_signatures():
    auth = {**GITHUB, "header": "X-Signature", "prefix": "", "encoding": "base64"}
    body = b'{"a": 1}'
    sig = base64.b64encode(hmac.new(b"It's a Secret to Everybody", body, hashlib.sha256).digest()).decode()
    assert refusal(auth, SECRET, req({"X-Signature": sig}, body), now=NOW) is None
    assert refusal(auth, SECRET, req({"X-Signature": sig}, body + b" "), now=NOW) == "signature mismatch"


def test_stripe_style_inside_the_tolerance_window_passes_with_any_v1():
    body = b'{"id": "evt_1"}'
    for t in (NOW, NOW - 300, NOW + 300):
        header = f"t={t},v1={'0' * 64},v1={stripe_sig(t, body)},v0=ignored"
        assert refusal(STRIPE, SECRET, req({"Stripe-Signature": header}, body), now=NOW) is None


@pytest.mark.parametrize(("header", "reason"), [
    (f"t={NOW - 301},v1={stripe_sig(NOW - 301, b'x')}", "timestamp outside the tolerance window"),
    (f"t={NOW + 301},v1={stripe_sig(NOW + 301, b'x')}", "timestamp outside the tolerance window"),
    (f"t={NOW},v1={stripe_sig(NOW, b'y')}", "signature mismatch"),
    (f"t={NOW + 1},v1={stripe_sig(NOW, b'x')}", "signature mismatch"),  # the timestamp is signed
    (f"t={NOW},v1={stripe_sig(NOW, b'x', 'another secret')}", "signature mismatch"),
    (f"v1={stripe_sig(NOW, b'x')}", "malformed signature header"),
    (f"t=soon,v1={stripe_sig(NOW, b'x')}", "malformed signature header"),
    (f"t={NOW}", "malformed signature header"),
])
def test_stripe_style_refusals(header, reason):
    assert refusal(STRIPE, SECRET, req({"Stripe-Signature": header}, b"x"), now=NOW) == reason


def test_header_token():
    auth = {"type": "header", "credential": 4, "header": "X-Webhook-Token"}
    assert refusal(auth, SECRET, req({"X-Webhook-Token": "It's a Secret to Everybody"}), now=NOW) is None
    assert refusal(auth, SECRET, req({"X-Webhook-Token": "It's a Secret to Everybod"}), now=NOW) == "wrong token"
    assert refusal(auth, SECRET, req({}), now=NOW) == "no token header"
    assert dropped_headers(auth) == ("x-webhook-token",)
    assert dropped_headers(GITHUB) == () and dropped_headers(None) == ()


def test_basic():
    auth = {"type": "basic", "credential": 5, "realm": "AutomateOS"}

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    assert refusal(auth, BASIC, req(basic("hooks", "pa:ss word")), now=NOW) is None
    assert refusal(auth, BASIC, req(basic("hooks", "pa:ss")), now=NOW) == "wrong username or password"
    assert refusal(auth, BASIC, req(basic("other", "pa:ss word")), now=NOW) == "wrong username or password"
    assert refusal(auth, BASIC, req({"Authorization": "Bearer x"}), now=NOW) == "no basic credentials"
    assert refusal(auth, BASIC, req({"Authorization": "Basic %%%"}), now=NOW) == "malformed basic credentials"
    assert refusal(auth, BASIC, req({"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}),
                   now=NOW) == "malformed basic credentials"


def test_a_missing_or_mistyped_credential_fails_closed():
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    request = req({"X-Hub-Signature-256": sig}, b"Hello, World!")
    assert refusal(GITHUB, None, request, now=NOW) == "its credential is missing (deleted?)"
    assert refusal(GITHUB, {**SECRET, "type": "bearer"}, request, now=NOW) == "its credential is a bearer credential"
    assert refusal({"type": "magic"}, SECRET, request, now=NOW) == "unknown authentication type 'magic'"


def test_the_node_publishes_only_what_differs_from_the_defaults():
    assert WebhookNode.webhook_options({"method": "POST"}) == {}
    assert WebhookNode.webhook_options({"auth": {"type": "none"}, "dedup": True}) == {}
    options = WebhookNode.webhook_options({"auth": {"type": "hmac", "credential": "gh"},
                                           "dedup": {"header": "X-GitHub-Delivery"}})
    assert options == {"auth": {**GITHUB, "credential": "gh"},
                       "dedup": {"enabled": True, "header": "X-GitHub-Delivery", "window_s": 86400}}
    assert WebhookNode.webhook_options({"dedup": False}) == {"dedup": {"enabled": False, "header": "Idempotency-Key",
                                                                       "window_s": 86400}}
    with pytest.raises(ValueError):
        WebhookConfig.model_validate({"auth": {"type": "hmac"}})  # no credential
    with pytest.raises(ValueError):
        WebhookConfig.model_validate({"auth": {"type": "header", "credential": 1, "secret": "inline"}})


def test_dedup_keys():
    target = HookTarget(3, 9, "POST")
    once = dedup.once_for(target, req({"Idempotency-Key": "abc"}))
    assert once == dedup.Once(f"aos:dedup:3:{hashlib.sha256(b'abc').hexdigest()}", 86400)
    assert dedup.once_for(target, req({})) is None
    assert dedup.once_for(target, req({"Idempotency-Key": ""})) is None
    long = dedup.once_for(target, req({"Idempotency-Key": "k" * 10_000}))
    assert long is not None and len(long.key) == len("aos:dedup:3:") + 64
    gh = HookTarget(3, 9, "POST", {"dedup": {"enabled": True, "header": "X-GitHub-Delivery", "window_s": 60}})
    assert dedup.once_for(gh, req({"Idempotency-Key": "abc"})) is None
    assert dedup.once_for(gh, req({"X-GitHub-Delivery": "abc"})) == dedup.Once(once.key, 60)  # type: ignore[union-attr]
    off = HookTarget(3, 9, "POST", {"dedup": {"enabled": False}})
    assert dedup.once_for(off, req({"Idempotency-Key": "abc"})) is None
