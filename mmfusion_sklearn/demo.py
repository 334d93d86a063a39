"""Demo on real paired data: GSE7390 breast cancer, 76 gene expressions + clinical.

Run ``python -m mmfusion_sklearn.demo`` (needs ``scikit-survival``: install the
``demo`` extra). It cross-validates the classifier of distant metastasis with its
default parameters, the same network without modality dropout, and the baselines a
data scientist tries first: a logistic regression per modality (scikit-learn's default
``C=1``, and ``C`` tuned by an inner cross-validation) and their late fusion (the mean
of the per-modality probabilities), all on the same folds; it prints the test AUROC and
log loss with all modalities, genes only and clinical only.
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

from . import MultimodalData, MultimodalFusionClassifier
from .metrics import restrict_modalities

#: Scenarios of the table: the modalities given at test time.
SCENARIOS = {"all modalities": ("genes", "clinical"), "genes only": ("genes",),
             "clinical only": ("clinical",)}
NETWORKS = {
    "ours (defaults)": {},
    "ours, no modality dropout": {"modality_dropout": "none", "contrastive": None},
}


def load_gse7390() -> tuple[MultimodalData, np.ndarray]:
    """GSE7390 (198 patients) as two modalities, "genes" and "clinical".

    Returns
    -------
    X : MultimodalData
        "genes": 76 expression values; "clinical": age, tumour size, grade, ER status
        (grade and ER categorical).
    y : ndarray of int
        1 where distant metastasis occurred during follow-up.
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
    return X, outcome["e.tdm"].astype(int)


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
    columns = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                  StandardScaler()),
         make_column_selector(dtype_include="number")),
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="ignore")),
         make_column_selector(dtype_exclude="number")),
    ])
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
    from joblib import Parallel, delayed

    X, y = load_gse7390()
    folds = list(RepeatedStratifiedKFold(
        n_splits=n_splits, n_repeats=n_repeats, random_state=random_state).split(X, y))
    jobs = (delayed(_fold)(X, y, train, test, random_state + i, params)
            for i, (train, test) in enumerate(folds))
    rows = []
    bar = tqdm(total=len(folds), desc="GSE7390 CV folds", disable=not verbose)
    for result in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
        rows += result
        bar.update(1)
    bar.close()
    scores = pd.DataFrame(rows)
    order = list(NETWORKS) + ["logistic regression", "logistic regression (tuned C)"]
    table = scores.groupby(["model", "scenario"], sort=False)[["auroc", "log loss"]].agg(
        ["mean", "std"])
    return table.reindex(pd.MultiIndex.from_product([order, list(SCENARIOS)]))


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
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":  # pragma: no cover
    main()
