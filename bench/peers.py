"""Peers: other systems measured in the same run, by the same load generator, after AutomateOS.

`measure_peers` runs once AutomateOS has stopped completely, so the two never share the CPUs.
Each peer gets the ingress phases AutomateOS got (same concurrencies, duration, body, warm-up,
load generator); what it could not do (install, start, a phase) is kept as an error for the
report instead of stopping the bench.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import BenchConfig
from .loadgen import run_load
from .n8n import N8n, PeerError
from .phases import BODY, IngressResult, drain, ingress_phase
from .target import ProcessMemory

Say = Callable[[str], None]
# n8n's throughput climbs for ~10 s of load after its start (V8's JIT; measured here: 43, 53, 57, 64/s in
# successive 5 s loads); AutomateOS's Python services have no JIT to warm beyond the phases' own warm-up.
N8N_WARMUP_S = 10.0


@dataclass
class PeerResult:
    name: str
    version: str
    ingress: list[IngressResult] = field(default_factory=list)
    memory: list[ProcessMemory] = field(default_factory=list)  # after its last phase
    settings: list[tuple[str, str]] = field(default_factory=list)  # what the bench set for it
    runtime: str = ""  # e.g. "Node.js v20.20.2"
    database: str = ""  # e.g. "SQLite on tmpfs (RAM)"
    warm_up_s: float = 0.0  # load before its phases, beyond the phases' own warm-up
    error: str = ""  # why it was not (fully) measured: the error's first line
    log: str = ""  # where to look

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.ingress)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


def measure_n8n(cfg: BenchConfig, generator: str, work_dir: Path, say: Say, result: PeerResult) -> None:
    """n8n's ingress phases into `result`; a failure anywhere ends in its `error`, n8n stopped either way.
    Ctrl-C still propagates (after the stop), with what was measured kept."""
    target = N8n(work_dir, version=cfg.n8n_version, workflows=2 * len(cfg.concurrency), say=say)
    result.log = str(target.log)
    try:
        target.start()
        result.runtime = f"Node.js {target.node_version}"
        result.settings = [(k, v) for k, v in target.settings.items() if k != "N8N_ENCRYPTION_KEY"]
        result.database = f"SQLite on {target.db_where}"
        warm_up_s = N8N_WARMUP_S  # whatever the loads' duration: quick loads (2 s) would leave its JIT cold
        say(f"n8n: warming up, {warm_up_s:g} s of load on a workflow of its own (V8 compiles its hot paths)")
        run_load(generator, target.warm_up_url, body=BODY, connections=cfg.concurrency[0], duration_s=warm_up_s,
                 threads=cfg.wrk_threads, log=target.log_dir / "loadgen.log")
        drain(target, timeout=cfg.drain_timeout_s, say=say)
        result.warm_up_s = warm_up_s
        for connections in cfg.concurrency:
            result.ingress.append(ingress_phase(
                target, generator=generator, route="direct", connections=connections, duration_s=cfg.duration_s,
                threads=cfg.wrk_threads, drain_timeout_s=cfg.drain_timeout_s, log=target.log_dir / "loadgen.log",
                say=say))
        result.memory = target.memory()
    except PeerError as exc:
        say(f"n8n: {first_line(exc)}")
        result.error = first_line(exc)
        if exc.log is not None:
            result.log = str(exc.log)
    except Exception as exc:
        say(f"n8n: stopped by an error: {exc!r}")
        result.error = first_line(exc)
    except KeyboardInterrupt:
        result.error = "interrupted"
        raise
    finally:
        target.stop()
        shutil.rmtree(target.folder, ignore_errors=True)  # its SQLite database: large, and of no use


PEERS: dict[str, Callable[[BenchConfig, str, Path, Say, PeerResult], None]] = {"n8n": measure_n8n}


def version_of(cfg: BenchConfig, name: str) -> str:
    return cfg.n8n_version if name == "n8n" else ""


def measure_peers(cfg: BenchConfig, generator: str, work_dir: Path, say: Say, into: list[PeerResult]) -> None:
    """Each peer of cfg.peers in turn, its result appended to `into` before it starts (kept if interrupted)."""
    for name in cfg.peers:
        result = PeerResult(name=name, version=version_of(cfg, name))
        into.append(result)
        PEERS[name](cfg, generator, work_dir, say, result)
