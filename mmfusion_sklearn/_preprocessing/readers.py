"""Read image and volume files into channel-first arrays, through MONAI where it is installed.

2-D raster files (PNG, JPEG, TIFF, BMP, GIF) are read by pillow, as ``(C, rows,
columns)``: MONAI's ``PILReader`` gives the same arrays (tested) at twice the cost per
file (3.8 vs 1.8 ms per Br35H JPEG, measured 2026-12-02), and a 2-D raster has no
affine for a MONAI spatial transform to use. DICOM files, folders of DICOM slices (one
series = one volume), NIfTI and the other medical formats are read by MONAI's readers
(pydicom, nibabel), which the ``imaging`` extra installs; without them the error names
that extra.

Nothing here imports torch at module level: MONAI (and with it torch) is imported on the
first file that needs it, in the process that reads it (a DataLoader worker, say).
"""

from __future__ import annotations

import logging
import os
import warnings
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from .._data.inference import (
    DICOM_SUFFIXES,
    RASTER_SUFFIXES,
    VOLUME_SUFFIXES,
    has_dicom_preamble,
)

#: How to install what the medical formats need.
IMAGING_EXTRA = ('pip install "monai>=1.4" "pydicom>=3.0" "nibabel>=5" (the imaging extra; '
                 'from a checkout of mmfusion_sklearn: pip install -e ".[imaging]")')

def standard_mode(image: Any) -> Any:
    """A pillow image in a mode that arrays represent faithfully: grey, RGB or RGBA."""
    if image.mode in ("L", "I", "I;16", "F", "RGB", "RGBA"):
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")  # palette, CMYK, YCbCr, ...


#: Pillow's modes of 16-bit grey images; a PNG opened by older Pillow versions may also
#: say "I" (32-bit) for them, which PNG cannot hold.
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def pil_to_array(image: Any) -> np.ndarray:
    """A pillow image as a float32 ``(C, rows, columns)`` array, in 8-bit units.

    A 16-bit grey image (PNG or TIFF) is divided by 257, which maps 65535 to 255, so
    that the same picture saved with 8 or 16 bits gives the same intensities: a model
    fitted on one reads the other (fitted on 8-bit PNGs, it called every 16-bit PNG
    of the same pictures one class).
    """
    sixteen_bit = image.mode in SIXTEEN_BIT_MODES or (
        image.mode == "I" and getattr(image, "format", None) == "PNG")
    array = np.asarray(standard_mode(image), dtype=np.float32)
    if sixteen_bit:
        array = array / np.float32(257.0)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return pil_to_array(image)


@cache
def _monai_loader(form: str) -> Any:
    """One MONAI ``LoadImage`` per file form and process (building one registers readers)."""
    try:
        from monai.data import NibabelReader, PILReader, PydicomReader
        from monai.transforms import LoadImage
    except ImportError as exc:
        raise ImportError(
            f"Reading {form} files needs MONAI with pydicom and nibabel: {IMAGING_EXTRA}"
        ) from exc
    readers = {
        # rows first, as pillow and numpy give images, so that files and arrays agree
        "raster": lambda: PILReader(reverse_indexing=False, converter=standard_mode),
        "dicom": lambda: PydicomReader(swap_ij=False),
        # a series keeps MONAI's (x, y, z) order with its affine, for Orientation/Spacing
        "series": lambda: PydicomReader(),
        "nifti": lambda: NibabelReader(),
        "other": lambda: None,
    }
    # MONAI 1.6 announces an optional GPU DICOM plugin on every LoadImage; say nothing
    plugin_logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = plugin_logger.level
    plugin_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LoadImage(image_only=True, ensure_channel_first=True,
                             reader=readers[form](), dtype=np.float32)
    finally:
        plugin_logger.setLevel(level)


def file_form(path: str | PathLike) -> str:
    """How ``path`` is read: ``"raster"``, ``"dicom"``, ``"series"``, ``"nifti"`` or ``"other"``.

    A folder is a DICOM series; known suffixes decide; a file without a known suffix is
    DICOM when it has the DICOM preamble, else a raster image for pillow to try.
    """
    path = Path(path)
    if path.is_dir():
        return "series"
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(VOLUME_SUFFIXES):
        return "other"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    if name.endswith(RASTER_SUFFIXES):
        return "raster"
    return "dicom" if path.is_file() and has_dicom_preamble(path) else "raster"


def load_image(path: str | PathLike) -> Any:
    """Read one file or DICOM series folder, channels first, as MONAI or pillow give it.

    Parameters
    ----------
    path : str or path-like
        An image or volume file, or a folder of the DICOM slices of one series.

    Returns
    -------
    ndarray or monai.data.MetaTensor
        ``(C, *spatial)`` float32: an array for 2-D raster files, a MetaTensor (with
        its affine, for MONAI's spatial transforms) for the formats MONAI reads.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (never a silent blank image).
    ImportError
        If the file needs MONAI, pydicom or nibabel and they are not installed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file: {str(path)!r}")
    form = file_form(path)
    if form == "raster":
        return _read_pillow(path)
    if form == "series" and not any(
        entry.is_file() and has_dicom_preamble(entry.path) for entry in os.scandir(path)
    ):
        raise ValueError(f"The folder {str(path)!r} holds no DICOM file.")
    loader = _monai_loader(form)
    if form == "nifti":
        return _one_volume(loader(str(path)), path)
    if form != "dicom":
        return loader(str(path))
    with warnings.catch_warnings():
        # a single 2-D file is used as rows x columns; its affine (often absent) is not
        warnings.filterwarnings("ignore", message=".*ImageOrientationPatient",
                                category=UserWarning)
        return loader(str(path))


def _one_volume(image: Any, path: Path) -> Any:
    """Refuse a NIfTI file whose fourth axis is time (``dim[4] > 1``): MONAI would make
    its frames the channels of one volume, which the model would average or drop.

    NIfTI keeps the fourth axis for time and the fifth for a vector's components, so a
    multi-channel volume (``dim[4] == 1``, ``dim[5] > 1``) is read as before.
    """
    dim = getattr(image, "meta", {}).get("dim")
    if dim is not None and int(dim[0]) >= 4 and int(dim[4]) > 1:
        shape = " x ".join(str(int(d)) for d in dim[1:int(dim[0]) + 1])
        raise ValueError(
            f"{str(path)!r} is a 4-D NIfTI ({shape}): {int(dim[4])} volumes over time, not "
            "one volume. Give one 3-D volume per sample (e.g. one frame, "
            "nibabel.load(path).slicer[..., t], saved as its own file)."
        )
    if dim is not None and int(dim[0]) >= 5 and len(image.shape) == 5 and image.shape[-1] == 1:
        image = image[..., 0]  # a vector volume (x, y, z, 1, c): channels, no time axis
    return image


def as_float_array(image: Any) -> np.ndarray:
    """A float32 numpy array of what a reader or transform returned (MetaTensor, Tensor, ...)."""
    if hasattr(image, "detach"):  # torch tensors and MONAI MetaTensors
        image = image.detach().cpu().numpy()
    return np.asarray(image, dtype=np.float32)


def read_file(path: str | PathLike) -> np.ndarray:
    """Read one image or volume file into a float32 array with channels first.

    Parameters
    ----------
    path : str or path-like
        A PNG/JPEG/TIFF/BMP/GIF image, a DICOM file (``.dcm`` or no suffix), a folder of
        DICOM slices (one volume), or a NIfTI volume (``.nii``/``.nii.gz``).

    Returns
    -------
    ndarray of float32
        ``(C, rows, columns)`` for 2-D images and single DICOM files (rescale slope and
        intercept applied); ``(C, x, y, z)`` for series and NIfTI volumes, in MONAI's
        order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    """
    return as_float_array(load_image(path))
