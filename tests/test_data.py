"""Unit tests of mmfusion_sklearn._data: the MultimodalData container, kind inference
and modality specifications (no torch involved)."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils import _safe_indexing

from mmfusion_sklearn._data import (
    KINDS,
    Modality,
    MultimodalData,
    as_multimodal,
    infer_kind,
    resolve_modality_spec,
)

# -- construction from a dict ------------------------------------------------------------


def test_dict_presence_from_none_items_and_all_nan_rows():
    data = MultimodalData(
        {
            "clinical": np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, np.nan]]),
            "image": [np.zeros((4, 4)), np.ones((4, 4)), None],
        }
    )
    assert len(data) == 3
    assert data.shape == (3, 2)
    assert data.modality_names == ["clinical", "image"]
    presence = data.presence
    assert isinstance(presence, pd.DataFrame)
    assert list(presence.columns) == ["clinical", "image"]
    assert presence.dtypes.eq(bool).all()
    # a partly-NaN row is present (missing features), an all-NaN row is not
    assert presence.to_numpy().tolist() == [[True, True], [False, True], [True, False]]


def test_dict_list_of_equal_shaped_arrays_stays_one_item_per_sample():
    images = [np.full((5, 6), float(i)) for i in range(3)]
    data = MultimodalData({"image": images})
    stored = data.values("image")
    assert stored.dtype == object and stored.shape == (3,)
    assert stored[2].shape == (5, 6) and stored[2][0, 0] == 2.0
    assert data.present("image").all()


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_missing_item_markers(missing):
    data = MultimodalData({"image": [np.zeros((2, 2)), missing, np.ones((2, 2))]})
    assert data.present("image").tolist() == [True, False, True]


def test_dict_with_dataframe_keeps_table_and_presence():
    frame = pd.DataFrame(
        {"age": [50.0, np.nan, 61.0], "sex": ["f", None, "m"]}, index=[10, 20, 30]
    )
    data = MultimodalData({"clinical": frame, "emb": np.ones((3, 4))})
    assert data.values("clinical") is frame
    assert data.present("clinical").tolist() == [True, False, True]
    assert data.present("emb").all()
    # the presence frame is indexed by position, not by the table's labels
    assert list(data.presence.index) == [0, 1, 2]


def test_stacked_arrays_presence():
    images = np.random.default_rng(0).random((4, 1, 3, 3))
    images[2] = np.nan
    ints = np.arange(8).reshape(4, 2)
    data = MultimodalData({"image": images, "codes": ints})
    assert data.present("image").tolist() == [True, True, False, True]
    assert data.present("codes").all()  # integers cannot be missing


def test_series_of_paths_is_items_not_a_table():
    # pandas >= 3 gives strings their own dtype; they must still be per-sample items
    paths = pd.Series(["a.png", None, "c.png"])
    data = MultimodalData({"image": paths})
    values = data.values("image")
    assert isinstance(values, np.ndarray) and values.dtype == object
    assert data.present("image").tolist() == [True, False, True]
    assert infer_kind("image", values, data.present("image")) == "image"


def test_numeric_series_is_a_one_column_table():
    data = MultimodalData({"age": pd.Series([1.0, np.nan, 3.0], name="age")})
    assert isinstance(data.values("age"), pd.DataFrame)
    assert list(data.values("age").columns) == ["age"]
    assert data.present("age").tolist() == [True, False, True]


def test_feature_dict_items_become_a_table():
    data = MultimodalData({"clinical": [{"age": 50, "sex": "f"}, None, {"age": 60}]})
    table = data.values("clinical")
    assert isinstance(table, pd.DataFrame)
    assert set(table.columns) == {"age", "sex"}
    assert data.present("clinical").tolist() == [True, False, True]


def test_modality_left_out_is_absent_everywhere():
    data = MultimodalData({"a": np.ones((3, 2))})
    assert "b" not in data and "a" in data
    assert data.present("b").tolist() == [False, False, False]


# -- construction from records -----------------------------------------------------------


def test_records_with_absent_keys():
    records = [
        {"clinical": np.array([1.0, 2.0]), "image": "a.png"},
        {"clinical": np.array([3.0, 4.0])},
        {"image": "c.png"},
    ]
    data = MultimodalData(records)
    assert data.modality_names == ["clinical", "image"]
    assert data.presence.to_numpy().tolist() == [[True, True], [True, False], [False, True]]
    assert data.values("image")[0] == "a.png"


def test_all_records_empty_is_an_error():
    with pytest.raises(ValueError, match="every record is empty"):
        MultimodalData([{}, {}])


# -- construction from a DataFrame with `modalities` -------------------------------------


def test_dataframe_columns_assigned_to_modalities():
    frame = pd.DataFrame(
        {
            "age": [50.0, 60.0, np.nan],
            "grade": [1.0, 2.0, np.nan],
            "path": ["a.png", None, "c.png"],
        }
    )
    data = MultimodalData(frame, modalities={"clinical": ["age", "grade"], "mri": "path"})
    assert data.modality_names == ["clinical", "mri"]
    clinical = data.values("clinical")
    assert isinstance(clinical, pd.DataFrame) and list(clinical.columns) == ["age", "grade"]
    mri = data.values("mri")
    assert isinstance(mri, np.ndarray) and mri.dtype == object
    assert data.presence.to_numpy().tolist() == [[True, True], [True, False], [False, True]]
    assert infer_kind("mri", mri, data.present("mri")) == "image"


def test_dataframe_column_of_arrays_is_an_image_modality():
    frame = pd.DataFrame(
        {"age": [1.0, 2.0, 3.0], "pixels": [np.zeros((4, 4)), None, np.ones((4, 4))]}
    )
    data = MultimodalData(
        frame, modalities={"clinical": ["age"], "img": Modality(columns="pixels")}
    )
    assert data.present("img").tolist() == [True, False, True]
    assert data.values("img")[2].shape == (4, 4)
    assert infer_kind("img", data.values("img"), data.present("img")) == "image"


def test_dataframe_without_modalities_is_one_tabular_modality():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    data = MultimodalData(frame)
    assert data.modality_names == ["tabular"]
    assert data.values("tabular") is frame


def test_dataframe_unassigned_columns_warn_and_missing_columns_raise():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "p": ["x.png", "y.png"]})
    with pytest.warns(UserWarning, match=r"Columns \['b'\] .* assigned to no modality"):
        MultimodalData(frame, modalities={"t": ["a"], "img": "p"})
    with pytest.raises(ValueError, match=r"Modality 't' refers to columns \['zz'\]"):
        MultimodalData(frame, modalities={"t": ["a", "zz"], "img": "p"})
    # a modality none of whose columns X has is missing for every sample (as a left-out
    # dict key); the column nobody claims still warns
    with pytest.warns(UserWarning, match=r"Columns \['p'\]"):
        data = MultimodalData(
            frame, modalities={"t": ["a", "b"], "img": Modality("image", "nope")}
        )
    assert data.modality_names == ["t"]
    with pytest.raises(ValueError, match="X has none of the columns"):
        MultimodalData(frame, modalities={"t": ["zz"], "img": Modality("image", "nope")})


def test_dataframe_column_of_nothing_but_none_is_an_absent_image_modality():
    frame = pd.DataFrame({"a": [1.0, 2.0], "p": [None, None]})
    data = MultimodalData(frame, modalities={"t": ["a"], "img": "p"})
    assert data.values("img").dtype == object
    assert not data.present("img").any()


# -- errors ------------------------------------------------------------------------------


def test_unequal_lengths_error_names_each_modality():
    with pytest.raises(ValueError, match=r"same number of samples.*'a': 3, 'b': 4"):
        MultimodalData({"a": np.ones((3, 2)), "b": np.ones((4, 2))})


def test_non_string_name_error():
    with pytest.raises(ValueError, match="Modality names must be strings. Got 1 instead"):
        MultimodalData({1: np.ones((3, 2))})


@pytest.mark.parametrize("fmt", ["csr", "coo", "dok"])
def test_sparse_input_error(fmt):
    matrix = sp.random(4, 3, density=0.5, format=fmt, random_state=0)
    with pytest.raises(TypeError, match="Modality 't': sparse matrices are not supported"):
        MultimodalData({"t": matrix})


def test_other_construction_errors():
    with pytest.raises(TypeError, match="X must be a dict .* Got int instead"):
        MultimodalData(3)
    with pytest.raises(ValueError, match="X holds no modality"):
        MultimodalData({})
    with pytest.raises(ValueError, match="Modality 'a' must hold one value per sample"):
        MultimodalData({"a": 5.0})
    with pytest.raises(ValueError, match="unsupported dtype"):
        MultimodalData({"a": np.array(["2020-01-01"], dtype="datetime64[D]")})


# -- indexing ----------------------------------------------------------------------------


def _example():
    return MultimodalData(
        {
            "t": np.arange(12.0).reshape(6, 2),
            "img": [np.full((2, 2), i) if i % 2 else None for i in range(6)],
            "tab": pd.DataFrame({"x": [0.0, np.nan, 2.0, 3.0, 4.0, 5.0]}, index=list("abcdef")),
        }
    )


def test_integer_index_returns_record_of_present_modalities():
    data = _example()
    record = data[1]
    assert set(record) == {"t", "img"}  # 'tab' row 1 is all-NaN
    np.testing.assert_array_equal(record["t"], [2.0, 3.0])
    assert record["img"][0, 0] == 1
    assert set(data[np.int64(2)]) == {"t", "tab"}
    np.testing.assert_array_equal(data[-1]["t"], [10.0, 11.0])
    with pytest.raises(IndexError, match="Sample 6 is out of range for 6 samples"):
        data[6]


def test_string_index_returns_stored_values():
    data = _example()
    np.testing.assert_array_equal(data["t"], np.arange(12.0).reshape(6, 2))


@pytest.mark.parametrize(
    "key, rows",
    [
        (slice(1, 4), [1, 2, 3]),
        (slice(None, None, -2), [5, 3, 1]),
        ([4, 0, 4], [4, 0, 4]),
        (np.array([5, 1]), [5, 1]),
        (np.array([True, False, False, True, False, True]), [0, 3, 5]),
        ((np.array([2, 3]), Ellipsis), [2, 3]),
        (([0, 5], slice(None)), [0, 5]),
    ],
)
def test_subset_indexing(key, rows):
    data = _example()
    subset = data[key]
    assert isinstance(subset, MultimodalData)
    assert len(subset) == len(rows) and subset.shape == (len(rows), 3)
    np.testing.assert_array_equal(subset.values("t")[:, 0], [2.0 * r for r in rows])
    np.testing.assert_array_equal(
        subset.presence.to_numpy(), data.presence.to_numpy()[rows]
    )
    assert list(subset.values("tab").index) == [list("abcdef")[r] for r in rows]
    assert list(subset.presence.index) == list(range(len(rows)))


def test_indexing_errors():
    data = _example()
    with pytest.raises(IndexError, match="indexed along samples only"):
        data[0, 1]
    with pytest.raises(IndexError):
        data[np.array([True, False])]


def test_iteration_and_copy():
    data = _example()
    records = list(data)
    assert len(records) == 6 and set(records[0]) == {"t", "tab"}
    copy = MultimodalData(data)
    assert copy is not data and copy.shape == data.shape
    assert as_multimodal(data) is data
    assert isinstance(as_multimodal({"a": np.ones((2, 2))}), MultimodalData)
    assert repr(data) == "MultimodalData(n_samples=6, present={t: 6/6, img: 3/6, tab: 5/6})"


# -- scikit-learn interoperability -------------------------------------------------------


def _labelled(n=12):
    rng = np.random.default_rng(0)
    data = MultimodalData(
        {
            "t": np.column_stack([np.arange(n, dtype=float), rng.random(n)]),
            "img": [rng.random((3, 3)) if i % 3 else None for i in range(n)],
        }
    )
    return data, np.arange(n) % 2


def test_train_test_split():
    data, y = _labelled()
    train, test, y_train, y_test = train_test_split(
        data, y, test_size=0.25, stratify=y, random_state=0
    )
    assert isinstance(train, MultimodalData) and isinstance(test, MultimodalData)
    assert (len(train), len(test)) == (9, 3)
    # rows travel with their labels
    np.testing.assert_array_equal(train.values("t")[:, 0].astype(int) % 2, y_train)
    np.testing.assert_array_equal(test.values("t")[:, 0].astype(int) % 2, y_test)
    seen = np.concatenate([train.values("t")[:, 0], test.values("t")[:, 0]])
    np.testing.assert_array_equal(np.sort(seen), np.arange(12.0))


def test_stratified_kfold_split():
    data, y = _labelled()
    folds = list(StratifiedKFold(n_splits=3).split(data, y))
    assert len(folds) == 3
    test_rows = np.sort(np.concatenate([test for _, test in folds]))
    np.testing.assert_array_equal(test_rows, np.arange(12))
    for _, test in folds:
        subset = data[test]
        np.testing.assert_array_equal(subset.values("t")[:, 0], test.astype(float))
        assert np.bincount(y[test]).tolist() == [2, 2]


def test_safe_indexing():
    data, _ = _labelled()
    subset = _safe_indexing(data, np.array([3, 7]))
    assert isinstance(subset, MultimodalData)
    np.testing.assert_array_equal(subset.values("t")[:, 0], [3.0, 7.0])
    masked = _safe_indexing(data, np.arange(12) < 4)
    assert len(masked) == 4
    assert len(_safe_indexing(data, [0, 1, 2])) == 3


def test_inputs_are_never_mutated():
    rng = np.random.default_rng(0)
    table = rng.random((6, 3))
    table[1] = np.nan
    frame = pd.DataFrame({"age": [1.0, np.nan, 3, 4, 5, 6], "path": ["a.png"] * 6})
    images = [rng.random((2, 2)) if i % 2 else None for i in range(6)]
    X = {"t": table, "f": frame[["age"]], "img": images}
    before = {
        "t": table.copy(),
        "frame": frame.copy(),
        "img": [None if a is None else a.copy() for a in images],
        "keys": list(X),
    }
    data = MultimodalData(X)
    subset = data[[0, 2, 4]]
    _ = data[1], data.presence, list(subset), train_test_split(data, test_size=2)
    MultimodalData(frame, modalities={"clinical": ["age"], "image": "path"})
    np.testing.assert_array_equal(table, before["t"])
    pd.testing.assert_frame_equal(frame, before["frame"])
    assert list(X) == before["keys"] and X["img"] is images and len(images) == 6
    for new, old in zip(images, before["img"]):
        assert (new is None) == (old is None)
        if new is not None:
            np.testing.assert_array_equal(new, old)


# -- kind inference ----------------------------------------------------------------------


def _kind(values):
    data = MultimodalData({"m": values})
    return infer_kind("m", data.values("m"), data.present("m"))


@pytest.mark.parametrize(
    "values, kind",
    [
        (np.ones((4, 3)), "tabular"),
        (np.ones(4), "tabular"),
        (pd.DataFrame({"a": [1, 2]}), "tabular"),
        (np.ones((4, 8, 8)), "image"),
        (np.ones((4, 3, 8, 8)), "image"),
        (np.ones((4, 1, 5, 8, 8)), "volume"),
        ([None, "scan.PNG", "b.png"], "image"),
        (["x.jpeg"], "image"),
        (["x.dcm"], "image"),
        (["x.nii.gz", None], "volume"),
        ([Path("x.nii")], "volume"),
        (["female", "male"], "tabular"),
        ([np.ones(5), None], "tabular"),
        ([np.ones((8, 8))], "image"),
        ([np.ones((3, 8, 8))], "image"),
        ([np.ones((8, 8, 3))], "image"),
        ([np.ones((16, 8, 8))], "volume"),
        ([np.ones((1, 16, 8, 8))], "volume"),
        ([1.5, None, 2.5], "tabular"),
    ],
)
def test_infer_kind(values, kind):
    assert _kind(values) == kind


def test_infer_kind_errors():
    with pytest.raises(ValueError, match="Modality 'm' is an array of 6 dimensions"):
        _kind(np.ones((2, 1, 1, 1, 1, 1)))
    with pytest.raises(ValueError, match="Modality 'm' is missing for every sample"):
        _kind([None, None])
    with pytest.raises(ValueError, match="too many dimensions"):
        _kind([np.ones((1, 1, 1, 1, 1))])


# -- Modality and resolve_modality_spec --------------------------------------------------


def test_modality_validation():
    assert KINDS == ("tabular", "image", "volume", "embedding")
    modality = Modality("image", columns="p", image_size=[np.int64(32), 32.0])
    assert modality.image_size == (32, 32)
    assert all(type(s) is int for s in modality.image_size)
    assert modality.with_kind("volume").kind == "volume" and modality.kind == "image"
    with pytest.raises(ValueError, match=r"Modality kind must be one of .* Got 'audio'"):
        Modality("audio")


def test_resolve_modality_spec_forms():
    assert resolve_modality_spec(None) is None
    encoder = object()
    spec = resolve_modality_spec(
        {
            "a": "image",
            "b": "mri_path",
            "c": ["age", "sex"],
            "d": Modality("embedding", encoder=encoder),
            "e": None,
        }
    )
    assert spec["a"] == Modality(kind="image")
    assert spec["b"] == Modality(columns="mri_path")
    assert spec["c"] == Modality(kind="tabular", columns=["age", "sex"])
    assert spec["d"].kind == "embedding" and spec["d"].encoder is encoder
    assert spec["e"] == Modality()
    assert resolve_modality_spec(["x", "y"]) == {"x": Modality(), "y": Modality()}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({}, "must be None, a non-empty dict"),
        ("image", "must be None, a non-empty dict"),
        ({1: "image"}, "Modality names must be non-empty strings. Got 1 in 'modalities'"),
        ({"a": 3}, "Modality 'a' in 'modalities' must be a kind"),
        ({"a": ["x", 2]}, "Modality 'a' in 'modalities' must be a kind"),
    ],
)
def test_resolve_modality_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_modality_spec(spec)


def test_no_warning_for_plain_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MultimodalData({"a": np.ones((2, 2)), "b": ["x.png", None]})


def test_a_dict_of_dataframes_must_agree_on_its_row_labels():
    ids = [f"p{i}" for i in range(6)]
    table = pd.DataFrame({"a": np.arange(6.0)}, index=ids)
    labs = pd.DataFrame({"b": np.arange(6.0)}, index=ids[::-1])  # same patients, reordered
    with pytest.raises(ValueError, match="'table' and 'labs' hold the same rows in another "
                                         r"order.*\.loc\[X\['table'\]\.index\]"):
        MultimodalData({"table": table, "labs": labs})
    other = pd.DataFrame({"b": np.arange(6.0)}, index=[f"q{i}" for i in range(6)])
    with pytest.raises(ValueError, match="different row labels \\(e.g. 'p0' and 'q0'\\)"):
        MultimodalData({"table": table, "labs": other})
    # the same labels in the same order, or default positions, are fine
    data = MultimodalData({"table": table, "labs": labs.loc[ids],
                           "image": [np.zeros((2, 2))] * 6})
    assert list(data.sample_labels) == ids
    assert list(data[[4, 1]].sample_labels) == ["p4", "p1"]
    assert list(MultimodalData({"x": np.zeros((3, 2))}).sample_labels) == [0, 1, 2]
    assert list(data.index) == list(range(6))  # rows still align by position
