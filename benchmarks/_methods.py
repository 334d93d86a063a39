"""Methods of the quality benchmark and the evaluation of one train/test split.

Our estimator and its ablations (:data:`NEURAL`) and the baselines: unimodal
specialists, early fusion and late fusion. Every method of a split is trained on the
same training rows (with the same withheld modalities) and scored on the same
test scenarios.

Specialists are trained on the training samples that have their modality and
predict only the test samples that have it: elsewhere their probability is NaN and
their score is computed on the samples they cover (``coverage`` < 1). Late fusion
averages the probabilities of the specialists whose modality a sample has.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ._scenarios import Data, added_missingness, make_scenarios, presence, take, withhold

#: Parameters of our estimator per data type, on top of its defaults. Tables use the
#: defaults unchanged (the point of the benchmark); images cap the epochs for time.
PROFILES: dict[str, dict[str, Any]] = {
    "table": {},
    "image": {"max_epochs": 30, "patience": 5, "pretrain_epochs": 5},
}
#: Shorter training for ``--quick``.
QUICK_PROFILES: dict[str, dict[str, Any]] = {
    "table": {"max_epochs": 30, "pretrain_epochs": 3},
    "image": {"max_epochs": 6, "patience": 3, "pretrain_epochs": 1},
}
#: Shared by every fit of our estimator.
COMMON: dict[str, Any] = {"device": "cpu", "verbose": 0}
#: Side of the average-pooled images fed to the pixel baselines.
PIXEL_SIDE = 16
#: Fraction of training samples losing one random modality in the "added" regime.
ADDED_FRACTION = 0.5
REGIMES = {
    "natural": "training data as they come",
    "added": f"{ADDED_FRACTION:.0%} of the training samples lose one random modality",
}


@dataclass(frozen=True)
class Neural:
    """A configuration of :class:`~mmfusion_sklearn.MultimodalFusionClassifier`.

    Parameters
    ----------
    label : str
        Row label in the tables.
    params : dict
        Parameters on top of the profile.
    family : {"ours", "ablation"}
        The method itself or one of its ablations.
    """

    label: str
    params: dict[str, Any] = field(default_factory=dict)
    family: str = "ablation"


NEURAL = (
    Neural("ours", {}, "ours"),
    Neural("no contrastive", {"contrastive": None}),
    Neural("paper contrastive", {"contrastive_loss": "paper"}),
    Neural("no linear path", {"linear_path": False}),
    Neural("single network", {"ensemble_size": 1}),
    Neural("5 networks", {"ensemble_size": 5}),
    Neural("zero tokens", {"missing_token": "zero"}),
    Neural("ModDrop", {"modality_dropout": "random", "missing_token": "zero",
                       "contrastive": None}),
    Neural("no modality dropout", {"modality_dropout": "none", "contrastive": None}),
    Neural("transformer fusion", {"fusion": "transformer"}),
)
#: The seed paper's comparison: the method against conventional modality dropout and
#: none (single-modality scenarios first in its table).
SEED_COMPARISON = ("ours", "ModDrop", "no modality dropout")
QUICK_NEURAL = ("ours", "no contrastive", "ModDrop")


def pixels(images: np.ndarray, side: int = PIXEL_SIDE) -> pd.DataFrame:
    """Average-pool images ``(n, C, H, W)`` to ``side`` x ``side`` and flatten them.

    Parameters
    ----------
    images : ndarray
        Images; an all-NaN image stays all-NaN.
    side : int, default=PIXEL_SIDE
        Output side; H and W must be multiples of it.

    Returns
    -------
    pandas.DataFrame
        ``(n, C * side * side)`` pixel columns ``px0, px1, ...``.
    """
    n, c, h, w = images.shape
    pooled = images.reshape(n, c, side, h // side, side, w // side).mean(axis=(3, 5))
    flat = pooled.reshape(n, -1)
    return pd.DataFrame(flat, columns=[f"px{i}" for i in range(flat.shape[1])])


def _features(values: Any, kind: str) -> pd.DataFrame:
    return pixels(values) if kind == "image" else values


def hgb(seed: int) -> HistGradientBoostingClassifier:
    """Gradient boosting with native NaN and categorical handling.

    Parameters
    ----------
    seed : int
        ``random_state``.

    Returns
    -------
    HistGradientBoostingClassifier
    """
    return HistGradientBoostingClassifier(random_state=seed)


#: Inverse penalties searched by :func:`logistic_cv`.
LRCV_GRID = np.logspace(-3, 1, 9)


def tabular_preprocessing(dense: bool = False) -> ColumnTransformer:
    """The linear baselines' preprocessing of a table.

    Median imputation with missing indicators and scaling of the numeric columns,
    most-frequent imputation and one-hot encoding of the categorical ones.

    Parameters
    ----------
    dense : bool, default=False
        Always return a dense array (scikit-survival's models need one); False keeps
        ``ColumnTransformer``'s default (sparse when the one-hot columns dominate).

    Returns
    -------
    sklearn.compose.ColumnTransformer
    """
    numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                            StandardScaler())
    categorical = make_pipeline(SimpleImputer(strategy="most_frequent"),
                                OneHotEncoder(handle_unknown="ignore"))
    return ColumnTransformer([
        ("numeric", numeric, make_column_selector(dtype_include="number")),
        ("categorical", categorical, make_column_selector(dtype_include="category")),
    ], sparse_threshold=0.0 if dense else 0.3)


def logistic(tuned: bool = False) -> Pipeline:
    """Logistic regression after imputation (+ indicators), one-hot encoding, scaling.

    Parameters
    ----------
    tuned : bool, default=False
        False: scikit-learn's default ``C=1``. True: ``C`` chosen from
        :data:`LRCV_GRID` by an inner stratified 5-fold CV on the log loss
        (``LogisticRegressionCV``), then refitted on the whole training set.

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    columns = tabular_preprocessing()
    if tuned:
        model = LogisticRegressionCV(Cs=LRCV_GRID, cv=5, scoring="neg_log_loss",
                                     max_iter=5000)
    else:
        model = LogisticRegression(max_iter=5000)
    return make_pipeline(columns, model)


def _neural(profile: dict[str, Any], params: dict[str, Any], kinds: dict[str, str],
            seed: int) -> Any:
    from mmfusion_sklearn import MultimodalFusionClassifier

    return MultimodalFusionClassifier(modalities=dict(kinds), random_state=seed,
                                      **COMMON, **profile, **params)


def _neural_proba(model: Any, X: Data) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


#: Columns of :func:`diagnostics`.
DIAGNOSTICS = ("fit_seconds", "ensemble_size", "best_epoch", "linear_C", "stage_loss",
               "stage_valid_loss", "same_cosine", "diff_cosine", "valid_same_cosine",
               "valid_diff_cosine")


def diagnostics(model: Any, seconds: float) -> dict[str, float]:
    """What a fitted network did: its size, stopping point, linear penalty and how its
    contrastive stage ended (last epoch, mean over members; NaN without a stage).

    Parameters
    ----------
    model : MultimodalFusionClassifier
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
               "same_cosine": "same_class_cosine", "diff_cosine": "diff_class_cosine",
               "valid_same_cosine": "valid_same_class_cosine",
               "valid_diff_cosine": "valid_diff_class_cosine"}
    out = {key: float(last[col].mean()) if len(last) else np.nan
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
    profile: dict[str, Any], neural: tuple[Neural, ...], seed: int, *, baselines: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Fit every method on one training set; predict every test scenario.

    Parameters
    ----------
    X_train : dict
        Training data (withheld modalities are all-NaN rows).
    y_train : ndarray
        0/1 labels.
    tests : list of (str, dict)
        Scenario names and test data.
    kinds : dict
        Modality name to kind ("tabular" or "image").
    profile : dict
        Network hyperparameters.
    neural : tuple of Neural
        Configurations of our estimator to run.
    seed : int
        Seed of every model.
    baselines : bool, default=True
        Also fit the specialists, early and late fusion; False fits the networks only
        (their predictions do not depend on the baselines).

    Returns
    -------
    predictions : dict
        ``{method: {scenario: probability of class 1, NaN where not predicted}}``.
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
        out[config.label] = {s: _neural_proba(model, X) for s, X in tests}
    if not baselines:
        return out, diag

    present_train = presence(X_train)
    specialists: dict[str, dict[str, str]] = {"late HGB": {}, "late LR": {}, "late LRcv": {}}
    for j, name in enumerate(names):
        rows = present_train[:, j]
        kind = kinds[name]
        px = " px" if kind == "image" else ""
        models: dict[str, Any] = {f"LR[{name}{px}]": logistic(),
                                  f"LRcv[{name}{px}]": logistic(tuned=True)}
        if kind == "image":
            if len(names) > 1:  # with one modality, the CNN is our estimator itself
                models[f"CNN[{name}]"] = _neural(profile, {}, {name: kind}, seed)
            for late in specialists:
                specialists[late][name] = f"CNN[{name}]"
        else:
            models[f"HGB[{name}]"] = hgb(seed)
            specialists["late HGB"][name] = f"HGB[{name}]"
            specialists["late LR"][name] = f"LR[{name}]"
            specialists["late LRcv"][name] = f"LRcv[{name}]"
        for label, model in models.items():
            model.fit(_specialist_input(X_train[name][rows], name, kind, label), y_train[rows])
            out[label] = {}
            for scenario, X in tests:
                has = presence({name: X[name]})[:, 0]
                proba = np.full(len(has), np.nan)
                if has.any():
                    values = take({name: X[name]}, has)[name]
                    inputs = _specialist_input(values, name, kind, label)
                    proba[has] = model.predict_proba(inputs)[:, 1]
                out[label][scenario] = proba

    early = hgb(seed).fit(_early_features(X_train, kinds), y_train)
    out["early HGB"] = {s: early.predict_proba(_early_features(X, kinds))[:, 1]
                        for s, X in tests}
    if len(names) > 1:
        for late, members in specialists.items():
            out[late] = {}
            for scenario, _ in tests:
                stack = np.column_stack([out[members[m]][scenario] for m in names])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # no specialist: NaN
                    out[late][scenario] = np.nanmean(stack, axis=1)
    return out, diag


def _early_features(X: Data, kinds: dict[str, str]) -> pd.DataFrame:
    frames = [_features(X[name], kind).add_prefix(f"{name}:").reset_index(drop=True)
              for name, kind in kinds.items()]
    return pd.concat(frames, axis=1)


def family(method: str) -> str:
    """``"ours"``, ``"ablation"`` or ``"baseline"`` for a method label.

    Parameters
    ----------
    method : str
        A row label.

    Returns
    -------
    str
    """
    for config in NEURAL:
        if config.label == method:
            return config.family
    return "baseline"


#: Bins of the expected calibration error.
ECE_BINS = 10
#: Probabilities are clipped to [EPS, 1 - EPS] for the log loss (a 0 or 1 would be inf).
EPS = 1e-6


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the probability of class 1, equal-width bins.

    Parameters
    ----------
    y : ndarray
        0/1 labels.
    proba : ndarray
        Predicted probability of class 1.
    bins : int, default=ECE_BINS
        Number of bins over [0, 1].

    Returns
    -------
    float
        Sum over bins of (share of samples) x |observed rate - mean probability|.
    """
    index = np.minimum((proba * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(index):
        in_bin = index == b
        total += in_bin.mean() * abs(y[in_bin].mean() - proba[in_bin].mean())
    return float(total)


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Discrimination and calibration scores of one prediction, and its coverage.

    Parameters
    ----------
    y : ndarray
        0/1 labels.
    proba : ndarray
        Probability of class 1; NaN where the method made no prediction.

    Returns
    -------
    dict
        ``auroc``, ``auprc``, ``bacc`` (threshold 0.5), ``logloss``, ``brier``, ``ece``,
        ``coverage`` and ``n`` (samples scored).
    """
    covered = ~np.isnan(proba)
    y, proba = y[covered], proba[covered]
    out = {"coverage": float(covered.mean()), "n": int(covered.sum()),
           **dict.fromkeys(("auroc", "auprc", "bacc", "logloss", "brier", "ece"), np.nan)}
    if len(np.unique(y)) == 2:
        clipped = np.clip(proba, EPS, 1 - EPS)
        out["auroc"] = roc_auc_score(y, proba)
        out["auprc"] = average_precision_score(y, proba)
        out["logloss"] = log_loss(y, clipped, labels=[0, 1])
        out["brier"] = brier_score_loss(y, proba)
        out["ece"] = expected_calibration_error(y, proba)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out["bacc"] = balanced_accuracy_score(y, proba >= 0.5)
    return out


def evaluate_split(
    X: Data, y: np.ndarray, kinds: dict[str, str], train: np.ndarray, test: np.ndarray,
    regime: str, seed: int, fold: int, profile: dict[str, Any], neural: tuple[Neural, ...],
    *, baselines: bool = True,
) -> list[dict[str, Any]]:
    """Train every method on one fold under one training regime and score every scenario.

    Parameters
    ----------
    X : dict
        The whole data set (see :func:`benchmarks._scenarios.as_nullable`).
    y : ndarray
        0/1 labels.
    kinds : dict
        Modality name to kind.
    train, test : ndarray of int
        Row indices of the fold.
    regime : {"natural", "added"}
        Training data as they come, or with added missingness.
    seed, fold : int
        CV repetition and fold; they seed the models and the withheld cells.
    profile : dict
        Network hyperparameters.
    neural : tuple of Neural
        Configurations of our estimator to run.
    baselines : bool, default=True
        Also fit and score the baselines (see :func:`fit_predict`).

    Returns
    -------
    list of dict
        One row per method and scenario with the scores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1), warnings.catch_warnings():
        # scikit-learn 1.9 announces new LogisticRegressionCV defaults on every fit
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
                                        model_seed, baselines=baselines)
    rows = []
    for scenario, keep, _ in scenarios:
        for method, by_scenario in predictions.items():
            rows.append({"regime": regime, "seed": seed, "fold": fold,
                         "scenario": scenario.name, "method": method,
                         "family": family(method),
                         **scores(y_test[keep], by_scenario[scenario.name]),
                         **diag.get(method, dict.fromkeys(DIAGNOSTICS, np.nan))})
    return rows
