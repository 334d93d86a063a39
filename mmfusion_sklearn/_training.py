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
from skorch.callbacks import Callback
from torch import nn
from torch.utils.data import Dataset

from ._torch.losses import (
    SigmoidContrastiveLoss,
    contrastive_pairs,
    random_modality_mask,
    simultaneous_dropout_loss,
    weighted_cross_entropy,
)


class FusionDataset(Dataset):
    """In-memory tensors of one data set: inputs per modality, presence, labels, weights.

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
    """

    def __init__(
        self,
        inputs: Mapping[str, torch.Tensor],
        present: torch.Tensor,
        y: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
    ) -> None:
        self.inputs = dict(inputs)
        self.present = present
        self.y = y
        self.weight = weight if weight is not None else torch.ones(len(present))

    def __len__(self) -> int:
        return len(self.present)

    def __getitem__(self, index):  # a batch at once: index is a tensor of indices
        return self.batch(index)

    def subset(self, index: torch.Tensor) -> FusionDataset:
        """The samples at ``index`` as a new data set."""
        return FusionDataset(
            {k: v[index] for k, v in self.inputs.items()},
            self.present[index],
            None if self.y is None else self.y[index],
            self.weight[index],
        )

    def batch(self, index: torch.Tensor, device: torch.device | str = "cpu"):
        """``(X, y)`` for the samples at ``index``, moved to ``device``."""
        nb = torch.device(device).type == "cuda"
        X = {
            "inputs": {k: v[index].to(device, non_blocking=nb) for k, v in self.inputs.items()},
            "present": self.present[index].to(device, non_blocking=nb),
            "weight": self.weight[index].to(device, non_blocking=nb),
        }
        y = None if self.y is None else self.y[index].to(device, non_blocking=nb)
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
    """

    def __init__(
        self,
        dataset: FusionDataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        drop_singleton: bool = False,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.device = device
        self.drop_singleton = drop_singleton
        if seed is None:  # follow the global torch seed, like a DataLoader
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))

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


class _InMemoryNet(NeuralNet):
    """A skorch net fed by :class:`BatchIterator` over a :class:`FusionDataset`."""

    def get_iterator(self, dataset, training=False):
        return BatchIterator(
            dataset,
            batch_size=self.batch_size if self.batch_size > 0 else max(len(dataset), 1),
            shuffle=training,
            seed=getattr(self, "iterator_seed", None),
            device=self.device,
            drop_singleton=training,
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
        features = module.encode(x["inputs"], present)
        if self._uses_configurations():
            full, single = module.fuse_configurations(features, present)
            return module.classifier(full), module.classifier(single)
        if self.objective == "random" and module.training:
            present = random_modality_mask(present, self.dropout_rate)
        return module.classifier(module.fuse(features, present)), None

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, single = y_pred
        weight = X["weight"]
        if single is None:
            return weighted_cross_entropy(logits, y_true, weight)
        return simultaneous_dropout_loss(
            logits, single, y_true, X["present"], weight, self.unimodal_weight
        )


class ContrastiveNet(_InMemoryNet):
    """The contrastive stage: sigmoid loss over unimodal and fused projections.

    Parameters
    ----------
    module : MultimodalFusionNet
        The network (an instance; its encoders, tokens, fusion and projection head are
        trained in place, its classifier head is left untouched).
    contrastive : {"fused", "unimodal"}, default="fused"
        Whether the fused view takes part in the pairs.
    iterator_seed : int, default=None
        Seed of the batch shuffling.
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(
        self, module, *, contrastive="fused", iterator_seed=None,
        criterion=SigmoidContrastiveLoss, **kwargs,
    ):
        super().__init__(module, criterion=criterion, **kwargs)
        self.contrastive = contrastive
        self.iterator_seed = iterator_seed

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
        return self.criterion_(views, view_present, y_true, pairs)


class EpochProgressBar(Callback):
    """A tqdm progress bar over epochs showing the latest losses.

    Parameters
    ----------
    desc : str
        Label of the bar (the training stage).
    total : int
        Number of epochs planned.
    """

    def __init__(self, desc: str, total: int) -> None:
        self.desc = desc
        self.total = total

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=self.total, desc=self.desc, unit="epoch", leave=False)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        shown = {k: f"{row[k]:.4f}" for k in ("train_loss", "valid_loss") if k in row
                 and isinstance(row[k], float) and math.isfinite(row[k])}
        self.bar_.set_postfix(shown, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
        del self.bar_  # a tqdm bar does not pickle
