"""The survival benchmark's ``--quick`` form: GSE7390, 120 rows, one split, 2 epochs.

It runs in this process (``--n-jobs 1``) with the networks shrunk further (width 8, one
member) and the forest to 10 trees, writes only under ``tmp_path`` and never touches
``docs/``; the assertions are about the shape of its output, not about who wins. The
metric helpers are checked on hand-made outcomes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sksurv")
pytest.importorskip("SurvSet")

from benchmarks import _survival_methods, survival  # noqa: E402
from benchmarks._stats import best_baseline_tests  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ["all", "genes only", "clinical only",
             *[f"-{m} {p}%" for m in ("genes", "clinical") for p in (25, 50, 75)]]
BASELINES = {"Cox[genes]", "Cox[clinical]", "early Cox", "early RSF", "early GBSA",
             "late Cox", "Kaplan-Meier"}
METRICS = ["harrell_c", "uno_c", "td_auc", "ibs"]


def _y(event, time) -> np.ndarray:
    y = np.empty(len(event), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = event, time
    return y


def _published() -> dict[str, tuple[int, int]]:
    files = [ROOT / "README.md", *(p for p in (ROOT / "docs").rglob("*") if p.is_file())]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


def test_scores_rank_the_events_and_cover_only_predicted_samples():
    rng = np.random.default_rng(0)
    time = rng.exponential(10, 60)
    y = _y(rng.random(60) < 0.7, time)
    train, test = y[:40], y[40:]
    perfect = -test["time"]  # the earliest event has the highest risk
    out = _survival_methods.scores(train, test, perfect, None, np.inf)
    assert out["harrell_c"] == pytest.approx(1.0) and out["coverage"] == 1.0
    assert np.isnan(out["ibs"])  # no survival curves (late fusion)
    partial = perfect.copy()
    partial[:5] = np.nan
    out = _survival_methods.scores(train, test, partial, None, np.inf)
    assert out["n"] == 15 and out["coverage"] == pytest.approx(0.75)
    # Kaplan-Meier: curves and no ranking
    curve = _survival_methods.kaplan_meier(train)
    curves = np.empty(len(test), dtype=object)
    curves.fill(curve)
    out = _survival_methods.scores(train, test, np.full(len(test), np.nan), curves, np.inf)
    assert np.isnan(out["harrell_c"]) and 0 < out["ibs"] < 0.5


def test_evaluation_times_stay_inside_both_follow_ups():
    train = _y([True, False, True, True, False], [1.0, 2.0, 3.0, 4.0, 5.0])
    test = _y([True, True, False, True], [0.5, 2.5, 3.5, 9.0])  # 9 > last training time
    when = _survival_methods.evaluation_times(train, test, horizon=4.5)
    assert when["y_ipcw"]["time"].max() == 5.0  # capped for the censoring weights
    for times in (when["grid"], when["auc_times"]):
        assert ((times >= 0.5) & (times < 4.5)).all()
    assert when["tau"] == pytest.approx(np.percentile(train["time"], 80))


def test_integrated_brier_score_is_lower_is_better_in_the_tests():
    rows = [{"regime": "natural", "seed": 0, "fold": fold, "scenario": "all",
             "method": method, "family": family, "ibs": ibs, "coverage": 1.0}
            for fold in range(8)
            for method, family, ibs in (("ours", "ours", 0.10 + 0.001 * fold),
                                        ("early RSF", "baseline", 0.15 + 0.002 * fold),
                                        ("early Cox", "baseline", 0.20))]
    tests = best_baseline_tests(pd.DataFrame(rows), ["all"], "ibs")
    assert tests.loc[0, "best baseline"] == "early RSF" and tests.loc[0, "verdict"] == "win"


def test_quick_run_writes_every_method_and_scenario(tmp_path, monkeypatch, capsys):
    import torch

    threads, before = torch.get_num_threads(), _published()
    monkeypatch.setitem(survival.QUICK_PROFILE, "embed_dim", 8)
    monkeypatch.setitem(_survival_methods.RSF_PARAMS, "n_estimators", 10)
    try:
        survival.main(["--quick", "--n-jobs", "1", "--out-dir", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert _published() == before, "a quick run changed docs/ or README.md"
    printed = capsys.readouterr().out

    frame = pd.read_csv(tmp_path / "survival_gse7390_quick.csv")
    networks = {c.label for c in _survival_methods.NEURAL}
    assert {"ours", "no SMD", "zero tokens", "with contrastive"} <= networks
    assert set(frame["method"]) == networks | BASELINES
    assert list(dict.fromkeys(frame["scenario"])) == SCENARIOS
    assert set(frame["regime"]) == {"natural", "added"}
    assert len(frame) == 2 * len(SCENARIOS) * len(networks | BASELINES)  # one split
    ours = frame[frame["method"] == "ours"]
    assert (ours["coverage"] == 1).all() and (ours["ensemble_size"] == 1).all()
    assert np.isfinite(ours[METRICS].to_numpy()).all()
    assert ours[["harrell_c", "uno_c", "td_auc"]].stack().between(0, 1).all()
    km = frame[frame["method"] == "Kaplan-Meier"]
    assert km["harrell_c"].isna().all() and np.isfinite(km["ibs"]).all()
    assert frame.loc[frame["method"] == "late Cox", "ibs"].isna().all()
    assert np.isfinite(frame.loc[frame["method"] == "late Cox", "harrell_c"]).all()
    # a specialist predicts only the samples that have its modality
    alone = frame[(frame["method"] == "Cox[genes]") & (frame["scenario"] == "clinical only")]
    assert alone["coverage"].eq(0).all() and alone["harrell_c"].isna().all()

    markdown = (tmp_path / "survival_quick.md").read_text()
    for heading in ("# Benchmarks: survival under missing modalities", "## Summary",
                    "### Overview", "### Ours against the best baseline: Harrell's C",
                    "### Ours against the best baseline: integrated Brier score",
                    "### Integrated Brier score: ours against Kaplan-Meier",
                    "### Ablations: ours minus each"):
        assert heading in markdown
    assert "(survival_gse7390_quick.png)" in markdown
    assert (tmp_path / "survival_gse7390_quick.png").stat().st_size > 0
    assert "| regime | scenario | Harrell: ours / best baseline |" in printed
