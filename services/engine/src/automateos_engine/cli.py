"""`automateos-engine run|worker|scheduler`: a supervisor with N workers and a health endpoint, one worker,
or the scheduler of `schedule` triggers."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from automateos_common.logs import setup_logging

log = logging.getLogger("automateos_engine.supervisor")


SUPERVISOR_PID_ENV = "AUTOMATEOS_ENGINE_SUPERVISOR_PID"  # set for the workers a supervisor spawns
_PR_SET_PDEATHSIG = 1


def die_with(supervisor_pid: int) -> None:
    """Linux: this worker gets SIGTERM (RQ's warm shut-down) when its supervisor goes, so no worker outlives
    it: one left behind would go on taking runs, with no health check counting it and nobody to stop it.
    (The signal follows the supervisor's thread that started the worker: the main thread for the forked
    ones, the watcher for replacements; both live until the supervisor stops its workers anyway.)"""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor_pid:  # it went before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class ForkedWorker:
    """A worker forked from the supervisor, with the few `subprocess.Popen` methods the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            time.sleep(0.05)
        assert self.returncode is not None
        return self.returncode


Child = subprocess.Popen[bytes] | ForkedWorker


class Supervisor:
    """Keeps N worker processes alive; a worker that exits is restarted (with a short back-off).

    The first workers are forked from this process once it has imported the engine (`fork=True`),
    so their code and start-up data are shared pages, not copies: about 15 MB less each (PSS). A
    restart, later, starts a fresh `automateos-engine worker` process instead: by then this process
    has threads (its health server, the watcher), and forking a process with threads is unsafe.
    """

    def __init__(self, count: int, *, fork: bool = True) -> None:
        self.count = count
        self.fork = fork and hasattr(os, "fork")
        self.procs: list[Child] = []
        self.stopping = threading.Event()
        self._restart = threading.Lock()  # a restart and the stop never cross: no worker started after the stop

    def spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "automateos_engine", "worker"],
                                env={**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())})

    def fork_worker(self) -> ForkedWorker:
        sys.stdout.flush()
        sys.stderr.flush()
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                die_with(supervisor)
                from .worker import run_worker

                code = 0 if run_worker() else 1
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("engine worker crashed")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)  # never the supervisor's own clean-up
        return ForkedWorker(pid)

    def start(self) -> None:
        if self.fork:
            from .worker import preload

            preload()  # what every worker imports and builds, once, before the forks
            gc.freeze()  # and out of the collector's way, so the workers do not copy those pages
            self.procs = [self.fork_worker() for _ in range(self.count)]
        else:
            self.procs = [self.spawn() for _ in range(self.count)]
        threading.Thread(target=self._watch, daemon=True, name="worker-watch").start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for i, proc in enumerate(self.procs):
                if proc.poll() is None:
                    continue
                # A worker that exits as a stop begins (a signal to the whole process group reaches the
                # workers first) must not be replaced: hence the back-off's wait on the stop, then the lock.
                if self.stopping.wait(0.5):
                    return
                with self._restart:
                    if self.stopping.is_set():
                        return
                    log.warning("worker pid %s exited with %s; restarting", proc.pid, proc.returncode)
                    self.procs[i] = self.spawn()

    def status(self) -> tuple[int, int]:
        return sum(p.poll() is None for p in self.procs), self.count

    def stop(self, timeout: float = 30.0) -> None:
        with self._restart:
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
    scheduler = sub.add_parser("scheduler", help="fire schedule triggers (any number may run)")
    scheduler.add_argument("--host", default=None)
    scheduler.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    if args.cmd == "scheduler":
        from .scheduler import run_scheduler  # with its own settings: none of the engine's

        run_scheduler(host=args.host, port=args.port)
        return
    from .settings import get_settings

    settings = get_settings()
    if args.cmd == "worker":
        if os.environ.get(SUPERVISOR_PID_ENV, "").isdigit():
            die_with(int(os.environ[SUPERVISOR_PID_ENV]))
        from .worker import run_worker  # only here: the supervisor (`run`) needs none of the engine

        ok = run_worker(burst=args.burst)
        sys.exit(0 if ok or args.burst else 1)

    setup_logging(settings.log_level)
    sup = Supervisor(args.workers or settings.engine_workers)
    sup.start()
    try:
        _serve_health(sup, host=args.host or settings.engine_host, port=args.port or settings.engine_port,
                      log_level=settings.log_level.lower())
    finally:
        sup.stop()


def _serve_health(sup: Supervisor, *, host: str, port: int, log_level: str) -> None:
    """The supervisor's health endpoint, until SIGINT/SIGTERM. uvicorn and FastAPI are imported here only:
    the workers and the scheduler start through this module too, and need neither (~25 MB a process)."""
    import uvicorn

    from .health import create_app

    class HealthServer(uvicorn.Server):
        """uvicorn's server, except that SIGINT/SIGTERM are not raised again once it has stopped (uvicorn
        does, for the default handler to end the process): the supervisor still has its workers to stop."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            def on_signal(sig: int, frame: Any) -> None:
                sup.stopping.set()  # at once: a worker the same signal ends now is not to be replaced
                self.handle_exit(sig, frame)

            previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(create_app(worker_status=sup.status), host=host, port=port, log_level=log_level,
                            access_log=False)
    HealthServer(config).run()
