"""Unit tests of mmfusion_sklearn._preprocessing: tables, embeddings, images, volumes
and the file readers (no torch involved)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfusion_sklearn._data import Modality, MultimodalData
from mmfusion_sklearn._preprocessing import (
    ArrayPreprocessor,
    EmbeddingPreprocessor,
    TabularPreprocessor,
    make_preprocessor,
    preprocessor_from_state,
    read_file,
)

Image = pytest.importorskip("PIL.Image")


def _fit_transform(preprocessor, values, present=None):
    data = MultimodalData({preprocessor.name: values})
    values, mask = data.values(preprocessor.name), data.present(preprocessor.name)
    if present is not None:
        mask = mask & np.asarray(present)
    return preprocessor.fit(values, mask).transform(values, mask)


def _json_round_trip(preprocessor):
    return preprocessor_from_state(json.loads(json.dumps(preprocessor.get_state())))


# -- TabularPreprocessor -----------------------------------------------------------------


def test_tabular_scaling_uses_present_rows_only():
    values = np.array([[1.0, 10.0], [3.0, 30.0], [1000.0, -1000.0]])
    present = np.array([True, True, False])
    pre = TabularPreprocessor("t")
    out = pre.fit(values, present).transform(values, present)
    assert pre.mean_ == [2.0, 20.0] and pre.scale_ == [1.0, 10.0]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[-1, -1], [1, 1], [0, 0]])


def test_tabular_constant_column_is_not_divided_by_zero():
    values = np.array([[5.0, 1.0], [5.0, 2.0]])
    out = _fit_transform(TabularPreprocessor("t"), values)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 0], [0.0, 0.0])


def test_tabular_missing_cells_get_mean_and_indicator():
    values = np.array([[1.0, 4.0], [np.nan, 6.0], [3.0, np.nan], [np.nan, np.nan]])
    pre = TabularPreprocessor("t")
    out = _fit_transform(pre, values)
    # row 3 is all-NaN: the modality is missing there, not a missing cell
    assert pre.indicator_ == ["0", "1"] and pre.n_features_out_ == 4
    np.testing.assert_allclose(
        out, [[-1, -1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0]]
    )


def test_tabular_no_indicator_when_fit_had_no_missing_cell():
    pre = TabularPreprocessor("t").fit(np.array([[1.0], [3.0]]), np.ones(2, bool))
    assert pre.indicator_ == [] and pre.n_features_out_ == 1
    out = pre.transform(np.array([[np.nan], [3.0]]), np.ones(2, bool))
    np.testing.assert_allclose(out, [[0.0], [1.0]])


def test_tabular_categoricals_from_dataframe():
    frame = pd.DataFrame(
        {
            "age": [50.0, 70.0, 60.0, 99.0],
            "sex": ["m", "f", None, "x"],
            "grade": pd.Categorical(["II", "I", "II", "III"]),
            "site": [3, 1, 3, 2],
            "smoker": [True, False, True, True],
        }
    )
    present = np.array([True, True, True, False])
    pre = TabularPreprocessor("clinical", categorical=["site"])
    out = pre.fit(frame, present).transform(frame, present)
    assert pre.numeric_ == ["age"]
    assert pre.categorical_ == ["sex", "grade", "site", "smoker"]
    # categories come from present rows only ("x", "III" and 2 are in the absent row)
    assert pre.categories_ == {
        "sex": ["f", "m"],
        "grade": ["I", "II"],
        "site": ["1", "3"],
        "smoker": ["False", "True"],
    }
    z = np.sqrt(1.5)  # ages 50, 70, 60: mean 60, std sqrt(200 / 3)
    expected = [
        # age, sex f m, grade I II, site 1 3, smoker F T
        [-z, 0, 1, 0, 1, 0, 1, 0, 1],
        [z, 1, 0, 1, 0, 1, 0, 1, 0],
        [0.0, 0, 0, 0, 1, 0, 1, 0, 1],  # missing sex: all zeros
        [0.0, 0, 0, 0, 0, 0, 0, 0, 0],  # absent row
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_tabular_pandas_categorical_with_numeric_categories_is_one_hot():
    frame = pd.DataFrame({"stage": pd.Categorical([1, 2, 1])})
    pre = TabularPreprocessor("t")
    out = _fit_transform(pre, frame)
    assert pre.categorical_ == ["stage"] and pre.categories_ == {"stage": ["1", "2"]}
    np.testing.assert_array_equal(out, [[1, 0], [0, 1], [1, 0]])


def test_tabular_integer_category_matches_after_nan_makes_column_float():
    pre = TabularPreprocessor("t", categorical=["site"])
    pre.fit(pd.DataFrame({"site": [1, 2, 3]}), np.ones(3, bool))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1.0 is category "1", not unseen
        out = pre.transform(pd.DataFrame({"site": [1.0, np.nan, 3.0]}), np.ones(3, bool))
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 0], [0, 0, 1]])


def test_tabular_list_of_numbers_with_none_is_numeric():
    pre = TabularPreprocessor("age")
    out = _fit_transform(pre, [1.0, None, 3.0])
    assert pre.numeric_ == ["age"] and pre.categorical_ == []
    np.testing.assert_allclose(out, [[-1.0], [0.0], [1.0]])


def test_tabular_list_of_vectors_with_missing_items():
    pre = TabularPreprocessor("v")
    out = _fit_transform(pre, [np.nan, np.array([1.0, 2.0]), None, np.array([3.0, 4.0])])
    assert pre.n_features_out_ == 2
    np.testing.assert_allclose(out, [[0, 0], [-1, -1], [0, 0], [1, 1]])


def test_tabular_unseen_category_warns_and_encodes_zeros():
    frame = pd.DataFrame({"sex": ["f", "m"]})
    pre = TabularPreprocessor("clinical").fit(frame, np.ones(2, bool))
    new = pd.DataFrame({"sex": ["m", "other"]})
    with pytest.warns(UserWarning, match=r"'clinical', column 'sex'.*\['other'\].*all zeros"):
        out = pre.transform(new, np.ones(2, bool))
    np.testing.assert_array_equal(out, [[0, 1], [0, 0]])


def test_tabular_inf_error_names_modality_column_and_rows():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, np.inf, 3.0, -np.inf]})
    with pytest.raises(ValueError, match=r"Modality 'clin' has infinite values in column 'b', "
                       r"rows 1, 3\."):
        TabularPreprocessor("clin").fit(frame, np.ones(4, bool))
    pre = TabularPreprocessor("clin").fit(frame.replace(np.inf, 0.0).replace(-np.inf, 0.0),
                                          np.ones(4, bool))
    bad = pd.DataFrame({"a": [1.0, np.inf, 3.0, 4.0], "b": [0.0] * 4})
    with pytest.raises(ValueError, match="column 'a', rows 1"):
        pre.transform(bad, np.ones(4, bool))
    # an inf in an absent row is never read
    present = np.array([True, False, True, True])
    assert np.isfinite(pre.transform(bad, present)).all()


def test_tabular_column_errors():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    pre = TabularPreprocessor("clin").fit(frame, np.ones(2, bool))
    with pytest.raises(ValueError, match=r"Modality 'clin' lacks the columns \['b'\]"):
        pre.transform(frame[["a"]], np.ones(2, bool))
    # columns found by name, not position
    np.testing.assert_array_equal(
        pre.transform(frame[["b", "a"]], np.ones(2, bool)), pre.transform(frame, np.ones(2, bool))
    )
    with pytest.raises(ValueError, match=r"categorical columns \['zz'\] are not among"):
        TabularPreprocessor("clin", categorical=["zz"]).fit(frame, np.ones(2, bool))
    with pytest.raises(ValueError, match="must be 2-D"):
        TabularPreprocessor("clin").fit(np.ones((2, 2, 2)), np.ones(2, bool))


def test_tabular_json_round_trip_gives_identical_output():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=8),
            "y": np.where(np.arange(8) % 3 == 0, np.nan, rng.normal(size=8)),
            "c": pd.Categorical(list("abcabcab")),
            "s": ["u", "v"] * 4,
        }
    )
    present = np.arange(8) != 5
    pre = TabularPreprocessor("clinical", categorical=[]).fit(frame, present)
    state = json.loads(json.dumps(pre.get_state()))
    assert state["kind"] == "tabular"
    loaded = preprocessor_from_state(state)
    assert isinstance(loaded, TabularPreprocessor)
    np.testing.assert_array_equal(
        loaded.transform(frame, present), pre.transform(frame, present)
    )


def test_tabular_input_frame_not_mutated():
    frame = pd.DataFrame({0: [1.0, np.nan, 3.0], 1: ["a", "b", None]}, index=[7, 8, 9])
    before = frame.copy()
    pre = TabularPreprocessor("t").fit(frame, np.ones(3, bool))
    assert pre.columns_ == ["0", "1"]  # names are stored as strings
    pre.transform(frame, np.ones(3, bool))
    pd.testing.assert_frame_equal(frame, before)
    assert list(frame.columns) == [0, 1]


# -- EmbeddingPreprocessor ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_all_nan_row_is_missing_and_input_untouched(dtype):
    values = np.arange(12, dtype=dtype).reshape(3, 4)
    values[1] = np.nan
    before = values.copy()
    pre = EmbeddingPreprocessor("ct")
    out = _fit_transform(pre, values)
    assert pre.n_features_out_ == 4 and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(out[[0, 2]], before[[0, 2]])  # no scaling here
    np.testing.assert_array_equal(values, before)


def test_embedding_partial_nan_error():
    values = np.ones((4, 3))
    values[2, 1] = np.nan
    values[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"Embedding modality 'ct' has NaN or infinite "
                       r"entries in rows 2, 3\. A missing embedding must be all-NaN or None"):
        _fit_transform(EmbeddingPreprocessor("ct"), values)


def test_embedding_width_check_and_round_trip():
    pre = EmbeddingPreprocessor("ct").fit(np.ones((2, 3)), np.ones(2, bool))
    with pytest.raises(ValueError, match="'ct' has 4 features, but 3 in fit"):
        pre.transform(np.ones((2, 4)), np.ones(2, bool))
    loaded = _json_round_trip(pre)
    assert isinstance(loaded, EmbeddingPreprocessor) and loaded.n_features_out_ == 3


def test_make_preprocessor_dispatch():
    assert isinstance(make_preprocessor("a", "tabular", Modality()), TabularPreprocessor)
    assert isinstance(make_preprocessor("a", "embedding", Modality()), EmbeddingPreprocessor)
    image = make_preprocessor("a", "image", Modality(image_size=(4, 4)))
    assert isinstance(image, ArrayPreprocessor) and image.image_size == (4, 4)
    assert make_preprocessor("a", "tabular", Modality(categorical=["c"])).categorical == ["c"]


# -- ArrayPreprocessor -------------------------------------------------------------------


def test_array_images_n_h_w():
    rng = np.random.default_rng(0)
    values = rng.random((5, 6, 7))
    pre = ArrayPreprocessor("img", "image")
    out = _fit_transform(pre, values)
    assert out.shape == (5, 1, 6, 7) and out.dtype == np.float32
    assert pre.n_features_out_ == (1, 6, 7)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4  # standardised


def test_array_images_channels_first_and_last_agree():
    rng = np.random.default_rng(0)
    first = rng.random((4, 3, 6, 7))
    last = np.moveaxis(first, 1, -1)
    out_first = _fit_transform(ArrayPreprocessor("img", "image"), first)
    out_last = _fit_transform(ArrayPreprocessor("img", "image"), last)
    assert out_first.shape == (4, 3, 6, 7)
    np.testing.assert_allclose(out_last, out_first, rtol=1e-5, atol=1e-6)


def test_array_per_channel_statistics():
    values = np.zeros((2, 2, 5, 5))
    values[:, 0] = 10.0
    values[1, 1] = 4.0  # channel 1: mean 2, std 2
    pre = ArrayPreprocessor("img", "image")
    out = _fit_transform(pre, values)
    np.testing.assert_allclose(pre.mean_, [10.0, 2.0])
    np.testing.assert_allclose(pre.scale_, [1.0, 2.0])  # constant channel: scale 1
    np.testing.assert_allclose(out[:, 1, 0, 0], [-1.0, 1.0])


def test_array_list_with_none_and_mixed_layouts():
    rng = np.random.default_rng(0)
    items = [rng.random((3, 5, 4)), None, rng.random((5, 4, 3)), rng.random((3, 5, 4))]
    pre = ArrayPreprocessor("img", "image")
    out = _fit_transform(pre, items)
    assert out.shape == (4, 3, 5, 4)
    np.testing.assert_array_equal(out[1], 0.0)  # missing rows stay zeros
    # statistics from present rows only: a missing row does not pull the mean to 0
    present = np.stack([items[0], np.moveaxis(items[2], -1, 0), items[3]])
    np.testing.assert_allclose(pre.mean_, present.mean(axis=(0, 2, 3)), rtol=1e-5)


def test_array_stacked_all_nan_sample_is_missing():
    values = np.random.default_rng(0).random((3, 4, 4))
    values[0] = np.nan
    out = _fit_transform(ArrayPreprocessor("img", "image"), values)
    np.testing.assert_array_equal(out[0], 0.0)
    assert np.isfinite(out).all()


def test_array_nan_pixels_error():
    values = np.random.default_rng(0).random((3, 4, 4))
    values[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"Modality 'img' has NaN or infinite pixels in rows 2\. "
                       "Mark a missing image with None"):
        _fit_transform(ArrayPreprocessor("img", "image"), values)
    items = [np.ones((4, 4)), np.full((4, 4), np.inf)]
    with pytest.raises(ValueError, match="infinite pixels in rows 1"):
        _fit_transform(ArrayPreprocessor("img", "image"), items)


def test_array_constant_black_image_stays_finite():
    values = np.zeros((3, 1, 5, 5))
    pre = ArrayPreprocessor("img", "image")
    out = _fit_transform(pre, values)
    assert pre.scale_ == [1.0] and np.isfinite(out).all()
    np.testing.assert_array_equal(out, 0.0)
    black = pre.transform(np.zeros((1, 1, 5, 5)), np.ones(1, bool))
    assert np.isfinite(black).all()


def test_array_shape_mismatch_vs_fit():
    pre = ArrayPreprocessor("img", "image").fit(np.ones((2, 6, 5)), np.ones(2, bool))
    with pytest.raises(ValueError, match=r"Modality 'img': row 1 has spatial shape \(7, 5\) but "
                       r"the model was fitted on \(6, 5\).*image_size"):
        pre.transform(MultimodalData({"img": [np.ones((6, 5)), np.ones((7, 5))]})["img"],
                      np.ones(2, bool))
    with pytest.raises(ValueError, match="row 0 has spatial shape"):
        pre.transform(np.ones((2, 7, 5)), np.ones(2, bool))
    with pytest.raises(ValueError, match=r"'img' \(image\) must be an array shaped \(n, C, H, W\)"):
        pre.transform(np.ones((2, 1, 1, 6, 5)), np.ones(2, bool))


def test_array_image_size_resizes_unequal_samples():
    rng = np.random.default_rng(0)
    items = [rng.random((6, 5)), rng.random((9, 12)), None]
    pre = ArrayPreprocessor("img", "image", image_size=(4, 3))
    out = _fit_transform(pre, items)
    assert out.shape == (3, 1, 4, 3) and pre.shape_ == [4, 3]
    stacked = _fit_transform(ArrayPreprocessor("img", "image", (4, 3)), rng.random((2, 8, 8)))
    assert stacked.shape == (2, 1, 4, 3)
    # a constant image stays that constant after bilinear resizing
    resized = ArrayPreprocessor("img", "image", (3, 3)).read(np.full((7, 9), 2.5), 0)
    np.testing.assert_allclose(resized, 2.5, rtol=1e-6)
    with pytest.raises(ValueError, match=r"image_size \(2, 3, 3\) must have 2 entries"):
        _fit_transform(ArrayPreprocessor("img", "image", (2, 3, 3)), [np.ones((4, 4))])


def test_array_volumes():
    rng = np.random.default_rng(0)
    pre = ArrayPreprocessor("ct", "volume")
    out = _fit_transform(pre, rng.random((2, 1, 3, 4, 5)))
    assert out.shape == (2, 1, 3, 4, 5) and pre.n_features_out_ == (1, 3, 4, 5)
    out = _fit_transform(ArrayPreprocessor("ct", "volume"), [rng.random((3, 4, 5)), None])
    assert out.shape == (2, 1, 3, 4, 5)
    out = _fit_transform(
        ArrayPreprocessor("ct", "volume", (2, 2, 2)), [rng.random((3, 4, 5)), rng.random((4, 4, 4))]
    )
    assert out.shape == (2, 1, 2, 2, 2)


def test_array_json_round_trip():
    rng = np.random.default_rng(0)
    values = rng.random((3, 2, 4, 4))
    pre = ArrayPreprocessor("img", "image", (4, 4)).fit(values, np.ones(3, bool))
    loaded = _json_round_trip(pre)
    assert isinstance(loaded, ArrayPreprocessor) and loaded.image_size == (4, 4)
    np.testing.assert_array_equal(
        loaded.transform(values, np.ones(3, bool)), pre.transform(values, np.ones(3, bool))
    )


def test_array_input_not_mutated():
    values = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    before = values.copy()
    _fit_transform(ArrayPreprocessor("img", "image"), values)
    np.testing.assert_array_equal(values, before)


# -- image files -------------------------------------------------------------------------


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    grey = (rng.random((6, 5)) * 255).astype(np.uint8)
    # smooth, so that lossy JPEG stays close to it
    ramp = np.add.outer(np.arange(6) * 20, np.arange(5) * 10)
    colour = np.stack([ramp + 40, 200 - ramp, np.full_like(ramp, 90)], axis=-1).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(colour).save(tmp_path / "colour.png")
    Image.fromarray(colour).save(tmp_path / "colour.jpg", quality=95)
    return tmp_path, grey, colour


def test_read_png_and_jpeg(image_files):
    folder, grey, colour = image_files
    png = read_file(folder / "grey.png")
    assert png.shape == (1, 6, 5) and png.dtype == np.float32
    np.testing.assert_array_equal(png[0], grey)
    rgb = read_file(str(folder / "colour.png"))
    np.testing.assert_array_equal(rgb, colour.transpose(2, 0, 1))
    jpeg = read_file(folder / "colour.jpg")
    assert jpeg.shape == (3, 6, 5)
    assert np.abs(jpeg - colour.transpose(2, 0, 1)).mean() < 10  # lossy, but the same image


def test_array_from_files_matches_arrays(image_files):
    folder, grey, _ = image_files
    paths = [folder / "grey.png", None, str(folder / "grey.png")]
    pre = ArrayPreprocessor("img", "image")
    out = _fit_transform(pre, paths)
    assert out.shape == (3, 1, 6, 5) and pre.channels_ == 1
    expected = _fit_transform(ArrayPreprocessor("img", "image"), [grey, None, grey])
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_array_files_colour_matched_to_fit_channels(image_files):
    folder, _, _ = image_files
    # the most common channel count wins (a tie: colour)
    pre = ArrayPreprocessor("img", "image")
    out = _fit_transform(pre, [folder / "grey.png", folder / "colour.png", folder / "grey.png"])
    assert pre.channels_ == 1 and out.shape == (3, 1, 6, 5)  # colour -> grey
    pre = ArrayPreprocessor("img", "image")
    out = _fit_transform(pre, [folder / "grey.png", folder / "colour.jpg"])
    assert pre.channels_ == 3 and out.shape == (2, 3, 6, 5)  # grey -> colour


def test_missing_file_is_an_error_naming_modality_and_row(image_files):
    folder, _, _ = image_files
    paths = [folder / "grey.png", None, folder / "nope.png"]
    with pytest.raises(FileNotFoundError, match=r"Modality 'mri', row 2: No such file: .*nope"):
        _fit_transform(ArrayPreprocessor("mri", "image"), paths)
    pre = ArrayPreprocessor("mri", "image").fit(
        np.array([folder / "grey.png"], dtype=object), np.ones(1, bool)
    )
    with pytest.raises(FileNotFoundError, match="Modality 'mri', row 0"):
        pre.transform(np.array([str(folder / "gone.jpg")], dtype=object), np.ones(1, bool))


def test_read_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        read_file(tmp_path / "absent.png")
    with pytest.raises(ValueError, match="holds no DICOM file"):
        read_file(tmp_path)  # a folder is a DICOM series, and this one has none


# -- DICOM and NIfTI ---------------------------------------------------------------------


def _write_dicom(path, pixels, slope=2.0, intercept=-100.0):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).Rows == pixels.shape[0]
    return path


def test_read_dicom_written_applies_rescale(tmp_path):
    pixels = np.arange(20).reshape(4, 5)
    expected = (pixels * 2.0 - 100.0)[None]
    np.testing.assert_array_equal(read_file(_write_dicom(tmp_path / "a.dcm", pixels)), expected)
    # DICOM files often have no suffix
    np.testing.assert_array_equal(read_file(_write_dicom(tmp_path / "IM0001", pixels)), expected)


def test_read_dicom_bundled_ct():
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    dataset = pydicom.dcmread(path)
    array = read_file(path)
    assert array.shape == (1, 128, 128) and array.dtype == np.float32
    hounsfield = dataset.pixel_array * float(dataset.RescaleSlope) + float(
        dataset.RescaleIntercept
    )
    np.testing.assert_allclose(array[0], hounsfield)


def test_dicom_files_through_array_preprocessor(tmp_path):
    pixels = np.arange(20).reshape(4, 5)
    paths = [_write_dicom(tmp_path / "a.dcm", pixels), None, _write_dicom(tmp_path / "b.dcm",
                                                                          pixels[::-1])]
    out = _fit_transform(ArrayPreprocessor("ct", "image"), paths)
    assert out.shape == (3, 1, 4, 5) and np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], out[2, 0][::-1])


def test_read_nifti_written_volume(tmp_path):
    nibabel = pytest.importorskip("nibabel")
    volume = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for name in ("v.nii", "v.nii.gz"):
        nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / name)
        array = read_file(tmp_path / name)
        assert array.shape == (1, 2, 3, 4)
        np.testing.assert_array_equal(array[0], volume)
    # NIfTI's fourth axis is time: a 4-D file is a series, not a two-channel volume
    four_d = np.arange(48, dtype=np.float32).reshape(2, 3, 4, 2)
    nibabel.save(nibabel.Nifti1Image(four_d, np.eye(4)), tmp_path / "t.nii")
    with pytest.raises(ValueError, match=r"t.nii' is a 4-D NIfTI \(2 x 3 x 4 x 2\)"):
        read_file(tmp_path / "t.nii")
    # channels go on the fifth axis (a vector image): read as channels
    vector = four_d.reshape(2, 3, 4, 1, 2)
    image = nibabel.Nifti1Image(vector, np.eye(4))
    image.header.set_intent("vector")
    nibabel.save(image, tmp_path / "c.nii")
    np.testing.assert_array_equal(read_file(tmp_path / "c.nii"), four_d.transpose(3, 0, 1, 2))
    out = _fit_transform(
        ArrayPreprocessor("ct", "volume", (2, 2, 2)), [tmp_path / "v.nii.gz", None]
    )
    assert out.shape == (2, 1, 2, 2, 2)


def test_read_nifti_bundled_anatomical():
    nibabel = pytest.importorskip("nibabel")
    path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not path.is_file():
        pytest.skip("nibabel's test data is not installed")
    array = read_file(path)
    assert array.shape == (1, *nibabel.load(path).shape) and array.ndim == 4
    assert np.isfinite(array).all() and array.std() > 0
