"""tune when its database goes away: a clear error, and the lost trial retried on resume.

A real PostgreSQL server for this module (its own data folder, a free port) is stopped
with ``pg_ctl stop -m immediate`` in the middle of a trial and started again on the same
data folder, as a database restart would. Where PostgreSQL is not installed the tests
that need it skip, unless ``MMFUSION_REQUIRE_POSTGRES=1`` (CI sets it), when they fail.
Heartbeats run at 1 s with a grace period of 2 s here (30 s and 120 s in use).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest

from mmfusion_sklearn import MultimodalFusionClassifier, tuning
from mmfusion_sklearn._training import nets

TINY = {"embed_dim": 8, "max_epochs": 3, "pretrain_epochs": 0, "batch_size": 32,
        "ensemble_size": 1, "device": "cpu", "random_state": 0, "n_threads": 1}
SPACE = {"lr": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)}
PASSWORD = "s3cret-pw"  # the server trusts local connections: any password is accepted
STUDY = "lost"
FINISHED = ("COMPLETE", "PRUNED")


def tables(n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = {"a": rng.normal(size=(n, 3)) + y[:, None], "b": rng.normal(size=(n, 2)) - y[:, None]}
    return X, y


def _tune(url, n_trials, **kwargs):
    X, y = kwargs.pop("data", None) or tables()
    return tuning.tune(MultimodalFusionClassifier(**TINY), X, y, n_trials=n_trials, cv=2,
                       search_space=SPACE, storage=url, study_name=STUDY, random_state=0,
                       refit=False, **kwargs)


def _unavailable() -> str | None:
    from benchmarks._postgres import unavailable_reason

    reason = unavailable_reason()
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        reason = "the psycopg2 driver (the distributed extra) is not installed"
    return reason


def _skip_without_postgres() -> None:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("MMFUSION_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"MMFUSION_REQUIRE_POSTGRES=1, but {reason}")
        pytest.skip(reason)


class RestartableServer:
    """A PostgreSQL server that can be stopped and started again on its data folder."""

    def __init__(self) -> None:
        from benchmarks._postgres import SYSTEM_USER, _check, _free_port, _run, find_bindir

        self._check, self._run = _check, _run
        self.bindir = find_bindir()
        self.as_user = SYSTEM_USER if os.geteuid() == 0 else None
        self.folder = Path(tempfile.mkdtemp(prefix="mmfusion-postgres-faults-"))
        if self.as_user is not None:  # PostgreSQL refuses root: it runs as postgres
            entry = pwd.getpwnam(self.as_user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.data, self.log = self.folder / "data", self.folder / "server.log"
        self._check(self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U",
                               "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
                               "--no-sync"], self.as_user, timeout=60), "initdb")
        self.port = _free_port()
        self.running = False
        self.start()
        self._check(self._run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p",
                               str(self.port), "-U", "postgres", "tuning"], None, timeout=60),
                    "createdb", self.log)
        # a plain postgresql:// URL with a password, as a user would write it
        self.url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/tuning"

    def _pg_ctl(self, *args: str) -> None:
        self._check(self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w",
                               "-t", "60", *args], self.as_user, timeout=70),
                    f"pg_ctl {args[-1]}", self.log)

    def start(self) -> None:
        # commits are durable (synchronous_commit stays on, as by default): a stop in
        # immediate mode loses none (fsync is for a machine's crash, not the server's)
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-k {shlex.quote(str(self.folder))} -c fsync=off -c full_page_writes=off")
        self._pg_ctl("-l", str(self.log), "-o", options, "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """Stop at once: connections drop, nothing is shut down cleanly (a crash)."""
        self._pg_ctl("-m", mode, "stop")
        self.running = False

    def close(self) -> None:
        try:
            if self.running:
                self.stop("fast")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def lost_mid_study():
    """A study whose server died in its second trial, and the server started again.

    Yields what the failed ``tune`` raised, the inputs before and after, the trials
    the restarted server holds, and when the server went down.
    """
    _skip_without_postgres()
    server = RestartableServer()
    X, y = tables()
    before = ({k: v.copy() for k, v in X.items()}, y.copy())
    original = nets.FusionNet.run_single_epoch
    calls = {"n": 0, "stopped_at": None}

    def dies_in_trial_1(self, iterator, training, *args, **kwargs):
        calls["n"] += training
        if training and calls["n"] == 8:  # trial 1 (6 training epochs a trial), epoch 2
            server.stop()
            calls["stopped_at"] = time.monotonic()
        return original(self, iterator, training, *args, **kwargs)

    try:
        with pytest.MonkeyPatch.context() as heartbeats:
            heartbeats.setattr(tuning, "_HEARTBEAT_INTERVAL", 1)
            heartbeats.setattr(tuning, "_GRACE_PERIOD", 2)
            with pytest.MonkeyPatch.context() as patch, pytest.raises(Exception) as raised:
                patch.setattr(nets.FusionNet, "run_single_epoch", dies_in_trial_1)
                _tune(server.url, 3, data=(X, y))
            epochs = calls["n"]
            server.start()
            study = optuna.load_study(study_name=STUDY,
                                      storage=tuning.postgresql_driver_url(server.url))
            yield {"server": server, "raised": raised.value, "epochs": epochs,
                   "before": before, "after": (X, y), "stopped_at": calls["stopped_at"],
                   "trials": study.get_trials()}
    finally:
        server.close()


@pytest.fixture(autouse=True)
def quiet_optuna():
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the failed trials are expected
    yield
    optuna.logging.set_verbosity(before)


def test_a_database_lost_mid_study_raises_a_connection_error_that_says_how_to_resume(
        lost_mid_study):
    import sqlalchemy

    error = lost_mid_study["raised"]
    assert type(error) is ConnectionError, repr(error)  # not Optuna's UnboundLocalError
    message = str(error)
    port = lost_mid_study["server"].port
    assert f"postgresql://postgres:***@127.0.0.1:{port}/tuning" in message  # names it
    assert PASSWORD not in message
    assert "OperationalError: (psycopg2.OperationalError)" in message  # the reason
    assert f"study_name={STUDY!r}" in message and "call tune again" in message
    assert "marked failed and run again" in message
    # the database's own error is the cause, for the traceback
    assert isinstance(error.__cause__, sqlalchemy.exc.OperationalError)
    assert lost_mid_study["epochs"] == 8  # it stopped in the trial that lost the database
    # the finished trial is kept; the one that ran is left RUNNING (Optuna could not
    # write anything more)
    states = [t.state.name for t in lost_mid_study["trials"]]
    assert states == ["COMPLETE", "RUNNING"], states
    (X0, y0), (X1, y1) = lost_mid_study["before"], lost_mid_study["after"]
    assert set(X1) == set(X0) and all(np.array_equal(X1[k], X0[k]) for k in X0)
    assert np.array_equal(y1, y0)  # inputs unchanged


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_the_trial_left_running_is_failed_and_retried_on_resume_live_ones_are_not(
        lost_mid_study):
    from optuna.trial import TrialState

    server = lost_mid_study["server"]
    lost = lost_mid_study["trials"][1]
    assert lost.params  # drawn before the database went (and kept: commits are durable)
    # a live worker of the same study, whose trial beats well within the grace period
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        live_storage = optuna.storages.RDBStorage(
            tuning.postgresql_driver_url(server.url), heartbeat_interval=1)
    live_study = optuna.load_study(study_name=STUDY, storage=live_storage)
    live = live_study.ask()
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            live_storage.record_heartbeat(live._trial_id)
            stop.wait(0.3)

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    try:
        # past the grace period (2 s here) since the lost trial's last heartbeat
        time.sleep(max(0.0, lost_mid_study["stopped_at"] + 3 - time.monotonic()))
        result = _tune(server.url, 3)
        trials = {t.number: t for t in result.study.get_trials()}
        assert trials[live.number].state == TrialState.RUNNING  # left alone
    finally:
        stop.set()
        beating.join()
    live_study.tell(live, state=TrialState.FAIL)
    assert trials[lost.number].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retries) == 1 and retries[0].params == lost.params
    assert retries[0].state.name in FINISHED
    finished = [t for t in trials.values() if t.state.name in FINISHED]
    assert len(finished) == 3  # n_trials: trial 0, the retry and one new trial
    running = [t.number for t in trials.values() if t.state == TrialState.RUNNING]
    assert running == [live.number]  # nothing else left running


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_heartbeats_skip_a_lost_database_and_resume_with_it(lost_mid_study):
    from optuna.trial import TrialState

    server = lost_mid_study["server"]
    storage = tuning._open_storage(server.url)
    study = optuna.create_study(study_name="beats", storage=storage)
    trial = study.ask()

    def last_beat():
        with storage._backend.engine.connect() as connection:
            return connection.exec_driver_sql(
                "SELECT heartbeat FROM trial_heartbeats WHERE trial_id = %s",
                (trial._trial_id,)).scalar()

    storage.record_heartbeat(trial._trial_id)
    first = last_beat()
    server.stop()
    try:
        storage.record_heartbeat(trial._trial_id)  # skipped: Optuna's thread lives on
    finally:
        server.start()
    time.sleep(0.01)
    storage.record_heartbeat(trial._trial_id)  # the first write after the restart
    assert last_beat() > first
    study.tell(trial, state=TrialState.FAIL)


def test_a_database_restart_between_two_writes_goes_unnoticed(lost_mid_study):
    server = lost_mid_study["server"]
    original = nets.FusionNet.run_single_epoch
    calls = {"n": 0}

    def restarts_in_trial_1(self, iterator, training, *args, **kwargs):
        calls["n"] += training
        if training and calls["n"] == 8:  # the connections in the pool die
            server.stop()
            server.start()
        return original(self, iterator, training, *args, **kwargs)

    X, y = tables(seed=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nets.FusionNet, "run_single_epoch", restarts_in_trial_1)
        result = tuning.tune(MultimodalFusionClassifier(**TINY), X, y, n_trials=2, cv=2,
                             search_space=SPACE, storage=server.url, study_name="restart",
                             random_state=0, refit=False)
    assert calls["n"] >= 8
    assert [t.state.name for t in result.study.trials] == ["COMPLETE", "COMPLETE"]


def test_a_storage_that_cannot_be_reached_at_all_says_so(tmp_path):
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        if os.environ.get("MMFUSION_REQUIRE_POSTGRES") == "1":
            pytest.fail("MMFUSION_REQUIRE_POSTGRES=1, but psycopg2 is not installed")
        pytest.skip("the psycopg2 driver (the distributed extra) is not installed")
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://me:{PASSWORD}@127.0.0.1:{port}/studies"
    with pytest.raises(ConnectionError, match=r"storage postgresql://me:\*\*\*@127\.0\.0\.1"
                       ) as raised:
        _tune(url, 1)
    assert PASSWORD not in str(raised.value)
    assert "call tune again with the same storage and study_name='lost'" in str(raised.value)


def test_a_diverging_trial_still_fails_alone_and_other_errors_pass_unchanged(tmp_path,
                                                                             monkeypatch):
    from mmfusion_sklearn._training.ensemble import TrainingDivergedError

    original = nets.FusionNet.run_single_epoch
    calls = {"n": 0}

    def diverges_first(self, iterator, training, *args, **kwargs):
        calls["n"] += training
        if training and calls["n"] == 1:  # the first trial's first epoch
            raise TrainingDivergedError("The classification stage diverged at epoch 1")
        return original(self, iterator, training, *args, **kwargs)

    monkeypatch.setattr(nets.FusionNet, "run_single_epoch", diverges_first)
    url = f"sqlite:///{tmp_path / 'tuning.db'}"
    result = _tune(url, 2)
    states = [t.state.name for t in result.study.trials]
    assert states[0] == "FAIL" and states[1:] and set(states[1:]) == {"COMPLETE"}, states
    with pytest.raises(ValueError, match="holds trials for other data"):  # not wrapped
        _tune(url, 3, data=tables(seed=1))
