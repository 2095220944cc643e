"""Fixtures for the common library's unit tests: a real HTTP server for the egress guard."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from libs.common.tests.factories import LocalServer


@pytest.fixture
def start_server() -> Iterator[Callable[..., LocalServer]]:
    """Start HTTP servers (http.server in a thread): GET answers 200 'hello', or 302 to redirect_to."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(host: str = "127.0.0.1", *, redirect_to: str | None = None) -> LocalServer:
        info = LocalServer(host=host, redirect_to=redirect_to)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                info.paths.append(self.path)
                if info.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", info.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"hello"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass  # keep test output quiet

        server = ThreadingHTTPServer((host, 0), Handler)
        info.port = server.server_address[1]
        # A short poll interval keeps shutdown() (and so each test) fast.
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        running.append((server, thread))
        return info

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
