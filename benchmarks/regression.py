"""Accuracy of MultimodalFusionRegressor under missing modalities: ours, its ablations
and ridge / gradient-boosting baselines on a continuous target.

The regression counterpart of :mod:`benchmarks.quality`: repeated K-fold
cross-validation; in every split every method is trained on the same rows under two
training regimes (``natural``: data as they come; ``added``: half the training samples
with two or more modalities lose one at random) and scored on the same test scenarios
(all modalities; each modality alone; each modality withheld from 25 / 50 / 75 % of
the test samples that have another one). R² and MAE per split, mean ± std, and a
paired Wilcoxon signed-rank test of ours against the best baseline of each scenario,
Holm-corrected over the data set's scenarios and regimes. Run::

    python -m benchmarks.regression diabetes        # one data set, its default folds
    python -m benchmarks.regression all             # every data set, one after another
    python -m benchmarks.regression --quick         # diabetes, 120 rows, 1 split, 2 epochs
    python -m benchmarks.regression all --report-only   # re-render from saved results

A full run writes its section of ``docs/benchmarks_regression.md`` (replaced on
re-run) and per-split results in ``benchmarks/results/regression_<dataset>.{csv,json}``
(git-ignored); ``--quick`` writes ``regression_quick.md`` and its CSV under
``--out-dir`` (default ``benchmarks/results/``), never ``docs/``.
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
from sklearn.model_selection import KFold, StratifiedGroupKFold

from . import datasets
from ._methods import ADDED_FRACTION, COMMON, PIXEL_SIDE, PROFILES, REGIMES
from ._parallel import unordered_parallel
from ._regression_methods import NEURAL, QUICK_PROFILE, RIDGE_ALPHAS, evaluate_split
from ._report import _p, markdown, metric_table, tests_table, write_section
from ._scenarios import MISSING_RATES, as_nullable, presence, take
from ._stats import (
    LOWER_IS_BETTER,
    METRICS,
    TESTED_REGRESSION,
    best_baseline_tests,
    summary,
    versus_tests,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS_MD = ROOT / "docs" / "benchmarks_regression.md"
RESULTS = ROOT / "benchmarks" / "results"
IMAGE_SIZE = 32
SEMI = "SEMI-SYNTHETIC"
#: Rows of the ``--quick`` diabetes subsample.
QUICK_ROWS = 120
#: SUPPORT2 subsample sizes (the 6,201 patients with an observed time of death).
SUPPORT2_SIZES = (500, 2000)
#: Images of the semi-synthetic Br35H set.
BR35H_IMAGES = 400


@dataclass(frozen=True)
class Spec:
    """How to load and run one data set.

    Parameters
    ----------
    title : str
        Section title.
    profile : str
        Key of :data:`benchmarks._methods.PROFILES` ("table" or "image").
    load : callable
        ``load(quick) -> (X, y, info, notes)``.
    folds, repeats : int
        Default K and number of repetitions of the K-fold.
    neural : tuple of str
        Labels of the network configurations (:data:`NEURAL`) run; the large sets run
        only ours and ``no contrastive`` (time).
    regimes : tuple of str
        Training regimes (keys of :data:`benchmarks._methods.REGIMES`).
    """

    title: str
    profile: str
    load: Callable[[bool], tuple[dict[str, Any], np.ndarray, dict[str, Any], list[str]]]
    folds: int = 5
    repeats: int = 3
    neural: tuple[str, ...] = tuple(c.label for c in NEURAL)
    regimes: tuple[str, ...] = tuple(REGIMES)


def _subsample(X: dict[str, Any], y: np.ndarray, n: int,
               seed: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    keep = np.sort(np.random.default_rng(seed).permutation(len(y))[:n])
    return take(X, keep), y[keep]


def _diabetes(quick: bool) -> Any:
    X, y, info = datasets.load_diabetes_two()
    notes = ["target: disease progression one year after baseline (real; scikit-learn's "
             "unscaled `load_diabetes(scaled=False)`, every column in its own units)",
             "modalities: clinical (age, sex, BMI, mean blood pressure) / serum (six blood "
             "measurements s1-s6); no natural missingness"]
    if quick:
        X, y = _subsample(X, y, QUICK_ROWS)
        notes.insert(0, f"--quick: random subsample of {QUICK_ROWS} of the 442 patients")
    return X, y, info, notes


def _support2(n: int | None) -> Callable[[bool], Any]:
    def load(quick: bool) -> Any:
        X, y, info = datasets.load_support2_regression()
        notes = [f"target: log(days from study entry to death) of the {info['n_samples']:,} "
                 f"SUPPORT2 patients who died during follow-up ({info['n_dropped']:,} "
                 "patients alive at their last contact have only a lower bound of it, a "
                 "missing outcome: dropped); SurvSet's SUPPORT2 has no cost, charge or "
                 "length-of-stay column",
                 "modalities: vital signs and scores / laboratory values / demographics "
                 "and comorbidity; inputs exclude the outcome, the SUPPORT model's "
                 "survival estimates (surv2m, surv6m), the DNR order and the 2-month "
                 "functional status (whose level '<2 mo. follow-up' means early death)"]
        if n is not None:
            X, y = _subsample(X, y, n)
            notes.insert(0, f"random subsample (seed 0) of {n:,} of the "
                            f"{info['n_samples']:,} patients")
        return X, y, info, notes

    return load


def _br35h_semi(quick: bool) -> Any:
    X, y, info = datasets.load_br35h_semisynthetic_regression(
        image_size=IMAGE_SIZE, max_images=BR35H_IMAGES)
    notes = [f"**{SEMI}**: real Br35H MRI images; the clinical table is GENERATED from "
             "the tumour label and the target is GENERATED as "
             "`10 * (2 * tumour + neuro_score + 0.5 * log(symptom_weeks) + N(0, 1))`: "
             "image and table row share only the label. Results say nothing clinical.",
             f"{len(y)} images (class-stratified subset), {IMAGE_SIZE}x{IMAGE_SIZE} "
             f"grayscale; {info['n_groups']} near-duplicate groups kept within one fold "
             "(StratifiedGroupKFold on the tumour label)",
             f"image baselines: `Ridge[mri px]` and early fusion on {PIXEL_SIDE}x"
             f"{PIXEL_SIDE} average-pooled pixels; `CNN[mri]` = our regressor given the "
             "image alone (same encoder and profile), the image member of late fusion"]
    return X, y, info, notes


#: What the large sets run (a fit of ours on 5,000 SUPPORT2 rows takes ~3 min on one
#: core of this machine); both run the natural regime only, and the full set 2 folds
#: (3,100 training rows per fit).
LARGE_NEURAL = ("ours", "no contrastive")
#: SUPPORT2 at 500 leaves out ``zero tokens`` (time; on diabetes it ties with ours).
SMALL_THREE_NEURAL = ("ours", "no contrastive", "no SMD")
DATASETS: dict[str, Spec] = {
    "diabetes": Spec("Diabetes (clinical + serum, disease progression)", "table",
                     _diabetes, folds=5, repeats=3),
    "support2_500": Spec(f"SUPPORT2, {SUPPORT2_SIZES[0]} patients (vitals + laboratory + "
                         "demographics, log time to death)", "table",
                         _support2(SUPPORT2_SIZES[0]), folds=5, repeats=2,
                         neural=SMALL_THREE_NEURAL),
    "support2_2000": Spec(f"SUPPORT2, {SUPPORT2_SIZES[1]:,} patients (vitals + laboratory + "
                          "demographics, log time to death)", "table",
                          _support2(SUPPORT2_SIZES[1]), folds=5, repeats=1,
                          neural=LARGE_NEURAL, regimes=("natural",)),
    "support2": Spec("SUPPORT2, all 6,201 decedents (vitals + laboratory + demographics, "
                     "log time to death)", "table", _support2(None), folds=2, repeats=1,
                     neural=LARGE_NEURAL, regimes=("natural",)),
    "br35h_semisynthetic": Spec(f"Br35H + {SEMI.lower()} table and severity score — {SEMI}",
                                "image", _br35h_semi, folds=5, repeats=1),
}


def splits(n: int, folds: int, repeats: int, strata: np.ndarray | None = None,
           groups: np.ndarray | None = None) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Repeated K-fold: ``(repeat, fold, train, test)`` for every split.

    Parameters
    ----------
    n : int
        Number of samples.
    folds, repeats : int
        K and the number of repetitions (shuffling seeds 0, 1, ...).
    strata, groups : ndarray or None
        With groups (near-duplicate images), StratifiedGroupKFold on ``strata``;
        otherwise a shuffled KFold.

    Returns
    -------
    list of tuple
    """
    out = []
    for seed in range(repeats):
        if groups is None:
            parts = KFold(folds, shuffle=True, random_state=seed).split(np.zeros(n))
        else:
            cv = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
            parts = cv.split(np.zeros(n), strata, groups)
        for fold, (train, test) in enumerate(parts):
            out.append((seed, fold, train, test))
    return out


def run_dataset(name: str, folds: int, repeats: int, quick: bool, n_jobs: int,
                command: str, only: tuple[str, ...] | None = None,
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Cross-validate every method on one data set.

    Parameters
    ----------
    name : str
        Key of :data:`DATASETS`.
    folds, repeats : int
        K and repetitions.
    quick : bool
        Subsample, one split, two epochs (a smoke test).
    n_jobs : int
        Parallel workers (one torch thread each).
    command : str
        The command line, for the report.
    only : tuple of str, default=None
        Labels of :data:`NEURAL` to run instead of the data set's list.

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
    profile = dict(PROFILES[spec.profile])
    if quick:
        profile.update(QUICK_PROFILE)
    groups = info.get("groups")
    strata = info.get("labels")
    all_splits = splits(len(y), folds, repeats, strata, groups)
    if quick:
        all_splits = all_splits[:1]
    regimes = list(spec.regimes)
    wanted = spec.neural if only is None else only
    neural = tuple(c for c in NEURAL if c.label in wanted)
    tasks = [(s, f, tr, te, r) for s, f, tr, te in all_splits for r in regimes]
    print(f"[{name}] n={len(y)} modalities={kinds} {len(tasks)} tasks, n_jobs={n_jobs}",
          flush=True)
    jobs = (delayed(evaluate_split)(X, y, kinds, tr, te, r, s, f, profile, neural)
            for s, f, tr, te, r in tasks)
    rows: list[dict[str, Any]] = []
    parallel = unordered_parallel(n_jobs)
    for i, result in enumerate(parallel(jobs)):
        rows += result
        print(f"[{name}] {i + 1}/{len(tasks)} tasks done, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    wall = time.perf_counter() - start
    frame = pd.DataFrame(rows)
    frame["regime"] = pd.Categorical(frame["regime"], categories=regimes, ordered=True)
    frame = frame.sort_values(["regime", "seed", "fold"], kind="stable", ignore_index=True)
    frame["regime"] = frame["regime"].astype(str)
    shapes = ", ".join(f"{m} {tuple(np.shape(v))[1:]} ({kinds[m]})" for m, v in X.items())
    present = presence(X)
    cells = ", ".join(f"{m} {100 * r:.1f} %" for m, r in info["missing_rate"].items())
    whole = ", ".join(f"{m} {int((~present[:, j]).sum())}" for j, m in enumerate(X))
    target = (f"target mean {np.mean(y):.3g}, std {np.std(y):.3g}, range "
              f"{np.min(y):.3g} to {np.max(y):.3g}")
    meta = {
        "title": spec.title + (" — quick" if quick else ""),
        "command": command, "folds": folds, "repeats": repeats, "splits": len(all_splits),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "wall": wall,
        "machine": f"{os.cpu_count()} CPU cores shared with other jobs, n_jobs={n_jobs}, "
                   f"1 torch thread per worker, load average {load_before[0]:.1f} before / "
                   f"{os.getloadavg()[0]:.1f} after",
        "data": [f"{len(y):,} samples; {target}; modalities: {shapes}",
                 f"natural missingness: missing cells (whole loaded set) {cells}; samples "
                 f"lacking the whole modality (this set) {whole}", *notes],
        "profile_name": spec.profile, "profile": {**profile, **COMMON},
        "modalities": list(kinds), "n": len(y),
    }
    return frame, meta


# ----------------------------------------------------------------------------- report

def method_order(methods: list[str]) -> list[str]:
    """Ours first, then the ablations, then the baselines (specialists, early, late)."""
    neural = [c.label for c in NEURAL if c.label in methods]
    rest = sorted(set(methods) - set(neural),
                  key=lambda m: (m.startswith("early"), m.startswith("late"), m))
    return neural + rest


def ablations(frame: pd.DataFrame) -> list[str]:
    """The ablations present in ``frame``, in :data:`NEURAL` order."""
    present = set(frame["method"])
    return [c.label for c in NEURAL if c.family == "ablation" and c.label in present]


def overview_table(frame: pd.DataFrame, scenarios: list[str]) -> str:
    """One row per regime and scenario: R² of ours, of the best baseline and of each
    ablation, with the Holm verdicts of ours against the best baseline (R² and MAE).

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    scenarios : list of str
        Scenario order.

    Returns
    -------
    str
        A markdown table.
    """
    r2 = best_baseline_tests(frame, scenarios, "r2").set_index(["regime", "scenario"])
    mae = best_baseline_tests(frame, scenarios, "mae").set_index(["regime", "scenario"])
    means = frame.groupby(["regime", "scenario", "method"])["r2"].mean()
    others = ablations(frame)

    def both(test: pd.Series) -> str:
        holm_, raw = (("tie" if v.startswith("tie") else v)
                      for v in (test["verdict"], test["verdict_raw"]))
        return holm_ if raw == holm_ else f"{holm_} (raw: {raw})"

    rows = []
    for (regime, scenario), t in r2.iterrows():
        m = mae.loc[(regime, scenario)]
        row = {"regime": regime, "scenario": scenario, "ours R²": f"{t['ours']:.3f}",
               "best baseline (R²)": f"{t['best baseline']} {t['baseline']:.3f}",
               "Δ R²": f"{t['delta']:+.3f}", "Holm p (R²)": _p(t["p_holm"]),
               "R² verdict": both(t), "MAE verdict": both(m)}
        for other in others:
            value = means.get((regime, scenario, other), np.nan)
            row[other] = f"{value:.3f}" if np.isfinite(value) else "—"
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def versus_table(frame: pd.DataFrame, regime: str, scenarios: list[str],
                 others: list[str], metric: str = "r2") -> str:
    """Ours minus each of ``others`` per scenario (mean Δ, raw p, Holm p, verdict).

    Holm's correction runs over every regime and scenario of one comparison.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    regime : str
        Training regime shown.
    scenarios : list of str
        Row order.
    others : list of str
        Methods compared with.
    metric : str, default="r2"
        The metric.

    Returns
    -------
    str
    """
    tables = {o: versus_tests(frame, scenarios, o, metric).set_index(["regime", "scenario"])
              for o in others}
    rows = []
    for scenario in scenarios:
        row = {"scenario": scenario}
        for other, tests in tables.items():
            if (regime, scenario) not in tests.index:
                row[f"ours - {other}"] = ""
                continue
            t = tests.loc[(regime, scenario)]
            word = {"win": ", ours better", "**loss**": ", ours worse"}.get(t["verdict"], "")
            row[f"ours - {other}"] = (f"{t['delta']:+.3f} (p={_p(t['p'])}, "
                                      f"Holm {_p(t['p_holm'])}{word})")
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def contrastive_table(frame: pd.DataFrame) -> str:
    """How the contrastive stages ended (last epoch, mean over members and splits)."""
    one = frame[frame["scenario"] == frame["scenario"].iloc[0]]
    one = one[one["stage_loss"].notna()] if "stage_loss" in one else one.iloc[:0]
    if one.empty:
        return ""
    table = one.groupby(["regime", "method"], sort=False)[
        ["stage_loss", "stage_valid_loss", "pair_cosine", "valid_pair_cosine",
         "best_epoch", "fit_seconds"]].mean().reset_index()
    shown = pd.DataFrame({
        "regime": table["regime"], "method": table["method"],
        "loss (train / held out)": [f"{a:.3f} / {b:.3f}" for a, b in
                                    zip(table["stage_loss"], table["stage_valid_loss"])],
        "cosine of two samples' projections (train / held out)": [
            f"{a:+.3f} / {b:+.3f}" for a, b in
            zip(table["pair_cosine"], table["valid_pair_cosine"])],
    })
    return markdown(shown)


def fits_table(frame: pd.DataFrame) -> str:
    """Members, best epoch, linear penalty and fit time of every network, mean over splits."""
    one = frame[(frame["scenario"] == frame["scenario"].iloc[0])
                & frame["fit_seconds"].notna()]
    table = one.groupby(["regime", "method"], sort=False)[
        ["ensemble_size", "best_epoch", "linear_C", "fit_seconds"]].mean().reset_index()
    table["ensemble_size"] = table["ensemble_size"].map("{:.0f}".format)
    table["best_epoch"] = table["best_epoch"].map("{:.1f}".format)
    table["linear_C"] = table["linear_C"].map(lambda v: f"{v:.3g}" if np.isfinite(v) else "—")
    table["fit_seconds"] = table["fit_seconds"].map("{:.1f}".format)
    return markdown(table.rename(columns={"ensemble_size": "members",
                                          "best_epoch": "best epoch (mean)",
                                          "linear_C": "linear path C (mean)",
                                          "fit_seconds": "fit s (mean)"}))


def losses_text(tests: pd.DataFrame, metric: str) -> str:
    """Bullet list of the scenarios where ours has a worse mean than the best baseline."""
    worse = tests["delta"] > 0 if metric in LOWER_IS_BETTER else tests["delta"] < 0
    lost = tests[worse]
    name = METRICS[metric]
    if lost.empty:
        return f"Ours has a better mean {name} than the best baseline in every scenario."
    lines = []
    for row in lost.to_dict("records"):
        flag = ("significant after Holm" if row["verdict"] == "**loss**"
                else "significant before Holm only" if row["verdict_raw"] == "**loss**"
                else "not significant")
        lines.append(f"- `{row['regime']}`, {row['scenario']}: ours {row['ours']:.3f} vs "
                     f"{row['best baseline']} {row['baseline']:.3f} "
                     f"(Δ {row['delta']:+.3f}, p = {_p(row['p'])}, Holm p = "
                     f"{_p(row['p_holm'])}: {flag})")
    return "\n".join(lines)


def section(frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The markdown section of one data set.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    meta : dict
        Run description from :func:`run_dataset`.

    Returns
    -------
    str
    """
    scenarios = list(dict.fromkeys(frame["scenario"]))
    methods = method_order(list(frame["method"].unique()))
    stats = summary(frame)
    regimes = list(dict.fromkeys(frame["regime"]))
    lines = [
        f"## {meta['title']}", "",
        f"Command: `{meta['command']}`", "",
        f"- date: {meta['date']}; {meta['folds']} folds x {meta['repeats']} "
        f"repeat{'s' if meta['repeats'] > 1 else ''} ({meta['splits']} splits); wall time "
        f"{meta['wall'] / 60:.1f} min ({meta['machine']})",
        *[f"- {line}" for line in meta["data"]],
        f"- our estimator (profile `{meta['profile_name']}`): "
        + (", ".join(f"{k}={v}" for k, v in meta["profile"].items()) or "defaults"), "",
        "### Overview: ours against the best baseline (Holm over the data set's "
        f"{len(regimes) * len(scenarios)} scenario x regime tests per metric; the verdict "
        "before Holm in brackets where it differs) and the ablations' R²", "",
        overview_table(frame, scenarios), "",
    ]
    for metric in TESTED_REGRESSION:
        for regime in regimes:
            lines += [f"### {METRICS[metric]}, training regime `{regime}` "
                      f"({REGIMES[regime]})", "",
                      metric_table(stats, regime, metric, scenarios, methods), ""]
    if (stats["coverage"] < 1).any():
        lines += ["`*` = scored only on the test samples that have the specialist's "
                  "modality (it cannot predict the others); not eligible as best "
                  "baseline there.", ""]
    for metric in TESTED_REGRESSION:
        tests = best_baseline_tests(frame, scenarios, metric)
        lines += [f"### Ours against the best baseline: {METRICS[metric]} (paired Wilcoxon "
                  f"signed-rank; Holm over the {len(tests)} tests)", "",
                  tests_table(tests, metric), "",
                  f"Where ours has a worse mean {METRICS[metric]} than the best baseline:",
                  "", losses_text(tests, metric), ""]
    for regime in regimes:
        lines += [f"### Ours minus each ablation, regime `{regime}` (R²; Wilcoxon p, Holm "
                  f"over each comparison's {len(regimes) * len(scenarios)} tests)", "",
                  versus_table(frame, regime, scenarios, ablations(frame)), ""]
    lines += ["### The networks' fits (mean over splits)", "", fits_table(frame), ""]
    table = contrastive_table(frame)
    if table:
        lines += ["### How the contrastive stage ended (last epoch, mean over members and "
                  "splits; positives = the same sample's unimodal and fused views)", "",
                  table, ""]
    for regime in regimes:
        lines += [f"<details><summary>RMSE, regime `{regime}`</summary>", "",
                  metric_table(stats, regime, "rmse", scenarios, methods), "",
                  "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def console(frame: pd.DataFrame) -> str:
    """Plain-text overview, R² tables and the R² tests, for the terminal."""
    scenarios = list(dict.fromkeys(frame["scenario"]))
    methods = method_order(list(frame["method"].unique()))
    stats = summary(frame)
    parts = ["Overview (R²; verdict after Holm, before Holm in brackets where it differs):",
             overview_table(frame, scenarios)]
    for regime in dict.fromkeys(frame["regime"]):
        parts.append(f"R², regime {regime}:")
        parts.append(metric_table(stats, regime, "r2", scenarios, methods))
    parts.append("Ours minus no contrastive (R²):")
    for regime in dict.fromkeys(frame["regime"]):
        parts.append(versus_table(frame, regime, scenarios, ["no contrastive"]))
    return "\n\n".join(parts)


def summary_rows(results: dict[str, pd.DataFrame]) -> str:
    """One row per data set: ours and the best baseline with every modality, Holm
    verdict counts against the best baseline, and what the contrastive stage adds."""
    rows = []
    for name, frame in results.items():
        scenarios = list(dict.fromkeys(frame["scenario"]))
        r2 = best_baseline_tests(frame, scenarios, "r2")
        mae = best_baseline_tests(frame, scenarios, "mae")
        nat = r2[(r2["regime"] == "natural") & (r2["scenario"] == "all")].iloc[0]
        contrast = versus_tests(frame, scenarios, "no contrastive", "r2")

        def counts(t: pd.DataFrame) -> str:
            v = t["verdict"].value_counts()
            raw = int((t["verdict_raw"] == "**loss**").sum())
            return (f"{v.get('win', 0)} / {v.get('tie (n.s.)', 0)} / "
                    f"{v.get('**loss**', 0)} ({raw} raw)")

        c = contrast["verdict"].value_counts()
        rows.append({
            "data set": name, "n": int(frame.attrs.get("n", 0)) or "",
            "splits": int(frame.groupby(["seed", "fold"]).ngroups),
            "R², all: ours": f"{nat['ours']:.3f}",
            "best baseline": f"{nat['baseline']:.3f} ({nat['best baseline']})",
            "R² win / tie / loss (raw losses)": counts(r2),
            "MAE win / tie / loss (raw losses)": counts(mae),
            "contrastive: mean Δ R² (range)":
                f"{contrast['delta'].mean():+.3f} ({contrast['delta'].min():+.3f} to "
                f"{contrast['delta'].max():+.3f})",
            "contrastive helps / n.s. / hurts (Holm)":
                f"{c.get('win', 0)} / {c.get('tie (n.s.)', 0)} / {c.get('**loss**', 0)}",
        })
    return markdown(pd.DataFrame(rows))


SETUP = f"""# Benchmarks: regression under missing modalities

Produced by `python -m benchmarks.regression DATASET` (see the Benchmarks README,
`benchmarks/README.md`); each data set's section below is replaced when its benchmark is
re-run, and the summary is rebuilt from every saved result. The classification
benchmark whose design this one mirrors is the page "Benchmarks" (`docs/benchmarks.md`).

**Methods** (all share every split and every withheld cell):
- **ours**: `MultimodalFusionRegressor` with its defaults (only `device="cpu"` and
  `random_state` set; the image data set caps the epochs for time as the classification
  benchmark does: `max_epochs=30, patience=5, pretrain_epochs=5`): simultaneous
  modality dropout (SMD), learned missing-modality tokens, the label-free contrastive
  stage (positives: the same patient's unimodal and fused views), the linear path of
  tables and `ensemble_size="auto"` (5 cross-fitted networks for tables up to 5,000
  samples, else one).
- ablations (each changes one thing): `no contrastive` (contrastive=None), `zero
  tokens` (missing_token="zero"), `no SMD` (modality_dropout="none", contrastive=None).
- baselines: per-table specialists `Ridge[m]` (median imputation + missing indicators,
  scaling, one-hot encoding, then `RidgeCV` with alpha chosen from
  {RIDGE_ALPHAS.min():g} to {RIDGE_ALPHAS.max():g} ({len(RIDGE_ALPHAS)} log-spaced
  values) by an inner 5-fold CV on R², refitted) and `HGB[m]`
  (HistGradientBoostingRegressor, defaults, native NaN and categorical handling); per
  image `Ridge[m px]` (on {PIXEL_SIDE}x{PIXEL_SIDE} average-pooled pixels) and `CNN[m]`
  (our regressor given the image alone); `early Ridge` and `early HGB` (every table's
  columns and the pooled pixels concatenated, NaN where a modality is missing); `late
  Ridge` / `late HGB` (mean prediction of the available specialists: Ridge or HGB per
  table, the CNN per image).

**Specialists under missingness.** A specialist is trained on the training samples that
have its modality and predicts only the test samples that have it; its score in a scenario
is computed on those samples alone and marked `*`. It competes for "best baseline" only
where it predicts every scored sample. Late fusion averages the specialists available for
each sample, so it always predicts.

**Test scenarios** (`benchmarks/_scenarios.py`, as in the classification benchmark):
`all` (every modality given); `<m> only` (the other modalities withheld; samples without m
are not scored); `-<m> p%` (m withheld from p % of the test samples that have m and
another modality, p in {MISSING_RATES}; nested). No sample ever loses its last modality.
**Training regimes**: `natural` (data as they come) and `added` ({ADDED_FRACTION:.0%} of the
training samples with two or more modalities lose one, chosen at random).

**Metrics**: R² and MAE (tested), RMSE (reported), each computed per split on the test
samples scored.

**Protocol**: repeated K-fold (shuffled KFold; StratifiedGroupKFold on the tumour label
and near-duplicate groups for Br35H); mean ± std over folds x repeats. Ours is compared
with the best baseline of each scenario (best mean R² or MAE, chosen after the fact, which
favours the baseline) by a two-sided Wilcoxon signed-rank test over the paired splits
(scipy). A "win" or "loss" is one that survives Holm's correction over all scenario x
regime tests of the data set (one family per metric and comparison); the raw verdict is
shown beside it. The training sets of a repeated CV overlap, which makes the test
optimistic; with 2 to 15 splits per data set, the smallest possible two-sided Wilcoxon
p is 0.5 (2 pairs), 0.062 (5), 0.002 (10) or 6e-5 (15), so data sets run with few splits
can show no significant difference at all (a tie means "not shown different", not
"equal").
No parameter is tuned per data set; `device="cpu"`.
"""


def _stem(name: str, quick: bool, out_dir: Path) -> Path:
    return out_dir / f"regression_{name}{'_quick' if quick else ''}"


def render(name: str, frame: pd.DataFrame, meta: dict[str, Any], md: Path,
           out_dir: Path, quick: bool) -> None:
    """Print the tables and write the markdown section of one data set (and the summary).

    Parameters
    ----------
    name : str
        Data set key.
    frame : pandas.DataFrame
        Per-split results.
    meta : dict
        Run description.
    md : pathlib.Path
        Markdown file written.
    out_dir : pathlib.Path
        Where the per-split results of every data set are saved (for the summary).
    quick : bool
        Whether this is a ``--quick`` run.
    """
    write_section(md, "setup", SETUP, "")
    results = {}
    for key in DATASETS:
        stem = _stem(key, quick, out_dir)
        if stem.with_suffix(".csv").exists():
            saved = pd.read_csv(stem.with_suffix(".csv"))
            saved.attrs["n"] = json.loads(stem.with_suffix(".json").read_text()).get("n", 0)
            results[key] = saved
    if results:
        write_section(md, "summary", "## Summary\n\nOne row per data set (regimes and "
                      "scenarios pooled): R² with every modality (`natural` regime), "
                      "wins / ties / losses of ours against the best baseline of each "
                      "scenario after Holm (losses before Holm in brackets), and ours minus "
                      "`no contrastive`.\n\n" + summary_rows(results), "")
    write_section(md, name, section(frame, meta), "")
    print(f"\n== {meta['title']}: {meta['wall'] / 60:.1f} min ==\n")
    print(console(frame), flush=True)
    print(f"\nwrote {md}\n", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default=None, choices=[*DATASETS, "all"],
                        help="data set (required unless --quick, which runs diabetes)")
    parser.add_argument("--folds", type=int, default=None, help="K (default: per data set)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repetitions of the K-fold (default: per data set)")
    parser.add_argument("--quick", action="store_true",
                        help=f"diabetes, {QUICK_ROWS} rows, one split, one network of 2 "
                             "epochs per method; writes "
                             "--out-dir, never docs/")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="parallel workers (default 2, the cores here; --quick: 1, "
                             "which saves starting workers)")
    parser.add_argument("--neural", nargs="+", default=None, metavar="LABEL",
                        choices=[c.label for c in NEURAL],
                        help="network variants to run instead of the data set's list")
    parser.add_argument("--out-dir", type=Path, default=RESULTS,
                        help="per-split results (and the --quick markdown)")
    parser.add_argument("--report-only", action="store_true",
                        help="re-render from the saved per-split results, no training")
    args = parser.parse_args(argv)
    if args.dataset is None and not args.quick:
        parser.error("name a data set (or 'all'), or pass --quick")
    dataset = args.dataset or "diabetes"
    if args.quick and dataset not in ("diabetes", "all"):
        parser.error("--quick runs diabetes only")
    names = ["diabetes"] if args.quick else list(DATASETS) if dataset == "all" else [dataset]
    argv = sys.argv[1:] if argv is None else argv
    shown = [a for a in argv if a != "--report-only"]
    if "--out-dir" in shown:  # a temporary folder says nothing about the run
        i = shown.index("--out-dir")
        del shown[i:i + 2]
    command = "python -m benchmarks.regression " + shlex.join(shown)
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "regression_quick.md" if args.quick else DOCS_MD
    for name in names:
        stem = _stem(name, args.quick, out_dir)
        if args.report_only:
            if not stem.with_suffix(".json").exists():
                parser.error(f"{stem.name}.json not found: run without --report-only first")
            frame = pd.read_csv(stem.with_suffix(".csv"))
            meta = json.loads(stem.with_suffix(".json").read_text())
        else:
            spec = DATASETS[name]
            folds = args.folds or (4 if args.quick else spec.folds)
            repeats = args.repeats or (1 if args.quick else spec.repeats)
            only = None if args.neural is None else tuple(args.neural)
            n_jobs = args.n_jobs or (1 if args.quick else 2)
            frame, meta = run_dataset(name, folds, repeats, args.quick, n_jobs, command, only)
            frame.to_csv(stem.with_suffix(".csv"), index=False)
            stem.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        render(name, frame, meta, md, out_dir, args.quick)


if __name__ == "__main__":
    main()
