"""Tables, paired tests, plots and the markdown sections of the quality benchmark."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from ._methods import NEURAL

METRICS = {"auroc": "AUROC", "auprc": "AUPRC", "bacc": "balanced accuracy"}
ALPHA = 0.05


def method_order(methods: list[str]) -> list[str]:
    """Ours first, then the ablations, then the baselines (specialists, early, late).

    Parameters
    ----------
    methods : list of str
        Method labels present in the results.

    Returns
    -------
    list of str
    """
    neural = [c.label for c in NEURAL if c.label in methods]
    rest = sorted(set(methods) - set(neural),
                  key=lambda m: (m.startswith("early"), m.startswith("late"), m))
    return neural + rest


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and minimum coverage per regime, scenario and method.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per regime, seed, fold, scenario and method.

    Returns
    -------
    pandas.DataFrame
        Indexed by (regime, scenario, method).
    """
    grouped = frame.groupby(["regime", "scenario", "method"], sort=False)
    out = grouped[list(METRICS)].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["coverage"] = grouped["coverage"].min()
    return out


def _eligible(frame: pd.DataFrame) -> pd.Series:
    """Baselines that scored every test sample of every split, per regime and scenario."""
    grouped = frame[frame["family"] == "baseline"].groupby(["regime", "scenario", "method"])
    full = grouped["coverage"].min() >= 1.0
    return full & (grouped["auroc"].count() == grouped["auroc"].size())


def _paired(frame: pd.DataFrame, regime: str, scenario: str, a: str, b: str,
            metric: str = "auroc") -> tuple[float, float, int]:
    """Mean difference a - b and the Wilcoxon signed-rank p over matched splits."""
    sub = frame[(frame["regime"] == regime) & (frame["scenario"] == scenario)]
    wide = sub.pivot_table(index=["seed", "fold"], columns="method", values=metric)
    pair = wide[[a, b]].dropna()
    diff = (pair[a] - pair[b]).to_numpy()
    if len(diff) < 2 or not np.any(diff):
        return float(np.mean(diff)) if len(diff) else np.nan, np.nan, len(diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(pair[a], pair[b]).pvalue)
    return float(diff.mean()), p, len(diff)


def _verdict(delta: float, p: float) -> str:
    if not np.isfinite(p) or p >= ALPHA:
        return "tie (n.s.)"
    return "win" if delta > 0 else "**loss**"


def best_baseline_tests(frame: pd.DataFrame, scenarios: list[str]) -> pd.DataFrame:
    """Ours against the best baseline of each regime and scenario (by mean AUROC).

    Only baselines that predicted every scored test sample in every split compete;
    the best is picked after seeing the results, which favours the baseline.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    scenarios : list of str
        Scenario order.

    Returns
    -------
    pandas.DataFrame
        One row per regime and scenario.
    """
    eligible = _eligible(frame)
    means = frame.groupby(["regime", "scenario", "method"])["auroc"].mean()
    rows = []
    for regime in frame["regime"].unique():
        for scenario in scenarios:
            candidates = [m for (r, s, m), ok in eligible.items()
                          if ok and r == regime and s == scenario]
            if not candidates:
                continue
            best = max(candidates, key=lambda m: means[(regime, scenario, m)])
            delta, p, n = _paired(frame, regime, scenario, "ours", best)
            rows.append({"regime": regime, "scenario": scenario,
                         "ours": means[(regime, scenario, "ours")], "best baseline": best,
                         "baseline": means[(regime, scenario, best)], "delta": delta,
                         "p": p, "pairs": n, "verdict": _verdict(delta, p)})
    return pd.DataFrame(rows)


def _fmt(mean: float, std: float, partial: bool) -> str:
    if not np.isfinite(mean):
        return "—"
    std_text = f" ± {std:.3f}" if np.isfinite(std) else ""
    return f"{mean:.3f}{std_text}{' *' if partial else ''}"


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def metric_table(stats: pd.DataFrame, regime: str, metric: str, scenarios: list[str],
                 methods: list[str]) -> str:
    """Markdown table: methods x scenarios, mean ± std of one metric.

    Parameters
    ----------
    stats : pandas.DataFrame
        Output of :func:`summary`.
    regime, metric : str
        Which regime and metric.
    scenarios, methods : list of str
        Column and row order.

    Returns
    -------
    str
    """
    rows = []
    for method in methods:
        row = {"method": f"**{method}**" if method == "ours" else method}
        for scenario in scenarios:
            key = (regime, scenario, method)
            if key not in stats.index:
                row[scenario] = ""
                continue
            s = stats.loc[key]
            row[scenario] = _fmt(s[f"{metric}_mean"], s[f"{metric}_std"], s["coverage"] < 1)
        rows.append(row)
    return _markdown(pd.DataFrame(rows))


def tests_table(tests: pd.DataFrame) -> str:
    """Markdown table of :func:`best_baseline_tests`.

    Parameters
    ----------
    tests : pandas.DataFrame
        Its output.

    Returns
    -------
    str
    """
    shown = pd.DataFrame({
        "regime": tests["regime"], "scenario": tests["scenario"],
        "ours": tests["ours"].map("{:.3f}".format),
        "best baseline": tests["best baseline"],
        "its AUROC": tests["baseline"].map("{:.3f}".format),
        "Δ (ours - best)": tests["delta"].map("{:+.3f}".format),
        "Wilcoxon p": tests["p"].map(lambda p: f"{p:.2g}" if np.isfinite(p) else "n/a"),
        "pairs": tests["pairs"], "verdict": tests["verdict"],
    })
    return _markdown(shown)


def ablation_table(frame: pd.DataFrame, regime: str, scenarios: list[str]) -> str:
    """Markdown table: AUROC of ours minus each ablation, with the Wilcoxon p.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    regime : str
        Training regime.
    scenarios : list of str
        Row order.

    Returns
    -------
    str
    """
    ablations = [c.label for c in NEURAL
                 if c.family == "ablation" and c.label in set(frame["method"])]
    rows = []
    for scenario in scenarios:
        row = {"scenario": scenario}
        for ablation in ablations:
            delta, p, _ = _paired(frame, regime, scenario, "ours", ablation)
            mark = "" if not np.isfinite(p) or p >= ALPHA else " †"
            p_text = f"{p:.2g}" if np.isfinite(p) else "n/a"
            row[f"vs {ablation}"] = f"{delta:+.3f} (p={p_text}){mark}"
        rows.append(row)
    return _markdown(pd.DataFrame(rows))


def losses_text(tests: pd.DataFrame) -> str:
    """Bullet list of the scenarios where ours scores below the best baseline.

    Parameters
    ----------
    tests : pandas.DataFrame
        Output of :func:`best_baseline_tests`.

    Returns
    -------
    str
    """
    lost = tests[tests["delta"] < 0]
    if lost.empty:
        return "Ours has a higher mean AUROC than the best baseline in every scenario."
    lines = []
    for row in lost.to_dict("records"):
        flag = "significant" if row["verdict"] == "**loss**" else "not significant"
        lines.append(f"- `{row['regime']}`, {row['scenario']}: ours {row['ours']:.3f} vs "
                     f"{row['best baseline']} {row['baseline']:.3f} "
                     f"(Δ {row['delta']:+.3f}, p = {row['p']:.2g}, {flag})")
    return "\n".join(lines)


def section(dataset: str, frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The markdown section of one data set.

    Parameters
    ----------
    dataset : str
        Data set key.
    frame : pandas.DataFrame
        Per-split results.
    meta : dict
        ``title``, ``command``, ``date``, ``folds``, ``seeds``, ``wall``, ``data``
        (bullet lines), ``profile``, ``image`` (relative PNG path), ``quick``.

    Returns
    -------
    str
    """
    from ._methods import REGIMES

    scenarios = list(dict.fromkeys(frame["scenario"]))
    methods = method_order(list(frame["method"].unique()))
    stats = summary(frame)
    tests = best_baseline_tests(frame, scenarios)
    regimes = list(dict.fromkeys(frame["regime"]))
    lines = [
        f"## {meta['title']}", "",
        f"Command: `{meta['command']}`", "",
        f"- date: {meta['date']}; {meta['folds']} folds x {meta['seeds']} "
        f"seed{'s' if meta['seeds'] > 1 else ''} "
        f"({meta['splits']} splits); wall time {meta['wall'] / 60:.1f} min "
        f"({meta['machine']})",
        *[f"- {line}" for line in meta["data"]],
        f"- network (profile `{meta['profile_name']}`): "
        + ", ".join(f"{k}={v}" for k, v in meta["profile"].items()),
        "", f"![AUROC per method and scenario]({meta['image']})", "",
    ]
    for regime in regimes:
        lines += [f"### AUROC, training regime `{regime}` ({REGIMES[regime]})", "",
                  metric_table(stats, regime, "auroc", scenarios, methods), ""]
    if (stats["coverage"] < 1).any():
        lines += ["`*` = scored only on the test samples that have the specialist's "
                  "modality (it cannot predict the others).", ""]
    lines += ["### Ours against the best baseline (paired Wilcoxon signed-rank, AUROC)", "",
              tests_table(tests), "",
              "Where ours has a lower mean AUROC than the best baseline:", "",
              losses_text(tests), ""]
    ablations = [c for c in NEURAL if c.family == "ablation" and c.label in methods]
    if ablations:
        for regime in regimes:
            lines += [f"### Ours minus each ablation, regime `{regime}` "
                      f"(AUROC difference, Wilcoxon p; † p < {ALPHA})", "",
                      ablation_table(frame, regime, scenarios), ""]
    for metric in ("auprc", "bacc"):
        for regime in regimes:
            lines += [f"<details><summary>{METRICS[metric]}, regime `{regime}`</summary>",
                      "", metric_table(stats, regime, metric, scenarios, methods), "",
                      "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def console(frame: pd.DataFrame) -> str:
    """Plain-text AUROC tables and the tests, for the terminal.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.

    Returns
    -------
    str
    """
    scenarios = list(dict.fromkeys(frame["scenario"]))
    methods = method_order(list(frame["method"].unique()))
    stats = summary(frame)
    parts = []
    for regime in dict.fromkeys(frame["regime"]):
        parts.append(f"AUROC, regime {regime}:")
        parts.append(metric_table(stats, regime, "auroc", scenarios, methods))
    parts.append("Ours vs best baseline:")
    parts.append(tests_table(best_baseline_tests(frame, scenarios)))
    return "\n\n".join(parts)


def write_section(path: Path, key: str, text: str, header: str) -> None:
    """Insert or replace the block ``key`` of a markdown file (created with ``header``).

    Parameters
    ----------
    path : pathlib.Path
        The markdown file.
    key : str
        Block name; the block lies between ``<!-- quality:KEY:begin -->`` and
        ``<!-- quality:KEY:end -->``.
    text : str
        New content of the block.
    header : str
        Content of a new file.
    """
    begin, end = f"<!-- quality:{key}:begin -->", f"<!-- quality:{key}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    content = path.read_text() if path.exists() else header
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(content):
        content = pattern.sub(lambda _: block, content)
    else:
        content = (content.strip() + "\n\n" + block).strip() + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
