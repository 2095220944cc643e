"""How a webhook request becomes trigger data (payload by Content-Type, headers, query, body limit)."""

from __future__ import annotations

import asyncio
import base64

import pytest
from starlette.datastructures import Headers, QueryParams

from automateos_common.errors import PayloadTooLargeError
from automateos_ingress.payloads import parse_payload, read_body, trigger_data


@pytest.mark.parametrize(("body", "ctype", "expected"), [
    (b"", "application/json", None),
    (b'{"a": [1, 2]}', "application/json", {"a": [1, 2]}),
    (b'{"a": 1}', "application/vnd.api+json; charset=utf-8", {"a": 1}),
    (b'[1, "x"]', None, [1, "x"]),
    (b"{not json", "application/json", "{not json"),  # kept as text: a delivery is never lost
    (b"a=1&b=x&a=2&c=", "application/x-www-form-urlencoded", {"a": ["1", "2"], "b": "x", "c": ""}),
    (b"hello", "text/plain", "hello"),
    (b"<x/>", "application/xml", "<x/>"),
    (b"plain words", None, "plain words"),
])
def test_payload_by_content_type(body, ctype, expected):
    assert parse_payload(body, ctype) == expected


def test_binary_payload_is_base64():
    raw = bytes(range(256))
    assert parse_payload(raw, "application/octet-stream") == {
        "encoding": "base64", "content_type": "application/octet-stream", "data": base64.b64encode(raw).decode()}
    assert parse_payload(b"\xff\xfe", "text/plain")["encoding"] == "base64"


def test_credentials_and_hop_by_hop_headers_never_reach_the_run():
    headers = Headers({"Authorization": "Bearer x", "Cookie": "s=1", "X-AutomateOS-Internal": "k",
                       "Connection": "keep-alive", "X-GitHub-Event": "push", "Content-Type": "application/json"})
    data = trigger_data(payload={"a": 1}, headers=headers.items(), query=QueryParams("x=1&x=2&y=3").multi_items(),
                        method="POST")
    assert data == {"payload": {"a": 1}, "headers": {"x-github-event": "push", "content-type": "application/json"},
                    "query": {"x": ["1", "2"], "y": "3"}, "method": "POST"}


async def _chunks(*parts: bytes):
    for p in parts:
        yield p


def test_body_limit_by_header_and_by_counting():
    assert asyncio.run(read_body(_chunks(b"a" * 10, b"b" * 10), None, 20)) == b"a" * 10 + b"b" * 10
    with pytest.raises(PayloadTooLargeError):
        asyncio.run(read_body(_chunks(b"a" * 10, b"b" * 11), None, 20))
    with pytest.raises(PayloadTooLargeError):  # refused before reading anything
        asyncio.run(read_body(_chunks(), "21", 20))
