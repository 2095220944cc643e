"""Load generators: the shared result line, wrk's Lua, and the Python generator on a loopback server."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bench.loadgen import parse_result, run_load, wrk
from bench.loadgen.pyload import build_request, run

LINE = ('BENCH_RESULT {"duration_us": 2000000, "requests": 1010, "ok": 1000, "non2xx": 10, "statuses": {"503": 10}, '
        '"errors": {"connect": 0, "read": 1, "write": 0, "timeout": 2}, '
        '"latency_us": {"mean": 1500.5, "max": 9000, "p50": 1200, "p90": 2500, "p95": 3000, "p99": 7000}}')


def test_parse_result_reads_the_last_result_line():
    out = parse_result(f"Running 2s test\n  Latency 1.5ms\n{LINE}\n", generator="wrk", connections=16)
    assert (out.requests, out.ok, out.non_2xx, out.statuses) == (1010, 1000, 10, {"503": 10})
    assert out.socket_errors == {"connect": 0, "read": 1, "write": 0, "timeout": 2}
    assert out.errors == 13
    assert out.ok_per_s == 500.0
    assert out.latency is not None
    assert (out.latency.p50_us, out.latency.p95_us, out.latency.p99_us) == (1200.0, 3000.0, 7000.0)


def test_parse_result_without_a_line_shows_the_output():
    with pytest.raises(RuntimeError, match="unable to connect"):
        parse_result("unable to connect to 127.0.0.1:1", generator="wrk", connections=1)


def test_lua_string_escapes_quotes_backslashes_and_bytes():
    assert wrk.lua_string(b'{"a": "b\\c"}') == '"{\\034a\\034: \\034b\\092c\\034}"'
    assert wrk.lua_string("é\n".encode()) == '"\\195\\169\\010"'
    assert wrk.lua_script(b"{}").count('wrk.body = "{}"') == 1


def test_build_request():
    host, port, raw = build_request("http://127.0.0.1:8003/hooks/tok?x=1", b'{"a":1}')
    assert (host, port) == ("127.0.0.1", 8003)
    assert raw == (b"POST /hooks/tok?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8003\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 7\r\nConnection: keep-alive\r\n\r\n{\"a\":1}")


@pytest.fixture
def server() -> Iterator[str]:
    """Answers 202 (JSON, Content-Length) or, on /chunked, 202 chunked, or on /fail 503; keep-alive."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            status = 503 if self.path == "/fail" else 202
            self.send_response(status)
            if self.path == "/chunked":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"5\r\nhello\r\n0\r\n\r\n")
            else:
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("path", ["/hooks/x", "/chunked"])
def test_python_generator_counts_and_times_every_request(server, path):
    out = asyncio.run(run(server + path, connections=2, duration_s=0.3, body=b"{}"))
    assert out["ok"] == out["requests"]
    assert int(out["requests"]) > 10
    assert out["non2xx"] == 0 and out["errors"] == {}
    lat = out["latency_us"]
    assert isinstance(lat, dict) and 0 < lat["p50"] <= lat["p99"] <= lat["max"]


def test_python_generator_counts_non_2xx(server):
    out = asyncio.run(run(server + "/fail", connections=1, duration_s=0.2, body=b"{}"))
    assert out["ok"] == 0
    assert out["statuses"] == {"503": out["requests"]}


def test_python_generator_counts_refused_connections():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = asyncio.run(run(f"http://127.0.0.1:{port}/x", connections=1, duration_s=0.2, body=b"{}"))
    assert out["requests"] == 0
    assert out["errors"]["connect"] >= 1  # type: ignore[index]


@pytest.mark.parametrize("generator", [
    "python",
    pytest.param("wrk", marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")),
])
def test_each_generator_end_to_end_as_a_process(server, generator):
    out = run_load(generator, server + "/hooks/x", body=b'{"n": 1}', connections=2, duration_s=1)
    assert out.generator == generator
    assert out.ok == out.requests > 10
    assert out.errors == 0
    assert out.latency is not None and out.latency.p99_us > 0
