"""Training on top of skorch: the task stage (SMD) and the contrastive stage.

skorch supplies the loop, callbacks (early stopping with best weights restored,
progress) and the history. Two things are replaced: batches come from
:class:`~mmfusion_sklearn._training.batches.BatchIterator` (sliced from in-memory
tensors in one indexing operation, no per-item collation), and the losses see every
configuration of the fusion head at once.
"""

from __future__ import annotations

import gc
import math
from typing import Any

import torch
from skorch import NeuralNet
from torch import nn

from .._torch.losses import contrastive_pairs, make_contrastive_loss, random_modality_mask
from .._torch.tasks import ClassificationTask, Task
from .batches import BatchIterator, seeded_generator
from .distributed import DistributedContext
from .runtime import PRECISIONS, autocast, make_grad_scaler


def agree_on_pass(history: Any, prefix: str, keys: tuple[str, ...],
                  distributed: DistributedContext) -> None:
    """Make the batch records ``keys`` of the pass just run the same on every process.

    Each process saw its own share of the rows; the batch-size weighted mean of each
    record over all processes' batches replaces every local record, so that skorch's
    epoch scores, the pooled losses and every decision taken from them (early
    stopping, divergence) agree on all ranks. A process that had no batch of this pass
    gets one record holding the means.
    """
    size_key = f"{prefix}_batch_size"
    batches = [b for b in history[-1]["batches"] if size_key in b]
    local = []
    for key in keys:
        pairs = [(b[size_key], b[key]) for b in batches if key in b]
        local += [float(sum(s * v for s, v in pairs)), float(sum(s for s, _ in pairs))]
    totals = distributed.all_reduce_sum(local)
    means = {key: totals[2 * i] / totals[2 * i + 1] for i, key in enumerate(keys)
             if totals[2 * i + 1] > 0}
    if not means:
        return
    if not batches:
        history[-1]["batches"].append({size_key: int(max(totals[1::2]))})
        batches = history[-1]["batches"][-1:]
    for batch in batches:
        batch.update(means)
    # the epoch's means themselves: averaging equal batch records again over this
    # rank's own batch sizes could change their last bit, and ranks would disagree
    agreed = dict(history[-1].get("agreed", {}))
    agreed.update(means)
    history.record("agreed", agreed)


def _as_float32(value):
    """Outputs of a mixed-precision forward pass back in float32, for the losses."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_as_float32(v) for v in value)
    return value


class _InMemoryNet(NeuralNet):
    """A skorch net fed by :class:`BatchIterator` over a :class:`FusionDataset`.

    The shuffling generator is made once per :meth:`initialize`, so that a net trained
    one epoch per ``fit_loop`` call (the members of an ensemble, in lockstep) draws a
    new batch order every epoch. ``precision`` runs forward passes under
    ``torch.autocast`` (losses in float32; a gradient scaler for float16), and
    ``num_workers`` DataLoader workers read file-backed modalities.
    """

    def _set_data_options(self, num_workers: int, precision: str,
                          distributed: DistributedContext | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {list(PRECISIONS)}. Got {precision!r} instead."
            )
        self.num_workers = num_workers
        self.precision = precision
        self.distributed = distributed

    def initialize(self):
        super().initialize()
        seed = getattr(self, "iterator_seed", None)
        self.shuffle_generator_ = seeded_generator(seed)
        self.augment_generator_ = seeded_generator(None if seed is None else seed + 7919)
        self.grad_scaler_ = make_grad_scaler(self.device, self.precision)
        # DDP copies rank 0's weights to every rank here
        self._ddp = None if self.distributed is None else self.distributed.wrap(self.module_)
        return self

    def leave_process_group(self) -> None:
        """Drop DDP after training: prediction runs in each process alone."""
        if getattr(self, "_ddp", None) is not None:
            self._ddp = None
            # a DDP wrapper left for the garbage collector would keep its gradient
            # hooks on the module, which the next stage wraps again
            gc.collect()
        self.distributed = None

    def __getstate__(self):
        # a trained net needs no shuffling, and torch < 2.3 cannot pickle a Generator;
        # a process group cannot be pickled at all
        state = super().__getstate__()
        for key in ("shuffle_generator_", "augment_generator_", "grad_scaler_", "_ddp"):
            state.pop(key, None)
        state["distributed"] = None
        return state

    def _call(self, method: str, *args: Any) -> Any:
        """``self.module_.<method>(*args)``; in training under DDP through the DDP
        wrapper, which averages the gradients over the processes."""
        ddp = getattr(self, "_ddp", None)
        if ddp is not None and self.module_.training:
            return ddp(method, *args)
        return getattr(self.module_, method)(*args)

    #: Batch records of each pass that are averaged over the processes under DDP.
    pass_records = {"train": ("train_loss",), "valid": ("valid_loss",)}

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        if iterator is not None and self.distributed is not None:
            agree_on_pass(self.history, prefix, self.pass_records.get(prefix, ()),
                          self.distributed)

    def get_iterator(self, dataset, training=False):
        return BatchIterator(
            dataset,
            batch_size=self.batch_size if self.batch_size > 0 else max(len(dataset), 1),
            shuffle=training,
            device=self.device,
            drop_singleton=training,
            generator=getattr(self, "shuffle_generator_", None) if training else None,
            num_workers=self.num_workers,
            augment_generator=getattr(self, "augment_generator_", None) if training else None,
            distributed=getattr(self, "distributed", None),
        )

    def _forward(self, Xi, **fit_params):
        with autocast(self.device, self.precision):
            y_pred = self.infer(Xi, **fit_params)
        return _as_float32(y_pred)

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = batch
        y_pred = self._forward(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler = getattr(self, "grad_scaler_", None)
        (loss if scaler is None else scaler.scale(loss)).backward()
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super().train_step(batch, **fit_params)
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        scaler.step(self.optimizer_)  # skips the step when gradients overflowed
        scaler.update()
        return step

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        Xi, yi = batch
        with torch.no_grad():
            y_pred = self._forward(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def evaluation_step(self, batch, training=False):
        # prediction: class logits of the full input
        self.check_is_fitted()
        Xi, _ = batch
        with torch.set_grad_enabled(training), autocast(self.device, self.precision):
            self._set_training(training)
            return self.module_(Xi["inputs"], Xi["present"]).float()


class FusionNet(_InMemoryNet):
    """The task stage: the task's loss with simultaneous, random or no modality dropout.

    Parameters
    ----------
    module : MultimodalFusionNet
        The network (an instance; trained in place).
    task : Task, default=None
        The task's loss (:mod:`mmfusion_sklearn._torch.tasks`); None is classification
        with as many classes as the module has outputs.
    objective : {"simultaneous", "random", "none"}, default="simultaneous"
        Modality dropout scheme.
    unimodal_weight : float, default=1.0
        Weight of the single-modality terms ("simultaneous").
    dropout_rate : float, default=0.3
        Drop probability per modality ("random").
    iterator_seed : int, default=None
        Seed of the batch shuffling.
    num_workers : int, default=0
        DataLoader workers reading file-backed modalities.
    precision : {"32", "bf16-mixed", "16-mixed"}, default="32"
        Autocast dtype of the forward passes.
    distributed : DistributedContext, default=None
        Train under DDP in this process group (see :mod:`.distributed`).
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(
        self,
        module,
        *,
        task=None,
        objective="simultaneous",
        unimodal_weight=1.0,
        dropout_rate=0.3,
        iterator_seed=None,
        num_workers=0,
        precision="32",
        distributed=None,
        criterion=nn.CrossEntropyLoss,
        **kwargs,
    ):
        super().__init__(module, criterion=criterion, **kwargs)
        self._set_data_options(num_workers, precision, distributed)
        self.task = task
        self.objective = objective
        self.unimodal_weight = unimodal_weight
        self.dropout_rate = dropout_rate
        self.iterator_seed = iterator_seed

    @property
    def task_(self) -> Task:
        """The task, classification by default (nets pickled before tasks existed)."""
        task = getattr(self, "task", None)
        if task is None:
            task = ClassificationTask(self.module_.classifier.net[-1].out_features)
        return task

    @property
    def full_loss_key(self) -> str:
        """The batch record of the full input's held-out loss (``valid_log_loss`` for
        classes)."""
        return f"valid_{self.task_.full_loss_name}"

    @property
    def pass_records(self) -> dict[str, tuple[str, ...]]:
        return {"train": ("train_loss",), "valid": ("valid_loss", self.full_loss_key)}

    def _uses_configurations(self) -> bool:
        return self.objective == "simultaneous" and len(self.module_.modality_names) > 1

    def infer(self, x, **fit_params):
        module = self.module_
        present = x["present"]
        if self._uses_configurations():
            return self._call("configuration_logits", x["inputs"], present)
        keep = present
        if self.objective == "random" and module.training:
            keep = random_modality_mask(present, self.dropout_rate)
        return self._call("logits", x["inputs"], present, keep), None

    def validation_step(self, batch, **fit_params):
        step = super().validation_step(batch, **fit_params)
        if len(self.history):  # in an epoch (not the starting point's measurement)
            # the loss of the full input: unlike the objective, its scale does not
            # depend on unimodal_weight or on the number of modalities
            Xi, yi = batch
            full = self.task_.loss(step["y_pred"][0], yi, Xi["weight"])
            self.history.record_batch(self.full_loss_key, float(full))
        return step

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, single = y_pred
        weight = X["weight"]
        task = self.task_
        if single is None:
            loss = task.loss(logits, y_true, weight)
        else:
            loss = task.smd_loss(logits, single, y_true, X["present"], weight,
                                 self.unimodal_weight)
        linear = self.module_.linear
        if training and len(linear) and linear.l2 > 0:
            # the ridge penalty the linear path was fitted with keeps anchoring it
            loss = loss + linear.l2 * linear.squared_norm()
        return loss


class ContrastiveNet(_InMemoryNet):
    """The contrastive stage: sigmoid loss over unimodal and fused projections.

    Parameters
    ----------
    module : MultimodalFusionNet
        The network (an instance; its encoders, tokens, fusion and projection head are
        trained in place, its classifier head is left untouched).
    task : Task, default=None
        Says which pairs are positives (:meth:`Task.contrastive_labels`): samples of
        one class, or (without classes) the views of one sample. None: the labels as
        given.
    contrastive : {"fused", "unimodal"}, default="fused"
        Whether the fused view takes part in the pairs.
    loss : {"balanced", "paper"}, default="balanced"
        Setting of the sigmoid loss (see :func:`make_contrastive_loss`).
    iterator_seed : int, default=None
        Seed of the batch shuffling.
    num_workers : int, default=0
        DataLoader workers reading file-backed modalities.
    precision : {"32", "bf16-mixed", "16-mixed"}, default="32"
        Autocast dtype of the forward passes.
    distributed : DistributedContext, default=None
        Train under DDP in this process group (see :mod:`.distributed`).
    **kwargs
        Passed to :class:`skorch.NeuralNet`.

    Notes
    -----
    Each epoch's history row also holds ``same_class_cosine`` and
    ``diff_class_cosine``: the mean cosine between the projections of two different
    training samples of the same class, and of different classes. A stage that learns
    has a loss below ln 2 and the first clearly above the second; a collapsed one has
    both near 1.
    """

    def __init__(
        self, module, *, task=None, contrastive="fused", loss="balanced", iterator_seed=None,
        num_workers=0, precision="32", distributed=None, criterion=make_contrastive_loss,
        **kwargs,
    ):
        super().__init__(module, criterion=criterion, **kwargs)
        self._set_data_options(num_workers, precision, distributed)
        self.task = task
        self.contrastive = contrastive
        self.loss = loss
        self.iterator_seed = iterator_seed

    def initialize_criterion(self):
        # skorch moves the criterion to the device afterwards
        self.criterion_ = self.criterion(**{"kind": self.loss, **self.get_params_for("criterion")})
        return self

    def on_epoch_begin(self, net, **kwargs):
        super().on_epoch_begin(net, **kwargs)
        self.criterion_.reset_pair_stats()
        self.pair_sums_ = {True: torch.zeros(4, dtype=torch.float64),
                           False: torch.zeros(4, dtype=torch.float64)}

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        if self.distributed is not None:  # the cosines of every process's pairs
            for training in (True, False):
                self.pair_sums_[training] = self.distributed.all_reduce_tensor(
                    self.pair_sums_[training])
        for training, prefix in ((True, ""), (False, "valid_")):
            sums = self.pair_sums_[training].tolist()
            if training or sums[1] + sums[3] > 0:
                same = sums[0] / sums[1] if sums[1] else math.nan
                other = sums[2] / sums[3] if sums[3] else math.nan
                self.history.record(f"{prefix}same_class_cosine", same)
                self.history.record(f"{prefix}diff_class_cosine", other)

    def infer(self, x, **fit_params):
        return self._call("projected_views", x["inputs"], x["present"])

    def get_loss(self, y_pred, y_true, X=None, training=False):
        views, view_present = y_pred
        pairs = contrastive_pairs(views.shape[0] - 1, self.contrastive)
        if self.task is not None:  # the positives: same class, or same sample
            y_true = self.task.contrastive_labels(y_true)
        loss = self.criterion_(views, view_present, y_true, pairs)
        # pair statistics of training and validation batches are kept apart
        self.pair_sums_[bool(training)] += self.criterion_.pair_stats.cpu()
        self.criterion_.reset_pair_stats()
        return loss


class EpochProgress:
    """A tqdm bar over epochs showing the latest losses; with ``verbose >= 2`` also a line
    per epoch.

    Parameters
    ----------
    desc : str
        Label of the bar (the training stage).
    total : int
        Number of epochs planned.
    verbose : int
        0: nothing is shown; 1: the bar; 2: the bar and a line per epoch.
    """

    def __init__(self, desc: str, total: int, verbose: int) -> None:
        self.desc = desc
        self.verbose = verbose
        self.bar = None
        if verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=False)

    def update(self, n: int = 1, losses: dict[str, float] | None = None,
               epoch: int | None = None) -> None:
        """Advance by ``n`` steps and show ``losses``."""
        if self.bar is None:
            return
        shown = {k: f"{v:.4f}" for k, v in (losses or {}).items() if math.isfinite(v)}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(n)
        if self.verbose >= 2 and epoch is not None:
            text = "  ".join(f"{k} {v}" for k, v in shown.items())
            self.bar.write(f"{self.desc} epoch {epoch:4d}  {text}")

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress_bar(desc: str, total: int, verbose: int) -> EpochProgress:
    """An :class:`EpochProgress` (a no-op when ``verbose`` is 0)."""
    return EpochProgress(desc, total, verbose)
