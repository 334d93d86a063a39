"""Infer modality kinds from the values a user passes (no torch here)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mha", ".nrrd")


def path_kind(path: str | PathLike) -> str | None:
    """Return ``"image"`` or ``"volume"`` for a path, else None.

    A known suffix decides; a folder is a DICOM series (a volume); a file without a
    known suffix that starts with the DICOM preamble is an image.
    """
    text = str(path).lower()
    if text.endswith(VOLUME_SUFFIXES):
        return "volume"
    if text.endswith(IMAGE_SUFFIXES):
        return "image"
    target = Path(path)
    if target.is_dir():
        return "volume"
    if target.is_file():
        try:
            if has_dicom_preamble(target):
                return "image"
            from PIL import Image

            with Image.open(target):  # reads the header only
                return "image"
        except Exception:  # not an image pillow knows
            return None
    return None


def has_dicom_preamble(path: str | PathLike) -> bool:
    """Whether a file starts as a DICOM file does ("DICM" after a 128-byte preamble)."""
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def looks_like_path(text: str) -> bool:
    """Whether a string is most likely a file path (a separator and a file suffix)."""
    name = text.replace("\\", "/").rsplit("/", 1)
    return len(name) == 2 and "." in name[1] and " " not in name[1] and len(name[1]) > 2


def array_item_kind(shape: tuple[int, ...]) -> str:
    """Kind of one sample given as an array of ``shape`` (no sample axis)."""
    if len(shape) <= 1:
        return "tabular"
    if len(shape) == 2:
        return "image"
    if len(shape) == 3:
        # (C, H, W) with few channels, (H, W, C) channels-last, else (D, H, W)
        if shape[0] <= 4 or shape[-1] in (3, 4):
            return "image"
        return "volume"
    if len(shape) == 4:
        return "volume"
    raise ValueError(f"A sample array of shape {shape} has too many dimensions (at most 4).")


def infer_kind(name: str, values: Any, present: np.ndarray) -> str:
    """Infer the kind of modality ``name`` from its stored values.

    Parameters
    ----------
    name : str
        Modality name, used in error messages.
    values : DataFrame, ndarray or object ndarray
        Values as stored by :class:`~mmfusion_sklearn.MultimodalData`.
    present : ndarray of bool
        Presence mask of the modality.

    Returns
    -------
    str
        One of ``"tabular"``, ``"image"``, ``"volume"``.
    """
    if isinstance(values, pd.DataFrame):
        return "tabular"
    if values.dtype != object:
        ndim = values.ndim
        if ndim <= 2:
            return "tabular"
        if ndim in (3, 4):
            return "image"
        if ndim == 5:
            return "volume"
        raise ValueError(
            f"Modality {name!r} is an array of {ndim} dimensions; expected 2 (table), "
            "3 or 4 (images) or 5 (volumes)."
        )
    first = next((v for v, p in zip(values, present) if p), None)
    if first is None:
        raise ValueError(
            f"Modality {name!r} is missing for every sample, so its kind cannot be "
            "inferred; declare it in 'modalities' or leave the key out."
        )
    if isinstance(first, (str, PathLike)):
        kind = path_kind(first)
        if kind is not None:
            return kind
        if isinstance(first, PathLike) or Path(first).exists() or looks_like_path(first):
            raise ValueError(
                f"Modality {name!r} holds what look like file paths ({str(first)!r}) of a "
                "type that could not be recognised (the file is missing, or not an image "
                "pillow, DICOM or NIfTI reads). Declare its kind in 'modalities' "
                "('image' or 'volume'), or pass strings that are categories without "
                "path separators."
            )
        return "tabular"
    if hasattr(first, "getbands"):  # a PIL image
        return "image"
    if isinstance(first, (np.ndarray, list, tuple)) or hasattr(first, "__array__"):
        return array_item_kind(np.shape(first))
    return "tabular"
