"""MultimodalFusionRegressor: a continuous target on the shared engine."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST
from numpy.testing import assert_allclose
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.preprocessing import StandardScaler

import mmfusion_sklearn
from mmfusion_sklearn import (
    MultimodalData,
    MultimodalFusionClassifier,
    MultimodalFusionRegressor,
)
from mmfusion_sklearn._torch.fusion import LinearLogits
from mmfusion_sklearn._torch.linear import fit_linear_path
from mmfusion_sklearn._torch.tasks import ClassificationTask, RegressionTask
from mmfusion_sklearn.metrics import (
    missing_modality_report,
    modality_contributions,
    modality_importance,
)


def make_regression(n=80, seed=0, scale=1.0, offset=0.0, missing=True):
    """Two modalities: a table (4 columns, two informative) and 8x8 images whose
    brightness carries a third signal; every 5th image and every 7th table row missing."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(n, 4))
    hidden = rng.normal(size=n)
    images = [rng.normal(size=(8, 8)) * 0.3 + hidden[i] for i in range(n)]
    y = 2.0 * table[:, 0] - table[:, 1] + 1.5 * hidden + 0.1 * rng.normal(size=n)
    if missing:
        table[3::7] = np.nan
        for i in range(0, n, 5):
            if i % 7 != 3:  # never both missing
                images[i] = None
    return {"table": table, "image": images}, offset + scale * y


def fast_reg(**params):
    return MultimodalFusionRegressor(**{**FAST, **params})


def test_fits_and_predicts_in_the_target_units_whatever_the_scale():
    X, y = make_regression()
    small = fast_reg().fit(X, y)
    large = fast_reg().fit(X, y * 1000.0 + 5e6)
    # standardised inside fit: the same model, predictions in each target's units
    assert_allclose(large.predict(X), small.predict(X) * 1000.0 + 5e6, rtol=1e-6)
    assert small.predict(X).shape == (80,)
    assert small.predict(X).dtype == np.float64


def test_learns_the_signal_and_scores_r2():
    X, y = make_regression(n=300, seed=1, missing=False)
    reg = fast_reg(max_epochs=40, early_stopping=True).fit(
        {"table": X["table"][:200], "image": X["image"][:200]}, y[:200])
    test = {"table": X["table"][200:], "image": X["image"][200:]}
    assert reg.score(test, y[200:]) > 0.8
    # a modality withheld at prediction leaves a usable model (its token stands in)
    assert reg.score({"table": test["table"]}, y[200:]) > 0.3


def test_history_names_the_task_and_its_full_input_loss():
    X, y = make_regression()
    assert MultimodalFusionRegressor().contrastive is None  # off by default (measured)
    reg = fast_reg(early_stopping=True, pretrain_epochs=1, contrastive="fused").fit(X, y)
    assert set(reg.history_["stage"]) == {"contrastive", "regression"}
    task_rows = reg.history_[reg.history_["stage"] == "regression"]
    assert "pooled_valid_squared_error" in reg.history_.columns
    assert "pooled_valid_log_loss" not in reg.history_.columns
    assert np.isfinite(task_rows["pooled_valid_squared_error"]).all()
    # without classes the contrastive stage has no same-class pairs of two samples
    contrastive = reg.history_[reg.history_["stage"] == "contrastive"]
    assert contrastive["same_class_cosine"].isna().all()


def test_a_constant_target_is_predicted_as_that_constant():
    X, _ = make_regression()
    reg = fast_reg().fit(X, np.full(80, 7.5))
    assert_allclose(reg.predict(X), 7.5)


@pytest.mark.parametrize("y, match", [
    (np.r_[np.nan, np.ones(79)], r"y must be finite; it holds nan at rows 0"),
    (np.r_[np.ones(79), np.inf], r"y must be finite; it holds inf at rows 79"),
    (np.array(["a", "b"] * 40), r"needs a numeric target; y holds values of dtype <U1"),
    (np.array(["1.5"] * 80, dtype=object), r"needs a numeric target.*dtype object"),
    (np.ones((80, 2)), r"predicts one target; y has 2 columns"),
])
def test_bad_targets_are_refused_with_the_reason(y, match):
    X, _ = make_regression()
    before = y.copy()
    with pytest.raises(ValueError, match=match):
        fast_reg().fit(X, y)
    np.testing.assert_array_equal(y, before)  # never mutated


def test_a_survival_target_is_refused_by_both_estimators():
    X, _ = make_regression()
    y = np.array([(bool(i % 2), float(i)) for i in range(80)],
                 dtype=[("event", bool), ("time", float)])
    with pytest.raises(ValueError, match="structured array .* survival target"):
        fast_reg().fit(X, y)
    with pytest.raises(ValueError, match="structured array .* survival target, not class"):
        MultimodalFusionClassifier(**FAST).fit(X, y)


def test_an_object_array_of_numbers_is_a_numeric_target():
    X, y = make_regression()
    reg = fast_reg().fit(X, y.astype(object))
    assert_allclose(reg.predict(X), fast_reg().fit(X, y).predict(X))


def test_only_the_ratios_of_sample_weights_matter_and_weights_count():
    X, y = make_regression()
    weight = np.where(np.arange(80) < 40, 1.0, 3.0)
    base = fast_reg().fit(X, y, sample_weight=weight).predict(X)
    scaled = fast_reg().fit(X, y, sample_weight=weight * 10).predict(X)
    assert_allclose(scaled, base, atol=1e-4 * np.std(y))
    unweighted = fast_reg().fit(X, y).predict(X)
    assert np.abs(unweighted - base).max() > 1e-3


def test_missing_modalities_at_fit_and_prediction():
    X, y = make_regression()
    reg = fast_reg().fit(X, y)
    records = [{"table": X["table"][i]} if i % 2 else {"image": X["image"][i]}
               for i in range(10) if X["image"][i] is not None
               and not np.isnan(X["table"][i]).all()]
    assert np.isfinite(reg.predict(records)).all()
    with pytest.raises(ValueError, match="no modality at all"):
        reg.predict({"table": np.full((2, 4), np.nan)})


def test_save_load_and_pickle_give_identical_predictions(tmp_path):
    X, y = make_regression()
    reg = fast_reg(ensemble_size=2).fit(X, y * 100 + 3)
    reg.save(tmp_path / "model")
    loaded = mmfusion_sklearn.load(tmp_path / "model")
    assert isinstance(loaded, MultimodalFusionRegressor)
    assert_allclose(loaded.predict(X), reg.predict(X), rtol=0, atol=0)
    assert_allclose(MultimodalFusionRegressor.load(tmp_path / "model").predict(X),
                    reg.predict(X), rtol=0, atol=0)
    assert_allclose(pickle.loads(pickle.dumps(reg)).predict(X), reg.predict(X), atol=0)
    with pytest.raises(ValueError, match="estimator.*MultimodalFusionRegressor"):
        MultimodalFusionClassifier.load(tmp_path / "model")


def test_a_damaged_target_entry_is_refused(tmp_path):
    import json

    X, y = make_regression()
    fast_reg().fit(X, y).save(tmp_path / "model")
    config_path = tmp_path / "model" / "config.json"
    config = json.loads(config_path.read_text())
    config["target"]["scale"] = -1.0
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="target.*scale.*> 0"):
        MultimodalFusionRegressor.load(tmp_path / "model")


def test_model_selection_takes_multimodal_data():
    X, y = make_regression(n=60)
    data = MultimodalData(X)
    scores = cross_val_score(fast_reg(max_epochs=2), data, y, cv=KFold(3))
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = GridSearchCV(fast_reg(max_epochs=2), {"lr": [1e-2, 3e-3]}, cv=2).fit(data, y)
    assert search.best_params_["lr"] in (1e-2, 3e-3)


def test_reports_use_r2_and_contributions_are_prediction_differences():
    X, y = make_regression()
    reg = fast_reg().fit(X, y)
    report = missing_modality_report(reg, X, y)
    assert list(report["modalities"]) == ["table+image", "table", "image"]
    assert "r2" in report.columns and np.isfinite(report["r2"]).all()
    importance = modality_importance(reg, X, y)
    assert set(importance["modality"]) == {"table", "image"}
    contributions = modality_contributions(reg, X)
    assert contributions.shape == (80, 2)
    # sample 0 has no image: the image contributes 0, the table alone is NaN
    assert contributions.loc[0, "image"] == 0.0 and np.isnan(contributions.loc[0, "table"])
    # by hand for sample 1: full prediction minus the prediction without the image
    full = reg.predict({"table": X["table"][1:2], "image": X["image"][1:2]})
    without = reg.predict({"table": X["table"][1:2]})
    assert contributions.loc[1, "image"] == pytest.approx(float(full[0] - without[0]))
    with pytest.raises(ValueError, match="'target' parameter picks a class"):
        modality_contributions(reg, X, target=1)


def test_dataframe_input_keeps_its_index_in_contributions():
    X, y = make_regression(missing=False)
    frame = pd.DataFrame(X["table"], columns=list("abcd"),
                         index=[f"patient{i}" for i in range(80)])
    reg = fast_reg(modalities={"labs": ["a", "b"], "vitals": ["c", "d"]}).fit(frame, y)
    contributions = modality_contributions(reg, frame)
    assert list(contributions.index[:2]) == ["patient0", "patient1"]
    assert list(contributions.columns) == ["labs", "vitals"]


def test_displays_draw_a_regressor():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from mmfusion_sklearn.plotting import (
        MissingModalityDisplay,
        ModalityImportanceDisplay,
        TrainingHistoryDisplay,
    )

    X, y = make_regression()
    reg = fast_reg(early_stopping=True).fit(X, y)
    missing = MissingModalityDisplay.from_estimator(reg, X, y)
    assert "R²" in missing.ax_.get_xlabel() + missing.ax_.get_ylabel() + missing.ax_.get_title()
    ModalityImportanceDisplay.from_estimator(reg, X, y)
    TrainingHistoryDisplay.from_estimator(reg)


def test_tune_defaults_to_r2_for_a_regressor(tmp_path):
    pytest.importorskip("optuna")
    from mmfusion_sklearn.tuning import tune

    X, y = make_regression(n=60)
    result = tune(fast_reg(max_epochs=2, early_stopping=True), MultimodalData(X), y,
                  n_trials=2, cv=2, storage=f"sqlite:///{tmp_path / 'study.db'}",
                  random_state=0)
    assert np.isfinite(result.best_score_)
    assert isinstance(result.best_estimator_, MultimodalFusionRegressor)
    # every complete trial's value is an R² (at most 1), not a classifier's score
    values = [t.value for t in result.study.trials if t.value is not None]
    assert values and max(values) <= 1.0


# -- the torch task -------------------------------------------------------------------
def test_regression_task_loss_is_the_weighted_squared_error_over_present_rows():
    task = RegressionTask()
    outputs = torch.tensor([[1.0], [2.0], [4.0]])
    y = torch.tensor([0.0, 2.0, 2.0])
    weight = torch.tensor([1.0, 1.0, 2.0])
    assert float(task.loss(outputs, y)) == pytest.approx((1 + 0 + 4) / 3)
    assert float(task.loss(outputs, y, weight)) == pytest.approx((1 + 0 + 8) / 4)
    mask = torch.tensor([False, True, True])
    assert float(task.loss(outputs, y, weight, mask)) == pytest.approx(8 / 3)
    assert float(task.loss(outputs, y, weight, torch.zeros(3, dtype=torch.bool))) == 0.0
    # SMD: the full input plus each single-modality configuration, absent rows excluded
    single = torch.stack([outputs, outputs + 1])
    present = torch.tensor([[True, False], [True, True], [True, True]])
    expected = task.loss(outputs, y) + task.loss(single[0], y) + task.loss(
        single[1], y, None, present[:, 1])
    assert float(task.smd_loss(outputs, single, y, present, None, 1.0)) == pytest.approx(
        float(expected))
    # the batched per-configuration losses equal the one-by-one ones
    w = torch.ones(2, 3)
    assert_allclose(task.configuration_losses(single, y, w).numpy(),
                    [float(task.loss(single[0], y)), float(task.loss(single[1], y))],
                    rtol=1e-6)


def test_members_are_averaged_by_the_task():
    outputs = [torch.tensor([[0.0, 2.0]]), torch.tensor([[2.0, 0.0]])]
    log_proba = ClassificationTask(2).combine(outputs)
    assert_allclose(torch.exp(log_proba).numpy(), [[0.5, 0.5]], atol=1e-12)  # mean proba
    mean = RegressionTask().combine([torch.tensor([[1.0]]), torch.tensor([[3.0]])])
    assert mean.dtype == torch.float64 and float(mean) == 2.0


def test_contrastive_positives_are_classes_or_the_same_sample():
    y = torch.tensor([1, 1, 0])
    assert torch.equal(ClassificationTask(2).contrastive_labels(y), y)
    assert torch.equal(RegressionTask().contrastive_labels(torch.tensor([0.3, 0.3, 1.0])),
                       torch.arange(3))


def test_the_linear_path_with_the_regression_task_is_ridge():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)) * [1, 10, 0.1, 1, 3] + 2
    y = x @ [1.0, 0.1, 5.0, 0.0, -0.3] + rng.normal(size=120)
    y = (y - y.mean()) / y.std()
    C = 0.05
    linear = LinearLogits(["t"], {"t": 5}, 1)
    inputs = {"t": torch.tensor(x, dtype=torch.float32)}
    present = torch.ones(120, 1, dtype=torch.bool)
    weight = torch.ones(120)
    task = RegressionTask()
    fit_linear_path(linear, inputs, present, torch.tensor(y, dtype=torch.float32), weight,
                    task.linear_l2(C, weight), configurations=False, max_iter=500, task=task)
    with torch.no_grad():
        ours = linear.combine(linear(inputs, present), present)[:, 0].numpy()
    ridge = Ridge(alpha=1 / C).fit(StandardScaler().fit_transform(x), y)
    assert_allclose(ours, ridge.predict(StandardScaler().fit_transform(x)), atol=1e-3)


def test_the_history_display_draws_the_regression_stage_and_its_best_epoch():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from mmfusion_sklearn.plotting import TrainingHistoryDisplay

    X, y = make_regression()
    reg = fast_reg(early_stopping=True, pretrain_epochs=1, contrastive="fused").fit(X, y)
    display = TrainingHistoryDisplay.from_estimator(reg)
    assert list(display.lines_) == ["contrastive", "regression"]
    assert display.best_epoch_line_ is not None
    assert "Regression stage" in display.ax_.get_title()
