"""Decoded image and volume samples: each file decoded once, not once per epoch.

The deterministic part of reading a sample (decode, ``transform``, channels, resize:
the preprocessor's ``read_rows``) is kept in :data:`~.cache.SAMPLE_CACHE`, keyed by the
file's identity (resolved path, size, modification time) within a namespace of the
reading settings, in this process's memory up to the cache's bound and under
``cache_dir`` on disk. Augmentation and standardisation (``finish_rows``) run per batch
after it, so random augmentation still draws anew in every epoch.

A fit whose decoded training samples fit within the bound decodes them all before
its first epoch (:func:`decode_all`, in DataLoader workers where there are any) into
one block that every epoch slices (:class:`DecodedSource`), as MONAI's
``CacheDataset`` does; above the bound, and in prediction, files are read per batch
through the cache (:class:`SampleReads`). Only the main process holds samples in
memory: a DataLoader worker holding its own copies would multiply the bound by the
number of workers.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from .._data.messages import user_stacklevel
from .._preprocessing.arrays import is_file_item
from .._version import __version__
from . import cache as _cache
from .cache import callable_key, digest, sample_key

#: Rows decoded per DataLoader item in :func:`decode_all`.
DECODE_CHUNK = 32


def sample_namespace(preprocessor: Any) -> str:
    """The cache namespace of a fitted image or volume preprocessor: everything that
    changes a decoded sample (kind, size, channels, shape, ``transform``, and the
    package's version, whose readers made it)."""
    return digest(
        "decoded-samples-v1", __version__, preprocessor.kind, preprocessor.image_size,
        preprocessor.channels_, tuple(preprocessor.shape_),
        callable_key(preprocessor.transform_fn),
    )


def _in_main_process() -> bool:
    return get_worker_info() is None


class SampleReads:
    """Reads samples through the decoded-sample cache.

    Parameters
    ----------
    namespace : str
        From :func:`sample_namespace`.
    cache_dir : str or None
        Folder of the persistent cache (its ``mmfusion-samples`` sub-folder). A folder
        that cannot be written (a full disk, no permission) is left alone after one
        warning: the samples are then decoded as if it were not set.
    remember : bool, default=True
        Keep decoded samples in this process's memory. Prediction does not: it streams,
        and what grows with n is its output alone (it still takes the samples held).
    """

    def __init__(self, namespace: str, cache_dir: str | None, remember: bool = True) -> None:
        self.namespace = namespace
        self.cache_dir = cache_dir
        self.remember = remember
        #: samples decoded (cache misses) by this object in this process
        self.decoded = 0

    def read(self, preprocessor: Any, values: Any, present: np.ndarray,
             row_ids: np.ndarray, on_read_error: str, memory: bool | None = None
             ) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
        """``preprocessor.read_rows(values, present, ...)``, with the files' samples
        taken from the cache where they are and cached where they were not (in memory
        when ``memory``, by default in the main process only)."""
        store = _cache.SAMPLE_CACHE
        if memory is None:
            memory = self.remember and _in_main_process()
        keyed = self._keys(values, np.flatnonzero(present))
        found = store.get(self.namespace, list(keyed.values()), self.cache_dir,
                          memory=memory) if keyed else []
        hits = {r: entry for r, entry in zip(keyed, found) if _usable(entry, preprocessor)}
        todo = present.copy()
        todo[list(hits)] = False
        out, failures = preprocessor.read_rows(values, todo, row_ids=row_ids,
                                               on_read_error=on_read_error)
        for r, entry in hits.items():
            out[r] = entry
        fresh = [r for r in np.flatnonzero(todo) if r in keyed and r not in failures]
        self.decoded += int(todo.sum()) - len(failures)
        if fresh:
            self.put(store, [keyed[r] for r in fresh], out[fresh], memory)
        return out, failures

    def put(self, store: Any, keys: list[str], samples: np.ndarray, memory: bool) -> None:
        """Cache freshly decoded samples; a folder that cannot take them is dropped."""
        try:
            store.put(self.namespace, keys, samples, self.cache_dir, memory=memory)
        except OSError as exc:
            warnings.warn(
                f"The decoded-sample cache under cache_dir={self.cache_dir!r} cannot be "
                f"written ({type(exc).__name__}: {exc}); this fit goes on without it "
                "(files are decoded as if cache_dir were not set).",
                UserWarning, stacklevel=user_stacklevel(),
            )
            self.cache_dir = None
            if memory:
                store.put(self.namespace, keys, samples, None, memory=True)

    @staticmethod
    def _keys(values: Any, rows: np.ndarray) -> dict[int, str]:
        """Cache keys of the rows holding files (a file gone or unreadable has none:
        ``read_rows`` then says what is wrong, naming the row)."""
        keyed: dict[int, str] = {}
        for r in rows:
            item = values[r]
            if is_file_item(item):
                try:
                    keyed[int(r)] = sample_key(item)
                except OSError:
                    pass
        return keyed


def _usable(entry: np.ndarray | None, preprocessor: Any) -> bool:
    """A cached sample of the expected shape and dtype (a damaged or foreign file on
    disk is a miss: decoded again and rewritten)."""
    expected = (int(preprocessor.channels_), *map(int, preprocessor.shape_))
    return entry is not None and entry.shape == expected and entry.dtype == np.float32


class DecodedSource:
    """One modality's training samples, decoded once.

    Parameters
    ----------
    samples : list of ndarray or None
        Each training row's decoded sample (None where absent or unreadable), shared
        with the cache and never written to.
    preprocessor : ArrayPreprocessor
        Its fitted preprocessor (``finish_rows``: augment, standardise).
    """

    def __init__(self, samples: list[np.ndarray | None], preprocessor: Any) -> None:
        self.samples = samples
        self.preprocessor = preprocessor
        self.shape = (int(preprocessor.channels_), *map(int, preprocessor.shape_))
        #: DataLoader workers pay off only for an ``augment`` (decoding is done)
        self.needs_workers = preprocessor.augment_fn is not None

    def take(self, rows: np.ndarray, present: np.ndarray, augment: bool = False,
             seed: int | None = None) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
        """Finished samples at ``rows`` (zeros where absent); no file is read."""
        out = np.zeros((len(rows), *self.shape), dtype=np.float32)
        ok = []
        for i, r in enumerate(rows):
            sample = self.samples[int(r)]
            if present[i] and sample is not None:
                out[i] = sample  # a copy: augment and standardise work in place on it
                ok.append(i)
        self.preprocessor.finish_rows(out, np.asarray(ok, dtype=np.int64),
                                      row_ids=np.asarray(rows), augment=augment, seed=seed)
        return out, {}


class _Chunks(Dataset):
    """Item i: the decoded samples of the i-th chunk of rows (a DataLoader item)."""

    def __init__(self, reads: SampleReads, preprocessor: Any, values: Any,
                 chunks: list[np.ndarray], on_read_error: str) -> None:
        self.reads = reads
        self.preprocessor = preprocessor
        self.values = values
        self.chunks = chunks
        self.on_read_error = on_read_error

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int):
        rows = self.chunks[i]
        # not kept in memory while decoding: decode_all keeps the samples it returns
        out, failures = self.reads.read(self.preprocessor, self.values[rows],
                                        np.ones(len(rows), dtype=bool), rows,
                                        self.on_read_error, memory=False)
        return rows, out, failures


def decode_all(values: Any, preprocessor: Any, present: np.ndarray, reads: SampleReads,
               *, on_read_error: str, num_workers: int = 0,
               ) -> tuple[list[np.ndarray | None], dict[int, tuple[str, str]]]:
    """Decode every present sample once: the samples of a :class:`DecodedSource`.

    Parameters
    ----------
    values : ndarray of object
        The modality's stored items.
    preprocessor : ArrayPreprocessor
        Its fitted preprocessor.
    present : ndarray of bool (n,)
        Rows to decode.
    reads : SampleReads
        The cache to read through. The samples are then held by the in-process cache
        as they are returned (one copy in memory, shared).
    on_read_error : {"raise", "missing"}
        What an unreadable file does.
    num_workers : int, default=0
        DataLoader workers decoding chunks of rows.

    Returns
    -------
    samples : list of ndarray or None
        Per row (n), None where absent or unreadable.
    failures : dict of int to (str, str)
        Row -> (file, message) of each unreadable file ("missing").
    """
    rows = np.flatnonzero(present)
    samples: list[np.ndarray | None] = [None] * len(present)
    # samples this process holds already (an earlier fold or trial) are not sent out
    keyed = reads._keys(values, rows)
    held = _cache.SAMPLE_CACHE.get(reads.namespace, list(keyed.values()), None)
    for r, entry in zip(keyed, held):
        if _usable(entry, preprocessor):
            samples[r] = entry
    rows = np.array([r for r in rows if samples[r] is None], dtype=np.int64)
    chunks = [rows[i : i + DECODE_CHUNK] for i in range(0, len(rows), DECODE_CHUNK)]
    loader = DataLoader(
        _Chunks(reads, preprocessor, values, chunks, on_read_error), batch_size=None,
        num_workers=num_workers if len(chunks) > 1 else 0,
        # its own generator: drawing the workers' seed from the global one would shift
        # the fit's random stream
        generator=torch.Generator().manual_seed(0),
    )
    failures: dict[int, tuple[str, str]] = {}
    for chunk_rows, out, chunk_failures in loader:
        chunk_rows = np.asarray(chunk_rows)
        out = np.asarray(out)
        for i, r in enumerate(chunk_rows):
            if i in chunk_failures:
                failures[int(r)] = chunk_failures[i]
            else:
                samples[int(r)] = np.array(out[i])  # its own buffer: one row, not a chunk
    decoded_now = set(rows.tolist())
    fresh = {r: key for r, key in keyed.items()
             if r in decoded_now and samples[r] is not None}
    _cache.SAMPLE_CACHE.hold(reads.namespace, list(fresh.values()),
                             [samples[r] for r in fresh])
    return samples, failures


def decoded_bytes(preprocessor: Any, count: int) -> int:
    """Bytes of ``count`` decoded samples of a fitted preprocessor."""
    return 4 * int(count) * int(preprocessor.channels_) * int(
        np.prod([int(s) for s in preprocessor.shape_]))
