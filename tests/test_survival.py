"""MultimodalFusionSurvivalAnalysis: censored time-to-event on the shared engine."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

import mmfusion_sklearn
from mmfusion_sklearn import (
    MultimodalData,
    MultimodalFusionClassifier,
    MultimodalFusionRegressor,
    MultimodalFusionSurvivalAnalysis,
)
from mmfusion_sklearn._torch.survival import breslow_baseline, concordance_index
from mmfusion_sklearn.metrics import (
    missing_modality_report,
    modality_contributions,
    modality_importance,
)

DTYPE = [("event", bool), ("time", float)]


def make_survival(n=120, seed=0, missing=True, censoring=0.3):
    """Two modalities that both carry the log-hazard: a table (4 columns, two
    informative) and 8x8 images whose brightness carries a third part; exponential
    times, a random share censored earlier; every 5th image and 7th table row missing."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(n, 4))
    hidden = rng.normal(size=n)
    images = [rng.normal(size=(8, 8)) * 0.3 + hidden[i] for i in range(n)]
    log_hazard = 1.0 * table[:, 0] - 0.7 * table[:, 1] + 0.8 * hidden
    time = rng.exponential(np.exp(-log_hazard))
    censored = rng.random(n) < censoring
    time = np.where(censored, time * rng.random(n), time)
    y = np.array(list(zip(~censored, time)), dtype=DTYPE)
    if missing:
        table[3::7] = np.nan
        for i in range(0, n, 5):
            if i % 7 != 3:  # never both missing
                images[i] = None
    return {"table": table, "image": images}, y, log_hazard


def fast_surv(**params):
    return MultimodalFusionSurvivalAnalysis(**{**FAST, **params})


# -- fit, predict, score -----------------------------------------------------------------
def test_learns_the_risk_and_scores_harrells_c():
    X, y, log_hazard = make_survival(n=200)
    surv = fast_surv(max_epochs=20).fit(X, y)
    risk = surv.predict(X)
    assert risk.shape == (200,) and risk.dtype == np.float64
    c = surv.score(X, y)
    assert c == concordance_index(y["time"], y["event"], risk)
    assert c > 0.7
    # and on new patients of the same cohort
    X_new, y_new, _ = make_survival(n=200, seed=1)
    assert surv.score(X_new, y_new) > 0.65


def test_scikit_survival_gives_the_same_concordance():
    sksurv_metrics = pytest.importorskip("sksurv.metrics")
    X, y, _ = make_survival()
    surv = fast_surv().fit(X, y)
    theirs = sksurv_metrics.concordance_index_censored(y["event"], y["time"],
                                                       surv.predict(X))[0]
    assert surv.score(X, y) == pytest.approx(theirs, abs=1e-12)


def test_survival_functions_are_step_functions_over_the_event_times():
    X, y, _ = make_survival()
    surv = fast_surv(ensemble_size=3).fit(X, y)
    times = np.unique(y["time"][y["event"]])
    assert_allclose(surv.unique_times_, times)
    curves = surv.predict_survival_function(X)
    assert curves.shape == (120,) and curves.dtype == object
    array = surv.predict_survival_function(X, return_array=True)
    assert array.shape == (120, len(times))
    assert_allclose(np.vstack([f.y for f in curves]), array)
    assert ((array > 0) & (array <= 1)).all()
    assert (np.diff(array, axis=1) <= 1e-12).all()  # non-increasing
    # a step function: 1 before the first event, constant between events
    f = curves[0]
    assert f(0.0) == 1.0 and f(times[0] / 2) == 1.0
    assert f(times[3]) == f.y[3] and f((times[3] + times[4]) / 2) == f.y[3]
    assert f(y["time"].max()) == f.y[-1]
    with pytest.raises(ValueError, match="domain"):
        f(y["time"].max() * 2)
    hazards = surv.predict_cumulative_hazard_function(X, return_array=True)
    assert_allclose(hazards, -np.log(array), rtol=1e-10, atol=1e-12)
    assert surv.predict_cumulative_hazard_function(X)[0](0.0) == 0.0


def test_curves_mix_the_members_each_with_its_breslow_baseline():
    # members differing by their seeds only (no held-out rows): each member's baseline
    # on all training rows, no calibration slope
    X, y, _ = make_survival()
    surv = fast_surv(ensemble_size=3).fit(X, y)
    assert surv._slope == 1.0
    risks = surv._member_risks(X)
    assert risks.shape == (120, 3)
    assert_allclose(surv.predict(X), risks.mean(axis=1))
    # member k's baseline: Breslow's estimator on all training rows with its risks
    expected = []
    for k in range(3):
        times, base = breslow_baseline(risks[:, k], y["time"], y["event"])
        assert_allclose(times, surv.unique_times_)
        expected.append(np.exp(-base[None, :] * np.exp(risks[:, k:k + 1])))
    assert_allclose(surv.predict_survival_function(X, return_array=True),
                    np.mean(expected, axis=0), rtol=1e-6)


def test_cross_fitted_members_calibrate_their_curves_on_out_of_fold_scores():
    from mmfusion_sklearn._torch.survival_calibration import calibration_slope

    X, y, _ = make_survival(n=200, missing=False)
    X = {"a": X["table"][:, :2], "b": X["table"][:, 2:]}
    surv = fast_surv(early_stopping=True, max_epochs=10, ensemble_size=4).fit(X, y)
    # the folds, as the fit drew them (the same seeds)
    from mmfusion_sklearn._training.batches import FusionDataset  # noqa: F401

    risks = surv._member_risks(X)
    offsets = risks.mean(axis=0)
    # rebuild the out-of-fold scores from the members' held-out rows
    plans = surv._member_plans(y["event"].astype(np.int64),
                               *_split_seeds(surv.random_state))
    out_of_fold = np.zeros(200)
    for k, plan in enumerate(plans):
        rows = plan.valid_index.numpy()
        out_of_fold[rows] = risks[rows, k] - offsets[k]
    slope = calibration_slope(out_of_fold, y["time"], y["event"])
    assert surv._slope == pytest.approx(slope, rel=1e-5) and 0 < slope
    times, base = breslow_baseline(slope * out_of_fold, y["time"], y["event"])
    expected = np.mean([np.exp(-base[None, :] * np.exp(slope * (risks[:, k:k + 1]
                                                                  - offsets[k])))
                        for k in range(4)], axis=0)
    assert_allclose(surv.predict_survival_function(X, return_array=True), expected,
                    rtol=1e-5)


def _split_seeds(random_state):
    """The split seed and RandomState that ``fit`` hands to ``_member_plans``."""
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    split_seed, _ = rng.randint(np.iinfo(np.int32).max, size=2)
    return int(split_seed), rng


def test_one_member_matches_a_cox_model_with_breslows_baseline():
    X, y, _ = make_survival(missing=False)
    surv = fast_surv(ensemble_size=1).fit(X, y)
    risk = surv.predict(X)
    times, base = breslow_baseline(risk, y["time"], y["event"])
    assert_allclose(surv.predict_cumulative_hazard_function(X, return_array=True),
                    base[None, :] * np.exp(risk)[:, None], rtol=1e-6)


def test_history_names_the_task_and_the_cox_loss():
    X, y, _ = make_survival()
    surv = fast_surv(early_stopping=True, max_epochs=3).fit(X, y)
    assert set(surv.history_["stage"]) == {"survival"}
    assert "pooled_valid_cox_loss" in surv.history_.columns
    assert np.isfinite(surv.history_["pooled_valid_cox_loss"]).all()


def test_fields_are_read_by_position_whatever_their_names():
    X, y, _ = make_survival()
    renamed = y.astype([("Status", bool), ("Survival_in_days", float)])
    a = fast_surv().fit(X, y).predict(X)
    b = fast_surv().fit(X, renamed).predict(X)
    assert_allclose(a, b, rtol=0, atol=0)
    as_numbers = np.array(list(zip(y["event"].astype(float), y["time"])),
                          dtype=[("e", float), ("t", float)])
    assert_allclose(fast_surv().fit(X, as_numbers).predict(X), a, rtol=0, atol=0)


def _structured(event, time, dtype=None):
    dtype = dtype or [("event", np.asarray(event).dtype), ("time", np.asarray(time).dtype)]
    return np.array(list(zip(event, time)), dtype=dtype)


@pytest.mark.parametrize("make_y, match", [
    (lambda y: y["time"], "structured array of an event indicator and a time"),
    (lambda y: np.column_stack([y["event"], y["time"]]), "structured array"),
    (lambda y: _structured(y["event"], np.where(np.arange(120) == 5, -1.0, y["time"])),
     r"must be >= 0.*-1.0 at rows 5\b"),
    (lambda y: _structured(y["event"], np.where(np.arange(120) == 7, np.nan, y["time"])),
     r"must be finite.*nan at rows 7\b"),
    (lambda y: _structured(np.zeros(120, bool), y["time"]), "no event"),
    (lambda y: _structured(np.where(np.arange(120) == 2, 0.5, 1.0), y["time"]),
     r"must be bool or 0/1.*0.5 at rows 2\b"),
    (lambda y: _structured(y["time"], y["event"]), r"first field.*must be bool or 0/1"),
    (lambda y: np.array([(e, t, 1) for e, t in y], dtype=DTYPE + [("x", int)]),
     "exactly 2 fields"),
    (lambda y: _structured(y["event"], y["time"].astype(str)), "must be numeric"),
])
def test_bad_targets_are_refused_with_the_reason(make_y, match):
    X, y, _ = make_survival()
    bad = make_y(y)
    before = bad.copy()
    surv = fast_surv()
    with pytest.raises(ValueError, match=match):
        surv.fit(X, bad)
    assert not hasattr(surv, "unique_times_")  # nothing half-fitted
    assert bad.tobytes() == before.tobytes()  # never mutated


def test_the_other_estimators_point_to_the_survival_estimator():
    X, y, _ = make_survival()
    for cls in (MultimodalFusionClassifier, MultimodalFusionRegressor):
        with pytest.raises(ValueError, match="MultimodalFusionSurvivalAnalysis"):
            cls(**FAST).fit(X, y)


def test_weights_of_events_must_leave_one_event():
    X, y, _ = make_survival()
    weight = np.where(y["event"], 0.0, 1.0)
    with pytest.raises(ValueError, match="sample_weight is 0 for every sample with an event"):
        fast_surv().fit(X, y, sample_weight=weight)


def test_only_the_ratios_of_sample_weights_matter_and_weights_count():
    X, y, _ = make_survival()
    weight = np.where(np.arange(120) < 60, 1.0, 3.0)
    base = fast_surv().fit(X, y, sample_weight=weight)
    scaled = fast_surv().fit(X, y, sample_weight=weight * 10)
    assert_allclose(scaled.predict(X), base.predict(X), atol=1e-4)
    assert_allclose(scaled.predict_survival_function(X, return_array=True),
                    base.predict_survival_function(X, return_array=True), atol=1e-4)
    unweighted = fast_surv().fit(X, y).predict(X)
    assert np.abs(unweighted - base.predict(X)).max() > 1e-3


def test_few_events_and_tied_times_train_to_finite_outputs():
    # 150 patients, 40 events, times rounded to months (many ties), cross-fitted members
    X, y, _ = make_survival(n=150, missing=False)
    X = {"a": X["table"][:, :2], "b": X["table"][:, 2:]}  # tables: 5 members by default
    rng = np.random.default_rng(3)
    event = np.zeros(150, bool)
    event[rng.choice(150, 40, replace=False)] = True
    y = _structured(event, np.ceil(y["time"] * 12) / 12)
    surv = fast_surv(early_stopping=True, ensemble_size="auto", max_epochs=5).fit(X, y)
    assert surv.ensemble_size_ == 5
    assert np.isfinite(surv.history_["pooled_valid_cox_loss"]).all()
    assert np.isfinite(surv.predict(X)).all()
    assert len(surv.unique_times_) == len(np.unique(y["time"][event]))


def test_missing_modalities_at_fit_and_prediction():
    X, y, _ = make_survival()
    surv = fast_surv().fit(X, y)
    records = [{"table": X["table"][i]} if i % 2 else {"image": X["image"][i]}
               for i in range(10) if X["image"][i] is not None
               and not np.isnan(X["table"][i]).all()]
    assert np.isfinite(surv.predict(records)).all()
    assert surv.predict_survival_function(records, return_array=True).shape[0] == len(records)
    with pytest.raises(ValueError, match="no modality at all"):
        surv.predict({"table": np.full((2, 4), np.nan)})


def test_return_array_must_be_a_bool():
    X, y, _ = make_survival()
    surv = fast_surv().fit(X, y)
    with pytest.raises(ValueError, match="'return_array' parameter must be True or False"):
        surv.predict_survival_function(X, return_array="yes")


# -- scikit-survival's metrics and scorers ------------------------------------------------
def test_scikit_survival_metrics_take_the_outputs():
    metrics = pytest.importorskip("sksurv.metrics")
    X, y, _ = make_survival(n=200)
    X_test, y_test, _ = make_survival(n=150, seed=1)
    # inverse-probability-of-censoring weights need test times within the training
    # follow-up (the censoring survival is 0 after the last training time)
    keep = np.flatnonzero(y_test["time"] < np.quantile(y["time"], 0.9))[:120]
    X_test = {k: [v[i] for i in keep] if isinstance(v, list) else v[keep]
              for k, v in X_test.items()}
    y_test = y_test[keep]
    surv = fast_surv(max_epochs=10).fit(X, y)
    risk = surv.predict(X_test)
    c_uno = metrics.concordance_index_ipcw(y, y_test, risk,
                                           tau=np.quantile(y["time"], 0.8))[0]
    assert 0.6 < c_uno <= 1
    times = np.quantile(y_test["time"][y_test["event"]], [0.25, 0.5, 0.75])
    _, mean_auc = metrics.cumulative_dynamic_auc(y, y_test, risk, times)
    assert 0.6 < mean_auc <= 1
    curves = surv.predict_survival_function(X_test)
    grid = np.linspace(np.quantile(y_test["time"], 0.1), np.quantile(y_test["time"], 0.7), 15)
    ibs = metrics.integrated_brier_score(y, y_test, np.vstack([f(grid) for f in curves]), grid)
    # better than the same Kaplan-Meier curve for everyone
    from sksurv.nonparametric import kaplan_meier_estimator

    km_times, km = kaplan_meier_estimator(y["event"], y["time"])
    km_at = km[np.searchsorted(km_times, grid, side="right") - 1]
    ibs_km = metrics.integrated_brier_score(y, y_test, np.tile(km_at, (120, 1)), grid)
    assert ibs < ibs_km


def test_an_integrated_brier_score_scorer_inside_grid_search():
    metrics = pytest.importorskip("sksurv.metrics")
    X, y, _ = make_survival(n=120, missing=False)
    data = MultimodalData(X)
    times = np.quantile(y["time"], [0.2, 0.4, 0.6])
    scorer = metrics.as_integrated_brier_score_scorer(fast_surv(max_epochs=2), times)
    # scikit-survival needs every test time below the last training time: the patient
    # followed longest trains in both folds
    last = int(np.argmax(y["time"]))
    rows = np.setdiff1d(np.arange(120), [last])
    folds = [(np.setdiff1d(np.arange(120), test), test) for test in (rows[::2], rows[1::2])]
    search = GridSearchCV(scorer, {"estimator__lr": [1e-2, 3e-3]}, cv=folds).fit(data, y)
    assert search.best_params_["estimator__lr"] in (1e-2, 3e-3)
    assert -1 < search.best_score_ < 0  # minus an integrated Brier score


def test_model_selection_takes_multimodal_data():
    X, y, _ = make_survival(n=90)
    data = MultimodalData(X)
    scores = cross_val_score(fast_surv(max_epochs=2), data, y, cv=KFold(3))
    assert scores.shape == (3,) and ((scores > 0) & (scores < 1)).all()
    search = GridSearchCV(fast_surv(max_epochs=2), {"lr": [1e-2, 3e-3]}, cv=2).fit(data, y)
    assert search.best_params_["lr"] in (1e-2, 3e-3)
    assert clone(search.best_estimator_).get_params()["lr"] == search.best_params_["lr"]


# -- persistence ---------------------------------------------------------------------------
def test_save_load_and_pickle_give_identical_outputs(tmp_path):
    X, y, _ = make_survival()
    surv = fast_surv(ensemble_size=2).fit(X, y)
    surv.save(tmp_path / "model")
    loaded = mmfusion_sklearn.load(tmp_path / "model")
    assert isinstance(loaded, MultimodalFusionSurvivalAnalysis)
    for other in (loaded, MultimodalFusionSurvivalAnalysis.load(tmp_path / "model"),
                  pickle.loads(pickle.dumps(surv))):
        assert_allclose(other.predict(X), surv.predict(X), rtol=0, atol=0)
        assert_allclose(other.predict_survival_function(X, return_array=True),
                        surv.predict_survival_function(X, return_array=True), rtol=0, atol=0)
        assert_allclose(other.unique_times_, surv.unique_times_, rtol=0, atol=0)
    with pytest.raises(ValueError, match="estimator.*MultimodalFusionSurvivalAnalysis"):
        MultimodalFusionRegressor.load(tmp_path / "model")


@pytest.mark.parametrize("damage, match", [
    (lambda s: s.update(unique_times=s["unique_times"][::-1]), "strictly ascending"),
    (lambda s: s.update(cum_baseline=s["cum_baseline"][:1]), r"must hold 2 list\(s\)"),
    (lambda s: s["cum_baseline"][0].__setitem__(0, -1.0), "finite cumulative hazards > 0"),
    (lambda s: s["cum_baseline"][1].reverse(), "non-decreasing"),
    (lambda s: s.update(max_time=0.0), "at least the last event time"),
    (lambda s: s.update(slope=-0.5), "slope.*>= 0"),
    (lambda s: s.pop("max_time"), "survival"),
])
def test_a_damaged_baseline_is_refused(tmp_path, damage, match):
    X, y, _ = make_survival()
    fast_surv(ensemble_size=2).fit(X, y).save(tmp_path / "model")
    config_path = tmp_path / "model" / "config.json"
    config = json.loads(config_path.read_text())
    damage(config["survival"])
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match):
        MultimodalFusionSurvivalAnalysis.load(tmp_path / "model")


# -- reports, tuning, dask -------------------------------------------------------------------
def test_reports_use_the_concordance_index_and_contributions_are_risk_differences():
    X, y, _ = make_survival()
    surv = fast_surv().fit(X, y)
    report = missing_modality_report(surv, X, y)
    assert list(report["modalities"]) == ["table+image", "table", "image"]
    assert "concordance_index" in report.columns
    assert report.loc[0, "concordance_index"] == pytest.approx(surv.score(X, y))
    importance = modality_importance(surv, X, y)
    assert set(importance["modality"]) == {"table", "image"}
    contributions = modality_contributions(surv, X)
    assert contributions.loc[0, "image"] == 0.0 and np.isnan(contributions.loc[0, "table"])
    full = surv.predict({"table": X["table"][1:2], "image": X["image"][1:2]})
    without = surv.predict({"table": X["table"][1:2]})
    assert contributions.loc[1, "image"] == pytest.approx(float(full[0] - without[0]))
    with pytest.raises(ValueError, match="'target' parameter picks a class"):
        modality_contributions(surv, X, target=1)


def test_reports_take_scikit_survival_scorers_by_name_and_as_callables():
    X, y, _ = make_survival()
    surv = fast_surv().fit(X, y)

    def uno(estimator, X_, y_):
        from sksurv.metrics import concordance_index_ipcw

        return concordance_index_ipcw(y, y_, estimator.predict(X_))[0]

    pytest.importorskip("sksurv")
    report = missing_modality_report(surv, X, y, scoring={"uno": uno})
    assert ((report["uno"] > 0.5) & (report["uno"] <= 1)).all()
    both = missing_modality_report(surv, X, y, scoring=["concordance_index"])
    assert_allclose(both["concordance_index"],
                    missing_modality_report(surv, X, y)["concordance_index"])


def test_displays_draw_a_survival_model():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from mmfusion_sklearn.plotting import (
        MissingModalityDisplay,
        ModalityImportanceDisplay,
        TrainingHistoryDisplay,
    )

    X, y, _ = make_survival()
    surv = fast_surv(early_stopping=True).fit(X, y)
    missing = MissingModalityDisplay.from_estimator(surv, X, y)
    labels = missing.ax_.get_xlabel() + missing.ax_.get_ylabel() + missing.ax_.get_title()
    assert "concordance" in labels
    ModalityImportanceDisplay.from_estimator(surv, X, y)
    TrainingHistoryDisplay.from_estimator(surv)


def test_tune_defaults_to_the_concordance_index(tmp_path):
    pytest.importorskip("optuna")
    from mmfusion_sklearn.tuning import tune

    X, y, _ = make_survival(n=80)
    result = tune(fast_surv(max_epochs=2, early_stopping=True), MultimodalData(X), y,
                  n_trials=2, cv=2, storage=f"sqlite:///{tmp_path / 'study.db'}",
                  random_state=0)
    assert isinstance(result.best_estimator_, MultimodalFusionSurvivalAnalysis)
    values = [t.value for t in result.study.trials if t.value is not None]
    assert values and all(0 <= v <= 1 for v in values)  # concordance indices
    # the pruning value is the held-out Cox loss
    assert any(t.intermediate_values for t in result.study.trials)


def test_dask_predicts_risk_scores():
    pytest.importorskip("dask.dataframe")
    import dask.dataframe as dd

    from mmfusion_sklearn import dask as mmdask

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 4)), columns=list("abcd"))
    log_hazard = frame["a"].to_numpy()
    y = _structured(rng.random(60) < 0.8, rng.exponential(np.exp(-log_hazard)))
    surv = fast_surv(modalities={"labs": ["a", "b"], "vitals": ["c", "d"]}).fit(frame, y)
    result = mmdask.predict(surv, dd.from_pandas(frame, npartitions=3)).compute(
        scheduler="sync")
    assert_allclose(result.to_numpy(), surv.predict(frame), atol=1e-6)
    assert result.dtype == np.float64


# -- the discrete-time loss ---------------------------------------------------------------
def test_the_discrete_loss_gives_curves_risks_and_round_trips(tmp_path):
    from mmfusion_sklearn._torch.discrete_survival import risk_score, survival_at

    X, y, _ = make_survival(n=200)
    surv = fast_surv(loss="discrete", ensemble_size=2, max_epochs=15).fit(X, y)
    task = surv._task()
    assert task.full_loss_name == "discrete_loss" and task.n_outputs == len(surv._cuts) - 1
    curves = surv._predict_outputs(X)  # the members' mean survival per interval
    assert_allclose(surv.predict(X), risk_score(curves, surv._cuts))
    array = surv.predict_survival_function(X, return_array=True)
    assert_allclose(array, survival_at(curves, surv._cuts, surv.unique_times_))
    assert (np.diff(array, axis=1) <= 1e-12).all() and ((array >= 0) & (array <= 1)).all()
    assert surv.score(X, y) > 0.65  # well above chance (0.5)
    surv.save(tmp_path / "model")
    loaded = mmfusion_sklearn.load(tmp_path / "model")
    assert loaded.loss == "discrete"
    assert_allclose(loaded.predict_survival_function(X, return_array=True), array, atol=0)
    config_path = tmp_path / "model" / "config.json"
    config = json.loads(config_path.read_text())
    config["survival"]["cuts"] = config["survival"]["cuts"][::-1]
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="survival.cuts.*strictly ascending"):
        MultimodalFusionSurvivalAnalysis.load(tmp_path / "model")
    # a Cox model's entry under a discrete model's parameters is refused
    config["survival"].pop("cuts")
    config["survival"]["cum_baseline"] = [[1.0] * len(surv.unique_times_)] * 2
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="for loss='discrete'"):
        MultimodalFusionSurvivalAnalysis.load(tmp_path / "model")


def test_the_discrete_loss_stops_early_on_its_held_out_loss():
    X, y, _ = make_survival()
    surv = fast_surv(loss="discrete", early_stopping=True, max_epochs=3).fit(X, y)
    assert np.isfinite(surv.history_["pooled_valid_discrete_loss"]).all()


def test_parameters_are_validated_and_the_estimator_clones():
    from sklearn.utils._param_validation import InvalidParameterError

    X, y, _ = make_survival()
    with pytest.raises(InvalidParameterError, match="'loss' parameter"):
        fast_surv(loss="exact").fit(X, y)
    surv = fast_surv(loss="discrete", contrastive="fused")
    params = clone(surv).get_params()
    assert params["loss"] == "discrete" and params["contrastive"] == "fused"
    assert MultimodalFusionSurvivalAnalysis().get_params()["contrastive"] is None
    # the shared parameters are the regressor's, plus loss
    assert set(MultimodalFusionSurvivalAnalysis().get_params()) == set(
        MultimodalFusionRegressor().get_params()) | {"loss"}
