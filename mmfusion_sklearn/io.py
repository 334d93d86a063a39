"""Build a :class:`~mmfusion_sklearn.MultimodalData` from DICOM files and series folders.

Only headers are read here. Pixels stay on disk: the pixel modality holds the paths, and
the package's readers decode them per batch, so that a cohort of thousands of volumes
never sits in memory at once. What can be known without decoding is checked up front
(is it DICOM, does it hold pixel data, is there a decoder for its transfer syntax), so
that a file the readers could not open is reported before training starts, not halfway
through an epoch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from ._data import MultimodalData
from ._preprocessing import dicom
from ._preprocessing.dicom import (
    _as_path_list,
    _check_parameters,
    _Decoder,
    _header_table,
    _import_pydicom,
    _pixel_modalities,
    _read_file_sample,
    _read_folder,
)

__all__ = ["HEADER_COLUMNS", "from_dicom"]

#: The columns of the header table that :func:`from_dicom` returns, in order:
#:
#: - ``sex``: PatientSex (``"M"``, ``"F"``, ``"O"``), str;
#: - ``age``: PatientAge (``"045Y"``, ``"006M"``, ``"010W"``, ``"003D"``) in years;
#: - ``weight``: PatientWeight in kg (0 is read as missing);
#: - ``height``: PatientSize in m (0 is read as missing);
#: - ``body_part``: BodyPartExamined, str;
#: - ``modality``: Modality (``"CT"``, ``"MR"``, ...), str;
#: - ``manufacturer``: Manufacturer, str;
#: - ``slice_thickness``: SliceThickness in mm;
#: - ``kvp``: KVP, the peak X-ray tube voltage in kV;
#: - ``pixel_spacing_row``, ``pixel_spacing_col``: the two values of PixelSpacing in mm;
#: - ``rows``, ``columns``: Rows and Columns;
#: - ``n_frames``: NumberOfFrames of a file (1 when absent), or the number of slices of a
#:   series folder.
#:
#: String columns have object dtype, the others float; a missing value is NaN.
HEADER_COLUMNS: tuple[str, ...] = dicom.HEADER_COLUMNS


def from_dicom(
    paths: Sequence[str | os.PathLike[str]],
    *,
    on_read_error: str = "raise",
    pixels_name: str | None = None,
    header_name: str = "dicom",
) -> MultimodalData:
    """Build a MultimodalData from DICOM files and series folders, one per sample.

    Each sample gets a pixel modality, whose values are the paths themselves (pixels
    are decoded later, per batch, by the package's readers), and a row of a header
    table (:data:`HEADER_COLUMNS`) read with pydicom. Whether each file can be decoded
    is checked here without decoding it, so that an unreadable file is reported now.

    Parameters
    ----------
    paths : sequence of str or path-like
        One entry per sample: a DICOM file, or a folder holding the DICOM slices of one
        series (one volume). In a folder, files that are not DICOM (a README) and DICOM
        files that hold no image (a DICOMDIR, a structured report) are skipped;
        sub-folders are not searched. Slices are ordered by ImagePositionPatient along
        the slice normal (from ImageOrientationPatient; the z axis if absent), or by
        InstanceNumber where a slice has no position, else by file name.
    on_read_error : {"raise", "missing"}, default="raise"
        What to do with a sample that cannot be read: not a DICOM file, a header that
        stops before its pixel data (truncated, or no PixelData element), pixel data
        shorter than its declared length, a header without the attributes decoding
        needs (Rows, BitsAllocated, ...) or with a malformed NumberOfFrames, a transfer
        syntax with no pixel decoder available in this environment (pydicom's plugins
        are asked, nothing is decoded), or a folder with no DICOM image, with slices of
        several series or of different sizes. (Compressed data corrupt inside is only
        found when decoded, by the readers.) ``"raise"``: a ValueError lists every such
        sample. ``"missing"``: their pixels are None (the modality is missing for them),
        their header row is kept where the header could be read and all-NaN where not,
        and one UserWarning names them.
    pixels_name : str, default=None
        The name of the pixel modality. None names it ``"image"`` when every sample is a
        single-frame file and ``"volume"`` when every sample is a multi-frame file or a
        series folder. When both kinds occur, both modalities are returned (each None
        for the samples of the other kind) and ``pixels_name`` must be None.
    header_name : str, default="dicom"
        The name of the header table modality.

    Returns
    -------
    MultimodalData
        Modalities ``"image"`` and/or ``"volume"`` (or ``pixels_name``): the paths as
        str, None where a sample is unreadable or of the other kind; and
        ``header_name``: a DataFrame with index ``0..n-1`` and the columns of
        :data:`HEADER_COLUMNS`. A value absent from a header is NaN, never a
        placeholder: an empty PatientSex, a malformed PatientAge and a PatientWeight or
        PatientSize of 0 (a common "unknown" written by scanners) are all NaN. The header
        of a series is that of its first slice in the order described under ``paths``.

    Raises
    ------
    ImportError
        If pydicom is not installed.
    TypeError
        If ``paths`` is a single path or not a sequence of paths.
    ValueError
        If ``paths`` is empty, a parameter has an invalid value, ``pixels_name`` is
        given while both kinds of sample occur, or, with ``on_read_error="raise"``, some
        samples cannot be read (all are listed by row, path and reason).
    FileNotFoundError
        If some paths do not exist (all are listed by row).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> from mmfusion_sklearn.io import from_dicom
    >>> paths = [get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")]
    >>> data = from_dicom(paths)
    >>> data.modality_names
    ['image', 'dicom']
    >>> data.values("image")[0] == paths[0]
    True
    >>> data.values("dicom")[["sex", "age", "weight", "modality", "rows"]]
      sex  age  weight modality  rows
    0   O  0.0     NaN       CT 128.0
    1   F  NaN    80.0       MR  64.0
    """
    _check_parameters(on_read_error, pixels_name, header_name)
    items = _as_path_list(paths)
    pydicom = _import_pydicom()

    absent = [(row, path) for row, path in enumerate(items) if not os.path.exists(path)]
    if absent:
        listed = "; ".join(f"row {row}: {path!r}" for row, path in absent)
        noun = "path does" if len(absent) == 1 else "paths do"
        raise FileNotFoundError(f"from_dicom: {len(absent)} {noun} not exist: {listed}")

    decoders: dict[str, _Decoder] = {}  # per transfer syntax: pydicom asked once a call
    samples = [
        _read_folder(path, pydicom, decoders)
        if os.path.isdir(path)
        else _read_file_sample(path, pydicom, decoders)
        for path in items
    ]

    failed = [(row, items[row], s.problem) for row, s in enumerate(samples) if s.problem]
    if failed:
        listed = "\n".join(f"row {row}: {path!r}: {problem}" for row, path, problem in failed)
        if on_read_error == "raise":
            raise ValueError(
                f"from_dicom could not read {len(failed)} of {len(items)} samples (pass "
                f"on_read_error='missing' to mark them missing instead):\n{listed}"
            )
        warnings.warn(
            f"from_dicom could not read {len(failed)} of {len(items)} samples; their "
            f"pixels are marked missing:\n{listed}",
            UserWarning,
            stacklevel=2,
        )

    pixel_modalities = _pixel_modalities(items, samples, pixels_name)
    if header_name in pixel_modalities:
        raise ValueError(
            f"The 'header_name' parameter of from_dicom must differ from the name of the "
            f"pixel modality. Got {header_name!r} for both."
        )
    return MultimodalData({**pixel_modalities, header_name: _header_table(samples)})
