"""The regression benchmark's ``--quick`` form: diabetes, 120 rows, one split, 2 epochs.

It runs in this process (``--n-jobs 1``) and writes only under ``tmp_path``; the
assertions are about the shape of its output, not about who wins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("scipy")

from benchmarks import regression  # noqa: E402
from benchmarks._regression_methods import NEURAL, scores  # noqa: E402
from benchmarks._stats import best_baseline_tests  # noqa: E402

METHODS = {c.label for c in NEURAL} | {
    "Ridge[clinical]", "Ridge[serum]", "HGB[clinical]", "HGB[serum]",
    "early Ridge", "early HGB", "late Ridge", "late HGB",
}
SCENARIOS = ["all", "clinical only", "serum only",
             *[f"-{m} {p}%" for m in ("clinical", "serum") for p in (25, 50, 75)]]


def test_regression_scores_cover_only_predicted_samples():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    out = scores(y, np.array([1.0, 2.0, np.nan, 5.0]))
    assert out["coverage"] == pytest.approx(0.75) and out["n"] == 3
    assert out["mae"] == pytest.approx(1 / 3)
    assert out["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert np.isnan(scores(y, np.full(4, np.nan))["r2"])


def test_mae_is_lower_is_better_in_the_tests():
    rows = []
    for fold in range(8):
        for method, family, mae in (("ours", "ours", 1.0 + 0.01 * fold),
                                    ("late Ridge", "baseline", 2.0 + 0.02 * fold)):
            rows.append({"regime": "natural", "seed": 0, "fold": fold, "scenario": "all",
                         "method": method, "family": family, "mae": mae, "r2": -mae,
                         "coverage": 1.0})
    tests = best_baseline_tests(pd.DataFrame(rows), ["all"], "mae")
    assert tests.loc[0, "best baseline"] == "late Ridge" and tests.loc[0, "verdict"] == "win"


def test_quick_run_writes_a_row_per_method_with_finite_scores(tmp_path, capsys):
    regression.main(["--quick", "--n-jobs", "1", "--out-dir", str(tmp_path)])
    printed = capsys.readouterr().out

    frame = pd.read_csv(tmp_path / "regression_diabetes_quick.csv")
    assert set(frame["method"]) == METHODS
    assert list(dict.fromkeys(frame["scenario"])) == SCENARIOS
    assert set(frame["regime"]) == {"natural", "added"}
    # one split: one row per regime, scenario and method
    assert len(frame) == 2 * len(SCENARIOS) * len(METHODS)
    full = frame[frame["coverage"] == 1.0]
    assert np.isfinite(full[["r2", "mae", "rmse"]].to_numpy()).all()
    assert (frame.loc[frame["method"] == "ours", "coverage"] == 1.0).all()
    # specialists cannot predict a sample without their modality
    alone = frame[(frame["method"] == "Ridge[serum]") & (frame["scenario"] == "clinical only")]
    assert alone["coverage"].eq(0).all() and alone["r2"].isna().all()

    markdown = (tmp_path / "regression_quick.md").read_text()
    for heading in ("# Benchmarks: regression under missing modalities", "## Summary",
                    "### Overview", "### Ours against the best baseline: R²",
                    "### Ours against the best baseline: MAE"):
        assert heading in markdown
    for method in METHODS:
        assert f"| {method} |" in markdown or f"| **{method}** |" in markdown
    assert "Overview (R²" in printed and "| **ours** |" in printed
    # nothing written outside tmp_path
    assert not (regression.DOCS_MD.exists()
                and "— quick" in regression.DOCS_MD.read_text())
