"""Temperature scaling per subset of modalities.

A network that sees one modality is not as sure as one that sees all of them, so one
temperature cannot calibrate every missingness pattern. After training, each subset S
of modalities gets its own temperature T_S, fitted on the held-out rows: every
held-out sample that has all of S is predicted from S alone (the other modalities
replaced by their tokens, as at prediction) by the member that held it out, and T_S
minimises the weighted log loss of ``log_softmax(log_p / T_S)`` there, with a weak
prior on log T_S that keeps a T fitted on few rows near 1. At prediction each sample
takes the temperature of the modalities it has; dividing log-probabilities by a
positive T never changes which class is the most probable.

This module knows torch and numpy, not scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch

from .batches import BatchIterator, FusionDataset
from .runtime import autocast

#: Up to this many modalities every non-empty subset is calibrated; beyond it, the full
#: set, each single modality and the patterns met in the held-out rows.
MAX_ENUMERATED_MODALITIES = 6
#: Standard deviation of the Gaussian prior on log T (T = 1 is no scaling).
LOG_T_PRIOR_SD = 0.5
#: Temperatures are searched in [exp(-LOG_T_BOUND), exp(LOG_T_BOUND)].
LOG_T_BOUND = 3.0


def calibration_subsets(n_modalities: int, observed: np.ndarray) -> list[tuple[bool, ...]]:
    """The modality subsets that get a temperature, as presence patterns.

    Parameters
    ----------
    n_modalities : int
        M.
    observed : ndarray of bool (n, M)
        Presence of the held-out rows.

    Returns
    -------
    list of tuple of bool
        Each of length M, with at least one True.
    """
    if n_modalities <= MAX_ENUMERATED_MODALITIES:
        return [tuple(m in chosen for m in range(n_modalities))
                for k in range(n_modalities, 0, -1)
                for chosen in combinations(range(n_modalities), k)]
    patterns = {tuple([True] * n_modalities)}
    patterns.update(tuple(m == j for m in range(n_modalities)) for j in range(n_modalities))
    patterns.update(tuple(bool(v) for v in row) for row in observed if row.any())
    return sorted(patterns, key=lambda p: (-sum(p), p))


def fit_temperature(log_proba: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    """The temperature that minimises the weighted log loss (MAP with a prior on log T).

    Parameters
    ----------
    log_proba : ndarray (n, C)
        Log-probabilities before scaling.
    y : ndarray of int (n,)
        Class indices.
    weight : ndarray (n,)
        Sample weights.

    Returns
    -------
    float
        1.0 when there are no rows (or no weight).
    """
    from scipy.optimize import minimize_scalar

    if len(y) == 0 or not weight.sum() > 0:
        return 1.0
    # the prior counts as much as one sample's loss per unit of weight: in units of
    # the mean sample weight, so that rescaling the weights does not change T
    scale = float(weight.mean())
    log_proba = torch.as_tensor(log_proba, dtype=torch.float64)
    target = torch.as_tensor(y, dtype=torch.int64)
    w = torch.as_tensor(weight, dtype=torch.float64) / scale

    def objective(log_t: float) -> float:
        scaled = torch.log_softmax(log_proba / math.exp(log_t), dim=1)
        nll = -(w * scaled.gather(1, target[:, None])[:, 0]).sum()
        return float(nll) + 0.5 * (log_t / LOG_T_PRIOR_SD) ** 2

    result = minimize_scalar(objective, bounds=(-LOG_T_BOUND, LOG_T_BOUND), method="bounded",
                             options={"xatol": 1e-4})
    return float(math.exp(result.x))


class TemperatureTable:
    """Temperatures per presence pattern, looked up row by row.

    Parameters
    ----------
    patterns : list of tuple of bool
        Presence patterns (length M each).
    temperatures : list of float
        One per pattern.
    default : float
        The temperature of a pattern not in the table (fitted on every pattern's rows
        together).
    counts : list of int, default=None
        Held-out rows behind each temperature (None: unknown, 0 each).
    """

    def __init__(self, patterns: Sequence[tuple[bool, ...]], temperatures: Sequence[float],
                 default: float, counts: Sequence[int] | None = None) -> None:
        self.patterns = [tuple(bool(v) for v in p) for p in patterns]
        self.temperatures = [float(t) for t in temperatures]
        self.default = float(default)
        self.counts = [0] * len(self.patterns) if counts is None else [int(c) for c in counts]
        self._lookup = {_bits(p): t for p, t in zip(self.patterns, self.temperatures)}

    def __call__(self, present: np.ndarray) -> np.ndarray:
        """Temperature of each row of ``present`` (n, M)."""
        present = np.asarray(present, dtype=bool)
        weights = 1 << np.arange(present.shape[1], dtype=np.int64)
        keys = present.astype(np.int64) @ weights
        # a batch holds few distinct patterns: look each up once
        patterns, rows = np.unique(keys, return_inverse=True)
        found = np.array([self._lookup.get(int(k), self.default) for k in patterns])
        return found[rows.reshape(-1)]

    def frame(self, names: Sequence[str]) -> pd.DataFrame:
        """The ``temperatures_`` table: ``modalities`` (joined by "+"), ``temperature``
        and ``n_samples``, one row per pattern; ``names`` label the pattern's columns."""
        return pd.DataFrame({
            "modalities": ["+".join(n for n, keep in zip(names, p) if keep)
                           for p in self.patterns],
            "temperature": self.temperatures,
            "n_samples": self.counts,
        })

    def scale(self, log_proba: np.ndarray, present: np.ndarray) -> np.ndarray:
        """``log_softmax(log_proba / T)`` with each row's temperature."""
        t = self(present)[:, None]
        return torch.log_softmax(torch.from_numpy(log_proba / t), dim=1).numpy()


def _bits(pattern: Sequence[bool]) -> int:
    return sum(1 << m for m, v in enumerate(pattern) if v)


@torch.no_grad()
def held_out_log_proba(
    module: torch.nn.Module,
    valid: FusionDataset,
    patterns: Sequence[tuple[bool, ...]],
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    num_workers: int = 0,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per pattern, ``(log_proba, y, weight)`` of the held-out rows that have it all.

    Each held-out sample is encoded once per batch; the fusion head and classifier
    then run once per pattern, with the modalities outside it replaced by tokens.
    """
    module.to(device).eval()
    masks = torch.tensor(patterns, dtype=torch.bool, device=device)
    collected: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [
        [] for _ in patterns
    ]
    for X, y in BatchIterator(valid, batch_size, device=device, num_workers=num_workers):
        inputs, present, weight = X["inputs"], X["present"], X["weight"]
        with autocast(device, precision):
            features = module.encode(inputs, present)
            linear = module.linear_terms(inputs, present)
            for p, mask in enumerate(masks):
                rows = (present | ~mask).all(dim=1)  # every modality of the pattern
                if not bool(rows.any()):
                    continue
                keep = mask.expand(int(rows.sum()), -1)
                fused = module.fuse(features[rows], keep)
                logits = module.classify(fused, keep, None if linear is None else linear[rows])
                collected[p].append((torch.log_softmax(logits.double(), dim=1).cpu(),
                                     y[rows].cpu(), weight[rows].double().cpu()))
    out = []
    for parts in collected:
        if parts:
            out.append(tuple(torch.cat(t).numpy() for t in zip(*parts)))
        else:
            out.append((np.zeros((0, 0)), np.zeros(0, dtype=np.int64), np.zeros(0)))
    return out


def fit_temperature_table(
    modules: Sequence[torch.nn.Module],
    valids: Sequence[FusionDataset | None],
    n_modalities: int,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    num_workers: int = 0,
) -> TemperatureTable:
    """Fit a temperature per modality subset on every member's held-out rows.

    Returns
    -------
    TemperatureTable
        With the held-out rows behind each pattern's temperature in ``counts``.
    """
    observed = np.concatenate([v.materialise([])[1].numpy() for v in valids if v is not None])
    patterns = calibration_subsets(n_modalities, observed)
    pooled: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in patterns]
    for module, valid in zip(modules, valids):
        if valid is None or len(valid) == 0:
            continue
        parts = held_out_log_proba(module, valid, patterns, batch_size=batch_size,
                                   device=device, precision=precision,
                                   num_workers=num_workers)
        for p, part in enumerate(parts):
            if len(part[1]):
                pooled[p].append(part)
    temperatures, counts, every = [], [], []
    for parts in pooled:
        if not parts:
            temperatures.append(None)
            counts.append(0)
            continue
        log_proba, y, weight = (np.concatenate(t) for t in zip(*parts))
        temperatures.append(fit_temperature(log_proba, y, weight))
        counts.append(len(y))
        every.append((log_proba, y, weight))
    default = (fit_temperature(*(np.concatenate(t) for t in zip(*every))) if every else 1.0)
    temperatures = [default if t is None else t for t in temperatures]
    return TemperatureTable(patterns, temperatures, default, counts)
