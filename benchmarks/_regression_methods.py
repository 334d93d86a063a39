"""Methods of the regression benchmark and the evaluation of one train/test split.

The regression counterpart of :mod:`benchmarks._methods`: our
:class:`~mmfusion_sklearn.MultimodalFusionRegressor` and its ablations
(:data:`NEURAL`) against ridge and gradient-boosting baselines (unimodal
specialists, early fusion, late fusion), every method trained on the same rows with
the same withheld modalities and scored on the same test scenarios
(:mod:`benchmarks._scenarios`).

Specialists are trained on the training samples that have their modality and
predict only the test samples that have it (NaN elsewhere; their score covers those
samples alone, ``coverage`` < 1). Late fusion averages the predictions of the
specialists whose modality a sample has, so it predicts every sample.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ._methods import ADDED_FRACTION, COMMON, PIXEL_SIDE, Neural, pixels
from ._scenarios import Data, added_missingness, make_scenarios, presence, take, withhold

#: Our estimator and the ablations of the regression benchmark (each changes one thing;
#: "no SMD" turns off both modality dropout and the contrastive stage, as the
#: classification benchmark's "no modality dropout" does).
NEURAL = (
    Neural("ours", {}, "ours"),
    Neural("no contrastive", {"contrastive": None}),
    Neural("zero tokens", {"missing_token": "zero"}),
    Neural("no SMD", {"modality_dropout": "none", "contrastive": None}),
)
#: ``--quick`` (a smoke test): every network is one member trained 2 epochs (after 1
#: contrastive epoch).
QUICK_PROFILE: dict[str, Any] = {"max_epochs": 2, "pretrain_epochs": 1, "ensemble_size": 1}
#: Penalties searched by :func:`ridge` (features are standardised first).
RIDGE_ALPHAS = np.logspace(-3, 4, 15)
#: Columns of :func:`diagnostics`.
DIAGNOSTICS = ("fit_seconds", "ensemble_size", "best_epoch", "linear_C", "stage_loss",
               "stage_valid_loss", "pair_cosine", "valid_pair_cosine")


def ridge() -> Pipeline:
    """Ridge regression with its penalty chosen by an inner 5-fold CV.

    Median imputation with missing indicators and scaling of the numeric columns,
    most-frequent imputation and one-hot encoding of the categorical ones (the
    preprocessing of the classification benchmark's logistic regressions), then
    ``RidgeCV`` over :data:`RIDGE_ALPHAS` (R², 5 folds), refitted on the whole
    training set.

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                            StandardScaler())
    categorical = make_pipeline(SimpleImputer(strategy="most_frequent"),
                                OneHotEncoder(handle_unknown="ignore"))
    columns = ColumnTransformer([
        ("numeric", numeric, make_column_selector(dtype_include="number")),
        ("categorical", categorical, make_column_selector(dtype_include="category")),
    ])
    return make_pipeline(columns, RidgeCV(alphas=RIDGE_ALPHAS, cv=5))


def hgb(seed: int) -> HistGradientBoostingRegressor:
    """Gradient boosting with native NaN and categorical handling (defaults).

    Parameters
    ----------
    seed : int
        ``random_state``.

    Returns
    -------
    HistGradientBoostingRegressor
    """
    return HistGradientBoostingRegressor(random_state=seed)


def _features(values: Any, kind: str) -> pd.DataFrame:
    return pixels(values) if kind == "image" else values


def _early_features(X: Data, kinds: dict[str, str]) -> pd.DataFrame:
    frames = [_features(X[name], kind).add_prefix(f"{name}:").reset_index(drop=True)
              for name, kind in kinds.items()]
    return pd.concat(frames, axis=1)


def _neural(profile: dict[str, Any], params: dict[str, Any], kinds: dict[str, str],
            seed: int) -> Any:
    from mmfusion_sklearn import MultimodalFusionRegressor

    return MultimodalFusionRegressor(modalities=dict(kinds), random_state=seed,
                                     **COMMON, **profile, **params)


def diagnostics(model: Any, seconds: float) -> dict[str, float]:
    """What a fitted network did: members, stopping point, linear penalty, and how its
    contrastive stage ended (last epoch, mean over members; NaN without a stage).

    Without classes the stage's positives are each sample's own views, so the
    history has no same-class cosine; ``pair_cosine`` is its mean cosine between the
    projections of two different samples (``diff_class_cosine`` in the history).

    Parameters
    ----------
    model : MultimodalFusionRegressor
        Fitted.
    seconds : float
        Wall time of its fit.

    Returns
    -------
    dict
        The keys of :data:`DIAGNOSTICS`.
    """
    history = model.history_
    stage = history[history["stage"] == "contrastive"]
    last = stage[stage["epoch"] == stage["epoch"].max()] if len(stage) else stage
    columns = {"stage_loss": "train_loss", "stage_valid_loss": "valid_loss",
               "pair_cosine": "diff_class_cosine",
               "valid_pair_cosine": "valid_diff_class_cosine"}
    out = {key: float(last[col].mean()) if len(last) and col in last else np.nan
           for key, col in columns.items()}
    best = model.best_epoch_
    linear_C = model.linear_C_
    return {"fit_seconds": seconds, "ensemble_size": float(model.ensemble_size_),
            "best_epoch": np.nan if best is None else float(best),
            "linear_C": np.nan if linear_C is None else float(linear_C), **out}


def _specialist_input(values: Any, name: str, kind: str, label: str) -> Any:
    """What a specialist takes: a one-modality dict (CNN) or a feature table."""
    return {name: values} if label.startswith("CNN[") else _features(values, kind)


def fit_predict(
    X_train: Data, y_train: np.ndarray, tests: list[tuple[str, Data]], kinds: dict[str, str],
    profile: dict[str, Any], neural: tuple[Neural, ...], seed: int,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, float]]]:
    """Fit every method on one training set; predict every test scenario.

    Parameters
    ----------
    X_train : dict
        Training data (withheld modalities are all-NaN rows).
    y_train : ndarray
        Continuous target.
    tests : list of (str, dict)
        Scenario names and test data.
    kinds : dict
        Modality name to kind ("tabular" or "image").
    profile : dict
        Network hyperparameters on top of the defaults.
    neural : tuple of Neural
        Configurations of our estimator to run.
    seed : int
        Seed of every model.

    Returns
    -------
    predictions : dict
        ``{method: {scenario: prediction, NaN where not predicted}}``.
    diagnostics : dict
        ``{network method: diagnostics(...)}``.
    """
    names = list(kinds)
    out: dict[str, dict[str, np.ndarray]] = {}
    diag: dict[str, dict[str, float]] = {}
    for config in neural:
        start = time.perf_counter()
        model = _neural(profile, config.params, kinds, seed).fit(X_train, y_train)
        diag[config.label] = diagnostics(model, time.perf_counter() - start)
        out[config.label] = {s: model.predict(X) for s, X in tests}

    present_train = presence(X_train)
    late: dict[str, dict[str, str]] = {"late Ridge": {}, "late HGB": {}}
    for j, name in enumerate(names):
        rows = present_train[:, j]
        kind = kinds[name]
        if kind == "image":
            models: dict[str, Any] = {f"Ridge[{name} px]": ridge()}
            # the CNN specialist = our estimator given the image alone (same encoder)
            models[f"CNN[{name}]"] = _neural(profile, {}, {name: kind}, seed)
            for members in late.values():
                members[name] = f"CNN[{name}]"
        else:
            models = {f"Ridge[{name}]": ridge(), f"HGB[{name}]": hgb(seed)}
            late["late Ridge"][name] = f"Ridge[{name}]"
            late["late HGB"][name] = f"HGB[{name}]"
        for label, model in models.items():
            model.fit(_specialist_input(X_train[name][rows], name, kind, label), y_train[rows])
            out[label] = {}
            for scenario, X in tests:
                has = presence({name: X[name]})[:, 0]
                prediction = np.full(len(has), np.nan)
                if has.any():
                    values = take({name: X[name]}, has)[name]
                    prediction[has] = model.predict(_specialist_input(values, name, kind,
                                                                      label))
                out[label][scenario] = prediction

    train_features = _early_features(X_train, kinds)
    early = {"early Ridge": ridge().fit(train_features, y_train),
             "early HGB": hgb(seed).fit(train_features, y_train)}
    for label, model in early.items():
        out[label] = {s: model.predict(_early_features(X, kinds)) for s, X in tests}
    for label, members in late.items():
        out[label] = {}
        for scenario, _ in tests:
            stack = np.column_stack([out[members[m]][scenario] for m in names])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no specialist: NaN
                out[label][scenario] = np.nanmean(stack, axis=1)
    return out, diag


def family(method: str) -> str:
    """``"ours"``, ``"ablation"`` or ``"baseline"`` for a method label."""
    for config in NEURAL:
        if config.label == method:
            return config.family
    return "baseline"


def scores(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """R², MAE and RMSE of one prediction on the samples it covers, and its coverage.

    Parameters
    ----------
    y : ndarray
        True target.
    prediction : ndarray
        Predicted target; NaN where the method made no prediction.

    Returns
    -------
    dict
        ``r2``, ``mae``, ``rmse``, ``coverage`` and ``n`` (samples scored); the
        scores are NaN with fewer than two samples scored.
    """
    covered = ~np.isnan(prediction)
    y, prediction = y[covered], prediction[covered]
    out = {"coverage": float(covered.mean()), "n": int(covered.sum()),
           **dict.fromkeys(("r2", "mae", "rmse"), np.nan)}
    if len(y) >= 2:
        out["r2"] = float(r2_score(y, prediction))
        out["mae"] = float(mean_absolute_error(y, prediction))
        out["rmse"] = float(np.sqrt(np.mean((y - prediction) ** 2)))
    return out


def evaluate_split(
    X: Data, y: np.ndarray, kinds: dict[str, str], train: np.ndarray, test: np.ndarray,
    regime: str, seed: int, fold: int, profile: dict[str, Any], neural: tuple[Neural, ...],
) -> list[dict[str, Any]]:
    """Train every method on one fold under one training regime and score every scenario.

    Parameters
    ----------
    X : dict
        The whole data set (see :func:`benchmarks._scenarios.as_nullable`).
    y : ndarray
        Continuous target.
    kinds : dict
        Modality name to kind.
    train, test : ndarray of int
        Row indices of the fold.
    regime : {"natural", "added"}
        Training data as they come, or with added missingness
        (:data:`benchmarks._methods.ADDED_FRACTION` of the training samples with two
        or more modalities lose one at random).
    seed, fold : int
        CV repetition and fold; they seed the models and the withheld cells.
    profile : dict
        Network hyperparameters.
    neural : tuple of Neural
        Configurations of our estimator to run.

    Returns
    -------
    list of dict
        One row per method and scenario with the scores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
        X_train, y_train = take(X, train), y[train]
        if regime == "added":
            remove = added_missingness(presence(X_train), ADDED_FRACTION, [seed, fold, 11])
            X_train = withhold(X_train, remove)
        X_test, y_test = take(X, test), y[test]
        scenarios = make_scenarios(list(kinds), presence(X_test), [seed, fold, 7])
        tests = [(s.name, take(withhold(X_test, remove), keep))
                 for s, keep, remove in scenarios]
        model_seed = 1000 * seed + fold
        predictions, diag = fit_predict(X_train, y_train, tests, kinds, profile, neural,
                                        model_seed)
    rows = []
    for scenario, keep, _ in scenarios:
        for method, by_scenario in predictions.items():
            rows.append({"regime": regime, "seed": seed, "fold": fold,
                         "scenario": scenario.name, "method": method,
                         "family": family(method),
                         **scores(y_test[keep], by_scenario[scenario.name]),
                         **diag.get(method, dict.fromkeys(DIAGNOSTICS, np.nan))})
    return rows


__all__ = ["NEURAL", "PIXEL_SIDE", "QUICK_PROFILE", "RIDGE_ALPHAS", "evaluate_split",
           "fit_predict", "hgb", "ridge", "scores"]
