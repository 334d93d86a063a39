"""The demo's table: every model and scenario on the same folds, real data."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sksurv")

from mmfusion_sklearn import demo  # noqa: E402


def test_demo_table_has_every_model_and_scenario():
    table = demo.run(n_splits=2, n_repeats=1, verbose=0, n_jobs=1, max_epochs=2,
                     pretrain_epochs=1)
    models = list(dict.fromkeys(table.index.get_level_values(0)))
    assert models == [*demo.NETWORKS, "logistic regression", "logistic regression (tuned C)"]
    assert list(dict.fromkeys(table.index.get_level_values(1))) == list(demo.SCENARIOS)
    auroc = table[("auroc", "mean")].to_numpy()
    loss = table[("log loss", "mean")].to_numpy()
    assert np.isfinite(auroc).all() and ((auroc > 0.3) & (auroc < 1)).all()
    assert np.isfinite(loss).all() and (loss > 0).all()
    # the baselines differ between scenarios: each scenario scores its own model
    lr = table.loc["logistic regression", ("auroc", "mean")]
    assert lr["genes only"] != lr["clinical only"]


def test_demo_survival_table_scores_ours_and_ridge_cox_on_real_follow_up():
    table = demo.run_survival(n_splits=2, n_repeats=1, verbose=0, n_jobs=1, max_epochs=2)
    assert list(dict.fromkeys(table.index.get_level_values(0))) == [
        "ours, survival (defaults)", "ridge Cox"]
    c_index = table[("c_index", "mean")]
    assert np.isfinite(c_index).all() and ((c_index > 0.3) & (c_index < 1)).all()
    cox = table.loc["ridge Cox", ("c_index", "mean")]
    assert cox["genes only"] != cox["clinical only"]
    X, y = demo.load_gse7390(survival=True)
    assert y.dtype.names == ("metastasis", "days") and len(y) == len(X) == 198
    assert y["metastasis"].sum() == 51  # GSE7390's distant metastases


def test_demo_main_prints_the_table(capsys, monkeypatch):
    run, run_survival = demo.run, demo.run_survival
    monkeypatch.setattr(demo, "run", lambda *a, **k: run(
        2, 1, 0, verbose=0, n_jobs=1, max_epochs=1, pretrain_epochs=0))
    monkeypatch.setattr(demo, "run_survival", lambda *a, **k: run_survival(
        2, 1, 0, verbose=0, n_jobs=1, max_epochs=1))
    demo.main(["--splits", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    for text in ("ours (defaults)", "logistic regression (tuned C)", "genes only", "AUROC",
                 "ours, survival (defaults)", "ridge Cox", "concordance"):
        assert text in out
