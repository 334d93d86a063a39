"""Fitted preprocessing of images and volumes into float32 arrays (C, *spatial).

One sample goes: read (a file through :mod:`.readers`, or an in-memory array) ->
the modality's ``transform`` -> channels first -> ``image_size`` -> the fitted channel
count and shape -> ``augment`` (training only) -> per-channel standardisation.
File-backed modalities are read this way per batch; in-memory arrays without a
transform keep a vectorised path. The deterministic steps (``read_rows``) and the rest
(``finish_rows``) are apart, so that decoded samples can be cached between them. The
module is over 500 lines because fit, the per-batch reads and the cache must go through
the very same steps: split, they would drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import deepcopy
from os import PathLike
from typing import Any

import numpy as np

from .readers import as_float_array, load_image, pil_to_array
from .tabular import _rows_text, check_magnitude

_SPATIAL_DIMS = {"image": 2, "volume": 3}
#: Present samples read in fit, evenly spaced, for the channel statistics of a
#: file-backed modality (reading every file twice would double the cost of the first
#: epoch; a few hundred images pin a mean and a standard deviation down closely).
FIT_SAMPLE_FILES = 256
#: Files read in fit when no statistics are needed (a frozen encoder's input): enough
#: to take the most common channel count.
FIT_SAMPLE_FILES_UNSTANDARDISED = 16
#: What ``on_read_error`` accepts.
READ_ERROR_POLICIES = ("raise", "missing")


class UnreadableFileError(ValueError):
    """A file of an image or volume modality could not be read or decoded."""


def is_file_item(item: Any) -> bool:
    """Whether one stored item is a path (a file, or a folder holding a DICOM series)."""
    return isinstance(item, (str, PathLike))


def holds_files(values: Any, present: np.ndarray) -> bool:
    """Whether a modality's stored values are (some) file paths, read per batch."""
    if not isinstance(values, np.ndarray) or values.dtype != object:
        return False
    return any(is_file_item(values[r]) for r in np.flatnonzero(present))


def _channels_first(item: np.ndarray, spatial: int) -> np.ndarray:
    """Give one sample a leading channel axis: (C, *spatial)."""
    if item.ndim == spatial:
        return item[None]
    if item.ndim == spatial + 1:
        if spatial == 2 and item.shape[-1] in (3, 4) and item.shape[0] not in (1, 3, 4):
            return np.moveaxis(item, -1, 0)  # channels-last (H, W, C)
        return item
    if spatial == 2 and item.ndim == 4 and item.shape[0] == 1 and item.shape[-1] in (3, 4):
        # a colour DICOM (secondary capture, ultrasound) as MONAI reads it: (1, H, W, 3)
        return np.moveaxis(item[0], -1, 0)
    raise ValueError(f"expected {spatial} or {spatial + 1} dimensions, got shape {item.shape}")


def _match_channels(item: np.ndarray, channels: int) -> np.ndarray:
    if item.shape[0] == channels:
        return item
    if channels == 1 and item.shape[0] in (3, 4):
        return item[:3].mean(axis=0, keepdims=True)  # colour -> grey
    if item.shape[0] == 1:
        return np.repeat(item, channels, axis=0)  # grey -> colour
    if channels == 3 and item.shape[0] == 4:
        return item[:3]  # drop alpha
    raise ValueError(f"has {item.shape[0]} channels, expected {channels}")


def _resize(item: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    if item.shape[1:] == tuple(size):
        return item
    if len(size) == 2:
        from PIL import Image

        return np.stack(
            [
                np.asarray(
                    Image.fromarray(channel.astype(np.float32), mode="F").resize(
                        (size[1], size[0]), Image.Resampling.BILINEAR
                    )
                )
                for channel in item
            ]
        )
    from scipy.ndimage import zoom

    factors = [t / s for t, s in zip(size, item.shape[1:])]
    return np.stack([zoom(channel, factors, order=1) for channel in item])


def _most_common_channels(samples: Mapping[int, np.ndarray]) -> np.ndarray | None:
    """The first sample having the most common channel count (ties: more channels)."""
    if not samples:
        return None
    counts: dict[int, int] = {}
    for sample in samples.values():
        counts[sample.shape[0]] = counts.get(sample.shape[0], 0) + 1
    channels = max(counts, key=lambda c: (counts[c], c))
    return next(s for s in samples.values() if s.shape[0] == channels)


def _evenly_spaced(rows: np.ndarray, count: int) -> np.ndarray:
    if len(rows) <= count:
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, count).round().astype(int))]


class ArrayPreprocessor:
    """Read, transform and standardise images or volumes into float32 arrays.

    Parameters
    ----------
    name : str
        Modality name, used in error messages.
    kind : {"image", "volume"}
        2-D images ``(C, H, W)`` or 3-D volumes ``(C, D, H, W)``.
    image_size : tuple of int, default=None
        Resize every sample to this spatial size. None requires equal sizes.
    transform : callable, default=None
        Applied to every sample as read (a MONAI MetaTensor with its affine when MONAI
        read a file, else a channels-first array); returns an array or tensor. A copy
        is kept.
    augment : callable, default=None
        Random transform applied to training batches only, after ``image_size``; it
        must keep the sample's shape. Transforms with ``set_random_state`` (MONAI's
        random transforms) are seeded once per batch. A copy is kept.
    standardize : bool, default=True
        Standardise each channel with the mean and standard deviation of fit. False
        passes samples on as transformed (a frozen encoder receives them so, and its
        features then do not depend on the training rows and can be cached).

    Notes
    -----
    Items may be arrays or paths. Missing samples become zeros (the model replaces them
    by the modality token). The channel statistics come from every present sample of
    an in-memory modality, and from :data:`FIT_SAMPLE_FILES` evenly spaced present
    samples of a file-backed one; the channel count is the most common among the
    samples read. A constant (e.g. black) image stays finite.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        image_size: tuple[int, ...] | None = None,
        transform: Callable | None = None,
        augment: Callable | None = None,
        standardize: bool = True,
    ) -> None:
        self.name = name
        self.kind = kind
        self.image_size = tuple(image_size) if image_size is not None else None
        # copies: random transforms carry state, and the user's objects stay untouched
        self.transform_fn = deepcopy(transform)
        self.augment_fn = deepcopy(augment)
        self.standardize = standardize

    # -- one sample ----------------------------------------------------------------
    def read(self, item: Any, row: int) -> np.ndarray:
        """One sample as a float32 ``(C, *spatial)`` array, transformed and resized.

        Raises
        ------
        FileNotFoundError
            A path that does not exist (naming the modality, row and path).
        UnreadableFileError
            A file that cannot be read or decoded (naming the modality, row and file).
        """
        spatial = _SPATIAL_DIMS[self.kind]
        if is_file_item(item):
            try:
                image = load_image(item)
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"Modality {self.name!r}, row {row}: {exc}") from None
            except ImportError:
                raise
            except Exception as exc:  # corrupt, truncated, not an image, no decoder
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise UnreadableFileError(
                    f"Modality {self.name!r}, row {row}: cannot read {str(item)!r} "
                    f"({type(exc).__name__}: {reason[:300]})."
                ) from exc
        elif hasattr(item, "getbands"):  # a PIL image
            image = pil_to_array(item)
        else:
            image = item
        if self.transform_fn is not None:
            try:
                image = self.transform_fn(image)
            except Exception as exc:
                raise ValueError(
                    f"Modality {self.name!r}, row {row}: its transform failed: {exc}"
                ) from exc
        try:
            array = _channels_first(as_float_array(image), spatial)
        except (ValueError, TypeError) as exc:
            if is_file_item(item):  # the file holds no such sample: unreadable as one
                raise UnreadableFileError(
                    f"Modality {self.name!r} ({self.kind}), row {row}: {str(item)!r} does "
                    f"not hold one {self.kind}: {exc}."
                ) from None
            raise ValueError(
                f"Modality {self.name!r} ({self.kind}), row {row}: {exc}."
            ) from None
        if self.image_size is not None:
            if len(self.image_size) != spatial:
                raise ValueError(
                    f"Modality {self.name!r}: image_size {self.image_size} must have "
                    f"{spatial} entries for a {self.kind}."
                )
            array = _resize(array, self.image_size)
        return array

    def _conform(self, sample: np.ndarray, row: int, item: Any) -> np.ndarray:
        try:
            sample = _match_channels(sample, self.channels_)
        except ValueError as exc:
            raise ValueError(f"Modality {self.name!r}, row {row}: {exc}.") from None
        if sample.shape[1:] != tuple(self.shape_):
            source = f" ({str(item)!r})" if is_file_item(item) else ""
            raise ValueError(
                f"Modality {self.name!r}: row {row}{source} has spatial shape "
                f"{sample.shape[1:]} but the model was fitted on {tuple(self.shape_)}. "
                "Resize the inputs or set Modality(image_size=...)."
            )
        return sample

    # -- many samples --------------------------------------------------------------
    def _dense(self, values: np.ndarray) -> np.ndarray | None:
        """An (n, C, *spatial) view of a numeric block, or None for per-item input."""
        if values.dtype == object:
            return None
        spatial = _SPATIAL_DIMS[self.kind]
        array = np.asarray(values, dtype=np.float32)
        if array.ndim == spatial + 1:
            array = array[:, None]
        elif spatial == 2 and array.ndim == 4 and array.shape[-1] in (3, 4) and (
            array.shape[1] not in (1, 3, 4)
        ):
            array = np.moveaxis(array, -1, 1)
        if array.ndim != spatial + 2:
            raise ValueError(
                f"Modality {self.name!r} ({self.kind}) must be an array shaped "
                f"(n, C, {'D, ' if spatial == 3 else ''}H, W). "
                f"Got shape {np.shape(values)} instead."
            )
        return array

    def _samples(
        self, values: Any, rows: np.ndarray, row_ids: np.ndarray, on_read_error: str,
        failures: dict[int, tuple[str, str]],
    ) -> dict[int, np.ndarray]:
        """Read the samples at ``rows``; unreadable files go to ``failures`` ("missing")."""
        out = {}
        for r in rows:
            r = int(r)
            try:
                out[r] = self.read(values[r], int(row_ids[r]))
            except (FileNotFoundError, UnreadableFileError) as exc:
                if on_read_error == "raise":
                    raise
                failures[r] = (str(values[r]), str(exc))
        return out

    def transform_rows(
        self,
        values: Any,
        present: np.ndarray,
        *,
        row_ids: np.ndarray | None = None,
        on_read_error: str = "raise",
        augment: bool = False,
        seed: int | None = None,
    ) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
        """Preprocess a block of samples; report the files that could not be read.

        Parameters
        ----------
        values : ndarray
            Stored values (numeric block or object array of items), samples on axis 0.
        present : ndarray of bool
            Presence mask of these samples.
        row_ids : ndarray of int, default=None
            Row numbers to name in errors; None is 0..n-1.
        on_read_error : {"raise", "missing"}, default="raise"
            "missing": an unreadable file leaves its row zero and is reported.
        augment : bool, default=False
            Apply the modality's ``augment`` (training batches).
        seed : int, default=None
            Seeds ``augment`` for this block.

        Returns
        -------
        array : ndarray of float32 (n, C, *spatial)
            Zeros where absent or unreadable.
        failures : dict of int to (str, str)
            Position in the block -> (file, message) of each unreadable file.
        """
        row_ids = np.arange(len(present)) if row_ids is None else np.asarray(row_ids)
        out, failures = self.read_rows(values, present, row_ids=row_ids,
                                       on_read_error=on_read_error)
        ok = np.setdiff1d(np.flatnonzero(present), list(failures), assume_unique=True)
        self.finish_rows(out, ok, row_ids=row_ids, augment=augment, seed=seed)
        return out, failures

    def read_rows(
        self,
        values: Any,
        present: np.ndarray,
        *,
        row_ids: np.ndarray | None = None,
        on_read_error: str = "raise",
    ) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
        """The deterministic part of :meth:`transform_rows`: read, ``transform``,
        channels, ``image_size`` and the fitted shape, without ``augment`` or
        standardisation (what a cache of decoded samples may keep).

        Parameters
        ----------
        values : ndarray
            Stored values, samples on axis 0.
        present : ndarray of bool
            Presence mask of these samples.
        row_ids : ndarray of int, default=None
            Row numbers to name in errors; None is 0..n-1.
        on_read_error : {"raise", "missing"}, default="raise"
            "missing": an unreadable file leaves its row zero and is reported.

        Returns
        -------
        array : ndarray of float32 (n, C, *spatial)
            Zeros where absent or unreadable.
        failures : dict of int to (str, str)
            Position in the block -> (file, message) of each unreadable file.
        """
        row_ids = np.arange(len(present)) if row_ids is None else np.asarray(row_ids)
        rows = np.flatnonzero(present)
        failures: dict[int, tuple[str, str]] = {}
        out = np.zeros((len(present), self.channels_, *self.shape_), dtype=np.float32)
        dense = self._dense(values) if isinstance(values, np.ndarray) else None
        if self._vectorised(dense):
            self._copy_block(dense, rows, row_ids, out)
        else:
            items = dense if dense is not None else values
            for r, sample in self._samples(items, rows, row_ids, on_read_error,
                                           failures).items():
                out[r] = self._conform(sample, int(row_ids[r]), items[r])
        return out, failures

    def finish_rows(
        self,
        out: np.ndarray,
        ok: np.ndarray,
        *,
        row_ids: np.ndarray | None = None,
        augment: bool = False,
        seed: int | None = None,
    ) -> np.ndarray:
        """The rest of :meth:`transform_rows`, in place on samples from
        :meth:`read_rows`: ``augment`` (training), the finite check, standardisation.

        Parameters
        ----------
        out : ndarray of float32 (n, C, *spatial)
            Samples as :meth:`read_rows` gives them; changed in place.
        ok : ndarray of int
            Positions of the samples that were read (the others stay zero).
        row_ids : ndarray of int, default=None
            Row numbers to name in errors; None is 0..n-1.
        augment : bool, default=False
            Apply the modality's ``augment``.
        seed : int, default=None
            Seeds ``augment`` for this block.

        Returns
        -------
        ndarray
            ``out``.
        """
        row_ids = np.arange(len(out)) if row_ids is None else np.asarray(row_ids)
        ok = np.asarray(ok, dtype=np.int64)
        if augment and self.augment_fn is not None and len(ok):
            self._augment(out, ok, row_ids, seed)
        self._check_finite(out, ok, row_ids)
        if self.standardize:
            expand = (slice(None), *([None] * len(self.shape_)))
            mean = np.asarray(self.mean_, dtype=np.float32)[expand]
            scale = np.asarray(self.scale_, dtype=np.float32)[expand]
            if len(ok) == len(out):  # in place: a boolean index would copy the block
                out -= mean
                out /= scale
            else:  # in chunks, for the same reason
                for start in range(0, len(ok), 1024):
                    chunk = ok[start : start + 1024]
                    out[chunk] = (out[chunk] - mean) / scale
        check_magnitude(self.name, out, row_ids)
        return out

    def _vectorised(self, dense: np.ndarray | None) -> bool:
        """Whether a numeric block is used as it is (no per-sample transform or resize)."""
        return dense is not None and self.transform_fn is None and self.image_size is None

    def _copy_block(self, dense: np.ndarray, rows: np.ndarray, row_ids: np.ndarray,
                    out: np.ndarray) -> None:
        """Copy the present rows of a numeric block into ``out``, 1,024 rows at a time:
        ``out[rows] = dense[rows]`` would first make a copy of the whole block."""
        for start in range(0, len(rows), 1024):
            chunk = rows[start : start + 1024]
            out[chunk] = self._conform_block(dense[chunk], row_ids[chunk])

    def _conform_block(self, block: np.ndarray, row_ids: np.ndarray) -> np.ndarray:
        if block.shape[1] != self.channels_:
            return np.stack([self._conform(s, int(r), None) for s, r in zip(block, row_ids)])
        if block.shape[2:] != tuple(self.shape_) and len(block):
            self._conform(block[0], int(row_ids[0]), None)  # raises, naming the row
        return block

    def _augment(self, out: np.ndarray, rows: np.ndarray, row_ids: np.ndarray,
                 seed: int | None) -> None:
        if seed is not None and hasattr(self.augment_fn, "set_random_state"):
            self.augment_fn.set_random_state(seed=int(seed) % (2**32))
        for r in rows:
            sample = as_float_array(self.augment_fn(out[r]))
            if sample.shape != out[r].shape:
                raise ValueError(
                    f"Modality {self.name!r}, row {int(row_ids[r])}: augment changed the "
                    f"sample's shape from {out[r].shape} to {sample.shape}; it must keep "
                    "it (crop or resize in 'transform' instead)."
                )
            out[r] = sample

    def _check_finite(self, out: np.ndarray, rows: np.ndarray, row_ids: np.ndarray) -> None:
        if not len(rows):  # no sample of this block has the modality
            return
        bad = rows[~np.isfinite(out[rows].reshape(len(rows), -1)).all(axis=1)]
        if len(bad):
            raise ValueError(
                f"Modality {self.name!r} has NaN or infinite pixels in rows "
                f"{_rows_text(row_ids[bad])}. Mark a missing {self.kind} with None "
                "instead."
            )

    # -- fit / transform -------------------------------------------------------------
    def fit(
        self, values: Any, present: np.ndarray, on_read_error: str = "raise",
        failures: dict[int, tuple[str, str]] | None = None,
    ) -> ArrayPreprocessor:
        """Learn the channel count, spatial shape and channel statistics.

        Parameters
        ----------
        values : ndarray
            Stored values (numeric block or object array of arrays or paths).
        present : ndarray of bool
            Presence mask.
        on_read_error : {"raise", "missing"}, default="raise"
            What an unreadable file does.
        failures : dict, default=None
            Collects the unreadable files met ("missing").

        Returns
        -------
        self
        """
        failures = {} if failures is None else failures
        rows = np.flatnonzero(present)
        row_ids = np.arange(len(present))
        dense = self._dense(values) if isinstance(values, np.ndarray) else None
        if self._vectorised(dense):
            samples = dense[rows] if len(rows) < len(dense) else dense
            first = samples[0] if len(samples) else None
        else:
            items = dense if dense is not None else values
            if holds_files(values, present):
                rows = _evenly_spaced(rows, FIT_SAMPLE_FILES if self.standardize
                                      else FIT_SAMPLE_FILES_UNSTANDARDISED)
            read = self._samples(items, rows, row_ids, on_read_error, failures)
            first = _most_common_channels(read)
            samples = read
        if first is None:
            raise ValueError(f"Modality {self.name!r} is missing for every sample.")
        # the channel count of the most samples read (a few grey files among colour
        # ones do not make a colour modality grey); others are converted
        self.channels_ = int(first.shape[0])
        self.shape_ = [int(s) for s in first.shape[1:]]
        if isinstance(samples, dict):
            rows = np.array(list(samples), dtype=np.int64)
            samples = np.stack([self._conform(s, r, values[r]) for r, s in samples.items()])
        else:
            samples = self._conform_block(samples, rows)
        self._check_finite(samples, np.arange(len(samples)), rows)
        self._fit_statistics(samples)
        return self

    def _fit_statistics(self, stacked: np.ndarray) -> None:
        if not self.standardize:
            self.mean_ = [0.0] * self.channels_
            self.scale_ = [1.0] * self.channels_
            return
        # channel statistics accumulated in chunks: a float64 copy of a large image
        # block would double the peak memory of fit
        axes = (0, *range(2, stacked.ndim))
        total = np.zeros(stacked.shape[1])
        total_sq = np.zeros(stacked.shape[1])
        for start in range(0, len(stacked), 1024):
            chunk = stacked[start : start + 1024].astype(np.float64)
            total += chunk.sum(axis=axes)
            total_sq += np.square(chunk).sum(axis=axes)
        count = max(stacked.size // max(stacked.shape[1], 1), 1)
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        self.mean_ = mean.tolist()
        # a constant channel (up to rounding in E[x^2] - E[x]^2) is left unscaled
        self.scale_ = np.where(std > 1e-6 * np.maximum(1.0, np.abs(mean)), std, 1.0).tolist()

    def transform(self, values: Any, present: np.ndarray, row_ids: np.ndarray | None = None,
                  unseen: Any = None) -> np.ndarray:
        """Preprocess every present sample (unreadable files raise); zeros elsewhere.

        ``row_ids`` are the row numbers named in errors (None: 0..n-1); ``unseen`` is
        accepted for a common signature with the tabular preprocessor.
        """
        return self.transform_rows(values, present, row_ids=row_ids)[0]

    @property
    def n_features_out_(self) -> tuple[int, ...]:
        """Shape of one transformed sample, ``(C, *spatial)``."""
        return (self.channels_, *self.shape_)

    def get_state(self) -> dict[str, Any]:
        """Return the fitted state as JSON-serialisable data."""
        if self.transform_fn is not None or self.augment_fn is not None:
            raise ValueError(
                f"Modality {self.name!r} has a transform or augment callable, which save() "
                "cannot store without pickle. Use pickle or joblib for this model."
            )
        return {
            "kind": self.kind, "name": self.name,
            "image_size": list(self.image_size) if self.image_size else None,
            "standardize": self.standardize,
            "channels_": self.channels_, "shape_": self.shape_,
            "mean_": self.mean_, "scale_": self.scale_,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ArrayPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`get_state` output."""
        self = cls(state["name"], state["kind"], state["image_size"],
                   standardize=state.get("standardize", True))
        for key in ("channels_", "shape_", "mean_", "scale_"):
            setattr(self, key, state[key])
        return self
