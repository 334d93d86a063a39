"""Scores and explanations under missing modalities.

Per-subset reports (:func:`missing_modality_report`), leave-one-modality-out importance
(:func:`modality_importance`) and per-sample contributions of each modality
(:func:`modality_contributions`). Every function takes ``X`` in any form the fitted
estimator takes (a dict, records, a MultimodalData, a DataFrame with the estimator's
column assignment, a plain table): it is read by the estimator's own input handling
when the estimator (or the first step of its pipeline) is one of this package's, and
as :class:`~mmfusion_sklearn.MultimodalData` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_regressor
from sklearn.metrics import check_scoring
from sklearn.utils.validation import check_is_fitted

from ._data import MultimodalData, as_multimodal
from ._scoring import (
    CONCORDANCE,
    _final_step,
    _input_step,
    _named_scorer,
    _unwrap,
    is_survival_model,
)

__all__ = [
    "missing_modality_report",
    "modality_contributions",
    "modality_importance",
    "restrict_modalities",
]


def restrict_modalities(
    X: Any, keep: list[str] | tuple[str, ...], *, modalities: dict | None = None
) -> MultimodalData:
    """Return ``X`` with only the modalities in ``keep`` (the others left out).

    Parameters
    ----------
    X : dict, list of dict, MultimodalData or DataFrame
        Samples.
    keep : list of str
        Modalities to keep.
    modalities : dict, default=None
        For DataFrame input: which columns form which modality, as in
        :class:`~mmfusion_sklearn.MultimodalData`.

    Returns
    -------
    MultimodalData
        The same samples with the other modalities absent.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn.metrics import restrict_modalities
    >>> X = {"a": np.ones((3, 2)), "b": np.zeros((3, 1))}
    >>> restrict_modalities(X, ["a"]).modality_names
    ['a']
    """
    data = as_multimodal(X, modalities=modalities)
    if isinstance(keep, str):
        keep = [keep]
    unknown = [name for name in keep if name not in data]
    if unknown:
        raise ValueError(f"X has no modalities {unknown}; it has {data.modality_names}.")
    return data._modalities(list(keep))


# -- reading X as the estimator does --------------------------------------------------
def _estimator_data(estimator: Any, X: Any) -> MultimodalData:
    """``X`` as MultimodalData, read the way ``estimator`` reads it."""
    step = _input_step(estimator)
    if not hasattr(step, "_as_data"):  # not this package's estimator nor transformer
        return as_multimodal(X)
    data = step._as_data(X, reset=False)
    if _is_ours(step) and step.on_read_error == "missing":
        # an unreadable file is a missing modality, as in fit and predict; finding
        # them up front lets every subset drop or score its samples as it should
        unreadable = step._unreadable(data)
        if unreadable.any():
            data = data._withheld(_columns_of(unreadable, list(step.modalities_), data))
    return data


def _columns_of(mask: np.ndarray, names: list[str], data: MultimodalData) -> np.ndarray:
    """A (n, M) mask over the fitted modalities as a mask over ``data``'s modalities."""
    out = np.zeros((len(data), len(data.modality_names)), dtype=bool)
    for j, name in enumerate(data.modality_names):
        if name in names:
            out[:, j] = mask[:, names.index(name)]
    return out


def _check_y(data: MultimodalData, y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one target per sample (1-D). Got shape {y.shape} instead.")
    if len(y) != len(data):
        raise ValueError(f"Number of samples in X ({len(data)}) and y ({len(y)}) do not match.")
    return y


def default_scoring(estimator: Any) -> str:
    """The default score of the reports: ROC AUC (two classes), accuracy (more), R²
    for a regressor, Harrell's concordance index (``"concordance_index"``) for a
    survival model.

    Parameters
    ----------
    estimator : estimator
        A fitted classifier, regressor or survival model (or a pipeline or search
        around one).

    Returns
    -------
    str
        A scikit-learn scorer name, or ``"concordance_index"``.
    """
    if is_survival_model(estimator):
        return CONCORDANCE
    if is_regressor(estimator):
        return "r2"
    return "roc_auc" if len(_unwrap(estimator).classes_) == 2 else "accuracy"


def _scorers(estimator: Any, scoring: Any) -> tuple[Any, list[str], bool]:
    """A scorer returning ``{name: score}``, the names, and whether one was asked for."""
    if scoring is None:
        scoring = default_scoring(estimator)
    if isinstance(scoring, str):
        return check_scoring(estimator, scoring={scoring: _named_scorer(scoring)}), \
            [scoring], True
    if isinstance(scoring, Mapping):
        names = list(scoring)
    elif isinstance(scoring, (list, tuple)):
        names = list(scoring)
        if CONCORDANCE in names:
            scoring = {name: _named_scorer(name) for name in names}
    else:
        raise ValueError(
            "The 'scoring' parameter must be None, a scorer name, a list of scorer names "
            f"or a dict {{name: scorer}}. Got {scoring!r} instead."
        )
    if not names:
        raise ValueError("The 'scoring' parameter is empty: name at least one scorer.")
    if len(set(names)) != len(names):
        raise ValueError(f"The 'scoring' parameter names a scorer twice. Got {names} instead.")
    return check_scoring(estimator, scoring=scoring), names, False


def _subsets(names: list[str], max_size: int | None) -> list[tuple[str, ...]]:
    top = len(names) if max_size is None else min(max_size, len(names))
    return [s for k in range(top, 0, -1) for s in combinations(names, k)]


def missing_modality_report(
    estimator: Any,
    X: Any,
    y: Any,
    scoring: str | list[str] | dict | None = None,
    subsets: list[tuple[str, ...]] | None = None,
) -> pd.DataFrame:
    """Score a fitted estimator on every non-empty subset of modalities.

    For each subset the other modalities are withheld from every sample (as if never
    acquired); samples left with no modality at all are dropped from that subset's
    score and counted in ``n_dropped``.

    Parameters
    ----------
    estimator : fitted MultimodalFusionClassifier, Regressor or SurvivalAnalysis
        Any fitted classifier, regressor or survival model accepting multimodal X
        (also a pipeline or a search around one).
    X : dict, list of dict, MultimodalData, DataFrame or array-like
        Test samples, in any form the estimator takes.
    y : array-like of shape (n_samples,)
        True labels, target values, or a survival model's structured ``y``.
    scoring : str, list of str, dict or None, default=None
        scikit-learn scorer name(s) or ``"concordance_index"`` (Harrell's, a survival
        model's ``score``), or a dict ``{name: scorer}`` (e.g. scikit-survival's
        scorer wrappers); None uses ``"roc_auc"`` for two classes, ``"accuracy"`` for
        more, ``"r2"`` for a regressor and ``"concordance_index"`` for a survival
        model.
    subsets : list of tuple of str, default=None
        Subsets to score; None scores all non-empty subsets, largest first.

    Returns
    -------
    pandas.DataFrame
        One row per subset: ``modalities`` (joined by "+"), ``n_samples``,
        ``n_dropped`` and one column per scorer.

    See Also
    --------
    modality_importance : The drop in score when each modality is withheld.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier, MultimodalData
    >>> from mmfusion_sklearn.metrics import missing_modality_report
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30)
    >>> X = MultimodalData({"a": rng.normal(size=(60, 2)) + y[:, None],
    ...                     "b": rng.normal(size=(60, 3)) - y[:, None]})
    >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
    ...                                  device="cpu", random_state=0).fit(X, y)
    >>> missing_modality_report(clf, X, y)["modalities"].tolist()
    ['a+b', 'a', 'b']
    """
    check_is_fitted(estimator)
    data = _estimator_data(estimator, X)
    y = _check_y(data, y)
    scorer, names, _ = _scorers(estimator, scoring)
    rows = []
    for subset in subsets or _subsets(data.modality_names, None):
        restricted = restrict_modalities(data, list(subset))
        keep = restricted.presence.to_numpy().any(axis=1)
        row: dict[str, Any] = {"modalities": "+".join(subset), "n_samples": int(keep.sum()),
                               "n_dropped": int((~keep).sum())}
        scores = scorer(estimator, restricted[keep], y[keep]) if keep.any() else {}
        for name in names:
            row[name] = scores.get(name, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def modality_importance(
    estimator: Any,
    X: Any,
    y: Any,
    scoring: str | list[str] | dict | None = None,
) -> pd.DataFrame:
    """Drop in score when each modality is withheld (leave-one-modality-out).

    Like permutation importance at the level of modalities: a modality is withheld
    from every sample (the model then uses its token) and the score is compared with
    the score on the full input. Samples left with no modality are excluded from both
    scores of that modality.

    Parameters
    ----------
    estimator : fitted MultimodalFusionClassifier, Regressor or SurvivalAnalysis
        Any fitted classifier, regressor or survival model accepting multimodal X
        (also a pipeline or a search around one).
    X : dict, list of dict, MultimodalData, DataFrame or array-like
        Samples, ideally held out from training, in any form the estimator takes.
    y : array-like of shape (n_samples,)
        True labels, target values, or a survival model's structured ``y``.
    scoring : str, list of str, dict or None, default=None
        A scikit-learn scorer name or ``"concordance_index"``; or several, as a list
        of names or a dict ``{name: scorer}``. None uses ``"roc_auc"`` for two
        classes, ``"accuracy"`` for more, ``"r2"`` for a regressor and
        ``"concordance_index"`` (Harrell's) for a survival model.

    Returns
    -------
    pandas.DataFrame
        With one scorer (a name or None): one row per modality, sorted by
        ``importance`` (score with all modalities minus score without it), with
        ``score_full`` and ``score_without``. With several (a list or dict, even of
        one): long format, one row per scorer and modality, columns ``modality``,
        ``scorer``, ``score_full``, ``score_without``, ``importance``; grouped by
        scorer in the order given, each group sorted by ``importance``. A modality
        that is the only one has NaN importance (there is nothing left to score).

    See Also
    --------
    missing_modality_report : Scores on every subset of modalities.
    modality_contributions : Per-sample change in log-odds from each modality.
    sklearn.inspection.permutation_importance : Takes a MultimodalData and permutes
        whole modalities across samples.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier, MultimodalData
    >>> from mmfusion_sklearn.metrics import modality_importance
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30)
    >>> X = MultimodalData({"signal": rng.normal(size=(60, 2)) + 2 * y[:, None],
    ...                     "noise": rng.normal(size=(60, 3))})
    >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
    ...                                  device="cpu", random_state=0).fit(X, y)
    >>> modality_importance(clf, X, y).columns.tolist()
    ['modality', 'score_full', 'score_without', 'importance']
    >>> long = modality_importance(clf, X, y, scoring=["roc_auc", "accuracy"])
    >>> long[["scorer", "modality"]].shape
    (4, 2)
    """
    check_is_fitted(estimator)
    data = _estimator_data(estimator, X)
    y = _check_y(data, y)
    scorer, names, single = _scorers(estimator, scoring)
    alive = data.presence.to_numpy().any(axis=1)  # not all of them unreadable files
    data, y = data[alive], y[alive]
    rows = []
    for modality in data.modality_names:
        others = [n for n in data.modality_names if n != modality]
        if not others:
            full = scorer(estimator, data, y)
            rows += [{"modality": modality, "scorer": name, "score_full": full[name],
                      "score_without": np.nan, "importance": np.nan} for name in names]
            continue
        restricted = data._modalities(others)
        keep = restricted.presence.to_numpy().any(axis=1)
        full = scorer(estimator, data[keep], y[keep])
        without = scorer(estimator, restricted[keep], y[keep])
        rows += [{"modality": modality, "scorer": name, "score_full": full[name],
                  "score_without": without[name],
                  "importance": full[name] - without[name]} for name in names]
    frame = pd.DataFrame(rows)
    frame["order"] = frame["scorer"].map({name: i for i, name in enumerate(names)})
    frame = frame.sort_values(["order", "importance"], ascending=[True, False],
                              ignore_index=True, kind="stable").drop(columns="order")
    if single:
        return frame.drop(columns="scorer")
    return frame


def modality_contributions(estimator: Any, X: Any, *, target: Any = None) -> pd.DataFrame:
    """Per sample and per modality, the change in the output that the modality brings.

    The contribution of modality m to sample i is the model's output for i on the full
    input minus its output with m withheld (replaced by its token, as when it is
    missing), everything else unchanged. For a classifier the output is a log-odds
    (positive values push towards ``target``); for a regressor it is the prediction,
    in the target's units; for a survival model it is the risk score (``predict``:
    positive contributions bring the event earlier).

    - A modality absent from a sample contributes exactly 0.
    - A sample whose only modality is m has NaN for m: without it there is nothing to
      predict from.
    - Contributions need not add up to the full output: modalities interact through
      the fusion network (and through the shared tokens).

    Parameters
    ----------
    estimator : fitted MultimodalFusionClassifier, Regressor or SurvivalAnalysis
        Any fitted classifier, regressor or survival model accepting multimodal X
        (also a pipeline or a search around one). For this package's classifier the
        output is its ``decision_function``; for other classifiers it is computed from
        ``predict_proba``; for regressors and survival models it is ``predict``.
    X : dict, list of dict, MultimodalData, DataFrame or array-like
        Samples, in any form the estimator takes.
    target : label or None, default=None
        The class whose score is explained (None for a regressor or survival
        model). Two classes: the
        output is the log-odds of ``target``, by default ``classes_[1]`` (the
        ``decision_function``). More classes: the output is the log-probability of
        ``target``; None explains, for each sample, the class predicted from its full
        input (``predict``).

    Returns
    -------
    pandas.DataFrame of shape (n_samples, n_modalities)
        One column per modality (those the estimator was fitted on, when it is this
        package's classifier; else those of X), with X's row index when X is a
        DataFrame.

    See Also
    --------
    modality_importance : The drop in a score when each modality is withheld.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> from mmfusion_sklearn.metrics import modality_contributions
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30)
    >>> X = {"signal": rng.normal(size=(60, 2)) + 2 * y[:, None],
    ...      "noise": [rng.normal(size=3) if i % 4 else None for i in range(60)]}
    >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
    ...                                  device="cpu", random_state=0).fit(X, y)
    >>> contributions = modality_contributions(clf, X)
    >>> contributions.shape
    (60, 2)
    >>> contributions.loc[0].tolist()         # sample 0 has no 'noise': only 'signal'
    [nan, 0.0]
    """
    check_is_fitted(estimator)
    data = _estimator_data(estimator, X)
    step = _input_step(estimator)
    names = list(step.modalities_) if _is_ours(step) else data.modality_names
    n = len(data)
    # samples whose every file is unreadable have nothing to explain: NaN rows
    alive = np.flatnonzero(data.presence.to_numpy().any(axis=1))
    if is_regressor(estimator) or is_survival_model(estimator):
        if target is not None:
            raise ValueError(
                "The 'target' parameter picks a class; a regressor or survival model has "
                f"none. Got {target!r} instead; leave it None."
            )
        classes = None
        full = np.full(n, np.nan)
        full[alive] = np.asarray(estimator.predict(data._rows(alive)), dtype=np.float64)
        target_index = np.zeros(n, dtype=np.int64)
    else:
        classes = np.asarray(_unwrap(estimator).classes_)
        scores = _log_scores(estimator, data._rows(alive))
        full = np.full((n, *scores.shape[1:]), np.nan)
        full[alive] = scores
    if classes is not None and target is None:
        target_index = np.full(n, 1) if len(classes) == 2 else np.nan_to_num(
            full, nan=-np.inf).argmax(axis=1)
    elif classes is not None:
        matches = [i for i, label in enumerate(classes.tolist()) if label == target]
        if len(matches) != 1:
            raise ValueError(
                f"The 'target' parameter must be None or one of the classes "
                f"{classes.tolist()}. Got {target!r} instead."
            )
        target_index = np.full(n, int(matches[0]))
    # a classifier's output is the log-odds (or log-probability) of the target class;
    # a regressor's is its prediction
    output = _output if classes is not None else (lambda scores, index: scores)
    full_output = output(full, target_index)
    out = np.zeros((n, len(names)))
    for j, name in enumerate(names):
        present = data.present(name)
        others = [m for m in data.modality_names if m != name]
        rest = (np.stack([data.present(m) for m in others], axis=1).any(axis=1)
                if others else np.zeros(n, dtype=bool))
        out[present & ~rest, j] = np.nan
        rows = np.flatnonzero(present & rest)
        if len(rows):
            subset = data._modalities(others)._rows(rows)
            without = (np.asarray(estimator.predict(subset), dtype=np.float64)
                       if classes is None else _log_scores(estimator, subset))
            out[rows, j] = full_output[rows] - output(without, target_index[rows])
    out[np.setdiff1d(np.arange(n), alive)] = np.nan
    index = X.index if isinstance(X, pd.DataFrame) else data.sample_labels
    return pd.DataFrame(out, index=index, columns=pd.Index(names, dtype=object))


def _is_ours(estimator: Any) -> bool:
    from ._estimators._base import BaseMultimodalFusion

    return isinstance(estimator, BaseMultimodalFusion)


def _log_scores(estimator: Any, data: MultimodalData) -> np.ndarray:
    """``(n, n_classes)`` log-probabilities, or ``(n,)`` log-odds of ``classes_[1]``.

    This package's classifier gives them exactly through ``decision_function``; other
    classifiers through the log of ``predict_proba``.
    """
    if _is_ours(_final_step(estimator)):
        return np.asarray(estimator.decision_function(data), dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_proba = np.log(np.asarray(estimator.predict_proba(data), dtype=np.float64))
    if log_proba.shape[1] == 2:
        return log_proba[:, 1] - log_proba[:, 0]
    return log_proba


def _output(scores: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """The explained output per sample: log-odds of the target (two classes, from the
    log-odds of ``classes_[1]``) or its log-probability (more classes)."""
    if scores.ndim == 1:
        return np.where(target_index == 1, scores, -scores)
    return scores[np.arange(len(scores)), target_index]
