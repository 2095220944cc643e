"""Resident memory of process trees, read from /proc (Linux).

RSS (`VmRSS`) counts every page a process has mapped, so summing a tree counts pages shared
after a fork (RQ work-horses, uvicorn) once per process: an upper bound. PSS
(`smaps_rollup`) divides each shared page among its sharers, so a tree's PSS sum is what it
really costs. The report shows both and holds targets against RSS, the stricter one.
Processes come and go while we read (a work-horse per job): a vanished pid is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def parse_kb(text: str, field: str) -> int | None:
    """The value in kB of a `Field:   1234 kB` line of /proc/<pid>/status or smaps_rollup."""
    prefix = f"{field}:"
    for line in text.splitlines():
        if line.startswith(prefix):
            parts = line[len(prefix):].split()
            if parts and parts[0].isdigit():
                return int(parts[0])
    return None


def parse_ppid(stat: str) -> int:
    """The parent pid from /proc/<pid>/stat. The command name (field 2) may hold spaces and
    parentheses, so fields are counted from its last `)`."""
    rest = stat[stat.rindex(")") + 2:].split()
    return int(rest[1])  # rest[0] is the state


def parse_cpu_ticks(stat: str) -> int:
    """utime + stime + cutime + cstime (clock ticks) from /proc/<pid>/stat: the process's CPU time and
    that of its children already reaped (RQ work-horses, initdb ...)."""
    rest = stat[stat.rindex(")") + 2:].split()
    return sum(int(v) for v in rest[11:15])  # fields 14-17 of the man page; rest[0] is field 3


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def parent_map(proc: Path = PROC) -> dict[int, int]:
    """pid -> parent pid of every process visible now."""
    out: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read(entry / "stat")
        if stat:
            out[int(entry.name)] = parse_ppid(stat)
    return out


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """`root` and every process below it, root first, then breadth-first."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, queue, seen = [], [root], {root}
    while queue:
        pid = queue.pop(0)
        out.append(pid)
        for child in sorted(children.get(pid, ())):
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return out


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_kb: int
    pss_kb: int | None  # None when smaps_rollup is unreadable (old kernel, another user's process)

    @property
    def rss_mb(self) -> float:
        return self.rss_kb / 1024

    @property
    def pss_mb(self) -> float | None:
        return None if self.pss_kb is None else self.pss_kb / 1024

    def __add__(self, other: Memory) -> Memory:
        pss = None if self.pss_kb is None or other.pss_kb is None else self.pss_kb + other.pss_kb
        return Memory(self.processes + other.processes, self.rss_kb + other.rss_kb, pss)


NO_MEMORY = Memory(0, 0, 0)


def memory_of(pids: Iterable[int], proc: Path = PROC) -> Memory:
    """Summed RSS and PSS of these processes; those that have exited (or are zombies) count nothing."""
    total = NO_MEMORY
    for pid in pids:
        status = _read(proc / str(pid) / "status")
        rss = parse_kb(status, "VmRSS") if status else None
        if rss is None:
            continue
        rollup = _read(proc / str(pid) / "smaps_rollup")
        pss = parse_kb(rollup, "Pss") if rollup else None
        total = total + Memory(1, rss, pss)
    return total


def tree_memory(root: int, proc: Path = PROC) -> Memory:
    return memory_of(descendants(root, parent_map(proc)), proc)


def cmdline(pid: int, proc: Path = PROC) -> list[str]:
    raw = _read(proc / str(pid) / "cmdline")
    return [part for part in raw.split("\0") if part] if raw else []


def cpu_seconds(pids: Iterable[int], proc: Path = PROC) -> float:
    """CPU seconds these processes have used so far (those that have exited count nothing)."""
    ticks = 0
    for pid in pids:
        stat = _read(proc / str(pid) / "stat")
        if stat:
            ticks += parse_cpu_ticks(stat)
    return ticks / os.sysconf("SC_CLK_TCK")
