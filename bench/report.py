"""The Markdown report: context, targets (pass/fail), ingress, engine and memory tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .config import BenchConfig
from .loadgen import LoadResult
from .machine import Commit, Machine
from .peers import PeerResult
from .phases import BODY, MODE_BURST, MODE_SUSTAINED, EngineResult, IngressResult
from .stats import rate
from .target import ProcessMemory

# The targets.
INGRESS_P99_MS = 10.0  # at 16 connections, direct to the ingress
INGRESS_RPS = 2000.0  # accepted webhooks per second, direct (the best concurrency)
ENGINE_RPS = 400.0  # runs/s of API.md's example with 2 workers
STACK_MB = 400.0  # the services' and the scheduler's memory after the run: PSS sum (RSS sum beside, stricter)
EXAMPLE = "example"
# The ingress targets are judged on the burst rows: the ingress by itself, as built to absorb a burst into the queue.
BURST = "burst: engine stopped during the load, backlog executed after"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A GitHub Markdown table; `align` has one letter per column (l, r or c; default l)."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    rule = [marks.get(align[i] if i < len(align) else "l", ":--") for i in range(len(headers))]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, the table {len(headers)} columns: {row!r}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "not measured"}[passed]


@dataclass(frozen=True)
class Check:
    name: str
    target: str
    measured: str
    passed: bool | None


@dataclass
class Report:
    started: datetime
    machine: Machine
    commit: Commit
    config: BenchConfig
    generator: str
    ingress: list[IngressResult] = field(default_factory=list)
    engine: list[EngineResult] = field(default_factory=list)
    memory_after_engine: list[ProcessMemory] = field(default_factory=list)  # after the engine rows
    memory_end: list[ProcessMemory] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    log_dir: str = ""
    peers: list[PeerResult] = field(default_factory=list)  # bench.peers, measured after AutomateOS
    speed_ms: dict[str, float] = field(default_factory=dict)  # machine.speed_probe() by moment ("start", "end")


def stack_rss_mb(memory: Sequence[ProcessMemory]) -> float | None:
    counted = [p.memory.rss_mb for p in memory if p.in_total]
    return sum(counted) if counted else None


def stack_pss_mb(memory: Sequence[ProcessMemory]) -> float | None:
    """What the stack's processes take from the machine: each shared page (the interpreter, the C
    extensions' code, every library file they map) divided among the processes sharing it."""
    counted = [p.memory.pss_mb for p in memory if p.in_total]
    if not counted or any(v is None for v in counted):
        return None
    return sum(v for v in counted if v is not None)


def burst_rows(report: Report) -> list[IngressResult]:
    return [r for r in report.ingress if r.mode == MODE_BURST]


def executed_check(rows: Sequence[IngressResult]) -> Check:
    """Every burst row's backlog executed within the bound, and every recorded run of it succeeded."""
    name = "accepted webhooks executed (burst rows: every recorded run ended successfully)"
    if not rows:
        return Check(name, "all", "-", None)
    recorded = sum(r.counts.recorded for r in rows)
    bad = sum(r.not_succeeded for r in rows)
    measured = f"{bad:,} of {recorded:,} did not"
    late = [f"{r.route} c{r.load.connections}" for r in rows if r.drain_s is None]
    if late:
        measured += f" (not executed within the drain bound: {', '.join(late)})"
    return Check(name, "all", measured, all(r.all_executed for r in rows))


def checks(report: Report) -> list[Check]:
    out = []
    direct = [r for r in burst_rows(report) if r.route == "direct"]
    c16 = next((r for r in direct if r.load.connections == 16), None)
    p99 = c16.load.latency.p99_us / 1000 if c16 and c16.load.latency else None
    out.append(Check(f"ingress p99 latency at 16 connections ({BURST})", f"< {INGRESS_P99_MS:g} ms",
                     "-" if p99 is None else f"{p99:.2f} ms", None if p99 is None else p99 < INGRESS_P99_MS))
    best = max(direct, key=lambda r: r.load.ok_per_s, default=None)
    out.append(Check(f"accepted webhooks per second ({BURST})", f">= {INGRESS_RPS:,.0f}/s",
                     "-" if best is None else f"{best.load.ok_per_s:,.0f}/s (at {best.load.connections} connections)",
                     None if best is None else best.load.ok_per_s >= INGRESS_RPS))
    lost = sum(r.lost for r in report.ingress)
    out.append(Check("accepted webhooks recorded as runs (every row)", "none lost",
                     "-" if not report.ingress else f"{lost} lost of {sum(r.accepted for r in report.ingress):,}",
                     None if not report.ingress else lost == 0))
    out.append(executed_check(burst_rows(report)))
    example_2 = [e for e in report.engine if e.workflow == EXAMPLE and e.workers == 2]
    if not example_2:
        out.append(Check("engine: API.md example, 2 workers", f">= {ENGINE_RPS:g} runs/s", "-", None))
    for e in example_2:
        out.append(Check(f"engine: API.md example, 2 {e.worker_class} workers", f">= {ENGINE_RPS:g} runs/s",
                         f"{e.runs_per_s:,.0f} runs/s", e.runs_per_s >= ENGINE_RPS))
    if report.engine:
        ran = sum(e.runs - e.discarded for e in report.engine)
        bad = ran - sum(e.counts.succeeded for e in report.engine)
        out.append(Check("engine runs succeeded", "all", f"{bad} of {ran:,} did not", bad == 0))
    pss = stack_pss_mb(report.memory_end)
    out.append(Check("whole stack resident after the run (four services and the scheduler, PSS: shared pages "
                     "counted once)",
                     f"< {STACK_MB:g} MB", "-" if pss is None else f"{pss:,.0f} MB",
                     None if pss is None else pss < STACK_MB))
    total = stack_rss_mb(report.memory_end)
    out.append(Check("the same as a sum of RSS (stricter: every shared page once per process)", f"< {STACK_MB:g} MB",
                     "-" if total is None else f"{total:,.0f} MB", None if total is None else total < STACK_MB))
    return out


def _drained(r: IngressResult) -> str:
    if r.drain_s is None:
        return f"no: {r.discarded:,} discarded"
    out = f"{r.drain_s:.1f} s"
    if r.mode == MODE_BURST and r.engine_start_s is not None:
        executing = completed_per_s(r)  # no run started before the engine did: the backlog's own rate
        out += f" (engine start {r.engine_start_s:.1f} s" + (f"; {executing:,.0f} runs/s)" if executing else ")")
    return out


def _errors(r: IngressResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in {**r.load.socket_errors, **r.load.statuses}.items() if v) or "0"


def _ingress_table(results: Sequence[IngressResult]) -> str:
    rows = []
    for r in results:
        lat = r.load.latency
        target = ""
        if r.mode == MODE_BURST and r.route == "direct":
            target = f"≥{INGRESS_RPS:,.0f}/s {verdict(r.load.ok_per_s >= INGRESS_RPS)}"
            if r.load.connections == 16 and lat is not None:
                target += f"; p99<{INGRESS_P99_MS:g} ms {verdict(lat.p99_us / 1000 < INGRESS_P99_MS)}"
        in_load = num(r.completed_per_s_in_load) if r.mode != MODE_BURST else "- (stopped)"
        backlog = r.backlog_at_end
        rows.append([r.mode, r.route, r.load.connections, num(r.load.ok_per_s), in_load,
                     ms(lat.p50_us if lat else None), ms(lat.p95_us if lat else None),
                     ms(lat.p99_us if lat else None), ms(lat.max_us if lat else None), _errors(r), f"{r.accepted:,}",
                     f"{r.counts.recorded:,}", r.lost, f"{r.counts.succeeded:,}", num(r.record_s, 1),
                     "-" if backlog is None else f"{backlog:,}", _drained(r), target])
    return markdown_table(
        ["mode", "route", "connections", "accepted/s", "completed/s during load", "p50 ms", "p95 ms", "p99 ms",
         "max ms", "errors", "accepted", "recorded", "lost", "succeeded", "recorded in s", "backlog at load end",
         "backlog executed in", "target"], rows, "llrrrrrrrlrrrrrrll")


def _runs(e: EngineResult) -> str:
    return f"{e.runs:,}" if not e.discarded else f"{e.runs - e.discarded:,} (of {e.runs:,})"


def _engine_table(results: Sequence[EngineResult]) -> str:
    rows = []
    for e in results:
        target = ""
        if e.workflow == EXAMPLE and e.workers == 2:
            target = f"≥{ENGINE_RPS:g}/s {verdict(e.runs_per_s >= ENGINE_RPS)}"
        worker = max((m.rss_mb for m in e.worker_memory), default=None)
        rows.append([e.workflow, e.workers, e.worker_class, _runs(e), f"{e.counts.succeeded:,}",
                     e.runs - e.discarded - e.counts.succeeded, num(e.counts.window_s, 2), num(e.runs_per_s),
                     num(e.engine_s, 1),
                     num(e.record_lag_s, 1) if e.record_lag_s is not None else f"> 60 ({e.recorded:,} in)",
                     num(e.engine_memory.rss_mb), num(worker), num(e.speed_ms, 1) if e.speed_ms else "-", target])
    return markdown_table(
        ["workflow", "workers", "class", "runs", "succeeded", "not succeeded", "window s", "runs/s", "engine s",
         "recorder lag s", "engine RSS MB", "worker RSS MB (max)", "speed probe ms", "target"], rows,
        "lrlrrrrrrrrrrl")


def _cpu_table(results: Sequence[IngressResult]) -> str:
    names: list[str] = []
    for r in results:
        names += [n for n in r.cpu if n not in names]
    rows = [[r.mode, r.route, r.load.connections,
             *(f"{r.cpu[n] * 100:.0f}" if n in r.cpu else "-" for n in names), f"{sum(r.cpu.values()) * 100:.0f}"]
            for r in results]
    return markdown_table(["mode", "route", "connections", *names, "sum"], rows, "llr" + "r" * (len(names) + 1))


def _memory_table(after_engine: Sequence[ProcessMemory], end: Sequence[ProcessMemory]) -> str:
    before = {p.name: p for p in after_engine}
    rows = []
    for p in end:
        b = before.get(p.name)
        rows.append([p.name, p.memory.processes, num(b.memory.rss_mb, 1) if b else "-", num(p.memory.rss_mb, 1),
                     num(p.memory.pss_mb, 1), "yes" if p.in_total else "no", p.note])
    total_end = stack_rss_mb(end)
    total_before = stack_rss_mb(after_engine)
    pss_total = stack_pss_mb(end)
    rows.append(["**stack total (in total = yes)**", sum(p.memory.processes for p in end if p.in_total),
                 num(total_before, 1), num(total_end, 1), f"**{num(pss_total, 1)}**", "",
                 f"target < {STACK_MB:g} MB (PSS): {verdict(None if pss_total is None else pss_total < STACK_MB)}; "
                 f"RSS sum: {verdict(None if total_end is None else total_end < STACK_MB)}"])
    return markdown_table(["process (tree)", "processes", "RSS MB after the engine rows", "RSS MB at end",
                           "PSS MB at end", "in total", "note"], rows, "lrrrrll")


def speed_text(speed_ms: dict[str, float]) -> str:
    return ", ".join(f"{ms:.1f} ms at the {moment}" for moment, ms in speed_ms.items())


def render(report: Report) -> str:
    cfg = report.config
    parts = [
        f"# AutomateOS bench, {report.started:%Y-%m-%d %H:%M} UTC{' (quick)' if cfg.quick else ''}",
        "",
        f"- commit: {report.commit.describe()}",
        f"- machine: {report.machine.describe()}",
        *([f"- CPU speed probe (bench.machine.speed_probe: fixed Python work on one CPU, best of 5; lower is "
           f"faster; the same machine varies): {speed_text(report.speed_ms)}"] if report.speed_ms else []),
        f"- load generator: {report.generator} (its own process, on the same machine)",
        "- stack: auth, workflows, ingress, engine as processes (automateos_devstack.Stack) on PostgreSQL "
        "(local, fsync off) and Redis (append-only, fsync every second), dev gateway in front",
        f"- took {report.elapsed_s:.0f} s; service logs in {report.log_dir or '-'}",
        "",
        "## Targets",
        "",
        markdown_table(["target", "goal", "measured", "result"],
                       [[c.name, c.target, c.measured, verdict(c.passed)] for c in checks(report)], "lllc"),
        "",
        "## Ingress: webhooks accepted",
        "",
        *ingress_method(report),
        "",
        _ingress_table(report.ingress) if report.ingress else "(not measured)",
        "",
        "CPU during each load, in % of one CPU (the machine has "
        f"{report.machine.cpus}): where the time goes. Process trees, reaped children included; the engine's is 0 in "
        "the burst rows (stopped during the load).",
        "",
        _cpu_table(report.ingress) if any(r.cpu for r in report.ingress) else "(not measured)",
        "",
        "## Engine: runs completed",
        "",
        f"{cfg.runs} runs per row put on the queue in one transaction while the workers wait idle; runs/s = runs "
        "/ (last `completed_at` - first `started_at`) of the runs' state in Redis. engine s = release to an empty "
        "queue with every run ended; recorder lag = from then until PostgreSQL has them all as finished. "
        "speed probe = the machine's speed just before the row (bench.machine.speed_probe, lower is faster): "
        "rows are comparable only at a similar probe. "
        "example = API.md's webhook -> http_request (a local echo server in its own process) -> filter; "
        "chain = webhook -> 9 transforms.",
        "",
        _engine_table(report.engine) if report.engine else "(not measured)",
        "",
        "## Memory (resident, summed over each process tree)",
        "",
        _memory_table(report.memory_after_engine, report.memory_end) if report.memory_end else "(not measured)",
        "",
        *peer_sections(report),
        "## Settings",
        "",
        markdown_table(["setting", "value"], cfg.settings_rows()),
        "",
    ]
    if report.notes:
        parts += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    return "\n".join(parts)


def ingress_method(report: Report) -> list[str]:
    cfg = report.config
    return [
        f"POST of a {len(BODY)}-byte JSON body, {cfg.duration_s:g} s per row, closed loop; rows in "
        f"{', '.join(cfg.ingress_modes) or 'no'} mode. Two kinds of rows:",
        "",
        f"- **burst** (the ingress's own capacity; the ingress targets are judged on these rows): a trigger-only "
        "workflow, the engine stopped during the load (and its warm-up), so every accepted run waits on the queue. "
        f"Once each accepted webhook is a recorded run the engine starts with {cfg.ingress_workers} worker(s); "
        "backlog executed in = from that start (start-up included, in brackets with the rate the backlog ran at) "
        "until every recorded run of the workflow has ended, and succeeded counts those that ended successfully: "
        "no accepted webhook may be lost, and every one must have run.",
        f"- **sustained** (end to end, the rows compared with n8n): API.md's example (webhook -> http_request to the "
        f"bench's echo server -> filter) with {cfg.ingress_workers} engine worker(s) executing during the load. "
        "completed/s during load = runs of the workflow whose `completed_at` (the engine's timestamp, in PostgreSQL "
        "once the recorder has it) falls inside the load's wall-clock window (UTC, from the generator's start to its "
        "exit) / the window's length; backlog at load end = recorded runs not ended by then; backlog executed in = "
        "from the end of the load until every recorded run has ended. wrk, Redis, PostgreSQL, the echo server, the "
        f"ingress and the workers share the machine's {report.machine.cpus} CPUs.",
        "",
        "accepted = 2xx seen by the client; recorded = `executions` rows of the workflow in PostgreSQL (may exceed "
        "accepted by requests in flight when the generator stopped); lost = accepted - recorded, if positive; "
        f"recorded in: seconds after the load. Each wait is bounded ({cfg.drain_timeout_s:g} s for the backlog): "
        "past it the queue is discarded (those runs stay `queued`) so the next row starts clean, and the row "
        "says so.",
    ]


def _load_notes(where: str, load: LoadResult, lost: int, lost_means: str) -> list[str]:
    """A load's errors and its accepted webhooks that left no record, as notes."""
    out = []
    if load.errors:
        detail = ", ".join(f"{k}: {v}" for k, v in {**load.socket_errors, **load.statuses}.items() if v)
        out.append(f"{where}: {load.errors} errors ({detail}).")
    if lost:
        out.append(f"{where}: {lost} accepted webhooks {lost_means} within the wait.")
    return out


def observations(report: Report) -> list[str]:
    """What a reader should not miss: errors, lost or unfinished runs, waits that gave up."""
    out = []
    bound = report.config.drain_timeout_s
    for r in report.ingress:
        where = f"ingress ({r.mode}) via {r.route} at {r.load.connections} connections"
        out += _load_notes(where, r.load, r.lost, "were not recorded as runs")
        if r.drain_s is None and r.mode == MODE_BURST:
            out.append(f"{where}: the engine had not executed the backlog {bound:g} s after its start; "
                       f"{r.discarded:,} queued runs were discarded (they stay `queued`): not every accepted webhook "
                       "was run.")
        elif r.drain_s is None:
            out.append(f"{where}: the engine had not executed the backlog {bound:g} s after the load; "
                       f"{r.discarded:,} queued runs were discarded so the next phase starts clean.")
        elif r.not_succeeded:
            out.append(f"{where}: {r.not_succeeded:,} of {r.counts.recorded:,} recorded runs did not succeed.")
    for e in report.engine:
        where = f"engine {e.workflow} with {e.workers} {e.worker_class} workers"
        if e.discarded:
            out.append(f"{where}: {e.discarded:,} of {e.runs:,} runs had not started after "
                       f"{report.config.engine_timeout_s:g} s and were discarded; the rate is over those that ran.")
        if e.counts.finished < e.runs - e.discarded:
            out.append(f"{where}: only {e.counts.finished} of {e.runs - e.discarded} runs ended within the wait.")
        if e.failed:
            out.append(f"{where}: {e.failed} runs failed or were cancelled.")
        if e.record_lag_s is None:
            out.append(f"{where}: the recorder had written {e.recorded} of {e.counts.finished} ended runs to "
                       "PostgreSQL when the wait ended.")
        if e.enqueue and not e.enqueue.startswith("one MULTI"):
            out.append(f"{where}: runs enqueued by {e.enqueue} (the batched way failed), so the start is staggered.")
    return out


# -- peers (bench.peers): AutomateOS / peer ---------------------------------------------------------------------


def completed_per_s(r: IngressResult) -> float | None:
    """Runs of the phase's workflow that ended, per second from the first one's start to the last one's end."""
    window = r.counts.window_s
    return rate(r.counts.finished, window) if window else None


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs <= 0:
        return "-"
    return f"{ours / theirs:.2f}"


def _p(r: IngressResult | None, q: str) -> float | None:
    lat = r.load.latency if r is not None else None
    return None if lat is None else float(getattr(lat, f"{q}_us")) / 1000


def _direct(report: Report, mode: str) -> dict[int, IngressResult]:
    return {r.load.connections: r for r in report.ingress if r.route == "direct" and r.mode == mode}


def _comparison_rows(report: Report, peer: PeerResult) -> list[list[str]]:
    """AutomateOS's sustained rows (the example executing during the load) against the peer's rows (its
    equivalent workflow, executed in the accepting process): same shape, both executing; then AutomateOS's burst
    acceptance, labelled as such (n8n has no burst mode), the engine phase and memory."""
    ours = _direct(report, MODE_SUSTAINED)
    burst = _direct(report, MODE_BURST)
    theirs = {r.load.connections: r for r in peer.ingress}
    rows: list[list[str]] = []

    def row(metric: str, a: float | None, b: float | None, better: str, digits: int = 0) -> None:
        rows.append([metric, num(a, digits), num(b, digits), ratio(a, b), better])

    levels = [c for c in report.config.concurrency if c in ours or c in burst or c in theirs]
    for c in levels:
        a, b = ours.get(c), theirs.get(c)
        row(f"sustained: accepted webhooks/s, {c} connections", a.load.ok_per_s if a else None,
            b.load.ok_per_s if b else None, "higher")
    for c in levels:
        for q in ("p50", "p99"):
            row(f"sustained: {q} latency ms, {c} connections", _p(ours.get(c), q), _p(theirs.get(c), q), "lower", 2)
    for c in levels:
        a, b = ours.get(c), theirs.get(c)
        row(f"sustained: completed runs/s during the {c}-connection load", a.completed_per_s_in_load if a else None,
            b.completed_per_s_in_load if b else None, "higher")
    for c in levels:
        a, b = burst.get(c), theirs.get(c)
        row(f"burst (AutomateOS engine stopped; {peer.name} executing, it has no such mode): accepted webhooks/s, "
            f"{c} connections", a.load.ok_per_s if a else None, b.load.ok_per_s if b else None, "higher")
    example = next((e for e in report.engine if e.workflow == EXAMPLE and e.workers == 2), None)
    best = max((v for v in (completed_per_s(r) for r in peer.ingress) if v is not None), default=None)
    row("engine phase: completed runs/s of the example workflow (AutomateOS: queue filled up front; "
        f"{peer.name}: its best load)", example.runs_per_s if example else None, best, "higher")
    peer_rss = stack_rss_mb(peer.memory)
    row("stack RSS MB after the run", stack_rss_mb(report.memory_end), peer_rss, "lower")
    ours_pss = [p.memory.pss_mb for p in report.memory_end if p.in_total]
    theirs_pss = [p.memory.pss_mb for p in peer.memory if p.in_total]
    row("stack PSS MB after the run",
        None if not ours_pss or None in ours_pss else sum(v for v in ours_pss if v is not None),
        None if not theirs_pss or None in theirs_pss else sum(v for v in theirs_pss if v is not None), "lower")
    return rows


def _peer_detail_table(results: Sequence[IngressResult]) -> str:
    rows = []
    for r in results:
        lat = r.load.latency
        errors = ", ".join(f"{k} {v}" for k, v in {**r.load.socket_errors, **r.load.statuses}.items() if v) or "0"
        rows.append([r.load.connections, num(r.load.ok_per_s), ms(lat.p50_us if lat else None),
                     ms(lat.p95_us if lat else None), ms(lat.p99_us if lat else None),
                     ms(lat.max_us if lat else None), errors, f"{r.accepted:,}", f"{r.counts.recorded:,}",
                     f"{r.counts.succeeded:,}", r.counts.finished - r.counts.succeeded, r.lost,
                     num(r.completed_per_s_in_load), "-" if r.backlog_at_end is None else f"{r.backlog_at_end:,}",
                     num(r.counts.window_s, 1), num(completed_per_s(r)),
                     num(r.drain_s, 1) if r.drain_s is not None else "no"])
    return markdown_table(
        ["connections", "accepted/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "accepted", "executions",
         "succeeded", "not succeeded", "lost", "completed/s during load", "not ended at load end", "window s",
         "completed/s", "all ended in s"], rows, "rrrrrrlrrrrrrrrrr")


def peer_observations(report: Report, peer: PeerResult) -> list[str]:
    out = []
    for r in peer.ingress:
        where = f"{peer.name} at {r.load.connections} connections"
        out += _load_notes(where, r.load, r.lost, "had no execution recorded")
        if r.counts.finished > r.counts.succeeded:
            out.append(f"{where}: {r.counts.finished - r.counts.succeeded} executions did not succeed.")
        if r.drain_s is None:
            out.append(f"{where}: executions were still running {report.config.drain_timeout_s:g} s after the load "
                       "(n8n has no queue to discard in regular mode).")
    return out


def _peer_section(report: Report, peer: PeerResult) -> list[str]:
    head = [f"## AutomateOS / {peer.name}", ""]
    if not peer.ingress:
        why = peer.error or "not measured"
        return [*head, f"**{peer.name} {peer.version} could not be measured**: {why}", "",
                f"Its log: {peer.log or '-'}. The AutomateOS tables above do not depend on it.", ""]
    ours = ", ".join(str(c) for c in _direct(report, MODE_SUSTAINED)) or "-"
    workers = report.config.ingress_workers
    parts = [
        *head,
        f"{peer.name} {peer.version} ({peer.runtime or 'Node.js'}, installed from npm; regular mode, "
        f"{peer.database or 'SQLite'}), started after AutomateOS had stopped, on the same machine, loaded by the "
        f"same generator ({report.generator}) with the same body, warm-up, concurrencies and "
        f"{report.config.duration_s:g} s per load"
        + (f", after {peer.warm_up_s:g} s of load on a workflow of its own (its JIT warms up)" if peer.warm_up_s
           else "")
        + ". Its workflow: Webhook (POST, respond immediately) -> IF (`body.source` is \"bench\") -> HTTP Request "
        "(POST of the body to the same kind of echo server, bench/echo.py). n8n accepts and executes in one "
        "process, so one load measures both.",
        "",
        f"**sustained** rows: AutomateOS's sustained ingress rows above (direct, {ours} connections: API.md's "
        f"example, webhook -> http_request -> filter, the same shape, with {workers} engine worker(s) executing "
        f"during the load) against {peer.name}'s loads: both accept and execute during the load. completed runs/s "
        "during the load = runs of the phase's workflow that ended inside the load's wall-clock window (AutomateOS: "
        f"`completed_at` in `executions`; {peer.name}: `stoppedAt` in `execution_entity`) / the window's length. "
        f"**burst** rows: AutomateOS's burst acceptance (a trigger-only workflow, its engine stopped during the "
        f"load, the backlog executed after) against the same {peer.name} loads: {peer.name} has no burst mode in "
        "regular mode (it executes in the process that accepts), so these compare intake capacity with intake "
        "under execution, not like with like. The engine row: AutomateOS's engine phase (API.md's example, 2 "
        f"workers, queue filled up front) against {peer.name}'s best completed/s (ended runs / (last end - first "
        "start) of a load's workflow); memory = the four services and the scheduler. "
        f"Ratio = AutomateOS / {peer.name}; `better` says which way a ratio favours AutomateOS (higher: > 1, "
        "lower: < 1).",
        "",
        markdown_table(["metric", "AutomateOS", peer.name, f"AutomateOS / {peer.name}", "better"],
                       _comparison_rows(report, peer), "lrrrl"),
        "",
        f"{peer.name} per load (executions = its `execution_entity` rows of the phase's workflow; all ended in = "
        "seconds after the load until none was new or running):",
        "",
        _peer_detail_table(peer.ingress),
        "",
    ]
    if any(r.cpu for r in peer.ingress):
        parts += [f"CPU during each {peer.name} load, in % of one CPU:", "", _cpu_table(peer.ingress), ""]
    if peer.memory:
        rows = [[p.name, p.memory.processes, num(p.memory.rss_mb, 1), num(p.memory.pss_mb, 1), p.note]
                for p in peer.memory]
        parts += [markdown_table(["process (tree)", "processes", "RSS MB at end", "PSS MB at end", "note"], rows,
                                 "lrrrl"), ""]
    if peer.settings:
        parts += [f"{peer.name} settings (environment; the rest at its defaults, execution saving included): "
                  + ", ".join(f"`{k}={v}`" for k, v in peer.settings), ""]
    notes = peer_observations(report, peer)
    if peer.error:
        notes.insert(0, f"{peer.name} stopped early ({peer.error}); its results are partial. Log: {peer.log}.")
    if notes:
        parts += [*[f"- {n}" for n in notes], ""]
    return parts


def peer_sections(report: Report) -> list[str]:
    """One `## AutomateOS / <peer>` section per peer asked for; empty when none was."""
    out: list[str] = []
    measured = {p.name for p in report.peers}
    for peer in report.peers:
        out += _peer_section(report, peer)
    for name in report.config.peers:
        if name not in measured:
            out += [f"## AutomateOS / {name}", "",
                    f"{name} was not measured: the run stopped before the peers (see the notes).", ""]
    return out
