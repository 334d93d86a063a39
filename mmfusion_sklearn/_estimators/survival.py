"""MultimodalFusionSurvivalAnalysis: what a censored time-to-event target adds to the
shared engine (scikit-survival's structured y, a Cox risk head, Breslow baselines,
survival and cumulative hazard functions, Harrell's concordance index)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.utils._param_validation import StrOptions

from .._data.messages import rows_text
from .._torch.discrete_survival import (
    DiscreteSurvivalTask,
    discrete_cuts,
    risk_score,
    survival_at,
)
from .._torch.survival import SurvivalTask, breslow_baseline, concordance_index
from .._torch.survival_calibration import calibration_slope
from .._training import engine
from .._training.batches import FusionDataset
from . import _docs
from ._base import SHARED_PARAMETERS, BaseMultimodalFusion
from ._step_function import StepFunction

_PARAMETERS = SHARED_PARAMETERS[:19] + ["loss"] + SHARED_PARAMETERS[19:]

_MAKE_Y = (
    "Build it with sksurv.util.Surv.from_arrays(event, time), or np.array(list(zip("
    "event, time)), dtype=[('event', bool), ('time', float)])."
)


def survival_target(y: Any, caller: str) -> tuple[np.ndarray, np.ndarray]:
    """The event indicators and times of a survival ``y``, checked.

    ``y`` is a structured array of two fields read by position, as scikit-survival
    reads them: the event indicator (bool, or numbers that are all 0 or 1), then the
    time (finite, >= 0).

    Parameters
    ----------
    y : structured array of shape (n_samples,)
        The target.
    caller : str
        The estimator's name, for messages.

    Returns
    -------
    event : ndarray of bool (n_samples,)
    time : ndarray of float64 (n_samples,)
    """
    array = np.asarray(y)
    names = array.dtype.names
    if names is None:
        raise ValueError(
            f"{caller} needs y as a structured array of an event indicator and a time "
            f"per sample (fields read by position); got an array of dtype {array.dtype} "
            f"and shape {array.shape}. {_MAKE_Y}"
        )
    if len(names) != 2:
        raise ValueError(
            f"y must have exactly 2 fields, the event indicator then the time; it has "
            f"{len(names)}: {list(names)}. {_MAKE_Y}"
        )
    if array.ndim != 1:
        array = array.reshape(-1) if array.ndim == 2 and 1 in array.shape else array
        if array.ndim != 1:
            raise ValueError(f"y must be 1-D (one record per sample); got shape {array.shape}.")
    event_name, time_name = names
    event, time = array[event_name], array[time_name]
    if event.dtype.kind == "b":
        event = event.astype(bool)
    elif event.dtype.kind in "iuf":
        bad = np.flatnonzero(~np.isin(event, (0, 1)))
        if len(bad):
            raise ValueError(
                f"The event field {event_name!r} (y's first field) must be bool or 0/1; it "
                f"holds {event[bad[0]].item()!r} at rows {rows_text(bad)}. The fields are "
                "read by position: the event indicator first, then the time."
            )
        event = event.astype(bool)
    else:
        raise ValueError(
            f"The event field {event_name!r} (y's first field) must be bool or 0/1; it has "
            f"dtype {event.dtype}. The fields are read by position: the event indicator "
            "first, then the time."
        )
    if time.dtype.kind not in "iuf":
        raise ValueError(
            f"The time field {time_name!r} (y's second field) must be numeric; it has dtype "
            f"{time.dtype}."
        )
    time = time.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(time))
    if len(bad):
        raise ValueError(
            f"The times ({time_name!r}) must be finite; they hold {float(time[bad[0]])!r} at rows "
            f"{rows_text(bad)}. Drop those rows or give each its last follow-up time."
        )
    bad = np.flatnonzero(time < 0)
    if len(bad):
        raise ValueError(
            f"The times ({time_name!r}) must be >= 0; they hold {float(time[bad[0]])!r} at rows "
            f"{rows_text(bad)}."
        )
    return event, time


class MultimodalFusionSurvivalAnalysis(BaseMultimodalFusion):
    __doc__ = f"""Predict time to an event from several modalities, any of which may be missing.

    The same method as :class:`MultimodalFusionClassifier` (per-modality encoders,
    learnable tokens for absent modalities, simultaneous modality dropout, an optional
    label-free contrastive stage, a linear path, cross-fitted members) for censored
    outcomes, the scikit-survival way. The head's one output is a log-hazard ratio
    trained on the negative log partial likelihood of Cox's model (Efron's ties,
    DeepSurv); the linear path is a ridge Cox model fitted first. After training, a
    Breslow baseline hazard turns risk scores into survival curves; the members'
    curves are averaged. Cross-fitted members (the default for tables and embeddings)
    score every training row once without having trained on it: those out-of-fold
    scores give a calibration slope, which shrinks the scores that the curves use as
    much as they were too spread on new patients, and the baseline. Otherwise each
    member's baseline is fitted on all training rows.

    ``y`` is a structured array of two fields read by position, as scikit-survival
    makes it (``sksurv.util.Surv.from_arrays(event, time)``): the event indicator
    (bool, or 0/1) and the time (event or censoring, >= 0). scikit-survival is not
    needed to fit or predict; its metrics take the outputs.

    Parameters
    ----------
{_docs.parameters(_PARAMETERS, _docs.SURVIVAL_OVERRIDES)}
    Attributes
    ----------
{_docs.attributes(["unique_times_", *_docs.SHARED_ATTRIBUTE_ORDER])}
    See Also
    --------
    MultimodalFusionClassifier : The same engine for class labels.
    MultimodalFusionRegressor : The same engine for a continuous target.
    mmfusion_sklearn.metrics.missing_modality_report : Scores per subset of modalities.

    Notes
    -----
    ``predict`` returns the members' mean risk score (higher: an earlier event), the
    quantity Harrell's concordance index (``score``) ranks. Survival functions are the
    mean over members k of ``S_k(t | x) = exp(-H0_k(t) * exp(b * r_k(x)))`` (``H0_k``
    member k's baseline cumulative hazard, ``r_k`` its risk score, ``b`` the
    calibration slope, 1 without cross-fitting), and the cumulative hazard is minus
    the log of that mean.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionSurvivalAnalysis
    >>> rng = np.random.default_rng(0)
    >>> labs = rng.normal(size=(120, 3))
    >>> time = rng.exponential(np.exp(-labs[:, 0]))
    >>> event = rng.random(120) < 0.7
    >>> y = np.array(list(zip(event, time)), dtype=[("event", bool), ("time", float)])
    >>> X = {{"labs": labs,
    ...      "image": [rng.normal(size=(8, 8)) + labs[i, 0] if i % 3 else None
    ...                for i in range(120)]}}
    >>> surv = MultimodalFusionSurvivalAnalysis(
    ...     embed_dim=16, max_epochs=5, pretrain_epochs=0, random_state=0).fit(X, y)
    >>> surv.predict({{"labs": labs[:2]}}).shape
    (2,)
    >>> curves = surv.predict_survival_function({{"labs": labs[:2]}})
    >>> float(curves[0](0.0))
    1.0
    >>> surv.predict_survival_function(X, return_array=True).shape == (
    ...     120, len(surv.unique_times_))
    True
    """

    _target_kind = "survival"

    _parameter_constraints: dict = {
        **BaseMultimodalFusion._parameter_constraints,
        "loss": [StrOptions({"cox", "discrete"})],
    }

    def __init__(
        self,
        modalities=None,
        *,
        fusion="mlp",
        embed_dim=128,
        missing_token="learned",
        modality_dropout="simultaneous",
        dropout_rate=0.3,
        unimodal_weight=1.0,
        contrastive=None,
        contrastive_loss="balanced",
        pretrain_epochs=10,
        max_epochs=100,
        batch_size=64,
        lr=1e-3,
        weight_decay=1e-4,
        early_stopping=True,
        validation_fraction=0.1,
        patience=10,
        ensemble_size="auto",
        linear_path=True,
        loss="cox",
        device="auto",
        random_state=None,
        verbose=0,
        precision="32",
        num_workers=0,
        on_read_error="raise",
        cache_dir=None,
        callbacks=None,
        n_threads=None,
        distributed="auto",
    ):
        super().__init__(
            modalities, fusion=fusion, embed_dim=embed_dim, missing_token=missing_token,
            modality_dropout=modality_dropout, dropout_rate=dropout_rate,
            unimodal_weight=unimodal_weight, contrastive=contrastive,
            contrastive_loss=contrastive_loss, pretrain_epochs=pretrain_epochs,
            max_epochs=max_epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, ensemble_size=ensemble_size, linear_path=linear_path,
            device=device, random_state=random_state, verbose=verbose, precision=precision,
            num_workers=num_workers, on_read_error=on_read_error, cache_dir=cache_dir,
            callbacks=callbacks, n_threads=n_threads, distributed=distributed,
        )
        self.loss = loss

    # -- the task ----------------------------------------------------------------------
    def _target_vector(self, y: Any) -> np.ndarray:
        array = np.asarray(y)
        survival_target(array, type(self).__name__)  # the checks that need no fit
        return array.reshape(-1)

    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        event, time = survival_target(y, type(self).__name__)
        if not event.any():
            raise ValueError(
                f"y holds no event (all {len(event)} samples are censored): a survival "
                "model needs at least one observed event to learn from."
            )
        self._max_time = float(time.max())
        self._fit_target = (event, time)  # for the baselines, in float64; dropped after
        if self.loss == "discrete":
            self._cuts = [float(c) for c in discrete_cuts(time, event)]
            target = DiscreteSurvivalTask.encode_targets(time, event).numpy()
        else:
            self._cuts = None
            # the Cox loss depends on the order of the times only: their dense ranks
            # are exact in float32 (distinct float64 times could round to one float32)
            rank = np.unique(time, return_inverse=True)[1].reshape(-1)
            target = SurvivalTask.encode_targets(rank, event).numpy()
        # the validation folds keep the share of events
        return target, event.astype(np.int64)

    def _sample_weight(self, weight: np.ndarray, y: np.ndarray) -> np.ndarray:
        event, _ = self._fit_target  # y as _encode_target, called just before, read it
        if not (weight[event] > 0).any():
            raise ValueError(
                "sample_weight is 0 for every sample with an event: a survival model needs "
                "at least one observed event of positive weight."
            )
        return weight

    def _task(self) -> SurvivalTask | DiscreteSurvivalTask:
        if self.loss == "discrete":
            return DiscreteSurvivalTask(self._cuts)
        return SurvivalTask(ties="efron")

    def _after_training(self, dataset: FusionDataset, plans: list) -> None:
        """The event times (both losses); for Cox, the members' baselines."""
        event, time = self.__dict__.pop("_fit_target")
        weight = dataset.weight.numpy()  # 0 for a row whose every file was unreadable
        self._slope = 1.0
        if self.loss == "discrete":
            self.unique_times_ = np.unique(time[event & (weight > 0)])
            self._cum_baselines = None
            return
        risks = engine.dataset_outputs(
            [net.module_ for net in self._nets], self._task(), dataset,
            batch_size=max(self.batch_size, 256), device=self.device_,
            precision=self.precision, num_workers=self.num_workers,
        )
        if not (weight[event] > 0).any():
            raise ValueError(
                "No sample with an event kept a readable modality (every event row lost "
                "its files, see the warning): the baseline hazard cannot be estimated."
            )
        held_out = [None if p.valid_index is None else p.valid_index.numpy() for p in plans]
        covered = np.zeros(len(time), dtype=bool)
        for rows in held_out:
            if rows is not None:
                covered[rows] = True
        if len(plans) > 1 and covered[weight > 0].all():
            self._calibrated_baselines(risks, held_out, time, event, weight)
        else:
            # no row held out of every member: each member's baseline on all rows
            baselines = [breslow_baseline(risks[:, k], time, event, weight)
                         for k in range(risks.shape[1])]
            self.unique_times_ = baselines[0][0]
            self._cum_baselines = np.stack([b[1] for b in baselines])

    def _calibrated_baselines(self, risks: np.ndarray, held_out: list, time: np.ndarray,
                              event: np.ndarray, weight: np.ndarray) -> None:
        """Cross-fitted members: the calibration slope and one Breslow baseline on the
        out-of-fold risk scores (each row scored by the member that held it out)."""
        positive = weight > 0
        # a Cox risk has an arbitrary offset per member: centre each on the cohort
        offsets = np.average(risks[positive], axis=0, weights=weight[positive])
        out_of_fold = np.zeros(len(time))
        for k, rows in enumerate(held_out):
            out_of_fold[rows] = risks[rows, k] - offsets[k]
        slope = calibration_slope(out_of_fold, time, event, weight)
        times, base = breslow_baseline(slope * out_of_fold, time, event, weight)
        self.unique_times_ = times
        self._slope = slope
        # member k's curve: exp(-H0(t) exp(slope * (r_k(x) - offset_k)))
        self._cum_baselines = base[None, :] * np.exp(-slope * offsets)[:, None]

    def _target_config(self) -> dict[str, Any]:
        model = ({"cuts": list(self._cuts)} if self._cuts is not None
                 else {"cum_baseline": self._cum_baselines.tolist(), "slope": self._slope})
        return {"survival": {"unique_times": self.unique_times_.tolist(), **model,
                             "max_time": self._max_time}}

    def _set_target_config(self, state: dict[str, Any]) -> None:
        self.unique_times_ = state["unique_times"]
        self._cum_baselines = state.get("cum_baseline")
        self._slope = state.get("slope", 1.0)
        self._cuts = state.get("cuts")
        self._max_time = state["max_time"]

    # -- prediction ----------------------------------------------------------------
    def _member_risks(self, X: Any) -> np.ndarray:
        """(n, K) Cox risk scores, one column per member."""
        return self._predict_outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        """Risk scores: higher means an earlier event (as in scikit-survival).

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.

        Returns
        -------
        ndarray of shape (n_samples,)
            The members' mean log-hazard ratio of each sample (relative to the
            training cohort; only differences between samples have meaning). With
            ``loss="discrete"``: minus the restricted mean survival time over the
            intervals.
        """
        if self._cuts is not None:
            return risk_score(self._predict_outputs(X), self._cuts)
        return self._member_risks(X).mean(axis=1)

    def _log_survival(self, X: Any) -> np.ndarray:
        """(n, m) log of the members' mean survival at ``unique_times_``."""
        if self._cuts is not None:  # the members' mean curves, at the event times
            curves = survival_at(self._predict_outputs(X), self._cuts, self.unique_times_)
            with np.errstate(divide="ignore"):
                return np.log(curves)
        risks = self._slope * self._member_risks(X)
        # -H_k(t | x) = -H0_k(t) exp(slope r_k(x)), per member k, sample and time
        minus_hazards = -np.exp(risks.T[:, :, None]) * self._cum_baselines[:, None, :]
        return logsumexp(minus_hazards, axis=0) - np.log(len(self._cum_baselines))

    def _functions(self, values: np.ndarray, initial: float) -> np.ndarray:
        domain = (0.0, max(self._max_time, float(self.unique_times_[-1])))
        out = np.empty(len(values), dtype=object)
        for i, row in enumerate(values):
            out[i] = StepFunction(self.unique_times_, row, initial=initial, domain=domain)
        return out

    def predict_survival_function(self, X: Any, return_array: bool = False) -> np.ndarray:
        """Survival functions ``S(t | x)``: the probability of no event by time t.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.
        return_array : bool, default=False
            Return the values at ``unique_times_`` instead of functions.

        Returns
        -------
        ndarray
            ``return_array=False``: an object array of shape (n_samples,) of step
            functions (``.x`` the times, ``.y`` the values, callable on times from 0
            to the last training time; 1 before the first event time), the interface
            of scikit-survival's ``StepFunction``. ``return_array=True``: a float
            array of shape ``(n_samples, len(unique_times_))``.
        """
        check_return_array(return_array)
        survival = np.exp(self._log_survival(X))
        return survival if return_array else self._functions(survival, 1.0)

    def predict_cumulative_hazard_function(self, X: Any,
                                           return_array: bool = False) -> np.ndarray:
        """Cumulative hazard functions ``H(t | x) = -log S(t | x)``.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.
        return_array : bool, default=False
            Return the values at ``unique_times_`` instead of functions.

        Returns
        -------
        ndarray
            As :meth:`predict_survival_function`, of cumulative hazards (0 before the
            first event time).
        """
        check_return_array(return_array)
        hazard = np.maximum(-self._log_survival(X), 0.0)
        return hazard if return_array else self._functions(hazard, 0.0)

    def score(self, X: Any, y: Any) -> float:
        """Compute Harrell's concordance index of the risk scores on ``(X, y)``.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples.
        y : structured array of shape (n_samples,)
            Event indicators and times, as given to ``fit``.

        Returns
        -------
        float
            The share of comparable pairs that the risk scores order correctly (ties
            count one half): 0.5 is chance, 1 is perfect. scikit-survival's
            ``concordance_index_censored`` gives the same value.
        """
        event, time = survival_target(y, type(self).__name__)
        return concordance_index(time, event, self.predict(X))


def check_return_array(return_array: Any) -> None:
    """``return_array`` must be a bool (a string such as "yes" is an error)."""
    if not isinstance(return_array, (bool, np.bool_)):
        raise ValueError(
            f"The 'return_array' parameter must be True or False. Got {return_array!r} "
            "instead."
        )
