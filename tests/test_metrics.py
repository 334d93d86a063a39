"""missing_modality_report, modality_importance and restrict_modalities."""

import numpy as np
import pytest
from conftest import fast_clf
from sklearn.metrics import accuracy_score, roc_auc_score

from mmfusion_sklearn import MultimodalData
from mmfusion_sklearn.metrics import (
    missing_modality_report,
    modality_importance,
    restrict_modalities,
)


@pytest.fixture(scope="module")
def signal_and_noise():
    """'signal' carries the class, 'noise' does not; some samples lack one of them."""
    rng = np.random.default_rng(0)
    n = 120
    y = np.arange(n) % 2
    signal = rng.normal(size=(n, 3)) + 2.0 * y[:, None]
    noise = rng.normal(size=(n, 3))
    signal[::10] = np.nan  # 12 samples without 'signal'
    X = MultimodalData({"signal": signal, "noise": noise})
    clf = fast_clf(max_epochs=15).fit(X, y)
    return clf, X, y


def test_report_scores_every_subset_largest_first(signal_and_noise):
    clf, X, y = signal_and_noise
    report = missing_modality_report(clf, X, y, scoring=["roc_auc", "accuracy"])
    assert report["modalities"].tolist() == ["signal+noise", "signal", "noise"]
    assert report["n_samples"].tolist() == [120, 108, 120]
    assert report["n_dropped"].tolist() == [0, 12, 0]
    # each score is the scorer on the restricted samples, computed here by hand
    keep = ~np.isnan(X["signal"]).all(axis=1)
    only_signal = MultimodalData({"signal": X["signal"][keep]})
    expected = roc_auc_score(y[keep], clf.predict_proba(only_signal)[:, 1])
    assert report.loc[1, "roc_auc"] == pytest.approx(expected)
    expected = accuracy_score(y, clf.predict({"noise": X["noise"]}))
    assert report.loc[2, "accuracy"] == pytest.approx(expected)
    # the informative modality scores far above the uninformative one
    assert report.loc[1, "roc_auc"] > 0.9 > report.loc[2, "roc_auc"] + 0.2


def test_report_default_scoring_and_chosen_subsets(signal_and_noise):
    clf, X, y = signal_and_noise
    report = missing_modality_report(clf, X, y, subsets=[("noise",)])
    assert report.columns.tolist() == ["modalities", "n_samples", "n_dropped", "roc_auc"]
    assert report["modalities"].tolist() == ["noise"]


def test_report_rejects_length_mismatch(signal_and_noise):
    clf, X, y = signal_and_noise
    with pytest.raises(ValueError, match=r"X \(120\) and y \(119\)"):
        missing_modality_report(clf, X, y[:-1])


def test_modality_importance_ranks_the_informative_modality_first(signal_and_noise):
    clf, X, y = signal_and_noise
    importance = modality_importance(clf, X, y)
    assert importance["modality"].tolist() == ["signal", "noise"]
    row = importance.iloc[0]
    assert row["importance"] == pytest.approx(row["score_full"] - row["score_without"])
    assert row["importance"] > 0.2
    assert abs(importance.iloc[1]["importance"]) < row["importance"]


def test_restrict_modalities_keeps_only_the_named_ones():
    X = {"a": np.ones((3, 2)), "b": np.zeros((3, 1))}
    restricted = restrict_modalities(X, ["b"])
    assert restricted.modality_names == ["b"]
    assert len(restricted) == 3
    with pytest.raises(ValueError, match=r"no modalities \['c'\]"):
        restrict_modalities(X, ["c"])
