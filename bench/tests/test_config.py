"""Settings: flags over BENCH_* variables over the (quick) defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.config import load_config, parse_ints
from bench.machine import parse_cpuinfo, parse_os_release


def test_defaults_full_and_quick():
    full = load_config([], environ={})
    assert (full.quick, full.duration_s, full.concurrency, full.workers, full.runs) == (False, 30.0, (16, 64),
                                                                                        (1, 2, 4), 2000)
    assert full.worker_classes == ()
    quick = load_config([], environ={"BENCH_QUICK": "1"})
    assert (quick.quick, quick.duration_s, quick.workers, quick.runs) == (True, 5.0, (2,), 500)


def test_environment_then_flags_win():
    env = {"BENCH_QUICK": "1", "BENCH_WORKERS": "1, 2,4", "BENCH_DURATION_S": "12",
           "BENCH_WORKER_CLASSES": "fork,simple", "BENCH_GATEWAY": "0", "BENCH_INGRESS_WORKERS": "0",
           "BENCH_OUT": "/tmp/x"}
    cfg = load_config([], environ=env)
    assert (cfg.workers, cfg.duration_s, cfg.worker_classes, cfg.gateway, cfg.ingress_workers, cfg.out_dir) == (
        (1, 2, 4), 12.0, ("fork", "simple"), False, 0, Path("/tmp/x"))
    cfg = load_config(["--workers", "3", "--duration", "2", "--loadgen", "python"], environ=env)
    assert (cfg.workers, cfg.duration_s, cfg.loadgen) == ((3,), 2.0, "python")


@pytest.mark.parametrize(("env", "message"), [
    ({"BENCH_WORKERS": "two"}, "comma-separated integers"),
    ({"BENCH_WORKERS": "0"}, "positive"),
    ({"BENCH_WORKER_CLASSES": "thread"}, "unknown thread"),
    ({"BENCH_DURATION_S": "-1"}, "positive"),
    ({"BENCH_LOADGEN": "ab"}, "one of"),
])
def test_bad_values_are_named(env, message):
    with pytest.raises(ValueError, match=message):
        load_config([], environ=env)


def test_parse_ints():
    assert parse_ints("16,64", "X") == (16, 64)
    with pytest.raises(ValueError, match="X"):
        parse_ints("", "X")


def test_settings_rows_name_every_setting():
    rows = dict(load_config([], environ={"BENCH_QUICK": "1"}).settings_rows())
    assert rows["workers"] == "2"
    assert rows["worker_classes"] == "(engine default)"
    assert rows["concurrency"] == "16, 64"


def test_cpuinfo_and_os_release():
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
    assert parse_cpuinfo(cpuinfo) == ("AMD EPYC 7B13", 2)
    assert parse_os_release('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == \
        "Debian GNU/Linux 12 (bookworm)"
