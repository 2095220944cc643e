"""The `http_request` node, against httpx.MockTransport."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from libs.common.tests.factories import node_context, trigger_data
from pydantic import ValidationError as PydanticValidationError

from automateos_common.errors import NodeExecutionError
from automateos_common.nodes.builtin import http_request as http_request_module
from automateos_common.nodes.builtin.http_request import USER_AGENT, HttpRequestConfig, HttpRequestNode
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


def run(config: dict[str, Any], handler: Handler) -> Any:
    """Validate a resolved config the way the engine does, and run the node."""
    validated = validated_config(HttpRequestNode, config, resolved=True)
    return HttpRequestNode().run(node_context(handler=handler), validated, input={"from": "previous"})


def failure(config: dict[str, Any], handler: Handler) -> NodeExecutionError:
    with pytest.raises(NodeExecutionError) as excinfo:
        run(config, handler)
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


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (404, False), (429, True), (500, True),
                                                   (503, True)])
def test_fail_on_status(status: int, retryable: bool) -> None:
    error = failure({"url": URL, "method": "POST", "fail_on_status": True},
                    Recorder(lambda _: httpx.Response(status)))
    assert error.message == f"POST {URL} answered {status}"
    assert error.retryable is retryable


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
    assert error.retryable is True


def test_connect_errors_are_retryable() -> None:
    error = failure({"url": URL}, raise_(httpx.ConnectError("[Errno 111] Connection refused")))
    assert error.message == f"GET {URL} failed: ConnectError: [Errno 111] Connection refused"
    assert error.retryable is True


def test_too_many_redirects_is_not_retryable() -> None:
    error = failure({"url": URL}, Recorder(lambda r: httpx.Response(302, headers={"location": str(r.url)})))
    assert error.message == f"GET {URL}: too many redirects"
    assert error.retryable is False


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
    assert error.retryable is True


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
        "follow_redirects": True, "fail_on_status": False,
    }


@pytest.mark.parametrize("timeout", [0, -1, 301])
def test_timeout_bounds(timeout: float) -> None:
    with pytest.raises(PydanticValidationError):
        HttpRequestConfig.model_validate({"url": URL, "timeout": timeout})
