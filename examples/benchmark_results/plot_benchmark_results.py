"""
The benchmarks at a glance
==========================

The benchmark pages (:doc:`accuracy under missing modalities </benchmarks>`,
:doc:`speed </benchmarks_speed>`) hold every number in tables, one section per data
set. This example draws three summaries from those committed tables; nothing is
re-run (the runs take hours, ``python -m benchmarks.quality`` and
``python -m benchmarks.speed`` repeat them).

* how far the estimator, with its defaults, is from the best baseline of every test
  scenario, on every data set;
* how AUROC falls as a modality goes missing from more and more test patients, for the
  estimator and the fusion baselines a data scientist would try;
* how much time the estimator adds to a hand-written PyTorch loop.
"""

# %%
# Reading the report tables
# -------------------------
#
# The pages are Markdown; each data set's section sits between
# ``<!-- quality:NAME:begin -->`` and ``<!-- quality:NAME:end -->`` and each table
# follows a ``###`` heading. A few lines of pandas read them back.
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import mmfusion_sklearn

# the docs/ folder of the repository this package was installed from
DOCS = Path(mmfusion_sklearn.__file__).parents[1] / "docs"


def section(name, page="benchmarks.md"):
    """The text of one data set's generated section."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return text.split(f"<!-- quality:{name}:begin -->")[1].split(
        f"<!-- quality:{name}:end -->"
    )[0]


def table(text, heading):
    """The Markdown table after the first heading that starts with ``heading``."""
    block = []
    for line in text.split(heading, 1)[1].splitlines()[1:]:
        if line.startswith("|"):
            block.append(line)
        elif block:  # the end of the table
            break
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in block]
    return pd.DataFrame(rows[2:], columns=rows[0])


def mean_of(cell):
    """0.693 from "0.693 ± 0.085"; NaN for "—" and for a specialist's "*" score,
    computed on a subset of the patients only."""
    if "*" in cell or not re.match(r"^-?\d", cell):
        return np.nan
    return float(cell.split("±")[0])


DATA_SETS = {
    "gse7390": "GSE7390 (198)",
    "nki70": "NKI70 (144)",
    "wpbc": "WPBC (198)",
    "support2": "SUPPORT2 (9,105)",
    "support2_three": "SUPPORT2, 3 modalities",
    "br35h_semisynthetic": "Br35H + table (semi-synth.)",
}
gse = table(section("gse7390"), "### Ours against the best baseline: AUROC")
gse.head()

# %%
# Against the best baseline of each scenario
# ------------------------------------------
#
# For every scenario (all modalities; one withheld from 25 %, 50 %, 75 % or all of the
# test patients) and both training regimes, the benchmark picks, after the fact, the
# baseline with the best mean: a unimodal specialist, early or late fusion. One dot is
# one scenario: the estimator's mean minus that baseline's, over 15 cross-validation
# splits (5 for SUPPORT2 and Br35H). The verdict is a paired Wilcoxon test, Holm
# corrected over the data set's scenarios.
colours = {"tie": "C7", "win": "C2", "loss": "C3"}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, metric, better in [
    (axes[0], "AUROC", "higher"),
    (axes[1], "log loss", "lower"),
]:
    for row, name in enumerate(DATA_SETS):
        verdicts = table(
            section(name), f"### Ours against the best baseline: {metric}"
        )
        delta = verdicts["Δ (ours - it)"].astype(float)
        kind = verdicts["verdict (Holm)"].str.split().str[0]
        jitter = np.linspace(-0.25, 0.25, len(delta))
        ax.scatter(
            delta, row + jitter, s=14, c=[colours[k] for k in kind], alpha=0.8
        )
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel(f"{metric}: ours - best baseline ({better} is better)")
axes[0].set_yticks(range(len(DATA_SETS)), list(DATA_SETS.values()))
axes[0].invert_yaxis()
handles = [
    axes[1].scatter([], [], c=colour, s=14, label=f"{kind} (Holm)")
    for kind, colour in colours.items()
]
fig.legend(
    handles=handles, loc="upper right", ncol=3, fontsize="small", frameon=False
)
fig.suptitle("One dot per test scenario and training regime", x=0.3)
fig.tight_layout()

# %%
# Almost every dot is a tie: with its defaults the estimator matches the best
# specialist or fusion of each scenario, while being one model for all of them. The
# log-loss gaps lean to the left of zero (better calibrated) more than the AUROC gaps
# do.
#
# As a modality goes missing
# --------------------------
#
# The same tables, read along one row: the training regime where the data come as
# they are, and the first modality of each data set withheld from a growing share of
# the test patients (100 % = the other modality only). Specialists that cannot score
# every patient are left out.
methods = {
    "ours": "C0",
    "late LRcv": "C1",
    "early HGB": "C2",
    "ModDrop": "C4",
    "no modality dropout": "C7",
}
two_modalities = ["gse7390", "nki70", "wpbc", "support2"]
fig, axes = plt.subplots(1, len(two_modalities), figsize=(12, 3.3))
for ax, name in zip(axes, two_modalities):
    auroc = table(section(name), "### AUROC, training regime `natural`")
    auroc["method"] = auroc["method"].str.strip("*")
    auroc = auroc.set_index("method")
    first = auroc.columns[1].removesuffix(" only")
    other = auroc.columns[2]
    columns = ["all", f"-{first} 25%", f"-{first} 50%", f"-{first} 75%", other]
    for method, colour in methods.items():
        values = [mean_of(auroc.loc[method, c]) for c in columns]
        ax.plot(
            [0, 25, 50, 75, 100],
            values,
            "o-",
            color=colour,
            ms=3,
            lw=2.5 if method == "ours" else 1.2,
            label=method,
        )
    ax.set_title(DATA_SETS[name], fontsize=10)
    ax.set_xlabel(f"% of test patients without {first}")
    ax.set_xticks([0, 25, 50, 75, 100])
axes[0].set_ylabel("AUROC (mean over splits)")
fig.legend(
    *axes[0].get_legend_handles_labels(),
    loc="lower center",
    ncol=len(methods),
    fontsize="small",
    frameon=False,
)
fig.tight_layout(rect=(0, 0.07, 1, 1))

# sphinx_gallery_thumbnail_number = 2

# %%
# Early fusion by gradient boosting on the concatenated columns (NaN where a modality
# is missing) falls fastest on GSE7390, NKI70 and SUPPORT2; the estimator, ModDrop
# and late fusion stay within a few hundredths of each other. On WPBC the clinical
# variables alone score best, and every method gains as the morphometry is withheld.
#
# Speed against a hand-written loop
# ---------------------------------
#
# The speed benchmark trains the estimator's own network three ways on the same
# preprocessed tensors: through the estimator (input checks, preprocessing, skorch),
# in a raw PyTorch loop, and with plain skorch. CPU time is the stable measure on a
# shared machine.
ratios = table(
    (DOCS / "benchmarks_speed.md").read_text(encoding="utf-8"), "## Time ratios"
)
ratios["n"] = ratios["n"].str.replace(",", "").astype(int)
ratios["ours/raw fit cpu"] = ratios["ours/raw fit cpu"].astype(float)
fig, ax = plt.subplots(figsize=(6, 3))
settings = list(dict.fromkeys(ratios["setting"]))  # none, simultaneous, regressor
for k, setting in enumerate(settings):
    group = ratios[ratios["setting"] == setting]
    positions = np.arange(len(group)) + 0.27 * k
    label = ("regressor" if setting == "regressor"
             else f"classifier, modality_dropout={setting!r}")
    ax.bar(positions, group["ours/raw fit cpu"], width=0.25, label=label)
ax.set_xticks(np.arange(len(group)) + 0.27, [f"n = {n:,}" for n in group["n"]])
ax.axhline(1.0, color="black", lw=1)
ax.axhline(1.2, color="C3", lw=1, ls="--", label="target: 1.2 (classifier)")
ax.axhline(1.15, color="C2", lw=1, ls=":", label="target: 1.15 (regressor)")
ax.set_ylabel("fit CPU time, ours / raw")
ax.set_ylim(0, 1.6)
ax.legend(fontsize="small", loc="upper center", ncol=2, frameon=False)
fig.tight_layout()

# %%
# The full tables, with every method, scenario and metric (AUROC, log loss, Brier
# score, calibration error, AUPRC, balanced accuracy), the ablations of the method and
# the small-cohort runs, are on the :doc:`benchmark page </benchmarks>`; memory and
# file-backed training on :doc:`the imaging page </benchmarks_imaging>`.
