"""Fixtures for the common library's unit tests: a real HTTP server for the egress guard."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class LocalServer:
    """A real HTTP server on a loopback address; records the paths it was asked for."""

    host: str
    port: int = 0
    paths: list[str] = field(default_factory=list)
    redirect_to: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


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
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return info

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
