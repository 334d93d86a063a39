"""The three ways of training the speed benchmark's network: ours, a raw loop, plain skorch.

Each runner trains once and predicts the training samples once, measured by
:func:`~benchmarks._speed_measure.measure`:

``ours``
    :class:`~mmfusion_sklearn.MultimodalFusionClassifier` end to end from the
    user's numpy arrays; with the setting :data:`REGRESSOR`,
    :class:`~mmfusion_sklearn.MultimodalFusionRegressor` on a continuous target.
``raw``
    A hand-written PyTorch loop training the identical module on the
    estimator's own preprocessed in-memory tensors (cross-entropy for the
    classifier, squared error on the standardised target for the regressor).
``skorch``
    A plain :class:`skorch.NeuralNetClassifier` on that module, fed by skorch's
    default ``DataLoader``.

The second item of every :data:`METHODS` entry is the *setting*: the classifier's
``modality_dropout`` (``"none"`` or ``"simultaneous"``), or :data:`REGRESSOR`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._speed_data import BenchData
from ._speed_measure import N_CLASSES, EpochLog, Result, measure

BATCH_SIZE = 128
LR = 1e-3
WEIGHT_DECAY = 1e-4
MODALITIES = {"image": "image", "table": "tabular"}
#: The setting of the regressor rows: :class:`~mmfusion_sklearn.MultimodalFusionRegressor`
#: with ``modality_dropout="none"`` (plain squared error on the standardised target).
REGRESSOR = "regressor"
METHODS = (("ours", "none"), ("raw", "none"), ("skorch", "none"),
           ("ours", "simultaneous"), ("raw", "simultaneous"),
           ("ours+linear", "simultaneous"),
           ("ours", REGRESSOR), ("raw", REGRESSOR))
#: ``ours+linear`` = ours with its default linear path on: not the network the raw loop
#: trains, so it is compared with ``ours`` (its extra cost is reported as a ratio).


# ---------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------
def is_regressor(setting: str) -> bool:
    """Whether a setting (the second item of a :data:`METHODS` entry) is the regressor.

    Parameters
    ----------
    setting : str
        ``"none"``, ``"simultaneous"`` or :data:`REGRESSOR`.

    Returns
    -------
    bool
    """
    return setting == REGRESSOR


def _probed_estimator(log: EpochLog, setting: str, **params: Any) -> Any:
    """Our estimator with :meth:`EpochLog.callback` as its (public) ``callbacks``.

    The estimator hands its ``callbacks`` to the task stage's net of every member (a
    deep copy each: the probe's class closes over ``log``, so the copy records into the
    same log); skorch notifies them after its own default callbacks, at the start and
    the end of every epoch. Nothing of the estimator is overridden.
    """
    from mmfusion_sklearn import MultimodalFusionClassifier, MultimodalFusionRegressor

    _preload_callback_checks()
    cls = MultimodalFusionRegressor if is_regressor(setting) else MultimodalFusionClassifier
    return cls(**params, callbacks=[("epoch_probe", log.callback())])


def _preload_callback_checks() -> None:
    """Import what the estimator's callback check imports on its first call (Optuna's
    trial class, to recognise pruning callbacks), outside the measured fit: a user's
    process pays it once, and only because of the probe here."""
    try:
        import optuna.trial  # noqa: F401
    except ImportError:  # pragma: no cover - optuna is a dependency of the package
        pass


def ours_params(objective: str, epochs: int, seed: int) -> dict[str, Any]:
    """Return the parameters of our estimator in this benchmark.

    Parameters
    ----------
    objective : {"none", "simultaneous", "regressor"}
        ``modality_dropout`` of the classifier; ``"regressor"`` is the regressor
        with ``modality_dropout="none"``.
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
        "modality_dropout": "none" if is_regressor(objective) else objective,
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

    The classifier predicts with ``predict_proba`` (labels ``data.y``), the regressor
    with ``predict`` (target ``data.target``).

    Parameters
    ----------
    data : BenchData
        The data (first ``n`` samples used).
    n : int
        Samples.
    objective : {"none", "simultaneous", "regressor"}
        Modality dropout, or the regressor.
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
    clf : MultimodalFusionClassifier or MultimodalFusionRegressor
        The fitted estimator.
    """
    regressor = is_regressor(objective)
    X, y = data.X(n), (data.target if regressor else data.y)[:n]
    log = EpochLog()
    params = {**ours_params(objective, epochs, seed), "linear_path": linear_path}
    clf = _probed_estimator(log, objective, **params)
    method = "ours+linear" if linear_path else "ours"
    predict = clf.predict if regressor else clf.predict_proba
    result = measure(method, objective, n, epochs, log, fit=lambda: clf.fit(X, y),
                     predict_proba=lambda: predict(X),
                     outputs=None if regressor else N_CLASSES)
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
    y : Tensor of int64 or float32, shape (n,)
        Labels (classifier), or the target standardised as the regressor's fit
        standardises it: ``(target - mean) / scale`` with the fitted mean and scale.
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
    clf : MultimodalFusionClassifier or MultimodalFusionRegressor
        Fitted on the first ``n`` samples.
    tensors : Tensors
        Its preprocessed model arrays of those samples.
    target_mean : float or None, default=None
        The regressor's fitted target mean (None for the classifier).
    target_scale : float or None, default=None
        The regressor's fitted target standard deviation.
    """

    clf: Any
    tensors: Tensors
    target_mean: float | None = None
    target_scale: float | None = None

    @property
    def regressor(self) -> bool:
        """Whether the reference estimator is the regressor."""
        return self.target_scale is not None

    @classmethod
    def from_fit(cls, clf: Any, data: BenchData, n: int) -> Reference:
        """Take the fitted estimator's model arrays of the first ``n`` samples, as tensors.

        Parameters
        ----------
        clf : MultimodalFusionClassifier or MultimodalFusionRegressor
            A fitted estimator.
        data : BenchData
            The data.
        n : int
            Samples.

        Returns
        -------
        Reference
            With what the estimator's own training loop slices its batches from: for
            the regressor, the target standardised with its fitted (private)
            ``_target_mean`` and ``_target_scale``.
        """
        from sklearn.base import is_regressor as sklearn_is_regressor

        from mmfusion_sklearn import MultimodalData

        arrays, present = clf._model_arrays(MultimodalData(data.X(n)))
        inputs = {k: torch.from_numpy(v) for k, v in arrays.items()}
        if sklearn_is_regressor(clf):
            mean, scale = float(clf._target_mean), float(clf._target_scale)
            y = ((data.target[:n].astype(np.float64) - mean) / scale).astype(np.float32)
            return cls(clf, Tensors(inputs, torch.from_numpy(present), torch.from_numpy(y)),
                       mean, scale)
        return cls(clf, Tensors(
            inputs, torch.from_numpy(present), torch.from_numpy(data.y[:n].astype(np.int64)),
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
    """The objective, written out: CE(full) [+ sum over m of CE(only m)], or for the
    regressor the mean squared error of the one output on the standardised target.

    Every sample has every modality here, so the per-sample weights and masks of
    the estimator's loss are all ones and plain cross-entropy (mean squared error) is
    the same loss.

    Parameters
    ----------
    module : MultimodalFusionNet
        The network.
    batch : dict of str to Tensor
        One batch per modality.
    present : Tensor of bool, shape (B, M)
        Presence mask.
    y : Tensor of int64 or float32, shape (B,)
        Labels, or the standardised target (``"regressor"``).
    objective : {"none", "simultaneous", "regressor"}
        Modality dropout scheme, or the regressor (no modality dropout).

    Returns
    -------
    Tensor
        The scalar loss.
    """
    if is_regressor(objective):
        return F.mse_loss(module(batch, present)[:, 0], y)
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


def _raw_predict(module: nn.Module, tensors: Tensors, mean: float, scale: float) -> np.ndarray:
    """Regression predictions of every sample in the target's units, batch by batch."""
    module.eval()
    with torch.inference_mode():
        standardised = torch.cat([
            module(tensors.rows(batch), tensors.present[batch])[:, 0]
            for batch in (slice(start, start + BATCH_SIZE)
                          for start in range(0, len(tensors.y), BATCH_SIZE))
        ]).double().numpy()
    return standardised * scale + mean


def bench_raw(reference: Reference, objective: str, epochs: int, seed: int) -> Result:
    """Train a fresh network with a hand-written loop over in-memory batches; predict.

    Parameters
    ----------
    reference : Reference
        Gives the network (a fresh copy) and the tensors it trains on (the same
        memory, not copies); the regressor's for ``"regressor"``.
    objective : {"none", "simultaneous", "regressor"}
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
    if reference.regressor != is_regressor(objective):
        raise ValueError(f"objective {objective!r} needs the reference of its own task.")
    module, tensors = reference.fresh_module(seed), reference.tensors
    log = EpochLog()
    generator = torch.Generator().manual_seed(seed)
    if reference.regressor:
        mean, scale = reference.target_mean, reference.target_scale
        return measure(
            "raw", objective, len(tensors.y), epochs, log,
            fit=lambda: _raw_train(module, tensors, objective, epochs, generator, log),
            predict_proba=lambda: _raw_predict(module, tensors, mean, scale), outputs=None,
        )
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
    objective : {"none", "simultaneous", "regressor"}
        Modality dropout, or the regressor (skorch: ``"none"`` only; ours+linear:
        not the regressor).
    data : BenchData
        The data (``ours`` uses its first ``n`` samples).
    n : int
        Samples.
    epochs : int
        Epochs.
    seed : int
        Seed of weights and batch order.
    reference : Reference, default=None
        Our fitted estimator of the same task at this size; required by raw and
        skorch.

    Returns
    -------
    result : Result
        The measurements.
    clf : MultimodalFusionClassifier, MultimodalFusionRegressor or None
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
