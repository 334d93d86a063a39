"""One table of every saved benchmark result: ours against the best baseline.

Reads the per-split results that ``benchmarks.quality`` and ``benchmarks.small_cohorts``
saved under ``benchmarks/results/`` (full runs only, not ``--quick``) and prints, per
data set or cohort: ours and the best baseline with every modality, the numbers of
wins / ties / losses against the best baseline of each scenario (AUROC and log loss,
Holm over the data set's scenario x regime tests) and what the contrastive stage adds
(ours - ``no contrastive``, AUROC, Holm). Nothing is trained. Run::

    python -m benchmarks.summary              # print the table
    python -m benchmarks.summary --write      # also replace the table in README.md
    python -m benchmarks.summary --ablations  # ours minus each ablation, every data set
    python -m benchmarks.summary --quick      # the --quick runs' results (a smoke test)

``--quick`` reads the results that ``--quick`` runs of those benchmarks saved
(``quality_<name>_quick.csv``, ``small_cohorts_quick.csv``) and only prints; ``--results
DIR`` reads another folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ._report import markdown, write_section
from ._stats import best_baseline_tests, neural_methods, verdict_counts, versus_tests

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
#: Data sets in the order of the table (``benchmarks.quality`` keys).
QUALITY = ("gse7390", "nki70", "wpbc", "support2", "support2_three", "br35h",
           "br35h_semisynthetic")


def _counts(tests: pd.DataFrame) -> str:
    c = verdict_counts(tests)
    return f"{c['wins']} / {c['ties']} / {c['losses']}"


def _contrastive(frame: pd.DataFrame, scenarios: list[str]) -> str:
    if "no contrastive" not in set(frame["method"]):
        return "not run"
    tests = versus_tests(frame, scenarios, "no contrastive")
    c = verdict_counts(tests)
    mean = tests["delta"].mean()
    return f"{mean:+.3f} mean; {c['wins']} better / {c['losses']} worse of {c['tests']}"


def row(label: str, frame: pd.DataFrame, samples: str) -> dict[str, str]:
    """The summary of one data set or cohort.

    Parameters
    ----------
    label : str
        Row label.
    frame : pandas.DataFrame
        Per-split results (one data set or cohort).
    samples : str
        Sample count shown.

    Returns
    -------
    dict
    """
    scenarios = list(dict.fromkeys(frame["scenario"]))
    auroc = best_baseline_tests(frame, scenarios, "auroc")
    logloss = best_baseline_tests(frame, scenarios, "logloss")
    first = auroc[(auroc["regime"] == "natural") & (auroc["scenario"] == "all")].iloc[0]
    splits = frame[["regime", "seed", "fold"]].drop_duplicates()
    splits = splits[splits["regime"] == "natural"]
    return {"data set": label, "patients": samples, "splits": str(len(splits)),
            "AUROC, all modalities: ours": f"{first['ours']:.3f}",
            "best baseline": f"{first['baseline']:.3f} ({first['best baseline']})",
            "vs best baseline, AUROC (W / T / L)": _counts(auroc),
            "log loss (W / T / L)": _counts(logloss),
            "contrastive stage adds (AUROC)": _contrastive(frame, scenarios)}


def _saved(results: Path | None = None, quick: bool = False
           ) -> list[tuple[str, pd.DataFrame, str]]:
    """``(label, per-split results, sample count)`` of every saved full run (``quick``:
    of every saved ``--quick`` run) in the folder ``results`` (None: :data:`RESULTS`)."""
    results = RESULTS if results is None else results
    out = []
    suffix = "_quick" if quick else ""
    for name in QUALITY:
        csv = results / f"quality_{name}{suffix}.csv"
        if not csv.exists():
            continue
        meta = json.loads(csv.with_suffix(".json").read_text())
        samples = meta["data"][0].split(" samples")[0]
        label = meta["title"].split(" (")[0]
        out.append((label, pd.read_csv(csv), samples))
    small = results / f"small_cohorts{suffix}.csv"
    if small.exists():
        frame = pd.read_csv(small)
        for cohort in dict.fromkeys(frame["cohort"]):
            out.append((f"{cohort} (small cohort)", frame[frame["cohort"] == cohort],
                        cohort.split("@")[1]))
    return out


def table(results: Path | None = None, quick: bool = False) -> str:
    """Markdown table of every saved full result.

    Parameters
    ----------
    results : Path, default=None
        The folder of the saved results (None: ``benchmarks/results/``).
    quick : bool, default=False
        Read the ``--quick`` runs' results instead.

    Returns
    -------
    str
    """
    return markdown(pd.DataFrame([row(*saved) for saved in _saved(results, quick)]))


def ablation_table(results: Path | None = None, quick: bool = False) -> str:
    """Ours minus each ablation over all scenarios and regimes of every saved run.

    Per data set and ablation: the mean Δ AUROC and Δ log loss over the scenario x regime
    cells, and how many cells are significantly better / worse for ours after Holm
    (raw p < 0.05 in brackets).

    Parameters
    ----------
    results : Path, default=None
        The folder of the saved results (None: ``benchmarks/results/``).
    quick : bool, default=False
        Read the ``--quick`` runs' results instead.

    Returns
    -------
    str
    """
    rows = []
    for label, frame, _ in _saved(results, quick):
        scenarios = list(dict.fromkeys(frame["scenario"]))
        for other in neural_methods(frame):
            out = {"data set": label, "ablation": other}
            for metric, sign in (("auroc", 1), ("logloss", -1)):
                tests = versus_tests(frame, scenarios, other, metric)
                good, bad = sign * tests["delta"] > 0, sign * tests["delta"] < 0
                raw, holm = tests["p"] < 0.05, tests["p_holm"] < 0.05
                out[f"Δ {metric} (mean)"] = f"{tests['delta'].mean():+.4f}"
                out[f"{metric}: ours better / worse"] = (
                    f"{int((good & holm).sum())} / {int((bad & holm).sum())} "
                    f"({int((good & raw).sum())} / {int((bad & raw).sum())}) of {len(tests)}")
            rows.append(out)
    return markdown(pd.DataFrame(rows))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.

    Returns
    -------
    int
        Exit status: 1 when no saved result was found.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the README table")
    parser.add_argument("--ablations", action="store_true",
                        help="print ours minus each ablation instead")
    parser.add_argument("--quick", action="store_true",
                        help="read the --quick runs' results (quality_<name>_quick.csv, "
                             "small_cohorts_quick.csv); prints only")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder of the saved results (default benchmarks/results/)")
    args = parser.parse_args(argv)
    if args.quick and args.write:
        parser.error("--write publishes full runs only; drop --quick")
    if not _saved(args.results, args.quick):
        kind = "--quick " if args.quick else ""
        print(f"no saved {kind}results in {args.results or RESULTS}: run benchmarks.quality or "
              f"benchmarks.small_cohorts {kind}first")
        return 1
    if args.ablations:
        print(ablation_table(args.results, args.quick))
        return 0
    text = table(args.results, args.quick)
    print(text)
    if args.write:
        write_section(README, "summary", text + "\n", "")
        print(f"wrote {README.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
