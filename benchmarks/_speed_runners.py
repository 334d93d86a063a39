"""The three ways of training the speed benchmark's network: ours, a raw loop, plain skorch.

Each runner trains once and predicts the training samples once, measured by
:func:`~benchmarks._speed_measure.measure`:

``ours``
    :class:`~mmfusion_sklearn.MultimodalFusionClassifier` end to end from the
    user's numpy arrays.
``raw``
    A hand-written PyTorch loop training the identical module on the
    estimator's own preprocessed in-memory tensors.
``skorch``
    A plain :class:`skorch.NeuralNetClassifier` on that module, fed by skorch's
    default ``DataLoader``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._speed_data import BenchData
from ._speed_measure import EpochLog, Result, measure

BATCH_SIZE = 128
LR = 1e-3
WEIGHT_DECAY = 1e-4
MODALITIES = {"image": "image", "table": "tabular"}
METHODS = (("ours", "none"), ("raw", "none"), ("skorch", "none"),
           ("ours", "simultaneous"), ("raw", "simultaneous"),
           ("ours+linear", "simultaneous"))
#: ``ours+linear`` = ours with its default linear path on: not the network the raw loop
#: trains, so it is compared with ``ours`` (its extra cost is reported as a ratio).


# ---------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------
def _probed_classifier(log: EpochLog, **params: Any) -> Any:
    """Our estimator, with :meth:`EpochLog.callback` added to its skorch callbacks.

    It relies on the private ``_net_kwargs`` (the skorch arguments of every stage's
    nets; the contrastive stage is off here).
    """
    from mmfusion_sklearn import MultimodalFusionClassifier

    class ProbedClassifier(MultimodalFusionClassifier):
        def _net_kwargs(self) -> dict[str, Any]:
            kwargs = super()._net_kwargs()
            kwargs["callbacks"] = [("epoch_probe", log.callback())]
            return kwargs

    return ProbedClassifier(**params)


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
        Contrastive stage, early stopping and the linear path off (so that ours and the
        raw loop train the same network: one, since there is no early stopping), batch
        128, CPU.
    """
    return {
        "modalities": dict(MODALITIES),
        "linear_path": False,
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
    data: BenchData, n: int, objective: str, epochs: int, seed: int,
    linear_path: bool = False,
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
    linear_path : bool, default=False
        The estimator's linear path (its default; off for the comparison with raw).

    Returns
    -------
    result : Result
        The measurements.
    clf : MultimodalFusionClassifier
        The fitted estimator.
    """
    X, y = data.X(n), data.y[:n]
    log = EpochLog()
    params = {**ours_params(objective, epochs, seed), "linear_path": linear_path}
    clf = _probed_classifier(log, **params)
    method = "ours+linear" if linear_path else "ours"
    result = measure(method, objective, n, epochs, log,
                     fit=lambda: clf.fit(X, y), predict_proba=lambda: clf.predict_proba(X))
    return result, clf


# ---------------------------------------------------------------------------
# what raw and skorch share with ours: its tensors and its architecture
# ---------------------------------------------------------------------------
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

    def rows(self, index: torch.Tensor | slice) -> dict[str, torch.Tensor]:
        """Return the inputs of some samples, one indexing operation per modality.

        Parameters
        ----------
        index : Tensor of int64 or slice
            The samples.

        Returns
        -------
        dict of str to Tensor
            One batch per modality.
        """
        return {k: v[index] for k, v in self.inputs.items()}


@dataclass
class Reference:
    """Our fitted estimator at one size and its tensors: what raw and skorch reuse.

    Parameters
    ----------
    clf : MultimodalFusionClassifier
        Fitted on the first ``n`` samples.
    tensors : Tensors
        Its preprocessed model arrays of those samples.
    """

    clf: Any
    tensors: Tensors

    @classmethod
    def from_fit(cls, clf: Any, data: BenchData, n: int) -> Reference:
        """Take the fitted estimator's model arrays of the first ``n`` samples, as tensors.

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
        Reference
            With what the estimator's own training loop slices its batches from.
        """
        from mmfusion_sklearn import MultimodalData

        arrays, present = clf._model_arrays(MultimodalData(data.X(n)))
        return cls(clf, Tensors(
            {k: torch.from_numpy(v) for k, v in arrays.items()},
            torch.from_numpy(present),
            torch.from_numpy(data.y[:n].astype(np.int64)),
        ))

    def fresh_module(self, seed: int) -> nn.Module:
        """A newly initialised copy of the fitted estimator's network architecture.

        Parameters
        ----------
        seed : int
            Seed of the weight initialisation.

        Returns
        -------
        MultimodalFusionNet
            Same class, encoders and sizes as ``clf._net.module_``.
        """
        torch.manual_seed(seed)
        module = self.clf._build_network(self.clf._input_shapes)
        fitted = self.clf._nets[0].module_
        if type(module) is not type(fitted) or repr(module) != repr(fitted):
            raise RuntimeError("the rebuilt module differs from the estimator's")
        return module


# ---------------------------------------------------------------------------
# raw
# ---------------------------------------------------------------------------
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


def _raw_train(module: nn.Module, tensors: Tensors, objective: str, epochs: int,
               generator: torch.Generator, log: EpochLog) -> None:
    """The hand-written training loop: shuffled in-memory batches, AdamW."""
    n = len(tensors.y)
    optimizer = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    module.train()
    for _ in range(epochs):
        log.begin()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, BATCH_SIZE):
            index = order[start : start + BATCH_SIZE]
            loss = raw_loss(module, tensors.rows(index), tensors.present[index],
                            tensors.y[index], objective)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        log.end()


def _raw_predict_proba(module: nn.Module, tensors: Tensors) -> np.ndarray:
    """Class probabilities of every sample, batch by batch, without autograd."""
    module.eval()
    with torch.inference_mode():
        return torch.cat([
            torch.softmax(module(tensors.rows(batch), tensors.present[batch]), dim=1)
            for batch in (slice(start, start + BATCH_SIZE)
                          for start in range(0, len(tensors.y), BATCH_SIZE))
        ]).numpy()


def bench_raw(reference: Reference, objective: str, epochs: int, seed: int) -> Result:
    """Train a fresh network with a hand-written loop over in-memory batches; predict.

    Parameters
    ----------
    reference : Reference
        Gives the network (a fresh copy) and the tensors it trains on (the same
        memory, not copies).
    objective : {"none", "simultaneous"}
        The loss, as written out by :func:`raw_loss`.
    epochs : int
        Passes over the shuffled tensors.
    seed : int
        Seed of the weights and of the batch order.

    Returns
    -------
    Result
        The measurements.
    """
    module, tensors = reference.fresh_module(seed), reference.tensors
    log = EpochLog()
    generator = torch.Generator().manual_seed(seed)
    return measure(
        "raw", objective, len(tensors.y), epochs, log,
        fit=lambda: _raw_train(module, tensors, objective, epochs, generator, log),
        predict_proba=lambda: _raw_predict_proba(module, tensors),
    )


# ---------------------------------------------------------------------------
# skorch
# ---------------------------------------------------------------------------
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


def bench_skorch(reference: Reference, epochs: int, seed: int) -> Result:
    """Train a fresh network with a plain :class:`skorch.NeuralNetClassifier`; predict.

    skorch's default ``DataLoader`` (no worker processes) fetches the samples one
    by one from a dict of arrays and collates each batch.

    Parameters
    ----------
    reference : Reference
        Gives the network (a fresh copy) and the tensors, handed to skorch as
        numpy arrays (views of the same memory).
    epochs : int
        skorch's ``max_epochs``.
    seed : int
        Seed of the weights and of skorch's shuffling.

    Returns
    -------
    Result
        The measurements (``modality_dropout="none"`` objective).
    """
    from skorch import NeuralNetClassifier

    module = reference.fresh_module(seed)
    X = {k: v.numpy() for k, v in reference.tensors.inputs.items()}
    y = reference.tensors.y.numpy()
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
    return measure("skorch", "none", len(y), epochs, log,
                   fit=lambda: net.fit(X, y), predict_proba=lambda: net.predict_proba(X))


# ---------------------------------------------------------------------------
# any of them
# ---------------------------------------------------------------------------
def run_method(
    method: str, objective: str, data: BenchData, n: int, epochs: int, seed: int,
    reference: Reference | None = None,
) -> tuple[Result, Any]:
    """Run one method once.

    Parameters
    ----------
    method : {"ours", "ours+linear", "raw", "skorch"}
        Which runner.
    objective : {"none", "simultaneous"}
        Modality dropout (skorch: ``"none"`` only).
    data : BenchData
        The data (``ours`` uses its first ``n`` samples).
    n : int
        Samples.
    epochs : int
        Epochs.
    seed : int
        Seed of weights and batch order.
    reference : Reference, default=None
        Our fitted estimator at this size; required by raw and skorch.

    Returns
    -------
    result : Result
        The measurements.
    clf : MultimodalFusionClassifier or None
        The fitted estimator for ``ours``, else None.
    """
    if method == "ours":
        return bench_ours(data, n, objective, epochs, seed)
    if method == "ours+linear":
        result, _ = bench_ours(data, n, objective, epochs, seed, linear_path=True)
        return result, None
    if reference is None:
        raise ValueError(f"method {method!r} needs the reference estimator of size {n}.")
    if method == "raw":
        return bench_raw(reference, objective, epochs, seed), None
    return bench_skorch(reference, epochs, seed), None
