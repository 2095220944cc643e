"""n8n as a bench peer: installed from npm into a cache folder, run on loopback with SQLite.

The same load generator drives it through bench.phases.ingress_phase. Its workflow is the
issue's equivalent of AutomateOS's example: Webhook (POST, "respond immediately") -> IF (the
body's `source` is "bench") -> HTTP Request (POST of the body to the bench's echo server).
n8n in regular mode accepts a webhook and executes its workflow in the same process, so one
load measures both: accepted/s and latency from the load generator, completed executions from
its own records (`execution_entity` in its SQLite database).

Workflows are imported and published with n8n's own CLI before `n8n start`, which activates
the published ones: a pool of identical workflows (one path each), handed out by `webhook()`
one per phase, so each phase counts the executions of a workflow of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from automateos_devstack.servers import free_port

from . import echo
from .proc import cpu_seconds, descendants, parent_map, tree_memory
from .target import ProcessMemory, RunCounts, Target, Webhook

DEFAULT_VERSION = "2.8.4"  # the newest whose `engines` admits Node.js 20 (2.41 needs 24)
# n8n-nodes-base depends on xlsx as a tarball from the SheetJS CDN, outside npm: the registry's
# last xlsx stands in (only the Spreadsheet File / Extract nodes use it, not the bench's workflow).
OVERRIDES = {"xlsx": "0.18.5"}
MARKER = ".bench-installed"
INSTALL_TIMEOUT_S = 1800.0
CLI_TIMEOUT_S = 300.0
START_TIMEOUT_S = 180.0
# AutomateOS's PostgreSQL runs with fsync off; n8n's SQLite (WAL, fsync per commit) gets the same
# footing on a RAM-backed file system. On this machine's disk a commit's fsync costs ~4 ms, and n8n
# commits several times per execution: on disk it accepted 27/s here, on tmpfs 55-76/s.
TMPFS = Path("/dev/shm")
TMPFS_MIN_FREE = 1 << 30  # a full run writes ~100 MB of executions; a container's 64 MB /dev/shm is too small


def tmpfs_usable(path: Path = TMPFS) -> bool:
    try:
        return path.is_dir() and os.access(path, os.W_OK) and shutil.disk_usage(path).free >= TMPFS_MIN_FREE
    except OSError:
        return False
STOP_GRACE_S = 20.0
FINISHED = ("success", "error", "crashed", "canceled")
UNFINISHED = ("new", "running")
Say = Callable[[str], None]


class PeerError(RuntimeError):
    """n8n could not be installed or started; the message's first line says why, `log` where to look."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


# -- installing ------------------------------------------------------------------------------


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "automateos-bench"


def install_dir(version: str, environ: Mapping[str, str] | None = None) -> Path:
    return cache_root(environ) / f"n8n-{version}"


def package_json(version: str) -> dict[str, Any]:
    """The cache folder's package.json: n8n pinned, the CDN-only dependency taken from npm instead."""
    return {"name": "automateos-bench-n8n", "private": True, "description": "n8n for `make bench` (bench/n8n.py)",
            "dependencies": {"n8n": version}, "overrides": dict(OVERRIDES)}


def n8n_script(folder: Path) -> Path:
    return folder / "node_modules" / "n8n" / "bin" / "n8n"


def install_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """npm's environment for the install. sqlite3 has no prebuilt binary reachable here (GitHub), so it
    builds from source: node-gyp takes Node's headers from the installed Node (/usr/include/node)
    instead of downloading them."""
    env = dict(os.environ if environ is None else environ)
    node = shutil.which("node", path=env.get("PATH"))
    if node and "npm_config_nodedir" not in env:
        prefix = Path(node).resolve().parent.parent
        if (prefix / "include" / "node" / "common.gypi").exists():
            env["npm_config_nodedir"] = str(prefix)
    env.setdefault("N8N_DIAGNOSTICS_ENABLED", "false")
    return env


def install(version: str, *, log: Path, say: Say, environ: Mapping[str, str] | None = None) -> Path:
    """n8n `version` in its cache folder (installed when the marker is missing); the folder."""
    folder = install_dir(version, environ)
    if (folder / MARKER).exists() and n8n_script(folder).exists():
        return folder
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise PeerError(f"{tool} is not installed: n8n needs Node.js 20 and npm")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps(package_json(version), indent=2) + "\n")
    say(f"installing n8n {version} from npm into {folder} (once; minutes; log {log})")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=warn"]
    with log.open("a") as out:
        out.write(f"$ cd {folder} && {' '.join(cmd)}\n")
        out.flush()
        code = _run_logged(cmd, cwd=folder, env=install_env(environ), out=out, timeout=INSTALL_TIMEOUT_S)
    if code != 0 or not n8n_script(folder).exists():
        raise PeerError(f"npm install of n8n {version} failed ({_why(code)}): {_last_error(log)}", log)
    env = install_env(environ)
    if not _loads_sqlite3(folder, env):  # an npm that skipped install scripts: build it explicitly
        with log.open("a") as out:
            out.write("$ npm rebuild sqlite3\n")
            out.flush()
            _run_logged(["npm", "rebuild", "sqlite3"], cwd=folder, env=env, out=out, timeout=INSTALL_TIMEOUT_S)
        if not _loads_sqlite3(folder, env):
            raise PeerError("n8n's SQLite driver (the sqlite3 package) did not build: "
                            f"{_last_error(log)}", log)
    (folder / MARKER).write_text(f"n8n {version}\n")
    return folder


def _loads_sqlite3(folder: Path, env: Mapping[str, str]) -> bool:
    """Whether the native sqlite3 module n8n's database layer uses loads (it has no pure-JS fallback)."""
    out = subprocess.run(["node", "-e", "require('sqlite3')"], cwd=folder, env=dict(env), capture_output=True,
                         timeout=60)
    return out.returncode == 0


def _why(code: int | None) -> str:
    return "timed out" if code is None else f"exit {code}"


def _run_logged(cmd: Sequence[str], *, cwd: Path | None, env: Mapping[str, str], out: Any,
                timeout: float) -> int | None:
    """Run `cmd` with its output into `out`; its exit code, None when it was killed at `timeout`."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:  # the timeout, or Ctrl-C: nothing of it stays behind
        if proc.poll() is None:
            kill_tree(proc.pid, grace_s=5.0)
            proc.wait()


def _last_error(log: Path, lines: int = 400) -> str:
    """The most telling line near the end of a log (an `Error`/`ERR!` line, else the last one)."""
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return "(no log)"
    tail = [line.strip() for line in tail if line.strip()]
    npm = [line for line in tail if line.startswith(("npm error", "npm ERR!"))]
    if npm:  # "npm error code ETARGET" says little without the line after it
        return "; ".join(npm[:2])[:300]
    for marker in ("Error:", "error", "ERR!"):
        hits = [line for line in tail if marker in line]
        if hits:
            return hits[0][:300]
    return tail[-1][:300] if tail else "(empty log)"


# -- the workflow ----------------------------------------------------------------------------


def workflow_id(index: int) -> str:
    """n8n workflow ids are 16 alphanumerics."""
    return f"aosbench{index:08d}"


def webhook_path(index: int) -> str:
    return f"bench-{index}"


def workflow(index: int, echo_url: str) -> dict[str, Any]:
    """Webhook (POST, respond immediately) -> IF ($json.body.source == "bench") -> HTTP Request
    (POST of the webhook's body as JSON to `{echo_url}/data`); importable by `n8n import:workflow`."""
    ns = uuid.UUID("6f1c4a52-8d1e-4f7a-9c53-0b6a3f2e9d10")
    ids = {name: str(uuid.uuid5(ns, f"{index}-{name}")) for name in ("webhook", "hook-id", "if", "cond", "http")}
    nodes = [
        {"id": ids["webhook"], "name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
         "position": [0, 0], "webhookId": ids["hook-id"],
         "parameters": {"httpMethod": "POST", "path": webhook_path(index), "responseMode": "onReceived",
                        "options": {}}},
        {"id": ids["if"], "name": "If", "type": "n8n-nodes-base.if", "typeVersion": 2.2, "position": [220, 0],
         "parameters": {
             "conditions": {
                 "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict", "version": 2},
                 "conditions": [{"id": ids["cond"], "leftValue": "={{ $json.body.source }}", "rightValue": "bench",
                                 "operator": {"type": "string", "operation": "equals"}}],
                 "combinator": "and"},
             "options": {}}},
        {"id": ids["http"], "name": "HTTP Request", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2,
         "position": [440, -100],
         "parameters": {"method": "POST", "url": f"{echo_url}/data", "sendBody": True, "specifyBody": "json",
                        "jsonBody": "={{ JSON.stringify($json.body) }}", "options": {}}},
    ]
    connections = {
        "Webhook": {"main": [[{"node": "If", "type": "main", "index": 0}]]},
        "If": {"main": [[{"node": "HTTP Request", "type": "main", "index": 0}], []]},
    }
    return {"id": workflow_id(index), "name": f"bench example {index}", "active": False, "nodes": nodes,
            "connections": connections, "settings": {"executionOrder": "v1"}, "pinData": {}}


# -- configuration ---------------------------------------------------------------------------


def n8n_env(*, user_folder: Path, port: int, broker_port: int, sqlite: Path | None = None,
            base: Mapping[str, str] | None = None) -> dict[str, str]:
    """n8n's environment: its own folder and SQLite, loopback only, nothing phoned home.
    Execution saving, concurrency and task runners stay at n8n's defaults."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not (k.startswith(("N8N_", "DB_", "EXECUTIONS_", "QUEUE_", "WEBHOOK_")) or k == "NODE_OPTIONS")}
    env.update(settings(user_folder=user_folder, port=port, broker_port=broker_port, sqlite=sqlite))
    return env


def settings(*, user_folder: Path, port: int, broker_port: int, sqlite: Path | None = None) -> dict[str, str]:
    """The variables the bench sets for n8n (shown in the report). `sqlite`: the database file, when
    not n8n's default <user folder>/.n8n/database.sqlite."""
    return {
        "N8N_USER_FOLDER": str(user_folder),  # its data: <folder>/.n8n (config, event log, database.sqlite)
        "DB_TYPE": "sqlite",
        **({"DB_SQLITE_DATABASE": str(sqlite)} if sqlite is not None else {}),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        "N8N_PORT": str(port),
        "N8N_PROTOCOL": "http",
        "N8N_RUNNERS_BROKER_PORT": str(broker_port),  # its task runners' broker, on a free port too
        "N8N_RUNNERS_BROKER_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_ENCRYPTION_KEY": "automateos-bench-not-a-secret",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_HIRING_BANNER_ENABLED": "false",
        "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
        "N8N_LICENSE_AUTO_RENEW_ENABLED": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "N8N_SECURE_COOKIE": "false",
        "N8N_LOG_LEVEL": "info",
        "N8N_LOG_OUTPUT": "console",
    }


# -- its records -----------------------------------------------------------------------------


def parse_time(value: object) -> datetime | None:
    """A timestamp as n8n's SQLite stores it ('2026-12-01 06:30:00.123', ISO with Z, or epoch ms)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def execution_counts(db: Path, workflow: str) -> RunCounts:
    """The workflow's executions in n8n's `execution_entity`: all rows, finished, succeeded, and the
    first start and last stop of the finished ones."""
    if not db.exists():
        return RunCounts(recorded=0, finished=0, succeeded=0)
    marks = ", ".join("?" for _ in FINISHED)
    with _connect(db) as conn:
        row = conn.execute(
            f"SELECT count(*), coalesce(sum(status IN ({marks})), 0), coalesce(sum(status = 'success'), 0),"
            f" min(CASE WHEN status IN ({marks}) THEN startedAt END), max(stoppedAt)"
            " FROM execution_entity WHERE workflowId = ?", (*FINISHED, *FINISHED, workflow)).fetchone()
    recorded, finished, succeeded, first, last = row
    return RunCounts(recorded=int(recorded), finished=int(finished), succeeded=int(succeeded),
                     first_started=parse_time(first), last_completed=parse_time(last))


def stop_times(db: Path, workflow: str) -> list[datetime]:
    """`stoppedAt` of the workflow's finished executions (UTC)."""
    if not db.exists():
        return []
    with _connect(db) as conn:
        rows = conn.execute(f"SELECT stoppedAt FROM execution_entity WHERE workflowId = ? AND status IN"
                            f" ({', '.join('?' for _ in FINISHED)}) AND stoppedAt IS NOT NULL",
                            (workflow, *FINISHED)).fetchall()
    return [t for t in (parse_time(r[0]) for r in rows) if t is not None]


def unfinished(db: Path, workflows: Iterable[str]) -> int:
    """Executions of these workflows not ended yet (new or running)."""
    ids = list(workflows)
    if not db.exists() or not ids:
        return 0
    with _connect(db) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM execution_entity WHERE status IN ({', '.join('?' for _ in UNFINISHED)})"
            f" AND workflowId IN ({', '.join('?' for _ in ids)})", (*UNFINISHED, *ids)).fetchone()
    return int(row[0])


def published(db: Path, workflows: Iterable[str]) -> set[str]:
    """Those of these workflows that have a published (active) version."""
    ids = list(workflows)
    if not db.exists() or not ids:
        return set()
    with _connect(db) as conn:
        rows = conn.execute(f"SELECT id FROM workflow_entity WHERE activeVersionId IS NOT NULL"
                            f" AND id IN ({', '.join('?' for _ in ids)})", ids).fetchall()
    return {str(r[0]) for r in rows}


class _connect:
    """A short read-only connection (n8n is the only writer)."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


# -- processes -------------------------------------------------------------------------------


def kill_tree(root: int, *, grace_s: float) -> None:
    """SIGTERM to `root`'s process group and every process below it, SIGKILL to what is left after
    `grace_s`. Only that tree: pids are collected from /proc before any signal."""
    pids = descendants(root, parent_map())

    def alive() -> list[int]:
        now = parent_map()
        return [pid for pid in pids if pid in now and not _zombie(pid)]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + grace_s
            while alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            pids = list(dict.fromkeys([*pids, *(p for r in alive() for p in descendants(r, parent_map()))]))
        try:
            os.killpg(root, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in alive():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rindex(")") + 2:].startswith("Z")


# -- the target ------------------------------------------------------------------------------


class N8n(Target):
    name = "n8n"
    routes = ("direct",)

    def __init__(self, work_dir: Path, *, version: str = DEFAULT_VERSION, workflows: int, say: Say) -> None:
        self.work_dir = work_dir
        self.version = version
        self.workflows = workflows  # handed out by webhook(), one per call; one more is the readiness probe
        self.say = say
        self.folder = work_dir / "n8n"  # N8N_USER_FOLDER
        self.db_dir: Path | None = None  # the database's folder on tmpfs, when there is one
        self.install_folder: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.echo: subprocess.Popen[str] | None = None
        self.echo_url = ""
        self.port = 0
        self.env: dict[str, str] = {}
        self.settings: dict[str, str] = {}
        self.node_version = ""
        self._handed = 0
        self._log_file: Any = None

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def log(self) -> Path:
        return self.log_dir / "n8n.log"

    @property
    def db(self) -> Path:
        return (self.db_dir or self.folder / ".n8n") / "database.sqlite"

    @property
    def db_where(self) -> str:
        return "tmpfs (RAM)" if self.db_dir is not None else "disk"

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.install_folder = install(self.version, log=self.log_dir / "n8n-install.log", say=self.say)
        self.node_version = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                           timeout=30).stdout.strip()
        self._start_echo()
        self.port = free_port()
        broker = free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        if tmpfs_usable():
            self.db_dir = Path(tempfile.mkdtemp(prefix="aos-bench-n8n-", dir=TMPFS))
        sqlite = None if self.db_dir is None else self.db
        self.settings = settings(user_folder=self.folder, port=self.port, broker_port=broker, sqlite=sqlite)
        self.env = n8n_env(user_folder=self.folder, port=self.port, broker_port=broker, sqlite=sqlite)
        definitions = [workflow(i, self.echo_url) for i in range(self.workflows + 1)]
        path = self.folder / "bench-workflows.json"
        path.write_text(json.dumps(definitions, indent=1))
        self.say(f"n8n {self.version} (Node.js {self.node_version}): importing {len(definitions)} workflows "
                 f"with its CLI (log {self.log})")
        self._cli("import:workflow", f"--input={path}")
        self._publish([str(d["id"]) for d in definitions])
        self.say(f"starting n8n on 127.0.0.1:{self.port} (SQLite {self.db}, {self.db_where})")
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(self._command("start"), cwd=self.folder, env=self.env, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready()

    def _command(self, *args: str) -> list[str]:
        assert self.install_folder is not None
        return ["node", str(n8n_script(self.install_folder)), *args]

    def _cli(self, *args: str) -> None:
        with self.log.open("a") as out:
            out.write(f"$ n8n {' '.join(args)}\n")
            out.flush()
            code = _run_logged(self._command(*args), cwd=self.folder, env=self.env, out=out, timeout=CLI_TIMEOUT_S)
        if code != 0:
            raise PeerError(f"`n8n {' '.join(args)}` failed ({_why(code)}): {_last_error(self.log, 60)}", self.log)

    def _publish(self, ids: list[str]) -> None:
        """`n8n publish:workflow --id=...` for each (one id per call, ~5 s of start-up each: a few at a time;
        a call that failed, e.g. on a busy database, once more alone), then each checked in its database."""
        width = max(1, min(len(ids), os.cpu_count() or 1))
        failed: list[str] = []
        for start in range(0, len(ids), width):
            batch = ids[start:start + width]
            codes = self._cli_parallel([("publish:workflow", f"--id={i}") for i in batch])
            failed += [i for i, code in zip(batch, codes, strict=True) if code != 0]
        for i in failed:
            self._cli("publish:workflow", f"--id={i}")
        inactive = [i for i in ids if i not in published(self.db, ids)]
        if inactive:
            raise PeerError(f"n8n publish:workflow left {len(inactive)} workflows unpublished ({inactive[0]}, ...)",
                            self.log)

    def _cli_parallel(self, calls: list[tuple[str, ...]]) -> list[int | None]:
        """Several CLI calls at once, each into a log of its own, appended to n8n.log in order at the end."""
        logs = [self.log_dir / f"n8n-cli-{n}.log" for n in range(len(calls))]
        procs = []
        try:
            for args, log in zip(calls, logs, strict=True):
                with log.open("w") as out:
                    out.write(f"$ n8n {' '.join(args)}\n")
                    out.flush()
                    procs.append(subprocess.Popen(self._command(*args), cwd=self.folder, env=self.env, stdout=out,
                                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                  start_new_session=True))
            deadline = time.monotonic() + CLI_TIMEOUT_S
            codes: list[int | None] = []
            for proc in procs:
                try:
                    codes.append(proc.wait(max(0.1, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    codes.append(None)
            return codes
        finally:
            for proc in procs:
                if proc.poll() is None:
                    kill_tree(proc.pid, grace_s=5.0)
                    proc.wait()
            with self.log.open("a") as out:
                for log in logs:
                    if log.exists():
                        out.write(log.read_text(errors="replace"))
                        log.unlink()

    def _wait_ready(self) -> None:
        """/healthz, then the readiness workflow's webhook answering 200 (its workflows are active)."""
        probe = self.warm_up_url
        deadline = time.monotonic() + START_TIMEOUT_S
        healthy = False
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise PeerError(f"n8n exited with {self.proc.returncode} while starting: {_last_error(self.log)}",
                                    self.log)
                try:
                    if not healthy:
                        healthy = client.get(self.url("/healthz")).status_code == 200
                    if healthy and client.post(probe, json={"n": 0, "source": "bench"}).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    what = "its webhook to answer 200" if healthy else "/healthz"
                    raise PeerError(f"n8n not ready after {START_TIMEOUT_S:.0f}s (waiting for {what})", self.log)
                time.sleep(0.5)

    def _start_echo(self) -> None:
        try:
            self.echo, self.echo_url = echo.start()
        except RuntimeError as exc:
            raise PeerError(str(exc)) from None

    def stop(self) -> None:
        for what, proc in (("n8n", self.proc), ("echo server", self.echo)):
            if proc is None:
                continue
            try:
                if proc.poll() is None:
                    kill_tree(proc.pid, grace_s=STOP_GRACE_S)
                proc.wait(10)
            except Exception as exc:  # stop the rest whatever one of them does
                self.say(f"stopping {what} failed: {exc!r}")
        if self._log_file is not None:
            self._log_file.close()
        self.proc = self.echo = self._log_file = None
        if self.db_dir is not None:  # RAM: never left behind
            shutil.rmtree(self.db_dir, ignore_errors=True)

    @property
    def warm_up_url(self) -> str:
        """The readiness workflow's webhook: load on it is counted in no phase."""
        return self.url(f"/webhook/{webhook_path(self.workflows)}")

    # -- Target ------------------------------------------------------------------------------

    def webhook(self, label: str, route: str = "direct") -> Webhook:
        """The next workflow of the imported pool (each phase its own, so counts are per phase)."""
        assert route == "direct"
        if self._handed >= self.workflows:
            raise RuntimeError(f"all {self.workflows} n8n workflows imported for this run are used ({label!r})")
        index, self._handed = self._handed, self._handed + 1
        return Webhook(label=label, url=self.url(f"/webhook/{webhook_path(index)}"), key=workflow_id(index))

    def run_counts(self, hook: Webhook) -> RunCounts:
        return execution_counts(self.db, hook.key)

    def completed_times(self, hook: Webhook) -> list[datetime]:
        return stop_times(self.db, hook.key)

    def memory(self) -> list[ProcessMemory]:
        assert self.proc is not None
        mem = tree_memory(self.proc.pid)
        return [ProcessMemory("n8n", mem, in_total=True,
                              note=f"n8n {self.version}: main process and children (task runner); SQLite in-process")]

    def cpu_seconds(self) -> dict[str, float]:
        if self.proc is None:
            return {}
        return {"n8n": cpu_seconds(descendants(self.proc.pid, parent_map()))}

    def backlog(self) -> int:
        """Executions started and not ended (n8n runs them in-process, no queue in regular mode)."""
        return unfinished(self.db, (workflow_id(i) for i in range(self.workflows + 1)))

    def discard_backlog(self) -> int:
        """Nothing to discard: regular mode has no queue; running executions end by themselves."""
        return 0
