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

Data: two modalities, ``image`` = the first ``n`` of the 70,000 real
Fashion-MNIST images (Debian package ``dataset-fashion-mnist``), shape
``(n, 1, 28, 28)``, and ``table`` = 20 columns generated from the label plus
Gaussian noise. Without the package, images of the same shape are generated
and the report says so. Nothing is downloaded.

Reported: samples per second of ``fit`` (end to end, ``n * epochs / time``)
and of ``predict_proba``, the steady-state epoch time and its growth with
``n``, the time ratio ours / raw loop (target <= 1.2), the peak resident set
size of each fit and predict, and the resident set size at the end of every
epoch. Run::

    python -m benchmarks.speed                        # 1k, 10k, 70k; writes docs/
    python -m benchmarks.speed --quick                # < 1 minute check
    python -m benchmarks.speed --sizes 1000 10000 --epochs 2 --threads 2
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .datasets import fashion_mnist_available, load_fashion_mnist

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MD = ROOT / "docs" / "benchmarks_speed.md"
DEFAULT_PNG = ROOT / "docs" / "img" / "speed.png"
QUICK_MD = ROOT / "benchmarks" / "results" / "speed_quick.md"
QUICK_PNG = ROOT / "benchmarks" / "results" / "speed_quick.png"
N_TABLE = 20
BATCH_SIZE = 128
LR = 1e-3
WEIGHT_DECAY = 1e-4
MODALITIES = {"image": "image", "table": "tabular"}
RATIO_TARGET = 1.2
RSS_FLAT_MIB = 16
MIB = 2.0**20

# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Current resident set size of this process, in bytes.

    Returns
    -------
    int
        Read from ``/proc/self/statm``; where that file is absent, the peak from
        :func:`resource.getrusage` (Linux reports it in KiB).
    """
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size since start or since the last :func:`reset_peak_rss`.

    Returns
    -------
    int
        ``VmHWM`` of ``/proc/self/status``, else ``ru_maxrss`` of
        :func:`resource.getrusage` (the peak since the process started).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0).

    Returns
    -------
    bool
        Whether the reset worked; if not, peaks are process-wide maxima.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
@dataclass
class BenchData:
    """The two modalities of the benchmark, for the largest size asked.

    Parameters
    ----------
    image : ndarray of float32, shape (n, 1, 28, 28)
        Pixels in [0, 1].
    table : ndarray of float32, shape (n, 20)
        Label-dependent columns plus noise.
    y : ndarray of int64, shape (n,)
        Class labels 0-9.
    source : str
        Where the images come from.
    real_images : bool
        False when the images were generated.
    """

    image: np.ndarray
    table: np.ndarray
    y: np.ndarray
    source: str
    real_images: bool

    def X(self, n: int) -> dict[str, np.ndarray]:
        """Return the estimator's input for the first ``n`` samples (views, no copy).

        Parameters
        ----------
        n : int
            Samples.

        Returns
        -------
        dict of str to ndarray
            ``{"image": ..., "table": ...}``.
        """
        return {"image": self.image[:n], "table": self.table[:n]}


def make_data(n: int, seed: int = 0, synthetic: bool = False) -> BenchData:
    """Load the first ``n`` Fashion-MNIST images and derive a table from the labels.

    Parameters
    ----------
    n : int
        Number of samples (at most 70,000 with real images).
    seed : int, default=0
        Seed of the table's noise (and of generated images).
    synthetic : bool, default=False
        Generate the images even where the Debian package is installed.

    Returns
    -------
    BenchData
        Images, table and labels.
    """
    rng = np.random.default_rng(seed)
    if not synthetic and fashion_mnist_available() is not None:
        X, y, info = load_fashion_mnist()
        if n > len(y):
            raise ValueError(f"Fashion-MNIST has {len(y)} images; asked for {n}.")
        image = X["image"][:n].astype(np.float32) / 255.0
        y = y[:n]
        source = f"Fashion-MNIST, real images ({info['path']}, first {n:,} of {len(X['image']):,})"
        real = True
    else:
        # same shape and class structure: a smooth class template plus pixel noise
        y = rng.integers(0, 10, n).astype(np.int64)
        templates = rng.random((10, 1, 7, 7)).repeat(4, axis=2).repeat(4, axis=3)
        image = np.clip(templates[y] + 0.3 * rng.normal(size=(n, 1, 28, 28)), 0, 1)
        image = image.astype(np.float32)
        reason = "--synthetic" if synthetic else "dataset-fashion-mnist is not installed"
        source = f"GENERATED images of the same shape ({reason}); not real data"
        real = False
    centres = rng.normal(size=(10, N_TABLE))
    table = (centres[y] + 1.5 * rng.normal(size=(n, N_TABLE))).astype(np.float32)
    return BenchData(image, table, y, source, real)


# ---------------------------------------------------------------------------
# clocks and results
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Elapsed wall-clock and CPU time of one block of code.

    Parameters
    ----------
    wall : float
        Seconds of wall-clock time (:func:`time.perf_counter`).
    cpu : float
        Seconds of CPU time of the whole process, all threads
        (:func:`time.process_time`). With one torch thread this is the work done,
        and it barely moves when other jobs share the cores.
    """

    wall: float
    cpu: float

    def get(self, clock: str) -> float:
        """Return the seconds of one clock.

        Parameters
        ----------
        clock : {"wall", "cpu"}
            Which clock.

        Returns
        -------
        float
            Seconds.
        """
        return self.wall if clock == "wall" else self.cpu

    @staticmethod
    def best(timings: Sequence[Timing]) -> Timing:
        """Return the fastest of several repeats, per clock.

        Parameters
        ----------
        timings : sequence of Timing
            The repeats.

        Returns
        -------
        Timing
            The smallest wall and the smallest CPU time (possibly of two runs).
        """
        return Timing(min(t.wall for t in timings), min(t.cpu for t in timings))


class _Clock:
    """Start/stop wall and CPU clocks."""

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()

    def stop(self) -> Timing:
        return Timing(time.perf_counter() - self.wall0, time.process_time() - self.cpu0)


class _Meter:
    """Time and peak RSS of a block: ``with _Meter() as m: ...``; then ``m.timing``."""

    def __enter__(self) -> _Meter:
        gc.collect()
        reset_peak_rss()
        self.start_mib = rss_bytes() / MIB
        self.clock = _Clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timing = self.clock.stop()
        self.peak_mib = max(peak_rss_bytes() / MIB, self.start_mib)


class EpochLog:
    """Duration and end-of-epoch RSS of every epoch.

    Attributes
    ----------
    times : list of Timing
        One per epoch.
    rss_mib : list of float
        RSS at the end of each epoch.
    """

    def __init__(self) -> None:
        self.times: list[Timing] = []
        self.rss_mib: list[float] = []
        self._clock: _Clock | None = None

    def begin(self) -> None:
        """Mark the start of an epoch."""
        self._clock = _Clock()

    def end(self) -> None:
        """Mark the end of an epoch: record its duration and the RSS."""
        assert self._clock is not None
        self.times.append(self._clock.stop())
        self.rss_mib.append(rss_bytes() / MIB)

    def callback(self) -> Any:
        """Return a skorch callback that calls :meth:`begin` and :meth:`end`.

        Returns
        -------
        skorch.callbacks.Callback
            Costs one ``/proc/self/statm`` read per epoch (microseconds).
        """
        from skorch.callbacks import Callback

        log = self

        class EpochProbe(Callback):
            def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
                log.begin()

            def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
                log.end()

        return EpochProbe()


@dataclass
class Result:
    """Measurements of one method at one size.

    Parameters
    ----------
    method : str
        ``"ours"``, ``"raw"`` or ``"skorch"``.
    objective : str
        ``"none"`` or ``"simultaneous"`` (modality dropout).
    n : int
        Training (and prediction) samples.
    epochs : int
        Training epochs.
    fit : Timing
        The whole fit.
    epoch : list of Timing
        Each epoch.
    predict : Timing
        ``predict_proba`` on the ``n`` training samples.
    fit_peak_mib : float
        Peak RSS during fit.
    fit_start_mib : float
        RSS just before fit.
    predict_peak_mib : float
        Peak RSS during prediction.
    predict_start_mib : float
        RSS just before prediction.
    epoch_rss_mib : list of float, default=[]
        RSS at the end of each epoch.
    repeats : int, default=1
        Runs merged into this one (times: the fastest; memory: the first run).
    """

    method: str
    objective: str
    n: int
    epochs: int
    fit: Timing
    epoch: list[Timing]
    predict: Timing
    fit_peak_mib: float
    fit_start_mib: float
    predict_peak_mib: float
    predict_start_mib: float
    epoch_rss_mib: list[float] = field(default_factory=list)
    repeats: int = 1

    @property
    def label(self) -> str:
        """Row label: method and objective."""
        return f"{self.method} ({self.objective})"

    def fit_sps(self, clock: str = "wall") -> float:
        """End-to-end fit throughput: samples x epochs per (wall or CPU) second.

        Parameters
        ----------
        clock : {"wall", "cpu"}, default="wall"
            Which clock.

        Returns
        -------
        float
            The value for that clock.
        """
        return self.n * self.epochs / self.fit.get(clock)

    def epoch_time(self, clock: str = "wall") -> float:
        """Time of the fastest epoch: the least disturbed by other jobs on the cores.

        Parameters
        ----------
        clock : {"wall", "cpu"}, default="wall"
            Which clock.

        Returns
        -------
        float
            The value for that clock.
        """
        return min(t.get(clock) for t in self.epoch)

    def epoch_sps(self, clock: str = "wall") -> float:
        """Steady-state training throughput, samples per (wall or CPU) second.

        Parameters
        ----------
        clock : {"wall", "cpu"}, default="wall"
            Which clock.

        Returns
        -------
        float
            The value for that clock.
        """
        return self.n / self.epoch_time(clock)

    def setup_time(self, clock: str = "wall") -> float:
        """Fit time outside the epochs (input checks, preprocessing, set-up).

        Parameters
        ----------
        clock : {"wall", "cpu"}, default="wall"
            Which clock.

        Returns
        -------
        float
            The value for that clock.
        """
        return self.fit.get(clock) - sum(t.get(clock) for t in self.epoch)

    def predict_sps(self, clock: str = "wall") -> float:
        """Prediction throughput, samples per (wall or CPU) second.

        Parameters
        ----------
        clock : {"wall", "cpu"}, default="wall"
            Which clock.

        Returns
        -------
        float
            The value for that clock.
        """
        return self.n / self.predict.get(clock)

    @property
    def rss_growth_mib(self) -> float:
        """RSS at the last epoch's end minus RSS at the first epoch's end."""
        if len(self.epoch_rss_mib) < 2:
            return float("nan")
        return self.epoch_rss_mib[-1] - self.epoch_rss_mib[0]

    @staticmethod
    def merge(runs: Sequence[Result]) -> Result:
        """Merge repeats: the fastest time per clock, the memory of the first run.

        Parameters
        ----------
        runs : sequence of Result
            Repeats of one method, objective and size.

        Returns
        -------
        Result
            The merged result.
        """
        first = runs[0]
        epochs = [Timing.best([r.epoch[e] for r in runs]) for e in range(len(first.epoch))]
        return replace(
            first,
            fit=Timing.best([r.fit for r in runs]),
            epoch=epochs,
            predict=Timing.best([r.predict for r in runs]),
            repeats=len(runs),
        )


def _probed_classifier(log: EpochLog, **params: Any) -> Any:
    """Our estimator, with :meth:`EpochLog.callback` added to its skorch callbacks.

    It relies on the private ``_net_kwargs`` (the skorch arguments of each stage).
    """
    from mmfusion_sklearn import MultimodalFusionClassifier

    class ProbedClassifier(MultimodalFusionClassifier):
        def _net_kwargs(self, seed: int, epochs: int, desc: str) -> dict[str, Any]:
            kwargs = super()._net_kwargs(seed, epochs, desc)
            kwargs["callbacks"] = [*kwargs["callbacks"], ("epoch_probe", log.callback())]
            return kwargs

    return ProbedClassifier(**params)


# ---------------------------------------------------------------------------
# the three methods
# ---------------------------------------------------------------------------
def ours_params(objective: str, epochs: int, seed: int) -> dict[str, Any]:
    """Return the parameters of our estimator in this benchmark.

    Parameters
    ----------
    objective : {"none", "simultaneous"}
        ``modality_dropout``.
    epochs : int
        ``max_epochs``.
    seed : int
        ``random_state``.

    Returns
    -------
    dict
        Contrastive stage and early stopping off, batch 128, CPU.
    """
    return {
        "modalities": dict(MODALITIES),
        "modality_dropout": objective,
        "contrastive": None,
        "pretrain_epochs": 0,
        "early_stopping": False,
        "max_epochs": epochs,
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "weight_decay": WEIGHT_DECAY,
        "device": "cpu",
        "random_state": seed,
    }


def bench_ours(
    data: BenchData, n: int, objective: str, epochs: int, seed: int
) -> tuple[Result, Any]:
    """Fit and predict with our estimator from the user's numpy arrays.

    Parameters
    ----------
    data : BenchData
        The data (first ``n`` samples used).
    n : int
        Samples.
    objective : {"none", "simultaneous"}
        Modality dropout.
    epochs : int
        Epochs.
    seed : int
        ``random_state``.

    Returns
    -------
    result : Result
        The measurements.
    clf : MultimodalFusionClassifier
        The fitted estimator.
    """
    X, y = data.X(n), data.y[:n]
    log = EpochLog()
    clf = _probed_classifier(log, **ours_params(objective, epochs, seed))
    with _Meter() as fit:
        clf.fit(X, y)
    with _Meter() as pred:
        proba = clf.predict_proba(X)
    assert proba.shape == (n, 10)
    result = Result("ours", objective, n, epochs, fit.timing, log.times, pred.timing,
                    fit.peak_mib, fit.start_mib, pred.peak_mib, pred.start_mib, log.rss_mib)
    return result, clf


@dataclass
class Tensors:
    """The estimator's preprocessed in-memory tensors of one size.

    Parameters
    ----------
    inputs : dict of str to Tensor
        ``image`` (n, 1, 28, 28) and ``table`` (n, 20), float32, standardised.
    present : Tensor of bool, shape (n, 2)
        All True here.
    y : Tensor of int64, shape (n,)
        Labels.
    """

    inputs: dict[str, torch.Tensor]
    present: torch.Tensor
    y: torch.Tensor


def estimator_tensors(clf: Any, data: BenchData, n: int) -> Tensors:
    """The fitted estimator's model arrays for the first ``n`` samples, as tensors.

    Parameters
    ----------
    clf : MultimodalFusionClassifier
        A fitted estimator.
    data : BenchData
        The data.
    n : int
        Samples.

    Returns
    -------
    Tensors
        What the estimator's own training loop slices its batches from.
    """
    from mmfusion_sklearn import MultimodalData

    arrays, present = clf._model_arrays(MultimodalData(data.X(n)))
    return Tensors(
        {k: torch.from_numpy(v) for k, v in arrays.items()},
        torch.from_numpy(present),
        torch.from_numpy(data.y[:n].astype(np.int64)),
    )


def fresh_module(clf: Any, seed: int) -> nn.Module:
    """A newly initialised copy of the fitted estimator's network architecture.

    Parameters
    ----------
    clf : MultimodalFusionClassifier
        A fitted estimator.
    seed : int
        Seed of the weight initialisation.

    Returns
    -------
    MultimodalFusionNet
        Same class, encoders and sizes as ``clf._net.module_``.
    """
    torch.manual_seed(seed)
    module = clf._build_network(clf._input_shapes)
    fitted = clf._net.module_
    if type(module) is not type(fitted) or repr(module) != repr(fitted):
        raise RuntimeError("the rebuilt module differs from the estimator's")
    return module


def raw_loss(
    module: nn.Module,
    batch: dict[str, torch.Tensor],
    present: torch.Tensor,
    y: torch.Tensor,
    objective: str,
) -> torch.Tensor:
    """The objective, written out: CE(full) [+ sum over m of CE(only m)].

    Every sample has every modality here, so the per-sample weights and masks of
    the estimator's loss are all ones and plain cross-entropy is the same loss.

    Parameters
    ----------
    module : MultimodalFusionNet
        The network.
    batch : dict of str to Tensor
        One batch per modality.
    present : Tensor of bool, shape (B, M)
        Presence mask.
    y : Tensor of int64, shape (B,)
        Labels.
    objective : {"none", "simultaneous"}
        Modality dropout scheme.

    Returns
    -------
    Tensor
        The scalar loss.
    """
    if objective == "none":
        return F.cross_entropy(module(batch, present), y)
    full, single = module.fuse_configurations(module.encode(batch, present), present)
    loss = F.cross_entropy(module.classifier(full), y)
    logits_single = module.classifier(single)
    for m in range(logits_single.shape[0]):
        loss = loss + F.cross_entropy(logits_single[m], y)
    return loss


def bench_raw(
    module: nn.Module, tensors: Tensors, objective: str, epochs: int, seed: int
) -> Result:
    """Train ``module`` with a hand-written loop over in-memory batches; predict.

    Parameters
    ----------
    module : MultimodalFusionNet
        A fresh network.
    tensors : Tensors
        The estimator's preprocessed tensors (the same memory, not copies).
    objective : {"none", "simultaneous"}
        The loss.
    epochs : int
        Epochs.
    seed : int
        Seed of the batch order.

    Returns
    -------
    Result
        The measurements.
    """
    n = len(tensors.y)
    log = EpochLog()
    generator = torch.Generator().manual_seed(seed)
    with _Meter() as fit:
        optimizer = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        module.train()
        for _ in range(epochs):
            log.begin()
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, BATCH_SIZE):
                index = order[start : start + BATCH_SIZE]
                batch = {k: v[index] for k, v in tensors.inputs.items()}
                loss = raw_loss(module, batch, tensors.present[index], tensors.y[index],
                                objective)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            log.end()
    with _Meter() as pred:
        module.eval()
        with torch.inference_mode():
            proba = torch.cat([
                torch.softmax(module(
                    {k: v[start : start + BATCH_SIZE] for k, v in tensors.inputs.items()},
                    tensors.present[start : start + BATCH_SIZE],
                ), dim=1)
                for start in range(0, n, BATCH_SIZE)
            ]).numpy()
    assert proba.shape == (n, 10)
    return Result("raw", objective, n, epochs, fit.timing, log.times, pred.timing,
                  fit.peak_mib, fit.start_mib, pred.peak_mib, pred.start_mib, log.rss_mib)


class ImageTableModule(nn.Module):
    """Give a :class:`MultimodalFusionNet` the ``forward(image, table)`` skorch calls.

    Parameters
    ----------
    net : MultimodalFusionNet
        The network; every sample is marked as having both modalities.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of images and table rows.

        Parameters
        ----------
        image : Tensor of shape (B, 1, 28, 28)
            Images.
        table : Tensor of shape (B, 20)
            Table rows.

        Returns
        -------
        Tensor of shape (B, n_classes)
            Logits, both modalities marked present.
        """
        present = torch.ones((len(image), 2), dtype=torch.bool, device=image.device)
        return self.net({"image": image, "table": table}, present)


def bench_skorch(module: nn.Module, tensors: Tensors, epochs: int, seed: int) -> Result:
    """Train ``module`` with a plain :class:`skorch.NeuralNetClassifier`; predict.

    skorch's default ``DataLoader`` (no worker processes) fetches the samples one
    by one from a dict of arrays and collates each batch.

    Parameters
    ----------
    module : MultimodalFusionNet
        A fresh network.
    tensors : Tensors
        The estimator's preprocessed tensors, handed to skorch as numpy arrays
        (views of the same memory).
    epochs : int
        Epochs.
    seed : int
        Seed of the batch order.

    Returns
    -------
    Result
        The measurements (``modality_dropout="none"`` objective).
    """
    from skorch import NeuralNetClassifier

    X = {k: v.numpy() for k, v in tensors.inputs.items()}
    y = tensors.y.numpy()
    log = EpochLog()
    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        ImageTableModule(module),
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        optimizer__weight_decay=WEIGHT_DECAY,
        lr=LR,
        max_epochs=epochs,
        batch_size=BATCH_SIZE,
        iterator_train__shuffle=True,
        train_split=None,
        device="cpu",
        verbose=0,
        callbacks=[("epoch_probe", log.callback())],
    )
    with _Meter() as fit:
        net.fit(X, y)
    with _Meter() as pred:
        proba = net.predict_proba(X)
    assert proba.shape == (len(y), 10)
    return Result("skorch", "none", len(y), epochs, fit.timing, log.times, pred.timing,
                  fit.peak_mib, fit.start_mib, pred.peak_mib, pred.start_mib, log.rss_mib)


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
METHODS = (("ours", "none"), ("raw", "none"), ("skorch", "none"),
           ("ours", "simultaneous"), ("raw", "simultaneous"))


def _one(
    method: str, objective: str, data: BenchData, n: int, epochs: int, seed: int,
    reference: Any, tensors: Tensors | None,
) -> tuple[Result, Any]:
    """Run one method once; also return the fitted estimator (``ours``) or None."""
    if method == "ours":
        return bench_ours(data, n, objective, epochs, seed)
    assert reference is not None and tensors is not None
    if method == "raw":
        module = fresh_module(reference, seed)
        return bench_raw(module, tensors, objective, epochs, seed), None
    return bench_skorch(fresh_module(reference, seed), tensors, epochs, seed), None


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
    _, clf = bench_ours(data, n, "none", 1, seed)
    tensors = estimator_tensors(clf, data, n)
    for method, objective in METHODS:
        _one(method, objective, data, n, 1, seed, clf, tensors)


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

    At each size the methods run in the order of :data:`METHODS` (ours first: its
    fitted estimator gives raw and skorch their module architecture and its
    preprocessed tensors), rotated by one at every repeat, so that a change of load
    on a shared machine hits ours and the raw loop alike.

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
        reference, tensors = None, None
        runs: dict[tuple[str, str], list[Result]] = {m: [] for m in METHODS}
        for r in range(repeats if n <= repeat_max_n else 1):
            shift = r % len(METHODS)
            for method, objective in METHODS[shift:] + METHODS[:shift]:
                result, clf = _one(method, objective, data, n, epochs, seed, reference,
                                   tensors)
                if reference is None and clf is not None:
                    reference, tensors = clf, estimator_tensors(clf, data, n)
                runs[method, objective].append(result)
                log(_progress(result, r))
        results += [Result.merge(runs[m]) for m in METHODS]
        del reference, tensors
        gc.collect()
    return results


def _progress(r: Result, repeat: int) -> str:
    return (f"  n={r.n:>6,} #{repeat + 1} {r.label:<20} fit {r.fit.wall:7.2f}s wall "
            f"{r.fit.cpu:7.2f}s cpu  predict {r.predict.wall:6.2f}s wall "
            f"{r.predict.cpu:6.2f}s cpu  peak RSS {r.fit_peak_mib:6.0f} MiB")


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def _find(results: Sequence[Result], method: str, objective: str, n: int) -> Result | None:
    return next((r for r in results
                 if (r.method, r.objective, r.n) == (method, objective, n)), None)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).rjust(w) if i else str(c).ljust(w)
                              for i, (c, w) in enumerate(zip(row, widths))) + " |"
            for row in rows]
    return "\n".join([line, rule, *body])


def _ordered(results: Sequence[Result]) -> list[Result]:
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(results, key=lambda r: (r.n, order.get((r.method, r.objective), 99)))


def throughput_table(results: Sequence[Result]) -> str:
    """Markdown table: samples per wall and per CPU second, fit set-up time.

    Parameters
    ----------
    results : sequence of Result
        The measurements.

    Returns
    -------
    str
        A Markdown table.
    """
    header = ["method", "n", "fit /s", "fit /cpu-s", "epoch /s", "epoch /cpu-s",
              "set-up cpu-s", "predict /s", "predict /cpu-s"]
    rows = [[r.label, f"{r.n:,}", f"{r.fit_sps('wall'):,.0f}", f"{r.fit_sps('cpu'):,.0f}",
             f"{r.epoch_sps('wall'):,.0f}", f"{r.epoch_sps('cpu'):,.0f}",
             f"{r.setup_time('cpu'):.2f}", f"{r.predict_sps('wall'):,.0f}",
             f"{r.predict_sps('cpu'):,.0f}"]
            for r in _ordered(results)]
    return _md_table(header, rows)


def memory_table(results: Sequence[Result]) -> str:
    """Markdown table: peak RSS of fit and predict, RSS change over the epochs.

    Parameters
    ----------
    results : sequence of Result
        The measurements.

    Returns
    -------
    str
        A Markdown table.
    """
    header = ["method", "n", "fit peak RSS MiB", "fit +RSS MiB", "held in epochs +RSS MiB",
              "predict +RSS MiB", "RSS last - first epoch MiB"]
    rows = [[r.label, f"{r.n:,}", f"{r.fit_peak_mib:,.0f}",
             f"{r.fit_peak_mib - r.fit_start_mib:,.0f}",
             f"{r.epoch_rss_mib[-1] - r.fit_start_mib:,.0f}" if r.epoch_rss_mib else "-",
             f"{r.predict_peak_mib - r.predict_start_mib:,.0f}", f"{r.rss_growth_mib:+.1f}"]
            for r in _ordered(results)]
    return _md_table(header, rows)


def ratio_rows(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Time ratios ours / raw loop (and skorch / raw) per size and objective.

    Parameters
    ----------
    results : sequence of Result
        The measurements.

    Returns
    -------
    list of dict
        Keys ``n``, ``objective`` and, for each clock (``"cpu"``, ``"wall"``),
        ``fit_<clock>`` (whole fit), ``epoch_<clock>`` (steady epoch),
        ``predict_<clock>``, ``skorch_fit_<clock>`` and ``skorch_predict_<clock>``
        (None where not measured).
    """
    rows = []
    for n in sorted({r.n for r in results}):
        for objective in ("none", "simultaneous"):
            ours, raw = _find(results, "ours", objective, n), _find(results, "raw", objective, n)
            if ours is None or raw is None:
                continue
            sk = _find(results, "skorch", objective, n)
            row: dict[str, Any] = {"n": n, "objective": objective}
            for c in ("cpu", "wall"):
                row[f"fit_{c}"] = ours.fit.get(c) / raw.fit.get(c)
                row[f"epoch_{c}"] = ours.epoch_time(c) / raw.epoch_time(c)
                row[f"predict_{c}"] = ours.predict.get(c) / raw.predict.get(c)
                row[f"skorch_fit_{c}"] = None if sk is None else sk.fit.get(c) / raw.fit.get(c)
                row[f"skorch_predict_{c}"] = (
                    None if sk is None else sk.predict.get(c) / raw.predict.get(c))
            rows.append(row)
    return rows


def ratio_table(results: Sequence[Result]) -> str:
    """Markdown table of :func:`ratio_rows` (time ratios; lower is faster).

    Parameters
    ----------
    results : sequence of Result
        The measurements.

    Returns
    -------
    str
        A Markdown table.
    """
    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    rows = [[r["objective"], f"{r['n']:,}", fmt(r["fit_cpu"]),
             "yes" if r["fit_cpu"] <= RATIO_TARGET else "NO", fmt(r["fit_wall"]),
             fmt(r["epoch_cpu"]), fmt(r["predict_cpu"]), fmt(r["predict_wall"]),
             fmt(r["skorch_fit_cpu"]), fmt(r["skorch_predict_cpu"])]
            for r in ratio_rows(results)]
    header = ["modality_dropout", "n", "ours/raw fit cpu", f"<= {RATIO_TARGET}",
              "ours/raw fit wall", "ours/raw epoch cpu", "ours/raw predict cpu",
              "ours/raw predict wall", "skorch/raw fit cpu", "skorch/raw predict cpu"]
    return _md_table(header, rows)


def scaling(
    results: Sequence[Result], clock: str = "cpu"
) -> dict[str, tuple[float, dict[int, float]]]:
    """Exponent b of epoch time ~ n**b per method, and microseconds per sample.

    Parameters
    ----------
    results : sequence of Result
        The measurements.
    clock : {"cpu", "wall"}, default="cpu"
        Which epoch time.

    Returns
    -------
    dict
        ``{label: (b, {n: us per sample per epoch})}``; b is NaN with one size.
    """
    out = {}
    for label in dict.fromkeys(r.label for r in _ordered(results)):
        rows = sorted((r for r in results if r.label == label), key=lambda r: r.n)
        per_sample = {r.n: 1e6 * r.epoch_time(clock) / r.n for r in rows}
        slope = float("nan")
        if len(rows) > 1:
            slope = float(np.polyfit(np.log([r.n for r in rows]),
                                     np.log([r.epoch_time(clock) for r in rows]), 1)[0])
        out[label] = (slope, per_sample)
    return out


def scaling_table(results: Sequence[Result]) -> str:
    """Markdown table of :func:`scaling` (CPU time per epoch).

    Parameters
    ----------
    results : sequence of Result
        The measurements.

    Returns
    -------
    str
        A Markdown table.
    """
    sizes = sorted({r.n for r in results})
    rows = [[label, *(f"{per_sample[n]:.0f}" if n in per_sample else "-" for n in sizes),
             f"{slope:.2f}"]
            for label, (slope, per_sample) in scaling(results).items()]
    header = ["method", *(f"cpu-us/sample n={n:,}" for n in sizes), "b in t ~ n^b"]
    return _md_table(header, rows)


def rss_table(results: Sequence[Result]) -> str:
    """Markdown table: RSS (MiB) at the end of each epoch, largest size.

    Parameters
    ----------
    results : sequence of Result
        The measurements.

    Returns
    -------
    str
        A Markdown table.
    """
    n = max(r.n for r in results)
    rows = _ordered([r for r in results if r.n == n])
    epochs = max(len(r.epoch_rss_mib) for r in rows)
    body = [[r.label, *(f"{r.epoch_rss_mib[e]:,.1f}" if e < len(r.epoch_rss_mib) else "-"
                        for e in range(epochs))] for r in rows]
    return _md_table(["method", *(f"epoch {e + 1}" for e in range(epochs))], body)


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


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


def verdicts(results: Sequence[Result]) -> list[str]:
    """Plain-language answers: ratio target met, linear in n, memory flat.

    Parameters
    ----------
    results : sequence of Result
        The measurements.

    Returns
    -------
    list of str
        Markdown list items.
    """
    lines = []
    ratios = ratio_rows(results)
    if ratios:
        worst = max(ratios, key=lambda r: r["fit_cpu"])
        ok = all(r["fit_cpu"] <= RATIO_TARGET for r in ratios)
        lines.append(
            f"- ours / raw loop, whole fit, CPU time: {'every' if ok else 'NOT every'} "
            f"ratio <= {RATIO_TARGET} (worst {worst['fit_cpu']:.2f} at n={worst['n']:,}, "
            f"modality_dropout={worst['objective']!r}; wall time {worst['fit_wall']:.2f})."
        )
        worst = max(ratios, key=lambda r: r["predict_cpu"])
        lines.append(
            f"- ours / raw loop, predict_proba, CPU time: worst {worst['predict_cpu']:.2f} "
            f"(n={worst['n']:,}, {worst['objective']!r}); ours starts from the user's arrays "
            "(input checks, preprocessing), raw from the preprocessed tensors."
        )
    for label, (slope, per_sample) in scaling(results).items():
        if math.isfinite(slope):
            kind = ("linear" if 0.9 <= slope <= 1.1 else
                    "below linear: fixed per-epoch costs weigh at small n" if slope < 0.9
                    else "ABOVE linear")
            lo, hi = min(per_sample), max(per_sample)
            lines.append(f"- {label}: epoch time ~ n^{slope:.2f} ({kind}); "
                         f"{per_sample[lo]:.0f} vs {per_sample[hi]:.0f} cpu-us/sample "
                         f"at n={lo:,} vs {hi:,}.")
    growth = [r for r in results if math.isfinite(r.rss_growth_mib)]
    if growth:
        worst_r = max(growth, key=lambda r: abs(r.rss_growth_mib))
        flat = abs(worst_r.rss_growth_mib) < RSS_FLAT_MIB
        lines.append(
            f"- RSS across epochs: {'flat' if flat else 'NOT flat'}: the largest change "
            f"between the first and the last epoch's end is {worst_r.rss_growth_mib:+.1f} "
            f"MiB ({worst_r.label}, n={worst_r.n:,}; threshold {RSS_FLAT_MIB} MiB)."
        )
    return lines


def report(results: Sequence[Result], threads: int, data: BenchData, command: str,
           load: tuple[str, str], repeats: str, png: Path | None, md: Path) -> str:
    """Build the full Markdown report.

    Parameters
    ----------
    results : sequence of Result
        The measurements.
    threads : int
        ``torch.set_num_threads`` of the run.
    data : BenchData
        The data.
    command : str
        The command line that ran.
    load : tuple of str
        Load average before and after the run.
    repeats : str
        How repeats were counted.
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
        *environment(threads, data, load, repeats),
        "",
        "**ours** = `MultimodalFusionClassifier.fit` / `.predict_proba` end to end from "
        "numpy arrays (input checks and preprocessing included). **raw** = a hand-written "
        "loop training the identical `MultimodalFusionNet` (from the estimator's "
        "`_build_network`) on the estimator's own preprocessed in-memory tensors: "
        "shuffled batches of 128 sliced in one indexing operation, AdamW, the same loss "
        "(raw predict starts from those tensors too). **skorch** = `skorch."
        "NeuralNetClassifier` on the same module with its default `DataLoader` "
        "(per-item fetch and collation). `fit /s` = n x epochs per second of the whole "
        "fit; `epoch /s` uses the fastest epoch (the least disturbed by other jobs); "
        "`/cpu-s` divides by CPU seconds instead of wall seconds; `set-up cpu-s` = fit "
        "time outside the epochs; predict runs on the n training samples.",
        "",
        "## Throughput (samples per second)",
        "",
        throughput_table(results),
        "",
        f"## Time ratios (lower is faster; target ours/raw <= {RATIO_TARGET})",
        "",
        ratio_table(results),
        "",
        "## Epoch time vs n",
        "",
        scaling_table(results),
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
        memory_table(results),
        "",
        f"RSS (MiB) at the end of each epoch, n={max(r.n for r in results):,}:",
        "",
        rss_table(results),
        "",
        "## Verdicts",
        "",
        *verdicts(results),
    ]
    if png is not None:
        parts += ["", f"![speed]({os.path.relpath(png, md.parent)})"]
    return "\n".join(parts) + "\n"


def plot(results: Sequence[Result], path: Path) -> None:
    """Write a three-panel PNG: fit throughput, epoch time vs n, RSS per epoch.

    Parameters
    ----------
    results : sequence of Result
        The measurements.
    path : Path
        The PNG file (folders created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"ours": "o-", "raw": "s--", "skorch": "^:"}
    labels = list(dict.fromkeys(r.label for r in _ordered(results)))
    ns = sorted({r.n for r in results})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for label in labels:
        rows = sorted((r for r in results if r.label == label), key=lambda r: r.n)
        style = styles[rows[0].method]
        axes[0].plot([r.n for r in rows], [r.fit_sps("cpu") for r in rows], style,
                     label=label)
        axes[1].plot([r.n for r in rows], [r.epoch_time("cpu") for r in rows], style,
                     label=label)
        big = rows[-1]
        axes[2].plot(range(1, len(big.epoch_rss_mib) + 1), big.epoch_rss_mib, style,
                     label=label)
    raw = sorted((r for r in results if r.label == "raw (none)"), key=lambda r: r.n)
    if len(raw) > 1:
        axes[1].plot(ns, [raw[0].epoch_time("cpu") * n / raw[0].n for n in ns],
                     color="grey", lw=0.8, label="linear through raw (none)")
    axes[0].set(xscale="log", xlabel="n samples", ylabel="samples x epochs per CPU second",
                title="fit throughput, end to end")
    axes[1].set(xscale="log", yscale="log", xlabel="n samples", ylabel="CPU seconds",
                title="time per epoch")
    axes[0].set_ylim(bottom=0)
    axes[2].set(xlabel="epoch", ylabel="RSS (MiB)", title=f"RSS at epoch end, n={ns[-1]:,}")
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    plot(results, png)
    text = report(results, args.threads, data, command, (load_before, _loadavg()),
                  repeat_text, png, md)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text)
    print()
    print(text)
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
