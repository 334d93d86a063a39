"""tune with several worker processes sharing one study: PostgreSQL, JournalStorage, heartbeat.

Each test starts worker processes (``python tests/test_tuning_distributed.py SPEC``, the
``__main__`` block below) that call :func:`~mmfusion_sklearn.tuning.tune` on the same
storage and study at the same moment (they wait for each other at a file barrier), then
checks the study: every trial finished (none left RUNNING or WAITING), distinct trial
numbers, trials from every worker, a total between ``n_trials`` and ``n_trials +
workers - 1`` (what MaxTrialsCallback allows: each other worker may finish the trial it
had started when the study filled up), and a last ``tune`` in this process that runs no
trial and refits the best parameters.

The PostgreSQL server is a real one, started for this module in a temporary folder
(:mod:`benchmarks._postgres`); where PostgreSQL is not installed the tests skip, unless
``MMFUSION_REQUIRE_POSTGRES=1`` (CI sets it), when they fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
N_TRIALS = 4
SPACE = {"lr": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)}
PARAMS = {"embed_dim": 16, "max_epochs": 3, "pretrain_epochs": 0, "batch_size": 32,
          "ensemble_size": 1, "device": "cpu", "random_state": 0, "n_threads": 1}
FINISHED = ("COMPLETE", "PRUNED")


def tables(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = {"a": rng.normal(size=(n, 3)) + y[:, None], "b": rng.normal(size=(n, 2)) - y[:, None]}
    return X, y


def make_storage(spec: dict):
    """The storage a spec names: a URL, an RDBStorage with heartbeat, or a journal file."""
    if spec["kind"] == "url":
        return spec["url"]
    if spec["kind"] == "heartbeat":
        storages = optuna.storages
        # optuna >= 4.9 renamed the callback and its keyword; 3.6 has only the old names
        retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)
        keyword = "heartbeat_stale_trial_callback"
        if retry is None:
            retry, keyword = storages.RetryFailedTrialCallback, "failed_trial_callback"
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return storages.RDBStorage(spec["url"], heartbeat_interval=1, grace_period=3,
                                       **{keyword: retry(max_retry=1)})
    if spec["kind"] == "journal":
        journal = getattr(optuna.storages, "journal", None)
        if journal is not None and hasattr(journal, "JournalFileBackend"):  # optuna >= 4
            backend = journal.JournalFileBackend(spec["path"])
        else:  # optuna 3.6
            backend = optuna.storages.JournalFileStorage(spec["path"])
        return optuna.storages.JournalStorage(backend)
    raise ValueError(f"unknown storage kind {spec['kind']!r}")


def _worker(spec: dict) -> None:
    """One worker process: wait for the others, then tune."""
    import torch

    from mmfusion_sklearn import MultimodalFusionClassifier
    from mmfusion_sklearn.tuning import tune

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = tables()
    clf = MultimodalFusionClassifier(**{**PARAMS, **spec.get("params", {})})
    if spec.get("slow_epoch_s"):  # a trial long enough to be killed in
        from mmfusion_sklearn._training import nets

        original = nets.FusionNet.run_single_epoch

        def slow(self, *args, **kwargs):
            time.sleep(spec["slow_epoch_s"])
            return original(self, *args, **kwargs)

        nets.FusionNet.run_single_epoch = slow
    barrier = Path(spec["barrier"])
    (barrier / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("ready-*"))) < spec["n_workers"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the other workers never became ready")
        time.sleep(0.01)
    start = time.monotonic()
    result = tune(clf, X, y, n_trials=spec["n_trials"], cv=2, search_space=SPACE,
                  storage=make_storage(spec["storage"]), study_name=spec["study_name"],
                  random_state=spec["seed"], refit=False)
    print(json.dumps({"pid": os.getpid(), "seconds": time.monotonic() - start,
                      "seen": len(result.study.trials)}))


def start_workers(tmp_path: Path, storage: dict, n_workers: int, study_name: str,
                  n_trials: int = N_TRIALS, params: dict | None = None,
                  slow_epoch_s: float = 0.0) -> list:
    barrier = tmp_path / f"barrier-{study_name}"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    workers = []
    for index in range(n_workers):
        spec = {"storage": storage, "study_name": study_name, "n_trials": n_trials,
                "seed": index, "barrier": str(barrier), "n_workers": n_workers,
                "params": params or {}, "slow_epoch_s": slow_epoch_s}
        workers.append(subprocess.Popen(
            [sys.executable, __file__, json.dumps(spec)], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return workers


def wait_for(workers: list, timeout: float = 120) -> list[dict]:
    outputs = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=timeout)
            assert worker.returncode == 0, f"worker {worker.pid} failed:\n{err[-4000:]}"
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return outputs


def check_study(study, n_trials: int, n_workers: int, pids) -> None:
    """No trial lost or duplicated; each worker ran some; the total within the bound."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    assert all(state in FINISHED for state in states), states  # none RUNNING or WAITING
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), numbers  # distinct, no gap
    assert len({t._trial_id for t in trials}) == len(trials)
    # MaxTrialsCallback stops each worker after the trial that fills the study; the
    # others finish the trial they are running: at most n_workers - 1 more
    assert n_trials <= len(trials) <= n_trials + n_workers - 1, len(trials)
    ran = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials}
    assert ran == set(pids), (ran, pids)
    # each trial's parameters and scores were recorded once, by the worker that ran it
    assert all(len(t.user_attrs["cv_scores"]) == 2 for t in trials)
    assert all(t.value == pytest.approx(np.mean(t.user_attrs["cv_scores"])) for t in trials
               if t.state.name == "COMPLETE")


def check_refit(storage, study_name: str, n_before: int) -> None:
    """A last tune on the full study runs no trial and refits the best parameters."""
    from mmfusion_sklearn import MultimodalFusionClassifier
    from mmfusion_sklearn.tuning import tune

    X, y = tables()
    result = tune(MultimodalFusionClassifier(**PARAMS), X, y, n_trials=N_TRIALS, cv=2,
                  search_space=SPACE, storage=storage, study_name=study_name)
    assert len(result.study.trials) == n_before  # nothing new
    assert result.best_params_ == result.study.best_params
    assert result.best_estimator_.lr == pytest.approx(result.study.best_params["lr"])
    assert result.best_estimator_.predict_proba(X).shape == (60, 2)


@pytest.fixture(scope="module")
def postgres_url():
    """A real PostgreSQL server for this module; its SQLAlchemy URL."""
    from benchmarks._postgres import postgres_server, unavailable_reason

    reason = unavailable_reason()
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        reason = "the psycopg2 driver (the distributed extra) is not installed"
    if reason is not None:
        if os.environ.get("MMFUSION_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"MMFUSION_REQUIRE_POSTGRES=1, but {reason}")
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture(autouse=True)
def quiet_optuna():
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(before)


def test_two_workers_share_a_postgresql_study(postgres_url, tmp_path):
    # the first thing either worker does is create the tables and the study, together
    storage = {"kind": "url", "url": postgres_url}
    workers = start_workers(tmp_path, storage, 2, "pg")
    outputs = wait_for(workers)
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    check_study(study, N_TRIALS, 2, [o["pid"] for o in outputs])
    check_refit(postgres_url, "pg", len(study.trials))


def test_two_workers_share_a_journal_file(tmp_path):
    path = tmp_path / "journal.log"
    workers = start_workers(tmp_path, {"kind": "journal", "path": str(path)}, 2, "journal")
    outputs = wait_for(workers)
    storage = make_storage({"kind": "journal", "path": str(path)})
    study = optuna.load_study(study_name="journal", storage=storage)
    check_study(study, N_TRIALS, 2, [o["pid"] for o in outputs])
    check_refit(storage, "journal", len(study.trials))


def test_a_killed_workers_trial_fails_on_its_heartbeat_and_is_retried(postgres_url, tmp_path):
    from mmfusion_sklearn import MultimodalFusionClassifier
    from mmfusion_sklearn.tuning import tune

    spec = {"kind": "heartbeat", "url": postgres_url}
    # a trial long enough to be killed in: every epoch of this worker sleeps (its
    # estimator is the one the study resumes with, as the fingerprint demands)
    (victim,) = start_workers(tmp_path, spec, 1, "hb", n_trials=2, slow_epoch_s=5.0)
    storage = make_storage(spec)
    deadline = time.monotonic() + 60
    running = []
    try:
        while not running:
            assert victim.poll() is None, victim.communicate()[1][-4000:]
            assert time.monotonic() < deadline, "the worker never started a trial"
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="hb", storage=storage)
            except KeyError:  # not created yet
                continue
            # its objective has begun and drawn its parameters (killed earlier, the
            # trial would have none for the retry to repeat)
            running = [t for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                       if "worker" in t.user_attrs and t.params]
        victim.send_signal(signal.SIGKILL)
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.communicate()
    (killed,) = running
    assert killed.user_attrs["worker"].endswith(f":{victim.pid}")
    time.sleep(4)  # past the grace period: its heartbeat is stale
    X, y = tables()
    result = tune(MultimodalFusionClassifier(**PARAMS), X, y, n_trials=2, cv=2,
                  search_space=SPACE, storage=storage, study_name="hb", random_state=1)
    trials = {t.number: t for t in result.study.trials}
    assert trials[killed.number].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    assert retries[0].state.name == "COMPLETE"
    assert retries[0].params == killed.params
    states = [t.state.name for t in trials.values() if t.number != killed.number]
    assert states == ["COMPLETE", "COMPLETE"]  # the retry and one new trial: n_trials = 2
    assert result.best_estimator_.predict(X).shape == (60,)


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
