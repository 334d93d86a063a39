"""Calibration under missing modalities: ECE and log loss before and after temperatures.

Ours with its defaults (``calibration=None``) against the same estimator with
``calibration="temperature"`` (one temperature per subset of modalities, fitted on the
held-out rows), trained on the same splits with the same seed, so that the networks are
identical and only the temperatures differ. Every scenario of ``benchmarks.quality``
(all modalities, each one alone, withheld at random) is scored; expected calibration
error (10 equal-width bins), log loss and AUROC per scenario, the paired difference
(after - before) with a Wilcoxon signed-rank p over the splits and Holm's correction
over the scenarios of a cohort. Run::

    python -m benchmarks.calibration                  # 3 repeats x 5 folds per cohort
    python -m benchmarks.calibration --quick          # 1 repeat x 3 folds, short training
    python -m benchmarks.calibration --cohorts wpbc@198 support2@1000

A full run writes the ``calibration`` section of ``docs/benchmarks.md``; ``--quick``
writes ``benchmarks/results/calibration_quick.md``. Per-split scores go to
``benchmarks/results/calibration[_quick].csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from ._methods import QUICK_PROFILES, Neural, evaluate_split
from ._parallel import unordered_parallel
from ._report import markdown, write_section
from ._stats import holm, paired, verdict
from .small_cohorts import DOCS_MD, RESULTS, ROOT, cohort_splits

DEFAULT_COHORTS = ("gse7390@198", "wpbc@198", "nki70@144", "support2@300", "support2@2000")
BEFORE, AFTER = "ours", "ours + temperature"
NETWORKS = (Neural(BEFORE, {}, "ours"),
            Neural(AFTER, {"calibration": "temperature"}, "ablation"))
COMPARED = ("ece", "logloss", "auroc")


def _run_one(cohort, X, y, repeat, fold, train, test, profile):
    kinds = dict.fromkeys(X, "tabular")
    # the two networks only: the baselines would be fitted and scored for nothing
    rows = evaluate_split(X, y, kinds, train, test, "natural", repeat, fold, profile,
                          NETWORKS, baselines=False)
    return [dict(row, cohort=cohort) for row in rows if row["method"] in (BEFORE, AFTER)]


def run(cohorts: list[str], repeats: int, folds: int, quick: bool,
        n_jobs: int, ensemble_size: int | None = None) -> pd.DataFrame:
    """Fit both configurations on every split of every cohort.

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
    ensemble_size : int, default=None
        Networks per fit (None: the estimator's "auto").

    Returns
    -------
    pandas.DataFrame
        One row per cohort, repeat, fold, scenario and configuration.
    """
    from joblib import delayed

    profile = dict(QUICK_PROFILES["table"]) if quick else {}
    if ensemble_size is not None:
        profile["ensemble_size"] = ensemble_size
    jobs = [delayed(_run_one)(*task, profile) for c in cohorts
            for task in cohort_splits(c, repeats, folds)]
    print(f"{len(jobs)} splits, n_jobs={n_jobs}", flush=True)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for i, result in enumerate(unordered_parallel(n_jobs)(jobs)):
        rows += result
        print(f"{i + 1}/{len(jobs)} splits done, {time.perf_counter() - start:.0f} s",
              flush=True)
    frame = pd.DataFrame(rows)
    return frame.sort_values(["cohort", "seed", "fold"], kind="stable", ignore_index=True)


def comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cohort, scenario and metric: means before and after, the paired difference,
    raw and Holm-adjusted p (Holm over the scenarios of one cohort and metric)."""
    rows = []
    for cohort in dict.fromkeys(frame["cohort"]):
        sub = frame[frame["cohort"] == cohort]
        for metric in COMPARED:
            block = []
            for scenario in dict.fromkeys(sub["scenario"]):
                cell = sub[sub["scenario"] == scenario]
                delta, p, pairs = paired(sub, "natural", scenario, AFTER, BEFORE, metric)
                block.append({
                    "cohort": cohort, "metric": metric, "scenario": scenario,
                    "before": cell.loc[cell["method"] == BEFORE, metric].mean(),
                    "after": cell.loc[cell["method"] == AFTER, metric].mean(),
                    "delta": delta, "p": p, "pairs": pairs,
                })
            adjusted = holm([r["p"] for r in block])
            for r, p_holm in zip(block, adjusted):
                r["p_holm"] = p_holm
                r["verdict"] = verdict(r["delta"], p_holm, metric)
                r["verdict_raw"] = verdict(r["delta"], r["p"], metric)
            rows += block
    return pd.DataFrame(rows)


def section(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The markdown section of the calibration benchmark."""
    table = comparison(frame)
    size = meta.get("ensemble_size")
    title = "## Calibration: temperature per subset of modalities"
    if size is not None:
        title += f" (ensemble_size={size})"
    lines = [title, "",
             f"Command: `{meta['command']}`", "",
             f"- date: {meta['date']}; {meta['repeats']} stratified subsamples x "
             f"{meta['folds']}-fold CV per cohort; wall time {meta['wall'] / 60:.1f} min "
             f"({meta['machine']})",
             f"- `{BEFORE}`: the defaults; `{AFTER}`: the same fit (same seed, same "
             "networks) with `calibration=\"temperature\"`; after - before, Wilcoxon "
             "signed-rank over the paired splits, Holm over the scenarios of one cohort "
             "and metric (lower ECE and log loss are better; AUROC changes only where a "
             "scenario mixes missingness patterns)", ""]
    counts = []
    for (cohort, metric), block in table.groupby(["cohort", "metric"], sort=False):
        counts.append({"cohort": cohort, "metric": metric,
                       "better (mean)": int(sum((block["delta"] < 0) if metric != "auroc"
                                                else (block["delta"] > 0))),
                       "scenarios": len(block),
                       "wins (Holm)": int((block["verdict"] == "win").sum()),
                       "losses (Holm)": int((block["verdict"] == "**loss**").sum()),
                       "wins (raw p)": int((block["verdict_raw"] == "win").sum()),
                       "losses (raw p)": int((block["verdict_raw"] == "**loss**").sum())})
    lines += ["Summary:", "", markdown(pd.DataFrame(counts)), ""]
    for cohort in dict.fromkeys(table["cohort"]):
        lines += [f"### {cohort}", ""]
        for metric in COMPARED:
            block = table[(table["cohort"] == cohort) & (table["metric"] == metric)]
            shown = block[["scenario", "before", "after", "delta", "p", "p_holm",
                           "verdict"]].copy()
            for column in ("before", "after", "delta"):
                shown[column] = shown[column].map(lambda v: f"{v:.4f}")
            for column in ("p", "p_holm"):
                shown[column] = shown[column].map(lambda v: "n/a" if not np.isfinite(v)
                                                  else f"{v:.3g}")
            lines += [f"{metric}:", "", markdown(shown), ""]
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
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--folds", type=int, default=None, help="default 5 (quick: 3)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--ensemble-size", type=int, default=None,
                        help="networks per fit for both configurations (default: 'auto')")
    parser.add_argument("--tag", default=None,
                        help="names this run's section and result files (default: from "
                             "--ensemble-size)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    folds = args.folds or (3 if args.quick else 5)
    argv = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.calibration " + shlex.join(
        a for a in argv if a != "--report-only")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.ensemble_size is None else f"_ensemble{args.ensemble_size}"
    if args.tag:
        suffix = f"_{args.tag}"
    stem = RESULTS / f"calibration{suffix}{'_quick' if args.quick else ''}"
    if args.report_only:
        frame = pd.read_csv(stem.with_suffix(".csv"))
        meta = json.loads(stem.with_suffix(".json").read_text())
    else:
        start, load = time.perf_counter(), os.getloadavg()[0]
        frame = run(args.cohorts, repeats, folds, args.quick, args.n_jobs,
                    args.ensemble_size)
        meta = {"command": command, "repeats": repeats, "folds": folds,
                "ensemble_size": args.ensemble_size,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "wall": time.perf_counter() - start,
                "machine": f"{os.cpu_count()} CPU cores, n_jobs={args.n_jobs}, 1 torch "
                           f"thread per worker, load average {load:.1f} before / "
                           f"{os.getloadavg()[0]:.1f} after"}
        frame.to_csv(stem.with_suffix(".csv"), index=False)
        stem.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    meta.setdefault("ensemble_size", args.ensemble_size)
    text = section(frame, meta)
    md = RESULTS / "calibration_quick.md" if args.quick else DOCS_MD
    write_section(md, f"calibration{suffix}", text, "")
    print(text, flush=True)
    print(f"wrote {md.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
