"""The data path from a MultimodalData to the network: sources, frozen features, streaming.

Each fitted modality becomes a *source* of preprocessed samples:

- an in-memory tensor (tables, embeddings, image arrays: transformed once in fit and
  sliced per batch, the fast path);
- a :class:`LazySource` (files, augmented images and volumes, and every modality in
  prediction): the samples of a batch are read, transformed (and augmented in training)
  and standardised when the batch is drawn, in DataLoader workers when there are any;
- cached frozen-encoder features (:class:`FrozenFeatures`): each sample is encoded once
  per process (and once per cache folder), whatever the fit or fold.

Fit builds one :class:`~mmfusion_sklearn._training.batches.FusionDataset` over them;
prediction streams batches through the networks (:func:`predict_outputs`), so that
beyond the inputs the only allocation that grows with n is the output. This module
knows torch and numpy, not scikit-learn. It is one module (just over 500 lines) because
fit and prediction must read every source the same way: splitting them would let the
two paths drift apart.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._data.messages import rows_text as _rows_text
from .._data.messages import samples_have as _samples_have
from .._data.messages import user_stacklevel
from .._preprocessing import holds_files, sample_shape
from .._preprocessing.tabular import warn_unseen_categories
from .._torch.encoders import compute_features
from .batches import BatchIterator, FusionDataset
from .cache import FEATURE_CACHE, SAMPLE_CACHE, FeatureCache, callable_key, digest, sample_key
from .decoded import DecodedSource, SampleReads, decode_all, decoded_bytes, sample_namespace
from .runtime import autocast

#: Rows per prediction batch when every modality is a table or a vector (images and
#: volumes use the estimator's batch_size).
TABLE_PREDICT_ROWS = 4096


def _take(values: Any, rows: np.ndarray) -> Any:
    if isinstance(values, pd.DataFrame):
        return values.iloc[rows]
    return values[rows]


@dataclass
class ReadLog:
    """Unreadable files met while reading, by (modality, row), and unseen categories."""

    failures: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    unseen: dict[str, dict[str, set]] = field(default_factory=dict)

    def warn(self, stage: str) -> None:
        """One warning naming the unreadable files (and one per column of unseen
        categories), pointing at the user's line."""
        for name, columns in self.unseen.items():
            warn_unseen_categories(name, columns)
        if not self.failures:
            return
        listed = sorted(self.failures.items())
        shown = "; ".join(f"{name!r} row {row}: {path}" for (name, row), (path, _) in listed[:10])
        more = f" and {len(listed) - 10} more" if len(listed) > 10 else ""
        first = listed[0][1][1]
        warnings.warn(
            f"{len(listed)} file(s) could not be read in {stage} and were treated as "
            f"missing (on_read_error='missing'): {shown}{more}. First error: {first}",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


class LazySource:
    """One modality's stored values, preprocessed a batch of rows at a time.

    Parameters
    ----------
    values : DataFrame or ndarray
        The modality's values as :class:`~mmfusion_sklearn.MultimodalData` stores them.
    preprocessor : object
        Its fitted preprocessor.
    on_read_error : {"raise", "missing"}, default="raise"
        What an unreadable file does.
    unseen : dict, default=None
        Collects the categories a table meets that fit never saw (one warning later).
    skip : ndarray of bool, default=None
        Rows not to read (left zero), e.g. those whose frozen features are cached.
    reads : SampleReads, default=None
        Reads image and volume files through the decoded-sample cache; None decodes
        every file every time.
    """

    def __init__(self, values: Any, preprocessor: Any, on_read_error: str = "raise",
                 unseen: dict | None = None, skip: np.ndarray | None = None,
                 reads: SampleReads | None = None) -> None:
        self.values = values
        self.preprocessor = preprocessor
        self.on_read_error = on_read_error
        self.unseen = unseen
        self.skip = skip
        self.reads = reads

    def take(self, rows: np.ndarray, present: np.ndarray, augment: bool = False,
             seed: int | None = None) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
        """Preprocessed samples at ``rows`` (zeros where absent or skipped) and the
        unreadable ones."""
        if self.skip is not None:  # e.g. samples whose frozen features are cached
            present = present & ~self.skip[rows]
        part = _take(self.values, rows)
        if self.reads is not None:  # images and volumes: decoded once, then cached
            out, failures = self.reads.read(self.preprocessor, part, present, rows,
                                            self.on_read_error)
            ok = np.setdiff1d(np.flatnonzero(present), list(failures), assume_unique=True)
            self.preprocessor.finish_rows(out, ok, row_ids=rows, augment=augment, seed=seed)
            return out, failures
        if hasattr(self.preprocessor, "transform_rows"):
            return self.preprocessor.transform_rows(
                part, present, row_ids=rows, on_read_error=self.on_read_error,
                augment=augment, seed=seed,
            )
        return self.preprocessor.transform(part, present, row_ids=rows,
                                           unseen=self.unseen), {}


def module_key(module: torch.nn.Module) -> str:
    """A key of a module's architecture and weights: equal for a copy or a clone."""
    parts: list[Any] = [type(module).__qualname__, repr(module)]
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        parts += [name, str(tensor.dtype), tuple(tensor.shape),
                  tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""]
    return digest(*parts)


class FrozenFeatures:
    """Features of a frozen encoder, each sample encoded once per process (and folder).

    Parameters
    ----------
    name : str
        Modality name.
    module : torch.nn.Module
        The frozen encoder (in eval mode, no gradients).
    preprocessor : ArrayPreprocessor or TabularPreprocessor
        Its modality's fitted preprocessor (not standardising images, so that the
        features do not depend on the training rows).
    device : torch.device
        Where the encoder runs.
    precision : str
        Autocast precision of the encoder (part of the cache key).
    batch_size : int
        Samples per forward pass.
    num_workers : int
        DataLoader workers reading its files.
    cache_dir : str or None
        Folder of the persistent cache.
    cache : FeatureCache, default=FEATURE_CACHE
        The in-process cache.
    namespace : str, default=None
        The cache namespace computed before (hashing a large encoder's weights takes
        time); None computes it.
    """

    def __init__(self, name: str, module: torch.nn.Module, preprocessor: Any,
                 device: torch.device, precision: str, batch_size: int, num_workers: int,
                 cache_dir: str | None, cache: FeatureCache = FEATURE_CACHE,
                 namespace: str | None = None) -> None:
        self.name = name
        self.module = module
        self.preprocessor = preprocessor
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.cache = cache
        if namespace is None:
            state = preprocessor.get_state() if not hasattr(preprocessor, "transform_fn") else {
                k: getattr(preprocessor, k, None)
                for k in ("kind", "image_size", "standardize", "channels_", "shape_",
                          "mean_", "scale_")
            }
            namespace = digest(
                "frozen-features-v1", module_key(module), precision, sorted(state.items()),
                callable_key(getattr(preprocessor, "transform_fn", None)),
            )
        self.namespace = namespace
        #: samples encoded by this object (cache misses), for the benchmarks and tests
        self.encoded = 0
        #: feature width (set by the caller once known), for batches with no sample
        self.width = 0

    def lookup(self, values: Any, rows: np.ndarray) -> tuple[list[str], list]:
        """Sample keys of ``rows`` and their cached features (None where not cached)."""
        keys = [sample_key(_item(values, r)) for r in rows]
        return keys, self.cache.get(self.namespace, keys, self.cache_dir)

    def encode(self, x: torch.Tensor, keys: Sequence[str]) -> np.ndarray:
        """Encode a batch of preprocessed samples and cache the features under ``keys``."""
        module = self.module.to(self.device).eval()
        with torch.no_grad(), autocast(self.device, self.precision):
            features = compute_features(module, x, self.batch_size, self.device).numpy()
        self.encoded += len(x)
        self.cache.put(self.namespace, keys, features, self.cache_dir)
        return features

    def features(self, values: Any, present: np.ndarray, on_read_error: str, log: ReadLog,
                 verbose: int = 0) -> np.ndarray:
        """Features (n, F) of every present sample (zeros where absent or unreadable).

        Cached samples are not read; the others are read per batch (``num_workers``
        DataLoader workers), encoded and cached. Unreadable ones ("missing") go to
        ``log`` and are marked absent in ``present``.
        """
        wanted = np.flatnonzero(present)
        keys, found = self.lookup(values, wanted)
        out: np.ndarray | None = None
        for r, entry in zip(wanted, found):
            if entry is not None:
                if out is None:
                    out = np.zeros((len(present), len(entry)), dtype=np.float32)
                out[r] = entry
        todo = np.array([i for i, f in enumerate(found) if f is None], dtype=np.int64)
        if len(todo):
            source = LazySource(values, self.preprocessor, on_read_error)
            dataset = FusionDataset(
                {}, torch.from_numpy(present[:, None].copy()), lazy={self.name: source},
                names=[self.name],
            ).subset(torch.from_numpy(wanted[todo]))
            iterator = BatchIterator(dataset, self.batch_size, num_workers=self.num_workers)
            bar = _bar(f"encode {self.name}", len(iterator), verbose)
            start = 0
            for X, _ in iterator:
                positions = todo[start : start + len(X["present"])]
                start += len(positions)
                keep = X["present"][:, 0].numpy()
                if keep.any():
                    features = self.encode(X["inputs"][self.name][torch.from_numpy(keep)],
                                           [keys[i] for i in positions[keep]])
                    if out is None:
                        out = np.zeros((len(present), features.shape[1]), dtype=np.float32)
                    out[wanted[positions[keep]]] = features
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            for (name, row), failure in dataset.read_failures.items():
                log.failures[(name, row)] = failure
                present[row] = False
        if out is None:
            raise ValueError(f"Modality {self.name!r}: no sample could be read.")
        return out

    def cached_mask(self, values: Any, present: np.ndarray) -> np.ndarray:
        """(n,) True where a present sample's features are cached: prediction need not
        read those files."""
        mask = np.zeros(len(present), dtype=bool)
        for r in np.flatnonzero(present):
            mask[r] = self.cache.contains(self.namespace, sample_key(_item(values, r)),
                                          self.cache_dir)
        return mask

    def batch_features(self, values: Any, rows: np.ndarray, x: torch.Tensor,
                       present: torch.Tensor, skipped: np.ndarray | None = None,
                       on_read_error: str = "raise") -> torch.Tensor:
        """Features of one prediction batch: cached ones looked up, the others encoded
        from ``x`` (the batch's preprocessed samples; zero where ``skipped`` because
        cached, and read again here should the cache have dropped them meanwhile)."""
        wanted = np.flatnonzero(present.numpy())
        keys, found = self.lookup(values, rows[wanted])
        todo = [i for i, f in enumerate(found) if f is None]
        if todo and skipped is not None:
            again = [i for i in todo if skipped[rows[wanted[i]]]]
            if again:
                source = LazySource(values, self.preprocessor, on_read_error)
                array, _ = source.take(rows[wanted[again]], np.ones(len(again), dtype=bool))
                x = x.clone()
                x[wanted[again]] = torch.from_numpy(array)
        fresh = self.encode(x[wanted[todo]], [keys[i] for i in todo]) if todo else None
        width = fresh.shape[1] if fresh is not None else (
            len(found[0]) if len(found) else self.width)
        out = np.zeros((len(rows), width), dtype=np.float32)
        for i, entry in enumerate(found):
            if entry is not None:
                out[wanted[i]] = entry
        if fresh is not None:
            out[wanted[todo]] = fresh
        return torch.from_numpy(out)


def _item(values: Any, row: int) -> Any:
    if isinstance(values, pd.DataFrame):
        return values.iloc[row].to_numpy()
    return values[row]


def _bar(desc: str, total: int, verbose: int):
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False)


def _read_per_batch(preprocessor: Any, values: Any, present: np.ndarray) -> bool:
    """Image and volume files are read per batch, and so is any image or volume
    modality with an ``augment``, which must draw anew in every training batch."""
    if not hasattr(preprocessor, "transform_rows"):  # tables and embeddings
        return False
    return preprocessor.augment_fn is not None or holds_files(values, present)


def training_dataset(
    data: Any,
    names: Sequence[str],
    preprocessors: Mapping[str, Any],
    frozen: Mapping[str, FrozenFeatures],
    present: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    *,
    on_read_error: str,
    log: ReadLog,
    verbose: int = 0,
    cache_dir: str | None = None,
    num_workers: int = 0,
) -> FusionDataset:
    """The FusionDataset of fit: tensors for in-memory modalities and frozen features,
    files decoded once (within the decoded-sample cache's bound) or read per batch.

    Parameters
    ----------
    data : MultimodalData
        The training samples.
    names : sequence of str
        Modality names, in the model's order.
    preprocessors : mapping of str to object
        Fitted preprocessors.
    frozen : mapping of str to FrozenFeatures
        The frozen encoders' feature sources.
    present : ndarray of bool (n, M)
        Presence; files found unreadable are marked absent in it ("missing").
    target : ndarray
        Encoded targets, in the dtype the task's loss takes (int64 class indices,
        float32 standardised values).
    weight : ndarray of float
        Sample weights.
    on_read_error : {"raise", "missing"}
        What an unreadable file does.
    log : ReadLog
        Collects unreadable files.
    verbose : int, default=0
        Progress bars for frozen encoders.
    cache_dir : str, default=None
        Folder of the persistent caches.
    num_workers : int, default=0
        DataLoader workers decoding files.

    Returns
    -------
    FusionDataset
    """
    inputs, lazy = {}, {}
    n = len(present)
    for m, name in enumerate(names):
        column = present[:, m]
        if name in frozen:
            column_copy = column.copy()
            features = frozen[name].features(data.values(name), column_copy, on_read_error,
                                             log, verbose)
            present[:, m] = column_copy
            inputs[name] = torch.from_numpy(features)
        elif not column.any():
            shape = sample_shape(preprocessors[name])
            inputs[name] = torch.zeros((n, *shape))
        elif _read_per_batch(preprocessors[name], data.values(name), column):
            lazy[name] = _file_source(name, m, data.values(name), preprocessors[name],
                                      present, on_read_error, log, cache_dir, num_workers)
        else:
            inputs[name] = torch.from_numpy(preprocessors[name].transform(data.values(name),
                                                                          column))
    # a sample whose every file was unreadable ("missing") takes no part in training
    weight = np.where(present.any(axis=1), weight, 0.0)
    return FusionDataset(
        inputs, torch.from_numpy(present), torch.from_numpy(np.ascontiguousarray(target)),
        torch.from_numpy(weight.astype(np.float32)), lazy=lazy, names=list(names),
    )


def _file_source(name: str, m: int, values: Any, preprocessor: Any, present: np.ndarray,
                 on_read_error: str, log: ReadLog, cache_dir: str | None,
                 num_workers: int) -> LazySource | DecodedSource:
    """A training modality read per batch: files decoded once where their samples fit
    the decoded-sample cache's bound (unreadable ones marked absent in ``present``),
    else read per batch through it; in-memory arrays (augmented) as they are."""
    column = present[:, m]
    if not holds_files(values, column):
        return LazySource(values, preprocessor, on_read_error)
    reads = SampleReads(sample_namespace(preprocessor), cache_dir)
    if decoded_bytes(preprocessor, int(column.sum())) > SAMPLE_CACHE.max_bytes:
        return LazySource(values, preprocessor, on_read_error, reads=reads)
    samples, failures = decode_all(values, preprocessor, column, reads,
                                   on_read_error=on_read_error, num_workers=num_workers)
    for row, failure in failures.items():
        log.failures[(name, row)] = failure
        present[row, m] = False
    return DecodedSource(samples, preprocessor)


def predict_outputs(
    modules: Sequence[torch.nn.Module],
    combine: Callable[[list[torch.Tensor]], torch.Tensor],
    data: Any,
    names: Sequence[str],
    preprocessors: Mapping[str, Any],
    frozen: Mapping[str, FrozenFeatures],
    present: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    num_workers: int,
    on_read_error: str,
    verbose: int = 0,
    temperatures: Any = None,
    cache_dir: str | None = None,
) -> np.ndarray:
    """The members' outputs combined by the task, batch by batch.

    Every modality is read per batch (files in ``num_workers`` DataLoader workers),
    frozen encoders use the feature cache, each member runs on the batch, and only the
    output (n, n_outputs) grows with n.

    Parameters
    ----------
    modules : sequence of MultimodalFusionNet
        The members.
    combine : callable
        The task's :meth:`~mmfusion_sklearn._torch.tasks.Task.combine`: the members'
        outputs of a batch to one (B, n_outputs) float64 tensor (for classes, the log
        of the mean probabilities).
    data : MultimodalData
        The samples.
    names : sequence of str
        Modality names in the model's order.
    preprocessors : mapping of str to object
        Fitted preprocessors.
    frozen : mapping of str to FrozenFeatures
        Frozen encoders' feature sources.
    present : ndarray of bool (n, M)
        Presence.
    batch_size : int
        Samples per batch for images and volumes.
    device : torch.device
        Where the members run.
    precision : str
        Autocast precision.
    num_workers : int
        DataLoader workers.
    on_read_error : {"raise", "missing"}
        What an unreadable file does.
    verbose : int, default=0
        A progress bar over batches when > 0.
    temperatures : TemperatureTable, default=None
        Divides each sample's log-probabilities by the temperature of the modalities
        it has (then renormalised; classes only); None leaves them as they are.
    cache_dir : str, default=None
        Folder of the persistent decoded-sample cache.

    Returns
    -------
    ndarray of float64 (n, n_outputs)

    Raises
    ------
    ValueError
        If some sample has no readable modality left ("missing").
    """
    n = len(present)
    log = ReadLog()
    tables_only = all(getattr(preprocessors[k], "kind", "") in ("tabular", "embedding")
                      or k in frozen for k in names)
    rows_per_batch = max(batch_size, TABLE_PREDICT_ROWS) if tables_only else batch_size
    lazy: dict[str, LazySource] = {}
    skipped: dict[str, np.ndarray | None] = {}
    for m, name in enumerate(names):
        if not present[:, m].any():
            continue
        unseen = log.unseen.setdefault(name, {})
        skip = skipped[name] = (frozen[name].cached_mask(data.values(name), present[:, m])
                                if name in frozen else None)
        values = data.values(name)
        reads = (SampleReads(sample_namespace(preprocessors[name]), cache_dir, remember=False)
                 if name not in frozen and holds_files(values, present[:, m]) else None)
        lazy[name] = LazySource(values, preprocessors[name], on_read_error, unseen,
                                skip=skip, reads=reads)
    dataset = FusionDataset({}, torch.from_numpy(present), lazy=lazy, names=list(names))
    iterator = BatchIterator(dataset, rows_per_batch, num_workers=num_workers)
    out: np.ndarray | None = None
    bar = _bar("predict", len(iterator), verbose)
    for module in modules:
        module.to(device).eval()
    start = 0
    try:
        for X, _ in iterator:
            rows = np.arange(start, start + len(X["present"]))
            start += len(rows)
            batch_present = X["present"]
            inputs = dict(X["inputs"])
            for m, name in enumerate(names):
                if name in frozen and name in inputs:
                    inputs[name] = frozen[name].batch_features(
                        data.values(name), rows, inputs[name], batch_present[:, m],
                        skipped.get(name), on_read_error)
                elif name in frozen:
                    inputs[name] = torch.zeros((len(rows), frozen[name].width))
                elif name not in inputs:
                    inputs[name] = torch.zeros((len(rows), *sample_shape(preprocessors[name])))
            empty = np.flatnonzero(~batch_present.any(dim=1).numpy())
            if len(empty):
                raise ValueError(
                    f"{_samples_have(rows[empty])} no readable modality: the "
                    f"files could not be read ({_first_failure(dataset, log)})."
                )
            inputs = {k: v.to(device) for k, v in inputs.items()}
            mask = batch_present.to(device)
            with torch.no_grad(), autocast(device, precision):
                mean = combine([module(inputs, mask) for module in modules]).cpu().numpy()
            if temperatures is not None:
                mean = temperatures.scale(mean, batch_present.numpy())
            bad = np.flatnonzero(~np.isfinite(mean).all(axis=1))
            if len(bad):  # never a NaN probability, nor classes_[0] for a NaN
                raise ValueError(
                    f"The model's output is not finite for samples {_rows_text(rows[bad])}: "
                    "their inputs hold values too extreme for float32 arithmetic, or the "
                    "model's weights are not finite."
                )
            if out is None:
                out = np.empty((n, mean.shape[1]), dtype=np.float64)
            out[rows] = mean
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    log.failures.update(dataset.read_failures)
    log.warn("prediction")
    assert out is not None
    return out


def _first_failure(dataset: FusionDataset, log: ReadLog) -> str:
    failures = {**dataset.read_failures, **log.failures}
    if not failures:
        return "no file was read"
    (name, row), (path, message) = sorted(failures.items())[0]
    return message
