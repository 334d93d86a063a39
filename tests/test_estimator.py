"""Behaviour of MultimodalFusionClassifier: input forms, missingness, options, learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST, fast_clf, make_multimodal, only
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import accuracy_score

from mmfusion_sklearn import Modality, MultimodalData, clear_feature_cache


def _check_proba(clf, X, n):
    proba = clf.predict_proba(X)
    assert proba.shape == (n, len(clf.classes_))
    assert np.isfinite(proba).all()
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    return proba


# -- the four input forms ----------------------------------------------------------------------
def test_dict_input_and_key_left_out_at_predict(data):
    X, y = data
    clf = fast_clf().fit(X, y)
    assert list(clf.modalities_) == ["table", "image"]
    assert clf.modalities_["table"].kind == "tabular"
    assert clf.modalities_["image"].kind == "image"
    full = _check_proba(clf, X, len(y))
    has_table = ~np.isnan(X["table"]).all(axis=1)
    has_image = np.array([v is not None for v in X["image"]])
    table_only = _check_proba(clf, {"table": X["table"][has_table]}, has_table.sum())
    images = [v for v in X["image"] if v is not None]
    image_only = _check_proba(clf, {"image": images}, has_image.sum())
    # leaving a key out changes predictions only where that modality was present
    both_in_table = has_image[has_table]
    assert not np.allclose(full[has_table & has_image], table_only[both_in_table])
    assert_allclose(full[has_table & ~has_image], table_only[~both_in_table], rtol=1e-5,
                    atol=1e-6)
    both_in_image = has_table[has_image]
    assert not np.allclose(full[has_image & has_table], image_only[both_in_image])
    assert_allclose(full[has_image & ~has_table], image_only[~both_in_image], rtol=1e-5,
                    atol=1e-6)


def test_records_input_with_absent_keys(data):
    X, y = data
    records = []
    for i in range(len(y)):
        record = {}
        if not np.isnan(X["table"][i]).all():
            record["table"] = X["table"][i]
        if X["image"][i] is not None:
            record["image"] = X["image"][i]
        records.append(record)
    clf = fast_clf().fit(records, y)
    assert set(clf.modalities_) == {"table", "image"}
    # records and the equivalent dict give the same model and predictions
    reference = fast_clf().fit(X, y)
    assert_allclose(clf.predict_proba(records), reference.predict_proba(X), rtol=1e-5, atol=1e-6)
    # a record set that lacks a modality entirely at predict is fine too
    only_table = [{"table": r["table"]} for r in records if "table" in r]
    assert clf.predict(only_table).shape == (len(only_table),)


def test_multimodaldata_input(data):
    X, y = data
    mm = MultimodalData(X)
    clf = fast_clf().fit(mm, y)
    assert_allclose(clf.predict_proba(mm), clf.predict_proba(X), rtol=1e-6)
    assert_array_equal(clf.predict(mm[:10]), clf.predict(X)[:10])
    mask = np.arange(len(y)) % 2 == 0
    assert_array_equal(clf.predict(mm[mask]), clf.predict(X)[mask])


def test_dataframe_input_with_column_groups_and_image_column(data):
    X, y = data
    frame = pd.DataFrame(X["table"], columns=["age", "size", "grade", "marker"])
    frame["scan"] = pd.Series(X["image"], dtype=object)
    frame["sex"] = np.where(np.arange(len(y)) % 2, "F", "M")
    modalities = {"clinical": ["age", "size", "grade", "marker", "sex"], "scan": "scan"}
    clf = fast_clf(modalities).fit(frame, y)
    assert clf.modalities_["clinical"].kind == "tabular"
    assert clf.modalities_["scan"].kind == "image"
    _check_proba(clf, frame, len(y))
    # the same values as a dict give the same predictions
    as_dict = {"clinical": frame[modalities["clinical"]], "scan": list(frame["scan"])}
    assert_allclose(
        clf.predict_proba(frame), clf.predict_proba(as_dict), rtol=1e-5, atol=1e-6
    )
    # a missing image in the column is a missing modality, not an error
    frame.loc[0, "scan"] = None
    assert clf.predict(frame).shape == (len(y),)


def test_dataframe_input_with_modality_objects(data):
    X, y = data
    frame = pd.DataFrame(X["table"], columns=list("abcd"))
    frame["img"] = pd.Series(X["image"], dtype=object)
    modalities = {
        "clinical": Modality("tabular", columns=list("abcd")),
        "picture": Modality("image", columns="img"),
    }
    clf = fast_clf(modalities).fit(frame, y)
    assert list(clf.modalities_) == ["clinical", "picture"]
    assert clf.predict(frame).shape == (len(y),)


def test_dataframe_without_a_modality_column_at_predict(data):
    X, y = data
    frame = pd.DataFrame(X["table"], columns=list("abcd"))
    frame["img"] = pd.Series(X["image"], dtype=object)
    clf = fast_clf({"clinical": list("abcd"), "img": "img"}).fit(frame, y)
    tables = frame.loc[frame[list("abcd")].notna().any(axis=1), list("abcd")]
    expected = clf.predict_proba({"clinical": tables})
    # DESIGN §5: a column absent at prediction must not be an error
    assert_allclose(clf.predict_proba(tables), expected, rtol=1e-5)
    all_none = tables.assign(img=pd.Series([None] * len(tables), dtype=object,
                                           index=tables.index))
    assert_allclose(clf.predict_proba(all_none), expected, rtol=1e-5)


# -- per-sample missingness --------------------------------------------------------------------
def test_per_sample_missingness_in_fit_and_predict(data):
    X, y = data
    clf = fast_clf().fit(X, y)
    mm = MultimodalData(X)
    assert (~mm.presence["image"]).sum() > 0 and (~mm.presence["table"]).sum() > 0
    # a row's prediction depends only on what is present: changing the values of a
    # missing image (None -> None) or of an all-NaN row does not matter, and a sample
    # made missing in one modality predicts like the same sample without that key
    X2 = {"table": X["table"].copy(), "image": list(X["image"])}
    X2["image"][0] = None
    X2["table"][1] = np.nan
    proba = clf.predict_proba(X2)
    table_only = clf.predict_proba({"table": X2["table"][:1]})
    image_only = clf.predict_proba({"image": X2["image"][1:2]})
    assert_allclose(proba[0], table_only[0], rtol=1e-5, atol=1e-6)
    assert_allclose(proba[1], image_only[0], rtol=1e-5, atol=1e-6)


def test_nan_cells_are_missing_features_not_missing_modality(data):
    X, y = data
    X = {"table": X["table"].copy(), "image": X["image"]}
    X["table"][::4, 1] = np.nan  # some cells only
    clf = fast_clf().fit(X, y)
    proba = _check_proba(clf, X, len(y))
    # a row with one NaN cell still uses its table: it differs from image-only
    i = next(
        i for i in range(0, len(y), 4)
        if X["image"][i] is not None and not np.isnan(X["table"][i]).all()
    )
    image_only = clf.predict_proba({"image": X["image"][i : i + 1]})
    assert not np.allclose(proba[i], image_only[0])


def test_all_none_items_equal_key_left_out(data):
    X, y = data
    clf = fast_clf().fit(X, y)
    X_table, rows = only(X, "table")
    with_none = {**X_table, "image": [None] * int(rows.sum())}
    assert_allclose(
        clf.predict_proba(with_none), clf.predict_proba(X_table), rtol=1e-5, atol=1e-6
    )


# -- modalities: inferred or given -------------------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [
        None,
        {"table": "tabular", "image": "image"},
        {"table": Modality("tabular"), "image": Modality("image")},
        ["table", "image"],
    ],
    ids=["inferred", "kinds", "modality-objects", "names"],
)
def test_modalities_inferred_or_explicit(data, spec):
    X, y = data
    clf = fast_clf(spec).fit(X, y)
    assert {k: m.kind for k, m in clf.modalities_.items()} == {
        "table": "tabular", "image": "image"
    }
    assert all(isinstance(m, Modality) for m in clf.modalities_.values())
    _check_proba(clf, X, len(y))


def test_image_array_shapes_inferred():
    rng = np.random.default_rng(0)
    y = np.arange(30) % 2
    for images in (rng.normal(size=(30, 8, 8)), rng.normal(size=(30, 3, 8, 8))):
        clf = fast_clf().fit({"img": images, "tab": rng.normal(size=(30, 2))}, y)
        assert clf.modalities_["img"].kind == "image"
        assert clf.predict({"img": images}).shape == (30,)


def test_embedding_kind():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    emb = rng.normal(size=(40, 12)) + y[:, None]
    emb[5] = np.nan  # missing embedding
    table = rng.normal(size=(40, 3))
    clf = fast_clf({"emb": "embedding", "table": "tabular"}).fit(
        {"emb": emb, "table": table}, y
    )
    assert clf.modalities_["emb"].kind == "embedding"
    # without the declaration the same array is inferred as a table
    assert fast_clf().fit({"emb": emb, "table": table}, y).modalities_["emb"].kind == "tabular"
    X_emb, rows = only({"emb": emb, "table": table}, "emb")
    assert rows.sum() == 39
    _check_proba(clf, X_emb, 39)


def test_volume_kind():
    rng = np.random.default_rng(0)
    y = np.arange(24) % 2
    volumes = rng.normal(size=(24, 1, 4, 8, 8)).astype(np.float32) + y[:, None, None, None, None]
    X = {"vol": volumes, "tab": rng.normal(size=(24, 2))}
    clf = fast_clf(max_epochs=2).fit(X, y)
    assert clf.modalities_["vol"].kind == "volume"
    _check_proba(clf, {"vol": volumes[:5]}, 5)
    # a volume list with a missing item
    items = list(volumes[:, 0])
    items[3] = None
    clf2 = fast_clf({"vol": "volume", "tab": "tabular"}, max_epochs=2).fit(
        {"vol": items, "tab": X["tab"]}, y
    )
    assert clf2.modalities_["vol"].kind == "volume"


# -- labels ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "labels",
    [
        ["benign", "malignant"],
        [3, 7],
        [False, True],
        ["a", "b", "c"],
        [10, -1, 4],
    ],
    ids=["str-binary", "int-binary", "bool", "str-multiclass", "int-multiclass"],
)
def test_labels_of_any_hashable_type(labels):
    X, y = make_multimodal(n=45, n_classes=len(labels), labels=labels)
    clf = fast_clf().fit(X, y)
    assert_array_equal(clf.classes_, np.unique(y))
    assert clf.classes_.dtype == np.asarray(y).dtype
    pred = clf.predict(X)
    assert set(pred) <= set(labels)
    assert pred.dtype == clf.classes_.dtype
    proba = _check_proba(clf, X, len(y))
    # columns in classes_ order: predict is the argmax column's label
    assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])


def test_labels_as_pandas_series_and_list(data):
    X, y = data
    names = np.array(["no", "yes"])[y]
    from_series = fast_clf().fit(X, pd.Series(names))
    from_list = fast_clf().fit(X, list(names))
    assert_array_equal(from_series.classes_, ["no", "yes"])
    assert_allclose(from_series.predict_proba(X), from_list.predict_proba(X))


def test_label_order_does_not_depend_on_label_values(data):
    # classes_ sorted; swapping the names swaps the probability columns' meaning
    X, y = data
    clf = fast_clf().fit(X, np.array(["z", "a"])[y])
    assert_array_equal(clf.classes_, ["a", "z"])
    proba = clf.predict_proba(X)
    assert_array_equal(clf.predict(X), np.where(proba[:, 1] > proba[:, 0], "z", "a"))


# -- weights -----------------------------------------------------------------------------------
def test_class_weight_changes_the_fit(data):
    X, y = data
    y = y.copy()
    y[np.flatnonzero(y == 1)[10:]] = 0  # imbalanced: 10 positives
    base = fast_clf().fit(X, y).predict_proba(X)
    balanced = fast_clf(class_weight="balanced").fit(X, y).predict_proba(X)
    as_dict = fast_clf(class_weight={0: 1.0, 1: 2.0}).fit(X, y).predict_proba(X)
    # up-weighting the rare class raises its probability on average
    assert balanced[:, 1].mean() > base[:, 1].mean()
    assert as_dict[:, 1].mean() > base[:, 1].mean()
    assert balanced[:, 1].mean() > as_dict[:, 1].mean()  # 5:1 beats 2:1


def test_class_weight_dict_with_string_labels(data):
    X, y = data
    labels = np.array(["neg", "pos"])[y]
    base = fast_clf().fit(X, labels).predict_proba(X)
    weighted = fast_clf(class_weight={"neg": 1.0, "pos": 10.0}).fit(X, labels).predict_proba(X)
    assert weighted[:, 1].mean() > base[:, 1].mean()


def test_sample_weight_changes_the_fit(data):
    X, y = data
    base = fast_clf().fit(X, y).predict_proba(X)
    ones = fast_clf().fit(X, y, sample_weight=np.ones(len(y))).predict_proba(X)
    assert_allclose(ones, base, rtol=1e-5, atol=1e-6)
    weight = np.where(y == 1, 10.0, 1.0)
    weighted = fast_clf().fit(X, y, sample_weight=weight).predict_proba(X)
    assert weighted[:, 1].mean() > base[:, 1].mean()


def test_class_weight_equals_sample_weight(data):
    X, y = data
    by_class = fast_clf(class_weight={0: 1.0, 1: 3.0}).fit(X, y).predict_proba(X)
    by_sample = fast_clf().fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0)).predict_proba(X)
    assert_allclose(by_class, by_sample, rtol=1e-5, atol=1e-6)


# -- early stopping ----------------------------------------------------------------------------
def test_early_stopping_stops_and_restores_best_weights():
    # one network and its validation_fraction (cross-fitted members: test_ensemble.py);
    # a weak signal and a high learning rate: the validation loss soon stops improving
    rng = np.random.default_rng(1)
    n = 80
    X = {"a": rng.normal(size=(n, 6)), "b": rng.normal(size=(n, 3))}
    y = (X["a"][:, 0] + rng.normal(size=n) > 0).astype(int)
    params = {"early_stopping": True, "validation_fraction": 0.25, "lr": 3e-2,
              "ensemble_size": 1, "linear_path": False}
    clf = fast_clf(max_epochs=60, patience=3, **params).fit(X, y)
    history = clf.history_
    assert {"stage", "member", "epoch", "train_loss", "valid_loss", "dur"} <= set(history)
    task = history[history["stage"] == "classification"]
    assert task["valid_loss"].notna().all()
    assert_allclose(task["pooled_valid_loss"], task["valid_loss"])  # one member
    assert len(task) < 60
    best = clf.best_epoch_
    assert best >= 1 and int(task["valid_loss"].to_numpy().argmin()) + 1 == best
    assert len(task) == best + 3  # stopped after `patience` epochs without improvement
    # the same run cut at the best epoch ends with the weights the first one restored
    at_best = fast_clf(max_epochs=best, patience=100, **params).fit(X, y)
    assert_allclose(at_best.history_["valid_loss"], task["valid_loss"][:best], rtol=1e-6)
    assert_allclose(clf.predict_proba(X), at_best.predict_proba(X), rtol=1e-6, atol=1e-7)


def test_no_early_stopping_runs_max_epochs(data):
    X, y = data
    clf = fast_clf(max_epochs=5).fit(X, y)
    assert len(clf.history_) == 5
    assert clf.history_["valid_loss"].isna().all()
    assert (clf.history_["stage"] == "classification").all()
    assert_array_equal(clf.history_["epoch"], np.arange(1, 6))


# -- randomness, device, verbosity -------------------------------------------------------------
def test_random_state_reproducible(data):
    X, y = data
    params = {"pretrain_epochs": 1, "early_stopping": True, "modality_dropout": "random"}
    a = fast_clf(random_state=7, **params).fit(X, y).predict_proba(X)
    b = fast_clf(random_state=7, **params).fit(X, y).predict_proba(X)
    c = fast_clf(random_state=8, **params).fit(X, y).predict_proba(X)
    assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_random_state_instance_advances_between_fits(data):
    X, y = data
    rs = np.random.RandomState(0)
    clf = fast_clf(random_state=rs)
    first = clf.fit(X, y).predict_proba(X)
    second = clf.fit(X, y).predict_proba(X)
    # a RandomState instance advances: two fits differ (as in scikit-learn)
    assert not np.allclose(first, second)
    assert clf.random_state is rs


def test_fit_does_not_touch_global_rng(data):
    X, y = data
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    expected_torch = torch.rand(3)
    expected_np = np.random.rand(3)  # noqa: NPY002
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    fast_clf().fit(X, y)
    assert torch.equal(torch.rand(3), expected_torch)
    assert_array_equal(np.random.rand(3), expected_np)  # noqa: NPY002


def test_device_auto_resolves(data):
    X, y = data
    clf = fast_clf(device="auto").fit(X, y)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert clf.device_.type == expected
    assert clf.device == "auto"  # the parameter is left untouched
    assert fast_clf(device=torch.device("cpu")).fit(X, y).device_ == torch.device("cpu")


def test_verbose_shows_a_progress_bar(data, capsys):
    X, y = data
    fast_clf(verbose=0).fit(X, y)
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    fast_clf(verbose=1, pretrain_epochs=1).fit(X, y)
    err = capsys.readouterr().err
    assert "classification" in err and "contrastive" in err
    assert "epoch" in err and "|" in err  # a tqdm bar


# -- options -----------------------------------------------------------------------------------
@pytest.mark.parametrize("modality_dropout", ["simultaneous", "random", "none"])
@pytest.mark.parametrize("contrastive", ["fused", "unimodal", None])
def test_dropout_and_contrastive_options_run(data, modality_dropout, contrastive):
    X, y = data
    clf = fast_clf(
        modality_dropout=modality_dropout, contrastive=contrastive, pretrain_epochs=2,
        max_epochs=2,
    ).fit(X, y)
    stages = clf.history_["stage"].tolist()
    expected = ["contrastive"] * 2 if contrastive is not None else []
    assert stages == expected + ["classification"] * 2
    assert np.isfinite(clf.history_["train_loss"]).all()
    _check_proba(clf, X, len(y))


def test_modality_dropout_options_give_different_models(data):
    X, y = data
    probas = [
        fast_clf(modality_dropout=m).fit(X, y).predict_proba(X)
        for m in ("simultaneous", "random", "none")
    ]
    assert not np.allclose(probas[0], probas[1])
    assert not np.allclose(probas[0], probas[2])


@pytest.mark.parametrize("fusion", ["mlp", "transformer"])
@pytest.mark.parametrize("missing_token", ["learned", "zero"])
def test_fusion_and_missing_token_options(data3, fusion, missing_token):
    X, y = data3
    clf = fast_clf(fusion=fusion, missing_token=missing_token, pretrain_epochs=1).fit(X, y)
    assert "contrastive" in set(clf.history_["stage"])
    _check_proba(clf, X, len(y))
    X_image, rows = only(X, "image")
    _check_proba(clf, X_image, rows.sum())


def test_pretrain_epochs_zero_skips_contrastive_stage(data):
    X, y = data
    clf = fast_clf(contrastive="fused", pretrain_epochs=0).fit(X, y)
    assert "contrastive" not in set(clf.history_["stage"])


def test_contrastive_stage_changes_the_model(data):
    X, y = data
    without = fast_clf(pretrain_epochs=0).fit(X, y).predict_proba(X)
    with_stage = fast_clf(pretrain_epochs=2).fit(X, y).predict_proba(X)
    assert not np.allclose(without, with_stage)


def test_single_modality_fit(data):
    X, y = data
    table = X["table"][~np.isnan(X["table"]).all(axis=1)]
    y_table = y[~np.isnan(X["table"]).all(axis=1)]
    clf = fast_clf(pretrain_epochs=2).fit({"table": table}, y_table)
    assert list(clf.modalities_) == ["table"]
    _check_proba(clf, {"table": table}, len(y_table))
    # a plain array is one tabular modality
    plain = fast_clf().fit(table, y_table)
    assert plain.n_features_in_ == 4
    _check_proba(plain, table, len(y_table))


def test_three_modalities():
    X, y = make_multimodal(n=48)
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(48, 6)) + y[:, None]
    emb[::6] = np.nan
    X["emb"] = emb
    clf = fast_clf(
        {"table": "tabular", "image": "image", "emb": "embedding"}, pretrain_epochs=1
    ).fit(X, y)
    assert list(clf.modalities_) == ["table", "image", "emb"]
    assert "contrastive" in set(clf.history_["stage"])
    for subset in (["table"], ["image"], ["emb"], ["table", "emb"], list(X)):
        X_sub, rows = only(X, subset)
        _check_proba(clf, X_sub, rows.sum())


# -- user encoders -----------------------------------------------------------------------------
CALLS = {"forward": 0}


class CountingEncoder(torch.nn.Module):
    """A tiny image backbone that counts its forward calls (in a global, so copies share)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        CALLS["forward"] += 1
        return self.pool(torch.relu(self.conv(x)))  # (B, 4, 2, 2): flattened to 16


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("trainable", [True, False])
def test_user_module_encoder_is_not_modified(data, trainable):
    X, y = data
    torch.manual_seed(0)
    encoder = CountingEncoder()
    before = _state(encoder)
    encoder.train()
    spec = {"table": "tabular", "image": Modality("image", encoder=encoder, trainable=trainable)}
    clf = fast_clf(spec).fit(X, y)
    after = encoder.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert encoder.training
    assert all(p.requires_grad for p in encoder.parameters())
    assert spec["image"].encoder is encoder and spec["image"].trainable is trainable
    proba = _check_proba(clf, X, len(y))
    # the encoder matters: image-only predictions vary with the image
    image_only = clf.predict_proba(only(X, "image")[0])
    assert image_only.std(axis=0).max() > 1e-4
    assert proba.shape == (len(y), 2)


@pytest.mark.parametrize("trainable", [True, False])
def test_encoder_runs_once_when_frozen_every_epoch_when_trainable(data, trainable):
    X, y = data
    spec = {"table": "tabular",
            "image": Modality("image", encoder=CountingEncoder(), trainable=trainable)}
    calls = []
    for epochs in (1, 5):
        clear_feature_cache()  # else the second fit finds every feature cached
        CALLS["forward"] = 0
        fast_clf(spec, max_epochs=epochs, pretrain_epochs=1).fit(X, y)
        calls.append(CALLS["forward"])
    if trainable:  # run on every batch of every epoch
        assert calls[1] > calls[0]
    else:  # run once over the data (plus a shape probe), whatever the epochs
        assert calls[0] == calls[1]
        n_present = sum(v is not None for v in X["image"])
        assert calls[0] <= 2 + -(-n_present // FAST["batch_size"])


@pytest.mark.parametrize("absent", ["key-left-out", "all-none"])
def test_frozen_encoder_modality_absent_at_predict(data, absent):
    X, y = data
    spec = {"table": "tabular",
            "image": Modality("image", encoder=CountingEncoder(), trainable=False)}
    clf = fast_clf(spec).fit(X, y)
    X_table, rows = only(X, "table")
    if absent == "all-none":
        X_table["image"] = [None] * int(rows.sum())
    _check_proba(clf, X_table, int(rows.sum()))


def test_frozen_encoder_some_samples_absent_at_predict(data):
    X, y = data
    spec = {"table": "tabular",
            "image": Modality("image", encoder=CountingEncoder(), trainable=False)}
    clf = fast_clf(spec).fit(X, y)
    _check_proba(clf, X, len(y))
    _check_proba(clf, only(X, "image")[0], sum(v is not None for v in X["image"]))
    _check_proba(clf, {"image": [X["image"][0]]}, 1)


# -- prediction methods ------------------------------------------------------------------------
def test_decision_function_binary(data):
    X, y = data
    labels = np.array(["neg", "pos"])[y]
    clf = fast_clf().fit(X, labels)
    scores = clf.decision_function(X)
    assert scores.shape == (len(y),)
    assert_array_equal(clf.predict(X), clf.classes_[(scores > 0).astype(int)])
    proba = clf.predict_proba(X)
    assert_allclose(scores, np.log(proba[:, 1] / proba[:, 0]), rtol=1e-4, atol=1e-5)


def test_decision_function_multiclass(data3):
    X, y = data3
    clf = fast_clf().fit(X, np.array(["x", "y", "z"])[y])
    scores = clf.decision_function(X)
    assert scores.shape == (len(y), 3)
    assert_array_equal(clf.predict(X), clf.classes_[scores.argmax(axis=1)])
    proba = clf.predict_proba(X)
    assert_array_equal(scores.argmax(axis=1), proba.argmax(axis=1))


def test_score_is_accuracy(data3):
    X, y = data3
    clf = fast_clf().fit(X, y)
    assert clf.score(X, y) == pytest.approx(accuracy_score(y, clf.predict(X)))
    weight = np.linspace(0.1, 1.0, len(y))
    assert clf.score(X, y, sample_weight=weight) == pytest.approx(
        accuracy_score(y, clf.predict(X), sample_weight=weight)
    )


# -- learning ----------------------------------------------------------------------------------
def test_learns_an_easy_problem_with_all_and_each_modality():
    X, y = make_multimodal(n=160, seed=5, signal=2.0, missing=True)
    train = np.arange(160) < 110
    test = ~train

    def part(mask):
        return {"table": X["table"][mask], "image": [X["image"][i] for i in np.flatnonzero(mask)]}

    clf = fast_clf(max_epochs=12, embed_dim=16, pretrain_epochs=1).fit(part(train), y[train])
    X_test, y_test = part(test), y[test]
    assert clf.score(X_test, y_test) >= 0.85
    table_rows = ~np.isnan(X_test["table"]).all(axis=1)
    image_rows = np.array([v is not None for v in X_test["image"]])
    table_only = {"table": X_test["table"][table_rows]}
    image_only = {"image": [v for v in X_test["image"] if v is not None]}
    assert clf.score(table_only, y_test[table_rows]) >= 0.75
    assert clf.score(image_only, y_test[image_rows]) >= 0.75
