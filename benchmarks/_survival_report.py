"""The report of the survival benchmark (:mod:`benchmarks.survival`): the setup text,
the per-data-set markdown section and the summary row of each data set.

Statistics come from :mod:`benchmarks._stats` and the generic tables from
:mod:`benchmarks._report`; what is survival-specific lives here: four metrics tested
at once, Kaplan-Meier as a reference for the integrated Brier score, and the fit times
of every method.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._methods import ADDED_FRACTION, REGIMES
from ._report import _p, losses_text, markdown, metric_table, tests_table
from ._scenarios import MISSING_RATES
from ._stats import METRICS, TESTED_SURVIVAL, best_baseline_tests, summary, versus_tests
from ._survival_methods import (
    AUC_PERCENTILES,
    COX_ALPHAS,
    COX_L1_RATIO,
    GBSA_PARAMS,
    IBS_PERCENTILES,
    KM,
    NEURAL,
    RSF_PARAMS,
    TAU_PERCENTILE,
)

SHORT = {"harrell_c": "Harrell", "uno_c": "Uno", "td_auc": "td-AUC", "ibs": "IBS"}


def method_order(methods: list[str]) -> list[str]:
    """Ours and the ablations, specialists, early, late, Kaplan-Meier last."""
    neural = [c.label for c in NEURAL if c.label in methods]
    rest = sorted(set(methods) - set(neural),
                  key=lambda m: (m == KM, m.startswith("late"), m.startswith("early"), m))
    return neural + rest


def _verdict(test: pd.Series) -> str:
    holm_, raw = ("tie" if v.startswith("tie") else v.strip("*")
                  for v in (test["verdict"], test["verdict_raw"]))
    return holm_ if raw == holm_ else f"{holm_} (raw {raw})"


def overview_table(frame: pd.DataFrame, scenarios: list[str],
                   tests: dict[str, pd.DataFrame] | None = None,
                   km: pd.DataFrame | None = None) -> str:
    """Per regime and scenario: ours and the best baseline on each metric with the
    verdict after Holm (before Holm where it differs), and ours against Kaplan-Meier
    (``tests`` and ``km``: the tests when already computed)."""
    if tests is None:
        tests = {m: best_baseline_tests(frame, scenarios, m) for m in TESTED_SURVIVAL}
    if km is None:
        km = versus_tests(frame, scenarios, KM, "ibs")
    tests = {m: t.set_index(["regime", "scenario"]) for m, t in tests.items()}
    km = km.set_index(["regime", "scenario"])
    rows = []
    for key in tests["harrell_c"].index:
        row = {"regime": key[0], "scenario": key[1]}
        for metric, table in tests.items():
            t = table.loc[key] if key in table.index else None
            row[f"{SHORT[metric]}: ours / best baseline"] = "—" if t is None else (
                f"{t['ours']:.3f} / {t['baseline']:.3f} {t['best baseline']}")
            row[f"{SHORT[metric]} verdict"] = "—" if t is None else _verdict(t)
        if key in km.index:
            k = km.loc[key]
            row["IBS: KM"] = f"{k['baseline']:.3f}"
            row["ours vs KM"] = _verdict(k)
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def fits_table(frame: pd.DataFrame) -> str:
    """Fit time of every method (mean over splits), members, best epoch, Cox penalty."""
    one = frame[(frame["scenario"] == "all") & frame["fit_seconds"].notna()]
    grouped = one.groupby(["regime", "method"], sort=False)
    table = grouped[["fit_seconds", "ensemble_size", "best_epoch"]].mean()
    table["cox_alpha"] = grouped["cox_alpha"].median()
    table["failed"] = grouped["failed"].sum() if "failed" in one else 0.0
    table = table.reset_index()
    fmt = {"fit_seconds": "{:.1f}", "ensemble_size": "{:.0f}", "best_epoch": "{:.1f}",
           "cox_alpha": "{:.3g}", "failed": "{:.0f}"}
    for column, pattern in fmt.items():
        table[column] = table[column].map(lambda v, p=pattern: p.format(v)
                                          if np.isfinite(v) else "—")
    return markdown(table.rename(columns={
        "fit_seconds": "fit s (mean)", "ensemble_size": "members",
        "best_epoch": "best epoch (mean)", "cox_alpha": "Cox alpha (median)",
        "failed": "failed fits"}))


def ablation_table(frame: pd.DataFrame, scenarios: list[str], others: list[str],
                   metric: str) -> str:
    """Ours minus each ablation per regime and scenario: mean Δ, raw and Holm p (Holm
    over each ablation's regime x scenario tests; † Holm p < 0.05)."""
    tables = {o: versus_tests(frame, scenarios, o, metric) for o in others}
    rows = []
    for i, key in enumerate(zip(tables[others[0]]["regime"], tables[others[0]]["scenario"])):
        row = {"regime": key[0], "scenario": key[1]}
        for other, t in tables.items():
            t = t.iloc[i]
            mark = " †" if t["p_holm"] < 0.05 else ""
            row[f"ours - {other}"] = (f"{t['delta']:+.3f} (p={_p(t['p'])}, Holm "
                                      f"{_p(t['p_holm'])}){mark}")
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def section(name: str, frame: pd.DataFrame, meta: dict[str, Any], image: str) -> str:
    """The markdown section of one data set (``image``: the figure's relative path)."""
    scenarios = list(dict.fromkeys(frame["scenario"]))
    methods = method_order(list(frame["method"].unique()))
    stats = summary(frame)
    regimes = list(dict.fromkeys(frame["regime"]))
    ablations = [c.label for c in NEURAL if c.family == "ablation"
                 and c.label in set(frame["method"])]
    n_tests = len(regimes) * len(scenarios)
    tests = {m: best_baseline_tests(frame, scenarios, m) for m in TESTED_SURVIVAL}
    km = versus_tests(frame, scenarios, KM, "ibs")
    lines = [
        f"## {meta['title']}", "", f"Command: `{meta['command']}`", "",
        f"- date: {meta['date']}; {meta['folds']} folds x {meta['repeats']} "
        f"repeat{'s' if meta['repeats'] > 1 else ''} ({meta['splits']} splits); wall time "
        f"{meta['wall'] / 60:.1f} min ({meta['machine']})",
        *[f"- {line}" for line in meta["data"]],
        "- our estimator: defaults with " + ", ".join(f"{k}={v}" for k, v in
                                                      meta["profile"].items()),
        f"- networks run: {', '.join(meta['neural'])}", "",
        f"![Harrell's C per method and scenario]({image})", "",
        f"### Overview: ours against the best baseline (Holm over the {n_tests} scenario x "
        "regime tests of each metric; raw verdict in brackets where it differs) and "
        "against Kaplan-Meier on the integrated Brier score (lower is better)", "",
        overview_table(frame, scenarios, tests, km), "",
    ]
    for metric in TESTED_SURVIVAL:
        for regime in regimes:
            lines += [f"### {METRICS[metric]}, training regime `{regime}` "
                      f"({REGIMES[regime]})", "",
                      metric_table(stats, regime, metric, scenarios, methods), ""]
    if (stats["coverage"] < 1).any():
        lines += ["`*` = scored only on the test samples that have the specialist's "
                  "modality; not eligible as best baseline there.", ""]
    for metric, table in tests.items():
        lines += [f"### Ours against the best baseline: {METRICS[metric]} (paired Wilcoxon "
                  f"signed-rank; Holm over the {len(table)} tests)", "",
                  tests_table(table, metric), "",
                  f"Where ours has a worse mean {METRICS[metric]} than the best baseline:",
                  "", losses_text(table, metric), ""]
    lines += [f"### Integrated Brier score: ours against Kaplan-Meier (Holm over the "
              f"{n_tests} tests)", "", tests_table(km, "ibs"), ""]
    for metric in ("harrell_c", "ibs") if ablations else ():
        lines += [f"### Ablations: ours minus each, {METRICS[metric]} (Wilcoxon p, Holm over "
                  f"each column's {n_tests} tests; † Holm p < 0.05)", "",
                  ablation_table(frame, scenarios, ablations, metric), ""]
    lines += ["### Fits (mean over splits)", "", fits_table(frame), ""]
    return "\n".join(lines).rstrip() + "\n"


def counts(tests: pd.DataFrame) -> str:
    """``wins / ties / losses (raw losses)`` after Holm."""
    v = tests["verdict"].value_counts()
    raw = int((tests["verdict_raw"] == "**loss**").sum())
    return (f"{v.get('win', 0)} / {v.get('tie (n.s.)', 0)} / {v.get('**loss**', 0)} "
            f"({raw})")


def summary_rows(results: dict[str, pd.DataFrame]) -> str:
    """One row per data set: Harrell's C of ours and the best baseline with every
    modality (first regime), verdict counts per metric, and ours against KM."""
    rows = []
    for name, frame in results.items():
        scenarios = list(dict.fromkeys(frame["scenario"]))
        harrell = best_baseline_tests(frame, scenarios, "harrell_c")
        first = harrell.iloc[0]
        row = {"data set": name, "n": frame.attrs.get("n", ""),
               "splits": int(frame.groupby(["seed", "fold"]).ngroups),
               "wall (min)": f"{frame.attrs.get('wall', np.nan) / 60:.1f}",
               "Harrell, all: ours / best baseline":
                   f"{first['ours']:.3f} / {first['baseline']:.3f} ({first['best baseline']})"}
        for metric in TESTED_SURVIVAL:
            tests = harrell if metric == "harrell_c" else best_baseline_tests(
                frame, scenarios, metric)
            row[f"{SHORT[metric]} W / T / L (raw L)"] = counts(tests)
        km = versus_tests(frame, scenarios, KM, "ibs")
        row["IBS vs KM: W / T / L (ours better in mean)"] = (
            f"{counts(km).split(' (')[0]} ({int((km['delta'] < 0).sum())} of {len(km)})")
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def _kw(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


SETUP = f"""# Benchmarks: survival under missing modalities

Produced by `python -m benchmarks.survival DATASET` (see `benchmarks/README.md`); each
data set's section below is replaced when its benchmark is re-run, and the summary is
rebuilt from every saved result. The design is the regression benchmark's (page
"Benchmarks: regression"), itself the classification benchmark's.

**Methods** (all share every split and every withheld cell):
- **ours**: `MultimodalFusionSurvivalAnalysis` with its defaults (Cox partial likelihood
  with Efron ties and a Breslow baseline per member, simultaneous modality dropout,
  learned missing-modality tokens, no contrastive stage, the ridge-Cox linear path,
  `ensemble_size="auto"`); only `device="cpu"`, `n_threads=1`, `random_state` set.
- ablations (each changes one thing): `no SMD` (modality_dropout="none"), `zero tokens`
  (missing_token="zero"), `with contrastive` (contrastive="fused"; positives: the same
  patient's unimodal and fused views); `discrete loss` (loss="discrete") runs wherever
  the estimator has a `loss` parameter.
- baselines (scikit-survival 0.28): `Cox[m]`, a ridge Cox specialist per modality
  (median imputation + missing indicators, scaling, one-hot encoding, then
  `CoxnetSurvivalAnalysis(l1_ratio={COX_L1_RATIO:g})`, its penalty chosen from
  {COX_ALPHAS.max():g} to {COX_ALPHAS.min():g} ({len(COX_ALPHAS)} log-spaced values) by the
  best mean Harrell's C of an inner stratified 5-fold CV, refitted with its Breslow
  baseline); `early Cox` (the same on every modality's columns concatenated, NaN where
  missing, imputed); `late Cox` (mean of the available specialists' risk scores, each
  standardised on its training rows); `early RSF` (`RandomSurvivalForest`, {_kw(RSF_PARAMS)});
  `early GBSA` (`GradientBoostingSurvivalAnalysis`, Cox loss, {_kw(GBSA_PARAMS)}); and
  `{KM}` (the training cohort's curve for everyone: a reference for the integrated Brier
  score only, never a "best baseline").
- survival curves: ours from its Breslow baselines; the Cox baselines and GBSA from their
  own Breslow estimator; RSF from its leaves. **`late Cox` has no curve, so no integrated
  Brier score (—)**; a specialist's curves exist only for the rows with its modality.

**Specialists under missingness.** A specialist is trained on the training samples that
have its modality and predicts only the test samples that have it; its scores in a
scenario cover those samples alone and are marked `*`; it competes for "best baseline"
only where it predicts every scored sample.

**Test scenarios** (`benchmarks/_scenarios.py`): `all`; `<m> only` (the others
withheld; samples without m not scored); `-<m> p%` (m withheld from p % of the test
samples that have m and another modality, p in {MISSING_RATES}; nested). **Training
regimes**: `natural` and `added` ({ADDED_FRACTION:.0%} of the training samples with two
or more modalities lose one, at random); the three-modality SUPPORT2 set and the small
cohorts run `natural` only (time).

**Metrics** (per split, on the scored test samples; censoring weights from the training
fold): Harrell's C (`concordance_index_censored`); Uno's C (`concordance_index_ipcw`,
tau = the {TAU_PERCENTILE}th percentile of the training times); time-dependent AUC (the
mean that `cumulative_dynamic_auc` returns at the {AUC_PERCENTILES} percentiles of the
test event times); integrated Brier score (`integrated_brier_score` on 50 times from the
{IBS_PERCENTILES[0]}th to the {IBS_PERCENTILES[1]}th percentile of the test times, lower
is better). Every time is kept below the last training time, inside the test follow-up
and inside the range where every method's survival curves are defined; for the censoring
weights the test times are capped at the last training time (no weight used changes).

**Protocol**: repeated stratified (by event) K-fold; mean ± std over the splits. Ours
against the best baseline of each scenario (best mean, chosen after the fact: favours the
baseline) by a two-sided Wilcoxon signed-rank test over the paired splits; a "win" or
"loss" survives Holm's correction over the data set's scenario x regime tests of that
metric; the raw verdict is shown beside it. With 10 pairs the smallest two-sided p is
0.002, with 5 pairs 0.062 (nothing can be significant); a tie means "not shown
different". The training sets of a repeated CV overlap, which makes the test optimistic.
Nothing is tuned per data set.

**Commands** (each section gives its own; one after another, about an hour on this
2-core machine shared with other jobs):

```bash
python -m benchmarks.survival gse7390               # 5 folds x 2 repeats, both regimes
python -m benchmarks.survival wpbc                  # 5 folds x 2 repeats, both regimes
python -m benchmarks.survival support2_three_2000   # 5 x 2, natural regime
python -m benchmarks.survival support2_2000         # 5 x 1, both regimes, 2 networks
python -m benchmarks.survival support2_150          # 2 subsamples x 5 folds, natural
python -m benchmarks.survival support2_400          # 2 subsamples x 5 folds, natural
python -m benchmarks.survival all --report-only     # re-render this page from the CSVs
```
"""
