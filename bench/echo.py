"""The local HTTP API the example workflow's HTTP node calls (AutomateOS's and n8n's), in its own process.

`python -m bench.echo` prints its port on the first line and serves until SIGTERM/SIGINT. It
answers any method and path with 200 and `{"echo": <the JSON body>, "method", "path"}`, over
HTTP/1.1 with keep-alive, as a real API does (uvicorn, httptools, uvloop, a plain ASGI app): the
peer's cost, not the bench's, is what gets measured. devstack's EchoServer (http.server, a
thread and a connection per request) would cost more than the runs calling it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import uvicorn

from automateos_devstack.servers import free_port

_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    raw = b"".join(chunks)
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    out = json.dumps({"echo": body, "method": scope["method"], "path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


def start() -> tuple[subprocess.Popen[str], str]:
    """Start `python -m bench.echo` in a session of its own: (the process, its base URL) once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.echo"], stdout=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the echo server did not start (said {line!r})")
    return proc, f"http://127.0.0.1:{line}"


def main() -> None:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            loop="uvloop", http="httptools", lifespan="on", server_header=False,
                            date_header=False)
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                return
            await asyncio.sleep(0.01)
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()
        await task  # uvicorn handles SIGTERM/SIGINT: a graceful stop

    asyncio.run(serve())


if __name__ == "__main__":
    main()
