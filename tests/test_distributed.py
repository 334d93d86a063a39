"""Data-parallel training under torchrun (DDP, gloo on the CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError

from mmfusion_sklearn import MultimodalFusionClassifier
from mmfusion_sklearn._training.distributed import (
    DistributedContext,
    MethodCall,
    launched_world_size,
    main_process,
    resolve_distributed,
)
from mmfusion_sklearn._training.nets import agree_on_pass

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _ddp_fit import cohort, estimator  # noqa: E402

#: small and quick: two members, a few epochs of each stage
PARAMS = {"embed_dim": 16, "max_epochs": 12, "pretrain_epochs": 2, "ensemble_size": 2}

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="this torch build has no torch.distributed")


def _torchrun(out: Path, *args: str, nproc: int = 2) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(HERE / "_ddp_fit.py"), str(out), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Two gloo processes fitting the same estimator under torchrun."""
    out = tmp_path_factory.mktemp("ddp")
    _torchrun(out, "--params", json.dumps(PARAMS))
    return out, [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


def test_ranks_end_with_identical_weights_and_predictions(ddp_run):
    _, (rank0, rank1) = ddp_run
    assert int(rank0["world"]) == int(rank1["world"]) == 2
    assert str(rank0["digest"]) == str(rank1["digest"])
    np.testing.assert_array_equal(rank0["proba"], rank1["proba"])
    # early stopping and the epoch losses agree, since they are reduced over the ranks
    assert int(rank0["best_epoch"]) == int(rank1["best_epoch"])
    np.testing.assert_array_equal(rank0["pooled"], rank1["pooled"])
    np.testing.assert_array_equal(rank0["train_loss"], rank1["train_loss"])
    # a pickle of the fitted model holds nothing of the process group
    np.testing.assert_array_equal(rank0["proba"], rank0["unpickled"])


def test_the_regressor_trains_under_ddp_to_identical_ranks(tmp_path):
    _torchrun(tmp_path, "--task", "regression", "--params", json.dumps(PARAMS))
    rank0, rank1 = (dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2))
    assert int(rank0["world"]) == 2 and len(rank0["pooled"]) > 0
    assert str(rank0["digest"]) == str(rank1["digest"])
    np.testing.assert_array_equal(rank0["proba"], rank1["proba"])  # predictions
    np.testing.assert_array_equal(rank0["pooled"], rank1["pooled"])
    assert np.isfinite(rank0["proba"]).all() and rank0["proba"].ndim == 1
    from mmfusion_sklearn import load

    assert type(load(tmp_path / "model_rank0")).__name__ == "MultimodalFusionRegressor"


def test_the_survival_model_trains_under_ddp_to_identical_ranks(tmp_path):
    _torchrun(tmp_path, "--task", "survival", "--params", json.dumps(PARAMS))
    rank0, rank1 = (dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2))
    assert int(rank0["world"]) == 2 and len(rank0["pooled"]) > 0
    assert str(rank0["digest"]) == str(rank1["digest"])
    # risk scores and survival curves (Breslow baselines fitted on each rank)
    np.testing.assert_array_equal(rank0["proba"], rank1["proba"])
    np.testing.assert_array_equal(rank0["pooled"], rank1["pooled"])
    assert np.isfinite(rank0["proba"]).all() and rank0["proba"].shape[1] > 2
    from mmfusion_sklearn import load

    loaded = load(tmp_path / "model_rank0")
    assert type(loaded).__name__ == "MultimodalFusionSurvivalAnalysis"


def test_save_writes_on_rank_zero_only_and_loads_alone(ddp_run):
    out, (rank0, _) = ddp_run
    assert (out / "model_rank0" / "model.safetensors").is_file()
    assert not (out / "model_rank1").exists()
    _, _, X_test, _ = cohort()
    loaded = MultimodalFusionClassifier.load(out / "model_rank0")
    np.testing.assert_allclose(loaded.predict_proba(X_test), rank0["proba"], atol=1e-6)


def test_quality_within_noise_of_a_single_process_fit(ddp_run):
    _, (rank0, _) = ddp_run
    X, y, X_test, y_test = cohort()
    single = estimator(**PARAMS).fit(X, y).predict_proba(X_test)
    auroc = {k: roc_auc_score(y_test, p[:, 1]) for k, p in
             (("ddp", rank0["proba"]), ("single", single))}
    loss = {k: log_loss(y_test, p) for k, p in (("ddp", rank0["proba"]), ("single", single))}
    # seeds alone move these figures by about 0.01 (AUROC) and 0.03 (log loss) here
    assert auroc["ddp"] > 0.95 and auroc["single"] > 0.95, auroc
    assert abs(auroc["ddp"] - auroc["single"]) < 0.03, auroc
    assert abs(loss["ddp"] - loss["single"]) < 0.1, loss


def test_distributed_false_trains_each_process_alone(tmp_path):
    _torchrun(tmp_path, "--distributed", "false", "--params",
              json.dumps({**PARAMS, "max_epochs": 2, "pretrain_epochs": 0}))
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    assert [int(r["world"]) for r in ranks] == [1, 1]  # no process group was started
    # each rank saved its own model
    assert (tmp_path / "model_rank0").is_dir() and (tmp_path / "model_rank1").is_dir()


# -- without torchrun ------------------------------------------------------------------
def test_single_process_is_not_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launched_world_size() == 1
    assert resolve_distributed("auto", torch.device("cpu")) is None
    assert resolve_distributed(False, torch.device("cpu")) is None
    assert main_process()
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert resolve_distributed(False, torch.device("cpu")) is None  # False: never


def test_distributed_true_needs_several_processes(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    X, y, _, _ = cohort()
    clf = MultimodalFusionClassifier(distributed=True, max_epochs=1)
    with pytest.raises(ValueError, match="distributed=True needs several processes.*torchrun"):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_")


def test_distributed_parameter_is_validated():
    X, y, _, _ = cohort()
    with pytest.raises(InvalidParameterError, match="'distributed' parameter"):
        MultimodalFusionClassifier(distributed="yes").fit(X, y)


@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (7, 3), (1, 2)])
def test_training_order_shards_every_row_with_equal_counts(n, world):
    ranks = [DistributedContext(r, world, torch.device("cpu"), "gloo") for r in range(world)]
    orders = [ctx.training_order(n, seed=5) for ctx in ranks]
    assert len({len(order) for order in orders}) == 1  # same number of steps everywhere
    assert set(torch.cat(orders).tolist()) == set(range(n))
    assert not torch.equal(ranks[0].training_order(n, seed=5),
                           ranks[0].training_order(n, seed=6)) or n == 1
    shards = [ctx.shard(n) for ctx in ranks]
    assert sorted(torch.cat(shards).tolist()) == list(range(n))  # held out once, no padding
    assert ranks[0].batch_size(64) * world >= 64 and ranks[0].batch_size(1) == 1


class _TwoRanks(DistributedContext):
    """A rank whose partner saw ``other`` (a stand-in for all_reduce)."""

    def __init__(self, other):
        super().__init__(0, 2, torch.device("cpu"), "gloo")
        self.other = other

    def all_reduce_sum(self, values):
        return [a + b for a, b in zip(values, self.other)]


def test_agree_on_pass_replaces_local_records_by_the_pooled_mean():
    from skorch.history import History

    history = History()
    history.new_epoch()
    for size, loss in ((4, 1.0), (2, 4.0)):
        history.new_batch()
        history.record_batch("valid_batch_size", size)
        history.record_batch("valid_loss", loss)
    # the other rank: 6 rows with a mean loss of 0.5
    agree_on_pass(history, "valid", ("valid_loss",), _TwoRanks([3.0, 6.0]))
    assert [b["valid_loss"] for b in history[-1]["batches"]] == [(4 * 1.0 + 2 * 4.0 + 3.0) / 12] * 2
    # a rank that had no batch gets one holding the pooled mean
    empty = History()
    empty.new_epoch()
    agree_on_pass(empty, "valid", ("valid_loss",), _TwoRanks([3.0, 6.0]))
    assert empty[-1]["batches"] == [{"valid_batch_size": 6, "valid_loss": 0.5}]


def test_method_call_runs_the_named_method():
    network = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert torch.equal(MethodCall(network)("forward", x), network(x))
