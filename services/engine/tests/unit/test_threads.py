"""Step threads are reused, grow with demand, end when idle, survive a failing task, and reset in a fork."""

from __future__ import annotations

import os
import threading
import time

from automateos_engine.threads import StepThreads


def _wait(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_sequential_tasks_reuse_one_thread():
    pool, names, done = StepThreads(name="t"), [], threading.Event()
    for _ in range(5):
        done.clear()
        pool.submit(lambda: (names.append(threading.current_thread().name), done.set()))
        assert done.wait(5)
        assert _wait(lambda: pool.idle() == 1)
    assert len(set(names)) == 1 and names[0].startswith("t-")


def test_blocked_tasks_get_threads_of_their_own_and_a_failing_task_leaves_its_thread_usable():
    pool, gate, running = StepThreads(), threading.Event(), []
    for _ in range(4):
        pool.submit(lambda: (running.append(1), gate.wait(5)))
    assert _wait(lambda: len(running) == 4)  # none waited for another
    gate.set()
    assert _wait(lambda: pool.idle() == 4)

    def boom():
        raise RuntimeError("task failed")

    pool.submit(boom)
    assert _wait(lambda: pool.idle() == 4)
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(5)


def test_idle_threads_end_and_new_work_starts_a_new_one():
    pool = StepThreads(idle_s=0.05, name="short")
    pool.submit(lambda: None)
    assert _wait(lambda: pool.idle() == 1)
    assert _wait(lambda: pool.idle() == 0 and not any(t.name.startswith("short-") for t in threading.enumerate()))
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(5)


def test_a_forked_child_does_not_hand_work_to_its_parent_s_threads():
    pool = StepThreads()
    pool.submit(lambda: None)
    assert _wait(lambda: pool.idle() == 1)
    os.register_at_fork(after_in_child=pool._forget)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its pool must start a thread of its own
        ran = threading.Event()
        pool.submit(ran.set)
        os.write(write, b"1" if ran.wait(5) and pool.idle() <= 1 else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
