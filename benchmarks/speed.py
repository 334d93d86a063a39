"""Training and prediction speed, side by side in one run.

Three ways of training the same network on the same data, measured one after
the other in one process:

``ours``
    :class:`~mmfusion_sklearn.MultimodalFusionClassifier` end to end (input
    checks, preprocessing, skorch loop over in-memory batches), with the
    contrastive stage and early stopping off and a fixed number of epochs;
    ``modality_dropout="none"`` and ``"simultaneous"`` are separate rows.
``raw``
    A hand-written PyTorch loop training the identical module (built by the
    fitted estimator's ``_build_network``) on the estimator's own preprocessed
    in-memory tensors: the same shuffled batches of 128 sliced in one indexing
    operation, AdamW with the same learning rate and weight decay, and the same
    loss for the same objective.
``skorch``
    A plain :class:`skorch.NeuralNetClassifier` on that module (wrapped to take
    ``image`` and ``table`` tensors), fed by skorch's default ``DataLoader``
    with per-item collation; ``modality_dropout="none"`` objective only.
``ours (regressor)`` and ``raw (regressor)``
    :class:`~mmfusion_sklearn.MultimodalFusionRegressor` end to end (same settings,
    ``modality_dropout="none"``) on a continuous target, against the raw loop
    training the identical one-output network (the fitted regressor's
    ``_build_network``) with squared error on the target standardised as the
    regressor standardises it (target ours/raw <= 1.15).
``ours (survival)`` and ``raw (survival)``
    :class:`~mmfusion_sklearn.MultimodalFusionSurvivalAnalysis` end to end (same
    settings, ``modality_dropout="none"``, Cox loss) on a censored time to event,
    against the raw loop training the identical one-output network (the fitted
    model's ``_build_network``) with Cox's negative log partial likelihood, Efron's
    ties (``cox_partial_likelihood``), on (dense rank of the time, event) as the
    estimator trains on them; both fits end with a Breslow baseline hazard on the
    training rows' risk scores, and both predict risk scores (target ours/raw <= 1.15).

The classifier, the regressor and the survival model are three *tasks*
(:class:`~benchmarks._speed_runners.BenchTask`): the runners and the report ask the
task of a setting for what differs, never which estimator they run.

Data: two modalities, ``image`` = the first ``n`` of the 70,000 real
Fashion-MNIST images (Debian package ``dataset-fashion-mnist``), shape
``(n, 1, 28, 28)``, and ``table`` = 20 columns generated from the label plus
Gaussian noise; the regressor's target is ``100 + 10 * label + 5 * table[:, 0]``;
the survival model's: event times exponential with hazard
``0.05 * exp(0.3 * (label - 4.5))``, 30 % of the samples (drawn at random) censored at a
time uniform between 0 and their event time, from a generator of its own seeded by
``[seed, 1]`` (:func:`~benchmarks._speed_data.survival_target`). Without the package,
images of the same shape are generated and the report says so. Nothing is downloaded.

Reported: samples per second of ``fit`` (end to end, ``n * epochs / time``)
and of ``predict_proba`` (the regressor and the survival model: ``predict``), the
steady-state epoch time and its growth with ``n``, the time ratio ours / raw loop
(target <= 1.2; the regressor's and the survival model's <= 1.15), the peak resident
set size of each fit and predict, and the resident set size at the end of every epoch.
Run::

    python -m benchmarks.speed                        # 1k, 10k, 70k; writes docs/
    python -m benchmarks.speed --quick                # < 1 minute check
    python -m benchmarks.speed --sizes 1000 10000 --epochs 2 --threads 2

This module holds the command line and the order of the runs; the pieces live in
``_speed_data`` (the data), ``_speed_measure`` (clocks, RSS, results),
``_speed_runners`` (the three methods and the three tasks) and ``_speed_report`` (tables, Markdown,
plot).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ._speed_data import BenchData, make_data
from ._speed_measure import Result
from ._speed_report import SpeedReport, environment
from ._speed_runners import BATCH_SIZE, METHODS, Reference, run_method, task_of

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MD = ROOT / "docs" / "benchmarks_speed.md"
DEFAULT_PNG = ROOT / "docs" / "img" / "speed.png"
QUICK_MD = ROOT / "benchmarks" / "results" / "speed_quick.md"
QUICK_PNG = ROOT / "benchmarks" / "results" / "speed_quick.png"


def warm_up(data: BenchData, seed: int) -> None:
    """Run one tiny fit and prediction of every method (imports, kernel caches).

    Parameters
    ----------
    data : BenchData
        The data (its first 256 samples are used).
    seed : int
        Seed of weights and batch order.
    """
    n = min(256, len(data.y))
    references: dict[str, Reference] = {}
    for method, objective in METHODS:
        task = task_of(objective)
        _, clf = run_method(method, objective, data, n, 1, seed, references.get(task.name))
        if task.name not in references and clf is not None:
            references[task.name] = Reference.from_fit(clf, data, n, task)


def run(
    data: BenchData,
    sizes: Sequence[int],
    epochs: int,
    repeats: int = 1,
    repeat_max_n: int = 2_000,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Measure every method at every size, interleaved.

    At each size the methods run in the order of :data:`METHODS` (ours first, for
    each task: its fitted estimator, as a :class:`Reference`, gives raw and skorch
    of that task their module architecture, its preprocessed tensors and its target
    as it trains on it: the regressor's standardised, the survival model's ranked),
    rotated by
    one at every repeat, so that a change of load on a shared machine hits ours and
    the raw loop alike.

    Parameters
    ----------
    data : BenchData
        Data for the largest size.
    sizes : sequence of int
        Sample counts.
    epochs : int
        Training epochs of every fit.
    repeats : int, default=1
        Runs of every method at sizes up to ``repeat_max_n`` (the fastest counts).
    repeat_max_n : int, default=2_000
        Larger sizes run once.
    seed : int, default=0
        Seed of weights and batch order.
    log : callable, default=print
        Progress lines.

    Returns
    -------
    list of Result
        One per method, objective and size.
    """
    results = []
    for n in sizes:
        references: dict[str, Reference] = {}  # per task name
        runs: dict[tuple[str, str], list[Result]] = {m: [] for m in METHODS}
        for r in range(repeats if n <= repeat_max_n else 1):
            shift = r % len(METHODS)
            for method, objective in METHODS[shift:] + METHODS[:shift]:
                task = task_of(objective)
                result, clf = run_method(method, objective, data, n, epochs, seed,
                                         references.get(task.name))
                if task.name not in references and clf is not None:
                    references[task.name] = Reference.from_fit(clf, data, n, task)
                runs[method, objective].append(result)
                log(_progress(result, r))
        results += [Result.merge(runs[m]) for m in METHODS]
        del references
        gc.collect()
    return results


def _progress(r: Result, repeat: int) -> str:
    return (f"  n={r.n:>6,} #{repeat + 1} {r.label:<20} fit {r.fit.wall:7.2f}s wall "
            f"{r.fit.cpu:7.2f}s cpu  predict {r.predict.wall:6.2f}s wall "
            f"{r.predict.cpu:6.2f}s cpu  peak RSS {r.fit_peak_mib:6.0f} MiB")


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="sample counts (default 1000 10000 70000; quick: 300 600 1200)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per fit (default 3; quick: 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: the cores are shared)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per method at sizes <= --repeat-max-n, the fastest "
                             "counts (default 3; quick: 1)")
    parser.add_argument("--repeat-max-n", type=int, default=2_000,
                        help="larger sizes run once (default 2000)")
    parser.add_argument("--quick", action="store_true",
                        help="sizes 300 600 1200, 2 epochs, 1 repeat; report under "
                             "benchmarks/results/ instead of docs/")
    parser.add_argument("--synthetic", action="store_true",
                        help="generated images even where Fashion-MNIST is installed")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches, data")
    parser.add_argument("--out-md", type=Path, default=None, help="Markdown report path")
    parser.add_argument("--out-png", type=Path, default=None, help="PNG plot path")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the warm-up fits")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m benchmarks.speed``.

    Parameters
    ----------
    argv : sequence of str, default=None
        Arguments (None reads ``sys.argv``).

    Returns
    -------
    int
        Exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes or ([300, 600, 1200] if args.quick else [1000, 10000, 70000]))
    epochs = args.epochs or (2 if args.quick else 3)
    repeats = args.repeats or (1 if args.quick else 3)
    md = args.out_md or (QUICK_MD if args.quick else DEFAULT_MD)
    png = args.out_png or (QUICK_PNG if args.quick else DEFAULT_PNG)
    if sizes[0] < 2 or epochs < 1 or repeats < 1 or args.threads < 1:
        parser.error("sizes must be >= 2; epochs, repeats and threads >= 1")

    torch.set_num_threads(args.threads)
    command = " ".join(["python -m benchmarks.speed",
                        *(sys.argv[1:] if argv is None else argv)])
    load_before = _loadavg()
    data = make_data(sizes[-1], args.seed, args.synthetic)
    repeated = [n for n in sizes if n <= args.repeat_max_n]
    repeat_text = (f"best of {repeats} runs at n <= {args.repeat_max_n:,}, one run above"
                   if repeats > 1 and repeated else "one run per method and size")
    print(f"data: {data.source}")
    print(f"torch threads {torch.get_num_threads()}, sizes {sizes}, epochs {epochs}, "
          f"batch {BATCH_SIZE}, {repeat_text}; load average {load_before}")
    if not data.real_images:
        print("NOTE: the images are GENERATED, not Fashion-MNIST.")
    if not args.no_warm_up:
        warm_up(data, args.seed)
    results = run(data, sizes, epochs, repeats, args.repeat_max_n, args.seed)
    speed_report = SpeedReport(results)
    speed_report.plot(png)
    text = speed_report.markdown(
        command, environment(args.threads, data, (load_before, _loadavg()), repeat_text),
        png, md)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text)
    print()
    print(text)
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
