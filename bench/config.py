"""The bench's settings: command-line flags over BENCH_* environment variables over defaults.

BENCH_QUICK=1 changes the defaults only (a smoke run under two minutes); anything set
explicitly still wins.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

LOADGENS = ("auto", "wrk", "python")
WORKER_CLASSES = ("fork", "simple")
PEERS = ("n8n",)  # other systems measured in the same run by the same load generator (bench/n8n.py)
# How the ingress rows are measured (bench.phases): "burst" = a trigger-only workflow with the engine stopped
# during the load (the ingress's own capacity), its backlog executed after; "sustained" = API.md's example with
# the engine executing during the load (end to end, the rows compared with n8n).
INGRESS_MODES = ("burst", "sustained")

# name: (full run, quick run)
DEFAULTS: dict[str, tuple[Any, Any]] = {
    # quick: 2 s, because every accepted webhook is executed after its load (burst: ~450 trigger-only runs/s with 2
    # workers; sustained: the example at ~180/s), and that drain is most of a quick run's time
    "duration_s": (30.0, 2.0),
    "concurrency": ((16, 64), (16, 64)),
    "gateway": (True, True),
    "workers": ((1, 2, 4), (2,)),
    "worker_classes": ((), ()),  # empty: the engine's own default (AUTOMATEOS_WORKER_CLASS's default)
    "runs": (2000, 500),
    "ingress_modes": (INGRESS_MODES, INGRESS_MODES),
    "ingress_workers": (2, 2),
    "loadgen": ("auto", "auto"),
    "wrk_threads": (1, 1),
    # a bound, not a wait: a full run's burst leaves ~100,000 runs (~4 min to execute), a sustained row ~40,000
    "drain_timeout_s": (600.0, 45.0),
    "engine_timeout_s": (60.0, 20.0),
    "out_dir": (Path("bench/results"), Path("bench/results")),
    "peers": (("n8n",), ()),  # quick runs stay under two minutes; BENCH_PEERS=n8n adds n8n to one
    "n8n_version": ("2.8.4", "2.8.4"),  # the newest n8n whose `engines` admits Node.js 20
}


@dataclass(frozen=True)
class BenchConfig:
    quick: bool
    duration_s: float  # each ingress phase
    concurrency: tuple[int, ...]  # connections, one ingress phase each (direct to the ingress port)
    gateway: bool  # one more phase through the dev gateway at the first concurrency
    workers: tuple[int, ...]  # engine worker counts of the engine phase
    worker_classes: tuple[str, ...]
    runs: int  # runs per engine measurement
    ingress_modes: tuple[str, ...]  # which ingress rows run, in this order: burst, sustained (INGRESS_MODES)
    ingress_workers: int  # engine workers of the sustained rows, and those that execute a burst's backlog after it
    loadgen: str
    wrk_threads: int
    drain_timeout_s: float  # longest wait after an ingress phase for its runs to be executed
    engine_timeout_s: float  # longest engine measurement; the runs not started by then are discarded
    out_dir: Path
    peers: tuple[str, ...] = ()  # measured after AutomateOS has stopped (bench.peers)
    n8n_version: str = "2.8.4"

    def settings_rows(self) -> list[tuple[str, str]]:
        """(name, value) of every setting, for the report."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = ", ".join(str(v) for v in value) or ("none" if f.name in ("peers", "ingress_modes")
                                                             else "(engine default)")
            out.append((f.name, str(value)))
        return out


def parse_ints(raw: str, name: str) -> tuple[int, ...]:
    """"1,2, 4" -> (1, 2, 4); each a positive integer."""
    try:
        values = tuple(int(part) for part in raw.replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers, got {raw!r}") from None
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{name}: expected positive integers, got {raw!r}")
    return values


def parse_classes(raw: str) -> tuple[str, ...]:
    values = tuple(part for part in raw.replace(" ", "").split(",") if part)
    bad = [v for v in values if v not in WORKER_CLASSES]
    if bad:
        raise ValueError(f"BENCH_WORKER_CLASSES: unknown {', '.join(bad)} (known: {', '.join(WORKER_CLASSES)})")
    return values


def parse_peers(raw: str) -> tuple[str, ...]:
    """"n8n" -> ("n8n",); "", "none" or "0" -> ()."""
    values = tuple(part.lower() for part in raw.replace(" ", "").split(",") if part)
    if values in ((), ("none",), ("0",)):
        return ()
    bad = [v for v in values if v not in PEERS]
    if bad:
        raise ValueError(f"BENCH_PEERS: unknown {', '.join(bad)} (known: {', '.join(PEERS)}, or none)")
    return tuple(dict.fromkeys(values))


def parse_modes(raw: str) -> tuple[str, ...]:
    """"burst,sustained" -> ("burst", "sustained") in the order given; "none" or "0" -> () (no ingress rows)."""
    values = tuple(part.lower() for part in raw.replace(" ", "").split(",") if part)
    if values in (("none",), ("0",)):
        return ()
    bad = [v for v in values if v not in INGRESS_MODES]
    if bad or not values:
        raise ValueError(f"BENCH_INGRESS_MODES: unknown {', '.join(bad) or repr(raw)} "
                         f"(known: {', '.join(INGRESS_MODES)}, or none)")
    return tuple(dict.fromkeys(values))


def parse_bool(raw: str) -> bool:
    return raw.strip().lower() not in ("", "0", "false", "no", "off")


def _arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", default=None, help="5 s phases, fewer points (BENCH_QUICK=1)")
    p.add_argument("--duration", dest="duration_s", help="seconds per ingress phase (BENCH_DURATION_S)")
    p.add_argument("--concurrency", help="connections per ingress phase, e.g. 16,64 (BENCH_CONCURRENCY)")
    p.add_argument("--gateway", help="1/0: also load the dev gateway at the first concurrency (BENCH_GATEWAY)")
    p.add_argument("--workers", help="engine worker counts, e.g. 1,2,4 (BENCH_WORKERS)")
    p.add_argument("--worker-classes", dest="worker_classes", help="fork,simple (BENCH_WORKER_CLASSES)")
    p.add_argument("--runs", help="runs per engine measurement (BENCH_RUNS)")
    p.add_argument("--ingress-modes", dest="ingress_modes",
                   help="ingress rows: burst,sustained, one of them, or none (BENCH_INGRESS_MODES)")
    p.add_argument("--ingress-workers", dest="ingress_workers",
                   help="engine workers of the sustained rows and of a burst's backlog (BENCH_INGRESS_WORKERS)")
    p.add_argument("--loadgen", choices=LOADGENS, help="auto: wrk if installed, else Python (BENCH_LOADGEN)")
    p.add_argument("--wrk-threads", dest="wrk_threads", help="wrk threads (BENCH_WRK_THREADS)")
    p.add_argument("--drain-timeout", dest="drain_timeout_s",
                   help="longest wait for an ingress phase's runs to execute (BENCH_DRAIN_TIMEOUT_S)")
    p.add_argument("--engine-timeout", dest="engine_timeout_s",
                   help="longest engine measurement, seconds (BENCH_ENGINE_TIMEOUT_S)")
    p.add_argument("--out", dest="out_dir", help="report folder (BENCH_OUT)")
    p.add_argument("--peers", help="peers to measure after AutomateOS: n8n, or none (BENCH_PEERS; quick: none)")
    p.add_argument("--n8n-version", dest="n8n_version", help="n8n release installed from npm (BENCH_N8N_VERSION)")
    return p


ENV = {"duration_s": "BENCH_DURATION_S", "concurrency": "BENCH_CONCURRENCY", "gateway": "BENCH_GATEWAY",
       "workers": "BENCH_WORKERS", "worker_classes": "BENCH_WORKER_CLASSES", "runs": "BENCH_RUNS",
       "ingress_modes": "BENCH_INGRESS_MODES", "ingress_workers": "BENCH_INGRESS_WORKERS",
       "loadgen": "BENCH_LOADGEN", "wrk_threads": "BENCH_WRK_THREADS",
       "drain_timeout_s": "BENCH_DRAIN_TIMEOUT_S", "engine_timeout_s": "BENCH_ENGINE_TIMEOUT_S",
       "out_dir": "BENCH_OUT", "peers": "BENCH_PEERS", "n8n_version": "BENCH_N8N_VERSION"}


def _convert(name: str, raw: str) -> Any:
    if name in ("concurrency", "workers"):
        return parse_ints(raw, ENV[name])
    if name == "worker_classes":
        return parse_classes(raw)
    if name == "gateway":
        return parse_bool(raw)
    if name in ("duration_s", "drain_timeout_s", "engine_timeout_s"):
        value = float(raw)
        if value <= 0:
            raise ValueError(f"{ENV[name]} must be positive, got {raw!r}")
        return value
    if name == "ingress_modes":
        return parse_modes(raw)
    if name == "ingress_workers" and raw.strip() == "0":
        raise ValueError("BENCH_INGRESS_WORKERS: at least 1 (they run the sustained rows and execute each burst's "
                         "backlog; the burst rows stop the engine during their load by themselves)")
    if name in ("runs", "ingress_workers", "wrk_threads"):
        return parse_ints(raw, ENV[name])[0]
    if name == "peers":
        return parse_peers(raw)
    if name == "n8n_version":
        if not raw.strip() or any(c.isspace() or c == "/" for c in raw.strip()):
            raise ValueError(f"BENCH_N8N_VERSION: a version such as 2.8.4, got {raw!r}")
        return raw.strip()
    if name == "loadgen":
        if raw not in LOADGENS:
            raise ValueError(f"BENCH_LOADGEN: one of {', '.join(LOADGENS)}, got {raw!r}")
        return raw
    return Path(raw)


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> BenchConfig:
    env = os.environ if environ is None else environ
    args = vars(_arg_parser().parse_args(argv))
    quick = bool(args.pop("quick")) or parse_bool(env.get("BENCH_QUICK", ""))
    values: dict[str, Any] = {}
    for name, (full, fast) in DEFAULTS.items():
        raw = args.get(name)
        if raw is None:
            raw = env.get(ENV[name]) or None
            if raw is None and name == "peers" and ENV[name] in env:
                raw = "none"  # BENCH_PEERS= (set, empty): no peers, even in a full run
        values[name] = (fast if quick else full) if raw is None else _convert(name, str(raw))
    return BenchConfig(quick=quick, **values)
