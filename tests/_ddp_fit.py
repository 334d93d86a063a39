"""A fit under torchrun, for tests/test_distributed.py (not collected by pytest).

Usage: torchrun --standalone --nproc_per_node=N tests/_ddp_fit.py OUT [--distributed auto]
[--task regression|survival]

Every rank fits the same estimator on the same data (scikit-learn's breast cancer
table split into two modalities, some rows missing one), predicts the held-out rows and
writes ``OUT/rank{r}.npz``: probabilities, a digest of the weights, the best epoch and
the epoch losses. It also calls ``save(OUT/model_rank{r})``, which only rank 0 writes.
"""

import argparse
import hashlib
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from mmfusion_sklearn import (
    MultimodalFusionClassifier,
    MultimodalFusionRegressor,
    MultimodalFusionSurvivalAnalysis,
)


def cohort(seed: int = 0):
    """Two modalities of the breast cancer table, 15% of the rows missing one of them."""
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(seed)
    X = X.astype(np.float32)
    means, rest = X[:, :10].copy(), X[:, 10:].copy()
    drop = rng.random(len(y)) < 0.15
    which = rng.random(len(y)) < 0.5
    means[drop & which] = np.nan
    rest[drop & ~which] = np.nan
    index = np.arange(len(y))
    train, test = train_test_split(index, test_size=0.3, stratify=y, random_state=seed)
    data = {"means": means, "rest": rest}
    return ({k: v[train] for k, v in data.items()}, y[train],
            {k: v[test] for k, v in data.items()}, y[test])


def estimator(task: str = "classification", **params) -> MultimodalFusionClassifier:
    """The small, quick configuration the test and the benchmark fit."""
    defaults = dict(embed_dim=32, max_epochs=30, pretrain_epochs=3, patience=5,
                    batch_size=64, random_state=0)
    cls = {"regression": MultimodalFusionRegressor,
           "survival": MultimodalFusionSurvivalAnalysis}.get(task, MultimodalFusionClassifier)
    return cls(**{**defaults, **params})


def survival_target(label: np.ndarray, seed: int) -> np.ndarray:
    """Censored times whose hazard is three times higher for label 0 (malignant)."""
    rng = np.random.default_rng(seed)
    time = rng.exponential(np.where(label == 0, 1.0, 3.0))
    event = rng.random(len(label)) < 0.7
    return np.array(list(zip(event, time)), dtype=[("event", bool), ("time", float)])


def weights_digest(clf: MultimodalFusionClassifier) -> str:
    """SHA-256 of every member's parameters, in order."""
    digest = hashlib.sha256()
    for net in clf._nets:
        for name, tensor in sorted(net.module_.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--distributed", default="auto")
    parser.add_argument("--params", default="{}", help="estimator parameters, JSON")
    parser.add_argument("--task", default="classification",
                        choices=["classification", "regression", "survival"],
                        help="regression: the regressor, with the first table column "
                             "of each row's modalities summed as a continuous target; "
                             "survival: censored times drawn from the label")
    args = parser.parse_args()
    distributed = {"auto": "auto", "true": True, "false": False}[args.distributed.lower()]
    rank = int(os.environ.get("RANK", "0"))
    X, y, X_test, y_test = cohort()
    if args.task == "regression":  # a continuous target from the same cohort
        y = y + np.nan_to_num(X["means"][:, 0]) / 10.0
        y_test = y_test + np.nan_to_num(X_test["means"][:, 0]) / 10.0
    elif args.task == "survival":
        y, y_test = survival_target(y, 1), survival_target(y_test, 2)
    clf = estimator(args.task, distributed=distributed, **json.loads(args.params))
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start
    predict = "predict_proba" if args.task == "classification" else "predict"
    proba = getattr(clf, predict)(X_test)
    if args.task == "survival":  # the curves too, from each rank's baselines
        proba = np.column_stack([proba, clf.predict_survival_function(X_test,
                                                                      return_array=True)])
    # nothing of the process group stays in the fitted model
    unpickled = getattr(pickle.loads(pickle.dumps(clf)), predict)(X_test)
    clf.save(args.out / f"model_rank{rank}")
    history = clf.history_[clf.history_["stage"] == args.task]
    np.savez(
        args.out / f"rank{rank}.npz", proba=proba, unpickled=unpickled, y_test=y_test,
        seconds=seconds, epochs=len(history),
        digest=weights_digest(clf), best_epoch=-1 if clf.best_epoch_ is None
        else clf.best_epoch_, pooled=history["pooled_valid_loss"].to_numpy(),
        train_loss=history["train_loss"].to_numpy(),
        world=int(torch.distributed.get_world_size()
                  if torch.distributed.is_initialized() else 1),
    )


if __name__ == "__main__":
    main()
