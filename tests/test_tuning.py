"""mmfusion_sklearn.tuning: search space, suggest_params, tune (SQLite, resume, pruning)."""

from __future__ import annotations

import numpy as np
import pytest

from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier

optuna = pytest.importorskip("optuna")
from mmfusion_sklearn.tuning import (  # noqa: E402
    PruningCallback,
    default_search_space,
    suggest_params,
    tune,
)

TINY = {"embed_dim": 8, "max_epochs": 3, "pretrain_epochs": 0, "batch_size": 32, "ensemble_size": 1,
        "device": "cpu", "random_state": 0}
LR_ONLY = {"lr": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)}


@pytest.fixture(autouse=True)
def quiet_optuna():
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(before)


def tables(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = {"a": rng.normal(size=(n, 3)) + y[:, None], "b": rng.normal(size=(n, 2)) - y[:, None]}
    return X, y


def test_default_search_space_names_parameters_of_the_estimator():
    space = default_search_space()
    params = MultimodalFusionClassifier().get_params()
    assert set(space) <= set(params)
    assert {"lr", "weight_decay", "embed_dim"} <= set(space)
    # every default value lies inside its range: the defaults are a point of the space
    for name, distribution in space.items():
        assert distribution._contains(distribution.to_internal_repr(params[name])), name


def test_suggest_params_draws_each_kind_of_distribution():
    space = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "patience": optuna.distributions.IntDistribution(2, 8, step=2),
        "fusion": optuna.distributions.CategoricalDistribution(["mlp", "transformer"]),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [suggest_params(study.ask(), space) for _ in range(20)]
    assert all(1e-4 <= d["lr"] <= 1e-2 for d in drawn)
    assert {d["patience"] for d in drawn} <= {2, 4, 6, 8}
    assert {d["fusion"] for d in drawn} == {"mlp", "transformer"}
    MultimodalFusionClassifier().set_params(**drawn[0])  # valid for set_params
    with pytest.raises(TypeError, match=r"search_space\['x'\] must be an Optuna"):
        suggest_params(study.ask(), {"x": [1, 2]})


def test_default_search_space_works_in_optuna_search_cv():
    integration = pytest.importorskip("optuna_integration")
    X, y = tables()
    search = integration.OptunaSearchCV(
        MultimodalFusionClassifier(**TINY), default_search_space(), n_trials=2, cv=2,
        random_state=0, scoring="roc_auc",
    )
    search.fit(MultimodalData(X), y)
    assert len(search.trials_) == 2
    assert set(search.best_params_) == set(default_search_space())
    assert search.predict_proba(MultimodalData(X)).shape == (60, 2)


def test_tune_stores_in_sqlite_resumes_and_refits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default storage is a file in the current folder
    X, y = tables()
    clf = MultimodalFusionClassifier(**TINY)
    first = tune(clf, X, y, n_trials=2, cv=2, search_space=LR_ONLY, random_state=0)
    assert (tmp_path / "mmfusion_sklearn_tuning.db").is_file()
    assert len(first.study.trials) == 2
    # n_trials is the total the study should hold: the same call adds nothing ...
    again = tune(clf, X, y, n_trials=2, cv=2, search_space=LR_ONLY, random_state=0)
    assert len(again.study.trials) == 2
    # ... and a larger total resumes it
    more = tune(clf, X, y, n_trials=3, cv=2, search_space=LR_ONLY, random_state=0)
    assert [t.number for t in more.study.trials] == [0, 1, 2]
    best = max(more.study.trials, key=lambda t: t.value)
    assert more.best_params_ == best.params
    assert more.best_score_ == pytest.approx(np.mean(best.user_attrs["cv_scores"]))
    assert more.best_estimator_.lr == pytest.approx(best.params["lr"])
    assert more.best_estimator_.predict(X).shape == (60,)
    assert clf.lr == 1e-3 and not hasattr(clf, "classes_")  # the template is untouched


def test_tune_refuses_to_resume_a_study_of_other_data(tmp_path):
    X, y = tables()
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    clf = MultimodalFusionClassifier(**TINY)
    tune(clf, X, y, n_trials=1, cv=2, search_space=LR_ONLY, storage=storage, refit=False)
    X2, y2 = tables(n=40)
    with pytest.raises(ValueError, match="holds trials for other data"):
        tune(clf, X2, y2, n_trials=2, cv=2, search_space=LR_ONLY, storage=storage)
    tune(clf, X2, y2, n_trials=1, cv=2, search_space=LR_ONLY, storage=storage,
         study_name="other", refit=False)


def test_trials_report_the_pooled_validation_loss_every_epoch():
    X, y = tables()
    clf = MultimodalFusionClassifier(**{**TINY, "max_epochs": 4}, patience=100)
    result = tune(clf, X, y, n_trials=1, cv=2, search_space=LR_ONLY, refit=False,
                  storage=optuna.storages.InMemoryStorage(),
                  pruner=optuna.pruners.NopPruner())
    trial = result.study.trials[0]
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4]
    # the first fold's losses, negated (higher is better in a maximised study)
    assert all(v < 0 for v in trial.intermediate_values.values())


def test_pruned_trials_stop_early_and_a_study_with_none_complete_says_so():
    X, y = tables()
    clf = MultimodalFusionClassifier(**{**TINY, "max_epochs": 5})
    # every reported value (minus a loss, below 0) is under the threshold: pruned at once
    pruner = optuna.pruners.ThresholdPruner(lower=0.0)
    storage = optuna.storages.InMemoryStorage()
    with pytest.raises(RuntimeError, match="No trial of study 'p' completed"):
        tune(clf, X, y, n_trials=2, cv=2, search_space=LR_ONLY, pruner=pruner,
             storage=storage, study_name="p")
    trials = optuna.load_study(study_name="p", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [1] for t in trials)


def test_tune_takes_every_input_form():
    import pandas as pd

    X, y = tables()
    records = [{k: v[i] for k, v in X.items()} for i in range(len(y))]
    frame = pd.DataFrame(np.hstack([X["a"], X["b"]]), columns=["a0", "a1", "a2", "b0", "b1"])
    spec = {"a": ["a0", "a1", "a2"], "b": ["b0", "b1"]}
    forms = [(X, None), (records, None), (MultimodalData(X), None), (frame, spec)]
    for i, (form, modalities) in enumerate(forms):
        clf = MultimodalFusionClassifier(modalities, **TINY)
        result = tune(clf, form, y, n_trials=1, cv=2, search_space=LR_ONLY,
                      storage=optuna.storages.InMemoryStorage(), study_name=str(i))
        assert list(result.best_estimator_.modalities_) == ["a", "b"]
        assert result.study.trials[0].state == optuna.trial.TrialState.COMPLETE


@pytest.mark.parametrize("kwargs, match", [
    ({"n_trials": 0}, "n_trials must be an int >= 1"),
    ({"n_trials": 1, "search_space": {"nope": LR_ONLY["lr"]}}, r"does not have: \['nope'\]"),
    ({"n_trials": 1, "n_jobs": 0}, "n_jobs must be"),
])
def test_tune_checks_its_arguments(kwargs, match):
    X, y = tables()
    with pytest.raises(ValueError, match=match):
        tune(MultimodalFusionClassifier(**TINY), X, y,
             storage=optuna.storages.InMemoryStorage(), **kwargs)


def test_pruning_callback_reports_minus_the_pooled_loss_at_each_epoch():
    X, y = tables()
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    clf = MultimodalFusionClassifier(**{**TINY, "ensemble_size": 2},
                                     callbacks=[PruningCallback(trial)]).fit(X, y)
    pooled = clf.history_.query("stage == 'classification' and member == 0")
    expected = dict(zip(pooled["epoch"], -pooled["pooled_valid_log_loss"]))
    study.tell(trial, 0.0)
    assert study.trials[0].intermediate_values == pytest.approx(expected)


@pytest.mark.parametrize("n_threads", [1, None])
def test_parallel_trials_in_threads_share_the_cores_and_fill_the_study(n_threads,
                                                                        monkeypatch):
    import torch

    from mmfusion_sklearn._training import cores

    def never(*args, **kwargs):  # the study's count is used: no fit measures the cores
        raise AssertionError("a fit in a threaded study measured the free cores")

    monkeypatch.setattr(cores, "free_cores", never)
    monkeypatch.setattr(cores, "_last", None)
    X, y = tables()
    before = torch.get_num_threads()
    result = tune(MultimodalFusionClassifier(**TINY, n_threads=n_threads), X, y,
                  n_trials=3, cv=2,
                  n_jobs=2, search_space=LR_ONLY, storage=optuna.storages.InMemoryStorage(),
                  refit=False)
    states = [t.state for t in result.study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert result.best_estimator_ is None
    assert torch.get_num_threads() == before


def test_tune_works_for_any_scikit_learn_classifier():
    from sklearn.linear_model import LogisticRegression

    X, y = tables()
    space = {"C": optuna.distributions.FloatDistribution(0.01, 10.0, log=True)}
    result = tune(LogisticRegression(), X["a"], y, n_trials=3, cv=3, search_space=space,
                  storage=optuna.storages.InMemoryStorage(), random_state=0)
    assert result.best_estimator_.C == result.best_params_["C"]
    assert all(not t.intermediate_values for t in result.study.trials)  # nothing to prune


def test_the_pruning_signal_is_the_held_out_log_loss_whatever_the_unimodal_weight():
    from sklearn.metrics import log_loss
    from sklearn.utils import check_random_state

    X, y = tables(n=100)
    for weight in (0.0, 2.0):
        clf = MultimodalFusionClassifier(**{**TINY, "max_epochs": 4}, patience=100,
                                         unimodal_weight=weight).fit(X, y)
        # the rows the single member held out, its split replayed from random_state
        rng = check_random_state(clf.random_state)
        split_seed, _ = rng.randint(np.iinfo(np.int32).max, size=2)
        (plan,) = clf._member_plans(y, int(split_seed), rng)
        rows = plan.valid_index.numpy()
        history = clf.history_.query("stage == 'classification'").set_index("epoch")
        at_best = history.loc[clf.best_epoch_]
        held_out = log_loss(y[rows], clf.predict_proba(MultimodalData(X)[rows]))
        assert at_best["pooled_valid_log_loss"] == pytest.approx(held_out, abs=1e-5)
        # the objective counts the single-modality terms too: 3x the scale with weight 2
        ratio = at_best["pooled_valid_loss"] / at_best["pooled_valid_log_loss"]
        assert ratio == pytest.approx(1.0, abs=1e-6) if weight == 0 else ratio > 2


def test_a_plain_postgresql_url_gets_the_installed_driver(monkeypatch):
    import importlib.util

    from mmfusion_sklearn.tuning import postgresql_driver_url

    installed = {"psycopg2"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in installed else None)
    url = "postgresql://user@db.example:5432/studies"
    assert postgresql_driver_url(url) == "postgresql+psycopg2://user@db.example:5432/studies"
    # an explicit driver, another database, or psycopg 3 installed: unchanged
    assert postgresql_driver_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert postgresql_driver_url("sqlite:///x.db") == "sqlite:///x.db"
    installed.add("psycopg")
    assert postgresql_driver_url(url) == url


def _tiny_tune(tmp_path, X, y, n_trials, estimator=None, cv=2):
    return tune(estimator if estimator is not None else MultimodalFusionClassifier(**TINY),
                X, y, n_trials=n_trials, cv=cv, search_space=LR_ONLY,
                storage=f"sqlite:///{tmp_path / 'resume.db'}", study_name="s",
                random_state=0, refit=False)


def test_resuming_with_the_same_random_state_draws_new_trials(tmp_path):
    X, y = tables(n=30)
    first = [t.params["lr"] for t in _tiny_tune(tmp_path, X, y, 2).study.trials]
    more = _tiny_tune(tmp_path, X, y, 4)
    params = [t.params["lr"] for t in more.study.trials]
    assert len(params) == 4 and params[:2] == first
    assert params[2] not in params[:2] and params[3] not in params[:2]


@pytest.mark.parametrize("change", ["values", "estimator", "folds"])
def test_resuming_on_other_data_estimator_or_folds_is_refused(tmp_path, change):
    from sklearn.model_selection import KFold

    X, y = tables(n=30)
    _tiny_tune(tmp_path, X, y, 1)
    estimator, cv = None, 2
    if change == "values":  # same shape, other values
        X = {**X, "a": X["a"][::-1].copy()}
    elif change == "estimator":
        estimator = MultimodalFusionClassifier(**{**TINY, "weight_decay": 0.5})
    else:
        cv = KFold(2, shuffle=True, random_state=3)
    with pytest.raises(ValueError, match="holds trials for other data"):
        _tiny_tune(tmp_path, X, y, 2, estimator=estimator, cv=cv)


def test_a_ctrl_c_stops_tune_and_the_study_resumes(tmp_path, monkeypatch):
    from optuna.trial import TrialState

    from mmfusion_sklearn._training import nets

    X, y = tables(n=30)
    original = nets.FusionNet.run_single_epoch
    calls = {"n": 0}

    def interrupted(self, iterator, training, *args, **kwargs):
        calls["n"] += training
        if training and calls["n"] == 7:  # in the second trial
            raise KeyboardInterrupt
        return original(self, iterator, training, *args, **kwargs)

    monkeypatch.setattr(nets.FusionNet, "run_single_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _tiny_tune(tmp_path, X, y, 5)
    assert calls["n"] == 7  # nothing ran after the interruption
    monkeypatch.setattr(nets.FusionNet, "run_single_epoch", original)
    resumed = _tiny_tune(tmp_path, X, y, 3)
    states = [t.state for t in resumed.study.trials]
    assert states[1] == TrialState.FAIL  # the interrupted trial never counts
    assert states.count(TrialState.COMPLETE) == 3
