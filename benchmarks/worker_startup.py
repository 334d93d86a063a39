"""DataLoader workers started once per fit vs once per epoch: the start-up cost.

A file-backed fit whose files are decoded every epoch (``set_sample_cache_size(0)``, so
that the workers have work in every epoch) on Br35H JPEGs, with ``--workers`` DataLoader
workers that live for every epoch of a stage (the default) or are started anew each
epoch (``batches.PERSISTENT_WORKERS = False``, the package before). Each setting runs
``--repeats`` times in alternation; the table gives the mean seconds per epoch after the
first (the first starts the workers in both), the difference per epoch, and the
predictions' max difference (none expected: the workers' seeds do not depend on it).
Run::

    python -m benchmarks.worker_startup                  # 300 images at 64 px, 5 epochs
    python -m benchmarks.worker_startup --quick          # 40 images at 16 px, 3 epochs
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from ._report import markdown
from .imaging_scale import br35h_subset


def _fit(paths: list[str], y: np.ndarray, size: int, epochs: int, workers: int,
         persistent: bool) -> tuple[np.ndarray, np.ndarray, float]:
    from mmfusion_sklearn import Modality, MultimodalFusionClassifier, set_sample_cache_size
    from mmfusion_sklearn._training import batches

    before_bound = set_sample_cache_size(0)
    before = batches.PERSISTENT_WORKERS
    batches.PERSISTENT_WORKERS = persistent
    try:
        clf = MultimodalFusionClassifier(
            {"mri": Modality("image", image_size=(size, size))}, max_epochs=epochs,
            pretrain_epochs=0, early_stopping=False, ensemble_size=1, num_workers=workers,
            device="cpu", random_state=0, n_threads=1)
        start = time.perf_counter()
        clf.fit({"mri": paths}, y)
        fit_s = time.perf_counter() - start
        durations = clf.history_.query("stage == 'classification'")["dur"].to_numpy()
        return durations, clf.predict_proba({"mri": paths[:32]}), fit_s
    finally:
        batches.PERSISTENT_WORKERS = before
        set_sample_cache_size(before_bound)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=None, help="default 300 (quick: 40)")
    parser.add_argument("--size", type=int, default=None, help="default 64 (quick: 16)")
    parser.add_argument("--epochs", type=int, default=None, help="default 5 (quick: 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n = args.images or (40 if args.quick else 300)
    size = args.size or (16 if args.quick else 64)
    epochs = args.epochs or (3 if args.quick else 5)
    paths, labels = br35h_subset(n)
    y = np.asarray(labels)
    runs: dict[bool, list[Any]] = {True: [], False: []}
    for repeat in range(args.repeats):
        for persistent in ((True, False) if repeat % 2 == 0 else (False, True)):
            runs[persistent].append(_fit(paths, y, size, epochs, args.workers, persistent))
            durations = runs[persistent][-1][0]
            print(f"repeat {repeat}, persistent={persistent}: epochs "
                  + " ".join(f"{d:.2f}" for d in durations) + " s", flush=True)
    rows = []
    for persistent, label in ((False, "started every epoch (before)"),
                              (True, "live for the whole fit (now)")):
        later = np.mean([d[1:].mean() for d, _, _ in runs[persistent]])
        rows.append({"workers": label, "first epoch s": round(float(np.mean(
            [d[0] for d, _, _ in runs[persistent]])), 3),
            "later epochs s (mean)": round(float(later), 3),
            "fit s (mean)": round(float(np.mean([f for _, _, f in runs[persistent]])), 2)})
    saved = rows[0]["later epochs s (mean)"] - rows[1]["later epochs s (mean)"]
    diff = max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(runs[True], runs[False]))
    print(f"\n{n} Br35H images at {size} px, {epochs} epochs, {args.workers} workers, files "
          f"decoded every epoch, {args.repeats} repeats")
    print(markdown(pd.DataFrame(rows)))
    print(f"\nstart-up cost saved per later epoch: {saved:.3f} s; max |dp| between the "
          f"two: {diff:.2e}")


if __name__ == "__main__":
    main()
