"""Caches of frozen-encoder features and of decoded samples, in this process and
optionally on disk (no torch).

A frozen encoder (a pretrained backbone, a foundation model) gives the same features
for the same sample every time, so each sample is encoded once per process instead of
once per fit: the folds of a cross-validation, a grid search and the trials of a study
in one process reuse them. Entries are keyed by a *namespace* (the encoder's weights
and the reading settings of its modality) and a *sample key* (the sample's bytes, or a
file's path, size and modification time). With a cache folder they are also written to
disk, one ``.npy`` file per sample written atomically, so that processes (``n_jobs``)
and later sessions share them.

The same store keeps *decoded samples* of image and volume files (:data:`SAMPLE_CACHE`,
the deterministic part of their reading: decode, ``transform``, channels, resize), so
that a file is decoded once, not once per epoch, fold or trial.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

#: Bytes of features the in-process cache holds before it drops the least recently used.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: The sub-folder of ``cache_dir`` that holds features (so a shared folder stays tidy).
CACHE_SUBDIR = "mmfusion-features"
#: The sub-folder of ``cache_dir`` that holds decoded samples.
SAMPLE_SUBDIR = "mmfusion-samples"


def digest(*parts: Any) -> str:
    """A hex SHA-256 of ``parts`` (bytes are hashed as they are, others by ``repr``)."""
    hasher = hashlib.sha256()
    for part in parts:
        if isinstance(part, memoryview):
            part = part.tobytes()
        hasher.update(part if isinstance(part, bytes) else repr(part).encode())
        hasher.update(b"\x00")
    return hasher.hexdigest()


def callable_key(function: Any) -> str:
    """A key of a transform that is equal for equal copies (clones) of it.

    Its pickle where it has one (MONAI transforms, functions defined in a module);
    else, for a lambda or a local function, its code and the values it closes over;
    else its type and identity (cached within one object's life only).
    """
    if function is None:
        return "none"
    try:
        return digest(pickle.dumps(function, protocol=4))
    except Exception:  # lambdas, local functions, objects holding them
        code = getattr(function, "__code__", None)
        if code is not None:
            closure = tuple(c.cell_contents for c in (function.__closure__ or ()))
            return digest(code.co_code, code.co_consts, code.co_names, function.__qualname__,
                          closure)
        return digest(type(function).__qualname__, id(function))


def sample_key(item: Any) -> str:
    """The key of one stored sample: a file's resolved path, size and modification
    time, or an array's dtype, shape and bytes."""
    if isinstance(item, (str, PathLike)):
        path = Path(item).resolve()
        stat = path.stat()
        if path.is_dir():  # a DICOM series: its files' names, sizes and times
            entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                             for e in os.scandir(path) if e.is_file())
            return digest("dir", str(path), entries)
        return digest("file", str(path), stat.st_size, stat.st_mtime_ns)
    array = np.ascontiguousarray(item)
    if array.dtype == object:  # a table row of mixed values
        return digest("objects", array.shape, repr(array.tolist()))
    return digest("array", array.dtype.str, array.shape, memoryview(array).cast("B"))


class FeatureCache:
    """Per-sample arrays by (namespace, sample key), least recently used first out.

    Parameters
    ----------
    max_bytes : int, default=DEFAULT_MAX_BYTES
        Memory held in this process; the least recently used entries go beyond it
        (0: nothing is held in memory).
    subdir : str, default=CACHE_SUBDIR
        The sub-folder of a cache folder that holds its files.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, subdir: str = CACHE_SUBDIR) -> None:
        self.max_bytes = max_bytes
        self.subdir = subdir
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry held in memory (files in cache folders stay)."""
        self._entries.clear()
        self._bytes = 0
        self.hits = self.misses = 0

    def _file(self, directory: str | PathLike, namespace: str, key: str) -> Path:
        return Path(directory) / self.subdir / namespace[:32] / key[:2] / f"{key}.npy"

    def get(
        self, namespace: str, keys: Sequence[str], directory: str | PathLike | None = None,
        memory: bool = True,
    ) -> list[np.ndarray | None]:
        """The cached arrays of ``keys`` (None where absent), from memory, then disk
        (kept in memory too unless ``memory`` is False)."""
        out: list[np.ndarray | None] = []
        for key in keys:
            entry = self._entries.get((namespace, key))
            if entry is None and directory is not None:
                path = self._file(directory, namespace, key)
                try:
                    entry = np.load(path, allow_pickle=False)
                except (OSError, ValueError, EOFError):  # absent, being written, damaged
                    entry = None
                if entry is not None and memory:
                    self._remember(namespace, key, entry)
            elif entry is not None:
                self._entries.move_to_end((namespace, key))
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
            out.append(entry)
        return out

    def contains(self, namespace: str, key: str,
                 directory: str | PathLike | None = None) -> bool:
        """Whether ``key`` is cached in memory or under ``directory`` (not counted as a
        hit or a miss)."""
        if (namespace, key) in self._entries:
            return True
        return directory is not None and self._file(directory, namespace, key).is_file()

    def put(
        self, namespace: str, keys: Sequence[str], features: np.ndarray,
        directory: str | PathLike | None = None, memory: bool = True,
    ) -> None:
        """Store one array per key (in memory unless ``memory`` is False, and as a file
        under ``directory``)."""
        for key, row in zip(keys, features):
            row = np.array(row, dtype=np.float32)  # a copy, not a view of a batch
            if memory:
                self._remember(namespace, key, row)
            if directory is not None:
                path = self._file(directory, namespace, key)
                path.parent.mkdir(parents=True, exist_ok=True)
                # written beside, then renamed: a reader never sees half a file
                handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                try:
                    with os.fdopen(handle, "wb") as stream:
                        np.save(stream, row, allow_pickle=False)
                    os.replace(temporary, path)
                except BaseException:
                    Path(temporary).unlink(missing_ok=True)
                    raise

    def hold(self, namespace: str, keys: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
        """Keep ``arrays`` in memory as they are (no copy: the caller shares them and
        never writes to them)."""
        for key, array in zip(keys, arrays):
            self._remember(namespace, key, array)

    def _remember(self, namespace: str, key: str, row: np.ndarray) -> None:
        previous = self._entries.pop((namespace, key), None)
        if previous is not None:
            self._bytes -= previous.nbytes
        if row.nbytes > self.max_bytes:  # never held (a bound of 0 turns memory off)
            return
        self._entries[(namespace, key)] = row
        self._bytes += row.nbytes
        self._evict()

    def resize(self, max_bytes: int) -> None:
        """Change the bound, dropping the least recently used entries beyond it."""
        self.max_bytes = max_bytes
        self._evict()

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.nbytes


#: The cache every estimator of this process shares.
FEATURE_CACHE = FeatureCache()
#: Decoded image and volume samples, shared by every estimator of this process.
SAMPLE_CACHE = FeatureCache(subdir=SAMPLE_SUBDIR)


def clear_feature_cache() -> None:
    """Empty the in-process cache of frozen-encoder features.

    Files written under an estimator's ``cache_dir`` are kept; delete the folder's
    ``mmfusion-features`` sub-folder to remove them.

    Examples
    --------
    >>> from mmfusion_sklearn import clear_feature_cache
    >>> clear_feature_cache()
    """
    FEATURE_CACHE.clear()


def clear_sample_cache() -> None:
    """Empty the in-process cache of decoded image and volume samples.

    Files written under an estimator's ``cache_dir`` are kept; delete the folder's
    ``mmfusion-samples`` sub-folder to remove them.

    Examples
    --------
    >>> from mmfusion_sklearn import clear_sample_cache
    >>> clear_sample_cache()
    """
    SAMPLE_CACHE.clear()


def set_sample_cache_size(max_bytes: int) -> int:
    """Bound the memory that decoded image and volume samples may hold in this process.

    A file-backed modality whose decoded training samples fit within the bound is
    decoded once per fit (and reused by later fits of this process); above it, files
    are decoded per batch, through ``cache_dir`` where one is set. 0 holds nothing in
    memory. The entries beyond a lowered bound are dropped, least recently used first.

    Parameters
    ----------
    max_bytes : int
        The bound in bytes (default 2 GiB).

    Returns
    -------
    int
        The previous bound.

    Examples
    --------
    >>> from mmfusion_sklearn import set_sample_cache_size
    >>> previous = set_sample_cache_size(512 * 1024**2)
    >>> _ = set_sample_cache_size(previous)
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or (
            max_bytes < 0):
        raise ValueError(f"max_bytes must be an integer >= 0, got {max_bytes!r}.")
    previous = SAMPLE_CACHE.max_bytes
    SAMPLE_CACHE.resize(int(max_bytes))
    return previous
