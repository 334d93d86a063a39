"""calibration="temperature": one temperature per subset of modalities."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmfusion_sklearn import MultimodalFusionClassifier
from mmfusion_sklearn._training.calibration import (
    LOG_T_PRIOR_SD,
    MAX_ENUMERATED_MODALITIES,
    TemperatureTable,
    calibration_subsets,
    fit_temperature,
)
from mmfusion_sklearn.metrics import restrict_modalities

SETTINGS = {"embed_dim": 8, "max_epochs": 6, "pretrain_epochs": 0, "batch_size": 32,
            "lr": 1e-2, "device": "cpu", "random_state": 0}


def three_modalities(n=150, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = {"a": rng.normal(size=(n, 4)) + 1.2 * y[:, None],
         "b": rng.normal(size=(n, 3)) - 0.6 * y[:, None],
         "c": rng.normal(size=(n, 2))}
    X["b"][::4] = np.nan
    return X, y


def test_fit_temperature_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    n = 4000
    logit = rng.normal(scale=2.0, size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)  # calibrated at T = 1
    overconfident = 3.0 * np.stack([-logit / 2, logit / 2], axis=1)
    log_proba = torch.log_softmax(torch.from_numpy(overconfident), dim=1).numpy()
    assert fit_temperature(log_proba, y, np.ones(n)) == pytest.approx(3.0, rel=0.1)
    # the prior keeps a temperature from a handful of rows near 1
    few = fit_temperature(log_proba[:5], y[:5], np.ones(5))
    assert abs(np.log(few)) < abs(np.log(fit_temperature(log_proba[:500], y[:500],
                                                         np.ones(500)))) + 1.0
    assert fit_temperature(log_proba[:0], y[:0], np.ones(0)) == 1.0
    # rescaling the weights does not move it
    assert fit_temperature(log_proba[:300], y[:300], np.full(300, 7.0)) == pytest.approx(
        fit_temperature(log_proba[:300], y[:300], np.ones(300)), rel=1e-3)


def test_subsets_are_every_non_empty_subset_up_to_the_limit():
    assert calibration_subsets(3, np.ones((2, 3), bool)) == [
        (True, True, True), (True, True, False), (True, False, True), (False, True, True),
        (True, False, False), (False, True, False), (False, False, True)]
    m = MAX_ENUMERATED_MODALITIES + 2
    observed = np.zeros((3, m), bool)
    observed[:, :3] = True
    patterns = calibration_subsets(m, observed)
    assert len(patterns) == 1 + m + 1  # full, singletons, the observed pattern
    assert tuple([True] * 3 + [False] * (m - 3)) in patterns


def test_temperature_table_looks_up_rows_by_their_modalities():
    table = TemperatureTable([(True, True), (True, False)], [2.0, 0.5], default=1.5)
    present = np.array([[True, True], [True, False], [False, True]])
    np.testing.assert_allclose(table(present), [2.0, 0.5, 1.5])
    log_proba = np.log(np.array([[0.9, 0.1]] * 3))
    scaled = np.exp(table.scale(log_proba, present))
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    assert scaled[0, 0] < 0.9 < scaled[1, 0]  # T > 1 softens, T < 1 sharpens
    assert (scaled.argmax(axis=1) == 0).all()


@pytest.mark.parametrize("ensemble_size", [1, 3])
def test_temperatures_change_probabilities_never_labels(ensemble_size):
    X, y = three_modalities()
    plain = MultimodalFusionClassifier(**SETTINGS, ensemble_size=ensemble_size).fit(X, y)
    calibrated = MultimodalFusionClassifier(**SETTINGS, ensemble_size=ensemble_size,
                                            calibration="temperature").fit(X, y)
    table = calibrated.temperatures_
    assert table["modalities"].tolist() == ["a+b+c", "a+b", "a+c", "b+c", "a", "b", "c"]
    assert (table["temperature"] > 0).all()
    assert table["temperature"].nunique() > 1  # one per subset, not one for all
    # rows held out: 10% of 150 with one member, every row with three
    held_out = 15 if ensemble_size == 1 else 150
    assert table.loc[table["modalities"] == "a", "n_samples"].item() == held_out
    assert table.loc[table["modalities"] == "b", "n_samples"].item() < held_out  # b missing
    for subset in (["a", "b", "c"], ["a"], ["b", "c"], ["c"]):
        part = restrict_modalities(X, subset)
        keep = part.presence.to_numpy().any(axis=1)
        part = part[keep]
        np.testing.assert_array_equal(plain.predict(part), calibrated.predict(part))
        p, q = plain.predict_proba(part), calibrated.predict_proba(part)
        assert not np.allclose(p, q)
        t = table.set_index("modalities").loc["+".join(subset), "temperature"]
        # each row is the plain model's log-probabilities divided by its temperature
        expected = torch.log_softmax(torch.from_numpy(np.log(p) / t), dim=1).numpy()
        rows = part.presence.to_numpy().all(axis=1)
        np.testing.assert_allclose(np.log(q)[rows], expected[rows], atol=1e-6)
        margin = calibrated.decision_function(part)
        np.testing.assert_allclose(margin, np.log(q[:, 1]) - np.log(q[:, 0]), atol=1e-6)


def held_out_rows(clf, y):
    """The rows a one-member fit held out (its split replayed from random_state)."""
    from sklearn.utils import check_random_state

    rng = check_random_state(clf.random_state)
    split_seed, _ = rng.randint(np.iinfo(np.int32).max, size=2)
    _, y_index = np.unique(y, return_inverse=True)
    (plan,) = clf._member_plans(y_index, int(split_seed), rng)
    return plan.valid_index.numpy()


def test_each_temperature_minimises_the_held_out_log_loss_of_its_subset():
    X, y = three_modalities(n=300, seed=3)
    params = {**SETTINGS, "ensemble_size": 1, "validation_fraction": 0.3}
    plain = MultimodalFusionClassifier(**params).fit(X, y)
    calibrated = MultimodalFusionClassifier(**params, calibration="temperature").fit(X, y)
    rows = held_out_rows(calibrated, y)
    assert len(rows) == 90
    temperatures = calibrated.temperatures_.set_index("modalities")["temperature"]
    for subset in (["a", "b", "c"], ["a", "c"], ["b"], ["c"]):
        part = restrict_modalities(X, subset)[rows]
        keep = part.presence.to_numpy().all(axis=1)  # the rows that have the whole subset
        log_p = torch.from_numpy(np.log(plain.predict_proba(part[keep])))
        target = torch.from_numpy(np.searchsorted(plain.classes_, y[rows][keep]))

        def nll(t, log_p=log_p, target=target):
            return float(torch.nn.functional.nll_loss(torch.log_softmax(log_p / t, 1), target))

        t = temperatures["+".join(subset)]
        assert calibrated.temperatures_.set_index("modalities").loc[
            "+".join(subset), "n_samples"] == keep.sum()
        count = int(keep.sum())

        def objective(t, nll=nll, n=count):  # the summed loss plus the prior
            return n * nll(t) + 0.5 * (np.log(t) / LOG_T_PRIOR_SD) ** 2

        assert objective(t) <= min(objective(0.8 * t), objective(1.25 * t)) + 1e-6
        assert objective(t) <= objective(1.0) + 1e-6


def test_calibration_needs_held_out_rows():
    X, y = three_modalities(n=40)
    clf = MultimodalFusionClassifier(**SETTINGS, early_stopping=False,
                                     calibration="temperature")
    with pytest.raises(ValueError, match="early_stopping=False does not keep"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="'calibration' parameter"):
        MultimodalFusionClassifier(**SETTINGS, calibration="platt").fit(X, y)


def test_a_refit_without_calibration_drops_the_temperatures():
    X, y = three_modalities(n=60)
    clf = MultimodalFusionClassifier(**SETTINGS, ensemble_size=1,
                                     calibration="temperature").fit(X, y)
    assert hasattr(clf, "temperatures_")
    clf.set_params(calibration=None).fit(X, y)
    assert not hasattr(clf, "temperatures_")


def test_temperatures_are_saved_loaded_and_checked(tmp_path):
    X, y = three_modalities(n=60)
    clf = MultimodalFusionClassifier(**SETTINGS, ensemble_size=1,
                                     calibration="temperature").fit(X, y)
    clf.save(tmp_path / "m")
    loaded = MultimodalFusionClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-7)
    assert loaded.temperatures_.equals(clf.temperatures_)
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["temperatures"]["values"][0] = -1.0
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"temperatures.values\[0\].*positive finite"):
        MultimodalFusionClassifier.load(tmp_path / "m")


def test_multiclass_temperatures_keep_the_labels():
    rng = np.random.default_rng(2)
    n = 150
    y = np.array(["a", "b", "c"])[np.arange(n) % 3]
    codes = np.searchsorted(["a", "b", "c"], y)
    X = {"t": rng.normal(size=(n, 3)) + np.eye(3)[codes], "u": rng.normal(size=(n, 2))}
    params = {**SETTINGS, "ensemble_size": 1}
    plain = MultimodalFusionClassifier(**params).fit(X, y)
    calibrated = MultimodalFusionClassifier(**params, calibration="temperature").fit(X, y)
    assert calibrated.temperatures_["modalities"].tolist() == ["t+u", "t", "u"]
    np.testing.assert_array_equal(plain.predict(X), calibrated.predict(X))
    proba = calibrated.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert not np.allclose(proba, plain.predict_proba(X))
