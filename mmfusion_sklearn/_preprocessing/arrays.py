"""Fitted preprocessing of images and volumes into float32 arrays (C, *spatial)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np

from .readers import read_file
from .tabular import _rows_text

_SPATIAL_DIMS = {"image": 2, "volume": 3}


def _channels_first(item: np.ndarray, spatial: int) -> np.ndarray:
    """Give one sample a leading channel axis: (C, *spatial)."""
    if item.ndim == spatial:
        return item[None]
    if item.ndim == spatial + 1:
        if spatial == 2 and item.shape[-1] in (3, 4) and item.shape[0] not in (1, 3, 4):
            return np.moveaxis(item, -1, 0)  # channels-last (H, W, C)
        return item
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


class ArrayPreprocessor:
    """Stack images or volumes into one float32 array and standardise each channel.

    Parameters
    ----------
    name : str
        Modality name, used in error messages.
    kind : {"image", "volume"}
        2-D images ``(C, H, W)`` or 3-D volumes ``(C, D, H, W)``.
    image_size : tuple of int, default=None
        Resize every sample to this spatial size. None requires equal sizes.

    Notes
    -----
    Items may be arrays or file paths. Missing samples become zeros (the model
    replaces them by the modality token). Channel mean and standard deviation come
    from the present samples in fit; a constant (e.g. black) image stays finite.
    """

    def __init__(self, name: str, kind: str, image_size: tuple[int, ...] | None = None):
        self.name = name
        self.kind = kind
        self.image_size = tuple(image_size) if image_size is not None else None

    def _sample(self, item: Any, row: int) -> np.ndarray:
        spatial = _SPATIAL_DIMS[self.kind]
        try:
            if isinstance(item, (str, PathLike)):
                try:
                    array = read_file(item)
                except FileNotFoundError as exc:
                    raise FileNotFoundError(
                        f"Modality {self.name!r}, row {row}: {exc}"
                    ) from None
            else:
                array = np.asarray(item, dtype=np.float32)
            array = _channels_first(array.astype(np.float32, copy=False), spatial)
        except ValueError as exc:
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

    def _stack(self, values: Any, present: np.ndarray, fitting: bool) -> np.ndarray:
        rows = np.flatnonzero(present)
        spatial = _SPATIAL_DIMS[self.kind]
        if values.dtype != object:
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
            if self.image_size is not None:
                array = np.stack([self._sample(a, r) for r, a in enumerate(array)])
            samples = {int(r): array[r] for r in rows}
        else:
            samples = {int(r): self._sample(values[r], int(r)) for r in rows}
        if fitting:
            first = next(iter(samples.values()), None)
            if first is None:
                raise ValueError(f"Modality {self.name!r} is missing for every sample.")
            self.channels_ = int(first.shape[0])
            self.shape_ = [int(s) for s in first.shape[1:]]
        shape = tuple(self.shape_)
        out = np.zeros((len(present), self.channels_, *shape), dtype=np.float32)
        for row, sample in samples.items():
            try:
                sample = _match_channels(sample, self.channels_)
            except ValueError as exc:
                raise ValueError(f"Modality {self.name!r}, row {row}: {exc}.") from None
            if sample.shape[1:] != shape:
                raise ValueError(
                    f"Modality {self.name!r}: row {row} has spatial shape "
                    f"{sample.shape[1:]} but the model was fitted on {shape}. Resize the "
                    "inputs or set Modality(image_size=...)."
                )
            out[row] = sample
        bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
        if bad.any():
            raise ValueError(
                f"Modality {self.name!r} has NaN or infinite pixels in rows "
                f"{_rows_text(np.flatnonzero(bad))}. Mark a missing {self.kind} with "
                "None instead."
            )
        return out

    def fit(self, values: Any, present: np.ndarray) -> ArrayPreprocessor:
        stacked = self._stack(values, present, fitting=True)
        if not present.all():  # a boolean index copies the whole block
            stacked = stacked[present]
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
        return self

    def transform(self, values: Any, present: np.ndarray) -> np.ndarray:
        stacked = self._stack(values, present, fitting=False)
        expand = (slice(None), *([None] * len(self.shape_)))
        mean = np.asarray(self.mean_, dtype=np.float32)[expand]
        scale = np.asarray(self.scale_, dtype=np.float32)[expand]
        if present.all():  # in place: a boolean index would make three full copies
            stacked -= mean
            stacked /= scale
        else:
            stacked[present] = (stacked[present] - mean) / scale
        return stacked

    @property
    def n_features_out_(self) -> tuple[int, ...]:
        """Shape of one transformed sample, ``(C, *spatial)``."""
        return (self.channels_, *self.shape_)

    def get_state(self) -> dict[str, Any]:
        """Return the fitted state as JSON-serialisable data."""
        return {
            "kind": self.kind, "name": self.name,
            "image_size": list(self.image_size) if self.image_size else None,
            "channels_": self.channels_, "shape_": self.shape_,
            "mean_": self.mean_, "scale_": self.scale_,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ArrayPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`get_state` output."""
        self = cls(state["name"], state["kind"], state["image_size"])
        for key in ("channels_", "shape_", "mean_", "scale_"):
            setattr(self, key, state[key])
        return self
