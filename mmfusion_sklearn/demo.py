"""Demo on real paired data: GSE7390 breast cancer, 76 gene expressions + clinical.

Run ``python -m mmfusion_sklearn.demo`` (needs ``scikit-survival``: install the
``demo`` extra). It cross-validates the classifier of distant metastasis with its
default parameters, the same network without modality dropout, and the baselines a
data scientist tries first: a logistic regression per modality (scikit-learn's default
``C=1``, and ``C`` tuned by an inner cross-validation) and their late fusion (the mean
of the per-modality probabilities), all on the same folds; it prints the test AUROC and
log loss with all modalities, genes only and clinical only. Then, on the same folds
and the patients' real follow-up times (censoring kept), the survival model against
ridge-Cox models per modality (penalty by an inner cross-validation) and their late
fusion (the mean of standardised risk scores): Harrell's concordance index.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tqdm.auto import tqdm

from . import MultimodalData, MultimodalFusionClassifier, MultimodalFusionSurvivalAnalysis
from .metrics import restrict_modalities

#: Scenarios of the table: the modalities given at test time.
SCENARIOS = {"all modalities": ("genes", "clinical"), "genes only": ("genes",),
             "clinical only": ("clinical",)}
NETWORKS = {
    "ours (defaults)": {},
    "ours, no modality dropout": {"modality_dropout": "none", "contrastive": None},
}


def load_gse7390(survival: bool = False) -> tuple[MultimodalData, np.ndarray]:
    """GSE7390 (198 patients) as two modalities, "genes" and "clinical".

    Parameters
    ----------
    survival : bool, default=False
        Return the follow-up (event, time) instead of the event alone.

    Returns
    -------
    X : MultimodalData
        "genes": 76 expression values; "clinical": age, tumour size, grade, ER status
        (grade and ER categorical).
    y : ndarray
        1 where distant metastasis occurred during follow-up; with ``survival``, a
        structured array of that event (bool) and the time to it or to the last
        follow-up (days).
    """
    try:
        from sksurv.datasets import load_breast_cancer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The demo needs scikit-survival: pip install scikit-survival==0.28.0 (the demo "
            "extra; from a checkout of mmfusion_sklearn: pip install -e '.[demo]')"
        ) from exc
    frame, outcome = load_breast_cancer()
    genes = [c for c in frame.columns if c.startswith("X")]
    clinical = [c for c in frame.columns if c not in genes]
    X = MultimodalData(frame, modalities={"genes": genes, "clinical": clinical})
    if survival:
        return X, np.array(list(zip(outcome["e.tdm"], outcome["t.tdm"])),
                           dtype=[("metastasis", bool), ("days", float)])
    return X, outcome["e.tdm"].astype(int)


def _columns() -> ColumnTransformer:
    """Imputation (+ indicators) and scaling of numbers, one-hot encoding of categories."""
    return ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                  StandardScaler()),
         make_column_selector(dtype_include="number")),
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="ignore")),
         make_column_selector(dtype_exclude="number")),
    ])


def ridge_cox() -> Any:
    """A ridge Cox model (scikit-survival) after :func:`_columns`, its penalty ``alpha``
    chosen from 0.1 to 1000 by an inner 5-fold CV on Harrell's concordance index."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    class _EventFolds(StratifiedKFold):  # folds stratified by event (y's first field)
        def split(self, X, y=None, groups=None):
            return super().split(X, y[y.dtype.names[0]], groups)

    return GridSearchCV(make_pipeline(_columns(), CoxPHSurvivalAnalysis()),
                        {"coxphsurvivalanalysis__alpha": np.logspace(-1, 3, 9)},
                        cv=_EventFolds(5, shuffle=True, random_state=0))


def logistic(tuned: bool = False) -> Pipeline:
    """Imputation (+ indicators), one-hot encoding, scaling, logistic regression.

    Parameters
    ----------
    tuned : bool, default=False
        False: ``C=1``; True: ``C`` from 0.001 to 10 by an inner 5-fold CV (log loss).

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    columns = _columns()
    model = (LogisticRegressionCV(Cs=np.logspace(-3, 1, 9), cv=5, scoring="neg_log_loss",
                                  max_iter=5000)
             if tuned else LogisticRegression(max_iter=5000))
    return make_pipeline(columns, model)


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    return {"auroc": roc_auc_score(y, proba),
            "log loss": log_loss(y, np.clip(proba, 1e-6, 1 - 1e-6), labels=[0, 1])}


def _fold(X: MultimodalData, y: np.ndarray, train: np.ndarray, test: np.ndarray,
          seed: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Fit every model on one training fold and score every scenario on its test fold."""
    torch.set_num_threads(1)
    rows = []
    for label, overrides in NETWORKS.items():
        clf = MultimodalFusionClassifier(**{**overrides, **params}, random_state=seed)
        clf.fit(X[train], y[train])
        for scenario, names in SCENARIOS.items():
            proba = clf.predict_proba(restrict_modalities(X[test], list(names)))[:, 1]
            rows.append({"model": label, "scenario": scenario, **_scores(y[test], proba)})
    frames = {name: X.values(name) for name in ("genes", "clinical")}
    for tuned, suffix in ((False, ""), (True, " (tuned C)")):
        proba = {}
        with warnings.catch_warnings():  # scikit-learn 1.9 announces new CV defaults
            warnings.filterwarnings("ignore", category=FutureWarning)
            for name, frame in frames.items():
                model = logistic(tuned).fit(frame.iloc[train], y[train])
                proba[name] = model.predict_proba(frame.iloc[test])[:, 1]
        late = (proba["genes"] + proba["clinical"]) / 2
        for scenario, value in (("all modalities", late), ("genes only", proba["genes"]),
                                ("clinical only", proba["clinical"])):
            model = "late fusion of LR" if scenario == "all modalities" else "LR"
            rows.append({"model": f"logistic regression{suffix}", "scenario": scenario,
                         "detail": model, **_scores(y[test], value)})
    return rows


def _survival_fold(X: MultimodalData, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                   seed: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The survival model and the ridge-Cox baselines on one fold: concordance indices."""
    from sksurv.metrics import concordance_index_censored

    torch.set_num_threads(1)
    event, time = y[y.dtype.names[0]], y[y.dtype.names[1]]
    rows = []
    surv = MultimodalFusionSurvivalAnalysis(**params, random_state=seed)
    surv.fit(X[train], y[train])
    for scenario, names in SCENARIOS.items():
        rows.append({"model": "ours, survival (defaults)", "scenario": scenario,
                     "c_index": surv.score(restrict_modalities(X[test], list(names)),
                                           y[test])})
    risk = {}
    with warnings.catch_warnings():  # scikit-learn announces new defaults
        warnings.filterwarnings("ignore", category=FutureWarning)
        for name in ("genes", "clinical"):
            frame = X.values(name)
            model = ridge_cox().fit(frame.iloc[train], y[train])
            train_risk = model.predict(frame.iloc[train])
            # standardised on the training rows, so the specialists weigh alike
            risk[name] = ((model.predict(frame.iloc[test]) - train_risk.mean())
                          / max(train_risk.std(), 1e-12))
    late = (risk["genes"] + risk["clinical"]) / 2
    for scenario, value in (("all modalities", late), ("genes only", risk["genes"]),
                            ("clinical only", risk["clinical"])):
        rows.append({"model": "ridge Cox", "scenario": scenario,
                     "c_index": concordance_index_censored(event[test], time[test],
                                                           value)[0]})
    return rows


def run_survival(n_splits: int = 5, n_repeats: int = 3, random_state: int = 0,
                 verbose: int = 1, n_jobs: int = 2, **params: Any) -> pd.DataFrame:
    """Cross-validate the survival model and the ridge-Cox baselines on the real
    follow-up times, on the folds of :func:`run` (stratified by event).

    Parameters
    ----------
    n_splits, n_repeats : int
        Repeated stratified k-fold.
    random_state : int
        Seeds the folds and the networks.
    verbose : int
        1 shows a progress bar.
    n_jobs : int
        Folds fitted in parallel (one torch thread each).
    **params
        Extra parameters of the survival model (e.g. ``max_epochs``).

    Returns
    -------
    pandas.DataFrame
        Mean and standard deviation of the test concordance index (Harrell's) per model
        and scenario; the ridge Cox row of "all modalities" is the late fusion of the
        two.
    """
    X, y = load_gse7390(survival=True)
    return _cross_validate(
        _survival_fold, X, y, y[y.dtype.names[0]].astype(int), "GSE7390 survival CV folds",
        ["c_index"], ["ours, survival (defaults)", "ridge Cox"], n_splits, n_repeats,
        random_state, verbose, n_jobs, params)


def _cross_validate(fold: Any, X: MultimodalData, y: np.ndarray, strata: np.ndarray,
                    desc: str, metrics: list[str], order: list[str], n_splits: int,
                    n_repeats: int, random_state: int, verbose: int, n_jobs: int,
                    params: dict[str, Any]) -> pd.DataFrame:
    """Run ``fold`` on every repeated stratified split (in parallel, a progress bar) and
    return the mean and standard deviation of ``metrics`` per model and scenario."""
    from joblib import Parallel, delayed

    folds = list(RepeatedStratifiedKFold(
        n_splits=n_splits, n_repeats=n_repeats, random_state=random_state).split(X, strata))
    jobs = (delayed(fold)(X, y, train, test, random_state + i, params)
            for i, (train, test) in enumerate(folds))
    rows = []
    bar = tqdm(total=len(folds), desc=desc, disable=not verbose)
    for result in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
        rows += result
        bar.update(1)
    bar.close()
    table = pd.DataFrame(rows).groupby(["model", "scenario"], sort=False)[metrics].agg(
        ["mean", "std"])
    return table.reindex(pd.MultiIndex.from_product([order, list(SCENARIOS)]))


def run(n_splits: int = 5, n_repeats: int = 3, random_state: int = 0, verbose: int = 1,
        n_jobs: int = 2, **params: Any) -> pd.DataFrame:
    """Cross-validate every model on the same folds and return the score table.

    Parameters
    ----------
    n_splits, n_repeats : int
        Repeated stratified k-fold.
    random_state : int
        Seeds the folds and the networks.
    verbose : int
        1 shows a progress bar.
    n_jobs : int
        Folds fitted in parallel (one torch thread each).
    **params
        Extra estimator parameters (e.g. ``max_epochs``).

    Returns
    -------
    pandas.DataFrame
        Mean and standard deviation of the test AUROC and log loss per model and
        scenario.
    """
    X, y = load_gse7390()
    order = list(NETWORKS) + ["logistic regression", "logistic regression (tuned C)"]
    return _cross_validate(_fold, X, y, y, "GSE7390 CV folds", ["auroc", "log loss"], order,
                           n_splits, n_repeats, random_state, verbose, n_jobs, params)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: print the score table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=2,
                        help="folds fitted in parallel, one torch thread each (default 2)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table = run(args.splits, args.repeats, args.seed, n_jobs=args.n_jobs)
    print("\nGSE7390 (198 patients; label: distant metastasis), "
          f"{args.splits}-fold CV x {args.repeats} repeats, the same folds for every model")
    print("test AUROC (higher is better) / log loss (lower is better), mean +/- std over "
          "folds\n")
    print(f"{'model':32s}" + "".join(f"{s:>26s}" for s in SCENARIOS))
    for model in dict.fromkeys(table.index.get_level_values(0)):
        cells = []
        for scenario in SCENARIOS:
            row = table.loc[(model, scenario)]
            cells.append(f"{row[('auroc', 'mean')]:.3f}±{row[('auroc', 'std')]:.3f} / "
                         f"{row[('log loss', 'mean')]:.3f}")
        print(f"{model:32s}" + "".join(f"{c:>26s}" for c in cells))
    print("\nlogistic regression: one per modality (imputation, one-hot, scaling); with all "
          "modalities their\nlate fusion (mean probability). Ours is one model for every "
          "scenario.")
    survival = run_survival(args.splits, args.repeats, args.seed, n_jobs=args.n_jobs)
    print("\nThe same folds, the real follow-up times (metastasis-free days, censoring "
          "kept): test concordance\nindex (Harrell's C, higher is better; 0.5 is chance), "
          "mean +/- std over folds\n")
    print(f"{'model':32s}" + "".join(f"{s:>26s}" for s in SCENARIOS))
    for model in dict.fromkeys(survival.index.get_level_values(0)):
        cells = [f"{survival.loc[(model, s), ('c_index', 'mean')]:.3f}"
                 f"±{survival.loc[(model, s), ('c_index', 'std')]:.3f}" for s in SCENARIOS]
        print(f"{model:32s}" + "".join(f"{c:>26s}" for c in cells))
    print("\nridge Cox: one per modality (penalty by inner CV); with all modalities their "
          "late fusion (mean of\nstandardised risk scores). Ours is one model for every "
          "scenario.")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":  # pragma: no cover
    main()
