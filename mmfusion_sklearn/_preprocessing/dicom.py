"""DICOM headers without pixels: what :func:`mmfusion_sklearn.io.from_dicom` reads.

Is a file DICOM, does it hold pixel data, is there a decoder for its transfer syntax,
how are a series folder's slices ordered, and the header fields as a table: everything
that can be known without decoding, so that a file the readers could not open is
reported before training starts. It is one module (about 560 lines) because DICOM
fails in many ways, each handled by a small function of its own, and they share the
per-call decoder table and the sample records.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: The header table's columns (documented in :data:`mmfusion_sklearn.io.HEADER_COLUMNS`).
HEADER_COLUMNS: tuple[str, ...] = (
    "sex",
    "age",
    "weight",
    "height",
    "body_part",
    "modality",
    "manufacturer",
    "slice_thickness",
    "kvp",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "rows",
    "columns",
    "n_frames",
)
_STRING_COLUMNS = frozenset({"sex", "body_part", "modality", "manufacturer"})
_ON_READ_ERROR = ("raise", "missing")

# (7FE0,0010) Pixel Data, (7FE0,0008) Float Pixel Data, (7FE0,0009) Double Float Pixel Data:
# the tags before which ``stop_before_pixels`` stops.
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_PIXEL_DATA = 0x7FE00010
_DEFLATED = "1.2.840.10008.1.2.1.99"
_JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # the SOP class of a DICOMDIR
# The VRs pixel data can have in explicit VR (OB, OW; OF, OD for float pixels; UN when
# re-encoded by a tool that did not know the tag), all with a 4-byte length (PS3.5 7.1.2).
_PIXEL_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"})
_UNDEFINED_LENGTH = 0xFFFFFFFF
# DICOM Age String (PS3.5 6.2, VR AS): three digits and a unit. Lenient about the number
# of digits and the case, since writers are.
_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMYdwmy])\s*$")
_DAYS_PER_YEAR = 365.25
_AGE_UNIT_YEARS = {"Y": 1.0, "M": 1.0 / 12.0, "W": 7.0 / _DAYS_PER_YEAR, "D": 1.0 / _DAYS_PER_YEAR}
_MAX_LISTED_SLICE_PROBLEMS = 3


class _NotDicom(Exception):
    """The file is not a DICOM file (no 'DICM' prefix): skipped inside a series folder."""


class _Unreadable(Exception):
    """A DICOM file whose header could not be parsed."""


@dataclass
class _FileHeader:
    """What one file's header says, read without its pixel data."""

    dataset: Any  # pydicom Dataset, pixel data excluded
    n_frames: float  # NaN when absent from the header but expected, or malformed
    expects_pixels: bool  # an image (pixel data present, or image attributes/SOP class)
    problem: str | None  # why its pixels could not be decoded; None: they can


@dataclass
class _Decoder:
    """What pydicom can do with one transfer syntax here."""

    label: str  # "transfer syntax <name> (<uid>)"
    problem: str | None  # why nothing can decode it; None: something can
    plugins: tuple[str, ...] = ()  # the plugins that can
    hint: str = ""  # "; install ..." for the plugins that cannot, for messages


@dataclass
class _Sample:
    """One row of the result."""

    header: dict[str, Any] | None  # a row of the header table; None: header unreadable
    kind: str | None  # "image" or "volume"; None: unknown (header unreadable)
    problem: str | None  # why the sample is unreadable; None: it is readable


# -- parameters -----------------------------------------------------------------------


def _check_parameters(on_read_error: Any, pixels_name: Any, header_name: Any) -> None:
    if not isinstance(on_read_error, str) or on_read_error not in _ON_READ_ERROR:
        raise ValueError(
            "The 'on_read_error' parameter of from_dicom must be 'raise' or 'missing'. "
            f"Got {on_read_error!r} instead."
        )
    if pixels_name is not None and (not isinstance(pixels_name, str) or not pixels_name):
        raise ValueError(
            "The 'pixels_name' parameter of from_dicom must be a non-empty str or None. "
            f"Got {pixels_name!r} instead."
        )
    if not isinstance(header_name, str) or not header_name:
        raise ValueError(
            "The 'header_name' parameter of from_dicom must be a non-empty str. "
            f"Got {header_name!r} instead."
        )
    if pixels_name is not None and pixels_name == header_name:
        raise ValueError(
            "The 'pixels_name' and 'header_name' parameters of from_dicom must differ. "
            f"Got {pixels_name!r} for both."
        )


def _as_path_list(paths: Any) -> list[str]:
    """The paths as a new list of str (the caller's object is left untouched)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        # A str is itself a sequence (of characters): iterating it would read each
        # character as a path, so a single path is refused outright.
        raise TypeError(
            "from_dicom takes one path per sample: pass a list of paths (e.g. [path]), "
            f"not a single path. Got {paths!r}."
        )
    try:
        items = list(paths)
    except TypeError:
        raise TypeError(
            "from_dicom takes one path per sample: pass a list of paths. Got "
            f"{type(paths).__name__} instead."
        ) from None
    if not items:
        raise ValueError("from_dicom needs at least one path; got an empty sequence.")
    out = []
    for row, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(
                f"from_dicom: the path of row {row} must be a str or path-like. Got "
                f"{item!r} ({type(item).__name__}) instead."
            )
        out.append(os.fsdecode(os.fspath(item)))
    return out


def _import_pydicom() -> Any:
    # Imported here, not at module level, so that the package works without pydicom for
    # users who never touch DICOM.
    try:
        import pydicom
    except ImportError as exc:
        raise ImportError(
            'from_dicom needs pydicom: pip install "pydicom>=3.0" (part of the imaging '
            'extra; from a checkout of mmfusion_sklearn: pip install -e ".[imaging]").'
        ) from exc
    return pydicom


# -- reading one file ---------------------------------------------------------------------


def _read_header(path: str, pydicom: Any, decoders: dict[str, _Decoder]) -> _FileHeader:
    """Read the header of ``path`` without its pixel data and say if it can be decoded.

    Raises _NotDicom for a file without the DICOM prefix and _Unreadable for a DICOM file
    whose header cannot be parsed.
    """
    from pydicom.errors import InvalidDicomError

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fp:
            dataset = pydicom.dcmread(fp, stop_before_pixels=True)
            pixel_tag, problem = _peek_pixel_data(fp, size)
    except InvalidDicomError as exc:
        raise _NotDicom(f"not a DICOM file ({exc})") from None
    except Exception as exc:  # pydicom raises many kinds of errors on a corrupt file
        raise _Unreadable(f"the header could not be read ({type(exc).__name__}: {exc})") from None

    if _transfer_syntax(dataset) == _DEFLATED:
        # The dataset of a deflated file is decompressed into memory, so the position in
        # the file says nothing: read it again, deferring values large enough to be pixels.
        try:
            full = pydicom.dcmread(path, defer_size=1024)
        except Exception as exc:
            raise _Unreadable(
                f"the deflated dataset could not be read ({type(exc).__name__}: {exc})"
            ) from None
        pixel_tag = next((tag for tag in sorted(_PIXEL_TAGS) if tag in full), None)
        problem = None

    if pixel_tag is None:
        n_frames = math.nan
        problem = "no PixelData element (the file is truncated or holds no image)"
    else:
        n_frames = _number_of_frames(dataset)
        problem = problem or _pixel_problem(dataset, pixel_tag, pydicom, decoders)
    expects_pixels = pixel_tag is not None or _looks_like_image(dataset)
    return _FileHeader(dataset, n_frames, expects_pixels, problem)


def _peek_pixel_data(fp: Any, size: int) -> tuple[int | None, str | None]:
    """The pixel data tag the file goes on with (None if none), and a problem with it.

    ``stop_before_pixels`` leaves the file positioned at the pixel data tag when there is
    one, so reading its tag and length costs a few bytes, where reading the element would
    load (or, encapsulated, scan) all the pixel data. The encoding is read off the bytes,
    not the transfer syntax, because files that contradict their transfer syntax exist
    (pydicom reads them anyway, and so must this).
    """
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None, None
    for order in ("little", "big"):
        tag = (int.from_bytes(head[0:2], order) << 16) | int.from_bytes(head[2:4], order)
        if tag in _PIXEL_TAGS:
            break
    else:
        return None, None
    if head[4:6] in _PIXEL_VRS:  # explicit VR: 2 bytes VR, 2 reserved, 4 bytes length
        if len(head) < 12:
            return tag, "the pixel data is truncated (the file ends inside its header)"
        length, value_start = int.from_bytes(head[8:12], order), start + 12
    else:  # implicit VR: 4 bytes length
        length, value_start = int.from_bytes(head[4:8], order), start + 8
    if length != _UNDEFINED_LENGTH and size - value_start < length:
        return tag, (
            f"the pixel data is truncated ({max(size - value_start, 0)} of its {length} "
            "bytes are in the file)"
        )
    return tag, None


def _transfer_syntax(dataset: Any) -> str | None:
    meta = getattr(dataset, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(uid) if uid else None


def _looks_like_image(dataset: Any) -> bool:
    """True for a header of an image without its pixel data (a truncated slice), False
    for a DICOM file that never holds pixels (a DICOMDIR, a report, a plan)."""
    meta = getattr(dataset, "file_meta", None)
    sop_class = _get(dataset, "SOPClassUID")
    if sop_class is None and meta is not None:
        sop_class = _get(meta, "MediaStorageSOPClassUID")
    if sop_class is not None and str(sop_class) == _MEDIA_STORAGE_DIRECTORY:
        return False
    if _get(dataset, "Rows") is not None:
        return True
    name = getattr(sop_class, "name", "") or ""
    return "Image Storage" in name or name == "RT Dose Storage"


def _pixel_problem(
    dataset: Any, pixel_tag: int, pydicom: Any, decoders: dict[str, _Decoder]
) -> str | None:
    """Why pixel data that is there could not be decoded, or None: the checks the
    decoder would make first, short of decoding."""
    frames = _get(dataset, "NumberOfFrames")
    if frames is not None and math.isnan(_number_of_frames(dataset)):
        return f"NumberOfFrames {str(frames)!r} is not a positive integer"
    required = ["Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated"]
    if pixel_tag == _PIXEL_DATA:  # integer pixels; float ones have no such attributes
        required += ["BitsStored", "PixelRepresentation"]
    if _int(_get(dataset, "SamplesPerPixel")) == 3:
        required.append("PlanarConfiguration")
    absent = [keyword for keyword in required if _get(dataset, keyword) is None]
    if absent:
        return f"the header lacks {', '.join(absent)}, which decoding the pixels needs"

    uid = _transfer_syntax(dataset)
    if uid is None:
        return "the file meta holds no TransferSyntaxUID, so its pixels cannot be decoded"
    if uid not in decoders:
        decoders[uid] = _ask_decoder(uid, pydicom)
    decoder = decoders[uid]
    if decoder.problem is not None:
        return decoder.problem
    if (
        uid == _JPEG_EXTENDED
        and set(decoder.plugins) <= {"pillow"}
        and _int(_get(dataset, "BitsStored")) != 8
    ):
        # Pillow's libjpeg decodes 8-bit JPEG Extended only (pydicom's pillow plugin
        # refuses the rest when decoding).
        return (
            f"{decoder.label}: the only decoder available, Pillow, decodes 8-bit samples "
            f"only and these are {_get(dataset, 'BitsStored')}-bit{decoder.hint}"
        )
    return None


def _ask_decoder(uid: str, pydicom: Any) -> _Decoder:
    """Whether pydicom can decode transfer syntax ``uid`` in this environment."""
    from pydicom.uid import UID

    label = f"transfer syntax {UID(uid).name} ({uid})"
    try:
        from pydicom.pixels import get_decoder  # pydicom >= 3
    except ImportError:
        return _ask_legacy_handlers(uid, label, pydicom)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return _Decoder(label, f"{label} has no pixel decoder in pydicom {pydicom.__version__}")
    # missing_dependencies reads like "gdcm - requires gdcm>=3.0.10": keep the requirement.
    options = [
        text.split(" - requires ", 1)[1]
        for text in decoder.missing_dependencies
        if " - requires " in text
    ]
    hint = "; install " + ", or ".join(options) if options else ""
    if decoder.is_available:
        return _Decoder(label, None, tuple(decoder.available_plugins), hint)
    return _Decoder(label, f"{label} has no available decoder{hint}", (), hint)


def _ask_legacy_handlers(uid: str, label: str, pydicom: Any) -> _Decoder:
    """The same question for pydicom 2.4, through its pixel data handlers."""
    from pydicom.uid import UID

    hint = "; install pylibjpeg or gdcm"
    usable = []
    for handler in pydicom.config.pixel_data_handlers:
        try:
            if handler.is_available() and handler.supports_transfer_syntax(UID(uid)):
                usable.append(handler.__name__.rsplit(".", 1)[-1].replace("_handler", ""))
        except Exception:  # a handler whose own check fails cannot decode either
            continue
    if usable:
        return _Decoder(label, None, tuple(usable), hint)
    return _Decoder(label, f"{label} has no available pixel data handler{hint}", (), hint)


def _read_file_sample(path: str, pydicom: Any, decoders: dict[str, _Decoder]) -> _Sample:
    try:
        info = _read_header(path, pydicom, decoders)
    except (_NotDicom, _Unreadable) as exc:
        return _Sample(header=None, kind=None, problem=str(exc))
    # A multi-frame file is a volume (or a cine loop: the readers see its frames as depth).
    kind = "volume" if info.n_frames > 1 else "image"
    return _Sample(_header_row(info.dataset, info.n_frames), kind, info.problem)


# -- reading one series folder ------------------------------------------------------------


def _read_folder(path: str, pydicom: Any, decoders: dict[str, _Decoder]) -> _Sample:
    try:
        names = sorted(e.name for e in os.scandir(path) if e.is_file())
    except OSError as exc:
        return _Sample(None, "volume", f"the folder could not be listed ({exc})")
    slices: list[tuple[str, _FileHeader]] = []
    problems: list[str] = []
    for name in names:
        try:
            info = _read_header(os.path.join(path, name), pydicom, decoders)
        except _NotDicom:
            continue  # a README, a thumbnail, a .DS_Store: not part of the series
        except _Unreadable as exc:
            problems.append(f"slice {name!r}: {exc}")
            continue
        if not info.expects_pixels:
            continue  # a DICOMDIR or a report next to the slices
        slices.append((name, info))
        if info.problem is not None:
            problems.append(f"slice {name!r}: {info.problem}")

    if not slices:
        problem = "; ".join(problems) if problems else "the folder holds no DICOM image file"
        return _Sample(None, "volume", problem)
    datasets = [info.dataset for _, info in slices]
    problems += _series_problems(datasets)
    order = _slice_order(datasets)
    first = datasets[order[0]]
    n_frames = float(sum(1.0 if math.isnan(i.n_frames) else i.n_frames for _, i in slices))
    if len(problems) > _MAX_LISTED_SLICE_PROBLEMS:
        extra = len(problems) - _MAX_LISTED_SLICE_PROBLEMS
        problems = problems[:_MAX_LISTED_SLICE_PROBLEMS] + [f"and {extra} more"]
    return _Sample(_header_row(first, n_frames), "volume", "; ".join(problems) or None)


def _series_problems(datasets: list[Any]) -> list[str]:
    """Reasons the slices do not stack into one volume."""
    problems = []
    series = sorted({str(s) for s in (_get(d, "SeriesInstanceUID") for d in datasets) if s})
    if len(series) > 1:
        problems.append(
            f"the folder holds {len(series)} series (SeriesInstanceUID "
            f"{', '.join(series)}); pass one folder per series"
        )
    sizes = sorted({(_int(_get(d, "Rows")), _int(_get(d, "Columns"))) for d in datasets})
    if len(sizes) > 1:
        listed = ", ".join(f"{r}x{c}" for r, c in sizes)
        problems.append(f"the slices differ in size (Rows x Columns: {listed})")
    return problems


def _slice_order(datasets: list[Any]) -> list[int]:
    """Indices of ``datasets`` (given in file-name order) in slice order."""
    positions = [_floats(_get(d, "ImagePositionPatient"), 3) for d in datasets]
    numbers = [_int(_get(d, "InstanceNumber")) for d in datasets]
    if all(p is not None for p in positions):
        normal = _slice_normal(datasets[0])
        keys = [float(np.dot(p, normal)) for p in positions]
    elif all(n is not None for n in numbers):
        keys = [float(n) for n in numbers]
    else:
        keys = [0.0] * len(datasets)  # nothing to sort by: keep the file names' order
    # Ties (two slices at one position) fall back on InstanceNumber, then the file name.
    return sorted(
        range(len(datasets)),
        key=lambda i: (keys[i], numbers[i] if numbers[i] is not None else math.inf, i),
    )


def _slice_normal(dataset: Any) -> np.ndarray:
    orientation = _floats(_get(dataset, "ImageOrientationPatient"), 6)
    if orientation is not None:
        normal = np.cross(orientation[:3], orientation[3:])
        norm = float(np.linalg.norm(normal))
        if norm > 0:
            return normal / norm
    return np.array([0.0, 0.0, 1.0])  # no usable orientation: assume axial slices


# -- header values ------------------------------------------------------------------------


def _header_row(dataset: Any, n_frames: float) -> dict[str, Any]:
    spacing = _floats(_get(dataset, "PixelSpacing"), 2)
    return {
        "sex": _text(_get(dataset, "PatientSex")),
        "age": _age_in_years(_get(dataset, "PatientAge")),
        # 0 kg / 0 m is what many scanners write when nobody entered the value.
        "weight": _positive(_float(_get(dataset, "PatientWeight"))),
        "height": _positive(_float(_get(dataset, "PatientSize"))),
        "body_part": _text(_get(dataset, "BodyPartExamined")),
        "modality": _text(_get(dataset, "Modality")),
        "manufacturer": _text(_get(dataset, "Manufacturer")),
        "slice_thickness": _float(_get(dataset, "SliceThickness")),
        "kvp": _float(_get(dataset, "KVP")),
        "pixel_spacing_row": spacing[0] if spacing is not None else math.nan,
        "pixel_spacing_col": spacing[1] if spacing is not None else math.nan,
        "rows": _float(_get(dataset, "Rows")),
        "columns": _float(_get(dataset, "Columns")),
        "n_frames": float(n_frames),
    }


def _header_table(samples: list[_Sample]) -> pd.DataFrame:
    columns = {}
    for column in HEADER_COLUMNS:
        values = [s.header[column] if s.header is not None else math.nan for s in samples]
        # object dtype given explicitly: pandas >= 3 would otherwise infer its str dtype.
        dtype = object if column in _STRING_COLUMNS else float
        columns[column] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(samples)))


def _get(dataset: Any, keyword: str) -> Any:
    """The value of ``keyword``, or None if absent, empty or not decodable."""
    try:
        value = dataset.get(keyword)
    except Exception:  # a malformed value raises on access in some pydicom versions
        return None
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        return None
    if isinstance(value, (list, tuple)) and len(value) == 0:
        return None
    return value


def _text(value: Any) -> Any:
    if value is None:
        return math.nan
    text = str(value).strip()
    return text if text else math.nan


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _positive(number: float) -> float:
    return number if number > 0 else math.nan


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if math.isnan(number) else int(number)


def _floats(value: Any, count: int) -> np.ndarray | None:
    """``count`` finite floats from a multi-valued element, else None."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        numbers = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    if numbers.shape != (count,) or not np.isfinite(numbers).all():
        return None
    return numbers


def _age_in_years(value: Any) -> float:
    match = _AGE.match(str(value)) if value is not None else None
    if match is None:
        return math.nan
    return int(match.group(1)) * _AGE_UNIT_YEARS[match.group(2).upper()]


def _number_of_frames(dataset: Any) -> float:
    value = _get(dataset, "NumberOfFrames")
    if value is None:
        return 1.0  # a single-frame file leaves the attribute out
    number = _float(value)
    if math.isnan(number) or number < 1 or number != int(number):
        return math.nan  # malformed ("1A"): unknown
    return number


# -- assembling the result ----------------------------------------------------------------


def _pixel_modalities(
    items: list[str], samples: list[_Sample], pixels_name: str | None
) -> dict[str, np.ndarray]:
    kinds = {s.kind for s in samples if s.kind is not None}
    if not kinds:
        # No header could be read at all: guess the kind from the path alone.
        kinds = {"volume" if os.path.isdir(p) else "image" for p in items}
    names = [kind for kind in ("image", "volume") if kind in kinds]
    if pixels_name is not None:
        if len(names) > 1:
            raise ValueError(
                "The 'pixels_name' parameter of from_dicom renames a single pixel "
                "modality, but the samples hold both single-frame images and volumes "
                "(multi-frame files or series folders), returned as 'image' and 'volume'. "
                f"Got {pixels_name!r}; pass pixels_name=None."
            )
    out = {}
    for kind in names:
        column = np.empty(len(items), dtype=object)  # None: missing for that sample
        for row, (path, sample) in enumerate(zip(items, samples)):
            if sample.kind == kind and sample.problem is None:
                column[row] = path
        out[pixels_name if pixels_name is not None else kind] = column
    return out
