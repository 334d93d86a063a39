"""Markdown tables and sections of the quality benchmarks (statistics in ``_stats``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._methods import NEURAL, SEED_COMPARISON
from ._stats import (
    ALPHA,
    LN2,
    LOWER_IS_BETTER,
    METRICS,
    TESTED,
    best_baseline_tests,
    contrastive_summary,
    neural_methods,
    summary,
    versus_tests,
)


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


def _fmt(mean: float, std: float, partial: bool) -> str:
    if not np.isfinite(mean):
        return "—"
    std_text = f" ± {std:.3f}" if np.isfinite(std) else ""
    return f"{mean:.3f}{std_text}{' *' if partial else ''}"


def _p(p: float) -> str:
    return f"{p:.2g}" if np.isfinite(p) else "n/a"


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a markdown table (index dropped).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.

    Returns
    -------
    str
    """
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
        Output of :func:`benchmarks._stats.summary`.
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
            if key not in stats.index or f"{metric}_mean" not in stats:
                row[scenario] = ""
                continue
            s = stats.loc[key]
            row[scenario] = _fmt(s[f"{metric}_mean"], s[f"{metric}_std"], s["coverage"] < 1)
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def tests_table(tests: pd.DataFrame, metric: str = "auroc") -> str:
    """Markdown table of :func:`benchmarks._stats.best_baseline_tests`.

    Parameters
    ----------
    tests : pandas.DataFrame
        Its output.
    metric : str, default="auroc"
        The metric tested (for the column names).

    Returns
    -------
    str
    """
    other = "best baseline" if "best baseline" in tests else "other"
    shown = pd.DataFrame({
        "regime": tests["regime"], "scenario": tests["scenario"],
        "ours": tests["ours"].map("{:.3f}".format),
        other: tests[other],
        f"its {METRICS[metric]}": tests["baseline"].map("{:.3f}".format),
        "Δ (ours - it)": tests["delta"].map("{:+.3f}".format),
        "Wilcoxon p": tests["p"].map(_p), "Holm p": tests["p_holm"].map(_p),
        "pairs": tests["pairs"], "verdict (Holm)": tests["verdict"],
    })
    return markdown(shown)


def versus_table(frame: pd.DataFrame, regime: str, scenarios: list[str],
                 others: list[str], metric: str = "auroc") -> str:
    """Markdown table: ours minus each of ``others`` per scenario, with raw and Holm p.

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
    metric : str, default="auroc"
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
                row[f"vs {other}"] = ""
                continue
            t = tests.loc[(regime, scenario)]
            mark = " †" if t["p_holm"] < ALPHA else ""
            row[f"vs {other}"] = f"{t['delta']:+.3f} (p={_p(t['p'])}, Holm {_p(t['p_holm'])}){mark}"
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def seed_order(scenarios: list[str]) -> list[str]:
    """Single-modality scenarios first, then all modalities, then the partial ones."""
    alone = [s for s in scenarios if s.endswith(" only")]
    return alone + [s for s in scenarios if s == "all"] + [
        s for s in scenarios if s not in alone and s != "all"]


def seed_table(frame: pd.DataFrame, stats: pd.DataFrame, regime: str,
               scenarios: list[str]) -> str:
    """The seed paper's comparison: the method (SMD) vs ModDrop vs no modality dropout.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    stats : pandas.DataFrame
        Its summary.
    regime : str
        Training regime.
    scenarios : list of str
        Scenarios, reordered single-modality first.

    Returns
    -------
    str
    """
    methods = [m for m in SEED_COMPARISON if m in set(frame["method"])]
    order = seed_order(scenarios)
    tests = {m: versus_tests(frame, order, m).set_index(["regime", "scenario"])
             for m in methods[1:]}
    rows = []
    for scenario in order:
        row = {"scenario": scenario}
        for method in methods:
            s = stats.loc[(regime, scenario, method)]
            row[method] = _fmt(s["auroc_mean"], s["auroc_std"], False)
        for method, t in tests.items():
            cell = t.loc[(regime, scenario)]
            mark = " †" if cell["p_holm"] < ALPHA else ""
            row[f"ours - {method}"] = (f"{cell['delta']:+.3f} (Holm p={_p(cell['p_holm'])})"
                                       f"{mark}")
        rows.append(row)
    return markdown(pd.DataFrame(rows))


def contrastive_table(frame: pd.DataFrame) -> str:
    """Markdown table of how the contrastive stages ended (train and held-out rows).

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results with diagnostics.

    Returns
    -------
    str
        Empty when no configuration ran a contrastive stage.
    """
    table = contrastive_summary(frame)
    if table.empty:
        return ""
    shown = pd.DataFrame({
        "regime": table["regime"], "method": table["method"],
        "loss (train)": table["stage_loss"].map("{:.3f}".format),
        "loss (held out)": table["stage_valid_loss"].map("{:.3f}".format),
        "cos same / diff class (train)": [
            f"{a:+.3f} / {b:+.3f}" for a, b in zip(table["same_cosine"], table["diff_cosine"])],
        "cos same / diff class (held out)": [
            f"{a:+.3f} / {b:+.3f}"
            for a, b in zip(table["valid_same_cosine"], table["valid_diff_cosine"])],
    })
    return markdown(shown)


def losses_text(tests: pd.DataFrame, metric: str = "auroc") -> str:
    """Bullet list of the scenarios where ours does worse than the best baseline.

    Parameters
    ----------
    tests : pandas.DataFrame
        Output of :func:`benchmarks._stats.best_baseline_tests`.
    metric : str, default="auroc"
        The metric tested.

    Returns
    -------
    str
    """
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


def _header(meta: dict[str, Any]) -> list[str]:
    return [
        f"## {meta['title']}", "",
        f"Command: `{meta['command']}`", "",
        f"- date: {meta['date']}; {meta['folds']} folds x {meta['seeds']} "
        f"seed{'s' if meta['seeds'] > 1 else ''} "
        f"({meta['splits']} splits); wall time {meta['wall'] / 60:.1f} min "
        f"({meta['machine']})",
        *[f"- {line}" for line in meta["data"]],
        f"- our estimator (profile `{meta['profile_name']}`): "
        + (", ".join(f"{k}={v}" for k, v in meta["profile"].items()) or "defaults"),
    ]


def section(dataset: str, frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The markdown section of one data set.

    Parameters
    ----------
    dataset : str
        Data set key.
    frame : pandas.DataFrame
        Per-split results.
    meta : dict
        ``title``, ``command``, ``date``, ``folds``, ``seeds``, ``splits``, ``wall``,
        ``machine``, ``data`` (bullet lines), ``profile_name``, ``profile``, ``image``
        (relative PNG path).

    Returns
    -------
    str
    """
    from ._methods import REGIMES

    scenarios = list(dict.fromkeys(frame["scenario"]))
    methods = method_order(list(frame["method"].unique()))
    stats = summary(frame)
    regimes = list(dict.fromkeys(frame["regime"]))
    lines = [*_header(meta), "", f"![AUROC per method and scenario]({meta['image']})", ""]
    for metric in TESTED:
        for regime in regimes:
            lines += [f"### {METRICS[metric]}, training regime `{regime}` "
                      f"({REGIMES[regime]})", "",
                      metric_table(stats, regime, metric, scenarios, methods), ""]
    if (stats["coverage"] < 1).any():
        lines += ["`*` = scored only on the test samples that have the specialist's "
                  "modality (it cannot predict the others).", ""]
    for metric in TESTED:
        tests = best_baseline_tests(frame, scenarios, metric)
        lines += [f"### Ours against the best baseline: {METRICS[metric]} (paired Wilcoxon "
                  f"signed-rank; Holm over the {len(tests)} tests)", "",
                  tests_table(tests, metric), "",
                  f"Where ours has a worse mean {METRICS[metric]} than the best baseline:",
                  "", losses_text(tests, metric), ""]
    if all(m in set(frame["method"]) for m in SEED_COMPARISON) and len(meta["modalities"]) > 1:
        for regime in regimes:
            lines += [f"### The seed paper's comparison, regime `{regime}`: SMD (ours) vs "
                      f"ModDrop vs no modality dropout (AUROC; † Holm p < {ALPHA})", "",
                      seed_table(frame, stats, regime, scenarios), ""]
    ablations = neural_methods(frame)
    if ablations:
        for regime in regimes:
            lines += [f"### Ours minus each ablation, regime `{regime}` (AUROC; Wilcoxon p, "
                      f"Holm over each column's tests; † Holm p < {ALPHA})", "",
                      versus_table(frame, regime, scenarios, ablations), ""]
    table = contrastive_table(frame)
    if table:
        lines += [f"### How the contrastive stage ended (last epoch, mean over members and "
                  f"splits; ln 2 = {LN2:.3f} is the balanced loss of projections that "
                  "carry no class information)", "", table, ""]
    for metric in ("brier", "ece", "auprc", "bacc"):
        for regime in regimes:
            lines += [f"<details><summary>{METRICS[metric]}, regime `{regime}`</summary>",
                      "", metric_table(stats, regime, metric, scenarios, methods), "",
                      "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def console(frame: pd.DataFrame) -> str:
    """Plain-text AUROC and log-loss tables and the tests, for the terminal.

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
    for metric in TESTED:
        for regime in dict.fromkeys(frame["regime"]):
            parts.append(f"{METRICS[metric]}, regime {regime}:")
            parts.append(metric_table(stats, regime, metric, scenarios, methods))
        parts.append(f"Ours vs best baseline ({METRICS[metric]}):")
        parts.append(tests_table(best_baseline_tests(frame, scenarios, metric), metric))
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
