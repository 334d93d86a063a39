"""The statistics the benchmarks report: Holm's correction, calibration, paired tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("scipy")

from benchmarks._methods import expected_calibration_error, scores  # noqa: E402
from benchmarks._stats import best_baseline_tests, holm, paired, versus_tests  # noqa: E402


def test_holm_by_hand():
    # sorted p: 0.01, 0.02, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04)
    assert_allclose(holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    adjusted = holm([0.01, np.nan, 0.03])  # NaN is no test: two tests
    assert_allclose(adjusted[[0, 2]], [0.02, 0.03])
    assert np.isnan(adjusted[1])
    assert holm([]).shape == (0,)


def test_expected_calibration_error():
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(y, np.array([0.0, 0.0, 1.0, 1.0])) == 0.0
    # every prediction 0.5, half positive: calibrated in its bin
    assert expected_calibration_error(y, np.full(4, 0.5)) == 0.0
    # all 0.9 with half positive: |0.5 - 0.9|
    assert expected_calibration_error(y, np.full(4, 0.9)) == pytest.approx(0.4)


def test_scores_skip_uncovered_samples():
    y = np.array([0, 1, 0, 1, 1])
    proba = np.array([0.2, 0.8, 0.3, np.nan, 0.6])
    out = scores(y, proba)
    assert out["coverage"] == pytest.approx(0.8) and out["n"] == 4
    assert out["auroc"] == 1.0
    assert out["logloss"] == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.7, 0.6])))
    assert out["brier"] == pytest.approx(np.mean([0.04, 0.04, 0.09, 0.16]))


def _frame(ours, other, metric="auroc"):
    rows = []
    for fold, (a, b) in enumerate(zip(ours, other)):
        for method, value, family in (("ours", a, "ours"), ("late LR", b, "baseline")):
            rows.append({"regime": "natural", "seed": 0, "fold": fold, "scenario": "all",
                         "method": method, "family": family, metric: value,
                         "auroc": value, "coverage": 1.0})
    return pd.DataFrame(rows)


def test_paired_tests_and_verdicts():
    better = _frame([0.8, 0.81, 0.79, 0.82, 0.8, 0.83, 0.8, 0.81],
                    [0.7, 0.72, 0.7, 0.71, 0.69, 0.7, 0.72, 0.7])
    delta, p, n = paired(better, "natural", "all", "ours", "late LR")
    assert n == 8 and delta == pytest.approx(0.1025) and p < 0.05
    tests = best_baseline_tests(better, ["all"])
    assert tests.loc[0, "verdict"] == "win" and tests.loc[0, "best baseline"] == "late LR"
    # for a loss (lower is better) the same numbers are a loss for ours
    worse = _frame([0.8, 0.81, 0.79, 0.82, 0.8, 0.83, 0.8, 0.81],
                   [0.7, 0.72, 0.7, 0.71, 0.69, 0.7, 0.72, 0.7], metric="logloss")
    assert versus_tests(worse, ["all"], "late LR", "logloss").loc[0, "verdict"] == "**loss**"


def test_summary_row_counts_wins_and_contrastive_effect():
    from benchmarks.summary import row

    ours = [0.8, 0.81, 0.79, 0.82, 0.8, 0.83, 0.8, 0.81]
    frame = _frame(ours, [0.7, 0.72, 0.7, 0.71, 0.69, 0.7, 0.72, 0.7])
    frame["logloss"] = 1 - frame["auroc"]  # ours better on both metrics
    ablation = frame[frame["method"] == "ours"].assign(
        method="no contrastive", family="ablation", auroc=lambda f: f["auroc"] - 0.001,
        logloss=lambda f: f["logloss"])
    out = row("toy", pd.concat([frame, ablation], ignore_index=True), "8")
    assert out["splits"] == "8"
    assert out["AUROC, all modalities: ours"] == f"{np.mean(ours):.3f}"
    assert out["best baseline"].endswith("(late LR)")
    assert out["vs best baseline, AUROC (W / T / L)"] == "1 / 0 / 0"
    assert out["log loss (W / T / L)"] == "1 / 0 / 0"
    # a constant +0.001 over 8 pairs: Wilcoxon p = 0.0078, one test -> a win
    assert out["contrastive stage adds (AUROC)"].startswith("+0.001 mean; 1 better")


def test_summary_tables_read_saved_runs(tmp_path, monkeypatch):
    import json

    import benchmarks.summary as summary

    frame = _frame([0.8, 0.81, 0.79, 0.82, 0.8, 0.83, 0.8, 0.81],
                   [0.7, 0.72, 0.7, 0.71, 0.69, 0.7, 0.72, 0.7])
    frame["logloss"] = 1 - frame["auroc"]
    ablation = frame[frame["method"] == "ours"].assign(
        method="no linear path", family="ablation", auroc=lambda f: f["auroc"] + 0.01,
        logloss=lambda f: f["logloss"] - 0.01)
    pd.concat([frame, ablation]).to_csv(tmp_path / "quality_wpbc.csv", index=False)
    (tmp_path / "quality_wpbc.json").write_text(json.dumps(
        {"title": "WPBC (toy)", "data": ["8 samples (classes 0: 4, 1: 4)"]}))
    monkeypatch.setattr(summary, "RESULTS", tmp_path)
    assert "| WPBC | 8 | 8 | 0.807 |" in summary.table()
    # the ablation is better everywhere: ours worse in the one cell, on both metrics
    assert "| WPBC | no linear path | -0.0100 | 0 / 1 (0 / 1) of 1 | +0.0100 | 0 / 1" in (
        summary.ablation_table())
