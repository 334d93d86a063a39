"""Train the members of one fit in lockstep, with early stopping on their pooled loss.

A fit trains one network or several ("members"). With early stopping, member k holds
out its own validation rows (one fold of a K-fold split when there are several
members). Three stages follow: the linear paths are fitted (their penalty chosen on the
held-out rows of all members), the contrastive stage pretrains each member, and in the
task stage every epoch all members train once; the stopping signal is the
validation loss pooled over all members' held-out rows. With K folds every training
sample is held out exactly once, so the signal is measured on all n samples instead
of one small split, and each member still trains on (K-1)/K of the data.

This module knows skorch and torch, not scikit-learn: the caller passes the splits.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from skorch.helper import predefined_split

from .._data.messages import user_stacklevel
from .._torch.linear import fit_linear_path, linear_loss
from .._torch.losses import random_modality_mask
from .._torch.tasks import ClassificationTask
from .batches import FusionDataset
from .callbacks import member_callbacks
from .nets import ContrastiveNet, FusionNet, progress_bar

#: Inverse penalties C of the linear path, counted as scikit-learn's LogisticRegression
#: counts them (see :meth:`~mmfusion_sklearn._torch.tasks.Task.linear_l2`); the lowest
#: loss pooled over the members' held-out rows wins. Without held-out rows
#: :data:`DEFAULT_LINEAR_C` is used.
LINEAR_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
DEFAULT_LINEAR_C = 1.0

class TrainingDivergedError(RuntimeError):
    """A training loss became NaN or infinite, with no finite weights to fall back on."""


def _check_finite_loss(losses: Sequence[float], stage: str, epoch: int) -> None:
    bad = [loss for loss in losses if not math.isfinite(loss)]
    if bad:
        raise TrainingDivergedError(
            f"The {stage} stage diverged at epoch {epoch}: the training loss is {bad[0]}. "
            "Lower the learning rate 'lr', or check the inputs and the sample weights for "
            "extreme values."
        )


@dataclass
class MemberPlan:
    """What one member trains on and how it is seeded.

    Parameters
    ----------
    train_index : Tensor or None
        Rows of the data set it trains on; None is every row.
    valid_index : Tensor or None
        Rows it holds out for early stopping; None holds out nothing.
    seed : int
        Seeds its weights, its dropout and its batch order.
    """

    train_index: torch.Tensor | None
    valid_index: torch.Tensor | None
    seed: int


@dataclass
class TrainedMembers:
    """The outcome of :func:`train_members`.

    Parameters
    ----------
    nets : list of FusionNet
        The trained task-stage nets, their best weights restored.
    history : list of dict
        One row per member, stage and epoch.
    best_epoch : int or None
        The epoch whose weights were kept (0: the networks as they started the stage;
        None without early stopping).
    linear_C : float or None
        Inverse penalty of the linear path (None without one).
    interrupted : bool
        Whether a KeyboardInterrupt cut training short.
    diverged : str or None
        Where the task loss became non-finite, when the best finite weights
        were restored instead of raising.
    """

    nets: list[FusionNet]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    linear_C: float | None = None
    interrupted: bool = False
    diverged: str | None = None


def _rows(net: Any, stage: str, member: int) -> list[dict[str, Any]]:
    return [dict(row, stage=stage, member=member) for row in net.history]


def pooled_valid_loss(nets: Sequence[FusionNet], sizes: Sequence[int],
                      key: str = "valid_loss") -> float:
    """A batch record of the members' current epoch, pooled over their held-out rows.

    Each member's epoch mean of ``key`` (weighted by batch size, as skorch's epoch
    scores) is averaged with the members' held-out sizes as weights.

    Parameters
    ----------
    nets : sequence of FusionNet
        Nets inside an epoch that has run its validation pass.
    sizes : sequence of int
        Held-out samples of each member.
    key : str, default="valid_loss"
        The batch record: ``"valid_loss"`` (the objective) or the full input's loss
        (``"valid_log_loss"`` for classes, ``"valid_squared_error"`` for regression).

    Returns
    -------
    float
        NaN when no member holds out any sample.
    """
    return _size_weighted_mean([_epoch_mean(net, key) for net in nets], sizes)


def _size_weighted_mean(losses: Sequence[float], sizes: Sequence[int]) -> float:
    total = sum(sizes)
    if total == 0:
        return math.nan
    return sum(loss * size for loss, size in zip(losses, sizes)) / total


def train_members(
    build_module: Callable[[], torch.nn.Module],
    dataset: FusionDataset,
    plans: Sequence[MemberPlan],
    *,
    task_kwargs: dict[str, Any],
    max_epochs: int,
    patience: int,
    contrastive_kwargs: dict[str, Any] | None = None,
    pretrain_epochs: int = 0,
    verbose: int = 0,
    callbacks: Sequence[tuple[str, Any]] = (),
) -> TrainedMembers:
    """Pretrain (optionally) and train every member; stop all of them together.

    Parameters
    ----------
    build_module : callable
        Returns a fresh network; called once per member under its seed.
    dataset : FusionDataset
        All training samples.
    plans : sequence of MemberPlan
        One per member.
    task_kwargs : dict
        Keyword arguments of :class:`FusionNet` (``task``, objective, optimiser, batch
        size, ...), without ``max_epochs``, ``train_split`` and ``iterator_seed``.
    max_epochs : int
        Most epochs of the task stage.
    patience : int
        Epochs without improvement of the pooled validation loss before stopping.
    contrastive_kwargs : dict, default=None
        Keyword arguments of :class:`ContrastiveNet` (``task`` among them); None skips
        the contrastive stage.
    pretrain_epochs : int, default=0
        Epochs of the contrastive stage.
    verbose : int, default=0
        1 shows a progress bar per stage.
    callbacks : sequence of (str, Callback), default=()
        skorch callbacks of the task stage (see
        :func:`~mmfusion_sklearn._training.callbacks.member_callbacks`); notified at the end of
        an epoch once every member has trained it, with ``pooled_valid_loss`` already
        in the history row.

    Returns
    -------
    TrainedMembers
    """
    if task_kwargs.get("task") is None:  # classification, as before tasks existed
        task = ClassificationTask(build_module_outputs(build_module))
        task_kwargs = {**task_kwargs, "task": task}
        if contrastive_kwargs is not None:
            contrastive_kwargs = {**contrastive_kwargs, "task": task}
    trains, valids = [], []
    for plan in plans:
        trains.append(dataset if plan.train_index is None else dataset.subset(plan.train_index))
        valids.append(None if plan.valid_index is None else dataset.subset(plan.valid_index))
    result = TrainedMembers(nets=[])
    distributed = task_kwargs.get("distributed")
    modules = []
    for plan in plans:
        torch.manual_seed(plan.seed)
        modules.append(build_module())
    if distributed is not None and distributed.rank:
        # the same weights on every rank (DDP copies rank 0's anyway), but each rank
        # its own dropout and modality-dropout draws
        torch.manual_seed(plans[0].seed + 7_919 * distributed.rank)
    if len(modules[0].linear):
        result.linear_C = _fit_linear_paths(modules, trains, valids, plans, task_kwargs)
    if contrastive_kwargs is not None and pretrain_epochs > 0:
        try:
            _pretrain(modules, trains, valids, plans, contrastive_kwargs, pretrain_epochs,
                      verbose, result)
        except KeyboardInterrupt:
            # the whole fit stops; the classifier head (zero) over the linear path, if
            # any, is a usable starting point
            result.interrupted = True
    try:
        _train_task(modules, trains, valids, plans, task_kwargs,
                    0 if result.interrupted else max_epochs, patience, verbose, result,
                    list(callbacks))
    except KeyboardInterrupt:
        result.interrupted = True
    if distributed is not None:
        # every rank leaves with rank 0's weights and choices, bit for bit
        for module in modules:
            distributed.broadcast_module(module)
        result.linear_C = distributed.broadcast_object(result.linear_C)
        for net in result.nets:
            net.leave_process_group()
    return result


def build_module_outputs(build_module: Callable[[], torch.nn.Module]) -> int:
    """The head width of the networks ``build_module`` makes (built under a forked seed,
    so that the members' initialisations are not shifted)."""
    with torch.random.fork_rng(devices=[]):
        return build_module().classifier.net[-1].out_features


def _linear_data(dataset: FusionDataset, names: list[str], objective: str, rate: float,
                 seed: int):
    inputs, present, y, weight = dataset.materialise(names)
    if objective == "random":  # one fixed draw of conventional modality dropout
        generator = torch.Generator().manual_seed(seed)
        present = random_modality_mask(present, rate, generator)
    return inputs, present, y, weight


def _fit_linear_paths(modules, trains, valids, plans, task_kwargs) -> float:
    """Fit every member's linear path; choose C by the pooled held-out loss."""
    task = task_kwargs["task"]
    objective = task_kwargs.get("objective", "simultaneous")
    configurations = objective == "simultaneous" and len(modules[0].modality_names) > 1
    unimodal_weight = task_kwargs.get("unimodal_weight", 1.0)
    rate = task_kwargs.get("dropout_rate", 0.3)
    linear = modules[0].linear
    names = [linear.names[i] for i in linear.index]
    fits = [_linear_data(t, names, objective, rate, p.seed) for t, p in zip(trains, plans)]
    held_out = [None if v is None else v.materialise(names) for v in valids]
    sizes = [0 if v is None else len(v) for v in valids]
    grid = LINEAR_C_GRID if sum(sizes) else (DEFAULT_LINEAR_C,)
    best_C, best_loss, best_states, worse = None, math.inf, None, 0
    for step, C in enumerate(sorted(grid)):  # strongest penalty first: warm starts
        states, pooled = [], 0.0
        for module, (inputs, present, y, weight), valid, size in zip(
            modules, fits, held_out, sizes
        ):
            l2 = task.linear_l2(C, weight, y)
            fit_linear_path(module.linear, inputs, present, y, weight, l2, configurations,
                            unimodal_weight, warm_start=step > 0, task=task)
            states.append((l2, deepcopy(module.linear.state_dict())))
            if size:
                pooled += size * linear_loss(module.linear, *valid, configurations,
                                             unimodal_weight, task)
        pooled = pooled / sum(sizes) if sum(sizes) else 0.0
        if best_states is None or pooled < best_loss:
            best_C, best_loss, best_states, worse = C, pooled, states, 0
        else:
            worse += 1
            if worse == 2:  # the held-out loss along the path is unimodal in practice
                break
    for module, (l2, state) in zip(modules, best_states):
        module.linear.load_state_dict(state)
        module.linear.l2 = l2
    return best_C


def _pretrain(modules, trains, valids, plans, kwargs, epochs, verbose, result) -> None:
    bar = progress_bar("contrastive", epochs * len(modules), verbose)
    try:
        for k, (module, train, valid, plan) in enumerate(zip(modules, trains, valids, plans)):
            # the held-out rows only measure the stage (loss and cosines), they do not steer it
            split = predefined_split(valid) if valid is not None and len(valid) > 1 else None
            net = ContrastiveNet(module, train_split=split, max_epochs=epochs,
                                 iterator_seed=plan.seed + 1, **kwargs)
            net.initialize()
            net.notify("on_train_begin", X=train, y=None)
            try:
                for epoch in range(1, epochs + 1):
                    net.fit_loop(train, None, epochs=1)
                    _check_finite_loss([net.history[-1, "train_loss"]],
                                       f"contrastive (member {k})", epoch)
                    bar.update(1)
            finally:
                result.history += _rows(net, "contrastive", k)
                net.leave_process_group()  # the task stage wraps the module anew
            net.notify("on_train_end", X=train, y=None)
    finally:
        bar.close()


@torch.no_grad()
def _valid_loss(net: FusionNet, valid: FusionDataset | None) -> float:
    """The validation loss of ``net`` on ``valid`` as skorch computes it per epoch."""
    if valid is None:
        return 0.0
    total, count = 0.0, 0
    for batch in net.get_iterator(valid, training=False):
        loss = net.validation_step(batch)["loss"]
        total += float(loss) * len(batch[1])
        count += len(batch[1])
    if net.distributed is not None:  # each rank saw its share of the held-out rows
        total, count = net.distributed.all_reduce_sum([total, count])
    return total / max(count, 1)


class _Epochs:
    """One net's epochs run step by step, as skorch's ``fit_loop`` runs them, so that
    the members of an ensemble all train an epoch before any epoch ends."""

    def __init__(self, net: FusionNet, train: FusionDataset) -> None:
        self.net = net
        net.check_training_readiness()
        dataset_train, dataset_valid = net.get_split_datasets(train, None)
        self.kwargs = {"dataset_train": dataset_train, "dataset_valid": dataset_valid}
        self.train = net.get_iterator(dataset_train, training=True)
        self.valid = (None if dataset_valid is None
                      else net.get_iterator(dataset_valid, training=False))

    def run(self) -> None:
        """Begin an epoch and run its training and validation passes."""
        net = self.net
        net.notify("on_epoch_begin", **self.kwargs)
        net.run_single_epoch(self.train, training=True, prefix="train",
                             step_fn=net.train_step)
        net.run_single_epoch(self.valid, training=False, prefix="valid",
                             step_fn=net.validation_step)

    def end(self) -> None:
        """End the epoch: skorch's epoch scores, then the callbacks."""
        self.net.notify("on_epoch_end", **self.kwargs)


def _epoch_mean(net: FusionNet, key: str) -> float:
    """The epoch's mean of a batch record (``train_loss``, ``valid_loss``, ...), weighted
    by batch size as skorch's epoch scores are."""
    agreed = net.history[-1].get("agreed", {})  # under DDP: the means of every rank
    if key in agreed:
        return float(agreed[key])
    size_key = key.split("_", 1)[0] + "_batch_size"
    pairs = [(b[size_key], b[key]) for b in net.history[-1, "batches"] if key in b]
    if not pairs:
        return math.nan
    sizes, values = zip(*pairs)
    return float(np.average(values, weights=sizes))


def _train_task(modules, trains, valids, plans, kwargs, max_epochs, patience, verbose,
                result, callbacks=()) -> None:
    nets, epochs = [], []
    for k, (module, train, valid, plan) in enumerate(zip(modules, trains, valids, plans)):
        net = FusionNet(
            module, max_epochs=max_epochs, iterator_seed=plan.seed + 2,
            train_split=predefined_split(valid) if valid is not None else None,
            callbacks=member_callbacks(callbacks, k, len(modules)) or None, **kwargs,
        )
        net.initialize()
        net.notify("on_train_begin", X=train, y=None)
        nets.append(net)
        epochs.append(_Epochs(net, train))
    result.nets = nets
    sizes = [0 if v is None else len(v) for v in valids]
    stopping = sum(sizes) > 0
    best, best_state, wait = math.inf, None, 0
    if stopping:
        # epoch 0: the networks as the stage found them (a constant or the linear
        # path, since the classifier head starts at zero) compete too
        start = _size_weighted_mean([_valid_loss(n, v) for n, v in zip(nets, valids)], sizes)
        if math.isfinite(start):
            best, result.best_epoch = start, 0
            best_state = [deepcopy(net.module_.state_dict()) for net in nets]
    stage = kwargs["task"].name
    bar = progress_bar(stage, max_epochs, verbose)
    try:
        for epoch in range(1, max_epochs + 1):
            for epoch_runner in epochs:
                epoch_runner.run()
            losses = [_epoch_mean(n, "train_loss") for n in nets]
            pooled = pooled_valid_loss(nets, sizes) if stopping else 0.0
            if stopping:
                full_key = nets[0].full_loss_key  # "valid_log_loss" for classes
                full_loss = pooled_valid_loss(nets, sizes, full_key)
                for net in nets:
                    net.history.record("pooled_valid_loss", pooled)
                    net.history.record(f"pooled_{full_key}", full_loss)
            # callbacks (and skorch's epoch scores) see every member's epoch and the pool
            for epoch_runner in epochs:
                epoch_runner.end()
            if best_state is not None and not all(math.isfinite(v) for v in [*losses, pooled]):
                result.diverged = (f"the {stage} loss became non-finite at epoch "
                                   f"{epoch}; the weights of epoch {result.best_epoch} are "
                                   "kept")
                break
            _check_finite_loss([*losses, pooled], stage, epoch)
            shown = {"train_loss": sum(losses) / len(nets)}
            if stopping:
                shown["valid_loss"] = pooled
                if pooled < best:  # NaN never counts as an improvement
                    best, wait, result.best_epoch = pooled, 0, epoch
                    best_state = [deepcopy(net.module_.state_dict()) for net in nets]
                else:
                    wait += 1
            bar.update(1, shown, epoch=epoch)
            if stopping and wait >= patience:
                break
    finally:
        bar.close()
        if best_state is not None:
            for net, state in zip(nets, best_state):
                net.module_.load_state_dict(state)
        for k, (net, train) in enumerate(zip(nets, trains)):
            net.notify("on_train_end", X=train, y=None)
            result.history += _rows(net, stage, k)
            net.history.clear()  # the per-epoch table is returned; keep pickles small
    if stopping and best_state is None:
        warnings.warn(
            "The validation loss was never finite; the weights of the last epoch are kept.",
            RuntimeWarning, stacklevel=user_stacklevel(),
        )
