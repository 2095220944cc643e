"""CORS limited to configured origins, with a refused preflight in the error envelope."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from .errors import error_body


class EnvelopeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in our error envelope (API.md: every 4xx)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        issue = bytes(response.body).decode()  # "Disallowed CORS origin, method": names no secret
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return JSONResponse(error_body("BAD_REQUEST", "CORS preflight refused", {"issue": issue}), status_code=400,
                            headers=headers)
