"""Methods of the survival benchmark and the evaluation of one train/test split.

The censored-outcome counterpart of :mod:`benchmarks._regression_methods`: our
:class:`~mmfusion_sklearn.MultimodalFusionSurvivalAnalysis` and its ablations
(:data:`NEURAL`) against scikit-survival baselines: ridge-Cox specialists per modality,
early ridge Cox, late fusion of the specialists, an early random survival forest, early
gradient-boosted Cox and the Kaplan-Meier curve. Every method of a split is trained on
the same rows with the same withheld modalities and scored on the same test scenarios
(:mod:`benchmarks._scenarios`).

Specialists are trained on the training samples that have their modality and predict
only the test samples that have it (NaN elsewhere; ``coverage`` < 1). Late fusion
averages the available specialists' risk scores, each standardised on its training
rows; it has no survival curve, so its integrated Brier score is NaN. Kaplan-Meier gives
every sample the training cohort's curve: it has an integrated Brier score and no risk
ranking (its concordance scores are NaN).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline

from ._methods import ADDED_FRACTION, COMMON, Neural, tabular_preprocessing
from ._regression_methods import DIAGNOSTICS, diagnostics
from ._scenarios import Data, added_missingness, make_scenarios, presence, take, withhold


def _neural_configs() -> tuple[Neural, ...]:
    """Ours and its ablations; ``discrete loss`` where the estimator has a ``loss``."""
    from mmfusion_sklearn import MultimodalFusionSurvivalAnalysis

    configs = [
        Neural("ours", {}, "ours"),
        Neural("no SMD", {"modality_dropout": "none"}),
        Neural("zero tokens", {"missing_token": "zero"}),
        Neural("with contrastive", {"contrastive": "fused"}),
    ]
    if "loss" in MultimodalFusionSurvivalAnalysis().get_params():
        configs.append(Neural("discrete loss", {"loss": "discrete"}))
    return tuple(configs)


#: Our estimator and the ablations of the survival benchmark (each changes one thing).
NEURAL = _neural_configs()
#: Shared by every fit of ours: one torch thread (the workers run side by side).
SURVIVAL_COMMON: dict[str, Any] = {**COMMON, "n_threads": 1}
#: ``--quick`` (a smoke test): one network of 2 epochs (after 1 contrastive epoch).
QUICK_PROFILE: dict[str, Any] = {"max_epochs": 2, "pretrain_epochs": 1, "ensemble_size": 1}
#: Ridge-Cox penalties (descending: Coxnet's path), chosen by an inner 5-fold CV.
COX_ALPHAS = np.logspace(3, -3, 19)
#: Coxnet's l1 share: tiny, a ridge penalty in all but name (Coxnet needs it > 0).
COX_L1_RATIO = 1e-3
RSF_PARAMS: dict[str, Any] = {"n_estimators": 100, "min_samples_leaf": 15,
                              "max_features": "sqrt", "n_jobs": 1}
GBSA_PARAMS: dict[str, Any] = {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3}
#: Uno's C truncation: this percentile of the training times.
TAU_PERCENTILE = 80
#: Time-dependent AUC: at these percentiles of the test event times.
AUC_PERCENTILES = (25, 50, 75)
#: Integrated Brier score: on this many times between these percentiles of the test times.
IBS_PERCENTILES = (10, 80)
IBS_POINTS = 50
KM = "Kaplan-Meier"
#: Per-split columns besides the scores (``failed``: 1 where a baseline raised; its
#: scores are then NaN and the error is printed).
SURVIVAL_DIAGNOSTICS = (*DIAGNOSTICS, "cox_alpha", "failed")


def _dense(values: Any) -> np.ndarray:
    return np.asarray(values.toarray() if hasattr(values, "toarray") else values,
                      dtype=np.float64)


class RidgeCox(BaseEstimator):
    """Ridge Cox regression with its penalty chosen by an inner CV on Harrell's C.

    :func:`benchmarks._methods.tabular_preprocessing` (imputation with indicators,
    scaling, one-hot encoding), then scikit-survival's ``CoxnetSurvivalAnalysis`` with
    ``l1_ratio`` :data:`COX_L1_RATIO`: the whole path over :data:`COX_ALPHAS` is fitted
    on each of 5 inner folds (stratified by event), the penalty of best mean held-out
    concordance is kept (the largest among ties), and the path down to it is refitted
    on every row with its Breslow baseline (survival curves).

    Parameters
    ----------
    seed : int, default=0
        Seed of the inner folds.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> RidgeCox:
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.metrics import concordance_index_censored

        self.pre_ = tabular_preprocessing(dense=True).fit(X)
        Z = _dense(self.pre_.transform(X))
        event, time_ = y[y.dtype.names[0]], y[y.dtype.names[1]]
        folds = StratifiedKFold(5, shuffle=True, random_state=self.seed)
        scores = np.full((5, len(COX_ALPHAS)), np.nan)
        for k, (tr, va) in enumerate(folds.split(Z, event)):
            try:
                path = CoxnetSurvivalAnalysis(alphas=COX_ALPHAS, l1_ratio=COX_L1_RATIO,
                                              max_iter=100_000).fit(Z[tr], y[tr])
            except ArithmeticError:  # weights blew up at the small penalties
                continue
            risks = Z[va] @ path.coef_
            for j in range(risks.shape[1]):
                try:
                    scores[k, j] = concordance_index_censored(event[va], time_[va],
                                                              risks[:, j])[0]
                except ValueError:  # no comparable pair in this fold
                    pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an alpha without a score
            mean = np.nanmean(scores, axis=0) if np.isfinite(scores).any() else np.zeros(1)
        for best in range(int(np.nanargmax(mean)), -1, -1):  # down to larger penalties
            try:
                self.model_ = CoxnetSurvivalAnalysis(
                    alphas=COX_ALPHAS[: best + 1], l1_ratio=COX_L1_RATIO, max_iter=100_000,
                    fit_baseline_model=True).fit(Z, y)
            except ArithmeticError:
                if best == 0:
                    raise
                continue
            break
        # Coxnet ends its path early once the fit stops improving: the last one it reached
        path = self.model_.alphas_
        self.alpha_ = float(path[min(best, len(path) - 1)])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(_dense(self.pre_.transform(X)), alpha=self.alpha_)

    def predict_survival_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_survival_function(_dense(self.pre_.transform(X)),
                                                      alpha=self.alpha_)


def forest(seed: int) -> Pipeline:
    """Random survival forest (:data:`RSF_PARAMS`) after the tabular preprocessing."""
    from sksurv.ensemble import RandomSurvivalForest

    return make_pipeline(tabular_preprocessing(dense=True),
                         RandomSurvivalForest(random_state=seed, **RSF_PARAMS))


def boosting(seed: int) -> Pipeline:
    """Gradient-boosted Cox model (:data:`GBSA_PARAMS`) after the tabular preprocessing."""
    from sksurv.ensemble import GradientBoostingSurvivalAnalysis

    return make_pipeline(tabular_preprocessing(dense=True),
                         GradientBoostingSurvivalAnalysis(loss="coxph", random_state=seed,
                                                          **GBSA_PARAMS))


def kaplan_meier(y: np.ndarray) -> Any:
    """The training cohort's Kaplan-Meier curve as a step function."""
    from sksurv.functions import StepFunction
    from sksurv.nonparametric import kaplan_meier_estimator

    times, survival = kaplan_meier_estimator(y[y.dtype.names[0]], y[y.dtype.names[1]])
    return StepFunction(times, survival)


def _early_features(X: Data) -> pd.DataFrame:
    return pd.concat([v.add_prefix(f"{m}:").reset_index(drop=True) for m, v in X.items()],
                     axis=1)


def _neural(profile: dict[str, Any], params: dict[str, Any], kinds: dict[str, str],
            seed: int) -> Any:
    from mmfusion_sklearn import MultimodalFusionSurvivalAnalysis

    return MultimodalFusionSurvivalAnalysis(modalities=dict(kinds), random_state=seed,
                                            **SURVIVAL_COMMON, **profile, **params)


#: One method's output on one scenario: risk scores (NaN where not predicted) and
#: survival functions (None where not predicted, or no curves at all).
Output = tuple[np.ndarray, np.ndarray | None]


def fit_predict(
    X_train: Data, y_train: np.ndarray, tests: list[tuple[str, Data]], kinds: dict[str, str],
    profile: dict[str, Any], neural: tuple[Neural, ...], seed: int,
) -> tuple[dict[str, dict[str, Output]], dict[str, dict[str, float]]]:
    """Fit every method on one training set; predict every test scenario.

    Parameters
    ----------
    X_train : dict
        Training data (withheld modalities are all-NaN rows).
    y_train : structured ndarray
        Event indicator and time.
    tests : list of (str, dict)
        Scenario names and test data.
    kinds : dict
        Modality name to kind (tables only here).
    profile : dict
        Network hyperparameters on top of the defaults.
    neural : tuple of Neural
        Configurations of our estimator to run.
    seed : int
        Seed of every model.

    Returns
    -------
    predictions : dict
        ``{method: {scenario: (risk, survival functions or None)}}``.
    diagnostics : dict
        ``{method: {column: value}}`` (:data:`SURVIVAL_DIAGNOSTICS`).
    """
    names = list(kinds)
    out: dict[str, dict[str, Output]] = {}
    diag: dict[str, dict[str, float]] = {}
    for config in neural:
        start = time.perf_counter()
        model = _neural(profile, config.params, kinds, seed).fit(X_train, y_train)
        diag[config.label] = diagnostics(model, time.perf_counter() - start)
        out[config.label] = {s: (model.predict(X), model.predict_survival_function(X))
                             for s, X in tests}

    def specialist(name: str, rows: np.ndarray) -> dict[str, Output]:
        model = RidgeCox(seed).fit(X_train[name][rows], y_train[rows])
        diag[f"Cox[{name}]"] = {"cox_alpha": model.alpha_}
        train_risk = model.predict(X_train[name][rows])
        centre, scale = train_risk.mean(), train_risk.std() or 1.0
        outputs = {}
        for scenario, X in tests:
            has = presence({name: X[name]})[:, 0]
            risk = np.full(len(has), np.nan)
            curves = np.full(len(has), None, dtype=object)
            if has.any():
                values = take({name: X[name]}, has)[name]
                risk[has] = model.predict(values)
                curves[has] = model.predict_survival_function(values)
            outputs[scenario] = (risk, curves)
            standardised[name][scenario] = (risk - centre) / scale
        return outputs

    def early(model: Any) -> dict[str, Output]:
        model.fit(_early_features(X_train), y_train)
        if isinstance(model, RidgeCox):
            diag["early Cox"] = {"cox_alpha": model.alpha_}
        return {s: (model.predict(_early_features(X)),
                    model.predict_survival_function(_early_features(X))) for s, X in tests}

    present = presence(X_train)
    nothing = {s: np.full(len(next(iter(X.values()))), np.nan) for s, X in tests}
    standardised = {name: dict(nothing) for name in names}
    baselines = {f"Cox[{m}]": (lambda m=m, j=j: specialist(m, present[:, j]))
                 for j, m in enumerate(names)}
    baselines |= {"early Cox": lambda: early(RidgeCox(seed)),
                  "early RSF": lambda: early(forest(seed)),
                  "early GBSA": lambda: early(boosting(seed))}
    for label, run in baselines.items():
        start = time.perf_counter()
        try:
            out[label] = run()
        except Exception as exc:  # noqa: BLE001 - one baseline must not end the benchmark
            print(f"{label} failed (seed {seed}): {type(exc).__name__}: {exc}", flush=True)
            out[label] = {s: (risk, None) for s, risk in nothing.items()}
            diag[label] = {"failed": 1.0}
            if label.startswith("Cox["):  # late fusion goes on without it
                standardised[label[4:-1]] = dict(nothing)
        diag.setdefault(label, {})["fit_seconds"] = time.perf_counter() - start
    out["late Cox"] = {}
    for scenario, _ in tests:
        stack = np.column_stack([standardised[m][scenario] for m in names])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no specialist: NaN
            out["late Cox"][scenario] = (np.nanmean(stack, axis=1), None)
    curve = kaplan_meier(y_train)
    out[KM] = {}
    for scenario, X in tests:
        n = len(next(iter(X.values())))
        curves = np.empty(n, dtype=object)
        curves.fill(curve)
        out[KM][scenario] = (np.full(n, np.nan), curves)
    return out, diag


def family(method: str) -> str:
    """``"ours"``, ``"ablation"``, ``"reference"`` (Kaplan-Meier) or ``"baseline"``."""
    for config in NEURAL:
        if config.label == method:
            return config.family
    return "reference" if method == KM else "baseline"


def evaluation_times(y_train: np.ndarray, y_test: np.ndarray,
                     horizon: float) -> dict[str, Any]:
    """The times at which the censoring-weighted metrics are evaluated.

    Parameters
    ----------
    y_train, y_test : structured ndarray
        Training and scored test outcomes.
    horizon : float
        The last time at which every method's survival function is defined.

    Returns
    -------
    dict
        ``tau`` (Uno's C: the :data:`TAU_PERCENTILE` th percentile of the training
        times), ``auc_times`` (the :data:`AUC_PERCENTILES` of the test event times)
        and ``grid`` (:data:`IBS_POINTS` times from the 10th to the 80th percentile of
        the test times), each kept within the training follow-up, the test follow-up
        and ``horizon``; ``y_test`` with its times capped at the last training time
        (``y_ipcw``: the censoring weights need no time beyond it, and capping changes
        no weight used at the times evaluated).
    """
    t_train = y_train[y_train.dtype.names[1]]
    event, t_test = y_test[y_test.dtype.names[0]], y_test[y_test.dtype.names[1]]
    capped = y_test.copy()
    capped[capped.dtype.names[1]] = np.minimum(t_test, t_train.max())
    t_capped = capped[capped.dtype.names[1]]
    lo, hi = t_capped.min(), min(t_capped.max(), t_train.max(), horizon)

    def inside(times: np.ndarray) -> np.ndarray:
        return times[(times >= lo) & (times < hi)]

    auc = (inside(np.unique(np.percentile(t_test[event], AUC_PERCENTILES)))
           if event.any() else np.empty(0))
    start, stop = np.percentile(t_test, IBS_PERCENTILES)
    grid = inside(np.linspace(start, min(stop, hi), IBS_POINTS))
    return {"tau": float(np.percentile(t_train, TAU_PERCENTILE)), "auc_times": auc,
            "grid": np.unique(grid), "y_ipcw": capped}


def scores(y_train: np.ndarray, y_test: np.ndarray, risk: np.ndarray,
           curves: np.ndarray | None, horizon: float) -> dict[str, float]:
    """Harrell's and Uno's C, mean time-dependent AUC and integrated Brier score of one
    method on the test samples it predicts.

    Parameters
    ----------
    y_train, y_test : structured ndarray
        Training outcomes (censoring weights) and the scored test outcomes.
    risk : ndarray
        Risk scores; NaN where not predicted (everywhere for Kaplan-Meier).
    curves : ndarray of step functions or None
        Survival functions (None where not predicted); None: the method has none.
    horizon : float
        See :func:`evaluation_times`.

    Returns
    -------
    dict
        ``harrell_c``, ``uno_c``, ``td_auc``, ``ibs`` (NaN where undefined: no curves,
        no risk, or too few samples or events), ``coverage`` and ``n``.
    """
    from sksurv.metrics import (
        concordance_index_censored,
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )

    has_curve = (np.array([c is not None for c in curves]) if curves is not None
                 else np.zeros(len(risk), bool))
    covered = np.isfinite(risk) | has_curve
    out = {"coverage": float(covered.mean()), "n": int(covered.sum()),
           **dict.fromkeys(("harrell_c", "uno_c", "td_auc", "ibs"), np.nan)}
    y = y_test[covered]
    if len(y) < 2 or not y[y.dtype.names[0]].any():
        return out
    when = evaluation_times(y_train, y, horizon)
    r = risk[covered]
    calls = {}
    if np.isfinite(r).all():
        event, t = y[y.dtype.names[0]], y[y.dtype.names[1]]
        calls["harrell_c"] = lambda: concordance_index_censored(event, t, r)[0]
        calls["uno_c"] = lambda: concordance_index_ipcw(y_train, y, r, tau=when["tau"])[0]
        if len(when["auc_times"]):
            calls["td_auc"] = lambda: cumulative_dynamic_auc(y_train, when["y_ipcw"], r,
                                                             when["auc_times"])[1]
    if has_curve[covered].all() and len(when["grid"]) >= 2:
        grid = when["grid"]
        values = np.vstack([fn(grid) for fn in curves[covered]])
        calls["ibs"] = lambda: integrated_brier_score(y_train, when["y_ipcw"], values, grid)
    for metric, call in calls.items():
        try:
            out[metric] = float(call())
        except ValueError:  # e.g. no comparable pair, no case or control at a time
            pass
    return out


def _horizon(predictions: dict[str, dict[str, Output]]) -> float:
    """The last time at which every method's survival functions are defined."""
    ends = [np.inf]
    for by_scenario in predictions.values():
        for _, curves in by_scenario.values():
            if curves is not None:
                fn = next((c for c in curves if c is not None), None)
                if fn is not None:
                    ends.append(float(getattr(fn, "domain", (0, fn.x[-1]))[1]))
    return min(ends)


def evaluate_split(
    X: Data, y: np.ndarray, kinds: dict[str, str], train: np.ndarray, test: np.ndarray,
    regime: str, seed: int, fold: int, profile: dict[str, Any], neural: tuple[Neural, ...],
) -> list[dict[str, Any]]:
    """Train every method on one fold under one training regime and score every scenario.

    Parameters
    ----------
    X : dict
        The whole data set (see :func:`benchmarks._scenarios.as_nullable`).
    y : structured ndarray
        Event indicator and time.
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
        One row per method and scenario with the scores and the fit diagnostics.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
        warnings.filterwarnings("ignore", category=UserWarning, module="sksurv")
        warnings.filterwarnings("ignore", message=".*were not seen in fit")  # test levels
        X_train, y_train = take(X, train), y[train]
        if regime == "added":
            remove = added_missingness(presence(X_train), ADDED_FRACTION, [seed, fold, 11])
            X_train = withhold(X_train, remove)
        X_test, y_test = take(X, test), y[test]
        scenarios = make_scenarios(list(kinds), presence(X_test), [seed, fold, 7])
        tests = [(s.name, take(withhold(X_test, remove), keep))
                 for s, keep, remove in scenarios]
        predictions, diag = fit_predict(X_train, y_train, tests, kinds, profile, neural,
                                        1000 * seed + fold)
        horizon = _horizon(predictions)
        rows = []
        for scenario, keep, _ in scenarios:
            for method, by_scenario in predictions.items():
                risk, curves = by_scenario[scenario.name]
                rows.append({"regime": regime, "seed": seed, "fold": fold,
                             "scenario": scenario.name, "method": method,
                             "family": family(method),
                             **scores(y_train, y_test[keep], risk, curves, horizon),
                             **dict.fromkeys(SURVIVAL_DIAGNOSTICS, np.nan),
                             **diag.get(method, {})})
    return rows


__all__ = ["KM", "NEURAL", "QUICK_PROFILE", "RidgeCox", "boosting", "evaluate_split",
           "evaluation_times", "family", "fit_predict", "forest", "kaplan_meier", "scores"]
