"""`make dev`: the whole stack on embedded defaults (SQLite, a real embedded Redis) at :8000.

REDIS_URL / DATABASE_URL from the environment are used as they are; otherwise Redis runs from
the data folder (append-only, so queued runs survive a restart) and each service keeps a
SQLite file there. Ctrl-C stops every process this started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from automateos_common.settings import read_or_create_secret

from .gateway import DEFAULT_PORTS
from .servers import RedisServer, free_port
from .stack import SCHEDULER_PORT, Stack


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="automateos-dev", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("AUTOMATEOS_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("AUTOMATEOS_ENGINE_WORKERS", "1")))
    args = parser.parse_args(argv)

    data_dir = Path(os.environ.get("AUTOMATEOS_DATA_DIR", ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # AUTOMATEOS_<SERVICE>_PORT moves a service (e.g. when 8001-8004 are taken).
    ports = {name: int(os.environ.get(f"AUTOMATEOS_{name.upper()}_PORT", default))
             for name, default in DEFAULT_PORTS.items()}
    ports["scheduler"] = int(os.environ.get("AUTOMATEOS_SCHEDULER_PORT", str(SCHEDULER_PORT)))
    ports["gateway"] = args.port
    busy = [f"{name} :{p}" for name, p in ports.items() if not _port_free(p)]
    if busy:
        sys.exit(f"ports in use: {', '.join(busy)} (another `make dev`?). Set AUTOMATEOS_PORT to move the gateway.")

    redis: RedisServer | None = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        redis_port = 6380 if _port_free(6380) else free_port()
        redis = RedisServer(port=redis_port, data_dir=data_dir / "redis").start()
        redis_url = redis.url

    env = {
        "AUTOMATEOS_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "AUTOMATEOS_PUBLIC_URL": os.environ.get("AUTOMATEOS_PUBLIC_URL", f"http://127.0.0.1:{args.port}"),
        # One secret for every service's internal calls, generated once into the data folder.
        "AUTOMATEOS_INTERNAL_TOKEN": os.environ.get("AUTOMATEOS_INTERNAL_TOKEN")
        or read_or_create_secret(data_dir / "internal-token"),
    }
    stack = Stack(env=env, ports=ports, workers=args.workers)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        stack.start()
        stack.wait_healthy(timeout=90)
        base = stack.gateway_url
        print(f"""
  AutomateOS is running at {base}
    data folder  {data_dir}   (SQLite files, signing key, credentials master key, Redis append-only file)
    Redis        {redis_url}{"  (embedded)" if redis else ""}
    Swagger      {base}/api/v1/auth/docs
                 {base}/api/v1/workflows/docs
                 {base}/api/v1/ingress/docs
                 {base}/api/v1/engine/docs
    health       {base}/healthz   (the scheduler's: {stack.url("scheduler")}/healthz)
  Ctrl-C stops everything.
""", flush=True)
        while not stop.wait(1.0):
            dead = [n for n, p in stack.procs.items() if p.poll() is not None]
            if dead:
                print(f"stopping: {', '.join(dead)} exited", file=sys.stderr)
                break
    except (RuntimeError, TimeoutError) as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
    finally:
        print("stopping AutomateOS ...", flush=True)
        stack.stop()
        if redis is not None:
            redis.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    main()
