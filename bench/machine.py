"""What the numbers were measured on: CPU, RAM, OS, Python, and the git commit."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .proc import parse_kb


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cpus: int
    ram_gb: float
    os: str
    python: str

    def describe(self) -> str:
        return f"{self.cpus} x {self.cpu_model}, {self.ram_gb:.1f} GB RAM, {self.os}, Python {self.python}"


@dataclass(frozen=True)
class Commit:
    sha: str
    short: str
    dirty: bool
    subject: str

    def describe(self) -> str:
        return f"`{self.short}`{' (dirty tree: uncommitted changes)' if self.dirty else ''} {self.subject}".rstrip()


def _probe_work() -> None:
    """A fixed piece of interpreter work of the kind the stack does: dicts, strings, JSON."""
    table: dict[int, str] = {}
    for i in range(100_000):
        table[i % 1000] = f"run-{i}"
    json.loads(json.dumps(table))


def speed_probe(repeat: int = 5) -> float:
    """Milliseconds the fixed work takes on one CPU, best of `repeat` (lower is faster). The same machine
    is not always as fast: a VM's host may run it ~30 % slower for an hour (bench/NOTES.md, "Engine rows and
    this machine"), so a report says how fast its machine was when it started and ended."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        _probe_work()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def parse_cpuinfo(text: str) -> tuple[str, int]:
    """(model name, logical CPUs) from /proc/cpuinfo; ARM kernels may have no `model name`."""
    model, count = "", 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            count += 1
        elif key in ("model name", "Model", "Hardware") and not model:
            model = value.strip()
    return model or platform.machine() or "unknown CPU", count


def parse_os_release(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> Machine:
    model, count = parse_cpuinfo(_read("/proc/cpuinfo"))
    ram_kb = parse_kb(_read("/proc/meminfo"), "MemTotal") or 0
    os_name = parse_os_release(_read("/etc/os-release")) or platform.system()
    return Machine(cpu_model=model, cpus=count or os.cpu_count() or 0, ram_gb=ram_kb / 1024 / 1024,
                   os=f"{os_name}, kernel {platform.release()}", python=platform.python_version())


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def commit(root: Path) -> Commit:
    sha = _git(root, "rev-parse", "HEAD")
    # Untracked files count as dirty too, except what the bench writes itself.
    status = [line for line in _git(root, "status", "--porcelain").splitlines()
              if not line[3:].startswith("bench/results/")]
    return Commit(sha=sha or "unknown", short=sha[:7] or "nogit", dirty=bool(status),
                  subject=_git(root, "log", "-1", "--format=%s")[:100])


def code_fingerprint(root: Path) -> str:
    """Changes whenever the code under test does: HEAD plus the uncommitted diff, the bench itself aside."""
    head = _git(root, "rev-parse", "HEAD")
    diff = _git(root, "diff", "HEAD", "--", ".", ":(exclude)bench")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", ".", ":(exclude)bench")
    return hashlib.sha256(f"{head}\n{diff}\n{untracked}".encode()).hexdigest()[:16]
