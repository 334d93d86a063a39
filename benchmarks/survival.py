"""Censored time to event under missing modalities: MultimodalFusionSurvivalAnalysis,
its ablations and scikit-survival baselines.

The survival counterpart of :mod:`benchmarks.regression`: repeated K-fold stratified by
the event; in every split every method is trained on the same rows under two training
regimes (``natural``; ``added``: half the training samples with two or more modalities
lose one at random) and scored on the same test scenarios (all modalities; each
modality alone; each withheld from 25 / 50 / 75 % of the test samples that have
another). Harrell's C, Uno's C, the mean time-dependent AUC and the integrated Brier
score per split, mean ± std, and a paired Wilcoxon signed-rank test of ours against the
best baseline of each scenario, Holm-corrected over the data set's scenarios and
regimes; the integrated Brier score also against Kaplan-Meier. Run::

    python -m benchmarks.survival gse7390          # one data set, its default folds
    python -m benchmarks.survival all              # every data set, one after another
    python -m benchmarks.survival --quick          # GSE7390, 120 rows, 1 split, 2 epochs
    python -m benchmarks.survival all --report-only    # re-render from saved results

A full run writes its section of ``docs/benchmarks_survival.md`` (replaced on re-run),
its figure ``docs/img/survival_<dataset>.png`` and per-split results in
``benchmarks/results/survival_<dataset>.{csv,json}`` (git-ignored); ``--quick`` writes
``survival_quick.md``, its figure and its CSV under ``--out-dir`` (default
``benchmarks/results/``), never ``docs/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from . import datasets
from ._methods import REGIMES
from ._parallel import unordered_parallel
from ._plots import plot
from ._report import write_section
from ._scenarios import as_nullable, presence, take
from ._survival_methods import (
    NEURAL,
    QUICK_PROFILE,
    SURVIVAL_COMMON,
    evaluate_split,
    family,
)
from ._survival_report import SETUP, method_order, section, summary_rows

ROOT = Path(__file__).resolve().parents[1]
DOCS_MD = ROOT / "docs" / "benchmarks_survival.md"
DOCS_IMG = ROOT / "docs" / "img"
RESULTS = ROOT / "benchmarks" / "results"
#: Rows of the ``--quick`` GSE7390 subsample.
QUICK_ROWS = 120


@dataclass(frozen=True)
class Spec:
    """How to load and run one data set.

    Parameters
    ----------
    title : str
        Section title.
    load : callable
        ``load(quick) -> (X, y, info, notes)``.
    folds, repeats : int
        K and the number of repetitions of the stratified K-fold.
    size, events : int or None
        A cohort: each repetition draws its own subsample of ``size`` patients (seed =
        repetition), with ``events`` deaths where given, else stratified by the event.
    neural : tuple of str
        Labels of :data:`NEURAL` run.
    regimes : tuple of str
        Training regimes.
    """

    title: str
    load: Callable[[bool], tuple[dict[str, Any], np.ndarray, dict[str, Any], list[str]]]
    folds: int = 5
    repeats: int = 2
    size: int | None = None
    events: int | None = None
    neural: tuple[str, ...] = tuple(c.label for c in NEURAL)
    regimes: tuple[str, ...] = tuple(REGIMES)


def subsample(y: np.ndarray, n: int, seed: int, events: int | None = None) -> np.ndarray:
    """Sorted row indices of a random subsample: stratified by the event, or with
    exactly ``events`` events (and ``n - events`` censored patients)."""
    event = y["event"]
    if events is None:
        return np.sort(train_test_split(np.arange(len(y)), train_size=n, stratify=event,
                                        random_state=seed)[0])
    rng = np.random.default_rng(seed)
    return np.sort(np.r_[rng.choice(np.flatnonzero(event), events, replace=False),
                         rng.choice(np.flatnonzero(~event), n - events, replace=False)])


def _loader(name: str, notes: list[str], n: int | None = None) -> Callable[[bool], Any]:
    def load(quick: bool) -> Any:
        X, y, info = datasets.SURVIVAL_LOADERS[name]()
        extra = []
        if quick:
            n_ = QUICK_ROWS
            extra = [f"--quick: random subsample (stratified by the event, seed 0) of {n_} "
                     f"of the {len(y)} patients"]
        elif n is not None:
            n_ = n
            extra = [f"random subsample of {n:,} of the {len(y):,} patients, stratified by "
                     "the event (seed 0): the full set's random survival forest would hold "
                     "100 trees x leaves x ~1,700 unique times in memory, and one fit of "
                     "ours on 7,000 rows takes minutes on one core"]
        if quick or n is not None:
            keep = subsample(y, n_, 0)
            X, y = take(X, keep), y[keep]
        return X, y, info, [*extra, *notes]

    return load


_SUPPORT2 = ["target: days from study entry to death; patients alive at their last "
             "contact (344 days or later) censored there",
             "inputs exclude the SUPPORT model's survival estimates (surv2m, surv6m), the "
             "DNR order and the 2-month functional status (which encodes early death)"]
_COHORT = ("cohort: SUPPORT2 (physiology + demographics), a new random subsample per "
           "repetition (seed = repetition), each cross-validated by stratified 5-fold CV; "
           "`natural` regime only (time)")
#: SUPPORT2 at 2,000 rows runs no ``with contrastive`` (its stage doubles a fit's time);
#: the two-modality set runs only ``ours`` and ``no SMD`` (time: the machine was shared).
LARGE_NEURAL = ("ours", "no SMD", "zero tokens", "discrete loss")
DATASETS: dict[str, Spec] = {
    "gse7390": Spec("GSE7390 (genes + clinical, time to distant metastasis)",
                    _loader("gse7390_survival", [
                        "target: days to distant metastasis (event) or last follow-up "
                        "(censored)", "modalities: 76 gene expressions / age, size, "
                        "grade, ER; no natural missingness"])),
    "wpbc": Spec("WPBC (morphometry + clinical, time to recurrence)",
                 _loader("wpbc_survival", [
                     "target: months to recurrence (event) or disease-free follow-up "
                     "(censored)", "modalities: 30 nuclear-morphometry features from "
                     "digitised biopsy images / tumour size, positive lymph nodes (NaN "
                     "for 4 patients)"])),
    "support2_2000": Spec("SUPPORT2, 2,000 patients (physiology + demographics, time to "
                          "death)", _loader("support2_survival", _SUPPORT2, 2000),
                          repeats=1, neural=("ours", "no SMD")),
    "support2_three_2000": Spec("SUPPORT2, 2,000 patients, three modalities (vitals + "
                                "laboratory + demographics, time to death)",
                                _loader("support2_three_survival", [
                                    *_SUPPORT2, "`natural` regime only (time)"], 2000),
                                neural=LARGE_NEURAL, regimes=("natural",)),
    "support2_150": Spec("Small cohorts: SUPPORT2, 150 patients with 40 deaths",
                         _loader("support2_survival", [
                             _COHORT, "each subsample: 40 random deaths and 110 random "
                             "censored patients (27 % events instead of the cohort's 68 %: "
                             "the few-events case; the censored, all followed 344 days or "
                             "more, are over-represented)", *_SUPPORT2]),
                         repeats=2, size=150, events=40, regimes=("natural",)),
    "support2_400": Spec("Small cohorts: SUPPORT2, 400 patients",
                         _loader("support2_survival", [
                             _COHORT, "each subsample stratified by the event (68 % "
                             "deaths)", *_SUPPORT2]),
                         repeats=2, size=400, regimes=("natural",)),
}


def run_dataset(name: str, folds: int, repeats: int, quick: bool, n_jobs: int,
                command: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Cross-validate every method on one data set.

    Parameters
    ----------
    name : str
        Key of :data:`DATASETS`.
    folds, repeats : int
        K and repetitions (a cohort: subsamples).
    quick : bool
        Subsample, one split, two epochs (a smoke test).
    n_jobs : int
        Parallel workers (one torch thread each).
    command : str
        The command line, for the report.

    Returns
    -------
    frame : pandas.DataFrame
        One row per regime, split, scenario and method.
    meta : dict
        What the report needs besides the scores.
    """
    from joblib import delayed

    spec = DATASETS[name]
    start, load_before = time.perf_counter(), os.getloadavg()
    X, y, info, notes = spec.load(quick)
    X = as_nullable(X)
    kinds = dict.fromkeys(X, "tabular")
    profile = dict(QUICK_PROFILE) if quick else {}
    neural = tuple(c for c in NEURAL if c.label in spec.neural)
    regimes = ["natural", "added"] if quick else list(spec.regimes)
    tasks = []
    for seed in range(repeats):
        Xs, ys = X, y
        if spec.size is not None and not quick:
            keep = subsample(y, spec.size, seed, spec.events)
            Xs, ys = take(X, keep), y[keep]
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        for fold, (tr, te) in enumerate(cv.split(np.zeros(len(ys)), ys["event"])):
            tasks += [(Xs, ys, seed, fold, tr, te, r) for r in regimes]
            if quick:
                break
    print(f"[{name}] n={len(y)} modalities={list(kinds)} {len(tasks)} tasks, "
          f"n_jobs={n_jobs}", flush=True)
    jobs = (delayed(evaluate_split)(Xs, ys, kinds, tr, te, r, s, f, profile, neural)
            for Xs, ys, s, f, tr, te, r in tasks)
    rows: list[dict[str, Any]] = []
    for i, result in enumerate(unordered_parallel(n_jobs)(jobs)):
        rows += result
        print(f"[{name}] {i + 1}/{len(tasks)} tasks done, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    wall = time.perf_counter() - start
    frame = pd.DataFrame(rows)
    frame["regime"] = pd.Categorical(frame["regime"], categories=regimes, ordered=True)
    frame = frame.sort_values(["regime", "seed", "fold"], kind="stable", ignore_index=True)
    frame["regime"] = frame["regime"].astype(str)
    n = spec.size if spec.size and not quick else len(y)
    present = presence(X)
    whole = ", ".join(f"{m} {int((~present[:, j]).sum())}" for j, m in enumerate(X))
    cells = ", ".join(f"{m} {100 * r:.1f} %" for m, r in info["missing_rate"].items())
    shapes = ", ".join(f"{m} {np.shape(v)[1]}" for m, v in X.items())
    events = (f"{spec.events} events per subsample" if spec.events and not quick
              else f"{int(y['event'].sum())} events ({100 * y['event'].mean():.0f} %)")
    meta = {
        "title": spec.title + (" — quick" if quick else ""), "command": command,
        "folds": folds, "repeats": repeats, "splits": len(tasks) // len(regimes),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "wall": wall,
        "machine": f"{os.cpu_count()} CPU cores shared with other jobs, n_jobs={n_jobs}, "
                   f"1 torch thread per worker, load average {load_before[0]:.1f} before / "
                   f"{os.getloadavg()[0]:.1f} after",
        "data": [f"{n:,} patients per split set, {events}; time from "
                 f"{y['time'].min():g} to {y['time'].max():g} (median {np.median(y['time']):g})",
                 f"columns: {shapes}; missing cells (whole loaded set) {cells}; patients "
                 f"lacking a whole modality (this set) {whole}", *notes],
        "profile": {**profile, **SURVIVAL_COMMON}, "modalities": list(kinds), "n": n,
        "neural": [c.label for c in neural],
    }
    return frame, meta


def _stem(name: str, quick: bool, out_dir: Path) -> Path:
    return out_dir / f"survival_{name}{'_quick' if quick else ''}"


def _saved(quick: bool, out_dir: Path) -> dict[str, pd.DataFrame]:
    results = {}
    for key in DATASETS:
        stem = _stem(key, quick, out_dir)
        if stem.with_suffix(".csv").exists():
            frame = pd.read_csv(stem.with_suffix(".csv"))
            meta = json.loads(stem.with_suffix(".json").read_text())
            frame.attrs.update(n=meta.get("n", ""), wall=meta.get("wall", np.nan))
            results[key] = frame
    return results


def render(name: str, frame: pd.DataFrame, meta: dict[str, Any], out_dir: Path,
           quick: bool) -> None:
    """Write the figure and the markdown section of one data set (and the summary)."""
    md = out_dir / "survival_quick.md" if quick else DOCS_MD
    png = (out_dir if quick else DOCS_IMG) / f"survival_{name}{'_quick' if quick else ''}.png"
    plot(frame, meta["modalities"], meta["title"], png, metric="harrell_c",
         order=method_order, family_of=family)
    write_section(md, "setup", SETUP, "")
    write_section(md, "summary", "## Summary\n\nOne row per data set (regimes and scenarios "
                  "pooled): Harrell's C with every modality (first regime), wins / ties / "
                  "losses of ours against the best baseline of each scenario after Holm "
                  "(losses before Holm in brackets), and ours against Kaplan-Meier on the "
                  "integrated Brier score.\n\n" + summary_rows(_saved(quick, out_dir)), "")
    link = png.name if quick else f"img/{png.name}"
    text = section(name, frame, meta, link)
    write_section(md, name, text, "")
    print(f"\n== {meta['title']}: {meta['wall'] / 60:.1f} min ==\n")
    overview = text[text.index("### Overview"):]
    print(overview[:overview.index("\n### ", 1)].strip(), flush=True)
    print(f"\nwrote {md} and {png}\n", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default=None, choices=[*DATASETS, "all"],
                        help="data set (required unless --quick, which runs gse7390)")
    parser.add_argument("--folds", type=int, default=None, help="K (default 5)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repetitions of the K-fold (default: per data set)")
    parser.add_argument("--quick", action="store_true",
                        help=f"GSE7390, {QUICK_ROWS} rows, one split, one network of 2 "
                             "epochs per method; writes --out-dir, never docs/")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="parallel workers (default 2; --quick: 1)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS,
                        help="per-split results (and the --quick markdown and figure)")
    parser.add_argument("--report-only", action="store_true",
                        help="re-render from the saved per-split results, no training")
    args = parser.parse_args(argv)
    if args.dataset is None and not args.quick:
        parser.error("name a data set (or 'all'), or pass --quick")
    if args.quick and args.dataset not in (None, "gse7390"):
        parser.error("--quick runs gse7390 only")
    names = (["gse7390"] if args.quick or args.dataset == "gse7390" else
             list(DATASETS) if args.dataset == "all" else [args.dataset])
    argv = sys.argv[1:] if argv is None else argv
    shown = [a for a in argv if a != "--report-only"]
    if "--out-dir" in shown:  # a temporary folder says nothing about the run
        i = shown.index("--out-dir")
        del shown[i:i + 2]
    command = "python -m benchmarks.survival " + shlex.join(shown)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        stem = _stem(name, args.quick, args.out_dir)
        if args.report_only:
            if not stem.with_suffix(".json").exists():
                if args.dataset == "all":
                    print(f"{name}: no saved results, skipped")
                    continue
                parser.error(f"{stem.name}.json not found: run without --report-only first")
            frame = pd.read_csv(stem.with_suffix(".csv"))
            meta = json.loads(stem.with_suffix(".json").read_text())
        else:
            spec = DATASETS[name]
            folds = args.folds or (4 if args.quick else spec.folds)
            repeats = args.repeats or (1 if args.quick else spec.repeats)
            n_jobs = args.n_jobs or (1 if args.quick else 2)
            frame, meta = run_dataset(name, folds, repeats, args.quick, n_jobs, command)
            frame.to_csv(stem.with_suffix(".csv"), index=False)
            stem.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        render(name, frame, meta, args.out_dir, args.quick)


if __name__ == "__main__":
    main()
