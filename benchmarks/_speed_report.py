"""Tables, verdicts, Markdown report and plot of the speed benchmark."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ._speed_data import N_TABLE, BenchData
from ._speed_measure import PerClock, Result
from ._speed_runners import BATCH_SIZE, LR, METHODS, TASKS, WEIGHT_DECAY, task_of

RSS_FLAT_MIB = 16
#: The settings compared with the raw loop, task by task: the classifier's modality
#: dropout, then the regressor, then the survival model.
OBJECTIVES = tuple(setting for task in TASKS for setting in task.settings)


def ratio_target(objective: str) -> float:
    """The ours / raw target of a setting, its task's: 1.2 for the classifier, 1.15 for
    the regressor and the survival model.

    Parameters
    ----------
    objective : str
        ``"none"``, ``"simultaneous"``, ``"regressor"`` or ``"survival"``.

    Returns
    -------
    float
    """
    return task_of(objective).ratio_target


def _targets_text() -> str:
    """The targets in a heading: the first task's, then the others' that differ."""
    first = TASKS[0].ratio_target
    others: dict[float, list[str]] = {}
    for task in TASKS[1:]:
        if task.ratio_target != first:
            others.setdefault(task.ratio_target, []).append(task.name)
    return ", ".join([f"target ours/raw <= {first}",
                      *(f"{' and '.join(names)} <= {target}"
                        for target, names in others.items())])


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format a Markdown table, columns padded, numbers (all but the first) right-aligned.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequence of str
        Cells, one list per row.

    Returns
    -------
    str
        The table, one line per row.
    """
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).rjust(w) if i else str(c).ljust(w)
                              for i, (c, w) in enumerate(zip(row, widths))) + " |"
            for row in rows]
    return "\n".join([line, rule, *body])


def _per_second(value: PerClock) -> list[str]:
    """The wall and CPU cells of a throughput."""
    return [f"{value.wall:,.0f}", f"{value.cpu:,.0f}"]


def _ratio(value: PerClock | None, clock: str) -> str:
    """A ratio cell: two decimals, or ``-`` where not measured."""
    return "-" if value is None else f"{value.get(clock):.2f}"


@dataclass(frozen=True)
class Ratios:
    """Time ratios to the raw loop at one size and objective (lower is faster).

    Parameters
    ----------
    n : int
        Samples.
    objective : str
        Modality dropout of the classifier, ``"regressor"`` or ``"survival"``.
    fit : PerClock
        Ours / raw, the whole fit.
    epoch : PerClock
        Ours / raw, the fastest epoch.
    predict : PerClock
        Ours / raw, ``predict_proba``.
    skorch_fit : PerClock or None
        Skorch / raw, the whole fit (None where skorch did not run).
    skorch_predict : PerClock or None
        Skorch / raw, ``predict_proba``.
    """

    n: int
    objective: str
    fit: PerClock
    epoch: PerClock
    predict: PerClock
    skorch_fit: PerClock | None
    skorch_predict: PerClock | None


class SpeedReport:
    """The tables, verdicts, Markdown report and plot of one run.

    Parameters
    ----------
    results : sequence of Result
        The measurements, one per method, objective and size.

    Attributes
    ----------
    results : list of Result
        Ordered by size, then in the order of :data:`METHODS`.
    sizes : list of int
        The sizes, ascending.
    series : dict of str to list of Result
        Per row label (method and objective), its results by ascending size.
    """

    def __init__(self, results: Sequence[Result]) -> None:
        order = {m: i for i, m in enumerate(METHODS)}
        self.results = sorted(results, key=lambda r: (r.n, order.get((r.method, r.objective), 99)))
        self.sizes = sorted({r.n for r in results})
        self.series: dict[str, list[Result]] = {}
        for r in self.results:
            self.series.setdefault(r.label, []).append(r)
        self._index = {(r.method, r.objective, r.n): r for r in self.results}

    def throughput_table(self) -> str:
        """Tabulate samples per wall and CPU second of fit, epoch and predict; set-up time.

        Returns
        -------
        str
            A Markdown table, one row per method and size.
        """
        header = ["method", "n", "fit /s", "fit /cpu-s", "epoch /s", "epoch /cpu-s",
                  "set-up cpu-s", "predict /s", "predict /cpu-s"]
        rows = [[r.label, f"{r.n:,}", *_per_second(r.fit_sps), *_per_second(r.epoch_sps),
                 f"{r.setup_time.cpu:.2f}", *_per_second(r.predict_sps)]
                for r in self.results]
        return md_table(header, rows)

    def memory_table(self) -> str:
        """Tabulate peak RSS of fit and predict, RSS held in the epochs and its change.

        Returns
        -------
        str
            A Markdown table, one row per method and size.
        """
        header = ["method", "n", "fit peak RSS MiB", "fit +RSS MiB", "held in epochs +RSS MiB",
                  "predict +RSS MiB", "RSS last - first epoch MiB"]
        rows = [[r.label, f"{r.n:,}", f"{r.fit_peak_mib:,.0f}",
                 f"{r.fit_peak_mib - r.fit_start_mib:,.0f}",
                 f"{r.epoch_rss_mib[-1] - r.fit_start_mib:,.0f}" if r.epoch_rss_mib else "-",
                 f"{r.predict_peak_mib - r.predict_start_mib:,.0f}",
                 f"{r.rss_growth_mib:+.1f}"]
                for r in self.results]
        return md_table(header, rows)

    def ratios(self) -> list[Ratios]:
        """Time ratios ours / raw loop (and skorch / raw) per size and objective.

        Returns
        -------
        list of Ratios
            One per size and objective where both ours and raw ran.
        """
        rows = []
        for n in self.sizes:
            for objective in OBJECTIVES:
                ours = self._index.get(("ours", objective, n))
                raw = self._index.get(("raw", objective, n))
                if ours is None or raw is None:
                    continue
                sk = self._index.get(("skorch", objective, n))
                rows.append(Ratios(
                    n, objective, ours.fit / raw.fit, ours.epoch_time / raw.epoch_time,
                    ours.predict / raw.predict,
                    None if sk is None else sk.fit / raw.fit,
                    None if sk is None else sk.predict / raw.predict,
                ))
        return rows

    def ratio_table(self) -> str:
        """Tabulate the :meth:`ratios`, and whether ours / raw meets the target.

        Returns
        -------
        str
            A Markdown table, one row per objective and size.
        """
        header = ["setting", "n", "ours/raw fit cpu", "target", "met",
                  "ours/raw fit wall", "ours/raw epoch cpu", "ours/raw predict cpu",
                  "ours/raw predict wall", "skorch/raw fit cpu", "skorch/raw predict cpu"]
        rows = [[r.objective, f"{r.n:,}", _ratio(r.fit, "cpu"),
                 f"<= {ratio_target(r.objective)}",
                 "yes" if r.fit.cpu <= ratio_target(r.objective) else "NO",
                 _ratio(r.fit, "wall"),
                 _ratio(r.epoch, "cpu"), _ratio(r.predict, "cpu"), _ratio(r.predict, "wall"),
                 _ratio(r.skorch_fit, "cpu"), _ratio(r.skorch_predict, "cpu")]
                for r in self.ratios()]
        return md_table(header, rows)

    def extras_table(self) -> str:
        """Tabulate what the estimator's defaults cost on top of the compared network.

        Returns
        -------
        str
            A Markdown table: ours with its linear path / ours without, per size.
        """
        rows = []
        for n in self.sizes:
            plain = self._index.get(("ours", "simultaneous", n))
            linear = self._index.get(("ours+linear", "simultaneous", n))
            if plain is None or linear is None:
                continue
            rows.append([f"{n:,}", _ratio(linear.fit / plain.fit, "cpu"),
                         _ratio(linear.fit / plain.fit, "wall"),
                         _ratio(linear.predict / plain.predict, "cpu")])
        return md_table(["n", "fit cpu", "fit wall", "predict cpu"], rows)

    def scaling(self, clock: str = "cpu") -> dict[str, tuple[float, dict[int, float]]]:
        """Exponent b of epoch time ~ n**b per method, and microseconds per sample.

        Parameters
        ----------
        clock : {"cpu", "wall"}, default="cpu"
            Which epoch time.

        Returns
        -------
        dict
            ``{label: (b, {n: us per sample per epoch})}``; b is NaN with one size.
        """
        out = {}
        for label, rows in self.series.items():
            times = [r.epoch_time.get(clock) for r in rows]
            per_sample = {r.n: 1e6 * t / r.n for r, t in zip(rows, times)}
            slope = float("nan")
            if len(rows) > 1:
                slope = float(np.polyfit(np.log([r.n for r in rows]), np.log(times), 1)[0])
            out[label] = (slope, per_sample)
        return out

    def scaling_table(self) -> str:
        """Tabulate the CPU-time :meth:`scaling`: microseconds per sample per size, and b.

        Returns
        -------
        str
            A Markdown table, one row per method and objective.
        """
        rows = [[label, *(f"{per_sample[n]:.0f}" if n in per_sample else "-"
                          for n in self.sizes), f"{slope:.2f}"]
                for label, (slope, per_sample) in self.scaling().items()]
        header = ["method", *(f"cpu-us/sample n={n:,}" for n in self.sizes), "b in t ~ n^b"]
        return md_table(header, rows)

    def rss_table(self) -> str:
        """Tabulate the RSS (MiB) at the end of each epoch, at the largest size.

        Returns
        -------
        str
            A Markdown table, one row per method and objective, one column per epoch.
        """
        rows = [r for r in self.results if r.n == self.sizes[-1]]
        epochs = max(len(r.epoch_rss_mib) for r in rows)
        body = [[r.label, *(f"{r.epoch_rss_mib[e]:,.1f}" if e < len(r.epoch_rss_mib) else "-"
                            for e in range(epochs))] for r in rows]
        return md_table(["method", *(f"epoch {e + 1}" for e in range(epochs))], body)

    def verdicts(self) -> list[str]:
        """Plain-language answers: ratio target met, linear in n, memory flat.

        Returns
        -------
        list of str
            Markdown list items.
        """
        lines = []
        ratios = self.ratios()
        for task in TASKS:
            rows = [r for r in ratios if task_of(r.objective) is task]
            if not rows:
                continue
            target = task.ratio_target
            worst = max(rows, key=lambda r: r.fit.cpu)
            ok = all(r.fit.cpu <= target for r in rows)
            # a task of several settings names the worst one's modality dropout
            where = ("" if len(task.settings) == 1
                     else f", modality_dropout={worst.objective!r}")
            lines.append(
                f"- {task.name}, ours / raw loop, whole fit, CPU time: "
                f"{'every' if ok else 'NOT every'} ratio <= {target} (worst "
                f"{worst.fit.cpu:.2f} at n={worst.n:,}{where}; wall time "
                f"{worst.fit.wall:.2f})."
            )
        if ratios:
            worst = max(ratios, key=lambda r: r.predict.cpu)
            lines.append(
                f"- ours / raw loop, prediction, CPU time: worst {worst.predict.cpu:.2f} "
                f"(n={worst.n:,}, {worst.objective!r}); ours starts from the user's arrays "
                "(input checks, preprocessing), raw from the preprocessed tensors."
            )
        for label, (slope, per_sample) in self.scaling().items():
            if math.isfinite(slope):
                kind = ("linear" if 0.9 <= slope <= 1.1 else
                        "below linear: fixed per-epoch costs weigh at small n" if slope < 0.9
                        else "ABOVE linear")
                lo, hi = min(per_sample), max(per_sample)
                lines.append(f"- {label}: epoch time ~ n^{slope:.2f} ({kind}); "
                             f"{per_sample[lo]:.0f} vs {per_sample[hi]:.0f} cpu-us/sample "
                             f"at n={lo:,} vs {hi:,}.")
        growth = [r for r in self.results if math.isfinite(r.rss_growth_mib)]
        if growth:
            worst_r = max(growth, key=lambda r: abs(r.rss_growth_mib))
            flat = abs(worst_r.rss_growth_mib) < RSS_FLAT_MIB
            lines.append(
                f"- RSS across epochs: {'flat' if flat else 'NOT flat'}: the largest change "
                f"between the first and the last epoch's end is {worst_r.rss_growth_mib:+.1f} "
                f"MiB ({worst_r.label}, n={worst_r.n:,}; threshold {RSS_FLAT_MIB} MiB)."
            )
        return lines

    def markdown(self, command: str, environment: Sequence[str], png: Path | None,
                 md: Path) -> str:
        """Build the full Markdown report.

        Parameters
        ----------
        command : str
            The command line that ran.
        environment : sequence of str
            Markdown list items on the machine and settings (see :func:`environment`).
        png : Path or None
            The plot to link, if any.
        md : Path
            Where the report goes (links are relative to it).

        Returns
        -------
        str
            The Markdown text.
        """
        parts = [
            "# Speed: ours vs a raw PyTorch loop vs plain skorch",
            "",
            f"Command: `{command}`",
            "",
            *environment,
            "",
            "**ours** = `MultimodalFusionClassifier.fit` / `.predict_proba` end to end from "
            "numpy arrays (input checks and preprocessing included). **raw** = a hand-written "
            "loop training the identical `MultimodalFusionNet` (from the estimator's "
            "`_build_network`) on the estimator's own preprocessed in-memory tensors: "
            "shuffled batches of 128 sliced in one indexing operation, AdamW, the same loss "
            "(raw predict starts from those tensors too). **skorch** = `skorch."
            "NeuralNetClassifier` on the same module with its default `DataLoader` "
            "(per-item fetch and collation). In parentheses the classifier's "
            "`modality_dropout`, or `regressor`: **ours (regressor)** = "
            "`MultimodalFusionRegressor.fit` / `.predict` end to end (same settings, "
            "`modality_dropout=\"none\"`, target `100 + 10 * label + 5 * table[:, 0]`), "
            "**raw (regressor)** = the raw loop training the identical one-output network "
            "(the fitted regressor's `_build_network`) with squared error on the target "
            "standardised with the regressor's fitted mean and scale. **ours (survival)** = "
            "`MultimodalFusionSurvivalAnalysis.fit` / `.predict` (risk scores) end to end "
            "(same settings, Cox loss, target: event times exponential with hazard "
            "`0.05 * exp(0.3 * (label - 4.5))`, 30 % censored), **raw (survival)** = the raw "
            "loop training the identical one-output network with Cox's negative log partial "
            "likelihood, Efron's ties (`cox_partial_likelihood`), on the dense ranks of the "
            "times and the events as the estimator trains on them; both fits end with a "
            "Breslow baseline hazard on the training rows' risk scores (raw: one pass over "
            "its tensors and `breslow_baseline`). `fit /s` = n x epochs "
            "per second of the whole fit; `epoch /s` uses the fastest epoch (the least "
            "disturbed by other jobs); `/cpu-s` divides by CPU seconds instead of wall "
            "seconds; `set-up cpu-s` = fit time outside the epochs; predict "
            "(`predict_proba`; the regressor's and the survival model's `predict`) runs on "
            "the n training samples.",
            "",
            "## Throughput (samples per second)",
            "",
            self.throughput_table(),
            "",
            f"## Time ratios (lower is faster; {_targets_text()})",
            "",
            self.ratio_table(),
            "",
            "## What the defaults add",
            "",
            "The compared network has no linear path (raw trains the same network). The "
            "estimator's default `linear_path=True` adds an L-BFGS fit of the table's linear "
            "path before training (here at C=1: no early stopping, so no penalty grid) and "
            "one matrix product per batch; `ours+linear / ours`, same run:",
            "",
            self.extras_table(),
            "",
            "`ensemble_size=\"auto\"` trains one network here (an image modality, and no "
            "early stopping); with five cross-fitted members (tables up to 5,000 samples) "
            "a fit costs about five single fits.",
            "",
            "## Epoch time vs n",
            "",
            self.scaling_table(),
            "",
            "## Memory",
            "",
            "`+RSS` = peak RSS during the call minus RSS at its start (the data arrays and, "
            "for raw and skorch, the preprocessed tensors are already in memory); `held in "
            "epochs` = RSS at the last epoch's end minus RSS at the start of fit (what fit "
            "keeps while training: ours holds its preprocessed copy of the data). Freed "
            "memory stays with the process (glibc), so a call after a bigger one can show "
            "+0 and a first call can show the allocator's own growth: read the large entries.",
            "",
            self.memory_table(),
            "",
            f"RSS (MiB) at the end of each epoch, n={self.sizes[-1]:,}:",
            "",
            self.rss_table(),
            "",
            "## Verdicts",
            "",
            *self.verdicts(),
        ]
        if png is not None:
            parts += ["", f"![speed]({os.path.relpath(png, md.parent)})"]
        return "\n".join(parts) + "\n"

    def plot(self, path: Path) -> None:
        """Write a three-panel PNG: fit throughput, epoch time vs n, RSS per epoch.

        Parameters
        ----------
        path : Path
            The PNG file (folders created).
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        styles = {"ours": "o-", "ours+linear": "o:", "raw": "s--", "skorch": "^:"}
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        for label, rows in self.series.items():
            style = styles[rows[0].method]
            ns = [r.n for r in rows]
            axes[0].plot(ns, [r.fit_sps.cpu for r in rows], style, label=label)
            axes[1].plot(ns, [r.epoch_time.cpu for r in rows], style, label=label)
            big = rows[-1]
            axes[2].plot(range(1, len(big.epoch_rss_mib) + 1), big.epoch_rss_mib, style,
                         label=label)
        raw = self.series.get("raw (none)", [])
        if len(raw) > 1:
            axes[1].plot(self.sizes, [raw[0].epoch_time.cpu * n / raw[0].n for n in self.sizes],
                         color="grey", lw=0.8, label="linear through raw (none)")
        axes[0].set(xscale="log", xlabel="n samples", ylabel="samples x epochs per CPU second",
                    title="fit throughput, end to end")
        axes[1].set(xscale="log", yscale="log", xlabel="n samples", ylabel="CPU seconds",
                    title="time per epoch")
        axes[0].set_ylim(bottom=0)
        axes[2].set(xlabel="epoch", ylabel="RSS (MiB)",
                    title=f"RSS at epoch end, n={self.sizes[-1]:,}")
        axes[2].xaxis.get_major_locator().set_params(integer=True)
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)


def environment(
    threads: int, data: BenchData, load: tuple[str, str], repeats: str
) -> list[str]:
    """Describe the machine, versions, data and settings of the run.

    Parameters
    ----------
    threads : int
        ``torch.set_num_threads`` of the run.
    data : BenchData
        The data.
    load : tuple of str
        Load average before and after the run.
    repeats : str
        How repeats were counted.

    Returns
    -------
    list of str
        Markdown list items.
    """
    import sklearn
    import skorch

    return [
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"`torch.set_num_threads({threads})`; {os.cpu_count()} CPU cores visible, "
        f"{platform.machine()}",
        f"- load average (1, 5, 15 min) before / after: {load[0]} / {load[1]}: "
        "the cores are shared with other jobs, so wall times are noisy; CPU times "
        "(`time.process_time`, the work this process did) are the stable measure",
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"skorch {skorch.__version__}, scikit-learn {sklearn.__version__}",
        f"- data: {data.source}; table: {N_TABLE} float columns = class centre + noise, "
        "generated from the label",
        f"- batch {BATCH_SIZE}, AdamW lr={LR} weight_decay={WEIGHT_DECAY}, CPU; ours: "
        "contrastive=None, pretrain_epochs=0, early_stopping=False; " + repeats,
    ]
