"""Logging set-up shared by every process, with redaction of secrets that travel in URLs.

A webhook URL's token is its only secret, so access logs print `/hooks/<redacted>`.
"""

from __future__ import annotations

import logging
import re

_HOOK_RE = re.compile(r"/hooks/[^/\s?\"']+")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    return _BEARER_RE.sub(r"\1<redacted>", _HOOK_RE.sub("/hooks/<redacted>", text))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Redact inside the arguments, keeping their number and order: formatters such as
        # uvicorn's access log unpack them. An object (an httpx.URL) is judged by its text.
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def _redact_arg(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    redacted = redact(text)
    return value if redacted == text else redacted


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per upstream call from httpx would repeat the access log (and its URLs).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    flt = RedactingFilter()
    for name in ("", "uvicorn", "uvicorn.access", "uvicorn.error", "rq.worker"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(flt)
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(flt)
