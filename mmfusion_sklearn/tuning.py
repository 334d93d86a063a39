"""Hyperparameter tuning with Optuna: a search space, a trial helper and :func:`tune`.

:func:`default_search_space` is a dict of Optuna distributions over the estimator's
parameters, usable as ``param_distributions`` of optuna-integration's
``OptunaSearchCV``; :func:`suggest_params` draws a dict for ``set_params`` from a
trial; :func:`tune` runs a whole study: cross-validated trials that report the
held-out loss epoch by epoch (so Optuna's pruners stop poor trials early),
stored in SQLite by default (calling again resumes the study), and the best
parameters refitted on all the data. It is one module (about 760 lines) because the
search space, the pruning callback and the study's bookkeeping (storage, resuming,
heartbeats, a lost database, the fingerprint that refuses other data) are one feature
that users read together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from optuna.storages import RDBStorage
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples
from skorch.callbacks import Callback

from ._data import MultimodalData
from ._scoring import CONCORDANCE, _named_scorer, is_survival_model
from ._training.ensemble import TrainingDivergedError
from ._training.runtime import torch_threads

__all__ = [
    "DEFAULT_STORAGE",
    "DEFAULT_STUDY_NAME",
    "PruningCallback",
    "TuningResult",
    "default_search_space",
    "suggest_params",
    "tune",
]

#: Where :func:`tune` keeps its study when ``storage`` is None: an SQLite file in the
#: current working folder.
DEFAULT_STORAGE = "sqlite:///mmfusion_sklearn_tuning.db"
#: The study :func:`tune` creates or resumes when ``study_name`` is None.
DEFAULT_STUDY_NAME = "mmfusion_sklearn"
#: What a study records about its data, so that resuming it with other data is refused.
_FINGERPRINT_KEY = "mmfusion_sklearn_data"
#: A storage URL opens with Optuna's heartbeats: each running trial records one every
#: _HEARTBEAT_INTERVAL seconds; a RUNNING trial whose last one is older than
#: _GRACE_PERIOD seconds (its process was killed, or lost the database) is marked failed
#: before the next trial of any worker starts, and run again with its parameters, at
#: most _MAX_RETRY times. A live trial misses four heartbeats before it counts as stale.
_HEARTBEAT_INTERVAL = 30
_GRACE_PERIOD = 120
_MAX_RETRY = 1


def default_search_space() -> dict[str, Any]:
    """Optuna distributions over the parameters worth tuning first.

    The ranges hold from about a hundred samples to a hundred thousand: the
    learning rate and weight decay (log scale), the width ``embed_dim``, the weight
    of the single-modality terms, the length and pairs of the contrastive stage, the
    fusion head, the batch size and the linear path.

    Returns
    -------
    dict of str to optuna.distributions.BaseDistribution
        Usable as ``param_distributions`` of ``OptunaSearchCV`` and by
        :func:`suggest_params`; edit a copy to narrow or widen it.

    Examples
    --------
    >>> from mmfusion_sklearn.tuning import default_search_space
    >>> sorted(default_search_space())[:3]
    ['batch_size', 'contrastive', 'embed_dim']
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    return {
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-1, log=True),
        "embed_dim": CategoricalDistribution([32, 64, 128, 256]),
        "unimodal_weight": FloatDistribution(0.0, 2.0),
        "pretrain_epochs": IntDistribution(0, 20, step=5),
        "contrastive": CategoricalDistribution(["fused", "unimodal"]),
        "fusion": CategoricalDistribution(["mlp", "transformer"]),
        "batch_size": CategoricalDistribution([32, 64, 128]),
        "linear_path": CategoricalDistribution([True, False]),
    }


def suggest_params(trial: Any, search_space: dict[str, Any] | None = None) -> dict[str, Any]:
    """Draw one value per parameter of ``search_space`` from an Optuna trial.

    Parameters
    ----------
    trial : optuna.trial.Trial
        The trial (inside an objective function).
    search_space : dict, default=None
        Parameter names to Optuna distributions; None is
        :func:`default_search_space`.

    Returns
    -------
    dict
        Ready for ``estimator.set_params(**params)``.

    Examples
    --------
    >>> import optuna
    >>> from mmfusion_sklearn.tuning import suggest_params
    >>> trial = optuna.create_study().ask()
    >>> params = suggest_params(trial)
    >>> 1e-4 <= params["lr"] <= 1e-2
    True
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space = default_search_space() if search_space is None else search_space
    params = {}
    for name, distribution in space.items():
        if isinstance(distribution, FloatDistribution):
            params[name] = trial.suggest_float(name, distribution.low, distribution.high,
                                               log=distribution.log, step=distribution.step)
        elif isinstance(distribution, IntDistribution):
            params[name] = trial.suggest_int(name, distribution.low, distribution.high,
                                             log=distribution.log, step=distribution.step)
        elif isinstance(distribution, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, distribution.choices)
        else:
            raise TypeError(
                f"search_space[{name!r}] must be an Optuna FloatDistribution, "
                f"IntDistribution or CategoricalDistribution. Got {distribution!r} instead."
            )
    return params


class PruningCallback(Callback):
    """Report the held-out loss to an Optuna trial each epoch; prune if told.

    A skorch callback for the ``callbacks`` parameter of
    :class:`~mmfusion_sklearn.MultimodalFusionClassifier`,
    :class:`~mmfusion_sklearn.MultimodalFusionRegressor` and
    :class:`~mmfusion_sklearn.MultimodalFusionSurvivalAnalysis`. It holds the trial, so it
    is not copied per member: it runs once per task-stage epoch, when every member has
    trained it. The value reported is ``sign * pooled_valid_log_loss`` (classifier),
    ``sign * pooled_valid_squared_error`` (regressor, on the standardised target) or
    ``sign * pooled_valid_cox_loss`` (survival, the Cox loss per event):
    the loss of the full input on every member's held-out rows (minus the loss by
    default, so that higher is better like a scikit-learn score in a maximised study).
    Not the training objective, whose scale grows with ``unimodal_weight`` and the
    number of modalities, so that trials with different settings compare fairly.

    Parameters
    ----------
    trial : optuna.trial.Trial
        The trial to report to.
    sign : {-1, 1}, default=-1
        -1 for a study that maximises a score, 1 for one that minimises a loss.
    step_offset : int, default=0
        Added to the epoch number to form the reported step.

    Examples
    --------
    >>> import optuna
    >>> from mmfusion_sklearn.tuning import PruningCallback
    >>> callback = PruningCallback(optuna.create_study().ask())
    >>> callback.sign
    -1
    """

    def __init__(self, trial: Any, sign: int = -1, step_offset: int = 0) -> None:
        self.trial = trial
        self.sign = sign
        self.step_offset = step_offset

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        """Report this epoch's held-out loss; raise TrialPruned when told.

        Parameters
        ----------
        net : FusionNet
            The first member's skorch net; its history's last row is the epoch.
        **kwargs
            skorch's epoch arguments (unused).
        """
        import optuna

        row = net.history[-1]
        # the full input's held-out loss: log loss for classes, squared error for
        # regression, Cox loss for survival (see FusionNet.full_loss_key)
        key = f"pooled_{getattr(net, 'full_loss_key', 'valid_log_loss')}"
        if key not in row:  # no held-out rows: nothing to prune on
            return
        value = self.sign * float(row[key])
        step = self.step_offset + int(row["epoch"])
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"Pruned at epoch {row['epoch']} (value {value:.4g}).")


@dataclass
class TuningResult:
    """What :func:`tune` returns.

    Parameters
    ----------
    study : optuna.study.Study
        The study.
    best_params_ : dict
        Parameters of the best trial.
    best_score_ : float
        Its mean cross-validated score.
    best_estimator_ : estimator or None, default=None
        The refitted estimator.

    Attributes
    ----------
    study : optuna.study.Study
        The study, with every trial of this call and of earlier ones (resumed).
    best_params_ : dict
        Parameters of the best trial.
    best_score_ : float
        Its mean cross-validated score.
    best_estimator_ : estimator or None
        A clone of the estimator with ``best_params_``, fitted on all the data (None
        with ``refit=False``).
    """

    study: Any
    best_params_: dict[str, Any]
    best_score_: float
    best_estimator_: Any = None

    def trials_dataframe(self):
        """The study's trials as a DataFrame.

        Returns
        -------
        pandas.DataFrame
            ``study.trials_dataframe()``: one row per trial, its value, parameters,
            state and user attributes (``cv_scores``, and ``worker``: the host and
            process id that ran it).
        """
        return self.study.trials_dataframe()


def tune(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    n_trials: int,
    cv: Any = 5,
    scoring: Any = None,
    storage: Any = None,
    study_name: str | None = None,
    pruner: Any = None,
    timeout: float | None = None,
    n_jobs: int = 1,
    search_space: dict[str, Any] | None = None,
    sampler: Any = None,
    random_state: int | None = None,
    refit: bool = True,
) -> TuningResult:
    """Tune an estimator's parameters with an Optuna study.

    Each trial draws parameters (:func:`suggest_params`), cross-validates a clone of
    ``estimator`` with them and returns the mean score. In the first fold, the
    task stage reports minus the held-out loss (log loss for classes, squared error
    for regression, the Cox loss for survival) at every epoch
    (:class:`PruningCallback`), so that ``pruner`` stops trials that fall behind;
    that needs ``early_stopping=True`` (the held-out rows), which is the default.
    A trial whose training diverges counts as failed; the study goes on.

    Parameters
    ----------
    estimator : MultimodalFusionClassifier, Regressor or SurvivalAnalysis
        The estimator whose clones are tuned; its parameters outside the search
        space stay as they are.
    X : dict, list of dict, MultimodalData, DataFrame or array-like
        Training samples, in any form the estimator accepts.
    y : array-like of shape (n_samples,)
        Labels, target values for a regressor, or a survival model's structured y.
    n_trials : int
        The number of finished (complete or pruned) trials the study should hold:
        a resumed study that already has them runs no more; several processes that
        share a study stop once it has them, each after the trial it is running, so
        that W processes may leave up to ``n_trials + W - 1`` finished trials.
    cv : int or cross-validation generator, default=5
        As in ``cross_val_score`` (an int is a ``StratifiedKFold`` for a classifier, a
        ``KFold`` for a regressor, and a ``StratifiedKFold`` by event for a survival
        model).
    scoring : str or callable, default=None
        A scikit-learn scorer, or ``"concordance_index"``; None is ``"roc_auc"`` for
        two classes, ``"neg_log_loss"`` for more, ``"r2"`` for a regressor and
        ``"concordance_index"`` (Harrell's) for a survival model. Higher is better.
    storage : str, optuna storage or None, default=None
        Any Optuna storage URL (``"sqlite:///tuning.db"``,
        ``"postgresql://..."``) or object (e.g. ``optuna.storages.JournalStorage``);
        None is :data:`DEFAULT_STORAGE`, an SQLite file in the current folder. Several
        processes or machines that pass one database URL (or a journal file on a
        shared file system) and one ``study_name`` share the study; workers that
        start together on an empty database retry while another creates Optuna's
        tables. Each trial records the host and process that ran it (user attribute
        ``worker``). A URL opens with Optuna's heartbeats: a trial that has recorded
        none for 120 seconds (its process was killed, or lost the database) is marked
        failed before the next trial starts and run again once with its parameters;
        live workers' trials are left alone. A storage object keeps its own settings.
    study_name : str, default=None
        The study to create or resume; None is :data:`DEFAULT_STUDY_NAME`. A study
        that holds trials for other data (values, samples, modalities, classes,
        scoring), another base estimator or other fixed parameters, or other CV folds
        is refused. Resuming draws new parameters; a Ctrl-C stops ``tune``, the
        interrupted trial failed (never complete).
    pruner : optuna.pruners.BasePruner, default=None
        None is ``MedianPruner(n_startup_trials=5, n_warmup_steps=5)``: a trial is
        stopped when its value at an epoch falls below the median of earlier trials at
        that epoch, never before 5 trials have finished nor before its 5th epoch (the
        first epochs say little). ``optuna.pruners.NopPruner()`` disables pruning. A
        pruned trial's value in the study is its last reported value (minus a log
        loss), not a score.
    timeout : float, default=None
        Stop starting trials after this many seconds.
    n_jobs : int, default=1
        Trials run in parallel threads of this process (Optuna's ``n_jobs``); torch
        then uses the cores divided by ``n_jobs`` threads. For several processes or
        machines, run ``tune`` in each with one shared ``storage`` (and a different
        ``random_state``, or None, so that they do not draw the same parameters).
    search_space : dict, default=None
        Parameter names to Optuna distributions; None is
        :func:`default_search_space`.
    sampler : optuna.samplers.BaseSampler, default=None
        None is a ``TPESampler`` seeded with ``random_state``.
    random_state : int, default=None
        Seeds the default sampler.
    refit : bool, default=True
        Fit the best parameters on all of ``X`` (``best_estimator_``).

    Returns
    -------
    TuningResult
        ``study``, ``best_params_``, ``best_score_``, ``best_estimator_``.

    Raises
    ------
    ConnectionError
        The database of ``storage`` could not be reached, or went away mid-study (the
        message names it, its password masked). The study keeps its finished trials:
        call ``tune`` again with the same ``storage`` and ``study_name`` once the
        database is back to resume it.

    Examples
    --------
    >>> import numpy as np
    >>> import optuna
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> from mmfusion_sklearn.tuning import tune
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30)
    >>> X = {"a": rng.normal(size=(60, 3)) + y[:, None], "b": rng.normal(size=(60, 2))}
    >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
    ...                                  device="cpu", random_state=0)
    >>> space = {"lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)}
    >>> result = tune(clf, X, y, n_trials=2, cv=2, search_space=space,
    ...               storage=optuna.storages.InMemoryStorage(), random_state=0)
    >>> sorted(result.best_params_), result.best_estimator_.lr == result.best_params_["lr"]
    (['lr'], True)
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if not (isinstance(n_trials, (int, np.integer)) and not isinstance(n_trials, bool)
            and n_trials >= 1):
        raise ValueError(f"n_trials must be an int >= 1. Got {n_trials!r} instead.")
    if not (isinstance(n_jobs, (int, np.integer)) and (n_jobs >= 1 or n_jobs == -1)):
        raise ValueError(f"n_jobs must be an int >= 1, or -1. Got {n_jobs!r} instead.")
    space = default_search_space() if search_space is None else dict(search_space)
    known = set(estimator.get_params(deep=False))
    unknown = sorted(set(space) - known)
    if unknown:
        raise ValueError(
            f"search_space names parameters that {type(estimator).__name__} does not "
            f"have: {unknown}. Got {sorted(space)} instead."
        )
    data = MultimodalData(X) if isinstance(X, (dict, list)) else X
    y = np.asarray(y)
    n = _num_samples(data)
    if len(y) != n:
        raise ValueError(f"Number of samples in X ({n}) and y ({len(y)}) do not match.")
    classifier = is_classifier(estimator)
    survival = is_survival_model(estimator)
    if scoring is None:
        if survival:
            scoring = CONCORDANCE
        elif classifier:
            scoring = "roc_auc" if len(np.unique(y)) == 2 else "neg_log_loss"
        else:
            scoring = "r2"
    scorer = _named_scorer(scoring) if scoring == CONCORDANCE else check_scoring(
        estimator, scoring=scoring)
    if survival and y.dtype.names is not None:
        # folds stratified by event (the first field), as classes are for a classifier
        strata = np.asarray(y[y.dtype.names[0]]).astype(bool)
        folds = list(check_cv(cv, strata, classifier=True).split(np.zeros((n, 1)), strata))
    else:
        splitter = check_cv(cv, y, classifier=classifier)
        folds = list(splitter.split(np.zeros((n, 1)), y))

    workers = (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)
    # epoch-level reports need held-out rows and a callbacks parameter to carry them
    params = estimator.get_params(deep=False)
    prunable = "callbacks" in params and bool(params.get("early_stopping", False))
    # trials in threads share one process-wide thread count, set once around the study:
    # a fit left to the default gets that count, so that no fit measures the cores and
    # changes it under another's feet
    share = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    threaded = share is not None and "n_threads" in params and params["n_threads"] is None

    def objective(trial: Any) -> float:
        # which process ran the trial: with several workers, where to look when one fails
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = suggest_params(trial, space)
        scores = []
        for fold, (train, test) in enumerate(folds):
            model = clone(estimator).set_params(**params)
            if threaded:
                model.set_params(n_threads=share)
            if fold == 0 and prunable:
                model.set_params(callbacks=[*(model.callbacks or []),
                                            ("optuna_pruning", PruningCallback(trial))])
            model.fit(_safe_indexing(data, train), y[train])
            if getattr(model, "_interrupted", False):
                # the fit kept its best weights and warned; a tuning run stops instead,
                # and the truncated trial fails (it never counts as complete)
                raise KeyboardInterrupt(f"tune interrupted in trial {trial.number}")
            scores.append(float(scorer(model, _safe_indexing(data, test), y[test])))
        trial.set_user_attr("cv_scores", scores)
        return float(np.mean(scores))

    storage = DEFAULT_STORAGE if storage is None else storage
    study_name = DEFAULT_STUDY_NAME if study_name is None else study_name
    with _storage_errors(storage, study_name):
        study = optuna.create_study(
            storage=_open_storage(storage), study_name=study_name,
            sampler=sampler,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
            if pruner is None else pruner,
            direction="maximize", load_if_exists=True,
        )
        if sampler is None:
            # a resumed study goes on from its trials: the same seed would replay them
            seed = None if random_state is None else int(
                (int(random_state) * 1_000_003 + len(study.get_trials(deepcopy=False)))
                % (2**32))
            study.sampler = optuna.samplers.TPESampler(seed=seed)
        _check_fingerprint(study, {
            "n_samples": int(n),
            "classes": [str(c) for c in np.unique(y)] if classifier else (
                "survival" if survival else "continuous"),
            "modalities": _modality_names(data), "scoring": str(scoring),
            "n_folds": len(folds), "estimator": type(estimator).__name__,
            # other data of the same shape, another base estimator, another splitter
            "data": _digest(data, y), "folds": _digest_folds(folds),
            "fixed_params": _fixed_params(estimator, space),
        })
        finished = (TrialState.COMPLETE, TrialState.PRUNED)
        remaining = n_trials - len(study.get_trials(deepcopy=False, states=finished))
        if remaining > 0:
            # one trial at a time: each fit sets its own threads (its n_threads)
            with torch_threads(share) if share is not None else contextlib.nullcontext():
                study.optimize(
                    objective, n_trials=remaining, timeout=timeout, n_jobs=workers,
                    catch=(TrainingDivergedError,),
                    callbacks=[MaxTrialsCallback(n_trials, states=finished)],
                )
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            raise RuntimeError(
                f"No trial of study {study.study_name!r} completed (each was pruned or "
                "failed); see result.study.trials for their states and errors."
            )
        best = study.best_trial  # the last reads of the storage
    best_estimator = None
    if refit:
        best_estimator = clone(estimator).set_params(**best.params).fit(X, y)
    return TuningResult(study=study, best_params_=dict(best.params),
                        best_score_=float(best.value), best_estimator_=best_estimator)


def _open_storage(storage: Any, attempts: int = 5) -> Any:
    """An Optuna storage from a URL, with heartbeats, retried while others create its tables.

    Workers started together on an empty database all create Optuna's tables; on
    PostgreSQL the losers of that race fail (a duplicate type or table) where they
    would find the tables a moment later. A URL opens as a :class:`_HeartbeatStorage`
    (see ``_HEARTBEAT_INTERVAL``); storage objects are returned as they are, with the
    heartbeat settings they were made with.
    """
    import optuna

    if not isinstance(storage, str):
        return storage
    try:
        from sqlalchemy.exc import IntegrityError, ProgrammingError
    except ImportError:  # not a database URL optuna can open anyway: let it say so
        return optuna.storages.get_storage(storage)
    storage = postgresql_driver_url(storage)
    rng = np.random.default_rng()
    for attempt in range(attempts):
        try:
            # wrapped as optuna wraps a URL (a cache of this process's own trials)
            return optuna.storages.get_storage(_HeartbeatStorage.open(storage))
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(float(rng.uniform(0.1, 0.5)) * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


class _HeartbeatStorage(RDBStorage):
    """Optuna's RDBStorage whose heartbeats outlive a lost connection.

    Optuna records a running trial's heartbeat from a thread that ends at the first
    failed write: after a database restart, a trial that is still training would record
    none and be failed as stale by the other workers, then fail again when it reports
    its result. Here a failed heartbeat is skipped and the next one is tried an
    interval later, so only trials whose process is gone (or still cut off) go stale.
    Connections to a database server are tested before use.
    """

    @classmethod
    def open(cls, url: str) -> _HeartbeatStorage:
        """The storage of ``url`` with tune's heartbeat interval, grace period and retry.

        Parameters
        ----------
        url : str
            An SQLAlchemy URL.

        Returns
        -------
        _HeartbeatStorage
        """
        import optuna

        storages = optuna.storages
        # optuna >= 4.9 renamed the callback and its keyword; 3.6 has only the old names
        retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)
        keyword = "heartbeat_stale_trial_callback"
        if retry is None:
            retry, keyword = storages.RetryFailedTrialCallback, "failed_trial_callback"
        # a database server's restart leaves dead connections in the pool: each is
        # tested before use (Optuna does so for MySQL only), so a worker whose next
        # write comes after the restart carries on
        engine = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(url, engine_kwargs=engine, heartbeat_interval=_HEARTBEAT_INTERVAL,
                       grace_period=_GRACE_PERIOD, **{keyword: retry(max_retry=_MAX_RETRY)})

    def record_heartbeat(self, trial_id: int) -> None:
        """Record the trial's heartbeat; skip it while the database cannot be reached.

        Parameters
        ----------
        trial_id : int
            The trial's id in the storage.
        """
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:
            if _storage_failure(exc) is None:
                raise


def _storage_failure(exc: BaseException) -> BaseException | None:
    """The database error behind ``exc`` when the storage was lost, else None.

    Looks through the chain of causes and contexts: Optuna raises something else on
    top, an ``UnboundLocalError`` from the clean-up of its ``_run_trial`` when it can
    neither record the failed trial nor read it back (optuna/optuna#5280, seen with
    optuna 5.1).
    """
    try:
        from sqlalchemy import exc as sa
    except ImportError:  # pragma: no cover (a dependency of optuna)
        return None
    lost = (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError)
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, lost) or (isinstance(exc, sa.DBAPIError)
                                     and exc.connection_invalidated):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _storage_label(storage: Any) -> str:
    """The storage as a user recognises it: its URL with any password masked."""
    url = storage if isinstance(storage, str) else getattr(
        storage, "url", getattr(getattr(storage, "_backend", None), "url", None))
    if not isinstance(url, str):
        return type(storage).__name__
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        parsed = parsed.set(query={key: "***" if "pass" in key.lower() else value
                                   for key, value in parsed.query.items()})
        return parsed.render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: mask user:password@ by hand
        return re.sub(r"(://[^/@:]*:)[^@]*@", r"\1***@", url)


@contextmanager
def _storage_errors(storage: Any, study_name: str) -> Iterator[None]:
    """Turn a database lost mid-study into a ``ConnectionError`` that says how to resume.

    Optuna cannot record the running trial as failed when its database is gone, and
    raised an ``UnboundLocalError`` of its own; the trial stays RUNNING in the database
    until heartbeats fail it (a URL storage, see ``_HEARTBEAT_INTERVAL``). Other
    errors, a Ctrl-C and a diverging trial pass unchanged.
    """
    try:
        yield
    except Exception as exc:
        lost = _storage_failure(exc)
        if lost is None:
            raise
        reason = str(lost).strip().splitlines()[0] if str(lost).strip() else repr(lost)
        if isinstance(storage, str):
            stale = (f"a trial this call left running is marked failed and run again once "
                     f"its last heartbeat is {_GRACE_PERIOD} s old")
        elif getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
            stale = ("a trial this call left running is marked failed once its heartbeat "
                     "is older than this storage's grace period")
        else:
            stale = ("a trial this call left running stays RUNNING: this storage object "
                     "has no heartbeat_interval")
        raise ConnectionError(
            f"The tuning storage {_storage_label(storage)} cannot be reached (study "
            f"{study_name!r}): {type(lost).__name__}: {reason}. The trials the study "
            "finished are kept in the database. Once it is back, call tune again with the "
            f"same storage and study_name={study_name!r} to resume the study; {stale}."
        ) from lost


def postgresql_driver_url(url: str) -> str:
    """A ``postgresql://`` URL that names no driver, given the driver that is installed.

    SQLAlchemy picks a default PostgreSQL driver when the URL names none: psycopg2 up to
    SQLAlchemy 2.0, psycopg (version 3) from 2.1. The ``distributed`` extra installs
    psycopg2, so a plain ``postgresql://`` URL would fail under SQLAlchemy 2.1 with an
    import error about a driver nobody asked for. Where psycopg 3 is not installed and
    psycopg2 is, the URL gets ``+psycopg2``; any other URL is returned unchanged.

    Parameters
    ----------
    url : str
        An Optuna storage URL.

    Returns
    -------
    str
    """
    import importlib.util

    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in ("postgresql", "postgres"):
        return url
    if importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return url


def _modality_names(data: Any) -> list[str]:
    if isinstance(data, MultimodalData):
        return list(data.modality_names)
    columns = getattr(data, "columns", None)
    return [str(c) for c in columns] if columns is not None else []


def _digest(data: Any, y: np.ndarray) -> str:
    """SHA-256 of the targets and of every modality's values (arrays by their bytes,
    DataFrames by pandas' row hashes, file paths by their text)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(y).tobytes() if y.dtype != object
                  else repr(y.tolist()).encode())
    if isinstance(data, MultimodalData):
        parts = [(name, data.values(name)) for name in data.modality_names]
    else:
        parts = [("X", data)]
    for name, values in parts:
        digest.update(str(name).encode())
        digest.update(_values_bytes(values))
    return digest.hexdigest()


def _values_bytes(values: Any) -> bytes:
    if isinstance(values, pd.DataFrame):
        return pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes() \
            + repr(list(values.columns)).encode()
    if isinstance(values, np.ndarray) and values.dtype != object:
        return np.ascontiguousarray(values).tobytes() + repr(values.shape).encode()
    items = list(values) if isinstance(values, (list, tuple, np.ndarray)) else [values]
    out = []
    for item in items:
        if isinstance(item, np.ndarray) and item.dtype != object:
            out.append(np.ascontiguousarray(item).tobytes())
        else:
            out.append(repr(item).encode())
    return b"\x00".join(out)


def _digest_folds(folds: list) -> str:
    digest = hashlib.sha256()
    for _, test in folds:
        digest.update(np.asarray(test, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()


def _fixed_params(estimator: Any, space: dict[str, Any]) -> str:
    """The base estimator's parameters that the search does not set, as text."""
    params = estimator.get_params(deep=False)
    return repr(sorted((k, repr(v)) for k, v in params.items()
                       if k not in space and k not in ("verbose", "n_threads", "callbacks")))


def _check_fingerprint(study: Any, fingerprint: dict[str, Any]) -> None:
    """Record what the study tunes on; refuse to resume it on other data."""
    text = json.dumps(fingerprint, sort_keys=True)
    recorded = study.user_attrs.get(_FINGERPRINT_KEY)
    if recorded is None:
        study.set_user_attr(_FINGERPRINT_KEY, text)
    elif recorded != text:
        raise ValueError(
            f"The study {study.study_name!r} in this storage holds trials for other data "
            f"or another scoring ({recorded}); resuming it would mix them. Pass another "
            f"study_name or storage. Got {text} instead."
        )
