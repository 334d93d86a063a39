"""Every input form everywhere: one column specification for fit, predict and the
container; MultimodalData's DataFrame interface (permutation importance) and its refusal
to be one array; ModalityTransformer (per-modality scikit-learn preprocessing); the
plain-dict limit of scikit-learn's model selection."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from conftest import fast_clf
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectKBest
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import InvalidParameterError

from mmfusion_sklearn import Modality, ModalityTransformer, MultimodalData

N = 40


def _frame(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two lab columns and a column of 8x8 scans, both carrying the class; patient 3
    has no scan, patient 5 no labs."""
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], N // 2)
    frame = pd.DataFrame(rng.normal(size=(N, 2)) + y[:, None], columns=["age", "crp"])
    frame["scan"] = pd.Series(list(rng.normal(size=(N, 8, 8)) + y[:, None, None]),
                              dtype=object)
    frame.loc[3, "scan"] = None
    frame.loc[5, ["age", "crp"]] = np.nan
    return frame, y


SPEC = {"labs": ["age", "crp"], "scan": "scan"}


# -- (a) one column specification for the DataFrame and its MultimodalData ------------------


def test_fit_on_multimodal_data_built_with_the_same_column_spec():
    frame, y = _frame()
    data = MultimodalData(frame, modalities=SPEC)
    on_data = fast_clf(SPEC).fit(data, y)
    on_frame = fast_clf(SPEC).fit(frame, y)
    assert {k: m.kind for k, m in on_data.modalities_.items()} == {"labs": "tabular",
                                                                    "scan": "image"}
    # the same samples read the same way: the same model
    np.testing.assert_allclose(on_data.predict_proba(frame), on_frame.predict_proba(frame))
    np.testing.assert_allclose(on_data.predict_proba(data), on_data.predict_proba(frame))


def test_fit_without_modalities_uses_the_specifications_of_the_container():
    frame, y = _frame()
    spec = {"labs": Modality("embedding", columns=["age", "crp"]),
            "scan": Modality(columns="scan", image_size=(4, 4))}
    data = MultimodalData(frame, modalities=spec)
    clf = fast_clf().fit(data, y)
    assert clf.modalities_["labs"].kind == "embedding"  # not inferred as "tabular"
    assert clf.modalities_["scan"].image_size == (4, 4)
    assert clf._input_shapes["scan"] == (1, 4, 4)
    # a DataFrame at prediction is read with the columns the container was built from
    np.testing.assert_allclose(clf.predict_proba(frame), clf.predict_proba(data))
    labs_only = frame[["age", "crp"]].drop(index=5)  # no scan column: no scans
    assert clf.predict(labs_only).shape == (N - 1,)


def test_a_column_spec_that_disagrees_with_the_container_is_an_error():
    frame, y = _frame()
    data = MultimodalData(frame, modalities=SPEC)
    with pytest.raises(ValueError, match=r"'scam', which is neither a kind .* built from "
                                         r"\('scan'\)"):
        fast_clf({"labs": ["age", "crp"], "scan": "scam"}).fit(data, y)
    # column names with a dict are still most likely a misspelt kind
    with pytest.raises(ValueError, match="column names apply to DataFrame input only"):
        fast_clf({"labs": "tabular", "scan": "imgae"}).fit(
            {"labs": frame[["age", "crp"]], "scan": list(frame["scan"])}, y)


def test_records_of_a_container_keep_the_column_names():
    frame, y = _frame()
    data = MultimodalData(frame, modalities=SPEC)
    again = MultimodalData(list(data))  # each record's table part is a pandas Series
    assert again.values("labs").columns.tolist() == ["age", "crp"]
    pd.testing.assert_frame_equal(again.presence[["labs", "scan"]], data.presence)
    clf = fast_clf(SPEC).fit(frame, y)
    np.testing.assert_allclose(clf.predict_proba(list(data)), clf.predict_proba(frame))


def test_multimodal_data_keeps_kinds_given_for_a_dict():
    frame, y = _frame()
    X = {"labs": frame[["age", "crp"]].to_numpy(), "scan": list(frame["scan"])}
    data = MultimodalData(X, modalities={"labs": "embedding"})
    assert fast_clf().fit(data, y).modalities_["labs"].kind == "embedding"
    # slicing keeps them, and a modality assigned later is inferred
    assert fast_clf().fit(data[:30], y[:30]).modalities_["labs"].kind == "embedding"
    data["extra"] = np.arange(N, dtype=float).reshape(-1, 1)
    kinds = {k: m.kind for k, m in fast_clf().fit(data, y).modalities_.items()}
    assert kinds == {"labs": "embedding", "scan": "image", "extra": "tabular"}
    with pytest.raises(ValueError, match=r"Modality 'labs' in 'modalities' names columns "
                                         r"\['age'\]; column names apply to DataFrame"):
        MultimodalData(X, modalities={"labs": ["age"]})
    with pytest.raises(ValueError, match="'imgae', which is not a kind"):
        MultimodalData(X, modalities={"scan": "imgae"})


# -- (c) the DataFrame interface --------------------------------------------------------------


def _small() -> MultimodalData:
    return MultimodalData({
        "t": np.array([[0.0, 1.0], [np.nan, np.nan], [4.0, 5.0], [6.0, 7.0]]),
        "img": [np.full((2, 2), i) if i != 2 else None for i in range(4)],
    })


def test_existing_indexing_is_unchanged():
    data = _small()
    assert len(data) == 4 and data.shape == (4, 2)
    assert set(data[0]) == {"t", "img"} and set(data[1]) == {"img"}
    assert data[[3, 0]].presence.to_numpy().tolist() == [[True, True], [True, True]]
    assert len(data[np.array([True, False, True, False])]) == 2
    assert len(data[1:]) == 3
    assert list(data.presence.index) == [0, 1, 2, 3]
    # scikit-learn's indexing (now through take and loc) gives the same subsets
    np.testing.assert_array_equal(_safe_indexing(data, [2, 3]).values("t"),
                                  data[[2, 3]].values("t"))
    assert _safe_indexing(data, np.array([True, True, False, False])).shape == (2, 2)
    assert set(_safe_indexing(data, 1)) == {"img"}


def test_index_columns_iloc_loc_and_take():
    data = _small()
    assert list(data.index) == [0, 1, 2, 3]
    assert list(data.columns) == ["t", "img"]
    column = data.iloc[[1, 0, 3, 2], 0]  # one modality, rows permuted, presence included
    assert column.modality_names == ["t"]
    assert column.present("t").tolist() == [False, True, True, True]
    np.testing.assert_array_equal(column.values("t")[1], [0.0, 1.0])
    assert data.iloc[2, 1] is None  # absent: no value
    np.testing.assert_array_equal(data.iloc[3, 1], np.full((2, 2), 3))
    assert data.iloc[:2, [1]].shape == (2, 1)
    assert data.iloc[[0, 2]].shape == (2, 2)
    assert data.loc[np.array([True, False, True, True]), ["img"]].shape == (3, 1)
    assert data.loc[1:2, "t"].shape == (2, 1)  # label slices include their end
    assert data.loc[:, "img"].modality_names == ["img"]
    assert data.take([3, 1]).present("t").tolist() == [True, False]
    assert data.take([1], axis=1).modality_names == ["img"]
    with pytest.raises(KeyError, match="No modality labelled 'zz'"):
        data.loc[:, "zz"]
    with pytest.raises(KeyError, match=r"No sample labelled \[7\]"):
        data.loc[[0, 7]]
    with pytest.raises(IndexError, match=r"\[rows\] or \[rows, modalities\]"):
        data.iloc[0, 0, 0]


def test_copy_and_assignment_of_a_modality():
    data = _small()
    copy = data.copy()
    copy["t"] = data.iloc[[3, 2, 1, 0], 0]
    assert data.present("t").tolist() == [True, False, True, True]  # the original is kept
    assert copy.present("t").tolist() == [True, True, False, True]
    copy["extra"] = [None, np.ones(3), None, None]
    assert copy.modality_names == ["t", "img", "extra"]
    assert copy.present("extra").tolist() == [False, True, False, False]
    copy.index = data.index  # what permutation_importance does
    deep = data.copy(deep=True)
    assert deep.values("t") is not data.values("t")
    np.testing.assert_array_equal(deep.values("t"), data.values("t"))
    with pytest.raises(ValueError, match=r"one value per sample \(4\). Got 3 instead"):
        copy["t"] = np.ones((3, 2))
    with pytest.raises(ValueError, match="Only one modality can be assigned"):
        copy["t"] = data
    with pytest.raises(ValueError, match="aligns samples by position"):
        copy.index = [3, 2, 1, 0]


def test_permutation_importance_permutes_whole_modalities_with_their_presence():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 30)
    signal = rng.normal(size=(60, 3)) + 2.0 * y[:, None]
    signal[::6] = np.nan
    data = MultimodalData({"signal": signal, "noise": rng.normal(size=(60, 3))})
    clf = fast_clf(max_epochs=15).fit(data, y)
    seen = []

    def record(estimator, X, y_true):
        seen.append(X)
        return float(np.mean(estimator.predict(X) == y_true))

    result = permutation_importance(clf, data, y, scoring=record, n_repeats=2,
                                    random_state=0)
    assert result.importances.shape == (2, 2)  # one row per modality
    for X in seen[1:]:  # every permuted copy: a MultimodalData, one modality moved
        assert isinstance(X, MultimodalData) and X.modality_names == ["signal", "noise"]
        present = X.present("signal")
        assert present.sum() == 50
        np.testing.assert_array_equal(np.isnan(X.values("signal")).all(axis=1), ~present)
    moved = [X for X in seen[1:] if not np.array_equal(X.present("signal"),
                                                       data.present("signal"))]
    assert len(moved) == 2  # the two repeats of 'signal'
    assert data.present("signal").sum() == 50  # the original is left alone
    assert result.importances_mean[0] > 0.2 > abs(result.importances_mean[1])
    # max_samples subsamples rows through scikit-learn's indexing
    sub = permutation_importance(clf, data, y, n_repeats=2, max_samples=30, random_state=0)
    assert sub.importances_mean[0] > sub.importances_mean[1]


# -- (d) not one array ------------------------------------------------------------------------


def test_multimodal_data_is_not_one_array():
    frame, y = _frame()
    data = MultimodalData(frame, modalities=SPEC)
    with pytest.raises(TypeError, match=r"not one array.*'labs': a table of 2 columns"):
        np.asarray(data)
    with pytest.raises(TypeError, match="ModalityTransformer"):
        make_pipeline(StandardScaler(), fast_clf()).fit(data, y)


# -- (e) ModalityTransformer --------------------------------------------------------------------


def _tabular(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], N // 2)
    labs = rng.normal(size=(N, 3)) * 50 + 100 + 30 * y[:, None]
    labs[::7] = np.nan  # 6 patients without labs
    embedding = rng.normal(size=(N, 12)) + y[:, None]
    embedding[2::9] = np.nan  # 5 without an embedding (never both)
    return {"labs": labs, "embedding": embedding}, y


def test_fits_on_present_rows_only_and_leaves_absent_rows_absent():
    X, _ = _tabular()
    steps = ModalityTransformer([("labs", StandardScaler()),
                                 ("embedding", PCA(n_components=2))])
    out = steps.fit_transform(X)
    present = ~np.isnan(X["labs"]).all(axis=1)
    scaler = steps.named_transformers_["labs"]
    np.testing.assert_allclose(scaler.mean_, X["labs"][present].mean(axis=0))
    assert scaler.n_samples_seen_ == present.sum()
    pd.testing.assert_frame_equal(out.presence, MultimodalData(X).presence)
    np.testing.assert_allclose(out.values("labs")[present].mean(axis=0), 0, atol=1e-12)
    assert np.isnan(out.values("labs")[~present]).all()
    assert out.values("embedding").shape == (N, 2)
    assert steps.named_transformers_["embedding"].n_samples_ == N - 5
    # transform gives what fit_transform gave; a modality left out stays out
    np.testing.assert_allclose(steps.transform(X).values("labs"), out.values("labs"))
    only = steps.transform({"embedding": X["embedding"][:4]})
    assert only.modality_names == ["embedding"] and only.shape == (4, 1)
    # a modality absent from every sample at transform keeps the fitted width
    none = steps.transform({"labs": np.full((3, 3), np.nan), "embedding": X["embedding"][:3]})
    assert none.values("labs").shape == (3, 3) and not none.present("labs").any()


def test_every_input_form_gives_the_same_output():
    X, y = _tabular()
    frame = pd.DataFrame(np.hstack([X["labs"], X["embedding"]]),
                         columns=[f"l{i}" for i in range(3)] + [f"e{i}" for i in range(12)])
    spec = {"labs": [f"l{i}" for i in range(3)], "embedding": [f"e{i}" for i in range(12)]}
    records = [{k: v[i] for k, v in X.items() if not np.isnan(v[i]).all()} for i in range(N)]
    forms = {
        "dict": (X, None),
        "records": (records, None),
        "MultimodalData": (MultimodalData(X), None),
        "DataFrame": (frame, spec),
    }
    outputs = {}
    for form, (data, modalities) in forms.items():
        steps = ModalityTransformer([("labs", StandardScaler())], modalities=modalities)
        outputs[form] = steps.fit_transform(data, y)
    for form, out in outputs.items():
        np.testing.assert_allclose(out.values("labs"), outputs["dict"].values("labs"),
                                   err_msg=form)
        assert sorted(out.modality_names) == ["embedding", "labs"], form
    # a plain 2-D array is one modality named "tabular", as for the classifier
    plain = ModalityTransformer([("tabular", StandardScaler())]).fit_transform(X["labs"])
    np.testing.assert_allclose(plain.values("tabular"), outputs["dict"].values("labs"))


def test_pipeline_before_the_classifier_and_model_selection():
    X, y = _tabular()
    data = MultimodalData(X)
    pipeline = make_pipeline(
        ModalityTransformer([("labs", StandardScaler()), ("embedding", PCA(n_components=3))]),
        fast_clf(),
    )
    pipeline.fit(data, y)
    assert pipeline[-1].modalities_["embedding"].kind == "tabular"
    assert pipeline[-1]._input_shapes["embedding"] == (3,)  # the PCA width
    assert 0.0 <= pipeline.score(data, y) <= 1.0
    cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    assert cross_val_score(pipeline, data, y, cv=cv).shape == (2,)
    grid = {"modalitytransformer__embedding__n_components": [2, 4],
            "modalitytransformer__labs": ["passthrough", StandardScaler()]}
    search = GridSearchCV(pipeline, grid, cv=cv).fit(data, y)
    assert search.best_params_["modalitytransformer__embedding__n_components"] in (2, 4)
    assert search.predict(data[:5]).shape == (5,)


def test_get_params_set_params_and_clone():
    steps = ModalityTransformer([("labs", StandardScaler()), ("embedding", "passthrough")])
    params = steps.get_params()
    assert params["labs__with_mean"] is True and params["embedding"] == "passthrough"
    assert set(steps.get_params(deep=False)) == {"transformers", "remainder", "modalities"}
    steps.set_params(labs__with_mean=False, embedding=PCA(n_components=2), remainder="drop")
    assert steps.transformers[0][1].with_mean is False
    assert isinstance(steps.transformers[1][1], PCA) and steps.remainder == "drop"
    twin = clone(steps)
    assert twin.transformers[0][1] is not steps.transformers[0][1]
    assert twin.get_params()["embedding__n_components"] == 2
    assert not hasattr(twin, "transformers_")


def test_drop_remainder_and_supervised_transformers():
    X, y = _tabular()
    X = {**X, "other": np.arange(N, dtype=float).reshape(-1, 1)}
    kept = ModalityTransformer([("labs", "passthrough")]).fit_transform(X)
    assert kept.modality_names == ["labs", "embedding", "other"]
    assert kept.values("labs") is MultimodalData(X).values("labs") or np.array_equal(
        kept.values("labs"), X["labs"], equal_nan=True)
    dropped = ModalityTransformer([("labs", "passthrough"), ("embedding", "drop")],
                                  remainder="drop").fit_transform(X)
    assert dropped.modality_names == ["labs"]
    # a supervised transformer gets the labels of the rows that have the modality
    select = ModalityTransformer([("embedding", SelectKBest(k=4))]).fit(X, y)
    assert select.named_transformers_["embedding"].scores_.shape == (12,)
    assert select.transform(X).values("embedding").shape == (N, 4)
    with pytest.raises(ValueError, match="dropped every modality"):
        ModalityTransformer([("labs", "drop")], remainder="drop").fit_transform(X)
    with pytest.raises(ValueError, match=r"X \(40\) and y \(39\)"):
        ModalityTransformer([("labs", StandardScaler())]).fit(X, y[:-1])


def test_clear_errors():
    X, _ = _tabular()
    rng = np.random.default_rng(0)
    images = {"scan": rng.normal(size=(N, 8, 8)), "labs": X["labs"]}
    with pytest.raises(ValueError, match=r"Modalities \['lab'\] named in 'transformers' "
                                         r"are not in X; X has \['labs', 'embedding'\]"):
        ModalityTransformer([("lab", StandardScaler())]).fit(X)
    with pytest.raises(ValueError, match=r"Modality 'scan' holds images or volumes .*"
                                         r"\(40, 8, 8\).*Modality\(transform=...\)"):
        ModalityTransformer([("scan", StandardScaler())]).fit(images)
    with pytest.raises(ValueError, match=r"'scan' holds items of shape \(8, 8\)"):
        ModalityTransformer([("scan", StandardScaler())]).fit({"scan": list(images["scan"])})
    with pytest.raises(ValueError, match=r"'scan' holds file paths \('a/b.png'\)"):
        ModalityTransformer([("scan", StandardScaler())]).fit(
            MultimodalData({"scan": ["a/b.png", "a/c.png"]}))
    with pytest.raises(TypeError, match=r"transformer of modality 'labs' .* must be a "
                                        r"scikit-learn transformer .* Got "
                                        r"LogisticRegression\(\) instead"):
        ModalityTransformer([("labs", LogisticRegression())]).fit(X)
    with pytest.raises(TypeError, match="Got 'scale' instead"):
        ModalityTransformer([("labs", "scale")]).fit(X)
    with pytest.raises(ValueError, match=r"pair \(modality name, transformer\). Got "
                                         r"\('labs',\) instead"):
        ModalityTransformer([("labs",)]).fit(X)
    with pytest.raises(ValueError, match=r"\['labs'\] appear more than once"):
        ModalityTransformer([("labs", StandardScaler()), ("labs", PCA())]).fit(X)
    with pytest.raises(InvalidParameterError, match="'remainder' parameter of "
                                                    "ModalityTransformer must be"):
        ModalityTransformer([("labs", StandardScaler())], remainder="keep").fit(X)
    with pytest.raises(ValueError, match="missing for every sample in fit"):
        ModalityTransformer([("labs", StandardScaler())]).fit(
            {"labs": np.full((3, 2), np.nan), "other": np.ones((3, 1))})


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes need 3.11")
def test_an_error_of_the_inner_transformer_names_the_modality():
    X, _ = _tabular()
    with pytest.raises(ValueError) as info:
        ModalityTransformer([("embedding", PCA(n_components=50))]).fit(X)
    assert "modality 'embedding'" in "".join(info.value.__notes__)
    # NaN cells of a present row reach the transformer as they are: an imputer first
    with pytest.raises(ValueError, match="NaN"):
        ModalityTransformer([("labs", PCA(n_components=2))]).fit(
            {"labs": np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]])})
    out = ModalityTransformer(
        [("labs", make_pipeline(SimpleImputer(), PCA(n_components=1)))]
    ).fit_transform({"labs": np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]])})
    assert out.values("labs").shape == (3, 1)


def test_dataframe_with_column_spec_through_the_pipeline():
    frame, y = _frame()
    pipeline = make_pipeline(
        ModalityTransformer([("labs", StandardScaler())], modalities=SPEC), fast_clf(SPEC))
    pipeline.fit(frame, y)
    assert pipeline.predict(frame.head(4)).shape == (4,)
    assert pipeline[-1].modalities_["scan"].kind == "image"


# -- (f) a plain dict in scikit-learn's model selection ------------------------------------------


def test_model_selection_on_a_plain_dict_fails_before_our_code_wrap_it():
    """scikit-learn counts a dict's keys as its samples (``_num_samples`` is ``len``)
    and raises before the estimator runs: no hint of ours can reach the user. The
    remedy, MultimodalData, is documented (user guide, reliability table)."""
    X, y = _tabular()
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[2, 40\]"):
        cross_val_score(fast_clf(), X, y, cv=2)
    assert cross_val_score(fast_clf(), MultimodalData(X), y, cv=2).shape == (2,)
