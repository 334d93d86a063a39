"""Statistics of the quality benchmarks: summaries, paired tests, Holm's correction.

Generic over the metric: the classification metrics (AUROC, log loss, ...) and the
regression ones (R², MAE, RMSE) share one table, :data:`METRICS`, and
:data:`LOWER_IS_BETTER` says which way each one points.

A "significant" win or loss is one whose Holm-adjusted p-value (over all the tests of
one family: one data set's scenarios and regimes) is below :data:`ALPHA`; the raw p is
reported beside it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from ._methods import NEURAL

METRICS = {"auroc": "AUROC", "logloss": "log loss", "brier": "Brier score",
           "ece": "expected calibration error", "auprc": "AUPRC",
           "bacc": "balanced accuracy",
           # continuous targets (benchmarks.regression)
           "r2": "R²", "mae": "MAE", "rmse": "RMSE",
           # censored time to event (benchmarks.survival)
           "harrell_c": "Harrell's C", "uno_c": "Uno's C", "td_auc": "time-dependent AUC",
           "ibs": "integrated Brier score"}
#: Metrics where a lower value is better.
LOWER_IS_BETTER = {"logloss", "brier", "ece", "mae", "rmse", "ibs"}
#: The metrics ours is tested on against the best baseline.
TESTED = ("auroc", "logloss")
#: The same for a continuous target.
TESTED_REGRESSION = ("r2", "mae")
#: The same for a censored time to event.
TESTED_SURVIVAL = ("harrell_c", "uno_c", "td_auc", "ibs")
ALPHA = 0.05
LN2 = float(np.log(2.0))


def holm(pvalues: Any) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test).

    Parameters
    ----------
    pvalues : array-like
        Raw p-values of one family of tests.

    Returns
    -------
    ndarray
        Adjusted p-values, in the input order; reject where adjusted p < alpha.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and minimum coverage per regime, scenario and method.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per regime, seed, fold, scenario and method.

    Returns
    -------
    pandas.DataFrame
        Indexed by (regime, scenario, method); columns ``<metric>_mean``,
        ``<metric>_std`` and ``coverage``.
    """
    grouped = frame.groupby(["regime", "scenario", "method"], sort=False)
    out = grouped[[m for m in METRICS if m in frame]].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["coverage"] = grouped["coverage"].min()
    return out


def better(delta: float, metric: str) -> bool:
    """Whether a difference ``a - b`` of ``metric`` favours a."""
    return delta < 0 if metric in LOWER_IS_BETTER else delta > 0


def verdict(delta: float, p: float, metric: str = "auroc") -> str:
    """"win", "**loss**" or "tie (n.s.)" for a difference and its p-value."""
    if not np.isfinite(p) or p >= ALPHA:
        return "tie (n.s.)"
    return "win" if better(delta, metric) else "**loss**"


def _eligible(frame: pd.DataFrame, metric: str = "auroc") -> pd.Series:
    """Baselines that scored every test sample of every split, per regime and scenario.

    A split counts as scored where ``metric`` is not NaN (the classification metrics
    are NaN together, so the choice among them changes nothing).
    """
    grouped = frame[frame["family"] == "baseline"].groupby(["regime", "scenario", "method"])
    full = grouped["coverage"].min() >= 1.0
    return full & (grouped[metric].count() == grouped[metric].size())


def paired(frame: pd.DataFrame, regime: str, scenario: str, a: str, b: str,
           metric: str = "auroc") -> tuple[float, float, int]:
    """Mean difference a - b and the two-sided Wilcoxon signed-rank p over matched splits.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    regime, scenario : str
        Which cell.
    a, b : str
        Methods.
    metric : str, default="auroc"
        The metric compared.

    Returns
    -------
    tuple
        ``(mean difference, p, number of pairs)``; p is NaN with fewer than two pairs
        or no difference at all.
    """
    sub = frame[(frame["regime"] == regime) & (frame["scenario"] == scenario)]
    wide = sub.pivot_table(index=["seed", "fold"], columns="method", values=metric)
    if a not in wide or b not in wide:
        return np.nan, np.nan, 0
    pair = wide[[a, b]].dropna()
    diff = (pair[a] - pair[b]).to_numpy()
    if len(diff) < 2 or not np.any(diff):
        return float(np.mean(diff)) if len(diff) else np.nan, np.nan, len(diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(pair[a], pair[b]).pvalue)
    return float(diff.mean()), p, len(diff)


def _with_holm(rows: list[dict[str, Any]], columns: list[str], metric: str) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=columns)
    out["p_holm"] = holm(out["p"]) if len(out) else []
    out["verdict"] = [verdict(d, p, metric) for d, p in zip(out["delta"], out["p_holm"])]
    out["verdict_raw"] = [verdict(d, p, metric) for d, p in zip(out["delta"], out["p"])]
    return out


def best_baseline_tests(frame: pd.DataFrame, scenarios: list[str], metric: str = "auroc",
                        method: str = "ours",
                        baselines: list[str] | None = None) -> pd.DataFrame:
    """``method`` against the best baseline of each regime and scenario on ``metric``.

    Only baselines that predicted every scored test sample in every split compete;
    the best (highest mean AUROC, lowest mean log loss, ...) is picked after seeing the
    results, which favours the baseline. The p-values are Holm-adjusted over every
    regime and scenario; the verdict uses the adjusted p.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    scenarios : list of str
        Scenario order.
    metric : str, default="auroc"
        A key of :data:`METRICS`.
    method : str, default="ours"
        The method tested.
    baselines : list of str, default=None
        Restrict the competitors to these (e.g. ``["late LR"]``); None: every baseline.

    Returns
    -------
    pandas.DataFrame
        One row per regime and scenario: means, Δ, raw and Holm p, verdicts.
    """
    eligible = _eligible(frame, metric)
    means = frame.groupby(["regime", "scenario", "method"])[metric].mean()
    pick = min if metric in LOWER_IS_BETTER else max
    rows = []
    for regime in frame["regime"].unique():
        for scenario in scenarios:
            candidates = [m for (r, s, m), ok in eligible.items()
                          if ok and r == regime and s == scenario
                          and (baselines is None or m in baselines)]
            if not candidates or (regime, scenario, method) not in means.index:
                continue
            best = pick(candidates, key=lambda m: means[(regime, scenario, m)])
            delta, p, n = paired(frame, regime, scenario, method, best, metric)
            rows.append({"regime": regime, "scenario": scenario,
                         "ours": means[(regime, scenario, method)], "best baseline": best,
                         "baseline": means[(regime, scenario, best)], "delta": delta,
                         "p": p, "pairs": n})
    return _with_holm(rows, ["regime", "scenario", "ours", "best baseline", "baseline",
                             "delta", "p", "pairs"], metric)


def versus_tests(frame: pd.DataFrame, scenarios: list[str], other: str,
                 metric: str = "auroc", method: str = "ours") -> pd.DataFrame:
    """``method`` minus ``other`` in every regime and scenario, Holm over all of them.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    scenarios : list of str
        Scenario order.
    other : str
        The method compared with (an ablation or a baseline).
    metric : str, default="auroc"
        A key of :data:`METRICS`.
    method : str, default="ours"
        The method tested.

    Returns
    -------
    pandas.DataFrame
        One row per regime and scenario.
    """
    means = frame.groupby(["regime", "scenario", "method"])[metric].mean()
    rows = []
    for regime in frame["regime"].unique():
        for scenario in scenarios:
            if (regime, scenario, other) not in means.index:
                continue
            delta, p, n = paired(frame, regime, scenario, method, other, metric)
            rows.append({"regime": regime, "scenario": scenario,
                         "ours": means[(regime, scenario, method)], "other": other,
                         "baseline": means[(regime, scenario, other)], "delta": delta,
                         "p": p, "pairs": n})
    return _with_holm(rows, ["regime", "scenario", "ours", "other", "baseline", "delta",
                             "p", "pairs"], metric)


def neural_methods(frame: pd.DataFrame, family: str = "ablation") -> list[str]:
    """The network configurations of ``family`` present in ``frame``, in NEURAL order."""
    present = set(frame["method"])
    return [c.label for c in NEURAL if c.family == family and c.label in present]


def contrastive_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """How each configuration's contrastive stage ended, averaged over the splits.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results with the diagnostics columns.

    Returns
    -------
    pandas.DataFrame
        One row per regime and method that ran a contrastive stage.
    """
    if "stage_loss" not in frame:
        return pd.DataFrame()
    one = frame[frame["scenario"] == frame["scenario"].iloc[0]]
    one = one[one["stage_loss"].notna()]
    columns = ["stage_loss", "stage_valid_loss", "same_cosine", "diff_cosine",
               "valid_same_cosine", "valid_diff_cosine"]
    return one.groupby(["regime", "method"], sort=False)[columns].mean().reset_index()


def verdict_counts(tests: pd.DataFrame) -> dict[str, int]:
    """Numbers of ties, wins and losses (Holm) in a table of tests."""
    counts = tests["verdict"].value_counts()
    return {"ties": int(counts.get("tie (n.s.)", 0)), "wins": int(counts.get("win", 0)),
            "losses": int(counts.get("**loss**", 0)), "tests": len(tests)}
