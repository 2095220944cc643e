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
    assert (full.ingress_modes, full.ingress_workers, full.drain_timeout_s) == (("burst", "sustained"), 2, 600.0)
    quick = load_config([], environ={"BENCH_QUICK": "1"})
    assert (quick.quick, quick.duration_s, quick.workers, quick.runs) == (True, 2.0, (2,), 500)
    assert (quick.ingress_modes, quick.ingress_workers, quick.drain_timeout_s) == (("burst", "sustained"), 2, 45.0)


def test_environment_then_flags_win():
    env = {"BENCH_QUICK": "1", "BENCH_WORKERS": "1, 2,4", "BENCH_DURATION_S": "12",
           "BENCH_WORKER_CLASSES": "fork,simple", "BENCH_GATEWAY": "0", "BENCH_INGRESS_WORKERS": "4",
           "BENCH_OUT": "/tmp/x", "BENCH_INGRESS_MODES": "sustained"}
    cfg = load_config([], environ=env)
    assert (cfg.workers, cfg.duration_s, cfg.worker_classes, cfg.gateway, cfg.ingress_workers, cfg.out_dir) == (
        (1, 2, 4), 12.0, ("fork", "simple"), False, 4, Path("/tmp/x"))
    assert cfg.ingress_modes == ("sustained",)
    cfg = load_config(["--workers", "3", "--duration", "2", "--loadgen", "python", "--ingress-modes", "burst"],
                      environ=env)
    assert (cfg.workers, cfg.duration_s, cfg.loadgen, cfg.ingress_modes) == ((3,), 2.0, "python", ("burst",))


@pytest.mark.parametrize(("raw", "modes"), [
    ("burst,sustained", ("burst", "sustained")),
    (" Sustained , burst ", ("sustained", "burst")),  # the order given is the order run
    ("burst,burst", ("burst",)),
    ("none", ()),
    ("0", ()),
    ("", ("burst", "sustained")),  # set but empty: the default
])
def test_ingress_modes(raw, modes):
    assert load_config([], environ={"BENCH_INGRESS_MODES": raw}).ingress_modes == modes
    assert load_config(["--ingress-modes", raw or "burst,sustained"], environ={"BENCH_QUICK": "1"}).ingress_modes == \
        modes


def test_ingress_modes_in_the_settings_table():
    assert dict(load_config([], environ={}).settings_rows())["ingress_modes"] == "burst, sustained"
    assert dict(load_config([], environ={"BENCH_INGRESS_MODES": "none"}).settings_rows())["ingress_modes"] == "none"


@pytest.mark.parametrize(("env", "message"), [
    ({"BENCH_WORKERS": "two"}, "comma-separated integers"),
    ({"BENCH_WORKERS": "0"}, "positive"),
    ({"BENCH_WORKER_CLASSES": "thread"}, "unknown thread"),
    ({"BENCH_DURATION_S": "-1"}, "positive"),
    ({"BENCH_LOADGEN": "ab"}, "one of"),
    ({"BENCH_INGRESS_MODES": "steady"}, "BENCH_INGRESS_MODES: unknown steady"),
    ({"BENCH_INGRESS_MODES": "burst,none"}, "unknown none"),
    ({"BENCH_INGRESS_WORKERS": "0"}, "at least 1"),
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
