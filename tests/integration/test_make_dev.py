"""`make dev`'s runner on its embedded defaults (SQLite, embedded Redis): the example works, Ctrl-C stops all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.integration.helpers import Api

from automateos_devstack.servers import free_port
from automateos_devstack.testing import example_definition

pytestmark = pytest.mark.integration


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_dev_runner_serves_the_example_on_sqlite_and_stops_everything_on_ctrl_c(tmp_path: Path, echo_server):
    ports = {name: free_port() for name in ("auth", "workflows", "ingress", "engine", "scheduler")}
    gateway = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({f"AUTOMATEOS_{k.upper()}_PORT": str(v) for k, v in ports.items()})
    env.update({"AUTOMATEOS_DATA_DIR": str(tmp_path / ".data"), "AUTOMATEOS_EGRESS_ALLOW": "127.0.0.1",
                "AUTOMATEOS_PUBLIC_URL": f"http://127.0.0.1:{gateway}"})
    proc = subprocess.Popen([sys.executable, "-m", "automateos_devstack", "--port", str(gateway)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))
            if "AutomateOS is running at" in lines[-1]:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(120), "".join(lines[-40:])
        banner = "".join(lines)
        redis_port = int(re.search(r"Redis\s+redis://127\.0\.0\.1:(\d+)/0\s+\(embedded\)", banner).group(1))
        for svc in ("auth", "workflows", "ingress", "engine"):
            assert f"http://127.0.0.1:{gateway}/api/v1/{svc}/docs" in banner
        scheduler = httpx.get(f"http://127.0.0.1:{ports['scheduler']}/healthz", trust_env=False)  # it runs too
        assert scheduler.json()["checks"] == {"redis": "ok", "loop": "ok"}

        api = Api(f"http://127.0.0.1:{gateway}")
        user = api.register()
        wf = api.create_workflow(user, example_definition(f"{echo_server.url}/dev"))
        r = httpx.post(wf["webhook_url"], json={"dev": True})
        assert r.status_code == 202
        run = api.wait_run(user, r.json()["execution_id"])
        assert run["status"] == "success"
        assert run["steps"][1]["output"]["body"]["echo"] == {"dev": True}
        data = tmp_path / ".data"
        assert {"auth.db", "workflows.db", "internal-token"} <= {p.name for p in data.iterdir()}
        assert (data / "keys" / "auth-signing-key.pem").exists()
        assert any((data / "redis").rglob("appendonly*"))  # queued runs survive a restart
        api.http.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            reader.join(10)
            assert proc.stdout is not None
            proc.stdout.close()
    assert "stopped." in "".join(lines)
    deadline = time.monotonic() + 10
    all_ports = [gateway, redis_port, *ports.values()]
    while any(listening(p) for p in all_ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in all_ports if listening(p)] == []
