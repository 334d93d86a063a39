"""Scoring a large frame: one process against a local Dask cluster, side by side.

One model is fitted on GSE7390 (scikit-survival's ``load_breast_cancer``: 198 real
patients, 76 gene expressions + 4 clinical columns, label = distant metastasis), on one
DataFrame whose columns ``modalities=`` assigns to ``genes`` and ``clinical``. Its rows
are then resampled with replacement to ``--rows`` (1,000,000 by default), and the genes
of a ``--missing`` fraction of them blanked (patients without a microarray), and the
frame is scored twice in one run:

- ``one process``: ``clf.predict_proba(frame)`` on the pandas frame, torch on every
  core (``torch.get_num_threads()``, as a user gets it);
- ``dask``: :func:`mmfusion_sklearn.dask.predict_proba` over the same rows as a Dask
  DataFrame of ``--partitions`` partitions on a ``distributed.LocalCluster`` of
  ``--workers`` single-threaded worker processes, which hold the partitions already
  (built on the workers and persisted before the clock starts, as data read from shared
  storage would be). The time includes shipping the model (its save() bytes), loading it
  once per worker and gathering the probabilities on the client.

A warm-up call on a small frame comes first on each side (imports, the workers' first
model load). Reported: rows per second of each (best of ``--repeats``), the ratio
dask / one process, and the largest absolute difference between their probabilities.
Run::

    python -m benchmarks.dask_predict                  # 1,000,000 rows, 2 workers
    python -m benchmarks.dask_predict --quick          # 100,000 rows, short training
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from . import datasets

#: What ``--quick`` changes in the estimator's defaults: short training.
QUICK_PARAMS = {"max_epochs": 10, "pretrain_epochs": 2}


def _frame() -> tuple[pd.DataFrame, np.ndarray, dict[str, list[str]]]:
    X, y, _ = datasets.load_gse7390()
    frame = pd.concat([X["genes"], X["clinical"]], axis=1)
    spec = {"genes": list(X["genes"].columns), "clinical": list(X["clinical"].columns)}
    return frame, y, spec


def _partition(k: int, base: pd.DataFrame, sizes: list[int], genes: list[str],
               missing: float, seed: int) -> pd.DataFrame:
    """Partition ``k`` of the resampled frame: the same rows wherever it is built."""
    rng = np.random.default_rng([seed, k])
    part = base.iloc[rng.integers(0, len(base), size=sizes[k])].copy()
    part.loc[rng.random(sizes[k]) < missing, genes] = np.nan
    part.index = pd.RangeIndex(sum(sizes[:k]), sum(sizes[:k + 1]), name="row")
    return part


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="default 1,000,000 "
                        "(quick: 100,000)")
    parser.add_argument("--partitions", type=int, default=None,
                        help="default one per 50,000 rows")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--missing", type=float, default=0.3,
                        help="fraction of rows without genes")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    partitions = args.partitions or max(1, rows // 50_000)

    import dask.dataframe as dd
    import torch
    from distributed import Client, LocalCluster, wait

    from mmfusion_sklearn import MultimodalFusionClassifier
    from mmfusion_sklearn import dask as mmdask

    base, y, spec = _frame()
    params = {"random_state": 0, "device": "cpu"}
    if args.quick:
        params.update(QUICK_PARAMS)
    start = time.perf_counter()
    clf = MultimodalFusionClassifier(spec, **params).fit(base, y)
    print(f"fit on GSE7390 ({len(base)} patients): {time.perf_counter() - start:.1f} s, "
          f"{len(clf.history_)} epochs", flush=True)

    sizes = [len(chunk) for chunk in np.array_split(np.arange(rows), partitions)]
    make = (base, sizes, spec["genes"], args.missing, 0)
    frame = pd.concat([_partition(k, *make) for k in range(partitions)])
    threads = torch.get_num_threads()
    clf.predict_proba(frame.iloc[:1000])  # warm-up
    one_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        one = clf.predict_proba(frame)
        one_times.append(time.perf_counter() - start)
        print(f"one process: {one_times[-1]:.1f} s", flush=True)

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        ddf = dd.from_map(_partition, range(partitions), args=make, meta=frame.iloc[:0],
                          divisions=[0, *np.cumsum(sizes[:-1]).tolist(), rows - 1])
        ddf = ddf.persist()
        wait(ddf)
        small = dd.from_pandas(frame.iloc[:2000], npartitions=2 * args.workers)
        mmdask.predict_proba(clf, small).compute()  # warm-up: imports, first load
        dask_times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = mmdask.predict_proba(clf, ddf).compute()
            dask_times.append(time.perf_counter() - start)
            print(f"dask: {dask_times[-1]:.1f} s", flush=True)
        loads = client.run(mmdask._cache_info)

    assert out.index.equals(frame.index)
    difference = float(np.abs(out.to_numpy() - one).max())
    one_rate, dask_rate = rows / min(one_times), rows / min(dask_times)
    print(f"\n{rows:,} rows ({args.missing:.0%} without genes), {partitions} partitions, "
          f"{os.cpu_count()} cores, best of {args.repeats}, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(f"one process ({threads} torch threads): {one_rate:,.0f} rows/s "
          f"({min(one_times):.1f} s)")
    print(f"dask, {args.workers} single-threaded workers: {dask_rate:,.0f} rows/s "
          f"({min(dask_times):.1f} s)")
    print(f"ratio dask / one process: {dask_rate / one_rate:.2f}")
    print(f"max abs difference of the probabilities: {difference:.2e}")
    print(f"model loads per worker: {sorted(sum(v.values()) for v in loads.values())}")


if __name__ == "__main__":
    main()
