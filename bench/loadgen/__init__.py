"""Load generators, each in its own process so it is never the thing measured.

`wrk` (C, Debian's package) when it is installed, else `bench.loadgen.pyload` (asyncio,
keep-alive HTTP/1.1). Both end by printing one `BENCH_RESULT {json}` line of the same
shape, read by `parse_result`:

    {"duration_us", "requests", "ok", "non2xx", "statuses": {"503": n},
     "errors": {"connect", "read", "write", "timeout"},
     "latency_us": {"mean", "max", "p50", "p90", "p95", "p99"}}

`requests` counts completed responses; `ok` the 2xx among them. A request still in flight
when the time is up is not counted by wrk (the server may still have accepted it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..stats import LatencySummary, rate
from . import wrk

RESULT_PREFIX = "BENCH_RESULT "
ERROR_KINDS = ("connect", "read", "write", "timeout")


@dataclass(frozen=True)
class LoadResult:
    generator: str
    connections: int
    duration_s: float
    requests: int
    ok: int
    non_2xx: int
    statuses: dict[str, int] = field(default_factory=dict)  # non-2xx status -> responses
    socket_errors: dict[str, int] = field(default_factory=dict)
    latency: LatencySummary | None = None

    @property
    def ok_per_s(self) -> float:
        return rate(self.ok, self.duration_s)

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_result(output: str, *, generator: str, connections: int) -> LoadResult:
    """The generator's `BENCH_RESULT` line (the last one) as a LoadResult."""
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"{generator} printed no result line; its output ends with:\n{output[-2000:]}")
    data = json.loads(lines[-1][len(RESULT_PREFIX):])
    lat = data.get("latency_us") or {}
    latency = None
    if data["requests"] > 0 and lat:
        latency = LatencySummary(count=int(data["requests"]), mean_us=float(lat["mean"]), max_us=float(lat["max"]),
                                 p50_us=float(lat["p50"]), p90_us=float(lat["p90"]), p95_us=float(lat["p95"]),
                                 p99_us=float(lat["p99"]))
    return LoadResult(
        generator=generator, connections=connections, duration_s=float(data["duration_us"]) / 1e6,
        requests=int(data["requests"]), ok=int(data["ok"]), non_2xx=int(data["non2xx"]),
        statuses={str(k): int(v) for k, v in (data.get("statuses") or {}).items()},
        socket_errors={k: int((data.get("errors") or {}).get(k, 0)) for k in ERROR_KINDS},
        latency=latency,
    )


def choose(preference: str) -> str:
    """`wrk` or `python` for a BENCH_LOADGEN preference (auto: wrk when it is installed)."""
    if preference == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if preference == "wrk":
        raise RuntimeError("BENCH_LOADGEN=wrk but wrk is not installed (Debian: apt-get install wrk)")
    return "python"


def run_load(generator: str, url: str, *, body: bytes, connections: int, duration_s: float, threads: int = 1,
             log: Path | None = None) -> LoadResult:
    """POST `body` (JSON) to `url` over `connections` keep-alive connections for `duration_s`."""
    with tempfile.TemporaryDirectory(prefix="aos-bench-") as tmp:
        if generator == "wrk":
            script = Path(tmp) / "post.lua"
            script.write_text(wrk.lua_script(body))
            cmd = wrk.command(url, script, connections=connections, duration_s=duration_s,
                              threads=min(threads, connections))
        else:
            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(body)
            cmd = [sys.executable, "-m", "bench.loadgen.pyload", url, "--connections", str(connections),
                   "--duration", str(duration_s), "--body-file", str(body_file)]
        output = _run(cmd, timeout=duration_s + 60)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{output}\n")
    return parse_result(output, generator=generator, connections=connections)


def _run(cmd: list[str], *, timeout: float) -> str:
    # Its own session: a Ctrl-C reaches the bench, which stops this in `finally`.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=Path(__file__).resolve().parents[2])
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"load generator still running after {timeout:.0f}s: {' '.join(cmd)}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator exited with {proc.returncode}: {' '.join(cmd)}\n{out[-2000:]}")
    return out
