"""Read image and volume files into arrays shaped (C, H, W) or (C, D, H, W).

Pillow reads PNG/JPEG/TIFF/BMP; pydicom reads DICOM and nibabel reads NIfTI, both
imported only when such a file is met so that the package imports without them.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from .._data.inference import VOLUME_SUFFIXES


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if image.mode in ("L", "I", "I;16", "F", "1"):
            array = np.asarray(image, dtype=np.float32)[None]
        else:
            array = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
    return array


def _read_dicom(path: Path) -> np.ndarray:
    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"Reading the DICOM file {str(path)!r} needs pydicom: pip install pydicom"
        ) from exc
    dataset = pydicom.dcmread(path)
    array = dataset.pixel_array.astype(np.float32)
    slope = float(getattr(dataset, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)
    array = array * slope + intercept
    if array.ndim == 3 and getattr(dataset, "SamplesPerPixel", 1) == 3:
        return array.transpose(2, 0, 1)  # colour: (H, W, 3) -> (3, H, W)
    return array[None]  # (1, H, W) or multi-frame (1, D, H, W)


def _read_nifti(path: Path) -> np.ndarray:
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"Reading the NIfTI file {str(path)!r} needs nibabel: pip install nibabel"
        ) from exc
    array = np.asarray(nibabel.load(str(path)).get_fdata(dtype=np.float32))
    if array.ndim == 4:  # (X, Y, Z, C) -> (C, X, Y, Z)
        return array.transpose(3, 0, 1, 2)
    return array[None]


def read_file(path: str | PathLike) -> np.ndarray:
    """Read one image or volume file into a float32 array with channels first.

    Parameters
    ----------
    path : str or path-like
        A PNG/JPEG/TIFF/BMP image, a DICOM file (``.dcm`` or no suffix) or a NIfTI
        volume (``.nii``/``.nii.gz``).

    Returns
    -------
    ndarray of float32
        ``(C, H, W)`` for images, ``(C, D, H, W)`` for volumes.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (never a silent blank image).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {str(path)!r}")
    name = path.name.lower()
    if name.endswith(VOLUME_SUFFIXES):
        return _read_nifti(path)
    if name.endswith((".dcm", ".dicom")) or "." not in name:
        return _read_dicom(path)
    return _read_pillow(path)
