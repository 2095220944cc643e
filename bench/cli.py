"""`python -m bench` (`make bench`): start the stack, measure, write bench/results/<date>-<sha>.md, print it.

Everything it starts is stopped on the way out, on success, failure, Ctrl-C or SIGTERM.
The exit status says whether the bench ran, not whether the targets were met.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType

from automateos_devstack.testing import example_definition

from .automateos import AutomateOS, chain_definition
from .config import BenchConfig, load_config
from .loadgen import choose
from .machine import code_fingerprint, commit, machine, speed_probe
from .peers import measure_peers
from .phases import MODE_BURST, MODE_SUSTAINED, burst_phase, engine_phase, sustained_phase
from .report import Report, observations, render

ROOT = Path(__file__).resolve().parents[1]


class Say:
    """Progress lines with the time since the start, on stdout as they happen."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, message: str) -> None:
        sys.stdout.write(f"[{self.elapsed():6.1f}s] {message}\n")
        sys.stdout.flush()


def _on_signal(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def report_path(out_dir: Path, started: datetime, short_sha: str, quick: bool) -> Path:
    """<date>-<sha>[-quick].md, with -2, -3 ... when a run of the same day and commit is there already."""
    stem = f"{started:%Y-%m-%d}-{short_sha}{'-quick' if quick else ''}"
    path, n = out_dir / f"{stem}.md", 2
    while path.exists():
        path, n = out_dir / f"{stem}-{n}.md", n + 1
    return path


def measure(cfg: BenchConfig, target: AutomateOS, report: Report, say: Say) -> None:
    with target:
        # The engine rows first, on a fresh database: after the ingress rows PostgreSQL holds a few hundred
        # thousand runs and is vacuuming them, and Redis keeps the finished ones for AUTOMATEOS_FINISHED_RUN_TTL_S;
        # the engine rows measure the engine, not that aftermath.
        workflows = (("example", example_definition(f"{target.echo_url}/data")), ("chain", chain_definition()))
        for worker_class in cfg.worker_classes or (None,):
            for workers in cfg.workers:
                for label, definition in workflows:
                    report.engine.append(engine_phase(target, label=label, definition=definition, runs=cfg.runs,
                                                      workers=workers, worker_class=worker_class,
                                                      timeout_s=cfg.engine_timeout_s, say=say))
        report.memory_after_engine = target.memory()
        target.configure_engine(cfg.ingress_workers, None)  # the ingress rows: the default class, as deployed
        log = target.log_dir / "loadgen.log"
        for mode in cfg.ingress_modes:
            if mode == MODE_BURST:
                routes = [("direct", c) for c in cfg.concurrency]
                routes += [("gateway", cfg.concurrency[0])] if cfg.gateway else []
                for route, connections in routes:
                    report.ingress.append(burst_phase(
                        target, generator=report.generator, route=route, connections=connections,
                        duration_s=cfg.duration_s, threads=cfg.wrk_threads, workers=cfg.ingress_workers,
                        drain_timeout_s=cfg.drain_timeout_s, log=log, say=say))
            elif mode == MODE_SUSTAINED:
                definition = example_definition(f"{target.echo_url}/data")
                for connections in cfg.concurrency:
                    report.ingress.append(sustained_phase(
                        target, definition=definition, generator=report.generator, connections=connections,
                        duration_s=cfg.duration_s, threads=cfg.wrk_threads, workers=cfg.ingress_workers,
                        drain_timeout_s=cfg.drain_timeout_s, log=log, say=say))
        if cfg.gateway and MODE_BURST not in cfg.ingress_modes:
            report.notes.append("No gateway row: it is measured in burst mode, which BENCH_INGRESS_MODES left out.")
        target.start_engine(cfg.ingress_workers)  # a burst may have discarded a backlog; the engine runs on
        # At the end: the engine as deployed for the targets (BENCH_INGRESS_WORKERS workers), after it ran everything.
        report.memory_end = target.memory()


def run_peers(cfg: BenchConfig, report: Report, work_dir: Path, say: Say, status: int) -> int:
    """The peers (bench.peers), once AutomateOS has stopped: never both on the CPUs at once. Skipped after
    a failed or interrupted AutomateOS run; a peer that fails is reported, not fatal."""
    if not cfg.peers or status != 0:
        return status
    try:
        measure_peers(cfg, report.generator, work_dir, say, report.peers)
    except KeyboardInterrupt:
        report.notes.append("Interrupted while measuring the peers: their results are partial.")
        return 130
    return status


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = load_config(argv)
    except ValueError as exc:
        sys.stderr.write(f"bench: {exc}\n")
        return 2
    say = Say()
    started = datetime.now(timezone.utc)
    out_dir = cfg.out_dir if cfg.out_dir.is_absolute() else ROOT / cfg.out_dir
    report = Report(started=started, machine=machine(), commit=commit(ROOT), config=cfg,
                    generator=choose(cfg.loadgen))
    fingerprint = code_fingerprint(ROOT)
    # Ctrl-C, kill and a closed terminal all end in `finally`, which stops everything. SIGINT explicitly:
    # a shell that starts us in the background has it ignored, and `kill -INT` should still work.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    work_dir = Path(tempfile.mkdtemp(prefix="aos-bench-"))
    report.log_dir = str(work_dir / "logs")
    target = AutomateOS(work_dir, workers=cfg.ingress_workers, say=say)
    say(f"bench{' (quick)' if cfg.quick else ''}: {report.machine.describe()}; load generator {report.generator}")
    report.speed_ms["start"] = speed_probe()
    status = 0
    try:
        measure(cfg, target, report, say)
    except KeyboardInterrupt:
        report.notes.append("Interrupted: the results are partial.")
        status = 130
    except Exception as exc:
        traceback.print_exc()
        report.notes.append(f"Stopped early by an error, the results are partial: {exc}")
        status = 1
    finally:
        target.stop()  # again: a no-op after a clean exit, the clean-up after a failed start
        for scratch in ("data", "redis"):  # keep the logs; the append-only file is large and of no use
            shutil.rmtree(work_dir / scratch, ignore_errors=True)
    status = run_peers(cfg, report, work_dir, say, status)
    report.speed_ms["end"] = speed_probe()
    report.elapsed_s = say.elapsed()
    report.notes[:0] = observations(report)
    if code_fingerprint(ROOT) != fingerprint:
        now = commit(ROOT)
        report.notes.insert(0,
            f"**The code under test changed during the run** (HEAD `{report.commit.short}` -> `{now.short}`, or "
            "uncommitted changes): services started at the beginning ran the old code, the engine (restarted "
            "per configuration) the code of its time. Rerun for numbers of one version.")
    text = render(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = report_path(out_dir, started, report.commit.short, cfg.quick)
    tmp = path.with_name(path.name + ".tmp")  # a half-written report never looks like a result
    tmp.write_text(text)
    tmp.replace(path)
    sys.stdout.write(f"\n{text}\nwritten to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}\n")
    return status
