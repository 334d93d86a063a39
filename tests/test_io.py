"""from_dicom: real DICOM files from pydicom's own test data, copies edited in tmp_path.

Only files that ship inside the pydicom wheel are used (``get_testdata_file`` would try to
download the others).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from mmfusion_sklearn import MultimodalData  # noqa: E402
from mmfusion_sklearn.io import HEADER_COLUMNS, from_dicom  # noqa: E402

PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])
STRING_COLUMNS = {"sex", "body_part", "modality", "manufacturer"}
JPEG_LOSSLESS = "SC_rgb_jpeg_gdcm.dcm"  # JPEG Lossless SV1, 1.2.840.10008.1.2.4.70


def data_file(name: str) -> str:
    # download=False: nothing may download at run time (older pydicom wheels ship fewer
    # files; a test needing one they lack is skipped)
    path = get_testdata_file(name, download=False)
    if path is None or not os.path.exists(path):
        pytest.skip(f"{name} is not in this pydicom wheel")
    return path


CT = data_file("CT_small.dcm")
MR = data_file("MR_small.dcm")
# CT_small's pixel data (32768 bytes) starts at byte 6300: cut inside it
PIXELS_CUT = 20000


def _decodes(path: str) -> bool:
    """Ground truth: does pydicom decode the pixels here (with the plugins installed)?"""
    try:
        pydicom.dcmread(path).pixel_array  # noqa: B018 (decoding is the point)
    except Exception:
        return False
    return True


def _write(path: Path, source: str = CT, **changes) -> str:
    """A copy of ``source`` with header attributes changed (None deletes one)."""
    ds = pydicom.dcmread(source)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deliberately malformed values (PatientAge "45")
        ds.save_as(path)
    return str(path)


def _series(folder: Path, z_values, *, orientation=None, positions=True, **extra) -> Path:
    """A series folder: copies of CT_small at positions z, in file-name order, with
    SliceThickness = 1 + index as a marker of each slice, shuffled InstanceNumber."""
    folder.mkdir()
    series_uid = generate_uid()
    numbers = list(range(len(z_values), 0, -1))  # reversed: not the file-name order
    for i, z in enumerate(z_values):
        changes = {
            "SliceThickness": float(1 + i),
            "InstanceNumber": numbers[i],
            "SeriesInstanceUID": series_uid,
            "SOPInstanceUID": generate_uid(),
            "ImagePositionPatient": [0.0, 0.0, float(z)] if positions else None,
        }
        if orientation is not None:
            changes["ImageOrientationPatient"] = orientation
        changes.update(extra)
        _write(folder / f"slice{i:02d}.dcm", **changes)
    return folder


def _text_file(path: Path) -> str:
    path.write_text("not a DICOM file, just some notes\n" * 20)
    return str(path)


def _truncated(path: Path, n_bytes: int, source: str = CT) -> str:
    path.write_bytes(Path(source).read_bytes()[:n_bytes])
    return str(path)


# -- single files and the header table --------------------------------------------------


def test_single_files_give_image_paths_and_header_read_by_pydicom():
    paths = [CT, MR]
    data = from_dicom(paths)
    assert isinstance(data, MultimodalData)
    assert data.modality_names == ["image", "dicom"]
    assert list(data.values("image")) == [CT, MR]
    assert all(type(p) is str for p in data.values("image"))

    table = data.values("dicom")
    assert list(table.columns) == list(HEADER_COLUMNS)
    assert table.index.equals(pd.RangeIndex(2))
    for column in HEADER_COLUMNS:
        expected = object if column in STRING_COLUMNS else np.float64
        assert table[column].dtype == expected, column

    for row, path in enumerate(paths):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        got = table.iloc[row]
        assert got["sex"] == ds.PatientSex
        assert got["modality"] == ds.Modality
        assert got["manufacturer"] == ds.Manufacturer
        assert got["rows"] == ds.Rows and got["columns"] == ds.Columns
        assert got["slice_thickness"] == pytest.approx(float(ds.SliceThickness))
        assert got["pixel_spacing_row"] == pytest.approx(float(ds.PixelSpacing[0]))
        assert got["pixel_spacing_col"] == pytest.approx(float(ds.PixelSpacing[1]))
        assert got["n_frames"] == 1.0
        assert math.isnan(got["body_part"])  # neither file has BodyPartExamined
        assert math.isnan(got["height"])  # nor PatientSize

    ct = pydicom.dcmread(CT, stop_before_pixels=True)
    assert table.loc[0, "kvp"] == pytest.approx(float(ct.KVP))
    assert ct.PatientAge == "000Y" and table.loc[0, "age"] == 0.0
    assert float(ct.PatientWeight) == 0.0 and math.isnan(table.loc[0, "weight"])  # 0 kg
    mr = pydicom.dcmread(MR, stop_before_pixels=True)
    assert "PatientAge" not in mr and math.isnan(table.loc[1, "age"])
    assert table.loc[1, "weight"] == pytest.approx(float(mr.PatientWeight))
    assert math.isnan(table.loc[1, "kvp"])  # an MR has no tube voltage


@pytest.mark.filterwarnings("ignore:Invalid value for VR AS")  # pydicom, on reading them
def test_age_strings_are_converted_to_years(tmp_path):
    ages = {"045Y": 45.0, "006M": 0.5, "010W": 70 / 365.25, "003D": 3 / 365.25}
    malformed = ["45", "0x5Y", "045Q"]
    paths = [_write(tmp_path / f"{i}.dcm", PatientAge=a) for i, a in enumerate(ages)]
    paths += [_write(tmp_path / f"bad{i}.dcm", PatientAge=a) for i, a in enumerate(malformed)]
    paths.append(_write(tmp_path / "empty.dcm", PatientAge=""))
    ages_read = from_dicom(paths).values("dicom")["age"].to_numpy()
    np.testing.assert_allclose(ages_read[: len(ages)], list(ages.values()))
    assert np.isnan(ages_read[len(ages) :]).all()


def test_absent_or_empty_values_are_nan_never_placeholders(tmp_path):
    paths = [
        _write(tmp_path / "removed.dcm", PatientSex=None, PatientWeight=None),
        _write(tmp_path / "empty.dcm", PatientSex="", Manufacturer="", BodyPartExamined="CHEST"),
        _write(tmp_path / "set.dcm", PatientSex="M", PatientWeight=72.5, PatientSize=1.81),
    ]
    table = from_dicom(paths).values("dicom")
    assert math.isnan(table.loc[0, "sex"]) and math.isnan(table.loc[0, "weight"])
    assert math.isnan(table.loc[1, "sex"]) and math.isnan(table.loc[1, "manufacturer"])
    assert table.loc[1, "body_part"] == "CHEST"
    assert table.loc[2, "sex"] == "M"
    assert table.loc[2, "weight"] == pytest.approx(72.5)
    assert table.loc[2, "height"] == pytest.approx(1.81)
    for column in STRING_COLUMNS:
        assert "" not in set(table[column].dropna())


# -- decodability, checked without decoding ----------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",  # explicit VR little endian
        "MR_small_bigendian.dcm",  # explicit VR big endian
        "rtdose.dcm",  # implicit VR, 15 frames
        "image_dfl.dcm",  # deflated
        "MR_small_RLE.dcm",  # RLE: pydicom's own decoder
        "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline: Pillow
        "MR_small_jp2klossless.dcm",  # JPEG 2000: Pillow with openjpeg
        "SC_rgb_jpeg.dcm",  # declares explicit VR, is implicit VR
        JPEG_LOSSLESS,  # JPEG lossless: needs pylibjpeg or gdcm
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS: needs pyjpegls, pylibjpeg or gdcm
        "JPGExtended.dcm",  # 12-bit JPEG extended: Pillow cannot
        "MR_truncated.dcm",  # pixel data shorter than declared
        "badVR.dcm",  # NumberOfFrames "1A"
    ],
)
@pytest.mark.skipif(
    PYDICOM_MAJOR < 3,
    reason="pydicom 2.4's Pillow handler fails on Pillow >= 10 / numpy 2 whatever it says",
)
def test_readable_exactly_when_pydicom_decodes_here(name):
    path = data_file(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own warnings on odd files
        data = from_dicom([path], on_read_error="missing")
        decodes = _decodes(path)
    pixels = [v for k in ("image", "volume") if k in data for v in data.values(k)]
    readable = pixels == [path]
    assert readable == decodes


def _decoder_available(uid: str) -> bool:
    if PYDICOM_MAJOR >= 3:
        from pydicom.pixels import get_decoder

        return get_decoder(uid).is_available
    return any(  # pydicom 2.4
        h.is_available() and h.supports_transfer_syntax(uid)
        for h in pydicom.config.pixel_data_handlers
    )


def test_jpeg_lossless_has_no_decoder_in_this_environment():
    path = data_file(JPEG_LOSSLESS)
    uid = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert uid == "1.2.840.10008.1.2.4.70"
    if _decoder_available(uid):
        pytest.skip("a JPEG lossless decoder (pylibjpeg or gdcm) is installed here")
    with pytest.raises(ValueError) as info:
        from_dicom([CT, path])
    message = str(info.value)
    assert f"row 1: {path!r}" in message
    assert "(1.2.840.10008.1.2.4.70) has no available " in message
    assert "gdcm" in message and "pylibjpeg" in message
    assert "row 0" not in message


def test_not_dicom_and_truncated_files(tmp_path):
    paths = [
        CT,
        _text_file(tmp_path / "notes.dcm"),
        _truncated(tmp_path / "header_cut.dcm", 3000),
        _truncated(tmp_path / "pixels_cut.dcm", PIXELS_CUT),
        data_file("rtplan.dcm"),  # DICOM, but no image
    ]
    with pytest.raises(ValueError) as info:
        from_dicom(paths)
    lines = str(info.value).splitlines()
    assert "could not read 4 of 5 samples" in lines[0]
    assert "on_read_error='missing'" in lines[0]
    assert lines[1].startswith(f"row 1: {paths[1]!r}: not a DICOM file")
    assert lines[2].startswith(f"row 2: {paths[2]!r}: no PixelData element")
    assert lines[3].startswith(f"row 3: {paths[3]!r}: the pixel data is truncated")
    assert lines[4].startswith(f"row 4: {paths[4]!r}: no PixelData element")
    assert len(lines) == 5


def test_missing_marks_pixels_none_keeps_readable_headers_and_warns_once(tmp_path):
    notes = _text_file(tmp_path / "notes.txt")
    lossless = data_file(JPEG_LOSSLESS)
    bad = [p for p in (lossless, notes) if p == notes or not _decodes(p)]
    with pytest.warns(UserWarning) as record:
        data = from_dicom([CT, lossless, notes], on_read_error="missing")
    ours = [w for w in record if "from_dicom" in str(w.message)]
    assert len(ours) == 1
    for path in bad:
        assert repr(path) in str(ours[0].message)
    assert repr(CT) not in str(ours[0].message)

    pixels = list(data.values("image"))
    assert pixels[0] == CT and pixels[2] is None
    assert (pixels[1] is None) == (lossless in bad)
    table = data.values("dicom")
    assert table.loc[1, "modality"] == "OT"  # header readable: kept
    assert table.iloc[2].isna().all()  # not DICOM: all-NaN row
    assert data.presence["dicom"].tolist() == [True, True, False]
    assert data.presence["image"].tolist() == [True, lossless not in bad, False]


def test_all_unreadable_in_missing_mode_keeps_the_pixel_modality(tmp_path):
    with pytest.warns(UserWarning, match="could not read 1 of 1"):
        data = from_dicom([_text_file(tmp_path / "a.txt")], on_read_error="missing")
    assert data.modality_names == ["image", "dicom"]
    assert list(data.values("image")) == [None]
    assert not data.presence.to_numpy().any()


# -- series folders ---------------------------------------------------------------------


def test_series_folder_is_one_volume_sorted_along_the_normal(tmp_path):
    z = [10.0, -5.0, 20.0, 0.0]  # file-name order is not slice order
    folder = _series(tmp_path / "series", z)
    _text_file(folder / "README")
    dicomdir = Path(data_file("CT_small.dcm")).parent / "dicomdirtests" / "DICOMDIR"
    shutil.copy(dicomdir, folder / "DICOMDIR")
    (folder / "sub").mkdir()  # sub-folders are not searched
    shutil.copy(MR, folder / "sub" / "other.dcm")

    data = from_dicom([folder])
    assert data.modality_names == ["volume", "dicom"]
    assert list(data.values("volume")) == [str(folder)]
    row = data.values("dicom").iloc[0]
    assert row["n_frames"] == 4.0  # README, DICOMDIR and sub/ skipped
    # lowest z first (normal +z): slice01, whose marker SliceThickness is 2
    assert row["slice_thickness"] == 2.0
    assert row["modality"] == "CT"


def test_series_sorted_along_a_flipped_normal(tmp_path):
    # row x, column -y: the normal is -z, so the highest z comes first
    folder = _series(tmp_path / "s", [10.0, -5.0, 20.0, 0.0], orientation=[1, 0, 0, 0, -1, 0])
    assert from_dicom([folder]).values("dicom").loc[0, "slice_thickness"] == 3.0


def test_series_without_positions_sorted_by_instance_number(tmp_path):
    folder = _series(tmp_path / "s", [0, 0, 0], positions=False)
    # InstanceNumbers are 3, 2, 1 in file-name order: slice02 (marker 3) comes first
    assert from_dicom([folder]).values("dicom").loc[0, "slice_thickness"] == 3.0


def test_unreadable_series_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _text_file(empty / "README.txt")
    corrupt = _series(tmp_path / "corrupt", [0, 1])
    _truncated(corrupt / "slice99.dcm", PIXELS_CUT)
    mixed = _series(tmp_path / "mixed", [0, 1])
    _write(mixed / "zz.dcm", SeriesInstanceUID=generate_uid(), SOPInstanceUID=generate_uid())
    with pytest.raises(ValueError) as info:
        from_dicom([empty, corrupt, mixed])
    message = str(info.value)
    assert f"row 0: {str(empty)!r}: the folder holds no DICOM image file" in message
    assert f"row 1: {str(corrupt)!r}: slice 'slice99.dcm': the pixel data is truncated" in message
    assert f"row 2: {str(mixed)!r}: the folder holds 2 series" in message

    with pytest.warns(UserWarning):
        data = from_dicom([empty, corrupt, mixed], on_read_error="missing")
    assert list(data.values("volume")) == [None, None, None]
    table = data.values("dicom")
    assert table.iloc[0].isna().all()
    assert table.loc[1, "modality"] == "CT"


def test_mixed_images_and_volumes(tmp_path):
    rtdose = data_file("rtdose.dcm")
    assert int(pydicom.dcmread(rtdose, stop_before_pixels=True).NumberOfFrames) == 15
    folder = _series(tmp_path / "s", [0, 1, 2])
    data = from_dicom([CT, rtdose, folder])
    assert data.modality_names == ["image", "volume", "dicom"]
    assert list(data.values("image")) == [CT, None, None]
    assert list(data.values("volume")) == [None, rtdose, str(folder)]
    assert data.values("dicom")["n_frames"].tolist() == [1.0, 15.0, 3.0]
    with pytest.raises(ValueError, match="both single-frame images and volumes"):
        from_dicom([CT, rtdose], pixels_name="scan")


def test_pixels_name_and_header_name(tmp_path):
    data = from_dicom([CT, MR], pixels_name="scan", header_name="header")
    assert data.modality_names == ["scan", "header"]
    rtdose = data_file("rtdose.dcm")
    assert from_dicom([rtdose]).modality_names == ["volume", "dicom"]
    assert from_dicom([rtdose], pixels_name="ct").modality_names == ["ct", "dicom"]


# -- parameters and inputs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"on_read_error": "x"},
            "The 'on_read_error' parameter of from_dicom must be 'raise' or 'missing'. "
            "Got 'x' instead.",
        ),
        ({"on_read_error": None}, "'on_read_error' parameter of from_dicom"),
        ({"pixels_name": 3}, "'pixels_name' parameter of from_dicom"),
        ({"pixels_name": ""}, "'pixels_name' parameter of from_dicom"),
        ({"header_name": None}, "'header_name' parameter of from_dicom"),
        ({"pixels_name": "a", "header_name": "a"}, "must differ"),
        ({"header_name": "image"}, "'header_name' parameter of from_dicom must differ"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        from_dicom([CT], **kwargs)


@pytest.mark.parametrize("single", [CT, Path(CT)])
def test_a_single_path_is_refused(single):
    with pytest.raises(TypeError, match="pass a list of paths"):
        from_dicom(single)


def test_bad_path_sequences(tmp_path):
    with pytest.raises(ValueError, match="at least one path"):
        from_dicom([])
    with pytest.raises(TypeError, match="row 1 must be a str or path-like"):
        from_dicom([CT, 3])
    with pytest.raises(TypeError, match="pass a list of paths"):
        from_dicom(3)
    ghost = str(tmp_path / "ghost.dcm")
    with pytest.raises(FileNotFoundError) as info:
        from_dicom([CT, ghost], on_read_error="missing")
    assert f"row 1: {ghost!r}" in str(info.value)


def test_inputs_are_not_mutated(tmp_path):
    folder = _series(tmp_path / "s", [0, 1])
    paths = [Path(CT), str(MR), folder]
    before = list(paths)
    data = from_dicom(paths)
    assert paths == before
    assert [type(p) for p in paths] == [type(p) for p in before]
    assert list(data.values("image")) == [CT, MR, None]
    assert data.values("volume")[2] == str(folder)


def test_missing_pydicom_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)  # makes `import pydicom` fail
    with pytest.raises(ImportError, match=re.escape('pip install -e ".[imaging]"')):
        from_dicom([CT])


def test_works_with_the_container(tmp_path):
    notes = _text_file(tmp_path / "notes.txt")
    with pytest.warns(UserWarning):
        data = from_dicom([CT, notes, MR], on_read_error="missing")
    assert len(data) == 3
    presence = data.presence
    assert presence.shape == (3, 2)
    assert all(dtype == np.dtype(bool) for dtype in presence.dtypes)
    assert presence.to_numpy().tolist() == [[True, True], [False, False], [True, True]]
    subset = data[[0, 2]]
    assert isinstance(subset, MultimodalData)
    assert len(subset) == 2
    assert list(subset.values("image")) == [CT, MR]
    assert subset.values("dicom")["modality"].tolist() == ["CT", "MR"]
