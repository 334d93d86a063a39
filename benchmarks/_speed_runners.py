"""The three ways of training the speed benchmark's network: ours, a raw loop, plain skorch.

Each runner trains once and predicts the training samples once, measured by
:func:`~benchmarks._speed_measure.measure`:

``ours``
    One of our estimators end to end from the user's numpy arrays:
    :class:`~mmfusion_sklearn.MultimodalFusionClassifier`, or with the setting
    :data:`REGRESSOR` :class:`~mmfusion_sklearn.MultimodalFusionRegressor` on a
    continuous target, or with :data:`SURVIVAL`
    :class:`~mmfusion_sklearn.MultimodalFusionSurvivalAnalysis` on a censored time to
    event.
``raw``
    A hand-written PyTorch loop training the identical module on the
    estimator's own preprocessed in-memory tensors, with its task's loss written
    out (cross-entropy, squared error on the standardised target, Cox's partial
    likelihood with Efron's ties).
``skorch``
    A plain :class:`skorch.NeuralNetClassifier` on that module, fed by skorch's
    default ``DataLoader``.

The second item of every :data:`METHODS` entry is the *setting*: the classifier's
``modality_dropout`` (``"none"`` or ``"simultaneous"``), :data:`REGRESSOR` or
:data:`SURVIVAL`. A setting belongs to one :class:`BenchTask` (:func:`task_of`), which
holds everything that differs between the estimators: the class, the target, the
prediction method, the raw loop's loss and how raw turns the network's outputs into
predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
#: The setting of the survival rows:
#: :class:`~mmfusion_sklearn.MultimodalFusionSurvivalAnalysis` with
#: ``modality_dropout="none"`` (Cox's partial likelihood, Efron's ties).
SURVIVAL = "survival"
METHODS = (("ours", "none"), ("raw", "none"), ("skorch", "none"),
           ("ours", "simultaneous"), ("raw", "simultaneous"),
           ("ours+linear", "simultaneous"),
           ("ours", REGRESSOR), ("raw", REGRESSOR),
           ("ours", SURVIVAL), ("raw", SURVIVAL))
#: ``ours+linear`` = ours with its default linear path on: not the network the raw loop
#: trains, so it is compared with ``ours`` (its extra cost is reported as a ratio).


# ---------------------------------------------------------------------------
# the tasks
# ---------------------------------------------------------------------------
class BenchTask:
    """What differs between the estimators that the benchmark compares with the raw loop.

    The runners never ask which task they run; they call these methods. A task's
    settings other than the classifier's run with ``modality_dropout="none"``.

    Attributes
    ----------
    name : str
        ``"classifier"``, ``"regressor"`` or ``"survival"``.
    estimator : str
        The estimator's class in :mod:`mmfusion_sklearn`.
    settings : tuple of str
        The settings (second items of :data:`METHODS`) of the task.
    ratio_target : float
        Target of the time ratio ours / raw loop (whole fit, CPU time).
    predict_method : str
        The estimator's method that the prediction rows time.
    outputs : int or None
        Columns of that prediction; None for one value per sample.
    """

    name = "task"
    estimator = ""
    settings: tuple[str, ...] = ()
    ratio_target = 1.15
    predict_method = "predict"
    outputs: int | None = None

    def modality_dropout(self, setting: str) -> str:
        """The estimator's ``modality_dropout`` in a setting of this task.

        Parameters
        ----------
        setting : str
            One of :attr:`settings`.

        Returns
        -------
        str
            ``"none"`` (the classifier: the setting itself).
        """
        return "none"

    def y(self, data: BenchData) -> np.ndarray:
        """The estimator's target, as a user passes it to ``fit``.

        Parameters
        ----------
        data : BenchData
            The data.

        Returns
        -------
        ndarray of shape (n,)
            Every sample's target (the runners take the first ``n``).
        """
        raise NotImplementedError

    def model_target(self, clf: Any, data: BenchData, n: int
                     ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The target as the fitted estimator's training loop slices it, and what raw
        needs besides to predict in the user's units.

        Parameters
        ----------
        clf : estimator
            Fitted on the first ``n`` samples.
        data : BenchData
            The data.
        n : int
            Samples.

        Returns
        -------
        y : Tensor
            One row per sample.
        context : dict
            Passed back to :meth:`predictions` and :meth:`after_training`.
        """
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task's loss, written out; every sample has every modality and weight 1.

        Parameters
        ----------
        outputs : Tensor of shape (B, n_outputs)
            The network's outputs.
        y : Tensor
            The rows of :meth:`model_target` of the batch.

        Returns
        -------
        Tensor
            The scalar loss.
        """
        raise NotImplementedError

    def predictions(self, outputs: torch.Tensor, context: dict[str, Any]) -> np.ndarray:
        """Turn the network's outputs on every sample into what the estimator predicts.

        Parameters
        ----------
        outputs : Tensor of shape (n, n_outputs)
            The network's outputs in evaluation mode.
        context : dict
            From :meth:`model_target`.

        Returns
        -------
        ndarray
            Of shape (n, outputs), or (n,) where :attr:`outputs` is None.
        """
        raise NotImplementedError

    def after_training(self, module: nn.Module, tensors: Tensors,
                       context: dict[str, Any]) -> Any:
        """Work of the estimator's ``fit`` after the epochs, written out for raw.

        Parameters
        ----------
        module : MultimodalFusionNet
            The trained network.
        tensors : Tensors
            The training tensors.
        context : dict
            From :meth:`model_target`.

        Returns
        -------
        object
            What it fitted (None: nothing to do, the default).
        """
        return None


class ClassifierTask(BenchTask):
    """:class:`~mmfusion_sklearn.MultimodalFusionClassifier`: ten classes, the labels
    ``data.y``, cross-entropy, ``predict_proba``; ``modality_dropout`` is the setting."""

    name = "classifier"
    estimator = "MultimodalFusionClassifier"
    settings = ("none", "simultaneous")
    ratio_target = 1.2
    predict_method = "predict_proba"
    outputs = N_CLASSES

    def modality_dropout(self, setting):
        return setting

    def y(self, data):
        return data.y

    def model_target(self, clf, data, n):
        return torch.from_numpy(data.y[:n].astype(np.int64)), {}

    def loss(self, outputs, y):
        return F.cross_entropy(outputs, y)

    def predictions(self, outputs, context):
        return torch.softmax(outputs, dim=1).numpy()


class RegressorTask(BenchTask):
    """:class:`~mmfusion_sklearn.MultimodalFusionRegressor`: the target ``data.target``,
    squared error on it standardised as the regressor's fit standardises it,
    ``predict`` in the target's units."""

    name = "regressor"
    estimator = "MultimodalFusionRegressor"
    settings = (REGRESSOR,)

    def y(self, data):
        return data.target

    def model_target(self, clf, data, n):
        # the regressor's fitted (private) mean and scale
        mean, scale = float(clf._target_mean), float(clf._target_scale)
        y = ((data.target[:n].astype(np.float64) - mean) / scale).astype(np.float32)
        return torch.from_numpy(y), {"mean": mean, "scale": scale}

    def loss(self, outputs, y):
        return F.mse_loss(outputs[:, 0], y)

    def predictions(self, outputs, context):
        return outputs[:, 0].double().numpy() * context["scale"] + context["mean"]


class SurvivalAnalysisTask(BenchTask):
    """:class:`~mmfusion_sklearn.MultimodalFusionSurvivalAnalysis`: the structured target
    ``data.survival``, Cox's partial likelihood with Efron's ties on (dense rank of the
    time, event), ``predict`` = risk scores; after the epochs, as the estimator's fit,
    a Breslow baseline hazard on every training row's risk score."""

    name = "survival"
    estimator = "MultimodalFusionSurvivalAnalysis"
    settings = (SURVIVAL,)

    def y(self, data):
        return data.survival

    def model_target(self, clf, data, n):
        event = data.survival["event"][:n].astype(bool)
        time = data.survival["time"][:n].astype(np.float64)
        # the Cox loss depends on the order of the times only: their dense ranks, as
        # the estimator trains on them (exact in float32)
        rank = np.unique(time, return_inverse=True)[1].reshape(-1)
        y = torch.from_numpy(np.stack([rank, event], axis=1).astype(np.float32))
        return y, {"time": time, "event": event}

    def loss(self, outputs, y):
        from mmfusion_sklearn._torch.survival import cox_partial_likelihood

        return cox_partial_likelihood(outputs[:, 0], y[:, 0], y[:, 1], ties="efron")

    def predictions(self, outputs, context):
        return outputs[:, 0].double().numpy()

    def after_training(self, module, tensors, context):
        """Breslow's cumulative baseline hazard on the trained network's risk scores of
        every training row (the estimator's fit does the same per member)."""
        from mmfusion_sklearn._torch.survival import breslow_baseline

        risk = _raw_outputs(module, tensors)[:, 0]
        return breslow_baseline(risk, context["time"], context["event"])


#: The tasks, in the order of their rows.
TASKS = (ClassifierTask(), RegressorTask(), SurvivalAnalysisTask())


def task_of(setting: str) -> BenchTask:
    """The task of a setting (the second item of a :data:`METHODS` entry).

    Parameters
    ----------
    setting : str
        ``"none"``, ``"simultaneous"``, :data:`REGRESSOR` or :data:`SURVIVAL`.

    Returns
    -------
    BenchTask
    """
    for task in TASKS:
        if setting in task.settings:
            return task
    raise ValueError(
        f"Unknown setting {setting!r}; expected one of "
        f"{[s for t in TASKS for s in t.settings]}."
    )


# ---------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------
def _probed_estimator(log: EpochLog, setting: str, **params: Any) -> Any:
    """Our estimator of the setting's task with :meth:`EpochLog.callback` as its
    (public) ``callbacks``.

    The estimator hands its ``callbacks`` to the task stage's net of every member (a
    deep copy each: the probe's class closes over ``log``, so the copy records into the
    same log); skorch notifies them after its own default callbacks, at the start and
    the end of every epoch. Nothing of the estimator is overridden.
    """
    import mmfusion_sklearn

    _preload_callback_checks()
    cls = getattr(mmfusion_sklearn, task_of(setting).estimator)
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
    objective : {"none", "simultaneous", "regressor", "survival"}
        ``modality_dropout`` of the classifier; ``"regressor"`` and ``"survival"`` are
        those estimators with ``modality_dropout="none"``.
    epochs : int
        ``max_epochs``.
    seed : int
        ``random_state``.

    Returns
    -------
    dict
        Contrastive stage, early stopping and the linear path off (so that ours and the
        raw loop train the same network: one, since there is no early stopping), batch
        128, CPU. ``ensemble_size`` stays ``"auto"``: one network without early
        stopping (:meth:`Reference.from_fit` checks it).
    """
    return {
        "modalities": dict(MODALITIES),
        "linear_path": False,
        "modality_dropout": task_of(objective).modality_dropout(objective),
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

    The setting's task gives the estimator, its target and the prediction method: the
    classifier predicts with ``predict_proba`` (labels ``data.y``), the regressor with
    ``predict`` (target ``data.target``), the survival model with ``predict``, risk
    scores (target ``data.survival``).

    Parameters
    ----------
    data : BenchData
        The data (first ``n`` samples used).
    n : int
        Samples.
    objective : {"none", "simultaneous", "regressor", "survival"}
        Modality dropout of the classifier, or the regressor or the survival model.
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
    clf : estimator
        The fitted estimator.
    """
    task = task_of(objective)
    X, y = data.X(n), task.y(data)[:n]
    log = EpochLog()
    params = {**ours_params(objective, epochs, seed), "linear_path": linear_path}
    clf = _probed_estimator(log, objective, **params)
    method = "ours+linear" if linear_path else "ours"
    predict = getattr(clf, task.predict_method)
    result = measure(method, objective, n, epochs, log, fit=lambda: clf.fit(X, y),
                     predict_proba=lambda: predict(X), outputs=task.outputs)
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
    y : Tensor
        The target as the estimator's training loop slices it
        (:meth:`BenchTask.model_target`): labels, int64 (n,) (classifier); the target
        standardised as the regressor's fit standardises it, ``(target - mean) /
        scale`` with the fitted mean and scale, float32 (n,); dense rank of the time
        and event, float32 (n, 2) (survival).
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
    clf : estimator
        Fitted on the first ``n`` samples.
    task : BenchTask
        Its task.
    tensors : Tensors
        Its preprocessed model arrays of those samples, and its target.
    context : dict, default={}
        What the raw loop needs besides to predict in the user's units (the
        regressor's fitted mean and scale) or to finish the fit (the survival
        model's times and events).
    """

    clf: Any
    task: BenchTask
    tensors: Tensors
    context: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fit(cls, clf: Any, data: BenchData, n: int, task: BenchTask) -> Reference:
        """Take the fitted estimator's model arrays of the first ``n`` samples, as tensors.

        Parameters
        ----------
        clf : estimator
            A fitted estimator of ``task``, with one network.
        data : BenchData
            The data.
        n : int
            Samples.
        task : BenchTask
            The estimator's task.

        Returns
        -------
        Reference
            With what the estimator's own training loop slices its batches from
            (:meth:`BenchTask.model_target`).
        """
        from mmfusion_sklearn import MultimodalData

        if len(clf._nets) != 1:
            raise RuntimeError(
                f"the raw loop trains one network; the estimator trained {len(clf._nets)}."
            )
        arrays, present = clf._model_arrays(MultimodalData(data.X(n)))
        inputs = {k: torch.from_numpy(v) for k, v in arrays.items()}
        y, context = task.model_target(clf, data, n)
        return cls(clf, task, Tensors(inputs, torch.from_numpy(present), y), context)

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
    """The objective, written out: L(full) [+ sum over m of L(only m)], L the task's
    loss (:meth:`BenchTask.loss`: cross-entropy; squared error of the one output on the
    standardised target; Cox's partial likelihood, Efron's ties).

    Every sample has every modality here, so the per-sample weights and masks of
    the estimator's loss are all ones and the plain loss is the same loss.

    Parameters
    ----------
    module : MultimodalFusionNet
        The network.
    batch : dict of str to Tensor
        One batch per modality.
    present : Tensor of bool, shape (B, M)
        Presence mask.
    y : Tensor
        The batch's rows of the task's target (:attr:`Tensors.y`).
    objective : {"none", "simultaneous", "regressor", "survival"}
        The setting: modality dropout scheme of the classifier, or the regressor or the
        survival model (no modality dropout).

    Returns
    -------
    Tensor
        The scalar loss.
    """
    task = task_of(objective)
    if task.modality_dropout(objective) == "none":
        return task.loss(module(batch, present), y)
    full, single = module.fuse_configurations(module.encode(batch, present), present)
    loss = task.loss(module.classifier(full), y)
    outputs_single = module.classifier(single)
    for m in range(outputs_single.shape[0]):
        loss = loss + task.loss(outputs_single[m], y)
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


def _raw_outputs(module: nn.Module, tensors: Tensors) -> torch.Tensor:
    """The network's outputs on every sample, batch by batch, without autograd."""
    module.eval()
    with torch.inference_mode():
        return torch.cat([
            module(tensors.rows(batch), tensors.present[batch])
            for batch in (slice(start, start + BATCH_SIZE)
                          for start in range(0, len(tensors.y), BATCH_SIZE))
        ])


def bench_raw(reference: Reference, objective: str, epochs: int, seed: int) -> Result:
    """Train a fresh network with a hand-written loop over in-memory batches; predict.

    The fit ends with the task's :meth:`~BenchTask.after_training` (the survival
    model's Breslow baseline); prediction is the network's outputs on the tensors
    turned into the estimator's predictions (:meth:`~BenchTask.predictions`).

    Parameters
    ----------
    reference : Reference
        Gives the network (a fresh copy) and the tensors it trains on (the same
        memory, not copies); that of the setting's task.
    objective : {"none", "simultaneous", "regressor", "survival"}
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
    task = task_of(objective)
    if reference.task is not task:
        raise ValueError(f"objective {objective!r} needs the reference of its own task "
                         f"({task.name}); got the {reference.task.name}'s.")
    module, tensors, context = reference.fresh_module(seed), reference.tensors, reference.context
    log = EpochLog()
    generator = torch.Generator().manual_seed(seed)

    def fit() -> Any:
        _raw_train(module, tensors, objective, epochs, generator, log)
        return task.after_training(module, tensors, context)

    return measure(
        "raw", objective, len(tensors.y), epochs, log, fit=fit,
        predict_proba=lambda: task.predictions(_raw_outputs(module, tensors), context),
        outputs=task.outputs,
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
    objective : {"none", "simultaneous", "regressor", "survival"}
        Modality dropout of the classifier, or the regressor or the survival model
        (skorch: ``"none"`` only; ours+linear: ``"simultaneous"`` only).
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
    clf : estimator or None
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
