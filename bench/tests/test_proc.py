"""Resident memory from /proc: parsing, process trees, sums (on a fake /proc, and on this process)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.proc import (
    Memory,
    cpu_seconds,
    descendants,
    memory_of,
    parent_map,
    parse_cpu_ticks,
    parse_kb,
    parse_ppid,
    tree_memory,
)

STATUS = """Name:\tpython
State:\tS (sleeping)
PPid:\t1
VmPeak:\t  300000 kB
VmRSS:\t   51200 kB
RssAnon:\t   40000 kB
"""


def fake_proc(root: Path, procs: dict[int, tuple[int, int | None, int | None]]) -> Path:
    """pid -> (ppid, VmRSS kB or None for a zombie, Pss kB or None for an unreadable rollup)."""
    for pid, (ppid, rss, pss) in procs.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(f"{pid} (py (worker) x) S {ppid} {pid} {pid} 0 -1 4194560 0 0")
        (d / "status").write_text(f"Name:\tpy\nPPid:\t{ppid}\n" + (f"VmRSS:\t{rss} kB\n" if rss is not None else ""))
        if pss is not None:
            (d / "smaps_rollup").write_text(f"00400000-7ffd [rollup]\nRss:  {rss} kB\nPss:  {pss} kB\n")
    (root / "self").mkdir()
    (root / "meminfo").write_text("MemTotal: 1 kB\n")
    return root


def test_parse_kb():
    assert parse_kb(STATUS, "VmRSS") == 51200
    assert parse_kb(STATUS, "VmPeak") == 300000
    assert parse_kb(STATUS, "VmSwap") is None
    assert parse_kb("Rss:   10 kB\nPss:   7 kB\nPss_Anon:   5 kB\n", "Pss") == 7


def test_parse_ppid_with_spaces_and_parentheses_in_the_name():
    assert parse_ppid("4242 (uvicorn (x) y) S 17 4242 4242 0 -1") == 17


def test_descendants_walks_the_tree_breadth_first():
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert descendants(10, parents) == [10, 11, 12, 13]
    assert descendants(13, parents) == [13]
    assert descendants(99, parents) == [99]  # gone: itself only, memory_of counts nothing for it


def test_tree_memory_sums_rss_and_pss(tmp_path):
    proc = fake_proc(tmp_path, {100: (1, 1000, 600), 101: (100, 2000, 900), 102: (101, 3000, 1000),
                                200: (1, 5000, 5000)})
    assert parent_map(proc) == {100: 1, 101: 100, 102: 101, 200: 1}
    m = tree_memory(100, proc)
    assert m == Memory(processes=3, rss_kb=6000, pss_kb=2500)
    assert m.rss_mb == 6000 / 1024


def test_a_zombie_counts_nothing_and_an_unreadable_rollup_makes_pss_unknown(tmp_path):
    proc = fake_proc(tmp_path, {100: (1, 1000, None), 101: (100, None, None)})
    m = memory_of([100, 101, 555], proc)  # 555: exited meanwhile
    assert m == Memory(processes=1, rss_kb=1000, pss_kb=None)
    assert m.pss_mb is None


def test_this_process_has_resident_memory():
    m = tree_memory(os.getpid())
    assert m.processes >= 1
    assert m.rss_kb > 1024


def test_parse_cpu_ticks_adds_own_and_reaped_children_time():
    # fields 14-17: utime 300, stime 40, cutime 5, cstime 2; field 18 (priority 20) is not CPU time
    stat = "4242 (python (w) x) S 17 4242 4242 0 -1 4194304 1739 0 0 0 300 40 5 2 20 0 1 0 935682"
    assert parse_cpu_ticks(stat) == 347


def test_cpu_seconds_of_this_process_grows_with_work():
    before = cpu_seconds([os.getpid()])
    total = 0
    for i in range(3_000_000):
        total += i * i
    assert total > 0
    assert cpu_seconds([os.getpid()]) > before
    assert cpu_seconds([2**22 + 12345]) == 0.0  # no such process
