"""Plots of the quality benchmarks: a score against the share of missing test modalities."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ._methods import family
from ._report import method_order
from ._stats import METRICS, summary


def plot(frame: pd.DataFrame, names: list[str], title: str, path: Path,
         metric: str = "auroc", order: Callable[[list[str]], list[str]] = method_order,
         family_of: Callable[[str], str] = family) -> None:
    """A score against the share of test samples that lose each modality, per method.

    With one modality there is no missingness to vary: a bar chart of the score.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-split results.
    names : list of str
        Modality names.
    title : str
        Figure title.
    path : pathlib.Path
        Output PNG.
    metric : str, default="auroc"
        The score plotted (a key of :data:`benchmarks._stats.METRICS`); methods without
        it (NaN in every split) are left out.
    order : callable, default=method_order
        Method labels to legend order.
    family_of : callable, default=family
        Method label to "ours", "ablation" or "baseline" (dashed or dotted lines).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summary(frame)
    regimes = list(frame["regime"].unique())
    methods = [m for m in order(list(frame["method"].unique()))
               if frame.loc[frame["method"] == m, metric].notna().any()]
    label = METRICS[metric]
    path.parent.mkdir(parents=True, exist_ok=True)
    palette = plt.get_cmap("tab20").colors
    styles = {}
    for i, method in enumerate(m for m in methods if m != "ours"):
        neural = family_of(method) in ("ours", "ablation")
        styles[method] = {"color": palette[(2 * i) % 20 + (i >= 10)],
                          "ls": "--" if neural else ":", "marker": "." if neural else "s",
                          "ms": 4, "lw": 1.3}
    styles["ours"] = {"color": "black", "lw": 2.5, "marker": "o"}
    if len(names) == 1:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        sub = stats.loc[(regimes[0], "all")].reindex(methods)
        ax.barh(methods[::-1], sub[f"{metric}_mean"][::-1], xerr=sub[f"{metric}_std"][::-1],
                color=["C3" if m == "ours" else "C0" for m in methods[::-1]])
        ax.set_xlabel(f"{label} (mean ± std over folds x seeds)")
        lo = float(np.nanmin(sub[f"{metric}_mean"] - sub[f"{metric}_std"]))
        ax.set_xlim(max(0.0, lo - 0.05), 1.0)
    else:
        fig, axes = plt.subplots(len(regimes), len(names), squeeze=False, sharey=True,
                                 figsize=(5.2 * len(names), 3.6 * len(regimes)))
        for r, regime in enumerate(regimes):
            for c, name in enumerate(names):
                ax = axes[r, c]
                points = ["all", *[f"-{name} {p}%" for p in (25, 50, 75)]]
                xs = [0, 25, 50, 75]
                if len(names) == 2:
                    points.append(f"{names[1 - c]} only")
                    xs.append(100)
                for method in methods:
                    keys = [(regime, s, method) for s in points]
                    if any(k not in stats.index for k in keys):
                        continue
                    sub = stats.loc[keys]
                    if (sub["coverage"] < 1).any():
                        continue  # a specialist that cannot predict every sample
                    ax.plot(xs, sub[f"{metric}_mean"], label=method, **styles[method])
                ax.set_title(f"{regime}: test samples without {name}", fontsize=9)
                ax.set_xlabel(f"% of test samples with {name} withheld")
                ax.set_xticks(xs)
                ax.grid(alpha=0.3)
            axes[r, 0].set_ylabel(label)
        legend = {}
        for ax in axes.flat:
            legend.update(zip(*reversed(ax.get_legend_handles_labels())))
        legend = {m: legend[m] for m in methods if m in legend}
        fig.legend(list(legend.values()), list(legend), loc="center left",
                   bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
