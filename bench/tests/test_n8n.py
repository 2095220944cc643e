"""The n8n peer without n8n: its workflow, environment, execution counts, and the report's section."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bench.config import load_config
from bench.n8n import (
    N8n,
    cache_root,
    execution_counts,
    install_dir,
    kill_tree,
    n8n_env,
    package_json,
    parse_time,
    unfinished,
    workflow,
    workflow_id,
)
from bench.peers import PeerResult, first_line
from bench.phases import MODE_BURST, MODE_REGULAR
from bench.proc import Memory
from bench.report import completed_per_s, peer_sections, ratio, render
from bench.target import ProcessMemory, RunCounts
from bench.tests.test_report import T0, engine, ingress, memory, report, sustained

# -- the workflow -----------------------------------------------------------------------------------------------


def test_workflow_has_the_three_nodes_wired_in_order():
    wf = json.loads(json.dumps(workflow(3, "http://127.0.0.1:4000")))  # JSON through and through
    assert wf["id"] == workflow_id(3) and len(wf["id"]) == 16 and wf["id"].isalnum()
    nodes = {n["name"]: n for n in wf["nodes"]}
    assert [n["type"] for n in wf["nodes"]] == ["n8n-nodes-base.webhook", "n8n-nodes-base.if",
                                                "n8n-nodes-base.httpRequest"]
    hook = nodes["Webhook"]["parameters"]
    assert (hook["httpMethod"], hook["path"], hook["responseMode"]) == ("POST", "bench-3", "onReceived")
    assert nodes["Webhook"]["webhookId"]
    cond = nodes["If"]["parameters"]["conditions"]["conditions"][0]
    assert (cond["leftValue"], cond["rightValue"], cond["operator"]["operation"]) == (
        "={{ $json.body.source }}", "bench", "equals")
    http = nodes["HTTP Request"]["parameters"]
    assert (http["method"], http["url"], http["sendBody"]) == ("POST", "http://127.0.0.1:4000/data", True)
    # Webhook -> If; If's true branch (output 0) -> HTTP Request, its false branch to nothing
    assert wf["connections"]["Webhook"]["main"] == [[{"node": "If", "type": "main", "index": 0}]]
    assert wf["connections"]["If"]["main"] == [[{"node": "HTTP Request", "type": "main", "index": 0}], []]
    assert all(target["node"] in nodes for outs in wf["connections"].values() for branch in outs["main"]
               for target in branch)
    ids = [n["id"] for n in wf["nodes"]]
    assert len(set(ids)) == 3
    assert workflow(3, "http://x")["nodes"][0]["id"] == ids[0]  # stable: the same file for the same run
    assert workflow(4, "http://x")["nodes"][0]["id"] != ids[0]


def test_the_bench_body_takes_the_true_branch():
    from bench.phases import BODY
    assert json.loads(BODY)["source"] == "bench"


# -- installing and configuring ---------------------------------------------------------------------------------


def test_cache_folder_and_package_json():
    assert cache_root({"XDG_CACHE_HOME": "/c"}) == Path("/c/automateos-bench")
    assert cache_root({"HOME": "/home/u"}) == Path("/home/u/.cache/automateos-bench")
    assert install_dir("2.8.4", {"XDG_CACHE_HOME": "/c"}) == Path("/c/automateos-bench/n8n-2.8.4")
    pkg = package_json("2.8.4")
    assert pkg["dependencies"] == {"n8n": "2.8.4"}
    assert pkg["overrides"]["xlsx"][0].isdigit()  # from the registry, not the vendor's CDN


def test_env_is_loopback_sqlite_and_quiet(tmp_path):
    base = {"PATH": "/usr/bin", "N8N_PORT": "1", "DB_TYPE": "postgresdb", "EXECUTIONS_MODE": "queue",
            "NODE_OPTIONS": "--inspect"}
    env = n8n_env(user_folder=tmp_path, port=5800, broker_port=5801, base=base)
    assert env["PATH"] == "/usr/bin"
    assert "EXECUTIONS_MODE" not in env and "NODE_OPTIONS" not in env  # nothing of the caller's n8n setup
    assert (env["DB_TYPE"], env["N8N_PORT"], env["N8N_LISTEN_ADDRESS"]) == ("sqlite", "5800", "127.0.0.1")
    assert env["N8N_USER_FOLDER"] == str(tmp_path)
    assert env["N8N_RUNNERS_BROKER_PORT"] == "5801"
    for off in ("N8N_DIAGNOSTICS_ENABLED", "N8N_VERSION_NOTIFICATIONS_ENABLED", "N8N_PERSONALIZATION_ENABLED"):
        assert env[off] == "false"
    assert not any(k.startswith("EXECUTIONS_DATA_SAVE") for k in env)  # execution saving at n8n's defaults
    assert "DB_SQLITE_DATABASE" not in env  # n8n's default: <user folder>/.n8n/database.sqlite
    env = n8n_env(user_folder=tmp_path, port=5800, broker_port=5801, sqlite=Path("/dev/shm/x/database.sqlite"),
                  base=base)
    assert env["DB_SQLITE_DATABASE"] == "/dev/shm/x/database.sqlite"


def test_config_peers_and_version():
    assert load_config([], environ={}).peers == ("n8n",)
    assert load_config([], environ={"BENCH_QUICK": "1"}).peers == ()
    assert load_config([], environ={"BENCH_QUICK": "1", "BENCH_PEERS": "n8n"}).peers == ("n8n",)
    assert load_config([], environ={"BENCH_PEERS": ""}).peers == ()
    assert load_config([], environ={"BENCH_PEERS": "none"}).peers == ()
    assert load_config(["--peers", "none"], environ={"BENCH_PEERS": "n8n"}).peers == ()
    assert load_config([], environ={}).n8n_version == "2.8.4"
    assert load_config([], environ={"BENCH_N8N_VERSION": "2.9.0"}).n8n_version == "2.9.0"
    with pytest.raises(ValueError, match="unknown zapier"):
        load_config([], environ={"BENCH_PEERS": "n8n,zapier"})
    rows = dict(load_config([], environ={"BENCH_QUICK": "1"}).settings_rows())
    assert rows["peers"] == "none"


def test_webhooks_come_from_the_pool(tmp_path):
    target = N8n(tmp_path, workflows=2, say=lambda _: None)
    target.port = 5678
    a, b = target.webhook("one"), target.webhook("two")
    assert (a.url, a.key) == ("http://127.0.0.1:5678/webhook/bench-0", workflow_id(0))
    assert b.key == workflow_id(1)
    with pytest.raises(RuntimeError, match="all 2"):
        target.webhook("three")
    assert target.warm_up_url == "http://127.0.0.1:5678/webhook/bench-2"  # the readiness workflow, in no phase
    target.stop()  # nothing started: a no-op


# -- its records ------------------------------------------------------------------------------------------------


def _db(path: Path, rows: list[tuple[str, str, str | None, str | None]]) -> Path:
    """A database with n8n's `execution_entity` (the columns the bench reads, as n8n's SQLite has them)."""
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE "execution_entity" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, '
                 '"finished" boolean NOT NULL, "mode" varchar NOT NULL, "retryOf" varchar, "retrySuccessId" varchar,'
                 ' "startedAt" datetime, "stoppedAt" datetime, "waitTill" datetime, "status" varchar NOT NULL, '
                 '"workflowId" varchar(36) NOT NULL, "deletedAt" datetime(3), '
                 '"createdAt" datetime(3) NOT NULL DEFAULT (STRFTIME(\'%Y-%m-%d %H:%M:%f\', \'NOW\')))')
    conn.executemany('INSERT INTO execution_entity (finished, mode, startedAt, stoppedAt, status, workflowId) '
                     'VALUES (?, \'webhook\', ?, ?, ?, ?)',
                     [(status == "success", start, stop, status, wf) for wf, status, start, stop in rows])
    conn.commit()
    conn.close()
    return path


def test_execution_counts_from_sqlite(tmp_path):
    a, b = workflow_id(0), workflow_id(1)
    db = _db(tmp_path / "database.sqlite", [
        (a, "success", "2026-12-01 06:30:00.000", "2026-12-01 06:30:00.050"),
        (a, "success", "2026-12-01 06:30:01.000", "2026-12-01 06:30:02.500"),
        (a, "error", "2026-12-01 06:30:01.200", "2026-12-01 06:30:01.300"),
        (a, "running", "2026-12-01 06:29:59.000", None),
        (a, "new", None, None),
        (b, "success", "2026-12-01 07:00:00.000", "2026-12-01 07:00:09.000"),
    ])
    counts = execution_counts(db, a)
    assert (counts.recorded, counts.finished, counts.succeeded) == (5, 3, 2)
    t0 = datetime(2026, 12, 1, 6, 30, tzinfo=timezone.utc)
    assert counts.first_started == t0  # of the finished ones: the running one started earlier
    assert counts.last_completed == t0 + timedelta(seconds=2.5)
    assert counts.window_s == 2.5
    assert unfinished(db, [a, b]) == 2
    assert unfinished(db, [b]) == 0
    assert execution_counts(db, "nosuchworkflow0") == RunCounts(recorded=0, finished=0, succeeded=0)


def test_no_database_yet_counts_nothing(tmp_path):
    assert execution_counts(tmp_path / "missing.sqlite", "x").recorded == 0
    assert unfinished(tmp_path / "missing.sqlite", ["x"]) == 0


def test_parse_time_forms():
    t = datetime(2026, 12, 1, 6, 30, 0, 123000, tzinfo=timezone.utc)
    assert parse_time("2026-12-01 06:30:00.123") == t
    assert parse_time("2026-12-01T06:30:00.123Z") == t
    assert parse_time(t.timestamp() * 1000) == t
    assert parse_time(None) is None


def test_kill_tree_ends_a_process_and_its_child():
    import subprocess
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
    kill_tree(proc.pid, grace_s=2.0)
    assert proc.wait(5) != 0


# -- the report -------------------------------------------------------------------------------------------------


def n8n_ingress(connections: int, ok: int, p99_us: float, finished: int, window_s: float,
                completed_in_load: int | None = None):
    """A 10 s n8n load (the test_report rows' window); by default 60% of its executions end during it."""
    r = ingress("direct", connections, ok, p99_us, ok)
    counts = RunCounts(recorded=ok, finished=finished, succeeded=finished, first_started=T0,
                       last_completed=T0 + timedelta(seconds=window_s))
    return dataclasses.replace(r, target="n8n", counts=counts, record_s=0.1, drain_s=1.5, discarded=0,
                               cpu={"n8n": 1.0, "load generator": 0.02}, mode=MODE_REGULAR, engine_start_s=None,
                               completed_in_load=finished * 6 // 10 if completed_in_load is None else completed_in_load)


def n8n_result(**kw) -> PeerResult:
    values = {"name": "n8n", "version": "2.8.4", "runtime": "Node.js v20.20.2", "log": "/tmp/x/logs/n8n.log",
              "ingress": [n8n_ingress(16, 820, 264_000, 820, 10.0), n8n_ingress(64, 800, 1_200_000, 800, 10.0)],
              "memory": [ProcessMemory("n8n", Memory(2, 900 * 1024, 700 * 1024), True, "main")],
              "settings": [("DB_TYPE", "sqlite")], "database": "SQLite on tmpfs (RAM)", "warm_up_s": 10.0}
    values.update(kw)
    return PeerResult(**values)


def full_report(peers: list[PeerResult]):
    """burst rows much faster than the sustained ones, so a mix-up between them shows."""
    r = report(ingress=[ingress("direct", 16, 25_000, 8_000, 25_000), ingress("direct", 64, 30_000, 40_000, 30_000),
                        ingress("gateway", 16, 1_000, 90_000, 1_000),
                        sustained(16, 12_000, 30_000, 1_500), sustained(64, 9_000, 120_000, 1_200)],
               engine=[engine("example", 2, 2000, 4.0)], memory_end=memory(250), peers=peers)
    r.config = load_config([], environ={"BENCH_QUICK": "1", "BENCH_PEERS": "n8n"})
    return r


def table_rows(text: str, heading: str) -> dict[str, list[str]]:
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| :") and not line.startswith("| metric"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            out[cells[0]] = cells[1:]
    return out


def test_ratio_and_completed_rate():
    assert ratio(300.0, 100.0) == "3.00"
    assert ratio(None, 1.0) == ratio(1.0, 0.0) == "-"
    assert completed_per_s(n8n_ingress(16, 820, 264_000, 820, 10.0)) == 82.0


def test_section_with_n8n_results():
    text = render(full_report([n8n_result()]))
    assert "## AutomateOS / n8n" in text
    assert text.index("## AutomateOS / n8n") < text.index("## Settings")
    rows = table_rows(text, "## AutomateOS / n8n")
    # sustained rows (the example executing during the load): 12,000 / 9,000 accepted in 10 s; n8n 820 / 800
    assert rows["sustained: accepted webhooks/s, 16 connections"] == ["1,200", "82", "14.63", "higher"]
    assert rows["sustained: accepted webhooks/s, 64 connections"] == ["900", "80", "11.25", "higher"]
    assert rows["sustained: p99 latency ms, 16 connections"] == ["30.00", "264.00", "0.11", "lower"]
    assert rows["sustained: p99 latency ms, 64 connections"] == ["120.00", "1,200.00", "0.10", "lower"]
    assert rows["sustained: p50 latency ms, 16 connections"] == ["1.00", "1.00", "1.00", "lower"]
    # completed during the 10 s window: AutomateOS 1,500 and 1,200; n8n 60% of 820 and of 800
    assert rows["sustained: completed runs/s during the 16-connection load"] == ["150", "49", "3.05", "higher"]
    assert rows["sustained: completed runs/s during the 64-connection load"] == ["120", "48", "2.50", "higher"]
    # burst acceptance, on its own lines and labelled: 25,000 / 30,000 in 10 s (the direct rows, not the gateway)
    burst = "burst (AutomateOS engine stopped; n8n executing, it has no such mode): accepted webhooks/s"
    assert rows[f"{burst}, 16 connections"] == ["2,500", "82", "30.49", "higher"]
    assert rows[f"{burst}, 64 connections"] == ["3,000", "80", "37.50", "higher"]
    engine_row = next(v for k, v in rows.items() if k.startswith("engine phase: completed runs/s of the example"))
    assert engine_row == ["500", "82", "6.10", "higher"]
    assert rows["stack RSS MB after the run"] == ["350", "900", "0.39", "lower"]
    assert rows["stack PSS MB after the run"] == ["180", "700", "0.26", "lower"]
    assert not any(k.startswith("accepted webhooks/s") for k in rows)  # no row without its mode
    assert "Ratio = AutomateOS / n8n" in text and "n8n has no burst mode in regular mode" in text
    assert "`DB_TYPE=sqlite`" in text
    assert "SQLite on tmpfs (RAM)" in text and "after 10 s of load on a workflow of its own" in text
    details = table_rows(text, "n8n per load")
    assert details["16"][:2] == ["82", "1.00"]
    # completed/s during load, not ended at load end, window s, completed/s, all ended in s
    assert details["16"][-5:] == ["49", "328", "10.0", "82", "1.5"]
    assert details["64"][-5:] == ["48", "320", "10.0", "80", "1.5"]
    # the Targets table stays AutomateOS-only
    assert "n8n" not in text.split("## Targets", 1)[1].split("## Ingress", 1)[0]


def test_comparison_without_sustained_rows_leaves_them_empty():
    r = full_report([n8n_result()])
    r.ingress = [x for x in r.ingress if x.mode == MODE_BURST]
    rows = table_rows(render(r), "## AutomateOS / n8n")
    assert rows["sustained: accepted webhooks/s, 16 connections"] == ["-", "82", "-", "higher"]
    assert rows["sustained: completed runs/s during the 16-connection load"] == ["-", "49", "-", "higher"]
    assert rows["burst (AutomateOS engine stopped; n8n executing, it has no such mode): accepted webhooks/s, "
                "16 connections"] == ["2,500", "82", "30.49", "higher"]


def test_stop_times_from_sqlite(tmp_path):
    from bench.n8n import stop_times
    a = workflow_id(0)
    db = _db(tmp_path / "database.sqlite", [
        (a, "success", "2026-12-01 06:30:00.000", "2026-12-01 06:30:00.050"),
        (a, "error", "2026-12-01 06:30:01.200", "2026-12-01 06:30:01.300"),
        (a, "running", "2026-12-01 06:29:59.000", None),
        (workflow_id(1), "success", "2026-12-01 07:00:00.000", "2026-12-01 07:00:09.000"),
    ])
    t0 = datetime(2026, 12, 1, 6, 30, tzinfo=timezone.utc)
    assert sorted(stop_times(db, a)) == [t0 + timedelta(milliseconds=50), t0 + timedelta(milliseconds=1300)]
    assert stop_times(tmp_path / "missing.sqlite", a) == []


def test_section_when_n8n_could_not_start():
    peer = n8n_result(ingress=[], memory=[], settings=[], runtime="",
                      error="npm install of n8n 2.8.4 failed (exit 1): npm error code ENOTFOUND",
                      log="/tmp/x/logs/n8n-install.log")
    text = render(full_report([peer]))
    section = text.split("## AutomateOS / n8n", 1)[1].split("\n## ", 1)[0]
    assert "could not be measured" in section
    assert "npm error code ENOTFOUND" in section
    assert "/tmp/x/logs/n8n-install.log" in section
    assert "## Engine" in text and "## Settings" in text  # the rest of the report is there


def test_section_with_a_partial_n8n_run():
    peer = n8n_result(ingress=[n8n_ingress(16, 820, 264_000, 810, 10.0)], error="n8n exited with 1")
    text = render(full_report([peer]))
    rows = table_rows(text, "## AutomateOS / n8n")
    assert rows["sustained: accepted webhooks/s, 64 connections"] == ["900", "-", "-", "higher"]
    assert "n8n stopped early (n8n exited with 1)" in text


def test_no_section_without_peers_and_a_note_when_skipped():
    assert peer_sections(report()) == []
    r = full_report([])
    assert "n8n was not measured" in "\n".join(peer_sections(r))


def test_n8n_warms_up_10_s_even_before_short_loads(tmp_path, monkeypatch):
    import bench.peers

    loads: list[float] = []

    class FakeN8n:
        def __init__(self, work_dir, *, version, workflows, say):
            self.log, self.log_dir, self.folder = tmp_path / "n8n.log", tmp_path, tmp_path / "n8n"
            self.node_version, self.settings, self.db_where, self.warm_up_url = "v20", {}, "disk", "http://x/w"

        def start(self):
            pass

        def stop(self):
            pass

    def fake_load(generator, url, *, body, connections, duration_s, threads, log):
        loads.append(duration_s)
        raise RuntimeError("stop here")

    monkeypatch.setattr(bench.peers, "N8n", FakeN8n)
    monkeypatch.setattr(bench.peers, "run_load", fake_load)
    cfg = load_config([], environ={"BENCH_QUICK": "1", "BENCH_PEERS": "n8n"})
    assert cfg.duration_s == 2.0
    result = PeerResult(name="n8n", version="2.8.4")
    bench.peers.measure_n8n(cfg, "wrk", tmp_path, lambda _: None, result)
    assert loads == [10.0] and result.error == "stop here"


def test_first_line():
    assert first_line(RuntimeError("one\ntwo")) == "one"
    assert first_line(RuntimeError()) == "RuntimeError"


def test_a_peer_that_cannot_install_is_reported_not_fatal(tmp_path, monkeypatch):
    import bench.n8n
    from bench.peers import measure_peers

    def fail(version, *, log, say, environ=None):
        raise bench.n8n.PeerError(f"npm install of n8n {version} failed (exit 1): npm error code E404\nmore", log)

    monkeypatch.setattr(bench.n8n, "install", fail)
    cfg = load_config([], environ={"BENCH_QUICK": "1", "BENCH_PEERS": "n8n"})
    into: list[PeerResult] = []
    said: list[str] = []
    measure_peers(cfg, "wrk", tmp_path, said.append, into)
    [peer] = into
    assert peer.error == "npm install of n8n 2.8.4 failed (exit 1): npm error code E404"
    assert peer.log == str(tmp_path / "logs" / "n8n-install.log")
    assert not peer.ingress and not peer.ok
    assert any("E404" in line for line in said)


def test_last_error_names_what_npm_said(tmp_path):
    from bench.n8n import _last_error
    log = tmp_path / "install.log"
    log.write_text("$ npm install\nnpm warn deprecated x\nnpm error code ETARGET\n"
                   "npm error notarget No matching version found for n8n@9.9.9.\nnpm error A complete log ...\n")
    assert _last_error(log) == "npm error code ETARGET; npm error notarget No matching version found for n8n@9.9.9."
    log.write_text("starting\nError: listen EADDRINUSE 127.0.0.1:5678\nbye\n")
    assert _last_error(log) == "Error: listen EADDRINUSE 127.0.0.1:5678"
    assert _last_error(tmp_path / "none.log") == "(no log)"


def test_tmpfs_only_when_writable_and_roomy(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import bench.n8n
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(8 << 30, 0, 8 << 30))
    assert bench.n8n.tmpfs_usable(tmp_path)
    assert not bench.n8n.tmpfs_usable(tmp_path / "missing")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(64 << 20, 0, 64 << 20))
    assert not bench.n8n.tmpfs_usable(tmp_path)
