"""Do a restructuring's predictions match the previous commit's, bit for bit?

Fits :class:`~mmfusion_sklearn.MultimodalFusionClassifier` (defaults but a few epochs,
so that the run takes a minute or two) on the benchmarks' real cohorts and on the
semi-synthetic Br35H image + table set, each with natural missingness and with the
first modality withheld from a third of the rows, and saves the test probabilities.
Run it on the old commit with ``--save``, then on the new one with ``--compare``; it
prints the largest absolute difference per data set::

    git worktree add /tmp/base HEAD~1
    (cd /tmp/base && python -m benchmarks.prediction_drift --save /tmp/before.npz)
    python -m benchmarks.prediction_drift --compare /tmp/before.npz

Only public names are used, so that any commit can run it. ``--quick`` fits one small
data set (the suite's smoke run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mmfusion_sklearn import MultimodalFusionClassifier

from . import datasets

#: (name, loader, extra estimator parameters)
COHORTS = [
    ("gse7390", datasets.load_gse7390, {}),
    ("wpbc", datasets.load_wpbc, {}),
    ("support2_three", datasets.load_support2_three, {}),
    ("br35h_semisynthetic", lambda: datasets.load_br35h_semisynthetic(32, max_images=240),
     {"batch_size": 32}),
    ("digits_two_halves", lambda: _digits(), {}),
]
#: Further settings fitted on GSE7390: other fusion, dropout and calibration paths.
VARIANTS = [
    ("transformer_random", {"fusion": "transformer", "modality_dropout": "random"}),
    ("zero_tokens_no_linear", {"missing_token": "zero", "linear_path": False,
                               "contrastive": "unimodal"}),
    ("calibrated_single", {"calibration": "temperature", "ensemble_size": 1}),
]
PARAMS = {"max_epochs": 6, "pretrain_epochs": 2, "patience": 3, "random_state": 0,
          "embed_dim": 32}


def _digits():
    """scikit-learn's digits (10 classes) as two modalities: top and bottom half."""
    from sklearn.datasets import load_digits

    pixels, y = load_digits(return_X_y=True)
    return {"top": pixels[:, :32], "bottom": pixels[:, 32:]}, y, {}


def _rows(X: dict, index: np.ndarray) -> dict:
    return {k: (v.iloc[index] if hasattr(v, "iloc") else v[index]) for k, v in X.items()}


def _withhold_first(X: dict, rows: np.ndarray) -> dict:
    """The first modality made missing for ``rows`` (all-NaN table rows or None)."""
    name = next(iter(X))
    values = X[name]
    if hasattr(values, "iloc"):
        values = values.copy()
        values.iloc[rows] = np.nan
    else:
        values = list(values)
        for row in rows:
            values[row] = None
    return {**X, name: values}


def run(quick: bool = False) -> dict[str, np.ndarray]:
    """Probabilities per data set and scenario, keyed ``"<data set>/<scenario>"``."""
    out = {}
    cohorts = COHORTS[:1] if quick else COHORTS
    if not quick:
        cohorts = cohorts + [(f"gse7390_{variant}", datasets.load_gse7390, extra)
                             for variant, extra in VARIANTS]
    for name, loader, extra in cohorts:
        X, y, _ = loader()
        if name == "support2_three":  # a 1,500-row subsample keeps the run short
            keep = np.random.default_rng(0).permutation(len(y))[:1500]
            X, y = _rows(X, keep), y[keep]
        order = np.random.default_rng(1).permutation(len(y))
        test, train = order[: len(y) // 4], order[len(y) // 4:]
        params = {**PARAMS, **extra}
        if quick:
            params.update(max_epochs=2, pretrain_epochs=1, embed_dim=8)
        start = time.perf_counter()
        clf = MultimodalFusionClassifier(**params).fit(_rows(X, train), y[train])
        X_test = _rows(X, test)
        out[f"{name}/natural"] = clf.predict_proba(X_test)
        withheld = _withhold_first(X_test, np.arange(0, len(test), 3))
        out[f"{name}/first_withheld"] = clf.predict_proba(withheld)
        print(f"{name}: fitted and predicted in {time.perf_counter() - start:.1f} s")
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--save FILE`` or ``--compare FILE`` (``--quick`` for a smoke run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", help="write the probabilities to this .npz file")
    parser.add_argument("--compare", help="compare with the probabilities in this .npz file")
    parser.add_argument("--quick", action="store_true", help="one small data set")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if args.save:
        np.savez(args.save, **result)
    if args.compare:
        before = np.load(args.compare)
        worst = 0.0
        for key, proba in result.items():
            diff = float(np.abs(proba - before[key]).max())
            worst = max(worst, diff)
            print(f"{key:40s} max |p_new - p_old| = {diff:.3g}")
        print(f"largest difference over every data set: {worst:.3g}")


if __name__ == "__main__":
    main()
