"""What each process of the stack does not import.

A module a process imports and never uses costs it memory for its whole life, in every copy of
it (bench/NOTES.md, "Memory"): httpx's command-line client (rich, pygments), SQLAlchemy in a
process without a database, Starlette in the scheduler's stdlib health server, the secret store
(cryptography's AES) in the scheduler. Each process is started as the stack starts it, in a
fresh interpreter, and its modules are listed once it is built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HTTPX_CLI = {"rich", "pygments"}
WEB = {"fastapi", "starlette", "uvicorn"}

# process -> (the code that builds it, as its entry point does; modules it must not have loaded)
PROCESSES = {
    "auth": ("import uvicorn.main; from automateos_auth.main import create_app; create_app()", HTTPX_CLI),
    "workflows": ("import uvicorn.main; from automateos_workflows.main import create_app; create_app()", HTTPX_CLI),
    "ingress": ("import uvicorn.main; from automateos_ingress.main import create_app; create_app()",
                {*HTTPX_CLI, "sqlalchemy", "sqlmodel"}),
    "engine worker": ("from automateos_engine.cli import Supervisor; from automateos_engine.worker import preload; "
                      "preload()", {*HTTPX_CLI, *WEB, "sqlalchemy"}),
    "engine supervisor's health server": (
        "from automateos_engine.health import create_app; create_app(worker_status=lambda: (1, 1))",
        {*HTTPX_CLI, "sqlalchemy"}),
    "scheduler": ("from automateos_engine.scheduler import get_scheduler_settings; get_scheduler_settings()",
                  {*HTTPX_CLI, *WEB, "sqlalchemy", "automateos_common.secretstore", "automateos_engine.settings"}),
}

LIST_MODULES = "\nimport json, sys\nprint(json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)))\n"


def loaded_modules(code: str, data_dir: Path) -> set[str]:
    env = {**os.environ, "AUTOMATEOS_DATA_DIR": str(data_dir)}
    out = subprocess.run([sys.executable, "-c", code + LIST_MODULES], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("process", PROCESSES)
def test_a_process_loads_none_of_what_it_never_uses(process: str, tmp_path: Path) -> None:
    code, unwanted = PROCESSES[process]
    loaded = loaded_modules(code, tmp_path)
    assert "automateos_common" in loaded  # it did build (a failed build raises in loaded_modules)
    found = sorted({m for m in unwanted if m in loaded} | {m.split(".")[0] for m in loaded} & unwanted)
    assert not found, f"{process} imports {found}"


def test_httpx_still_works_without_its_command_line_client(tmp_path: Path) -> None:
    code = ("import automateos_common, httpx\n"
            "r = httpx.Client(transport=httpx.MockTransport(lambda req: httpx.Response(204))).get('http://x/')\n"
            "assert r.status_code == 204 and callable(httpx.main)\n")
    loaded = loaded_modules(code, tmp_path)
    assert "httpx" in loaded and not HTTPX_CLI & {m.split(".")[0] for m in loaded}
