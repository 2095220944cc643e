"""`automateos-engine run|worker`: a supervisor with N workers and a health endpoint, or one worker."""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time

import uvicorn

from automateos_common.logs import setup_logging

from .health import create_app
from .settings import get_settings

log = logging.getLogger("automateos_engine.supervisor")


class Supervisor:
    """Keeps N worker processes alive; a worker that exits is restarted (with a short back-off)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()

    def spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "automateos_engine", "worker"])

    def start(self) -> None:
        self.procs = [self.spawn() for _ in range(self.count)]
        threading.Thread(target=self._watch, daemon=True, name="worker-watch").start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None and not self.stopping.is_set():
                    log.warning("worker pid %s exited with %s; restarting", proc.pid, proc.returncode)
                    time.sleep(0.5)
                    self.procs[i] = self.spawn()

    def status(self) -> tuple[int, int]:
        return sum(p.poll() is None for p in self.procs), self.count

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # RQ: warm shut-down, the current job finishes
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="automateos-engine")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="start N workers and the health endpoint")
    run.add_argument("--workers", type=int, default=None)
    run.add_argument("--host", default=None)
    run.add_argument("--port", type=int, default=None)
    worker = sub.add_parser("worker", help="run one worker in this process")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.cmd == "worker":
        from .worker import run_worker  # only here: the supervisor (`run`) needs none of the engine

        ok = run_worker(burst=args.burst)
        sys.exit(0 if ok or args.burst else 1)

    setup_logging(settings.log_level)
    sup = Supervisor(args.workers or settings.engine_workers)
    sup.start()
    try:
        # uvicorn handles SIGINT/SIGTERM (graceful stop) and returns; then the workers go.
        uvicorn.run(create_app(worker_status=sup.status), host=args.host or settings.engine_host,
                    port=args.port or settings.engine_port, log_level=settings.log_level.lower(),
                    access_log=False)
    finally:
        sup.stop()
