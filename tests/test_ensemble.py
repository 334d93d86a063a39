"""Cross-fitted members, pooled early stopping and the linear path."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import fast_clf, make_multimodal
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mmfusion_sklearn import MultimodalFusionClassifier
from mmfusion_sklearn._torch.fusion import LinearLogits, single_modality_masks
from mmfusion_sklearn._torch.linear import fit_linear_path, linear_objective
from mmfusion_sklearn._torch.losses import simultaneous_dropout_loss, weighted_cross_entropy
from mmfusion_sklearn._torch.tasks import ClassificationTask
from mmfusion_sklearn._training.ensemble import pooled_valid_loss

#: Early stopping on, a few cheap epochs.
STOPPING = {"early_stopping": True, "max_epochs": 6, "patience": 2}


def _table_data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = rng.normal(size=(n, 5)) + 0.8 * y[:, None]
    b = rng.normal(size=(n, 3)) - 0.5 * y[:, None]
    b[::6] = np.nan  # some patients lack "b"
    return {"a": a, "b": b}, y


# -- the linear path -------------------------------------------------------------------------
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_linear_path_is_scikit_learn_logistic_regression(n_classes, C):
    # one modality, full input only: the path's fit is LogisticRegression(C) on the
    # standardised features, penalty counted the same way
    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(150, 6)) * [1, 2, 3, 1, 5, 0.5] + 3
    y = rng.integers(0, n_classes, 150)
    y[X[:, 0] > 3.5] = 0
    reference = LogisticRegression(C=C, max_iter=10_000, tol=1e-10).fit(
        StandardScaler().fit_transform(X), y)
    linear = LinearLogits(["a"], {"a": 6}, n_classes)
    inputs = {"a": torch.tensor(X, dtype=torch.float32)}
    everyone = torch.ones(150, 1, dtype=torch.bool)
    weight = torch.ones(150)
    l2 = ClassificationTask(n_classes).linear_l2(C, weight)
    fit_linear_path(linear, inputs, everyone, torch.tensor(y), weight, l2,
                    configurations=False, max_iter=500)
    with torch.no_grad():
        proba = torch.softmax(linear.combine(linear(inputs, everyone), everyone), 1).numpy()
    expected = reference.predict_proba(StandardScaler().fit_transform(X))
    assert_allclose(proba, expected, atol=2e-3)


def test_linear_objective_is_the_networks_objective():
    g = torch.Generator().manual_seed(0)
    inputs = {"a": torch.randn(20, 5, generator=g), "b": torch.randn(20, 3, generator=g),
              "c": torch.randn(20, 2, generator=g)}
    present = torch.rand(20, 3, generator=g) > 0.3
    present[:, 0] |= ~present.any(dim=1)
    y = torch.randint(0, 3, (20,), generator=g)
    weight = torch.rand(20, generator=g)
    linear = LinearLogits(["a", "b", "c"], {"a": 5, "c": 2}, 3)  # "b" has no path
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g))
    terms = linear(inputs, present)
    full = linear.combine(terms, present)
    single = linear.combine(terms, single_modality_masks(present))
    torch.testing.assert_close(
        linear_objective(linear, terms, present, y, weight, True, 0.7),
        simultaneous_dropout_loss(full, single, y, present, weight, 0.7))
    torch.testing.assert_close(linear_objective(linear, terms, present, y, weight, False),
                               weighted_cross_entropy(full, y, weight))


def test_linear_logits_use_the_absent_constant_where_a_modality_is_missing():
    linear = LinearLogits(["a", "b"], {"a": 2, "b": 1}, 2)
    with torch.no_grad():
        linear.maps[0].map.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        linear.maps[1].map.weight.fill_(2.0)
        linear.absent.copy_(torch.tensor([[10.0, 20.0], [30.0, 40.0]]))
    inputs = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[1.0], [1.0]])}
    keep = torch.tensor([[True, True], [True, False]])
    logits = linear.combine(linear(inputs, keep), keep)
    torch.testing.assert_close(logits, torch.tensor([[3.0, 4.0], [33.0, 44.0]]))


def test_linear_path_standardises_its_inputs_from_present_rows():
    linear = LinearLogits(["a"], {"a": 2}, 2)
    x = torch.tensor([[1.0, 100.0], [3.0, 300.0], [1e6, 1e6]])
    linear.standardise_from({"a": x}, torch.tensor([[True], [True], [False]]))
    torch.testing.assert_close(linear.maps[0].mean, torch.tensor([2.0, 200.0]))
    torch.testing.assert_close(linear.maps[0].scale, torch.tensor([1.0, 100.0]))


def test_linear_path_only_for_tables_and_embeddings(data):
    X, y = data
    clf = fast_clf().fit(X, y)
    linear = clf._nets[0].module_.linear
    assert [linear.names[i] for i in linear.index] == ["table"]
    assert clf.linear_C_ == 1.0  # no held-out rows: scikit-learn's default
    off = fast_clf(linear_path=False).fit(X, y)
    assert len(off._nets[0].module_.linear) == 0 and off.linear_C_ is None


def test_linear_penalty_is_chosen_on_held_out_rows():
    X, y = _table_data()
    clf = fast_clf(**STOPPING).fit(X, y)
    assert clf.linear_C_ in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    linear = clf._nets[0].module_.linear
    expected = ClassificationTask(2).linear_l2(clf.linear_C_, torch.ones(64))
    assert linear.l2 == pytest.approx(expected)


def test_epoch_zero_keeps_the_linear_model_when_training_only_hurts():
    # a learning rate that wrecks the network in one epoch: early stopping keeps the
    # starting point, which (zero classifier head) is the linear path alone
    X, y = _table_data()
    clf = fast_clf(**STOPPING, lr=50.0, ensemble_size=1).fit(X, y)
    assert clf.best_epoch_ == 0
    module = clf._nets[0].module_
    assert torch.count_nonzero(module.classifier.net[-1].weight) == 0
    arrays, present = clf._model_arrays(clf._as_data(X, reset=False))
    inputs = {k: torch.from_numpy(v) for k, v in arrays.items()}
    present = torch.from_numpy(present)
    with torch.no_grad():
        linear = module.linear.combine(module.linear(inputs, present), present)
        bias = module.classifier.net[-1].bias
        expected = torch.softmax((linear + bias).double(), dim=1).numpy()
    assert_allclose(clf.predict_proba(X), expected, rtol=1e-5, atol=1e-6)


# -- members ------------------------------------------------------------------------------------
def test_auto_ensemble_size(data):
    X_tab, y_tab = _table_data()
    assert fast_clf(**STOPPING).fit(X_tab, y_tab).ensemble_size_ == 5
    assert fast_clf().fit(X_tab, y_tab).ensemble_size_ == 1  # no early stopping
    X, y = data  # an image modality: one network
    assert fast_clf(**STOPPING).fit(X, y).ensemble_size_ == 1
    assert fast_clf(**STOPPING, ensemble_size=3).fit(X, y).ensemble_size_ == 3
    big = np.random.default_rng(0).normal(size=(5001, 2))
    labels = (big[:, 0] > 0).astype(int)
    clf = fast_clf(**{**STOPPING, "max_epochs": 1}).fit(big, labels)
    assert clf.ensemble_size_ == 1


def test_cross_fitting_holds_out_every_sample_once():
    X, y = _table_data(n=83)
    clf = fast_clf(**STOPPING)
    clf.fit(X, y)
    plans = clf._member_plans(np.unique(y, return_inverse=True)[1], 0,
                              np.random.RandomState(0))
    held_out = np.concatenate([p.valid_index.numpy() for p in plans])
    assert_array_equal(np.sort(held_out), np.arange(83))
    for plan in plans:
        assert not set(plan.train_index.tolist()) & set(plan.valid_index.tolist())
        assert len(plan.train_index) + len(plan.valid_index) == 83
    assert len({p.seed for p in plans}) == 5


def test_too_few_samples_for_the_folds_warns_and_trains_on_all():
    X, y = _table_data(n=9)
    with pytest.warns(UserWarning, match="Too few samples \\(9\\) for 5 cross-fitted"):
        clf = fast_clf(**STOPPING, ensemble_size=5).fit(X, y)
    assert clf.ensemble_size_ == 5 and clf.best_epoch_ is None


def test_predictions_average_the_members_probabilities():
    X, y = _table_data()
    clf = fast_clf(**STOPPING).fit(X, y)
    data = clf._as_data(X, reset=False)
    arrays, present = clf._model_arrays(data)
    from mmfusion_sklearn._training.batches import FusionDataset

    dataset = FusionDataset({k: torch.from_numpy(v) for k, v in arrays.items()},
                            torch.from_numpy(present))
    members = np.stack([torch.softmax(net.forward(dataset).double(), 1).numpy()
                        for net in clf._nets])
    proba = clf.predict_proba(X)
    assert_allclose(proba, members.mean(axis=0), rtol=1e-6, atol=1e-9)
    assert not np.allclose(members[0], members[1])  # the members differ
    assert_allclose(clf.decision_function(X), np.log(proba[:, 1] / proba[:, 0]), rtol=1e-6)
    assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])


def test_pooled_early_stopping_stops_all_members_together_and_restores_the_best():
    X, y = _table_data(n=100)
    params = {**STOPPING, "max_epochs": 40, "patience": 3, "lr": 3e-2}
    clf = fast_clf(**params).fit(X, y)
    task = clf.history_[clf.history_["stage"] == "classification"]
    per_epoch = task.groupby("epoch")
    assert (per_epoch["member"].nunique() == 5).all()
    assert (per_epoch["pooled_valid_loss"].nunique() == 1).all()
    sizes = [len(p.valid_index) for p in clf._member_plans(
        np.unique(y, return_inverse=True)[1], 0, np.random.RandomState(0))]
    first = task[task["epoch"] == 1].sort_values("member")
    expected = np.dot(first["valid_loss"], sizes) / sum(sizes)
    assert first["pooled_valid_loss"].iloc[0] == pytest.approx(expected, rel=1e-6)
    pooled = per_epoch["pooled_valid_loss"].first()
    epochs = len(pooled)
    assert epochs < 40
    best = clf.best_epoch_
    assert epochs == best + 3 or (best == 0 and epochs == 3)
    if best > 0:
        assert pooled.idxmin() == best
        # the same run cut at the best epoch ends with the weights the first restored
        at_best = fast_clf(**{**params, "max_epochs": best, "patience": 100}).fit(X, y)
        assert_allclose(clf.predict_proba(X), at_best.predict_proba(X), rtol=1e-5,
                        atol=1e-6)


def test_pooled_valid_loss_weights_by_held_out_size():
    class Net:  # one epoch of two validation batches of the same loss
        def __init__(self, loss):
            batches = [{"valid_loss": loss, "valid_batch_size": 4}] * 2
            self.history = {(-1, "batches"): batches, -1: {"batches": batches}}

    assert pooled_valid_loss([Net(1.0), Net(4.0)], [3, 1]) == pytest.approx(1.75)
    assert math.isnan(pooled_valid_loss([Net(1.0)], [0]))


def test_interrupt_in_training_keeps_the_best_weights_and_warns(monkeypatch):
    from mmfusion_sklearn._training import nets as _training

    X, y = _table_data()
    calls = {"n": 0}
    original = _training.FusionNet.run_single_epoch

    def interrupted(self, iterator, training, *args, **kwargs):
        calls["n"] += training
        if training and calls["n"] == 8:  # in the second epoch of five members
            raise KeyboardInterrupt
        return original(self, iterator, training, *args, **kwargs)

    monkeypatch.setattr(_training.FusionNet, "run_single_epoch", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        clf = fast_clf(**STOPPING).fit(X, y)
    assert clf.best_epoch_ in (0, 1)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_member_seeds_make_fits_reproducible():
    X, y = _table_data()
    a = fast_clf(**STOPPING, random_state=3).fit(X, y).predict_proba(X)
    b = fast_clf(**STOPPING, random_state=3).fit(X, y).predict_proba(X)
    c = fast_clf(**STOPPING, random_state=4).fit(X, y).predict_proba(X)
    assert_array_equal(a, b)
    assert not np.allclose(a, c)


# -- persistence of members ------------------------------------------------------------------
def test_save_load_keeps_every_member(tmp_path):
    X, y = _table_data()
    clf = fast_clf(**STOPPING).fit(X, y)
    clf.save(tmp_path / "model")
    loaded = MultimodalFusionClassifier.load(tmp_path / "model")
    assert loaded.ensemble_size_ == 5
    assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6, atol=1e-7)


def test_load_reads_the_single_network_format_1(tmp_path):
    from safetensors.torch import load_file, save_file

    X, y = make_multimodal(missing=False)
    clf = fast_clf().fit(X, y)
    folder = tmp_path / "model"
    clf.save(folder)
    # rewrite it as the first format wrote it: one network, unprefixed keys, encoders
    # under their modality's name
    weights = load_file(str(folder / "model.safetensors"))
    names = list(clf.modalities_)

    def old_key(key):
        key = key.removeprefix("members.0.")
        for i, name in enumerate(names):
            key = key.replace(f"encoders.{i}.", f"encoders.{name}.")
        return key

    save_file({old_key(k): v for k, v in weights.items() if k.startswith("members.0.")},
              str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 1
    # format 1 had no ensemble size, modality order, package version or checksum
    for key in ("ensemble_size", "modality_order", "package_version", "weights_sha256"):
        del config[key]
    (folder / "config.json").write_text(json.dumps(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = MultimodalFusionClassifier.load(folder)
    assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6, atol=1e-7)
