"""The estimator inside scikit-learn's tools, and persistence (pickle, joblib, save/load)."""

from __future__ import annotations

import json
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast_clf, make_multimodal
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import mmfusion_sklearn
from mmfusion_sklearn import Modality, MultimodalData, MultimodalFusionClassifier


@pytest.fixture
def mm():
    X, y = make_multimodal(n=40)
    return MultimodalData(X), y


@pytest.fixture
def plain():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    return rng.normal(size=(40, 5)) + y[:, None], y


# -- model selection ---------------------------------------------------------------------------
def test_clone_keeps_params_and_drops_fit(mm):
    X, y = mm
    spec = {"table": "tabular", "image": Modality("image")}
    clf = fast_clf(spec, class_weight={0: 1.0, 1: 2.0}).fit(X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "classes_") and not hasattr(copy, "history_")
    assert copy.modalities == spec
    assert_allclose(copy.fit(X, y).predict_proba(X), clf.predict_proba(X))


def test_multimodaldata_train_test_split_and_stratified_kfold(mm):
    X, y = mm
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    assert isinstance(X_train, MultimodalData) and isinstance(X_test, MultimodalData)
    assert (len(X_train), len(X_test)) == (30, 10)
    assert np.bincount(y_test).tolist() == [5, 5]
    clf = fast_clf().fit(X_train, y_train)
    assert clf.predict(X_test).shape == (10,)
    seen = []
    for _, test in StratifiedKFold(n_splits=4).split(X, y):
        part = X[test]
        assert isinstance(part, MultimodalData) and len(part) == len(test)
        assert_array_equal(part.presence.to_numpy(), X.presence.to_numpy()[test])
        seen.extend(test)
    assert sorted(seen) == list(range(len(y)))


def test_pipeline_on_multimodaldata_and_plain_arrays(mm, plain):
    X, y = mm
    pipe = Pipeline([("clf", fast_clf())]).fit(X, y)
    assert_allclose(pipe.predict_proba(X), fast_clf().fit(X, y).predict_proba(X))
    Xp, yp = plain
    pipe = make_pipeline(StandardScaler(), fast_clf()).fit(Xp, yp)
    assert pipe.score(Xp, yp) > 0.5
    assert pipe.predict_proba(Xp).shape == (40, 2)


@pytest.mark.parametrize("which", ["mm", "plain"])
def test_cross_val_score_and_cross_validate(which, mm, plain):
    X, y = mm if which == "mm" else plain
    scores = cross_val_score(fast_clf(), X, y, cv=3, scoring="roc_auc", error_score="raise")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    result = cross_validate(
        fast_clf(), X, y, cv=StratifiedKFold(3), scoring=["accuracy", "neg_log_loss"],
        return_estimator=True, error_score="raise",
    )
    assert np.isfinite(result["test_neg_log_loss"]).all()
    assert all(hasattr(est, "history_") for est in result["estimator"])


@pytest.mark.parametrize("which", ["mm", "plain"])
def test_grid_search(which, mm, plain):
    X, y = mm if which == "mm" else plain
    search = GridSearchCV(
        fast_clf(), {"lr": [1e-3, 3e-2], "fusion": ["mlp", "transformer"]}, cv=2,
        error_score="raise",
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["lr"] in (1e-3, 3e-2)
    assert search.best_estimator_.lr == search.best_params_["lr"]
    assert search.predict(X).shape == (40,)


def test_searches_with_two_jobs(mm):
    X, y = mm
    grid = GridSearchCV(
        fast_clf(), {"embed_dim": [8, 12]}, cv=2, n_jobs=2, error_score="raise"
    ).fit(X, y)
    serial = GridSearchCV(fast_clf(), {"embed_dim": [8, 12]}, cv=2, error_score="raise").fit(X, y)
    # seeded fits are reproducible across processes
    assert_allclose(
        grid.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    random = RandomizedSearchCV(
        fast_clf(), {"lr": loguniform(1e-3, 1e-1), "missing_token": ["learned", "zero"]},
        n_iter=2, cv=2, n_jobs=2, random_state=0, error_score="raise",
    ).fit(X, y)
    assert len(random.cv_results_["params"]) == 2
    assert random.predict_proba(X).shape == (40, 2)


def test_cross_val_predict_proba(mm):
    X, y = mm
    proba = cross_val_predict(fast_clf(), X, y, cv=3, method="predict_proba")
    assert proba.shape == (40, 2)
    assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("trainable", [True, False])
def test_cross_val_score_with_a_user_encoder(mm, trainable):
    X, y = mm
    encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    clf = fast_clf({"table": "tabular", "image": Modality("image", encoder=encoder,
                                                           trainable=trainable)})
    scores = cross_val_score(clf, X, y, cv=2, error_score="raise")
    assert np.isfinite(scores).all()
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())


def test_randomized_search_on_plain_arrays(plain):
    X, y = plain
    search = RandomizedSearchCV(
        fast_clf(), {"lr": loguniform(1e-3, 1e-1)}, n_iter=2, cv=2, random_state=0,
        error_score="raise",
    ).fit(X, y)
    assert 1e-3 <= search.best_params_["lr"] <= 1e-1


# -- pickle and joblib -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    X, y = make_multimodal(n=40, labels=["benign", "malignant"])
    clf = fast_clf(pretrain_epochs=1).fit(X, y)
    return clf, X, y


def test_pickle_round_trip(fitted):
    clf, X, _ = fitted
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(restored.classes_, clf.classes_)
    pd.testing.assert_frame_equal(restored.history_, clf.history_)
    # small: the training data are not kept inside the pickle
    assert len(pickle.dumps(clf)) < 2_000_000


@pytest.mark.parametrize(
    "params", [{"early_stopping": True}, {"verbose": 1}], ids=["early-stopping", "verbose"]
)
def test_pickle_after_callbacks(params, mm, capsys):
    X, y = mm
    clf = fast_clf(**params).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_joblib_round_trip(fitted, tmp_path):
    clf, X, _ = fitted
    joblib.dump(clf, tmp_path / "model.joblib")
    restored = joblib.load(tmp_path / "model.joblib")
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(restored.predict(X), clf.predict(X))


def test_unpickled_model_can_be_refitted(fitted):
    clf, X, y = fitted
    restored = pickle.loads(pickle.dumps(clf))
    restored.fit(X, y)
    assert_allclose(restored.predict_proba(X), clf.predict_proba(X))


# -- save / load -------------------------------------------------------------------------------
def _forbid_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load() must not unpickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)


def test_save_load_round_trip(fitted, tmp_path, monkeypatch):
    clf, X, _ = fitted
    clf.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json", "model.safetensors"
    ]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["classes"] == ["benign", "malignant"]
    expected = clf.predict_proba(X)
    _forbid_unpickling(monkeypatch)
    for loaded in (
        MultimodalFusionClassifier.load(tmp_path / "model"),
        mmfusion_sklearn.load(str(tmp_path / "model"), device="cpu"),
    ):
        assert isinstance(loaded, MultimodalFusionClassifier)
        assert loaded.device_ == torch.device("cpu")
        assert_array_equal(loaded.predict_proba(X), expected)
        assert_array_equal(loaded.predict(X), clf.predict(X))
        assert loaded.predict(X).dtype == clf.classes_.dtype
        assert_array_equal(loaded.classes_, clf.classes_)
        assert list(loaded.modalities_) == list(clf.modalities_)
        params = {k: v for k, v in clf.get_params().items() if k != "device"}
        assert {k: v for k, v in loaded.get_params().items() if k != "device"} == params


def test_loaded_history_matches(fitted, tmp_path):
    clf, _, _ = fitted
    clf.save(tmp_path)
    loaded = MultimodalFusionClassifier.load(tmp_path)
    assert loaded.history_[["stage", "epoch"]].equals(clf.history_[["stage", "epoch"]])
    assert_allclose(loaded.history_["train_loss"], clf.history_["train_loss"])


def test_loaded_history_dtypes_match(fitted, tmp_path):
    clf, _, _ = fitted
    clf.save(tmp_path)
    loaded = MultimodalFusionClassifier.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.history_, clf.history_)


@pytest.mark.parametrize(
    "labels", [[0, 1, 2], [False, True], ["x", "y"]], ids=["int", "bool", "str"]
)
def test_save_load_label_types(labels, tmp_path):
    X, y = make_multimodal(n=30, n_classes=len(labels), labels=labels)
    clf = fast_clf(
        max_epochs=2, class_weight={labels[0]: 2.0, labels[1]: 1.0}
        | ({labels[2]: 1.0} if len(labels) > 2 else {}),
    ).fit(X, y)
    clf.save(tmp_path)
    loaded = mmfusion_sklearn.load(tmp_path)
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.class_weight == clf.class_weight
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_save_load_dataframe_columns_and_options(tmp_path):
    X, y = make_multimodal(n=40, labels=["no", "yes"])
    frame = pd.DataFrame(X["table"], columns=["age", "size", "grade", "er"])
    frame["site"] = np.where(np.arange(40) % 3, "left", "right")
    frame["scan"] = pd.Series(X["image"], dtype=object)
    modalities = {
        "clinical": ["age", "size", "grade", "er", "site"],
        "scan": Modality("image", columns="scan"),
    }
    clf = fast_clf(
        modalities, fusion="transformer", missing_token="zero", early_stopping=True,
        validation_fraction=0.2,
    ).fit(frame, y)
    clf.save(tmp_path)
    loaded = MultimodalFusionClassifier.load(tmp_path, device="cpu")
    assert_array_equal(loaded.predict_proba(frame), clf.predict_proba(frame))
    assert_array_equal(loaded.predict(frame.iloc[:5]), clf.predict(frame.iloc[:5]))
    assert loaded.modalities == modalities
    assert loaded.modalities_["scan"].columns == "scan"
    # unseen category warns after loading too (preprocessing state was saved)
    frame.loc[0, "site"] = "centre"
    with pytest.warns(UserWarning, match="centre"):
        loaded.predict(frame)


def test_save_load_plain_array_model(plain, tmp_path):
    X, y = plain
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    clf = fast_clf().fit(frame, y)
    clf.save(tmp_path)
    loaded = mmfusion_sklearn.load(tmp_path)
    assert loaded.n_features_in_ == 5
    assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    assert_array_equal(loaded.predict_proba(frame), clf.predict_proba(frame))
    with pytest.raises(ValueError, match=r"(?s)feature names.*missing:\n- f3\n- f4"):
        loaded.predict(frame.iloc[:, :3])


def test_loaded_model_can_be_refitted(fitted, tmp_path):
    clf, X, y = fitted
    clf.save(tmp_path)
    loaded = MultimodalFusionClassifier.load(tmp_path)
    assert_allclose(loaded.fit(X, y).predict_proba(X), clf.predict_proba(X))


def test_save_with_custom_encoder_raises(tmp_path):
    X, y = make_multimodal(n=30)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    clf = fast_clf(
        {"table": "tabular", "image": Modality("image", encoder=encoder)}, max_epochs=1
    ).fit(X, y)
    with pytest.raises(ValueError, match=r"'image'.*custom encoder.*pickle"):
        clf.save(tmp_path / "model")
    assert not (tmp_path / "model" / "config.json").exists()
    # pickle is the documented alternative and works
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        MultimodalFusionClassifier.load(tmp_path / "nowhere")


def test_optuna_study_tunes_the_estimator_on_multimodal_data():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = make_multimodal(n=60)
    data = MultimodalData(X)

    def objective(trial):
        clf = fast_clf(
            embed_dim=trial.suggest_categorical("embed_dim", [8, 16]),
            lr=trial.suggest_float("lr", 1e-3, 1e-2, log=True),
            modality_dropout=trial.suggest_categorical(
                "modality_dropout", ["simultaneous", "random"]
            ),
        )
        return cross_val_score(clf, data, y, cv=2, scoring="roc_auc").mean()

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(objective, n_trials=3)
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert 0.0 <= study.best_value <= 1.0
    assert set(study.best_params) == {"embed_dim", "lr", "modality_dropout"}
