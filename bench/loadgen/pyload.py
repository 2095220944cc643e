"""The fallback load generator: N keep-alive HTTP/1.1 connections on raw asyncio streams.

`python -m bench.loadgen.pyload URL --connections N --duration S --body-file F` POSTs the
body back to back on each connection (closed loop, like wrk), records each request's
latency, and prints one `BENCH_RESULT {json}` line (see bench.loadgen). Run it as its own
process: it must not share a CPU time slice with the bench's bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..stats import summarize

IO_TIMEOUT_S = 10.0


@dataclass
class Tally:
    latencies_us: list[float] = field(default_factory=list)
    ok: int = 0
    non2xx: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def build_request(url: str, body: bytes, content_type: str = "application/json") -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    port = parts.port or 80
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    head = (f"POST {target} HTTP/1.1\r\nHost: {parts.hostname}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return parts.hostname, port, head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, whether the connection stays open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection") != "close" and lines[0].startswith("HTTP/1.1")


async def _connection(host: str, port: int, request: bytes, deadline: float, tally: Tally) -> None:
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while time.monotonic() < deadline:
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), IO_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                tally.errors["connect"] += 1
                await asyncio.sleep(0.05)
                continue
        assert reader is not None and writer is not None
        start = time.perf_counter_ns()
        try:
            writer.write(request)
            await writer.drain()
        except OSError:
            tally.errors["write"] += 1
            writer.close()
            writer = None
            continue
        try:
            status, keep_alive = await asyncio.wait_for(read_response(reader), IO_TIMEOUT_S)
        except asyncio.TimeoutError:
            tally.errors["timeout"] += 1
            keep_alive, status = False, 0
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            tally.errors["read"] += 1
            keep_alive, status = False, 0
        if status:
            tally.latencies_us.append((time.perf_counter_ns() - start) / 1000)
            if 200 <= status < 300:
                tally.ok += 1
            else:
                tally.non2xx += 1
                tally.statuses[str(status)] += 1
        if not keep_alive:
            assert writer is not None
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def run(url: str, *, connections: int, duration_s: float, body: bytes) -> dict[str, object]:
    host, port, request = build_request(url, body)
    tally = Tally()
    started = time.perf_counter()
    deadline = time.monotonic() + duration_s
    await asyncio.gather(*(_connection(host, port, request, deadline, tally) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    lat = summarize(tally.latencies_us)
    return {
        "duration_us": int(elapsed * 1e6), "requests": tally.ok + tally.non2xx, "ok": tally.ok,
        "non2xx": tally.non2xx, "statuses": dict(tally.statuses), "errors": dict(tally.errors),
        "latency_us": {} if lat is None else {"mean": lat.mean_us, "max": lat.max_us, "p50": lat.p50_us,
                                              "p90": lat.p90_us, "p95": lat.p95_us, "p99": lat.p99_us},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen.pyload", description=__doc__)
    p.add_argument("url")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--body-file", type=Path, required=True)
    args = p.parse_args(argv)
    coro = run(args.url, connections=args.connections, duration_s=args.duration, body=args.body_file.read_bytes())
    try:
        import uvloop  # uvicorn's dependency: a faster event loop when present
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
