"""User callbacks (skorch's) for the task stage of every member.

skorch callbacks keep per-net state (an LR scheduler's policy, a checkpoint's best
score), so every member of an ensemble runs its own deep copy of each callback. A
callback that holds an Optuna trial (a pruning callback) is the exception: it is not
copied and runs on the first member only, once per epoch, where the history row it
reads already holds the ``pooled_valid_loss`` over every member.

This module knows skorch, not scikit-learn.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from skorch.callbacks import Callback

#: History keys that skorch's default callbacks of every net already use.
RESERVED_NAMES = {"epoch_timer", "train_loss", "valid_loss", "print_log"}


def check_callbacks(callbacks: Any) -> list[tuple[str, Callback]]:
    """The ``callbacks`` parameter as ``(name, callback)`` pairs, checked.

    Parameters
    ----------
    callbacks : list or None
        skorch callbacks (instances, not classes), or ``(name, callback)`` pairs.

    Returns
    -------
    list of (str, Callback)

    Raises
    ------
    TypeError
        For an item that is not a skorch callback instance.
    ValueError
        For duplicate or reserved names.
    """
    if callbacks is None:
        return []
    pairs = []
    for position, item in enumerate(callbacks):
        name, callback = item if isinstance(item, tuple) and len(item) == 2 else (None, item)
        if isinstance(callback, type):
            raise TypeError(
                f"callbacks[{position}] is the class {callback.__name__}; pass an instance "
                f"({callback.__name__}(...)). Got {callback!r} instead."
            )
        if not isinstance(callback, Callback):
            raise TypeError(
                "Each item of 'callbacks' must be a skorch callback (an instance of "
                "skorch.callbacks.Callback) or a (name, callback) pair. Got "
                f"{item!r} at position {position} instead."
            )
        if name is None:
            name = type(callback).__name__
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"The name of callbacks[{position}] must be a non-empty string. Got "
                f"{name!r} instead."
            )
        pairs.append((name, callback))
    names = [name for name, _ in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Callback names must be unique; {duplicates} occur more than once. Pass "
            "(name, callback) pairs to name them."
        )
    reserved = sorted(set(names) & RESERVED_NAMES)
    if reserved:
        raise ValueError(
            f"Callback names {reserved} are used by the training loop itself; pass "
            "(name, callback) pairs with other names."
        )
    return pairs


def holds_trial(callback: Callback) -> bool:
    """Whether ``callback`` refers to an Optuna trial (a pruning callback)."""
    try:
        from optuna.trial import BaseTrial
    except ImportError:  # pragma: no cover - optuna is a dependency
        return False
    return any(isinstance(value, BaseTrial) for value in vars(callback).values())


def member_callbacks(
    pairs: list[tuple[str, Callback]], member: int, n_members: int
) -> list[tuple[str, Callback]]:
    """The callbacks member ``member`` runs: its own copies, shared pruning callbacks.

    A copy with a ``fn_prefix`` (skorch's ``Checkpoint``, ``TrainEndCheckpoint``,
    ``LoadInitState``) gets ``member{k}_`` prepended when there are several members,
    so that their files do not overwrite each other.
    """
    out = []
    for name, callback in pairs:
        if holds_trial(callback):
            if member == 0:
                out.append((name, callback))
            continue
        copy = deepcopy(callback)
        if n_members > 1 and isinstance(getattr(copy, "fn_prefix", None), str):
            copy.fn_prefix = f"member{member}_{copy.fn_prefix}"
        out.append((name, copy))
    return out
