"""Secrets in URLs never reach a log line, and redaction keeps formatters working."""

from __future__ import annotations

import logging

import httpx
from uvicorn.logging import AccessFormatter

from automateos_common.logs import RedactingFilter, redact

TOKEN = "H8Nk8DlD0X5L5BDny9drcrKK5yBOfkInovKbbAtfIz0"


def record(msg: str, args: tuple[object, ...]) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)


def test_uvicorn_access_line_is_redacted_and_still_formats():
    rec = record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "POST", f"/hooks/{TOKEN}?x=1", "1.1", 202))
    assert RedactingFilter().filter(rec) is True
    line = AccessFormatter("%(client_addr)s - \"%(request_line)s\" %(status_code)s", use_colors=False).format(rec)
    assert line == '127.0.0.1:5000 - "POST /hooks/<redacted>?x=1 HTTP/1.1" 202 Accepted'


def test_objects_whose_text_holds_a_secret_are_replaced_by_their_redacted_text():
    rec = record("HTTP Request: %s %s %d", ("POST", httpx.URL(f"http://gw/hooks/{TOKEN}"), 202))
    RedactingFilter().filter(rec)
    assert rec.getMessage() == "HTTP Request: POST http://gw/hooks/<redacted> 202"
    assert rec.args[2] == 202  # numbers untouched


def test_bearer_tokens_and_messages():
    assert redact("Authorization: Bearer eyJhbGciOi.x.y") == "Authorization: Bearer <redacted>"
    rec = record(f"called /hooks/{TOKEN}", ())
    RedactingFilter().filter(rec)
    assert TOKEN not in rec.getMessage()
