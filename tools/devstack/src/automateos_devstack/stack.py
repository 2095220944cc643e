"""The whole AutomateOS stack as local processes: four services, the engine's workers, the scheduler, the gateway.

Used by `make dev` and by the integration tests, so both start the same commands with the
same environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from .gateway import DEFAULT_PORTS, SERVICES
from .servers import free_port

SCHEDULER_PORT = 8005  # its health endpoint (the gateway does not route to it: it serves no API)
# Everything `start()` starts, in order: the scheduler needs only Redis.
PROCESSES = (*SERVICES, "scheduler", "gateway")


def _uvicorn(app: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "info", "--no-server-header", *extra]


@dataclass
class Stack:
    env: Mapping[str, str]
    ports: dict[str, int] = field(
        default_factory=lambda: {**DEFAULT_PORTS, "scheduler": SCHEDULER_PORT, "gateway": 8000})
    workers: int = 1
    log_dir: Path | None = None  # None: lines go to our stdout, prefixed with the service name
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "scheduler" not in self.ports:  # a caller that names the four services and the gateway only
            self.ports["scheduler"] = free_port()

    @property
    def data_dir(self) -> Path:
        return Path(self.env["AUTOMATEOS_DATA_DIR"])

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def command(self, name: str) -> list[str]:
        port = self.ports[name]
        return {
            "auth": lambda: _uvicorn("automateos_auth.main:create_app", port),
            "workflows": lambda: _uvicorn("automateos_workflows.main:create_app", port),
            # No access log: a line per webhook costs as much as accepting it; runs are the record
            # (automateos_ingress.fastpath logs refusals).
            "ingress": lambda: _uvicorn("automateos_ingress.main:create_app", port, "--no-access-log"),
            "engine": lambda: [sys.executable, "-m", "automateos_engine", "run", "--workers", str(self.workers),
                               "--port", str(port)],
            "scheduler": lambda: [sys.executable, "-m", "automateos_engine", "scheduler", "--port", str(port)],
            "gateway": lambda: _uvicorn("automateos_devstack.gateway:create_app", port),
        }[name]()

    def full_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        for svc in SERVICES:
            env[f"AUTOMATEOS_{svc.upper()}_URL"] = self.url(svc)
        env.setdefault("AUTOMATEOS_PUBLIC_URL", self.gateway_url)
        return env

    def start(self, *names: str) -> None:
        for name in names or PROCESSES:
            self._spawn(name)

    def _spawn(self, name: str) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = self._logs.get(name) or open(self.log_dir / f"{name}.log", "ab")
            self._logs[name] = log
            proc = subprocess.Popen(self.command(name), env=self.full_env(), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        else:
            proc = subprocess.Popen(self.command(name), env=self.full_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            threading.Thread(target=_prefix, args=(name, proc), daemon=True).start()
        self.procs[name] = proc

    def wait_healthy(self, *names: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names or PROCESSES)
        last: dict[str, str] = {}
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending:
                for name in list(pending):
                    proc = self.procs.get(name)
                    if proc is not None and proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with {proc.returncode}{self._tail(name)}")
                    try:
                        r = client.get(f"{self.url(name)}/healthz")
                        if r.status_code == 200:
                            pending.remove(name)
                        else:
                            last[name] = r.text
                    except httpx.HTTPError as exc:
                        last[name] = type(exc).__name__
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"not healthy after {timeout}s: {', '.join(pending)} ({last})"
                                       + "".join(self._tail(n) for n in pending))
                if pending:
                    time.sleep(0.1)

    def _tail(self, name: str, lines: int = 40) -> str:
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"\n--- last lines of {name}.log ---\n" + "\n".join(text)

    def stop(self, *names: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        targets = list(names or reversed(list(self.procs)))
        for name in targets:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for name in targets:
            proc = self.procs.get(name)
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if not names:
            for log in self._logs.values():
                log.close()
            self._logs.clear()

    def restart(self, name: str) -> None:
        self.stop(name)
        self._spawn(name)
        self.wait_healthy(name)


def _prefix(name: str, proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"{name:>9} | {line.decode(errors='replace')}")
        sys.stdout.flush()
