"""missing_modality_report, modality_importance and restrict_modalities, on every
input form the estimator takes."""

import numpy as np
import pandas as pd
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


def test_modality_importance_with_several_scorers_is_long_format(signal_and_noise):
    clf, X, y = signal_and_noise
    long = modality_importance(clf, X, y, scoring=["roc_auc", "accuracy"])
    assert long.columns.tolist() == ["modality", "scorer", "score_full", "score_without",
                                     "importance"]
    # grouped by scorer in the order given, each group by importance
    assert long["scorer"].tolist() == ["roc_auc", "roc_auc", "accuracy", "accuracy"]
    assert long["modality"].tolist() == ["signal", "noise", "signal", "noise"]
    for scorer in ("roc_auc", "accuracy"):
        single = modality_importance(clf, X, y, scoring=scorer)
        group = long[long["scorer"] == scorer].drop(columns="scorer").reset_index(drop=True)
        pd.testing.assert_frame_equal(group, single)
    # a list of one is long format too; a dict names its scorers
    assert "scorer" in modality_importance(clf, X, y, scoring=["accuracy"]).columns
    by_dict = modality_importance(clf, X, y, scoring={"acc": "accuracy"})
    assert by_dict["scorer"].unique().tolist() == ["acc"]
    with pytest.raises(ValueError, match="'scoring' parameter is empty"):
        modality_importance(clf, X, y, scoring=[])
    with pytest.raises(ValueError, match="names a scorer twice"):
        modality_importance(clf, X, y, scoring=["accuracy", "accuracy"])


def test_a_sole_modality_has_nan_importance():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 20)
    X = {"only": rng.normal(size=(40, 2)) + y[:, None]}
    clf = fast_clf().fit(X, y)
    importance = modality_importance(clf, X, y, scoring=["accuracy"])
    assert importance["importance"].isna().all()
    assert importance["score_full"].iloc[0] == pytest.approx(clf.score(X, y))


@pytest.fixture(scope="module")
def frame_with_spec():
    rng = np.random.default_rng(1)
    n = 60
    y = np.tile(["healthy", "sick"], n // 2)
    sick = (y == "sick")[:, None]
    frame = pd.DataFrame(rng.normal(size=(n, 2)) + 1.5 * sick, columns=["age", "crp"])
    frame["g1"] = rng.normal(size=n)
    frame["g2"] = rng.normal(size=n) + sick[:, 0]
    frame.loc[::6, ["age", "crp"]] = np.nan  # 10 patients without labs
    spec = {"labs": ["age", "crp"], "genes": ["g1", "g2"]}
    return frame, y, spec


def test_metrics_take_the_dataframe_that_fit_took(frame_with_spec):
    frame, y, spec = frame_with_spec
    clf = fast_clf(spec).fit(frame, y)
    data = MultimodalData(frame, modalities=spec)
    pd.testing.assert_frame_equal(missing_modality_report(clf, frame, y),
                                  missing_modality_report(clf, data, y))
    report = missing_modality_report(clf, frame, y)
    assert report["modalities"].tolist() == ["labs+genes", "labs", "genes"]
    assert report["n_dropped"].tolist() == [0, 10, 0]
    pd.testing.assert_frame_equal(modality_importance(clf, frame, y),
                                  modality_importance(clf, data, y))
    # records too (those that MultimodalData gives keep the table's column names)
    by_records = missing_modality_report(clf, list(data), y)
    assert dict(zip(by_records["modalities"], by_records["n_samples"])) == {
        "genes+labs": 60, "genes": 60, "labs": 50}
    restricted = restrict_modalities(frame, ["genes"], modalities=spec)
    assert restricted.modality_names == ["genes"]


def test_metrics_read_x_through_a_pipeline_or_search(frame_with_spec):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mmfusion_sklearn import ModalityTransformer

    frame, y, spec = frame_with_spec
    pipeline = make_pipeline(ModalityTransformer([("labs", StandardScaler())],
                                                 modalities=spec), fast_clf()).fit(frame, y)
    report = missing_modality_report(pipeline, frame, y, scoring="accuracy")
    assert report["modalities"].tolist() == ["labs+genes", "labs", "genes"]
    search = GridSearchCV(fast_clf(spec), {"embed_dim": [8]}, cv=2).fit(frame, y)
    importance = modality_importance(search, frame, y)
    assert sorted(importance["modality"]) == ["genes", "labs"]


def test_a_plain_table_model_is_reported_as_one_modality():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 20)
    table = rng.normal(size=(40, 3)) + y[:, None]
    clf = fast_clf().fit(table, y)
    report = missing_modality_report(clf, table, y, scoring="accuracy")
    assert report["modalities"].tolist() == ["tabular"]
    assert report["accuracy"].iloc[0] == pytest.approx(clf.score(table, y))
