"""Small cohorts: real data sets subsampled to 150 and 300 patients, many repeats.

The commonest case in clinical research is a cohort of 100-300 patients with tens to
hundreds of features per modality. For each cohort and size, ``--repeats`` stratified
subsamples are drawn from the full data set (seed r for repetition r); each is
cross-validated with stratified ``--folds``-fold CV, and every method is trained and
scored on the same splits and scenarios as in ``benchmarks.quality`` (regime
``natural`` only). Ours is tested against the logistic late fusion (``late LR``: the
usual first try) and against the best baseline of each scenario, with Holm's
correction over the scenarios of a cohort. Run::

    python -m benchmarks.small_cohorts                 # 10 repeats x 5 folds (~40 min)
    python -m benchmarks.small_cohorts --quick         # 2 repeats x 3 folds, short training
    python -m benchmarks.small_cohorts --repeats 20 --cohorts support2@150

A full run writes the ``small_cohorts`` section of ``docs/benchmarks.md``; ``--quick``
writes ``benchmarks/results/small_cohorts_quick.md``. Per-split scores go to
``benchmarks/results/small_cohorts[_quick].csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from . import datasets
from ._methods import NEURAL, QUICK_PROFILES, evaluate_split
from ._parallel import unordered_parallel
from ._report import markdown, method_order, metric_table, tests_table, write_section
from ._scenarios import as_nullable, take
from ._stats import METRICS, TESTED, best_baseline_tests, summary, verdict_counts, versus_tests

ROOT = Path(__file__).resolve().parents[1]
DOCS_MD = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results"
LOADERS = {"support2": datasets.load_support2, "wpbc": datasets.load_wpbc,
           "gse7390": datasets.load_gse7390, "nki70": datasets.load_nki70}
DEFAULT_COHORTS = ("support2@150", "support2@300", "wpbc@150", "gse7390@150")
NETWORKS = ("ours", "no contrastive")
#: The baseline the issue names: a logistic regression per modality, averaged.
TARGET = "late LR"


def subsample(X: dict[str, Any], y: np.ndarray, n: int, seed: int) -> tuple[dict, np.ndarray]:
    """A stratified random subsample of ``n`` patients (all of them if n >= len(y)).

    Parameters
    ----------
    X : dict
        Modalities.
    y : ndarray
        Labels.
    n : int
        Size.
    seed : int
        Random seed.

    Returns
    -------
    tuple
        ``(X, y)`` of the subsample, rows in their original order.
    """
    if n >= len(y):
        return X, y
    keep = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)[0]
    keep = np.sort(keep)
    return take(X, keep), y[keep]


def cohort_splits(cohort: str, repeats: int, folds: int):
    """``(cohort, X, y, repeat, fold, train, test)`` of every split of a cohort.

    Parameters
    ----------
    cohort : str
        ``"<data set>@<size>"`` (a key of :data:`LOADERS`).
    repeats, folds : int
        Stratified subsamples, and CV folds per subsample.
    """
    name, size = cohort.split("@")
    X, y, _ = LOADERS[name]()
    X = as_nullable(X)
    for repeat in range(repeats):
        Xs, ys = subsample(X, y, int(size), repeat)
        cv = StratifiedKFold(folds, shuffle=True, random_state=repeat)
        for fold, (train, test) in enumerate(cv.split(np.zeros(len(ys)), ys)):
            yield cohort, Xs, ys, repeat, fold, train, test


def _run_one(cohort, X, y, repeat, fold, train, test, profile):
    kinds = dict.fromkeys(X, "tabular")
    neural = tuple(c for c in NEURAL if c.label in NETWORKS)
    rows = evaluate_split(X, y, kinds, train, test, "natural", repeat, fold, profile, neural)
    for row in rows:
        row["cohort"] = cohort
    return rows


def run(cohorts: list[str], repeats: int, folds: int, quick: bool,
        n_jobs: int) -> pd.DataFrame:
    """Cross-validate every method on every cohort and size.

    Parameters
    ----------
    cohorts : list of str
        ``"<data set>@<size>"`` entries.
    repeats, folds : int
        Subsamples per cohort and CV folds per subsample.
    quick : bool
        Short training.
    n_jobs : int
        Parallel workers.

    Returns
    -------
    pandas.DataFrame
        One row per cohort, repeat, fold, scenario and method.
    """
    from joblib import delayed

    profile = QUICK_PROFILES["table"] if quick else {}
    jobs = [delayed(_run_one)(*task, profile) for c in cohorts
            for task in cohort_splits(c, repeats, folds)]
    print(f"{len(jobs)} splits, n_jobs={n_jobs}", flush=True)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    parallel = unordered_parallel(n_jobs)
    for i, result in enumerate(parallel(jobs)):
        rows += result
        if (i + 1) % 10 == 0 or i + 1 == len(jobs):
            print(f"{i + 1}/{len(jobs)} splits done, {time.perf_counter() - start:.0f} s",
                  flush=True)
    frame = pd.DataFrame(rows)
    return frame.sort_values(["cohort", "seed", "fold"], kind="stable", ignore_index=True)


def section(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The markdown section of the small-cohort benchmark.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    meta : dict
        ``command``, ``date``, ``wall``, ``machine``, ``repeats``, ``folds``.

    Returns
    -------
    str
    """
    lines = ["## Small cohorts (150 and 300 patients)", "",
             f"Command: `{meta['command']}`", "",
             f"- date: {meta['date']}; {meta['repeats']} stratified subsamples x "
             f"{meta['folds']}-fold CV per cohort; wall time {meta['wall'] / 60:.1f} min "
             f"({meta['machine']})",
             "- each subsample is drawn from the full data set with seed r (repetition "
             "r); every method sees the same splits; regime `natural` only",
             f"- ours is tested against `{TARGET}` (a logistic regression per modality, "
             "probabilities averaged: the usual first try) and against the best baseline "
             "of each scenario; Wilcoxon signed-rank over the paired splits, Holm over "
             "the scenarios of one cohort", ""]
    header_end = len(lines)
    summary_rows = []
    for cohort in dict.fromkeys(frame["cohort"]):
        sub = frame[frame["cohort"] == cohort]
        scenarios = list(dict.fromkeys(sub["scenario"]))
        methods = method_order(list(sub["method"].unique()))
        stats = summary(sub)
        lines += [f"### {cohort}", ""]
        for metric in TESTED:
            lines += [f"{METRICS[metric]}:", "",
                      metric_table(stats, "natural", metric, scenarios, methods), ""]
        for metric in TESTED:
            target = best_baseline_tests(sub, scenarios, metric, baselines=[TARGET])
            best = best_baseline_tests(sub, scenarios, metric)
            lines += [f"Ours against `{TARGET}`, {METRICS[metric]}:", "",
                      tests_table(target, metric), "",
                      f"Ours against the best baseline, {METRICS[metric]}:", "",
                      tests_table(best, metric), ""]
            for label, tests in ((TARGET, target), ("best baseline", best)):
                counts = verdict_counts(tests)
                summary_rows.append({"cohort": cohort, "metric": METRICS[metric],
                                     "against": label, **counts,
                                     "ours ahead (mean)": int(sum(
                                         (tests["delta"] < 0) if metric == "logloss"
                                         else (tests["delta"] > 0)))})
        if "no contrastive" in set(sub["method"]):
            added = versus_tests(sub, scenarios, "no contrastive")
            lines += ["What the contrastive stage adds (ours - `no contrastive`, AUROC, "
                      "Holm over the scenarios):", "", tests_table(added), ""]
    table = pd.DataFrame(summary_rows)
    lines[header_end:header_end] = [
        "Summary (verdicts after Holm; \"ours ahead\" counts scenarios where "
                  "ours has the better mean):", "", markdown(table), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohorts", nargs="+", default=list(DEFAULT_COHORTS))
    parser.add_argument("--repeats", type=int, default=None, help="default 10 (quick: 2)")
    parser.add_argument("--folds", type=int, default=None, help="default 5 (quick: 3)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 10)
    folds = args.folds or (3 if args.quick else 5)
    argv = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.small_cohorts " + shlex.join(
        a for a in argv if a != "--report-only")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"small_cohorts{'_quick' if args.quick else ''}"
    if args.report_only:
        frame = pd.read_csv(stem.with_suffix(".csv"))
        meta = json.loads(stem.with_suffix(".json").read_text())
    else:
        start, load = time.perf_counter(), os.getloadavg()[0]
        frame = run(args.cohorts, repeats, folds, args.quick, args.n_jobs)
        meta = {"command": command, "repeats": repeats, "folds": folds,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "wall": time.perf_counter() - start,
                "machine": f"{os.cpu_count()} CPU cores, n_jobs={args.n_jobs}, 1 torch "
                           f"thread per worker, load average {load:.1f} before / "
                           f"{os.getloadavg()[0]:.1f} after"}
        frame.to_csv(stem.with_suffix(".csv"), index=False)
        stem.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    text = section(frame, meta)
    md = RESULTS / "small_cohorts_quick.md" if args.quick else DOCS_MD
    write_section(md, "small_cohorts", text, "")
    print(text, flush=True)
    print(f"wrote {md.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
