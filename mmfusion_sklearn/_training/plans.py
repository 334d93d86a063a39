"""How one fit is laid out: how many networks, which rows each trains on and holds out.

This is the scikit-learn side of :mod:`mmfusion_sklearn._training.ensemble` (which trains
the members): folds and splits are made here, stratified by the task's strata (the
encoded classes; none for a continuous target), and handed over as index tensors.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from .._data.messages import user_stacklevel
from .ensemble import MemberPlan

#: Members of ``ensemble_size="auto"`` when early stopping is on, n is at most
#: :data:`AUTO_ENSEMBLE_MAX_N` and every modality is a table or a feature vector:
#: K-fold cross-fitting, each sample held out once.
AUTO_ENSEMBLE_SIZE = 5
AUTO_ENSEMBLE_MAX_N = 5000
#: Columns of ``history_``, in order (a classifier's; see :func:`history_columns`).
HISTORY_COLUMNS = ["stage", "member", "epoch", "train_loss", "valid_loss",
                   "pooled_valid_loss", "pooled_valid_log_loss", "same_class_cosine",
                   "diff_class_cosine", "valid_same_class_cosine", "valid_diff_class_cosine",
                   "dur"]


def history_columns(full_loss_name: str = "log_loss") -> list[str]:
    """The columns of ``history_`` for a task whose full-input loss is ``full_loss_name``
    (``pooled_valid_log_loss`` for classes, ``pooled_valid_squared_error`` for
    regression)."""
    return [f"pooled_valid_{full_loss_name}" if c == "pooled_valid_log_loss" else c
            for c in HISTORY_COLUMNS]

Split = tuple[np.ndarray | None, np.ndarray | None]


def resolve_ensemble_size(
    ensemble_size: int | str, n_samples: int, early_stopping: bool, cheap: bool
) -> int:
    """The number of members: ``ensemble_size``, or the "auto" rule.

    Parameters
    ----------
    ensemble_size : int or "auto"
        The estimator's parameter.
    n_samples : int
        Training samples.
    early_stopping : bool
        Whether members hold out rows.
    cheap : bool
        Whether every modality is a table or a feature vector (precomputed or the
        output of a frozen encoder).

    Returns
    -------
    int
    """
    if ensemble_size != "auto":
        return int(ensemble_size)
    # networks on tables and feature vectors overfit within a few optimiser steps on
    # small data, where averaging cross-fitted members pays; CNNs learn over many
    # epochs, gain more from data than from averaging, and cost more per member
    small = n_samples <= AUTO_ENSEMBLE_MAX_N
    return AUTO_ENSEMBLE_SIZE if early_stopping and small and cheap else 1


def member_plans(
    strata: np.ndarray | None,
    size: int,
    early_stopping: bool,
    validation_fraction: float,
    split_seed: int,
    member_seeds: list[int],
    n_samples: int | None = None,
) -> list[MemberPlan]:
    """Training and held-out rows of every member, and its seed.

    Without early stopping every member trains on every row; with one member it holds
    out a stratified ``validation_fraction``; with several, member k holds out fold k
    of a stratified K-fold split.

    Parameters
    ----------
    strata : ndarray of int (n,) or None
        Encoded labels to stratify by; None (a continuous target): plain random
        splits of ``n_samples`` rows.
    size : int
        Number of members.
    early_stopping : bool
        Whether members hold out rows.
    validation_fraction : float
        Share held out by a single member.
    split_seed : int
        Seed of the split or folds.
    member_seeds : list of int
        One seed per member.
    n_samples : int, default=None
        Number of rows (needed when ``strata`` is None).

    Returns
    -------
    list of MemberPlan
    """
    splits: list[Split]
    if not early_stopping:
        splits = [(None, None)] * size
    elif size == 1:
        splits = [holdout(strata, validation_fraction, split_seed, n_samples)]
    else:
        splits = folds(strata, size, split_seed, n_samples)
    return [
        MemberPlan(
            None if train is None else torch.from_numpy(train),
            None if valid is None else torch.from_numpy(valid),
            seed,
        )
        for (train, valid), seed in zip(splits, member_seeds)
    ]


def folds(y_index: np.ndarray | None, k: int, seed: int,
          n: int | None = None) -> list[Split]:
    """K folds, stratified where every class has k samples: member i holds out fold i.

    ``y_index`` None (a continuous target) makes plain K folds of ``n`` rows. With
    fewer than 2k samples a warning says so and every member trains on all rows.
    """
    n = len(y_index) if y_index is not None else int(n)
    if n < 2 * k:
        warnings.warn(
            f"Too few samples ({n}) for {k} cross-fitted members; training {k} members "
            "on all of them for max_epochs.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
        return [(None, None)] * k
    if y_index is None:
        return list(KFold(k, shuffle=True, random_state=seed).split(np.zeros((n, 1))))
    stratified = np.bincount(y_index).min() >= k
    cv = (StratifiedKFold if stratified else KFold)(k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros((n, 1)), y_index))


def holdout(y_index: np.ndarray | None, fraction: float, seed: int,
            n: int | None = None) -> Split:
    """A stratified held-out share of the rows (at least one per class).

    ``y_index`` None (a continuous target) holds out a random share of ``n`` rows (at
    least one, leaving at least two to train on). With too few samples a warning says
    so and nothing is held out.
    """
    n = len(y_index) if y_index is not None else int(n)
    n_classes = int(y_index.max()) + 1 if y_index is not None else 1
    if y_index is None and n < 3:
        n_classes = n  # too few to split: the warning below
    n_valid = max(math.ceil(fraction * n), n_classes)
    if n - n_valid < n_classes:
        warnings.warn(
            f"Too few samples ({n}) to hold out a validation set for early stopping; "
            "training on all of them for max_epochs.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
        return None, None
    stratify = y_index if y_index is not None and np.bincount(y_index).min() >= 2 else None
    train, valid = train_test_split(np.arange(n), test_size=n_valid, stratify=stratify,
                                    random_state=seed)
    return train, valid


def history_frame(rows: list[dict[str, Any]],
                  full_loss_name: str = "log_loss") -> pd.DataFrame:
    """The ``history_`` table: one row per member, stage and epoch.

    Parameters
    ----------
    rows : list of dict
        skorch history rows with ``stage`` and ``member`` added.
    full_loss_name : str, default="log_loss"
        The task's full-input loss (see :func:`history_columns`).

    Returns
    -------
    pandas.DataFrame
        Columns :func:`history_columns`, then any other number the rows hold (what
        user callbacks record, e.g. an LR scheduler's ``event_lr``); NaN where a stage
        does not record a value.
    """
    known = history_columns(full_loss_name)
    extra = [k for k in dict.fromkeys(k for row in rows for k in row)
             if k not in known and k not in SKORCH_BOOKKEEPING
             and not k.endswith("_best")
             and all(_is_number(row.get(k)) for row in rows)]
    columns = known + extra
    frame = pd.DataFrame(
        [{k: np.nan if row.get(k) is None else row[k] for k in columns} for row in rows],
        columns=columns,
    )
    return frame.astype({"member": int, "epoch": int,
                         **dict.fromkeys(columns[3:], float)})


#: Keys of skorch's history rows that ``history_`` leaves out (per-batch records,
#: batch counts; ``*_best`` flags are left out too).
SKORCH_BOOKKEEPING = {"batches", "train_batch_count", "valid_batch_count", "agreed"}


def _is_number(value: Any) -> bool:
    """A number (or None) that a history column can hold; bools are left out."""
    if value is None:
        return True
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, (bool, np.bool_))
