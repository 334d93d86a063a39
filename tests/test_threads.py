"""The default thread count (``n_threads=None``): torch's setting, lowered to the cores
that other processes leave free."""

from __future__ import annotations

import os
import re
import sys
import time

import numpy as np
import pytest
import torch

from benchmarks.threads_loaded import busy_cores
from mmfusion_sklearn import MultimodalFusionClassifier
from mmfusion_sklearn._training import cores
from mmfusion_sklearn._training.runtime import torch_threads


def measure(readings, own=(0.0, 0.0), affinity=(0, 1, 2, 3), quota=None, window=0.1):
    """free_cores on two /proc/stat readings taken ``window`` apart (100 ticks/s),
    four CPUs in the affinity unless told."""
    ticks, own_times = iter(readings), iter(own)
    return cores.free_cores(window, read_ticks=lambda: next(ticks),
                            own_cpu_seconds=lambda: next(own_times), sleep=lambda s: None,
                            affinity=set(affinity), quota=quota, clock_ticks=100)


IDLE = {0: (0, 0), 1: (0, 0), 2: (0, 0), 3: (0, 0)}


def after(busy_ticks):
    """A second reading 0.1 s (10 ticks per CPU) later, ``busy_ticks`` of them busy."""
    return {cpu: (busy, 10) for cpu, busy in enumerate(busy_ticks)}


def test_busy_cores_of_other_processes_are_not_counted_free():
    assert measure([IDLE, after([0, 0, 0, 0])]) == 4
    assert measure([IDLE, after([10, 10, 0, 0])]) == 2
    assert measure([IDLE, after([10, 10, 10, 10])]) == 1  # never fewer than one
    assert measure([IDLE, after([10, 5, 0, 0])]) == 3  # half a core is rounded to a core


def test_the_process_own_cpu_time_is_not_load():
    # two cores busy, and the process itself used 0.2 s of CPU in the 0.1 s window
    assert measure([IDLE, after([10, 10, 0, 0])], own=(1.0, 1.2)) == 4


def test_only_the_cpus_of_the_affinity_count():
    assert measure([IDLE, after([10, 10, 0, 0])], affinity={2, 3}) == 2
    assert measure([IDLE, after([0, 0, 10, 10])], affinity={2, 3}) == 1


def test_the_cgroup_quota_caps_the_count(tmp_path):
    assert measure([IDLE, after([0, 0, 0, 0])], quota=2.0) == 2
    limit = tmp_path / "cpu.max"
    limit.write_text("150000 100000\n")
    assert cores.cgroup_cpu_quota(str(limit)) == 1.5
    limit.write_text("max 100000\n")
    assert cores.cgroup_cpu_quota(str(limit)) is None
    limit.write_text("garbage\n")
    assert cores.cgroup_cpu_quota(str(limit)) is None
    assert cores.cgroup_cpu_quota(str(tmp_path / "absent")) is None


def test_proc_stat_is_read_per_cpu_with_steal_time_busy(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 100 5 0 0 3 0 0\n"
                    "cpu0 4 0 6 50 2 0 0 3 0 0\n"
                    "cpu1 6 0 4 50 3 0 0 0 0 0\n"
                    "intr 1 2 3\n")
    # busy = user + nice + system + irq + softirq + steal; idle and iowait are free
    assert cores._read_proc_stat(str(stat)) == {0: (13, 65), 1: (10, 63)}


def test_unreadable_load_keeps_torch_setting(monkeypatch):
    def unreadable():
        raise OSError("no /proc here")

    assert cores.free_cores(0.0, read_ticks=unreadable, sleep=lambda s: None) is None
    monkeypatch.setattr(cores, "free_cores", lambda: None)
    monkeypatch.setattr(cores, "_last", None)
    assert cores.default_thread_count(7) == 7


def test_the_default_never_raises_torch_setting_and_reuses_its_measurement(monkeypatch):
    calls = []

    def fake():
        calls.append(1)
        return 3

    monkeypatch.setattr(cores, "free_cores", fake)
    monkeypatch.setattr(cores, "_last", None)
    assert cores.default_thread_count(2) == 2
    assert cores.default_thread_count(8) == 3
    assert len(calls) == 1  # measured once within REUSE_S
    monkeypatch.setattr(cores, "_last", (time.monotonic() - cores.REUSE_S - 1, 3))
    cores.default_thread_count(8)
    assert len(calls) == 2


def test_torch_threads_none_lowers_and_restores(monkeypatch):
    before = torch.get_num_threads()  # the suite's one thread
    monkeypatch.setattr(cores, "free_cores", lambda: 1)
    monkeypatch.setattr(cores, "_last", None)
    torch.set_num_threads(2)
    try:
        with torch_threads(None):
            inside = torch.get_num_threads()
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert inside == 1 and after == 2


def test_one_thread_already_is_not_measured(monkeypatch):
    def never():
        raise AssertionError("measured the free cores for a count it cannot lower")

    monkeypatch.setattr(cores, "free_cores", never)
    monkeypatch.setattr(cores, "_last", None)
    assert cores.default_thread_count(1) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core")
def test_a_fit_on_busy_cores_uses_fewer_threads_than_torch_and_explicit_counts_hold(
        monkeypatch):
    from skorch.callbacks import Callback

    class ThreadProbe(Callback):
        def __init__(self):
            self.threads = []

        def on_epoch_end(self, net, **kwargs):
            self.threads.append(torch.get_num_threads())

    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    X = {"a": rng.normal(size=(60, 3)) + y[:, None], "b": rng.normal(size=(60, 2))}
    params = {"embed_dim": 8, "pretrain_epochs": 0, "max_epochs": 2, "ensemble_size": 1,
              "device": "cpu", "random_state": 0}
    before = torch.get_num_threads()  # the suite runs on one thread: torch's default here
    default = os.cpu_count()
    torch.set_num_threads(default)
    try:
        with busy_cores(default):  # one spinning process per core
            monkeypatch.setattr(cores, "_last", None)
            clf = MultimodalFusionClassifier(**params, callbacks=[("probe", ThreadProbe())])
            clf.fit(X, y)
            used = dict(clf._nets[0].callbacks_)["probe"].threads
            # one epoch: threads on busy cores are slow, which is the point
            explicit = MultimodalFusionClassifier(
                **{**params, "max_epochs": 1}, n_threads=default,
                callbacks=[("probe", ThreadProbe())]).fit(X, y)
            after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert used and max(used) < default
    assert dict(explicit._nets[0].callbacks_)["probe"].threads == [default]
    assert after == default  # restored after each fit


def test_the_busy_cores_benchmark_runs_and_reports_each_setting(monkeypatch, capsys):
    pytest.importorskip("sksurv")  # GSE7390
    from benchmarks import threads_loaded

    monkeypatch.setattr(threads_loaded, "QUICK_PARAMS", {
        "max_epochs": 1, "pretrain_epochs": 0, "embed_dim": 8, "ensemble_size": 1})
    before = torch.get_num_threads()
    threads_loaded.main(["--quick", "--data", "tables"])
    out = capsys.readouterr().out
    for load in ("idle", "busy processes"):
        for setting in (f"n_threads={before}", "n_threads=1", "n_threads=None"):
            assert re.search(rf"\| GSE7390 tables \| [^|]*{load} \| {setting} \|", out), (
                load, setting)
    assert torch.get_num_threads() == before


def test_an_explicit_thread_count_reproduces_a_fit_whatever_the_free_cores(monkeypatch):
    rng = np.random.default_rng(1)
    y = np.arange(60) % 2
    X = {"a": rng.normal(size=(60, 3)) + y[:, None], "b": rng.normal(size=(60, 2))}
    params = {"embed_dim": 8, "pretrain_epochs": 1, "max_epochs": 3, "device": "cpu",
              "random_state": 0, "n_threads": 1}
    probabilities = []
    for free in (1, 8):
        monkeypatch.setattr(cores, "free_cores", lambda free=free: free)
        monkeypatch.setattr(cores, "_last", None)
        probabilities.append(MultimodalFusionClassifier(**params).fit(X, y).predict_proba(X))
    np.testing.assert_array_equal(probabilities[0], probabilities[1])
