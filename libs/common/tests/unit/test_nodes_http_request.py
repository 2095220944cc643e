"""The `http_request` node, against httpx.MockTransport."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import orjson
import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import NodeExecutionError
from automateos_common.nodes.base import NodeContext
from automateos_common.nodes.builtin import http_request as http_request_module
from automateos_common.nodes.builtin.http_request import (
    USER_AGENT,
    HttpRequestConfig,
    HttpRequestNode,
    parse_retry_after,
)
from automateos_common.nodes.definition import validated_config
from automateos_common.nodes.templates import resolve

Handler = Callable[[httpx.Request], httpx.Response]
URL = "https://api.example.com/data"


class Recorder:
    """A MockTransport handler that records requests and answers with a fixed response."""

    def __init__(self, response: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.response = response or (lambda _: httpx.Response(200, json={"ok": True}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.response(request)

    @property
    def only(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]


def run(config: dict[str, Any], handler: Handler, **ctx_fields: Any) -> Any:
    """Validate a resolved config the way the engine does, and run the node (ctx_fields: NodeContext fields)."""
    validated = validated_config(HttpRequestNode, config, resolved=True)
    ctx = dataclasses.replace(node_context(handler=handler), **ctx_fields)
    return HttpRequestNode().run(ctx, validated, input={"from": "previous"})


def failure(config: dict[str, Any], handler: Handler, **ctx_fields: Any) -> NodeExecutionError:
    with pytest.raises(NodeExecutionError) as excinfo:
        run(config, handler, **ctx_fields)
    return excinfo.value


# --- the request ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_methods(method: str) -> None:
    recorder = Recorder()
    run({"url": URL, "method": method}, recorder)
    assert (recorder.only.method, str(recorder.only.url)) == (method, URL)


def test_get_is_the_default_and_sends_no_body() -> None:
    recorder = Recorder()
    run({"url": URL, "body": {"ignored": True}}, recorder)
    assert recorder.only.method == "GET"
    assert recorder.only.content == b""
    assert "content-type" not in recorder.only.headers
    assert "content-length" not in recorder.only.headers


def test_headers_numbers_and_booleans_are_sent_as_text() -> None:
    recorder = Recorder()
    run({"url": URL, "headers": {"X-Count": 3, "X-Ratio": 1.5, "X-Flag": True, "Authorization": "Bearer t"}},
        recorder)
    sent = recorder.only.headers
    assert (sent["x-count"], sent["x-ratio"], sent["x-flag"], sent["authorization"]) == ("3", "1.5", "true", "Bearer t")
    assert sent.get_list("user-agent") == [USER_AGENT]


def test_a_configured_user_agent_replaces_the_default_whatever_its_case() -> None:
    recorder = Recorder()
    run({"url": URL, "headers": {"user-agent": "mine/1.0"}}, recorder)
    assert recorder.only.headers.get_list("user-agent") == ["mine/1.0"]


def test_query_parameters() -> None:
    recorder = Recorder()
    run({"url": URL, "query": {"q": "a b&c", "n": 2, "flag": True}}, recorder)
    assert str(recorder.only.url) == f"{URL}?q=a+b%26c&n=2&flag=true"


def test_query_parameters_are_added_to_the_urls_own_query() -> None:
    recorder = Recorder()
    run({"url": f"{URL}?page=2&q=old", "query": {"q": "new"}}, recorder)
    assert str(recorder.only.url) == f"{URL}?page=2&q=new"


@pytest.mark.parametrize(
    ("body", "content"),
    [
        ({"user": {"id": 7}, "tags": ["a"]}, b'{"user":{"id":7},"tags":["a"]}'),
        ([1, 2], b"[1,2]"),
        (42, b"42"),
        (False, b"false"),
    ],
)
def test_non_string_bodies_are_sent_as_json(body: Any, content: bytes) -> None:
    recorder = Recorder()
    run({"url": URL, "method": "POST", "body": body}, recorder)
    assert recorder.only.content == content
    assert recorder.only.headers["content-type"] == "application/json"


def test_string_bodies_are_sent_as_text() -> None:
    recorder = Recorder()
    run({"url": URL, "method": "PUT", "body": "héllo"}, recorder)
    assert recorder.only.content == "héllo".encode()
    assert recorder.only.headers["content-type"] == "text/plain; charset=utf-8"


def test_body_type_json_sends_a_string_as_it_is() -> None:
    recorder = Recorder()
    run({"url": URL, "method": "POST", "body": '{"raw": 1}', "body_type": "json"}, recorder)
    assert recorder.only.content == b'{"raw": 1}'
    assert recorder.only.headers["content-type"] == "application/json"


def test_body_type_text_sends_an_object_as_json_text() -> None:
    recorder = Recorder()
    run({"url": URL, "method": "POST", "body": {"a": 1}, "body_type": "text"}, recorder)
    assert recorder.only.content == b'{"a":1}'
    assert recorder.only.headers["content-type"] == "text/plain; charset=utf-8"


def test_a_configured_content_type_is_kept() -> None:
    recorder = Recorder()
    run({"url": URL, "method": "POST", "headers": {"content-type": "application/vnd.api+json"}, "body": {"a": 1}},
        recorder)
    assert recorder.only.headers.get_list("content-type") == ["application/vnd.api+json"]


def test_delete_sends_its_body() -> None:
    recorder = Recorder()
    run({"url": URL, "method": "DELETE", "body": {"id": 1}}, recorder)
    assert recorder.only.content == b'{"id":1}'


def test_no_body_sends_nothing() -> None:
    recorder = Recorder()
    run({"url": URL, "method": "POST"}, recorder)
    assert recorder.only.content == b""
    assert "content-type" not in recorder.only.headers


def test_the_api_example_forwards_the_payload_with_its_types() -> None:
    # As the engine does: resolve the saved config against the scope, validate, run.
    saved = {"url": "https://api.example.com/{{trigger.payload.kind}}", "method": "POST",
             "headers": {"Content-Type": "application/json", "X-Count": "{{trigger.payload.count}}"},
             "body": "{{trigger.payload}}"}
    payload = {"kind": "orders", "count": 3, "items": [{"sku": "A", "qty": 1}], "note": None}
    recorder = Recorder()
    run(resolve(saved, {"trigger": trigger_data(payload)}), recorder)
    assert str(recorder.only.url) == "https://api.example.com/orders"
    assert recorder.only.headers["x-count"] == "3"
    assert orjson.loads(recorder.only.content) == payload


# --- the output -----------------------------------------------------------------------------


def test_output_shape_with_a_json_body() -> None:
    output = run({"url": URL}, Recorder(lambda _: httpx.Response(201, json={"id": 5, "tags": ["x"]})))
    assert output == {
        "status": 201,
        "headers": {"content-length": "21", "content-type": "application/json"},
        "body": {"id": 5, "tags": ["x"]},
    }


@pytest.mark.parametrize(
    ("content_type", "content", "body"),
    [
        ("application/problem+json", b'{"title": "bad"}', {"title": "bad"}),
        ("application/json", b"not json", "not json"),
        ("text/html; charset=utf-8", b"<p>hi</p>", "<p>hi</p>"),
        ("text/plain; charset=latin-1", b"caf\xe9", "café"),
        ("application/xml", b"<a/>", "<a/>"),
        (None, b"plain", "plain"),
        ("application/json", b"", None),
    ],
)
def test_bodies_are_decoded_by_content_type(content_type: str | None, content: bytes, body: Any) -> None:
    headers = {"content-type": content_type} if content_type else {}
    output = run({"url": URL}, Recorder(lambda _: httpx.Response(200, headers=headers, content=content)))
    assert output["body"] == body


def test_binary_bodies_become_a_base64_object() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    output = run({"url": URL}, Recorder(lambda _: httpx.Response(200, headers={"content-type": "image/png"},
                                                                 content=png)))
    assert output["body"] == {"encoding": "base64", "content_type": "image/png",
                              "data": base64.b64encode(png).decode()}


def test_repeated_response_headers_are_joined() -> None:
    response = httpx.Response(200, headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-One", "1")])
    output = run({"url": URL}, Recorder(lambda _: response))
    assert output["headers"] == {"set-cookie": "a=1, b=2", "x-one": "1"}


def test_redirects_are_followed_by_default() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(302, headers={"location": "https://api.example.com/new"})
        return httpx.Response(200, text="moved here")

    recorder = Recorder(handler)
    assert run({"url": "https://api.example.com/old"}, recorder)["body"] == "moved here"
    assert [r.url.path for r in recorder.requests] == ["/old", "/new"]

    recorder = Recorder(handler)
    output = run({"url": "https://api.example.com/old", "follow_redirects": False}, recorder)
    assert (output["status"], output["headers"]["location"]) == (302, "https://api.example.com/new")
    assert len(recorder.requests) == 1


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_error_statuses_are_output_by_default(status: int) -> None:
    output = run({"url": URL}, Recorder(lambda _: httpx.Response(status, json={"error": "x"})))
    assert (output["status"], output["body"]) == (status, {"error": "x"})


@pytest.mark.parametrize(("status", "retryable", "kind"), [(400, False, None), (404, False, None), (429, True, "429"),
                                                           (500, True, "5xx"), (503, True, "5xx")])
def test_fail_on_status(status: int, retryable: bool, kind: str | None) -> None:
    error = failure({"url": URL, "method": "POST", "fail_on_status": True},
                    Recorder(lambda _: httpx.Response(status)))
    assert error.message == f"POST {URL} answered {status}"
    assert (error.retryable, error.kind, error.retry_after) == (retryable, kind, None)


def test_fail_on_status_passes_successes() -> None:
    assert run({"url": URL, "fail_on_status": True}, Recorder(lambda _: httpx.Response(204)))["status"] == 204


def raise_(exc: Exception) -> Handler:
    def handler(_: httpx.Request) -> httpx.Response:
        raise exc
    return handler


@pytest.mark.parametrize("exc_type", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout])
def test_timeouts_are_retryable(exc_type: type[httpx.TimeoutException]) -> None:
    error = failure({"url": URL, "timeout": 2.5}, raise_(exc_type("timed out")))
    assert error.message == f"GET {URL} timed out after 2.5s"
    assert (error.retryable, error.kind) == (True, "timeout")


def test_connect_errors_are_retryable() -> None:
    error = failure({"url": URL}, raise_(httpx.ConnectError("[Errno 111] Connection refused")))
    assert error.message == f"GET {URL} failed: ConnectError: [Errno 111] Connection refused"
    assert (error.retryable, error.kind) == (True, "connection_error")


def test_too_many_redirects_is_not_retryable() -> None:
    error = failure({"url": URL}, Recorder(lambda r: httpx.Response(302, headers={"location": str(r.url)})))
    assert error.message == f"GET {URL}: too many redirects"
    assert (error.retryable, error.kind) == (False, None)


def test_a_too_large_body_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_request_module, "MAX_RESPONSE_BYTES", 10)
    assert run({"url": URL}, Recorder(lambda _: httpx.Response(200, content=b"x" * 10)))["body"] == "x" * 10
    error = failure({"url": URL}, Recorder(lambda _: httpx.Response(200, content=b"x" * 11)))
    assert error.message == "response body larger than 10 bytes"
    assert error.retryable is False


def test_the_size_limit_stops_reading_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_request_module, "MAX_RESPONSE_BYTES", 1000)
    produced: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            produced.append(1)
            yield b"y" * 100

    error = failure({"url": URL}, Recorder(lambda _: httpx.Response(200, content=endless())))
    assert error.message == "response body larger than 1000 bytes"
    assert len(produced) == 11


def test_the_timeout_bounds_a_slowly_dripping_body() -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(10):
            time.sleep(0.05)
            yield b"."

    error = failure({"url": URL, "timeout": 0.1}, Recorder(lambda _: httpx.Response(200, content=drip())))
    assert error.message == f"GET {URL} timed out after 0.1s"
    assert (error.retryable, error.kind) == (True, "timeout")


# --- config validation ----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["{{trigger.payload.url}}", "https://api.example.com/{{input.id}}"])
def test_a_template_url_is_accepted_at_save_time(url: str) -> None:
    assert HttpRequestConfig.model_validate({"url": url}).url == url


def test_after_resolution_a_template_string_is_not_a_url() -> None:
    with pytest.raises(PydanticValidationError) as excinfo:
        HttpRequestConfig.model_validate({"url": "{{trigger.payload.url}}"}, context={"resolved": True})
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == [(("url",), "url_parsing")]


@pytest.mark.parametrize(
    ("url", "error_type"),
    [("api.example.com/data", "url_parsing"), ("ftp://example.com/f", "url_scheme"),
     ("javascript:alert(1)", "url_scheme"), ("file:///etc/passwd", "url_scheme"), ("", "url_parsing")],
)
@pytest.mark.parametrize("resolved", [False, True])
def test_the_url_must_be_http_or_https(url: str, error_type: str, resolved: bool) -> None:
    with pytest.raises(PydanticValidationError) as excinfo:
        HttpRequestConfig.model_validate({"url": url}, context={"resolved": resolved})
    assert [(e["loc"], e["type"]) for e in excinfo.value.errors()] == [(("url",), error_type)]


def test_config_defaults() -> None:
    config = HttpRequestConfig.model_validate({"url": URL}, context={"resolved": True})
    assert str(config.url) == URL
    assert config.model_dump(exclude={"url"}) == {
        "method": "GET", "headers": {}, "query": {}, "body": None, "body_type": "auto", "timeout": 30.0,
        "follow_redirects": True, "fail_on_status": False, "credential": None, "idempotency_key": False,
    }


@pytest.mark.parametrize("timeout", [0, -1, 301])
def test_timeout_bounds(timeout: float) -> None:
    with pytest.raises(PydanticValidationError):
        HttpRequestConfig.model_validate({"url": URL, "timeout": timeout})


@pytest.mark.parametrize("exc", [httpx.ReadError("reset by peer"), httpx.RemoteProtocolError("bad chunk")])
def test_other_transport_errors_are_connection_errors(exc: Exception) -> None:
    error = failure({"url": URL}, raise_(exc))
    assert error.message == f"GET {URL} failed: {type(exc).__name__}: {exc}"
    assert (error.retryable, error.kind) == (True, "connection_error")


# --- statuses the retry policy retries --------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [(500, "5xx"), (502, "5xx"), (503, "5xx"), (599, "5xx"), (429, "429")])
def test_a_status_the_retry_policy_retries_fails_the_step(status: int, kind: str) -> None:
    handler = Recorder(lambda _: httpx.Response(status, json={"error": "busy"}))
    error = failure({"url": URL}, handler, retry_on=frozenset({kind}))
    assert error.message == f"GET {URL} answered {status}"
    assert (error.retryable, error.kind, error.retry_after) == (True, kind, None)


@pytest.mark.parametrize(("status", "retry_on"), [
    (500, frozenset({"429", "timeout", "connection_error"})),
    (429, frozenset({"5xx", "timeout", "connection_error"})),
    (404, frozenset({"5xx", "429", "timeout", "connection_error", "error"})),
    (500, frozenset()),
])
def test_other_statuses_are_the_output(status: int, retry_on: frozenset[str]) -> None:
    output = run({"url": URL}, Recorder(lambda _: httpx.Response(status)), retry_on=retry_on)
    assert output["status"] == status


NOW = datetime(2026, 11, 22, 4, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_request_module, "utcnow", lambda: NOW)


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0),
    (" 0 ", 0.0),
    ("Sun, 22 Nov 2026 04:01:30 GMT", 90.0),
    ("Sun, 22 Nov 2026 04:00:00 GMT", 0.0),
    ("Sat, 21 Nov 2026 00:00:00 GMT", 0.0),  # in the past: no wait
    ("Sun, 22 Nov 2026 04:00:10 -0000", 10.0),
    ("-5", None),
    ("1.5", None),
    ("soon", None),
    ("", None),
    ("Sun, 99 Nov 2026 04:00:00 GMT", None),
    ("\u0661\u0662", None),  # Arabic-Indic digits: str.isdigit() says yes, HTTP says no
    (None, None),
])
def test_parse_retry_after(header: str | None, seconds: float | None, frozen_now: None) -> None:
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize("fail_on_status", [True, False])
def test_a_429_carries_retry_after(fail_on_status: bool, frozen_now: None) -> None:
    handler = Recorder(lambda _: httpx.Response(429, headers={"Retry-After": "Sun, 22 Nov 2026 04:00:42 GMT"}))
    error = failure({"url": URL, "fail_on_status": fail_on_status}, handler,
                    retry_on=frozenset() if fail_on_status else frozenset({"429"}))
    assert (error.kind, error.retry_after) == ("429", 42.0)

    error = failure({"url": URL, "fail_on_status": True}, Recorder(lambda _: httpx.Response(429, headers={
        "Retry-After": "7"})))
    assert (error.kind, error.retry_after) == ("429", 7.0)

    error = failure({"url": URL, "fail_on_status": True}, Recorder(lambda _: httpx.Response(429, headers={
        "Retry-After": "whenever"})))
    assert (error.kind, error.retry_after) == ("429", None)


def test_a_503_carries_retry_after_too() -> None:
    error = failure({"url": URL}, Recorder(lambda _: httpx.Response(503, headers={"Retry-After": "30"})),
                    retry_on=frozenset({"5xx"}))
    assert (error.kind, error.retry_after) == ("5xx", 30.0)


# --- the node's timeout -----------------------------------------------------------------------


def sent_timeout(request: httpx.Request) -> dict[str, float]:
    timeout: dict[str, float] = request.extensions["timeout"]
    return timeout


def test_without_a_deadline_the_configured_timeout_is_used() -> None:
    recorder = Recorder()
    run({"url": URL, "timeout": 12}, recorder)
    assert sent_timeout(recorder.only) == {"connect": 12.0, "read": 12.0, "write": 12.0, "pool": 12.0}


def test_a_node_deadline_shortens_the_request_timeout() -> None:
    recorder = Recorder()
    run({"url": URL, "timeout": 30}, recorder, deadline=time.monotonic() + 5)
    assert {round(v) for v in sent_timeout(recorder.only).values()} == {5}

    recorder = Recorder()
    run({"url": URL, "timeout": 2}, recorder, deadline=time.monotonic() + 60)
    assert set(sent_timeout(recorder.only).values()) == {2.0}


def test_a_passed_deadline_times_out_at_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert set(sent_timeout(request).values()) == {0.001}
        raise httpx.ConnectTimeout("timed out")

    error = failure({"url": URL}, handler, deadline=time.monotonic() - 1)
    assert error.message == f"GET {URL} timed out after 0.001s"
    assert error.kind == "timeout"


def test_the_deadline_bounds_a_slowly_dripping_body() -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(20):
            time.sleep(0.05)
            yield b"."

    started = time.monotonic()
    error = failure({"url": URL, "timeout": 30}, Recorder(lambda _: httpx.Response(200, content=drip())),
                    deadline=time.monotonic() + 0.2)
    assert error.kind == "timeout"
    assert time.monotonic() - started < 0.5


# --- the idempotency key ----------------------------------------------------------------------


def key_sent(config: dict[str, Any], header: str = "idempotency-key", **ctx_fields: Any) -> str | None:
    recorder = Recorder()
    run({"url": URL, "method": "POST", **config}, recorder, **ctx_fields)
    values = recorder.only.headers.get_list(header)
    assert len(values) <= 1
    return values[0] if values else None


def test_no_idempotency_key_by_default() -> None:
    assert key_sent({}) is None
    assert key_sent({"idempotency_key": False}) is None


def test_the_key_is_the_steps_and_the_same_on_every_attempt() -> None:
    first = key_sent({"idempotency_key": True}, attempt=1)
    assert first == node_context().idempotency_key
    assert key_sent({"idempotency_key": True}, attempt=2) == first
    assert key_sent({"idempotency_key": True}, attempt=7, retry_on=frozenset({"5xx"})) == first


def test_the_key_differs_per_step_iteration_and_run() -> None:
    keys = [
        key_sent({"idempotency_key": True}),
        key_sent({"idempotency_key": True}, node_id="node-2"),
        key_sent({"idempotency_key": True}, iteration=0),
        key_sent({"idempotency_key": True}, iteration=1),
        key_sent({"idempotency_key": True}, execution_id="exec-2"),
    ]
    assert len(set(keys)) == 5
    assert key_sent({"idempotency_key": True}, iteration=1) == keys[3]


def test_a_string_names_the_header() -> None:
    key = key_sent({"idempotency_key": "X-Request-Id"}, header="x-request-id")
    assert key == node_context().idempotency_key
    recorder = Recorder()
    run({"url": URL, "idempotency_key": "X-Request-Id"}, recorder)
    assert "idempotency-key" not in recorder.only.headers


@pytest.mark.parametrize(("setting", "configured"), [(True, "idempotency-KEY"), ("X-Request-Id", "x-request-id")])
def test_a_configured_header_wins(setting: bool | str, configured: str) -> None:
    recorder = Recorder()
    run({"url": URL, "method": "POST", "idempotency_key": setting, "headers": {configured: "mine-1"}}, recorder)
    name = "idempotency-key" if setting is True else setting
    assert isinstance(name, str)
    assert recorder.only.headers.get_list(name) == ["mine-1"]


def test_the_key_is_sent_on_get_too() -> None:
    recorder = Recorder()
    run({"url": URL, "idempotency_key": True}, recorder)
    assert recorder.only.headers["idempotency-key"] == NodeContext(
        execution_id="exec-1", workflow_id=1, node_id="node-1", trigger={}, scope={}, outputs={}).idempotency_key


@pytest.mark.parametrize("value", ["", "Bad Header", "x:y", "é", "x" * 65, None, 3])
def test_idempotency_key_config_errors(value: Any) -> None:
    with pytest.raises(PydanticValidationError) as excinfo:
        HttpRequestConfig.model_validate({"url": URL, "idempotency_key": value})
    assert {e["loc"][0] for e in excinfo.value.errors()} == {"idempotency_key"}


@pytest.mark.parametrize(("value", "parsed"), [(True, True), (False, False), ("Idempotency-Key", "Idempotency-Key"),
                                               ("X-Req-1", "X-Req-1")])
def test_idempotency_key_config(value: Any, parsed: Any) -> None:
    assert HttpRequestConfig.model_validate({"url": URL, "idempotency_key": value}).idempotency_key == parsed


# --- credentials ------------------------------------------------------------------------------

SECRET = "sk_live_0123456789abcdef"


def opened(type_: str, **fields: Any) -> Callable[[int | str], Any]:
    from automateos_common.credentials import OpenedCredential

    def lookup(ref: int | str) -> OpenedCredential:
        assert ref in ("svc", 5)
        return OpenedCredential(id=5, name="svc", type=type_, fields=fields)

    return lookup


def test_a_credential_header_replaces_a_configured_one_of_any_case() -> None:
    recorder = Recorder()
    run({"url": URL, "headers": {"authorization": "Bearer other", "X-Keep": "1"}, "credential": "svc"}, recorder,
        credentials=opened("bearer", token=SECRET))
    assert recorder.only.headers.get_list("authorization") == [f"Bearer {SECRET}"]
    assert recorder.only.headers["x-keep"] == "1"


def test_a_digit_string_reference_is_an_id() -> None:
    recorder = Recorder()
    run({"url": URL, "credential": "5"}, recorder, credentials=opened("header", name="X-Key", value=SECRET))
    assert recorder.only.headers["x-key"] == SECRET


def test_the_secret_is_cut_out_of_errors_and_echoed_output() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused for {request.url}")

    err = failure({"url": URL, "credential": "svc"}, boom,
                  credentials=opened("api_key", key=SECRET, location="query", name="key"))
    assert SECRET not in err.message and "<redacted>" in err.message
    out = run({"url": URL, "credential": "svc"}, Recorder(lambda r: httpx.Response(200, text=str(r.url))),
              credentials=opened("api_key", key=SECRET, location="query", name="key"))
    assert out["body"] == f"{URL}?key=<redacted>"
