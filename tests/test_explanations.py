"""modality_contributions: per-sample change in log-odds (log-probability) that each
modality brings, checked against decision_function differences computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import fast_clf, make_multimodal
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmfusion_sklearn import ModalityTransformer, MultimodalData
from mmfusion_sklearn.metrics import modality_contributions, restrict_modalities


@pytest.fixture(scope="module")
def binary():
    """'signal' carries the class, 'noise' does not; some samples lack one of them."""
    rng = np.random.default_rng(0)
    n = 80
    y = np.tile([0, 1], n // 2)
    signal = rng.normal(size=(n, 3)) + 2.0 * y[:, None]
    noise = rng.normal(size=(n, 3))
    signal[::10] = np.nan  # 8 samples with 'noise' only
    noise[5::10] = np.nan  # 8 with 'signal' only
    X = MultimodalData({"signal": signal, "noise": noise})
    return fast_clf(max_epochs=15).fit(X, y), X, y


def test_contributions_are_decision_differences_computed_by_hand(binary):
    clf, X, _ = binary
    contributions = modality_contributions(clf, X)
    assert contributions.shape == (80, 2)
    assert contributions.columns.tolist() == ["signal", "noise"]
    full = clf.decision_function(X)
    both = X.presence.to_numpy().all(axis=1)
    rows = np.flatnonzero(both)
    without_signal = clf.decision_function(restrict_modalities(X[rows], ["noise"]))
    without_noise = clf.decision_function(restrict_modalities(X[rows], ["signal"]))
    np.testing.assert_allclose(contributions["signal"].to_numpy()[rows],
                               full[rows] - without_signal, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(contributions["noise"].to_numpy()[rows],
                               full[rows] - without_noise, rtol=1e-6, atol=1e-9)


def test_absent_modalities_contribute_zero_and_a_sole_modality_nan(binary):
    clf, X, _ = binary
    contributions = modality_contributions(clf, X)
    no_signal = ~X.present("signal")
    no_noise = ~X.present("noise")
    assert (contributions["signal"][no_signal] == 0.0).all()  # exactly 0
    assert (contributions["noise"][no_noise] == 0.0).all()
    # the only modality of a sample: nothing is left to predict from
    assert contributions["noise"][no_signal].isna().all()
    assert contributions["signal"][no_noise].isna().all()
    assert contributions[X.presence.all(axis=1).to_numpy()].notna().all().all()
    # a modality the model knows but X lacks altogether: 0 everywhere
    only_noise = modality_contributions(clf, {"noise": X["noise"][X.present("noise")]})
    assert only_noise.columns.tolist() == ["signal", "noise"]
    assert (only_noise["signal"] == 0.0).all() and only_noise["noise"].isna().all()


def test_the_modality_with_the_signal_contributes_more(binary):
    clf, X, y = binary
    contributions = modality_contributions(clf, X)
    both = X.presence.all(axis=1).to_numpy()
    magnitude = contributions[both].abs().mean()
    assert magnitude["signal"] > 3 * magnitude["noise"]
    # and it points the right way: towards classes_[1] for the positives
    signal = contributions["signal"][both]
    assert signal[y[both] == 1].mean() > 0 > signal[y[both] == 0].mean()
    # explaining classes_[0] flips the sign
    flipped = modality_contributions(clf, X, target=clf.classes_[0])
    np.testing.assert_allclose(flipped.fillna(0), -contributions.fillna(0), atol=1e-12)


def test_dataframe_input_keeps_its_row_index():
    rng = np.random.default_rng(1)
    y = np.tile(["a", "b"], 20)
    frame = pd.DataFrame(rng.normal(size=(40, 3)) + (y == "b")[:, None],
                         columns=["x1", "x2", "x3"], index=[f"p{i}" for i in range(40)])
    frame["z"] = rng.normal(size=40)
    spec = {"first": ["x1", "x2"], "second": ["x3", "z"]}
    clf = fast_clf(spec).fit(frame, y)
    contributions = modality_contributions(clf, frame)
    assert contributions.index.tolist() == frame.index.tolist()
    by_data = modality_contributions(clf, MultimodalData(frame, modalities=spec))
    np.testing.assert_allclose(contributions.to_numpy(), by_data.to_numpy())
    # the container keeps the patients' labels (it used to give positions 0..39)
    assert by_data.index.tolist() == frame.index.tolist()


def test_multiclass_contributions_explain_the_predicted_class():
    rng = np.random.default_rng(2)
    n = 60
    y = np.arange(n) % 3
    X = {"signal": rng.normal(size=(n, 3)) + 2.0 * np.eye(3)[y],
         "noise": rng.normal(size=(n, 2))}
    clf = fast_clf(max_epochs=10).fit(X, y)
    contributions = modality_contributions(clf, X)
    log_proba = clf.decision_function(X)  # log-probabilities for 3 classes
    predicted = np.searchsorted(clf.classes_, clf.predict(X))
    without = clf.decision_function({"noise": X["noise"]})
    expected = (log_proba[np.arange(n), predicted] - without[np.arange(n), predicted])
    np.testing.assert_allclose(contributions["signal"], expected, rtol=1e-6, atol=1e-9)
    # a fixed class
    fixed = modality_contributions(clf, X, target=2)
    np.testing.assert_allclose(fixed["signal"], log_proba[:, 2] - without[:, 2],
                               rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match=r"'target' parameter must be None or one of the "
                                         r"classes \[0, 1, 2\]. Got 7 instead"):
        modality_contributions(clf, X, target=7)


class _TableOnly(ClassifierMixin, BaseEstimator):
    """Another library's classifier that reads MultimodalData: a logistic regression
    on the 'signal' table, the prior where it is absent."""

    def fit(self, X, y):
        present = X.present("signal")
        self.model_ = LogisticRegression().fit(X["signal"][present], y[present])
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        X = MultimodalData(X)
        proba = np.full((len(X), 2), 0.5)
        present = X.present("signal")
        if present.any():
            proba[present] = self.model_.predict_proba(X["signal"][present])
        return proba

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_other_classifiers_through_predict_proba_and_pipelines(binary):
    _, X, y = binary
    other = _TableOnly().fit(X, y)
    contributions = modality_contributions(other, X)
    proba = other.predict_proba(X)
    log_odds = np.log(proba[:, 1]) - np.log(proba[:, 0])
    rows = np.flatnonzero(X.presence.all(axis=1).to_numpy())
    np.testing.assert_allclose(contributions["signal"].to_numpy()[rows], log_odds[rows])
    np.testing.assert_allclose(contributions["noise"].to_numpy()[rows], 0.0)
    # a pipeline ending in the classifier explains through its decision_function
    pipeline = make_pipeline(ModalityTransformer([("signal", StandardScaler())]),
                             fast_clf()).fit(X, y)
    through = modality_contributions(pipeline, X)
    assert through.shape == (80, 2)
    assert (through["signal"][~X.present("signal")] == 0.0).all()


def test_contributions_keep_the_patients_labels_of_multimodal_data():
    X, y = make_multimodal(n=30, missing=False)
    ids = [f"patient{i}" for i in range(30)]
    frames = {"table": pd.DataFrame(X["table"], index=ids), "image": X["image"]}
    clf = fast_clf().fit(frames, y)
    data = MultimodalData(frames)
    contributions = modality_contributions(clf, data[5:9])
    assert list(contributions.index) == ids[5:9]
