"""Training on top of skorch: in-memory batch iteration, SMD and contrastive stages.

skorch supplies the loop, callbacks (early stopping with best weights restored,
progress) and the history. Two things are replaced: batches are sliced from
in-memory tensors in one indexing operation (no per-item collation), and the
losses see every configuration of the fusion head at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch
from skorch import NeuralNet
from torch import nn
from torch.utils.data import Dataset

from ._torch.losses import (
    contrastive_pairs,
    make_contrastive_loss,
    random_modality_mask,
    simultaneous_dropout_loss,
    weighted_cross_entropy,
)


class FusionDataset(Dataset):
    """In-memory tensors of one data set: inputs per modality, presence, labels, weights.

    A subset (:meth:`subset`) shares the tensors and keeps only the row numbers, so the
    members of an ensemble, each with its own training and held-out rows, hold no copy
    of the data.

    Parameters
    ----------
    inputs : mapping of str to Tensor
        One tensor per modality, samples on axis 0 (zeros where absent).
    present : Tensor (n, M) of bool
        Presence mask.
    y : Tensor (n,) of int64, default=None
        Class indices (None for prediction).
    weight : Tensor (n,) of float, default=None
        Per-sample training weights.
    rows : Tensor (k,) of int64, default=None
        The rows of the tensors that make up this data set; None is all of them.
    """

    def __init__(
        self,
        inputs: Mapping[str, torch.Tensor],
        present: torch.Tensor,
        y: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
    ) -> None:
        self.inputs = dict(inputs)
        self.present = present
        self.y = y
        self.weight = weight if weight is not None else torch.ones(len(present))
        self.rows = rows

    def __len__(self) -> int:
        return len(self.present) if self.rows is None else len(self.rows)

    def __getitem__(self, index):  # a batch at once: index is a tensor of indices
        return self.batch(index)

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        return index if self.rows is None else self.rows[index]

    def subset(self, index: torch.Tensor) -> FusionDataset:
        """The samples at ``index`` as a new data set sharing these tensors."""
        return FusionDataset(self.inputs, self.present, self.y, self.weight,
                             rows=self._rows(torch.as_tensor(index)))

    def materialise(self, names: list[str] | None = None) -> tuple[
        dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None, torch.Tensor
    ]:
        """Tensors of this data set's rows: ``(inputs, present, y, weight)``.

        Parameters
        ----------
        names : list of str, default=None
            The modalities whose inputs are wanted (None: all); the others are left out.
        """
        rows = slice(None) if self.rows is None else self.rows
        inputs = {k: v[rows] for k, v in self.inputs.items() if names is None or k in names}
        y = None if self.y is None else self.y[rows]
        return inputs, self.present[rows], y, self.weight[rows]

    def batch(self, index: torch.Tensor, device: torch.device | str = "cpu"):
        """``(X, y)`` for the samples at ``index``, moved to ``device``."""
        nb = torch.device(device).type == "cuda"
        rows = self._rows(index)
        X = {
            "inputs": {k: v[rows].to(device, non_blocking=nb) for k, v in self.inputs.items()},
            "present": self.present[rows].to(device, non_blocking=nb),
            "weight": self.weight[rows].to(device, non_blocking=nb),
        }
        y = None if self.y is None else self.y[rows].to(device, non_blocking=nb)
        return X, y


class BatchIterator:
    """Iterate over a :class:`FusionDataset` in batches sliced in one operation each.

    Parameters
    ----------
    dataset : FusionDataset
        The data.
    batch_size : int
        Batch size.
    shuffle : bool, default=False
        Shuffle at every pass (training).
    seed : int, default=None
        Seed of the shuffling generator.
    device : str or torch.device, default="cpu"
        Where batches are moved.
    drop_singleton : bool, default=False
        Merge a trailing batch of one sample into the previous one (training),
        since a batch of one gives no contrastive pairs.
    generator : torch.Generator, default=None
        Random source of the shuffling, shared between iterators so that successive
        passes draw new orders; None makes one from ``seed``.
    """

    def __init__(
        self,
        dataset: FusionDataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        drop_singleton: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.device = device
        self.drop_singleton = drop_singleton
        if generator is None and shuffle:
            generator = seeded_generator(seed)
        self.generator = generator

    def _bounds(self) -> list[tuple[int, int]]:
        n = len(self.dataset)
        bounds = [(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]
        if self.drop_singleton and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def __len__(self) -> int:
        return len(self._bounds())

    def __iter__(self) -> Iterator:
        n = len(self.dataset)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start, stop in self._bounds():
            index = order[start:stop] if order is not None else torch.arange(start, stop)
            yield self.dataset.batch(index, self.device)


def seeded_generator(seed: int | None = None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or from the global torch seed when None."""
    if seed is None:  # follow the global torch seed, like a DataLoader
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


class _InMemoryNet(NeuralNet):
    """A skorch net fed by :class:`BatchIterator` over a :class:`FusionDataset`.

    The shuffling generator is made once per :meth:`initialize`, so that a net trained
    one epoch per ``fit_loop`` call (the members of an ensemble, in lockstep) draws a
    new batch order every epoch.
    """

    def initialize(self):
        super().initialize()
        self.shuffle_generator_ = seeded_generator(getattr(self, "iterator_seed", None))
        return self

    def __getstate__(self):
        # a trained net needs no shuffling, and torch < 2.3 cannot pickle a Generator
        state = super().__getstate__()
        state.pop("shuffle_generator_", None)
        return state

    def get_iterator(self, dataset, training=False):
        return BatchIterator(
            dataset,
            batch_size=self.batch_size if self.batch_size > 0 else max(len(dataset), 1),
            shuffle=training,
            device=self.device,
            drop_singleton=training,
            generator=getattr(self, "shuffle_generator_", None) if training else None,
        )

    def evaluation_step(self, batch, training=False):
        # prediction: class logits of the full input
        self.check_is_fitted()
        Xi, _ = batch
        with torch.set_grad_enabled(training):
            self._set_training(training)
            return self.module_(Xi["inputs"], Xi["present"])


class FusionNet(_InMemoryNet):
    """The task stage: cross-entropy with simultaneous, random or no modality dropout.

    Parameters
    ----------
    module : MultimodalFusionNet
        The network (an instance; trained in place).
    objective : {"simultaneous", "random", "none"}, default="simultaneous"
        Modality dropout scheme.
    unimodal_weight : float, default=1.0
        Weight of the single-modality terms ("simultaneous").
    dropout_rate : float, default=0.3
        Drop probability per modality ("random").
    iterator_seed : int, default=None
        Seed of the batch shuffling.
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(
        self,
        module,
        *,
        objective="simultaneous",
        unimodal_weight=1.0,
        dropout_rate=0.3,
        iterator_seed=None,
        criterion=nn.CrossEntropyLoss,
        **kwargs,
    ):
        super().__init__(module, criterion=criterion, **kwargs)
        self.objective = objective
        self.unimodal_weight = unimodal_weight
        self.dropout_rate = dropout_rate
        self.iterator_seed = iterator_seed

    def _uses_configurations(self) -> bool:
        return self.objective == "simultaneous" and len(self.module_.modality_names) > 1

    def infer(self, x, **fit_params):
        module = self.module_
        present = x["present"]
        if self._uses_configurations():
            return module.configuration_logits(x["inputs"], present)
        keep = present
        if self.objective == "random" and module.training:
            keep = random_modality_mask(present, self.dropout_rate)
        return module.logits(x["inputs"], present, keep), None

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, single = y_pred
        weight = X["weight"]
        if single is None:
            loss = weighted_cross_entropy(logits, y_true, weight)
        else:
            loss = simultaneous_dropout_loss(
                logits, single, y_true, X["present"], weight, self.unimodal_weight
            )
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
    contrastive : {"fused", "unimodal"}, default="fused"
        Whether the fused view takes part in the pairs.
    loss : {"balanced", "paper"}, default="balanced"
        Setting of the sigmoid loss (see :func:`make_contrastive_loss`).
    iterator_seed : int, default=None
        Seed of the batch shuffling.
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
        self, module, *, contrastive="fused", loss="balanced", iterator_seed=None,
        criterion=make_contrastive_loss, **kwargs,
    ):
        super().__init__(module, criterion=criterion, **kwargs)
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
        for training, prefix in ((True, ""), (False, "valid_")):
            sums = self.pair_sums_[training].tolist()
            if training or sums[1] + sums[3] > 0:
                same = sums[0] / sums[1] if sums[1] else math.nan
                other = sums[2] / sums[3] if sums[3] else math.nan
                self.history.record(f"{prefix}same_class_cosine", same)
                self.history.record(f"{prefix}diff_class_cosine", other)

    def infer(self, x, **fit_params):
        module = self.module_
        present = x["present"]
        full, single = module.fuse_configurations(module.encode(x["inputs"], present), present)
        views = module.projection(torch.cat([single, full.unsqueeze(0)]))
        view_present = torch.cat([present.T, torch.ones_like(present[:, :1]).T])
        return views, view_present

    def get_loss(self, y_pred, y_true, X=None, training=False):
        views, view_present = y_pred
        pairs = contrastive_pairs(views.shape[0] - 1, self.contrastive)
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
