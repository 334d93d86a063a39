"""Measurements of the speed benchmark: clocks, resident set size, per-epoch probes, results.

Every time is taken on two clocks, wall (:func:`time.perf_counter`) and CPU
(:func:`time.process_time`), and held as a :class:`PerClock` pair, so that
throughputs and ratios are computed once for both.
"""

from __future__ import annotations

import gc
import operator
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

MIB = 2.0**20
N_CLASSES = 10
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------
def _ru_maxrss_bytes() -> int:
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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
        return _ru_maxrss_bytes()


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
    return _ru_maxrss_bytes()


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
# clocks
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PerClock:
    """One value per clock: seconds, a throughput or a time ratio.

    Parameters
    ----------
    wall : float
        The value on the wall clock (:func:`time.perf_counter`).
    cpu : float
        The value on the CPU clock of the whole process, all threads
        (:func:`time.process_time`). With one torch thread this is the work done,
        and it barely moves when other jobs share the cores.
    """

    wall: float
    cpu: float

    def get(self, clock: str) -> float:
        """Return the value of one clock.

        Parameters
        ----------
        clock : {"wall", "cpu"}
            Which clock.

        Returns
        -------
        float
            The value.
        """
        return self.wall if clock == "wall" else self.cpu

    def _zip(self, other: PerClock, op: Callable[[float, float], float]) -> PerClock:
        return PerClock(op(self.wall, other.wall), op(self.cpu, other.cpu))

    def __sub__(self, other: PerClock) -> PerClock:
        return self._zip(other, operator.sub)

    def __truediv__(self, other: PerClock) -> PerClock:
        return self._zip(other, operator.truediv)

    def rate(self, count: float) -> PerClock:
        """Return ``count`` per second of each clock (``self`` holds seconds).

        Parameters
        ----------
        count : float
            What was done in that time, e.g. samples.

        Returns
        -------
        PerClock
            ``count / seconds`` per clock.
        """
        return PerClock(count / self.wall, count / self.cpu)

    @staticmethod
    def best(values: Sequence[PerClock]) -> PerClock:
        """Return the fastest of several timings, per clock.

        Parameters
        ----------
        values : sequence of PerClock
            Seconds, e.g. of repeats or of epochs.

        Returns
        -------
        PerClock
            The smallest wall and the smallest CPU time (possibly of two runs).
        """
        return PerClock(min(v.wall for v in values), min(v.cpu for v in values))

    @staticmethod
    def total(values: Sequence[PerClock]) -> PerClock:
        """Return the sum of several timings, per clock.

        Parameters
        ----------
        values : sequence of PerClock
            Seconds.

        Returns
        -------
        PerClock
            The sums.
        """
        return PerClock(sum(v.wall for v in values), sum(v.cpu for v in values))


class _Clock:
    """Start/stop wall and CPU clocks."""

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()

    def stop(self) -> PerClock:
        return PerClock(time.perf_counter() - self.wall0, time.process_time() - self.cpu0)


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
    times : list of PerClock
        Seconds of each epoch.
    rss_mib : list of float
        RSS at the end of each epoch.
    """

    def __init__(self) -> None:
        self.times: list[PerClock] = []
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


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
@dataclass
class Result:
    """Measurements of one method at one size.

    Parameters
    ----------
    method : str
        ``"ours"``, ``"ours+linear"``, ``"raw"`` or ``"skorch"``.
    objective : str
        The setting: ``"none"`` or ``"simultaneous"`` (the classifier's modality
        dropout), ``"regressor"`` or ``"survival"`` (those estimators, no modality
        dropout).
    n : int
        Training (and prediction) samples.
    epochs : int
        Training epochs.
    fit : PerClock
        Seconds of the whole fit.
    epoch : list of PerClock
        Seconds of each epoch.
    predict : PerClock
        Seconds of ``predict_proba`` (the regressor's and the survival model's
        ``predict``) on the ``n`` training samples.
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
    setup : PerClock or None, default=None
        Seconds of fit outside the epochs, the smallest over the merged runs (None:
        computed from ``fit`` and ``epoch``, which after a merge may come from
        different runs).
    """

    method: str
    objective: str
    n: int
    epochs: int
    fit: PerClock
    epoch: list[PerClock]
    predict: PerClock
    fit_peak_mib: float
    fit_start_mib: float
    predict_peak_mib: float
    predict_start_mib: float
    epoch_rss_mib: list[float] = field(default_factory=list)
    repeats: int = 1
    setup: PerClock | None = None

    @property
    def label(self) -> str:
        """Row label: method and objective."""
        return f"{self.method} ({self.objective})"

    @property
    def fit_sps(self) -> PerClock:
        """End-to-end fit throughput: samples x epochs per second."""
        return self.fit.rate(self.n * self.epochs)

    @property
    def epoch_time(self) -> PerClock:
        """Seconds of the fastest epoch: the least disturbed by other jobs on the cores."""
        return PerClock.best(self.epoch)

    @property
    def epoch_sps(self) -> PerClock:
        """Steady-state training throughput: samples per second of the fastest epoch."""
        return self.epoch_time.rate(self.n)

    @property
    def setup_time(self) -> PerClock:
        """Seconds of fit outside the epochs (input checks, preprocessing, set-up)."""
        if self.setup is not None:
            return self.setup
        return self.fit - PerClock.total(self.epoch)

    @property
    def predict_sps(self) -> PerClock:
        """Prediction throughput: samples per second."""
        return self.predict.rate(self.n)

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
        epochs = [PerClock.best([r.epoch[e] for r in runs]) for e in range(len(first.epoch))]
        return replace(
            first,
            fit=PerClock.best([r.fit for r in runs]),
            epoch=epochs,
            predict=PerClock.best([r.predict for r in runs]),
            repeats=len(runs),
            # per run, then the smallest: the fastest fit and the fastest epochs may
            # come from different runs, and their difference is no set-up time
            setup=PerClock.best([r.setup_time for r in runs]),
        )


def measure(
    method: str,
    objective: str,
    n: int,
    epochs: int,
    log: EpochLog,
    fit: Callable[[], object],
    predict_proba: Callable[[], np.ndarray],
    outputs: int | None = N_CLASSES,
) -> Result:
    """Run and measure ``fit()``, then ``predict_proba()``, each under its own meter.

    Before each call the garbage is collected and the peak-RSS mark reset.

    Parameters
    ----------
    method : str
        ``"ours"``, ``"ours+linear"``, ``"raw"`` or ``"skorch"``.
    objective : str
        ``"none"``, ``"simultaneous"``, ``"regressor"`` or ``"survival"``.
    n : int
        Samples that ``fit`` trains on and ``predict_proba`` predicts.
    epochs : int
        Epochs that ``fit`` runs.
    log : EpochLog
        Filled by ``fit`` with one entry per epoch.
    fit : callable
        Trains; its return value is ignored.
    predict_proba : callable
        Predicts the training samples; returns probabilities of shape (n, outputs)
        (the regressor's and the survival model's ``predict``: values, or risk scores,
        of shape (n,)).
    outputs : int or None, default=10
        Columns of the prediction; None for one value per sample.

    Returns
    -------
    Result
        The measurements.
    """
    with _Meter() as fit_meter:
        fit()
    with _Meter() as predict_meter:
        proba = predict_proba()
    shape = (n,) if outputs is None else (n, outputs)
    if proba.shape != shape:
        raise RuntimeError(
            f"{method} predictions must have shape {shape}. Got {proba.shape} instead."
        )
    if not np.isfinite(proba).all():
        raise RuntimeError(f"{method} predicted non-finite values.")
    return Result(method, objective, n, epochs, fit_meter.timing, log.times,
                  predict_meter.timing, fit_meter.peak_mib, fit_meter.start_mib,
                  predict_meter.peak_mib, predict_meter.start_mib, log.rss_mib)
