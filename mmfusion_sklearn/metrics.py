"""Scores under missing modalities: per-subset reports and modality importance."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import check_scoring
from sklearn.utils.validation import check_is_fitted

from ._data import MultimodalData, as_multimodal

__all__ = ["missing_modality_report", "modality_importance", "restrict_modalities"]


def restrict_modalities(X: Any, keep: list[str] | tuple[str, ...]) -> MultimodalData:
    """Return ``X`` with only the modalities in ``keep`` (the others left out).

    Parameters
    ----------
    X : dict, list of dict or MultimodalData
        Samples.
    keep : list of str
        Modalities to keep.

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
    data = as_multimodal(X)
    unknown = [name for name in keep if name not in data]
    if unknown:
        raise ValueError(f"X has no modalities {unknown}; it has {data.modality_names}.")
    return MultimodalData({name: data.values(name) for name in keep})


def _subsets(names: list[str], max_size: int | None) -> list[tuple[str, ...]]:
    top = len(names) if max_size is None else min(max_size, len(names))
    return [s for k in range(top, 0, -1) for s in combinations(names, k)]


def missing_modality_report(
    estimator: Any,
    X: Any,
    y: Any,
    scoring: str | list[str] | None = None,
    subsets: list[tuple[str, ...]] | None = None,
) -> pd.DataFrame:
    """Score a fitted estimator on every non-empty subset of modalities.

    For each subset the other modalities are withheld from every sample (as if never
    acquired); samples left with no modality at all are dropped from that subset's
    score and counted in ``n_dropped``.

    Parameters
    ----------
    estimator : fitted MultimodalFusionClassifier
        Any fitted classifier accepting multimodal X.
    X : dict, list of dict or MultimodalData
        Test samples.
    y : array-like of shape (n_samples,)
        True labels.
    scoring : str, list of str or None, default=None
        scikit-learn scorer name(s); None uses ``"roc_auc"`` for two classes and
        ``"accuracy"`` otherwise.
    subsets : list of tuple of str, default=None
        Subsets to score; None scores all non-empty subsets, largest first.

    Returns
    -------
    pandas.DataFrame
        One row per subset: ``modalities`` (joined by "+"), ``n_samples``,
        ``n_dropped`` and one column per scorer.

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
    ...                                  random_state=0).fit(X, y)
    >>> missing_modality_report(clf, X, y)["modalities"].tolist()
    ['a+b', 'a', 'b']
    """
    check_is_fitted(estimator)
    data = as_multimodal(X)
    y = np.asarray(y)
    if len(y) != len(data):
        raise ValueError(f"Number of samples in X ({len(data)}) and y ({len(y)}) do not match.")
    if scoring is None:
        scoring = "roc_auc" if len(estimator.classes_) == 2 else "accuracy"
    names = [scoring] if isinstance(scoring, str) else list(scoring)
    scorers = {name: check_scoring(estimator, scoring=name) for name in names}
    rows = []
    for subset in subsets or _subsets(data.modality_names, None):
        restricted = restrict_modalities(data, list(subset))
        keep = restricted.presence.to_numpy().any(axis=1)
        row = {"modalities": "+".join(subset), "n_samples": int(keep.sum()),
               "n_dropped": int((~keep).sum())}
        for name, scorer in scorers.items():
            row[name] = scorer(estimator, restricted[keep], y[keep]) if keep.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def modality_importance(
    estimator: Any,
    X: Any,
    y: Any,
    scoring: str | None = None,
) -> pd.DataFrame:
    """Drop in score when each modality is withheld (leave-one-modality-out).

    Like permutation importance at the level of modalities: a modality is withheld
    from every sample (the model then uses its token) and the score is compared with
    the score on the full input. Samples left with no modality are excluded from both
    scores of that modality.

    Parameters
    ----------
    estimator : fitted MultimodalFusionClassifier
        Any fitted classifier accepting multimodal X.
    X : dict, list of dict or MultimodalData
        Samples, ideally held out from training.
    y : array-like of shape (n_samples,)
        True labels.
    scoring : str, default=None
        A scikit-learn scorer name; None uses ``"roc_auc"`` for two classes, else
        ``"accuracy"``.

    Returns
    -------
    pandas.DataFrame
        One row per modality, sorted by ``importance`` (score with all modalities
        minus score without it), with ``score_full`` and ``score_without``.
    """
    check_is_fitted(estimator)
    data = as_multimodal(X)
    y = np.asarray(y)
    if scoring is None:
        scoring = "roc_auc" if len(estimator.classes_) == 2 else "accuracy"
    scorer = check_scoring(estimator, scoring=scoring)
    rows = []
    for name in data.modality_names:
        others = [n for n in data.modality_names if n != name]
        if not others:
            rows.append({"modality": name, "score_full": scorer(estimator, data, y),
                         "score_without": np.nan, "importance": np.nan})
            continue
        restricted = restrict_modalities(data, others)
        keep = restricted.presence.to_numpy().any(axis=1)
        full = scorer(estimator, data[keep], y[keep])
        without = scorer(estimator, restricted[keep], y[keep])
        rows.append({"modality": name, "score_full": full, "score_without": without,
                     "importance": full - without})
    frame = pd.DataFrame(rows)
    return frame.sort_values("importance", ascending=False, ignore_index=True)
