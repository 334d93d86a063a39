"""Threads and processes: GridSearchCV wall time under each thread policy, side by side.

One grid search (``--candidates`` learning rates x ``--folds`` folds) on GSE7390 (genes +
clinical, 198 patients; the defaults otherwise), timed under:

- ``n_jobs=1``, torch on every core (``torch.set_num_threads(cores)``);
- ``n_jobs=<cores>``: joblib's worker processes, where joblib limits torch to
  cores / workers threads (1 each on 2 cores): the package's default policy;
- ``n_jobs=<cores>`` with ``n_threads=<cores>``: every worker asks for every core
  (oversubscribed), to show what the limit avoids;
- ``n_jobs=1`` with one torch thread.

Each policy runs once per repeat, in a new process pool, in an order that rotates between
repeats; the best wall time per policy is reported with the ratio to the first policy,
and the scores (identical across policies up to floating-point reductions). Run::

    python -m benchmarks.threads                 # 4 candidates x 3 folds, 2 repeats
    python -m benchmarks.threads --quick         # 2 candidates x 2 folds, short training
    python -m benchmarks.threads --policies joblib single   # two of the four policies

``--policies`` names the policies to time, in this order: ``threads``, ``joblib``,
``oversubscribed``, ``single`` (default all four).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import pandas as pd

from . import datasets
from ._report import markdown

#: What ``--quick`` changes in the estimator's defaults: short training.
QUICK_PARAMS: dict[str, Any] = {"max_epochs": 10, "pretrain_epochs": 2}
#: ``--policies`` names, in the order of the policies.
POLICY_KEYS = ("threads", "joblib", "oversubscribed", "single")


def _search(policy: dict[str, Any], X: Any, y: np.ndarray, candidates: int, folds: int,
            quick: bool) -> tuple[float, float]:
    import torch
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier

    before = torch.get_num_threads()
    torch.set_num_threads(policy["main_threads"])
    params = {"device": "cpu", "random_state": 0, "n_threads": policy["n_threads"]}
    if quick:
        params.update(QUICK_PARAMS)
    grid = {"lr": list(np.geomspace(3e-4, 3e-3, candidates))}
    search = GridSearchCV(MultimodalFusionClassifier(**params), grid, scoring="roc_auc",
                          cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                          n_jobs=policy["n_jobs"], refit=False)
    start = time.perf_counter()
    search.fit(MultimodalData(X), y)
    wall = time.perf_counter() - start
    torch.set_num_threads(before)
    return wall, float(search.cv_results_["mean_test_score"].max())


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=None, help="default 4 (quick: 2)")
    parser.add_argument("--folds", type=int, default=None, help="default 3 (quick: 2)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--policies", nargs="+", choices=POLICY_KEYS, default=None,
                        help="policies to time (default all): threads = n_jobs=1 with torch "
                             "on every core, joblib = n_jobs=<cores>, oversubscribed = "
                             "n_jobs=<cores> with n_threads=<cores>, single = n_jobs=1 with "
                             "one torch thread")
    args = parser.parse_args(argv)
    candidates = args.candidates or (2 if args.quick else 4)
    folds = args.folds or (2 if args.quick else 3)
    cores = os.cpu_count() or 1
    X, y, _ = datasets.load_gse7390()
    policies = {
        f"n_jobs=1, {cores} torch threads": {"n_jobs": 1, "main_threads": cores,
                                             "n_threads": None},
        f"n_jobs={cores} (joblib: 1 thread each)": {
            "n_jobs": cores, "main_threads": cores, "n_threads": None},
        f"n_jobs={cores}, n_threads={cores} (oversubscribed)": {
            "n_jobs": cores, "main_threads": cores, "n_threads": cores},
        "n_jobs=1, 1 torch thread": {"n_jobs": 1, "main_threads": 1, "n_threads": None},
    }
    wanted = set(args.policies or POLICY_KEYS)
    names = [name for key, name in zip(POLICY_KEYS, policies, strict=True) if key in wanted]
    walls: dict[str, list[float]] = {name: [] for name in names}
    best_scores: dict[str, float] = {}
    load = os.getloadavg()[0]
    for repeat in range(args.repeats):
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            wall, score = _search(policies[name], X, y, candidates, folds, args.quick)
            walls[name].append(wall)
            best_scores[name] = score
            print(f"repeat {repeat}: {name}: {wall:.1f} s (best AUROC {score:.4f})",
                  flush=True)
    first = min(walls[names[0]])
    table = pd.DataFrame({
        "policy": names,
        "best wall (s)": [round(min(walls[n]), 1) for n in names],
        "ratio to first": [round(min(walls[n]) / first, 2) for n in names],
        "best mean AUROC": [round(best_scores[n], 4) for n in names],
    })
    print(f"\n{candidates} candidates x {folds} folds on GSE7390, {cores} cores, best of "
          f"{args.repeats}, load average {load:.1f} before / {os.getloadavg()[0]:.1f} after")
    print(markdown(table))


if __name__ == "__main__":
    main()
