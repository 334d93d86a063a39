"""Never wrong in silence: odd modality names, non-finite values and losses, faults."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fast_clf, make_multimodal
from numpy.testing import assert_allclose

from mmfusion_sklearn import MultimodalData


# -- any modality name --------------------------------------------------------------------------
@pytest.mark.parametrize("names", [("keys", "type"), ("training", "a.b"), ("0", "forward"),
                                   ("encoders", "names"), ("ü b", "x" * 300)])
def test_every_modality_name_works(names, tmp_path):
    X, y = make_multimodal(n=40)
    renamed = {names[0]: X["table"], names[1]: X["image"]}
    clf = fast_clf().fit(renamed, y)
    proba = clf.predict_proba(renamed)
    assert list(clf.modalities_) == list(names) and np.isfinite(proba).all()
    only_first = clf.predict_proba({names[0]: X["table"][[0, 1]]})
    assert only_first.shape == (2, 2)
    clf.save(tmp_path / "model")
    loaded = type(clf).load(tmp_path / "model")
    assert_allclose(loaded.predict_proba(renamed), proba, rtol=1e-6, atol=1e-7)


def test_empty_modality_name_is_a_clear_error():
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match="Modality names must be non-empty strings. Got ''"):
        fast_clf().fit({"": X["table"], "image": X["image"]}, y)
    with pytest.raises(ValueError, match="non-empty strings. Got '' in 'modalities'"):
        fast_clf({"": "tabular"}).fit({"t": X["table"]}, y)
    with pytest.raises(ValueError, match="non-empty"):
        MultimodalData({"": X["table"]})


# -- no NaN reaches the user --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tabular", "embedding"])
def test_values_that_overflow_float32_are_refused(kind):
    X, y = make_multimodal(n=40, missing=False)
    spec = {"table": kind, "image": "image"}
    clf = fast_clf(spec).fit(X, y)
    huge = X["table"].copy()
    huge[[4, 7], 1] = 1e30
    before = huge.copy()
    with pytest.raises(ValueError, match=r"Modality 'table' has values too large .* rows 4, 7"):
        clf.predict_proba({"table": huge, "image": X["image"]})
    assert np.array_equal(huge, before)
    if kind == "embedding":
        with pytest.raises(ValueError, match=r"'table' has values too large .* rows 4, 7"):
            fast_clf(spec).fit({"table": huge, "image": X["image"]}, y)
    else:  # standardised in float64 with those values in fit: finite results
        clf = fast_clf(spec).fit({"table": huge, "image": X["image"]}, y)
        assert np.isfinite(clf.predict_proba({"table": huge, "image": X["image"]})).all()


def test_a_diverging_fit_without_early_stopping_is_an_error():
    X, y = make_multimodal(n=40)
    clf = fast_clf(lr=1e10)
    with pytest.raises(RuntimeError, match=r"classification stage diverged at epoch \d+.*lr"):
        clf.fit(X, y)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        clf.predict(X)  # no half-fitted model is left behind


def test_a_diverging_fit_with_early_stopping_keeps_the_best_finite_weights():
    X, y = make_multimodal(n=60)
    clf = fast_clf(lr=1e10, early_stopping=True, max_epochs=20, ensemble_size=1,
                   linear_path=False)
    with pytest.warns(RuntimeWarning, match=r"Training diverged: .*epoch \d+.*kept"):
        clf.fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_a_diverging_contrastive_stage_names_it():
    X, y = make_multimodal(n=40)
    with pytest.raises(RuntimeError, match=r"contrastive \(member 0\) stage diverged"):
        fast_clf(lr=1e12, pretrain_epochs=3).fit(X, y)


@pytest.mark.parametrize("weights, message", [
    (lambda n: -np.ones(n), r"finite and non-negative. Got -1.0 for rows 0, 1, 2"),
    (lambda n: np.r_[np.ones(n - 1), -2.0], r"Got -2.0 for rows 19 instead"),
    (lambda n: np.r_[np.ones(n - 1), np.nan], "sample_weight contains NaN"),
    (lambda n: np.zeros(n), "at least one non-zero|Every sample weight is zero"),
    (lambda n: np.r_[np.ones(n - 1), 1e31], r"span a ratio above 1e\+30 \(from 1 to "
                                            r"1e\+31 at rows 19\)"),
])
def test_bad_sample_weights_are_refused(weights, message):
    X, y = make_multimodal(n=20)
    w = weights(20)
    before = w.copy()
    with pytest.raises(ValueError, match=message):
        fast_clf().fit(X, y, sample_weight=w)
    assert np.array_equal(w, before, equal_nan=True)


@pytest.mark.parametrize("scale", [1e-300, 1e-38, 1e-30, 1e-3, 7.0, 1e39])
def test_uniform_sample_weights_of_any_scale_train_the_unweighted_model(scale):
    # only the ratios between weights matter: the penalties see weights of mean 1
    X, y = make_multimodal(n=30)
    reference = fast_clf().fit(X, y).predict_proba(X)
    weighted = fast_clf().fit(X, y, sample_weight=np.full(30, scale)).predict_proba(X)
    assert np.array_equal(weighted, reference)


def test_scaling_every_sample_weight_leaves_the_model_unchanged():
    X, y = make_multimodal(n=30)
    w = np.linspace(0.5, 2.0, 30)
    reference = fast_clf().fit(X, y, sample_weight=w).predict_proba(X)
    scaled = fast_clf().fit(X, y, sample_weight=w * 1e-3).predict_proba(X)
    np.testing.assert_allclose(scaled, reference, atol=1e-5)


def test_huge_class_weight_is_refused():
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match="rescale class_weight"):
        fast_clf(class_weight={0: 1e39, 1: 1.0}).fit(X, y)


# -- faults ---------------------------------------------------------------------------------------
def test_a_failed_refit_leaves_the_previous_model_intact():
    X, y = make_multimodal(n=40)
    clf = fast_clf().fit(X, y)
    proba = clf.predict_proba(X)
    classes = clf.classes_.copy()
    with pytest.raises(ValueError):
        clf.fit(X, np.where(y == 1, "b", "a"), sample_weight=-np.ones(40))
    assert np.array_equal(clf.classes_, classes)
    assert_allclose(clf.predict_proba(X), proba)


def test_an_interrupt_before_any_network_leaves_the_estimator_unfitted(monkeypatch):
    from sklearn.exceptions import NotFittedError

    from mmfusion_sklearn._training import engine as _estimator

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_estimator, "training_dataset", interrupted)
    X, y = make_multimodal(n=20)
    clf = fast_clf()
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_one_interrupt_in_the_contrastive_stage_stops_the_whole_fit(monkeypatch):
    from mmfusion_sklearn._training import nets as _training

    calls = {"contrastive": 0, "classification": 0}
    contrastive_loop = _training.ContrastiveNet.fit_loop
    task_epoch = _training.FusionNet.run_single_epoch

    def contrastive(self, *args, **kwargs):
        calls["contrastive"] += 1
        if calls["contrastive"] == 2:
            raise KeyboardInterrupt
        return contrastive_loop(self, *args, **kwargs)

    def task(self, *args, **kwargs):  # each training and validation pass of an epoch
        calls["classification"] += 1
        return task_epoch(self, *args, **kwargs)

    monkeypatch.setattr(_training.ContrastiveNet, "fit_loop", contrastive)
    monkeypatch.setattr(_training.FusionNet, "run_single_epoch", task)
    X, y = make_multimodal(n=40)
    clf = fast_clf(pretrain_epochs=5, max_epochs=5)
    with pytest.warns(UserWarning, match="Training was interrupted"):
        clf.fit(X, y)
    assert calls["classification"] == 0  # the classification stage did not run
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    # the linear path alone: better than chance on this separable data
    assert (clf.predict(X) == y).mean() > 0.7


# -- no silent misreading -------------------------------------------------------------------
def _fast(**params):
    return fast_clf(**{"max_epochs": 1, **params})


def test_a_2d_string_array_is_a_table_of_every_column():
    rng = np.random.default_rng(0)
    table = rng.choice(["a", "b", "c"], size=(40, 3))
    before = table.copy()
    clf = _fast().fit({"t": table, "u": rng.normal(size=(40, 2))}, np.arange(40) % 2)
    pre = clf._preprocessors["t"]
    assert pre.columns_ == ["0", "1", "2"] and pre.n_features_out_ == 9
    assert np.array_equal(table, before)
    with pytest.raises(ValueError, match="3-D array of strings"):
        MultimodalData({"t": rng.choice(["a"], size=(4, 2, 2))})


def test_a_stray_string_in_a_numeric_column_is_named():
    import pandas as pd

    rng = np.random.default_rng(0)
    column = rng.normal(size=40).astype(object)
    column[3] = "n/a"
    frame = pd.DataFrame({"x": column, "z": rng.normal(size=40)})
    with pytest.warns(UserWarning, match=r"column 'x' holds numbers and the values \['n/a'\]"):
        _fast().fit({"t": frame}, np.arange(40) % 2)


def test_complex_values_are_refused():
    with pytest.raises(ValueError, match="'t' has complex values"):
        MultimodalData({"t": np.ones((4, 2)) + 1j})


def test_paths_of_unknown_type_are_refused(tmp_path):
    y = np.arange(10) % 2
    other = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match=r"'t' holds what look like file paths .*Declare its kind"):
        _fast().fit({"t": [f"/scans/{i}.foo" for i in range(10)], "u": other}, y)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="look like file paths"):
        _fast().fit({"t": [str(tmp_path / "notes.txt")] * 10, "u": other}, y)


def test_image_files_without_a_known_suffix_are_sniffed(tmp_path):
    from PIL import Image

    paths = []
    rng = np.random.default_rng(0)
    for i in range(10):
        path = tmp_path / f"scan{i}"  # no suffix at all
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(path, "PNG")
        paths.append(str(path))
    clf = _fast().fit({"t": paths, "u": rng.normal(size=(10, 2))}, np.arange(10) % 2)
    assert clf.modalities_["t"].kind == "image"


def test_pil_images_are_images():
    from PIL import Image

    rng = np.random.default_rng(0)
    items = [Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)) for _ in range(10)]
    clf = _fast().fit({"t": items, "u": rng.normal(size=(10, 2))}, np.arange(10) % 2)
    assert clf.modalities_["t"].kind == "image"
    assert clf._preprocessors["t"].shape_ == [8, 8]


def test_a_dataframe_column_of_paths_needs_modalities():
    import pandas as pd

    frame = pd.DataFrame({"p": [f"/x/{i}.png" for i in range(10)], "a": np.arange(10.0)})
    with pytest.raises(ValueError, match=r"Column 'p' of X holds file paths"):
        _fast().fit(frame, np.arange(10) % 2)


def test_table_columns_must_match_fit():
    import pandas as pd

    rng = np.random.default_rng(0)
    clf = _fast().fit({"t": rng.normal(size=(20, 3))}, np.arange(20) % 2)
    with pytest.raises(ValueError, match=r"'t' has columns \['3'\] it did not have in fit"):
        clf.predict({"t": rng.normal(size=(5, 4))})
    frame = pd.DataFrame(rng.normal(size=(20, 3)), columns=["a", "a", "b"])
    with pytest.raises(ValueError, match=r"'t' has duplicate column names \['a'\]"):
        _fast().fit({"t": frame}, np.arange(20) % 2)


def test_records_must_all_be_dicts():
    records = [{"t": [1.0, 2.0]}] * 9 + [[1.0, 2.0]]
    with pytest.raises(ValueError, match=r"row 9 is a list: \[1.0, 2.0\]. Every record"):
        _fast().fit(records, np.arange(10) % 2)
    with pytest.raises(ValueError, match=r"pass a list of records: \[record\]"):
        _fast().fit({"age": 50.0, "sex": "F"}, [1])


def test_embedding_declared_for_images_is_named():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"'t' needs one vector per sample; row 0 is an array "
                                         r"of shape \(8, 8\)"):
        _fast(modalities={"t": "embedding"}).fit(
            {"t": [rng.normal(size=(8, 8)) for _ in range(10)]}, np.arange(10) % 2)


def test_warnings_point_at_the_users_call():
    import warnings

    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], 40), "x": rng.normal(size=40)})
    y = np.arange(40) % 2
    column = frame["x"].astype(object)
    column[3] = "n/a"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clf = _fast(modalities={"t": "tabular"}).fit({"t": frame}, y)
        test = frame.copy()
        test.loc[0, "g"] = "c"
        clf.predict_proba({"t": test})
        _fast().fit({"t": pd.DataFrame({"x": column, "z": frame["x"]})}, y)
        _fast(early_stopping=True, ensemble_size=1).fit({"t": rng.normal(size=(3, 2))},
                                                        [0, 1, 0])
    messages = {str(w.message)[:30]: w.filename for w in record}
    assert len(messages) == 3 and set(messages.values()) == {__file__}, messages


def test_fits_in_threads_give_the_predictions_of_the_same_fits_in_sequence():
    from concurrent.futures import ThreadPoolExecutor

    X, y = make_multimodal(n=60)
    settings = [dict(random_state=1, modality_dropout="random"),
                dict(random_state=2, pretrain_epochs=2)]
    sequential = [fast_clf(**s).fit(X, y).predict_proba(X) for s in settings]
    for _ in range(2):
        with ThreadPoolExecutor(2) as pool:
            threaded = list(pool.map(lambda s: fast_clf(**s).fit(X, y).predict_proba(X),
                                     settings))
        for got, expected in zip(threaded, sequential):
            assert np.array_equal(got, expected)


@pytest.mark.parametrize("X", [
    lambda df: df,
    lambda df: __import__("mmfusion_sklearn").MultimodalData({"t": df}),
])
def test_duplicate_dataframe_column_names_are_named(X):
    import pandas as pd

    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)),
                         columns=["a", "a", "b"])
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        fast_clf().fit(X(frame), np.tile([0, 1], 10))


def test_table_columns_follow_scikit_learns_names_convention(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 30)
    values = rng.normal(size=(60, 3))
    values[:, 0] += 3 * y  # the signal sits in the first column
    # integer labels [2, 0, 1] are no names: an array at predict is taken by position
    frame = pd.DataFrame(values, columns=[2, 0, 1])
    clf = fast_clf().fit(frame, y)
    reference = clf.predict_proba(frame)
    np.testing.assert_array_equal(clf.predict_proba(values), reference)
    # string names: a DataFrame is matched by name, in any column order
    named = pd.DataFrame(values, columns=["c", "a", "b"])
    clf = fast_clf().fit({"t": named}, y)
    reference = clf.predict_proba({"t": named})
    np.testing.assert_array_equal(clf.predict_proba({"t": named[["a", "b", "c"]]}),
                                  reference)
    # ... and an array is taken in the order of fit, with a warning
    with pytest.warns(UserWarning, match="fitted on columns with names .* without names"):
        np.testing.assert_array_equal(clf.predict_proba({"t": values}), reference)
    # a model saved and loaded keeps the convention
    clf.save(tmp_path / "m")
    loaded = type(clf).load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba({"t": named[["b", "a", "c"]]}),
                                  reference)


def _table_with(column, n=40):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=n)})
    frame["special"] = column
    return frame


@pytest.mark.parametrize("column, match", [
    (lambda n: __import__("pandas").date_range("2020-01-01", periods=n), "holds dates"),
    (lambda n: __import__("pandas").date_range("2020-01-01", periods=n, tz="UTC"),
     "holds dates"),
    (lambda n: [__import__("datetime").date(2020, 1, 1 + i % 28) for i in range(n)],
     "holds dates"),
])
def test_dates_in_a_table_are_refused_by_column(column, match):
    frame = _table_with(column(40))
    with pytest.raises(ValueError, match=f"column 'special' {match}.*days since"):
        fast_clf().fit({"t": frame}, np.tile([0, 1], 20))


def test_durations_are_days_and_decimals_numbers():
    import decimal

    import pandas as pd

    y = np.tile([0, 1], 20)
    days = np.arange(40) % 7 + 3 * y
    as_timedelta = _table_with(pd.to_timedelta(days, unit="D"))
    as_numbers = _table_with(days.astype(float))
    as_decimal = _table_with([decimal.Decimal(str(d)) for d in days])
    reference = fast_clf().fit({"t": as_numbers}, y)
    for frame in (as_timedelta, as_decimal):
        clf = fast_clf().fit({"t": frame}, y)
        assert clf._preprocessors["t"].n_features_out_ == 2  # numbers, not categories
        np.testing.assert_allclose(clf.predict_proba({"t": frame}),
                                   reference.predict_proba({"t": as_numbers}), atol=1e-6)
    # a duration where fit saw numbers (nanoseconds, once) and the reverse are refused
    with pytest.raises(ValueError, match="holds durations .* held numbers in fit"):
        reference.predict_proba({"t": as_timedelta})
    with pytest.raises(ValueError, match="held durations .* in fit"):
        fast_clf().fit({"t": as_timedelta}, y).predict_proba({"t": as_numbers})


def test_an_identifier_column_is_warned_about():
    ids = [f"patient-{i:04d}" for i in range(120)]
    with pytest.warns(UserWarning, match="column 'special' has 120 distinct values in 120 "
                                         "rows: an identifier"):
        fast_clf().fit({"t": _table_with(ids, n=120)}, np.tile([0, 1], 60))
