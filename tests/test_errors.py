"""Bad input gets a clear error (type and message), and inputs are never mutated."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast_clf, make_multimodal
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from mmfusion_sklearn import Modality, MultimodalData, MultimodalFusionClassifier


@pytest.fixture(scope="module")
def fitted():
    X, y = make_multimodal(n=40)
    return fast_clf(max_epochs=2).fit(X, y), X, y


# -- samples without any modality --------------------------------------------------------------
def test_sample_without_any_modality_in_fit():
    X, y = make_multimodal(n=30)
    X["image"][4] = None
    X["table"][4] = np.nan
    X["image"][9] = None
    X["table"][9] = np.nan
    with pytest.raises(ValueError, match=r"Samples 4, 9 have no modality at all"):
        fast_clf().fit(X, y)


def test_record_without_any_modality_in_fit():
    X, y = make_multimodal(n=20, missing=False)
    records = [{"table": X["table"][i], "image": X["image"][i]} for i in range(20)]
    records[7] = {}
    with pytest.raises(ValueError, match=r"Sample 7 has no modality"):
        fast_clf().fit(records, y)


def test_sample_without_any_modality_in_predict(fitted):
    clf, X, _ = fitted
    X = {"table": X["table"][:6].copy(), "image": list(X["image"][:6])}
    X["table"][[1, 5]] = np.nan
    X["image"][1] = None
    X["image"][5] = None
    for method in (clf.predict, clf.predict_proba, clf.decision_function):
        with pytest.raises(ValueError, match=r"Samples 1, 5 have no modality at all"):
            method(X)
    # a modality left out entirely leaves the rows where the other one is missing empty
    image_rows_missing = [i for i, v in enumerate(X["image"]) if v is None]
    with pytest.raises(ValueError, match="no modality at all") as info:
        clf.predict({"image": X["image"]})
    assert all(str(i) in str(info.value) for i in image_rows_missing)


# -- unknown modalities and shapes -------------------------------------------------------------
def test_modality_unseen_in_fit_is_named(fitted):
    clf, X, _ = fitted
    with pytest.raises(ValueError, match=r"\['genomics'\].*not seen in fit"):
        clf.predict({**X, "genomics": np.zeros((40, 3))})


def test_image_shape_differs_from_fit(fitted):
    clf, X, _ = fitted
    bigger = [np.zeros((10, 10)) for _ in range(40)]
    with pytest.raises(ValueError, match=r"'image'.*row 0.*\(10, 10\).*\(8, 8\)"):
        clf.predict({"table": X["table"], "image": bigger})
    with pytest.raises(ValueError, match=r"'image'.*\(10, 10\).*\(8, 8\)"):
        clf.predict({"table": X["table"], "image": np.zeros((40, 10, 10))})


def test_images_of_different_sizes_in_fit():
    X, y = make_multimodal(n=20, missing=False)
    X["image"][3] = np.zeros((6, 6))
    with pytest.raises(ValueError, match=r"'image'.*row 3.*\(6, 6\)"):
        fast_clf().fit(X, y)


def test_table_width_differs_from_fit(fitted):
    clf, X, _ = fitted
    with pytest.raises(ValueError, match=r"'table'.*columns"):
        clf.predict({"table": X["table"][:, :3], "image": X["image"]})


def test_dataframe_with_array_column_without_modalities():
    # without 'modalities', a DataFrame is one table: a column of image arrays must give
    # a clear error naming it (or be recognised as an image), not a numpy error
    X, y = make_multimodal(n=20, missing=False)
    frame = pd.DataFrame(X["table"], columns=list("abcd"))
    frame["img"] = pd.Series(X["image"], dtype=object)
    try:
        clf = fast_clf().fit(frame, y)
    except ValueError as exc:
        assert "img" in str(exc), str(exc)
    else:
        assert any(m.kind == "image" for m in clf.modalities_.values())


def test_predict_on_zero_samples(fitted):
    clf, _, _ = fitted
    with pytest.raises(ValueError, match=r"0 sample"):
        clf.predict({"table": np.zeros((0, 4))})


def test_predict_on_zero_samples_plain_array():
    X = np.random.default_rng(0).normal(size=(20, 3))
    clf = fast_clf(max_epochs=1).fit(X, np.arange(20) % 2)
    with pytest.raises(ValueError, match=r"0 sample"):
        clf.predict(X[:0])


def test_too_few_samples_for_early_stopping_warns():
    X = np.random.default_rng(0).normal(size=(3, 2))
    with pytest.warns(UserWarning, match="Too few samples"):
        clf = fast_clf(early_stopping=True).fit(X, [0, 1, 0])
    assert clf.history_["valid_loss"].isna().all()


# -- lengths -----------------------------------------------------------------------------------
def test_lengths_differ_between_modalities():
    X, y = make_multimodal(n=20)
    X["image"] = X["image"][:18]
    with pytest.raises(ValueError, match=r"same number of samples.*'table': 20.*'image': 18"):
        fast_clf().fit(X, y)


def test_lengths_differ_between_X_and_y():
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match=re.escape("Number of samples in X (20) and y (19)")):
        fast_clf().fit(X, y[:19])
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples|\(20\).*\(19\)"):
        fast_clf().fit(X["table"], y[:19])


def test_sample_weight_length_differs():
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(19,\), expected \(20,\)"):
        fast_clf().fit(X, y, sample_weight=np.ones(19))


# -- non-finite values -------------------------------------------------------------------------
def test_inf_in_table():
    X, y = make_multimodal(n=20, missing=False)
    X["table"][6, 2] = np.inf
    with pytest.raises(ValueError, match=r"'table'.*infinite.*rows 6"):
        fast_clf().fit(X, y)


def test_inf_in_table_at_predict(fitted):
    clf, X, _ = fitted
    table = X["table"].copy()
    table[0, 0] = -np.inf
    with pytest.raises(ValueError, match=r"'table'.*infinite.*rows 0"):
        clf.predict({"table": table, "image": X["image"]})


@pytest.mark.parametrize("as_list", [True, False])
def test_inf_in_image(as_list):
    X, y = make_multimodal(n=20, missing=False)
    images = np.stack(X["image"])
    images[2, 3, 3] = np.inf
    X["image"] = list(images) if as_list else images
    with pytest.raises(ValueError, match=r"'image'.*infinite.*rows 2"):
        fast_clf().fit(X, y)


def test_partial_nan_image_is_an_error():
    # an image with some NaN pixels is not a missing image: never degrade silently
    X, y = make_multimodal(n=20, missing=False)
    X["image"][5] = X["image"][5].copy()
    X["image"][5][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"'image'.*NaN.*rows 5"):
        fast_clf().fit(X, y)


def test_inf_in_plain_array():
    X = np.ones((10, 2))
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity|infinite"):
        fast_clf().fit(X, np.arange(10) % 2)


# -- y -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("y", [np.array(["a"] * 20), np.zeros(20, dtype=int), [True] * 20])
def test_single_class(y):
    X, _ = make_multimodal(n=20)
    with pytest.raises(ValueError, match=r"only one class .*at least 2 classes"):
        fast_clf().fit(X, y)


def test_single_class_message_shows_the_label():
    X, _ = make_multimodal(n=20)
    with pytest.raises(ValueError, match=r"only one class \('a'\)"):
        fast_clf().fit(X, np.array(["a"] * 20))


def test_continuous_y():
    X, _ = make_multimodal(n=20)
    with pytest.raises(ValueError, match="Unknown label type"):
        fast_clf().fit(X, np.linspace(0, 1, 20))


def test_y_none():
    X, _ = make_multimodal(n=20)
    with pytest.raises(ValueError, match="requires y to be passed"):
        fast_clf().fit(X, None)


# -- parameters --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, message",
    [
        ({"lr": -1}, r"The 'lr' parameter of MultimodalFusionClassifier must be a float in "
                     r"the range \(0.0, inf\)\. Got -1 instead"),
        ({"lr": 0.0}, r"The 'lr' parameter"),
        ({"fusion": "attention"}, r"The 'fusion' parameter of MultimodalFusionClassifier "
                                  r"must be a str among .*'mlp'.*Got 'attention' instead"),
        ({"embed_dim": 0}, r"The 'embed_dim' parameter"),
        ({"embed_dim": 8.5}, r"The 'embed_dim' parameter"),
        ({"missing_token": "mean"}, r"The 'missing_token' parameter"),
        ({"modality_dropout": "all"}, r"The 'modality_dropout' parameter"),
        ({"dropout_rate": 1.0}, r"The 'dropout_rate' parameter"),
        ({"contrastive": "both"}, r"The 'contrastive' parameter"),
        ({"pretrain_epochs": -1}, r"The 'pretrain_epochs' parameter"),
        ({"max_epochs": 0}, r"The 'max_epochs' parameter"),
        ({"batch_size": 0}, r"The 'batch_size' parameter"),
        ({"validation_fraction": 1.0}, r"The 'validation_fraction' parameter"),
        ({"patience": 0}, r"The 'patience' parameter"),
        ({"class_weight": "auto"}, r"The 'class_weight' parameter"),
        ({"early_stopping": "yes"}, r"The 'early_stopping' parameter"),
        ({"modalities": "image"}, r"The 'modalities' parameter"),
        ({"random_state": "seed"}, r"The 'random_state' parameter"),
    ],
)
def test_invalid_parameters(params, message):
    X, y = make_multimodal(n=20)
    with pytest.raises(InvalidParameterError, match=message):
        fast_clf(**params).fit(X, y)
    assert issubclass(InvalidParameterError, ValueError)


@pytest.mark.parametrize("device", ["gpu", "tpu:0"])
def test_invalid_device(device):
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match=rf"'device' parameter.*Got '{device}' instead"):
        fast_clf(device=device).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_device_without_cuda():
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match=r"'cuda'.*CUDA is not available"):
        fast_clf(device="cuda").fit(X, y)


@pytest.mark.parametrize(
    "modalities, message",
    [
        ({}, r"'modalities' parameter must be None, a non-empty dict"),
        ({"table": 3, "image": "image"}, r"Modality 'table' in 'modalities' must be a kind"),
        ({1: "tabular"}, r"Modality names must be non-empty strings"),
        ({"table": "tabular"}, r"\['image'\] that 'modalities' does not declare"),
        ({"table": "tabular", "image": "image", "genes": "tabular"},
         r"\['genes'\] are declared in 'modalities' but X has none"),
    ],
    ids=["empty", "bad-value", "non-str-name", "undeclared", "declared-absent"],
)
def test_bad_modalities_spec(modalities, message):
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match=message):
        fast_clf(modalities).fit(X, y)


def test_bad_modality_kind():
    with pytest.raises(ValueError, match=r"kind must be one of.*Got 'picture' instead"):
        Modality("picture")


def test_misspelt_kind_with_dict_input():
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match="tabluar"):
        fast_clf({"table": "tabluar", "image": "image"}).fit(X, y)


def test_dataframe_modality_refers_to_missing_column():
    X, y = make_multimodal(n=20)
    frame = pd.DataFrame(X["table"], columns=list("abcd"))
    with pytest.raises(ValueError, match=r"'clinical' refers to columns \['zz'\]"):
        fast_clf({"clinical": ["a", "zz"], "other": ["b"]}).fit(frame, y)


def test_dataframe_columns_assigned_to_no_modality_warn():
    X, y = make_multimodal(n=20)
    frame = pd.DataFrame(X["table"], columns=list("abcd"))
    frame["img"] = pd.Series(X["image"], dtype=object)
    with pytest.warns(UserWarning, match=r"\['d'\].*assigned to no modality"):
        fast_clf({"clinical": list("abc"), "img": "img"}).fit(frame, y)


# -- not fitted --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function", "score"])
def test_prediction_before_fit(method):
    X, y = make_multimodal(n=10)
    clf = MultimodalFusionClassifier()
    args = (X, y) if method == "score" else (X,)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(clf, method)(*args)


def test_save_before_fit(tmp_path):
    with pytest.raises(NotFittedError):
        MultimodalFusionClassifier().save(tmp_path)


# -- files and categories ----------------------------------------------------------------------
def test_missing_file_names_modality_and_row(tmp_path):
    from PIL import Image

    X, y = make_multimodal(n=12, missing=False)
    paths = []
    for i, image in enumerate(X["image"]):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.uint8(np.clip(image * 20 + 128, 0, 255))).save(path)
        paths.append(str(path))
    paths[5] = str(tmp_path / "gone.png")
    with pytest.raises(FileNotFoundError, match=r"Modality 'image', row 5.*gone\.png"):
        fast_clf().fit({"table": X["table"], "image": paths}, y)
    # reading files works when they exist, and a missing file at predict is named too
    paths[5] = paths[4]
    clf = fast_clf(max_epochs=1).fit({"table": X["table"], "image": paths}, y)
    assert clf.modalities_["image"].kind == "image"
    with pytest.raises(FileNotFoundError, match=r"Modality 'image', row 1.*nope\.jpg"):
        clf.predict({"image": [paths[0], str(tmp_path / "nope.jpg")]})


def test_unseen_category_warns():
    rng = np.random.default_rng(0)
    y = np.arange(30) % 2
    table = pd.DataFrame({"x": rng.normal(size=30), "site": np.where(y, "north", "south")})
    clf = fast_clf(max_epochs=1).fit({"clinical": table}, y)
    new = table.iloc[:3].copy()
    new["site"] = ["east", "north", "west"]
    with pytest.warns(UserWarning, match=r"'clinical'.*'site'.*\['east', 'west'\].*not seen"):
        proba = clf.predict_proba({"clinical": new})
    assert np.isfinite(proba).all()


# -- inputs are never mutated ------------------------------------------------------------------
def _assert_same(a, b, where="X"):
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same(u, v, f"{where}[{i}]")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, obj=where)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, obj=where)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype == object:
            _assert_same(list(a), list(b), where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a is b or a == b or (a != a and b != b), where


def _mixed_input():
    X, y = make_multimodal(n=30)
    frame = pd.DataFrame(X["table"], columns=list("abcd"))
    frame["site"] = pd.Series(np.where(np.arange(30) % 2, "x", "y"), dtype=object)
    frame.loc[3, "a"] = np.nan
    emb = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)
    emb[[1, 8]] = np.nan
    images = np.stack([v if v is not None else np.full((8, 8), np.nan, np.float32)
                       for v in X["image"]])
    X = {
        "clinical": frame,
        "image": list(X["image"]),
        "image_array": images,
        "emb": emb,
    }
    return X, np.array(["p", "q"])[y]


def test_fit_and_predict_do_not_mutate_inputs():
    X, y = _mixed_input()
    modalities = {
        "clinical": "tabular",
        "image": Modality("image"),
        "image_array": "image",
        "emb": Modality("embedding"),
    }
    spec_copy = copy.deepcopy(modalities)
    X_copy, y_copy = copy.deepcopy(X), copy.deepcopy(y)
    weight = np.linspace(0.5, 1.5, 30)
    weight_copy = weight.copy()
    clf = fast_clf(modalities, class_weight="balanced", pretrain_epochs=1).fit(
        X, y, sample_weight=weight
    )
    _assert_same(X, X_copy)
    _assert_same(y, y_copy, "y")
    np.testing.assert_array_equal(weight, weight_copy)
    assert clf.modalities is modalities
    assert modalities == spec_copy
    assert modalities["image"].kind == "image" and modalities["emb"].kind == "embedding"
    for method in (clf.predict, clf.predict_proba, clf.decision_function):
        method(X)
        method({"clinical": X["clinical"], "emb": X["emb"]})
        _assert_same(X, X_copy)
    clf.score(X, y)
    _assert_same(X, X_copy)
    _assert_same(y, y_copy, "y")


def test_inferred_modality_spec_is_not_mutated():
    X, y = make_multimodal(n=20)
    spec = {"table": Modality(), "image": Modality(image_size=(8, 8))}
    clf = fast_clf(spec).fit(X, y)
    assert spec["table"].kind is None and spec["image"].kind is None
    assert clf.modalities_["table"].kind == "tabular"
    assert clf.modalities_["image"] is not spec["image"]


def test_records_and_dataframe_inputs_are_not_mutated():
    X, y = make_multimodal(n=20)
    records = list(MultimodalData(X))
    records_copy = copy.deepcopy(records)
    clf = fast_clf().fit(records, y)
    clf.predict(records)
    _assert_same(records, records_copy, "records")
    frame = pd.DataFrame(X["table"], columns=list("abcd"))
    frame["img"] = pd.Series(X["image"], dtype=object)
    frame_copy = frame.copy(deep=True)
    spec = {"clinical": list("abcd"), "img": "img"}
    spec_copy = copy.deepcopy(spec)
    clf = fast_clf(spec).fit(frame, y)
    clf.predict(frame)
    pd.testing.assert_frame_equal(frame, frame_copy)
    assert spec == spec_copy
    y_series = pd.Series(y, name="label", index=np.arange(100, 120))
    y_series_copy = y_series.copy()
    fast_clf().fit(X, y_series)
    pd.testing.assert_series_equal(y_series, y_series_copy)
