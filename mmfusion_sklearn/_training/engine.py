"""The engine of every estimator: what a fit and a prediction do, for any task.

A fit goes down the layers once: parse X and resolve the modalities
(:mod:`.._data.parsing`), fit the preprocessors (:mod:`.._preprocessing`), set up the
frozen encoders and their feature sources (:mod:`.sources`, :mod:`.cache`), build the
training data set, lay out the members (:mod:`.plans`), build the networks
(:mod:`.._torch`) and train them (:mod:`.ensemble`). Prediction streams the members'
outputs combined by the task (:func:`.sources.predict_outputs`).

The task (:mod:`.._torch.tasks`) is a parameter: nothing here asks which one it is. The
estimators hold the fitted state (``_preprocessors``, ``_frozen_encoders``, ...) and
pass it back in; this module keeps none.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._data import Modality, MultimodalData
from .._data.parsing import check_known_modalities, presence_matrix, resolve_modalities
from .._preprocessing import fit_preprocessors, holds_files, sample_shape
from .._torch.encoders import EmbeddingEncoder, ModuleEncoder, build_encoder, module_output_width
from .._torch.losses import contrastive_pairs
from .._torch.model import MultimodalFusionNet
from .._torch.tasks import Task
from .batches import BatchIterator, FusionDataset
from .distributed import DistributedContext
from .ensemble import MemberPlan, TrainedMembers, train_members
from .plans import member_plans, resolve_ensemble_size
from .runtime import autocast
from .sources import FrozenFeatures, ReadLog, predict_outputs, training_dataset

#: Held while a fit draws from torch's global random generator (weights, dropout,
#: modality dropout): that generator belongs to the process, so two fits in two threads
#: would otherwise interleave their draws and neither would be reproducible. Fits in
#: threads then train one after the other; each gives what it gives alone.
GLOBAL_RNG_LOCK = threading.RLock()


@dataclass
class FittedInputs:
    """What fit learns about the inputs before any network exists.

    Parameters
    ----------
    modalities : dict of str to Modality
        The modalities in order, kinds resolved.
    preprocessors : dict of str to object
        One fitted preprocessor per modality.
    frozen_encoders : dict of str to nn.Module
        Frozen encoders (copies, in eval mode, without gradients).
    input_shapes : dict of str to tuple of int
        The network's input shape per modality (a frozen encoder's output width).
    present : ndarray of bool (n, M)
        Presence of the training rows; files found unreadable are marked absent.
    log : ReadLog
        Unreadable files met so far.
    """

    modalities: dict[str, Modality]
    preprocessors: dict[str, Any]
    frozen_encoders: dict[str, torch.nn.Module]
    input_shapes: dict[str, tuple[int, ...]]
    present: np.ndarray
    log: ReadLog


def fit_inputs(data: MultimodalData, spec: dict[str, Modality] | None,
               on_read_error: str) -> FittedInputs:
    """Resolve the modalities of ``data`` and fit their preprocessing.

    Parameters
    ----------
    data : MultimodalData
        The training samples.
    spec : dict of str to Modality or None
        The estimator's ``modalities``, resolved to Modality objects.
    on_read_error : {"raise", "missing"}
        What an unreadable file does.

    Returns
    -------
    FittedInputs
    """
    modalities = resolve_modalities(data, spec)
    names = list(modalities)
    present = presence_matrix(data, names)
    log = ReadLog()
    preprocessors = fit_preprocessors(data, modalities, on_read_error, log.failures)
    for name, row in log.failures:
        present[row, names.index(name)] = False
    frozen = {
        name: deepcopy(m.encoder).eval().requires_grad_(False)
        for name, m in modalities.items()
        if m.encoder is not None and not m.trainable
    }
    shapes = {}
    for name, preprocessor in preprocessors.items():
        shape = sample_shape(preprocessor)
        if name in frozen:
            shape = (module_output_width(frozen[name], shape),)
        shapes[name] = shape
    return FittedInputs(modalities, preprocessors, frozen, shapes, present, log)


def frozen_sources(
    frozen_encoders: Mapping[str, torch.nn.Module],
    preprocessors: Mapping[str, Any],
    input_shapes: Mapping[str, tuple[int, ...]],
    keys: Mapping[str, str],
    *,
    device: torch.device,
    precision: str,
    batch_size: int,
    num_workers: int,
    cache_dir: Any,
) -> dict[str, FrozenFeatures]:
    """The feature sources of the frozen encoders (sharing the process cache).

    ``keys`` are the cache namespaces already computed (hashing an encoder's weights
    once per fit, not per call); a missing one is computed here.
    """
    sources = {}
    for name, module in frozen_encoders.items():
        source = FrozenFeatures(
            name, module, preprocessors[name], device, precision, batch_size, num_workers,
            None if cache_dir is None else os.fspath(cache_dir), namespace=keys.get(name),
        )
        source.width = input_shapes[name][0]
        sources[name] = source
    return sources


def dataset_for(
    data: MultimodalData,
    modalities: Mapping[str, Modality],
    preprocessors: Mapping[str, Any],
    frozen: Mapping[str, FrozenFeatures],
    target: np.ndarray,
    weight: np.ndarray,
    log: ReadLog,
    *,
    on_read_error: str,
    verbose: int = 0,
    present: np.ndarray | None = None,
    cache_dir: Any = None,
    num_workers: int = 0,
) -> FusionDataset:
    """The FusionDataset of ``data``: tensors, decoded or lazy file sources and frozen
    features."""
    check_known_modalities(data, dict(modalities))
    names = list(modalities)
    if present is None:
        present = presence_matrix(data, names)
    return training_dataset(
        data, names, preprocessors, frozen, present, target, weight,
        on_read_error=on_read_error, log=log, verbose=verbose,
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        num_workers=num_workers,
    )


def plan_members(
    strata: np.ndarray | None,
    n_samples: int,
    cheap: bool,
    *,
    ensemble_size: int | str,
    early_stopping: bool,
    validation_fraction: float,
    split_seed: int,
    rng: np.random.RandomState,
) -> list[MemberPlan]:
    """Training and held-out rows of every member, and its seed.

    ``cheap``: every modality is a table, an embedding or a frozen encoder's output
    (see :func:`.plans.resolve_ensemble_size`). ``strata`` None splits at random.
    """
    size = resolve_ensemble_size(ensemble_size, n_samples, early_stopping, cheap)
    member_seeds = [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=size)]
    return member_plans(strata, size, early_stopping, validation_fraction, split_seed,
                        member_seeds, n_samples)


def build_network(
    modalities: Mapping[str, Modality],
    frozen_encoders: Mapping[str, torch.nn.Module],
    input_shapes: Mapping[str, tuple[int, ...]],
    n_outputs: int,
    *,
    embed_dim: int,
    fusion: str,
    missing_token: str,
    linear_path: bool,
) -> MultimodalFusionNet:
    """A fresh network: one encoder per modality, tokens, fusion, a head of
    ``n_outputs`` and, with ``linear_path``, linear terms for tables and feature vectors.
    """
    encoders = {}
    linear_widths = {}
    for name, modality in modalities.items():
        shape = input_shapes[name]
        if linear_path and (
            name in frozen_encoders
            or (modality.encoder is None and modality.kind in ("tabular", "embedding"))
        ):
            linear_widths[name] = int(np.prod(shape))
        if name in frozen_encoders:
            encoders[name] = EmbeddingEncoder(shape[0], embed_dim)
        elif modality.encoder is not None:
            backbone = deepcopy(modality.encoder)
            width = module_output_width(backbone, shape)
            encoders[name] = ModuleEncoder(backbone, width, embed_dim)
        else:
            encoders[name] = build_encoder(
                modality.kind, shape if len(shape) > 1 else shape[0], embed_dim
            )
    return MultimodalFusionNet(encoders, n_outputs, embed_dim, fusion, missing_token,
                               linear_widths=linear_widths)


def fit_members(
    build: Any,
    dataset: FusionDataset,
    plans: Sequence[MemberPlan],
    task: Task,
    *,
    net_kwargs: dict[str, Any],
    modality_dropout: str,
    unimodal_weight: float,
    dropout_rate: float,
    contrastive: str | None,
    contrastive_loss: str,
    pretrain_epochs: int,
    max_epochs: int,
    patience: int,
    verbose: int,
    callbacks: list,
    distributed: DistributedContext | None,
    n_modalities: int,
) -> TrainedMembers:
    """Pretrain (when the contrastive stage has pairs) and train every member."""
    pretrain = (contrastive is not None and pretrain_epochs > 0
                and bool(contrastive_pairs(n_modalities, contrastive)))
    kwargs = {**net_kwargs, "distributed": distributed}
    return train_members(
        build,
        dataset,
        plans,
        task_kwargs={"task": task, "objective": modality_dropout,
                     "unimodal_weight": unimodal_weight, "dropout_rate": dropout_rate,
                     **kwargs},
        max_epochs=max_epochs,
        patience=patience,
        contrastive_kwargs={"task": task, "contrastive": contrastive,
                            "loss": contrastive_loss, **kwargs} if pretrain else None,
        pretrain_epochs=pretrain_epochs,
        verbose=verbose,
        callbacks=callbacks,
    )


def predict(
    modules: Sequence[torch.nn.Module],
    task: Task,
    data: MultimodalData,
    modalities: Mapping[str, Modality],
    preprocessors: Mapping[str, Any],
    frozen: Mapping[str, FrozenFeatures],
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    num_workers: int,
    on_read_error: str,
    verbose: int = 0,
    temperatures: Any = None,
    cache_dir: Any = None,
) -> np.ndarray:
    """The members' outputs on ``data``, combined by ``task`` (streamed in batches)."""
    check_known_modalities(data, dict(modalities))
    names = list(modalities)
    return predict_outputs(
        modules, task.combine, data, names, preprocessors, frozen,
        presence_matrix(data, names), batch_size=batch_size, device=device,
        precision=precision, num_workers=num_workers, on_read_error=on_read_error,
        verbose=verbose, temperatures=temperatures,
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
    )


@torch.no_grad()
def dataset_outputs(
    modules: Sequence[torch.nn.Module],
    task: Task,
    dataset: FusionDataset,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    num_workers: int = 0,
) -> np.ndarray:
    """The members' full-input outputs on the rows of a FusionDataset (the training
    data, already read and preprocessed), combined by ``task``: (n, ...) float64."""
    for module in modules:
        module.to(device).eval()
    parts = []
    for X, _ in BatchIterator(dataset, batch_size, device=device, num_workers=num_workers):
        with autocast(device, precision):
            outputs = [module(X["inputs"], X["present"]).float() for module in modules]
        parts.append(task.combine(outputs).cpu())
    if not parts:
        return np.zeros((0, len(modules)))
    return torch.cat(parts).numpy()


def unreadable_mask(
    data: MultimodalData,
    modalities: Mapping[str, Modality],
    preprocessors: Mapping[str, Any],
    batch_size: int = 256,
) -> np.ndarray:
    """(n, M) bool: the files of ``data`` that cannot be read, per modality and row.

    Every present file of an image or volume modality is read once (in chunks of
    ``batch_size``), as prediction with ``on_read_error="missing"`` would read it, so
    that a report can treat an unreadable file as a missing modality up front.
    """
    names = list(modalities)
    out = np.zeros((len(data), len(names)), dtype=bool)
    for m, name in enumerate(names):
        preprocessor = preprocessors[name]
        if name not in data or not hasattr(preprocessor, "transform_rows"):
            continue
        values, present = data.values(name), data.present(name)
        if not holds_files(values, present):
            continue
        for start in range(0, len(data), batch_size):
            rows = np.arange(start, min(start + batch_size, len(data)))
            if not present[rows].any():
                continue
            _, failures = preprocessor.transform_rows(
                values[rows], present[rows], row_ids=rows, on_read_error="missing")
            out[rows[list(failures)], m] = True
    return out
