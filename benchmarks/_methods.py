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

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ._scenarios import Data, added_missingness, make_scenarios, presence, take, withhold

#: Network hyperparameters per data type; identical for every data set of a type.
PROFILES: dict[str, dict[str, Any]] = {
    "small_table": {"embed_dim": 32, "batch_size": 32, "max_epochs": 100, "patience": 10,
                    "pretrain_epochs": 10},
    "table": {"embed_dim": 64, "batch_size": 64, "max_epochs": 100, "patience": 10,
              "pretrain_epochs": 10},
    "image": {"embed_dim": 64, "batch_size": 64, "max_epochs": 20, "patience": 5,
              "pretrain_epochs": 5},
}
#: Shorter training for ``--quick``.
QUICK_PROFILES: dict[str, dict[str, Any]] = {
    "small_table": {"max_epochs": 30, "pretrain_epochs": 3},
    "table": {"max_epochs": 20, "pretrain_epochs": 3},
    "image": {"max_epochs": 6, "patience": 3, "pretrain_epochs": 1},
}
#: Shared by every fit of our estimator.
COMMON: dict[str, Any] = {"lr": 1e-3, "weight_decay": 1e-4, "class_weight": "balanced",
                          "device": "cpu", "verbose": 0}
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
    Neural("unimodal contrastive", {"contrastive": "unimodal"}),
    Neural("zero tokens", {"missing_token": "zero"}),
    Neural("ModDrop", {"modality_dropout": "random", "missing_token": "zero",
                       "contrastive": None}),
    Neural("no modality dropout", {"modality_dropout": "none", "contrastive": None}),
)
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
    return HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)


def logistic() -> Pipeline:
    """Logistic regression after imputation (+ indicators), one-hot encoding, scaling.

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
    return make_pipeline(columns, LogisticRegression(class_weight="balanced", max_iter=5000))


def _neural(profile: dict[str, Any], params: dict[str, Any], kinds: dict[str, str],
            seed: int) -> Any:
    from mmfusion_sklearn import MultimodalFusionClassifier

    return MultimodalFusionClassifier(modalities=dict(kinds), random_state=seed,
                                      **COMMON, **profile, **params)


def _neural_proba(model: Any, X: Data) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


def _specialist_input(values: Any, name: str, kind: str, label: str) -> Any:
    """What a specialist takes: a one-modality dict (CNN) or a feature table."""
    return {name: values} if label.startswith("CNN[") else _features(values, kind)


def fit_predict(
    X_train: Data, y_train: np.ndarray, tests: list[tuple[str, Data]], kinds: dict[str, str],
    profile: dict[str, Any], neural: tuple[Neural, ...], seed: int,
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

    Returns
    -------
    dict
        ``{method: {scenario: probability of class 1, NaN where not predicted}}``.
    """
    names = list(kinds)
    out: dict[str, dict[str, np.ndarray]] = {}
    for config in neural:
        model = _neural(profile, config.params, kinds, seed).fit(X_train, y_train)
        out[config.label] = {s: _neural_proba(model, X) for s, X in tests}

    present_train = presence(X_train)
    specialists: dict[str, dict[str, str]] = {"late HGB": {}, "late LR": {}}
    for j, name in enumerate(names):
        rows = present_train[:, j]
        kind = kinds[name]
        models: dict[str, Any] = {f"LR[{name}{' px' if kind == 'image' else ''}]": logistic()}
        if kind == "image":
            if len(names) > 1:  # with one modality, the CNN is our estimator itself
                models[f"CNN[{name}]"] = _neural(profile, {}, {name: kind}, seed)
            specialists["late HGB"][name] = specialists["late LR"][name] = f"CNN[{name}]"
        else:
            models[f"HGB[{name}]"] = hgb(seed)
            specialists["late HGB"][name] = f"HGB[{name}]"
            specialists["late LR"][name] = f"LR[{name}]"
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
    return out


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


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC, balanced accuracy (threshold 0.5) and coverage of one prediction.

    Parameters
    ----------
    y : ndarray
        0/1 labels.
    proba : ndarray
        Probability of class 1; NaN where the method made no prediction.

    Returns
    -------
    dict
        ``auroc``, ``auprc``, ``bacc``, ``coverage`` and ``n`` (samples scored).
    """
    covered = ~np.isnan(proba)
    y, proba = y[covered], proba[covered]
    out = {"coverage": float(covered.mean()), "n": int(covered.sum()),
           "auroc": np.nan, "auprc": np.nan, "bacc": np.nan}
    if len(np.unique(y)) == 2:
        out["auroc"] = roc_auc_score(y, proba)
        out["auprc"] = average_precision_score(y, proba)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out["bacc"] = balanced_accuracy_score(y, proba >= 0.5)
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

    Returns
    -------
    list of dict
        One row per method and scenario with the scores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        X_train, y_train = take(X, train), y[train]
        if regime == "added":
            remove = added_missingness(presence(X_train), ADDED_FRACTION, [seed, fold, 11])
            X_train = withhold(X_train, remove)
        X_test, y_test = take(X, test), y[test]
        scenarios = make_scenarios(list(kinds), presence(X_test), [seed, fold, 7])
        tests = [(s.name, take(withhold(X_test, remove), keep))
                 for s, keep, remove in scenarios]
        model_seed = 1000 * seed + fold
        predictions = fit_predict(X_train, y_train, tests, kinds, profile, neural, model_seed)
    rows = []
    for scenario, keep, _ in scenarios:
        for method, by_scenario in predictions.items():
            rows.append({"regime": regime, "seed": seed, "fold": fold,
                         "scenario": scenario.name, "method": method,
                         "family": family(method),
                         **scores(y_test[keep], by_scenario[scenario.name])})
    return rows
