"""skorch callbacks through the estimator's ``callbacks`` parameter."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from skorch.callbacks import Callback, Checkpoint, LRScheduler

from mmfusion_sklearn import MultimodalFusionClassifier

TABLES = {"embed_dim": 8, "pretrain_epochs": 0, "batch_size": 32, "lr": 1e-2,
          "device": "cpu", "random_state": 0}


def tables(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = {"a": rng.normal(size=(n, 3)) + y[:, None], "b": rng.normal(size=(n, 2)) - y[:, None]}
    return X, y


class Recorder(Callback):
    """Records what it sees at the end of every epoch."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        self.seen.append((row["epoch"], row.get("pooled_valid_loss"), row.get("valid_loss")))


def test_lr_scheduler_runs_in_every_member_and_its_lr_is_in_the_history():
    X, y = tables()
    scheduler = LRScheduler(policy="StepLR", step_size=2, gamma=0.5)
    clf = MultimodalFusionClassifier(**TABLES, max_epochs=6, patience=100, ensemble_size=2,
                                     callbacks=[scheduler]).fit(X, y)
    history = clf.history_.query("stage == 'classification'")
    assert "event_lr" in history
    for member in (0, 1):
        lrs = history[history["member"] == member]["event_lr"].tolist()
        assert lrs == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3])
    assert not hasattr(scheduler, "lr_scheduler_")  # the user's instance is not mutated


def test_scheduler_changes_the_model():
    X, y = tables()
    plain = MultimodalFusionClassifier(**TABLES, max_epochs=4, early_stopping=False).fit(X, y)
    scheduled = MultimodalFusionClassifier(
        **TABLES, max_epochs=4, early_stopping=False,
        callbacks=[LRScheduler(policy="StepLR", step_size=1, gamma=0.1)]).fit(X, y)
    assert not np.allclose(plain.predict_proba(X), scheduled.predict_proba(X))


def test_a_callback_sees_the_pooled_validation_loss_of_every_member():
    X, y = tables()
    recorder = Recorder()
    clf = MultimodalFusionClassifier(**TABLES, max_epochs=5, patience=100, ensemble_size=3,
                                     callbacks=[("rec", recorder)])
    clf.fit(X, y)
    # the user's instance is copied per member: it saw nothing itself
    assert recorder.seen == []
    copies = [dict(net.callbacks_)["rec"] for net in clf._nets]
    pooled = clf.history_.query("stage == 'classification' and member == 0")
    for copy in copies:
        assert [e for e, _, _ in copy.seen] == [1, 2, 3, 4, 5]
        assert [p for _, p, _ in copy.seen] == pytest.approx(
            pooled["pooled_valid_loss"].tolist())
    # each member's own validation loss was there too, and differs between members
    own = [[v for _, _, v in copy.seen] for copy in copies]
    assert all(v is not None for row in own for v in row)
    assert own[0] != own[1]


def test_checkpoints_of_several_members_do_not_overwrite_each_other(tmp_path):
    X, y = tables()
    checkpoint = Checkpoint(monitor="valid_loss_best", dirname=str(tmp_path), f_params="p.pt",
                            f_optimizer=None, f_criterion=None, f_history=None)
    MultimodalFusionClassifier(**TABLES, max_epochs=3, ensemble_size=2,
                               callbacks=[checkpoint]).fit(X, y)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["member0_p.pt", "member1_p.pt"]


@pytest.mark.parametrize("callbacks, error, match", [
    ([LRScheduler], TypeError, "is the class LRScheduler; pass an instance"),
    (["lr"], TypeError, "must be a skorch callback"),
    ([Recorder(), Recorder()], ValueError, r"unique; \['Recorder'\]"),
    ([("train_loss", Recorder())], ValueError, "used by the training loop"),
    ([("", Recorder())], TypeError, "non-empty string"),
])
def test_bad_callbacks_are_refused_by_name(callbacks, error, match):
    X, y = tables()
    clf = MultimodalFusionClassifier(**TABLES, max_epochs=1, callbacks=callbacks)
    with pytest.raises(error, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_")


def test_callbacks_survive_clone_and_are_left_out_of_saved_models(tmp_path):
    X, y = tables()
    clf = MultimodalFusionClassifier(**TABLES, max_epochs=2,
                                     callbacks=[LRScheduler(policy="StepLR", step_size=1)])
    copy = clone(clf)
    assert isinstance(copy.callbacks[0], LRScheduler)
    assert copy.callbacks[0] is not clf.callbacks[0]
    clf.fit(X, y)
    clf.save(tmp_path / "model")
    loaded = MultimodalFusionClassifier.load(tmp_path / "model")
    assert loaded.callbacks is None
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    assert "event_lr" in loaded.history_


def test_optuna_integrations_skorch_pruning_callback_prunes_a_fit():
    optuna = pytest.importorskip("optuna")
    integration = pytest.importorskip("optuna_integration")
    X, y = tables()
    # any loss above 0 is pruned at once
    study = optuna.create_study(direction="minimize",
                                pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trial = study.ask()
    pruning = integration.SkorchPruningCallback(trial, "pooled_valid_loss")
    clf = MultimodalFusionClassifier(**TABLES, max_epochs=5, ensemble_size=3,
                                     callbacks=[pruning])
    with pytest.raises(optuna.TrialPruned):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_")  # a pruned fit leaves the estimator unfitted
    # reported once (by the first member only: no duplicate step), at skorch's epoch 0
    assert list(study.trials[0].intermediate_values) == [0]


class ThreadProbe(Callback):
    """Records torch's thread count while training."""

    def __init__(self):
        self.threads = []

    def on_epoch_end(self, net, **kwargs):
        import torch

        self.threads.append(torch.get_num_threads())


@pytest.mark.parametrize("n_threads", [1, 2])
def test_n_threads_holds_during_fit_and_prediction_and_is_restored(n_threads, monkeypatch):
    import torch

    X, y = tables()
    before = torch.get_num_threads()
    clf = MultimodalFusionClassifier(**TABLES, max_epochs=2, ensemble_size=1,
                                     n_threads=n_threads, callbacks=[("probe", ThreadProbe())])
    clf.fit(X, y)
    assert dict(clf._nets[0].callbacks_)["probe"].threads == [n_threads, n_threads]
    assert torch.get_num_threads() == before
    seen = []
    original = torch.Tensor.double

    def spy(self, *args, **kwargs):  # prediction computes log-probabilities in float64
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "double", spy)
    clf.predict_proba(X)
    assert seen and set(seen) == {n_threads}
    assert torch.get_num_threads() == before
