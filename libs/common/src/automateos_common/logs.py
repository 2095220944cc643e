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
        # Format first: arguments may be objects (an httpx.URL) whose text holds the secret.
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


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
