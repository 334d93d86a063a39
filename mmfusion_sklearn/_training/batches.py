"""Batches of a fit or a prediction: the data set of inputs per modality, presence,
targets and weights (in-memory tensors and lazy file sources), and the iterator that
slices or reads them batch by batch (DataLoader workers for files, DDP shards)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .distributed import DistributedContext

#: Whether DataLoader workers live for every pass of an iterator (a stage's epochs);
#: False starts them anew each pass, as before (``benchmarks/worker_startup.py``).
PERSISTENT_WORKERS = True


class FusionDataset(Dataset):
    """The samples of one data set: inputs per modality, presence, labels, weights.

    In-memory modalities are tensors, sliced per batch in one indexing operation;
    file-backed ones are *lazy sources* (:class:`~mmfusion_sklearn._training.sources.LazySource`)
    that read, transform and standardise the samples of a batch when it is drawn, in
    DataLoader workers when there are any. A subset (:meth:`subset`) shares both and
    keeps only the row numbers, so the members of an ensemble, each with its own
    training and held-out rows, hold no copy of the data.

    Parameters
    ----------
    inputs : mapping of str to Tensor
        One tensor per in-memory modality, samples on axis 0 (zeros where absent).
    present : Tensor (n, M) of bool
        Presence mask, columns in the order of ``names``.
    y : Tensor (n,), default=None
        Encoded targets: class indices (int64) or standardised values (float32); None
        for prediction.
    weight : Tensor (n,) of float, default=None
        Per-sample training weights.
    rows : Tensor (k,) of int64, default=None
        The rows of the tensors that make up this data set; None is all of them.
    lazy : mapping of str to LazySource, default=None
        Modalities read per batch.
    names : list of str, default=None
        Modality names in the order of the columns of ``present`` (needed with
        ``lazy``).
    """

    def __init__(
        self,
        inputs: Mapping[str, torch.Tensor],
        present: torch.Tensor,
        y: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
        rows: torch.Tensor | None = None,
        lazy: Mapping[str, Any] | None = None,
        names: list[str] | None = None,
    ) -> None:
        self.inputs = dict(inputs)
        self.present = present
        self.y = y
        self.weight = weight if weight is not None else torch.ones(len(present))
        self.rows = rows
        self.lazy = dict(lazy or {})
        self.names = list(names) if names is not None else list(self.inputs) + list(self.lazy)
        #: (modality, row) -> (file, message) of the files found unreadable so far
        self.read_failures: dict[tuple[str, int], tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self.present) if self.rows is None else len(self.rows)

    def __getitem__(self, index):  # a batch at once: index is a tensor of indices
        return self.batch(index)

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        return index if self.rows is None else self.rows[index]

    def subset(self, index: torch.Tensor) -> FusionDataset:
        """The samples at ``index`` as a new data set sharing these tensors."""
        subset = FusionDataset(self.inputs, self.present, self.y, self.weight,
                               rows=self._rows(torch.as_tensor(index)), lazy=self.lazy,
                               names=self.names)
        subset.read_failures = self.read_failures  # one record for the whole fit
        return subset

    def materialise(self, names: list[str] | None = None) -> tuple[
        dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None, torch.Tensor
    ]:
        """Tensors of this data set's rows: ``(inputs, present, y, weight)``.

        Parameters
        ----------
        names : list of str, default=None
            The in-memory modalities whose inputs are wanted (None: all); the others
            are left out.
        """
        rows = slice(None) if self.rows is None else self.rows
        inputs = {k: v[rows] for k, v in self.inputs.items() if names is None or k in names}
        y = None if self.y is None else self.y[rows]
        return inputs, self.present[rows], y, self.weight[rows]

    def read_batch(self, index: torch.Tensor, augment: bool = False, seed: int | None = None):
        """``(X, y, failures)`` for the samples at ``index``, on the CPU.

        Lazy modalities are read here; a file that could not be read (with
        ``on_read_error="missing"``) marks its sample's modality absent in ``present``
        and is listed in ``failures`` as ``(modality, row, file, message)``. A training
        sample left with no modality gets weight 0.
        """
        rows = self._rows(torch.as_tensor(index))
        inputs = {k: v[rows] for k, v in self.inputs.items()}
        present = self.present[rows]
        weight = self.weight[rows]
        failures = []
        if self.lazy:
            present = present.clone()
            row_ids = rows.numpy()
            for name, source in self.lazy.items():
                m = self.names.index(name)
                array, failed = source.take(row_ids, present[:, m].numpy(), augment=augment,
                                            seed=seed)
                inputs[name] = torch.from_numpy(array)
                for position, (path, message) in failed.items():
                    present[position, m] = False
                    failures.append((name, int(row_ids[position]), path, message))
            if failures:
                weight = torch.where(present.any(dim=1), weight, torch.zeros_like(weight))
        X = {"inputs": inputs, "present": present, "weight": weight}
        y = None if self.y is None else self.y[rows]
        return X, y, failures

    def batch(self, index: torch.Tensor, device: torch.device | str = "cpu"):
        """``(X, y)`` for the samples at ``index``, moved to ``device`` (no augmentation:
        training batches of lazy modalities come from :meth:`read_batch`)."""
        X, y, failures = self.read_batch(index)
        self.record_failures(failures)
        return to_device(X, y, device)

    def record_failures(self, failures: list[tuple[str, int, str, str]]) -> None:
        """Remember unreadable files met in a batch (read in this or a worker process)."""
        for name, row, path, message in failures:
            self.read_failures[(name, row)] = (path, message)


def to_device(X: dict[str, Any], y: torch.Tensor | None, device: torch.device | str):
    """Move a batch ``(X, y)`` to ``device`` (non-blocking from pinned memory on CUDA)."""
    device = torch.device(device)
    if device.type == "cpu":
        return X, y
    nb = device.type == "cuda"
    X = {
        "inputs": {k: v.to(device, non_blocking=nb) for k, v in X["inputs"].items()},
        "present": X["present"].to(device, non_blocking=nb),
        "weight": X["weight"].to(device, non_blocking=nb),
    }
    return X, None if y is None else y.to(device, non_blocking=nb)


class BatchIterator:
    """Iterate over a :class:`FusionDataset` in batches.

    In-memory data sets are sliced in the main process, one indexing operation per
    batch. Data sets with lazy (file-backed) modalities go through a torch
    ``DataLoader`` whose ``num_workers`` processes each read whole batches; batches are
    pinned and copied without blocking on CUDA.

    Parameters
    ----------
    dataset : FusionDataset
        The data.
    batch_size : int
        Batch size.
    shuffle : bool, default=False
        Shuffle at every pass (training); training also applies ``augment``.
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
    num_workers : int, default=0
        DataLoader worker processes for lazy modalities (0: read in this process).
    augment_generator : torch.Generator, default=None
        Random source of the per-batch seeds of training augmentation (apart from the
        shuffling, so that augmentation leaves batch orders unchanged).
    distributed : DistributedContext, default=None
        Under DDP, this process's share: a training pass takes its rows of a
        ``DistributedSampler`` order in batches of ``batch_size / world_size`` rows
        (the same number of batches on every rank); any other pass every
        ``world_size``-th row.
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
        num_workers: int = 0,
        augment_generator: torch.Generator | None = None,
        distributed: DistributedContext | None = None,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.device = device
        self.drop_singleton = drop_singleton
        if generator is None and shuffle:
            generator = seeded_generator(seed)
        self.generator = generator
        self.num_workers = num_workers
        self.augment_generator = augment_generator
        self.distributed = distributed
        self._loader: DataLoader | None = None

    def _local_size(self) -> tuple[int, int]:
        """Rows this process iterates over in a pass, and its batch size."""
        n, ctx = len(self.dataset), self.distributed
        if ctx is None:
            return n, self.batch_size
        if self.shuffle:  # DistributedSampler pads every rank to the same count
            return math.ceil(n / ctx.world_size), ctx.batch_size(self.batch_size)
        return len(ctx.shard(n)), self.batch_size

    def _bounds(self) -> list[tuple[int, int]]:
        n, size = self._local_size()
        bounds = [(i, min(i + size, n)) for i in range(0, n, size)]
        if self.drop_singleton and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def __len__(self) -> int:
        return len(self._bounds())

    def _order(self) -> torch.Tensor | None:
        """The rows of a pass in order (None: all rows in their order)."""
        n, ctx = len(self.dataset), self.distributed
        if ctx is None:
            return torch.randperm(n, generator=self.generator) if self.shuffle else None
        if self.shuffle:  # one seed per pass, drawn alike on every rank
            seed = int(torch.randint(0, 2**31 - 1, (), generator=self.generator))
            return ctx.training_order(n, seed)
        return ctx.shard(n)

    def _requests(self) -> list[tuple[torch.Tensor, int | None]]:
        """Row indices of every batch, with the seed of its augmentation (training)."""
        order = self._order()
        requests = []
        for start, stop in self._bounds():
            index = order[start:stop] if order is not None else torch.arange(start, stop)
            seed = None
            if self.shuffle and self.dataset.lazy and self.augment_generator is not None:
                seed = int(torch.randint(0, 2**31 - 1, (), generator=self.augment_generator))
            requests.append((index, seed))
        return requests

    def __iter__(self) -> Iterator:
        if not self.dataset.lazy:
            for index, _ in self._requests():
                yield self.dataset.batch(index, self.device)
            return
        if not any(getattr(source, "needs_workers", True)
                   for source in self.dataset.lazy.values()):
            # samples decoded already, not augmented: a copy and a standardisation per
            # batch, cheaper here than through worker processes and their queues
            for index, seed in self._requests():
                X, y, failures = self.dataset.read_batch(index, augment=self.shuffle,
                                                         seed=seed)
                self.dataset.record_failures(failures)
                yield to_device(X, y, self.device)
            return
        if self._loader is None:
            self._loader = DataLoader(
                _BatchReads(self.dataset, augment=self.shuffle),
                sampler=_PassRequests(self),
                batch_size=None,
                num_workers=self.num_workers,
                # workers live as long as this iterator (every epoch of a stage), not
                # one pass: starting them costs a fork and the dataset's copy each time
                persistent_workers=PERSISTENT_WORKERS and self.num_workers > 0,
                pin_memory=torch.device(self.device).type == "cuda",
                # its own generator: a DataLoader draws its workers' base seed, which
                # from the global generator would shift dropout and make files train
                # otherwise than the same images in memory
                generator=torch.Generator().manual_seed(0),
            )
        for X, y, failures in self._loader:
            self.dataset.record_failures(failures)
            yield to_device(X, y, self.device)


class _PassRequests:
    """The sampler of a persistent DataLoader: each pass draws its batches anew.

    It refers to its iterator weakly: a reference cycle (iterator -> loader -> sampler
    -> iterator) would leave a dropped loader's live workers to the cyclic garbage
    collector, which may run in a worker forked later, where shutting them down fails.
    """

    def __init__(self, iterator: BatchIterator) -> None:
        self._iterator = weakref.ref(iterator)

    def __iter__(self):
        # drawn at the first batch, not when iter() is called: a DataLoader calls it
        # twice as it starts its workers, and two draws would shift the random stream
        iterator = self._iterator()
        if iterator is not None:
            yield from iterator._requests()

    def __len__(self) -> int:
        iterator = self._iterator()
        return 0 if iterator is None else len(iterator)


class _BatchReads(Dataset):
    """A map-style view whose item ``(index, seed)`` is a whole batch, read on the CPU."""

    def __init__(self, dataset: FusionDataset, augment: bool) -> None:
        self.dataset = dataset
        self.augment = augment

    def __getitem__(self, request):
        index, seed = request
        return self.dataset.read_batch(index, augment=self.augment, seed=seed)


def seeded_generator(seed: int | None = None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or from the global torch seed when None."""
    if seed is None:  # follow the global torch seed, like a DataLoader
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator
