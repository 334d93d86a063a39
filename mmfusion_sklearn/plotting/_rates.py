"""Scores as modalities go missing at random: :func:`missing_rate_report`."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import check_scoring
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from sklearn_compat.utils._param_validation import validate_params

from .._data import MultimodalData
from .._scoring import _named_scorer
from ._base import _as_data, _check_y, _default_scoring

#: Missing rates of :func:`missing_rate_report` and :class:`MissingModalityDisplay`.
DEFAULT_MISSING_RATES = (0.0, 0.25, 0.5, 0.75, 0.9)
#: The ``withheld`` value of the curve where every modality is withheld at random.
ALL_MODALITIES = "all modalities"


# -- withholding modalities ------------------------------------------------------
def _check_missing_rates(missing_rates: Any) -> np.ndarray:
    try:
        rates = np.asarray(missing_rates, dtype=float).ravel()
    except (TypeError, ValueError):
        rates = np.array([np.nan])
    if not rates.size or not np.isfinite(rates).all() or (rates < 0).any() or (rates > 1).any():
        raise ValueError(
            "The 'missing_rates' parameter must be a non-empty sequence of numbers in "
            f"[0, 1] (shares of samples). Got {missing_rates!r} instead."
        )
    return np.unique(rates)


def _withhold(data: MultimodalData, withheld: np.ndarray) -> MultimodalData:
    """``data`` with the modality of column j withheld where ``withheld[:, j]``.

    The values stay as they are; only the presence mask changes, which is what every
    part of the estimator reads (an absent sample's values are never looked at).
    """
    return data._withheld(withheld)


def _withheld_masks(presence: np.ndarray, draw: np.ndarray, rate: float) -> list[np.ndarray]:
    """Per-modality masks for ``rate``, then the mask of all modalities at random.

    Modality j is withheld from ``round(rate * n_j)`` of the ``n_j`` samples that have
    it (those with the smallest ``draw``), never from a sample that has nothing else.
    "All at random" withholds ``round(rate * n_present)`` of all present values, in the
    order of ``draw``, skipping a sample's last one. Larger rates withhold supersets of
    what smaller ones withhold.
    """
    n, m = presence.shape
    masks = []
    for j in range(m):
        others = np.delete(presence, j, axis=1).any(axis=1)
        candidates = np.flatnonzero(presence[:, j] & others)
        k = min(int(round(rate * presence[:, j].sum())), len(candidates))
        chosen = candidates[np.argsort(draw[candidates, j], kind="stable")[:k]]
        mask = np.zeros((n, m), dtype=bool)
        mask[chosen, j] = True
        masks.append(mask)
    rows, cols = np.nonzero(presence)
    order = np.argsort(draw[rows, cols], kind="stable")
    left = presence.sum(axis=1)
    k = int(round(rate * len(rows)))
    everything = np.zeros((n, m), dtype=bool)
    for cell in order:
        if k == 0:
            break
        i = rows[cell]
        if left[i] > 1:
            everything[i, cols[cell]] = True
            left[i] -= 1
            k -= 1
    masks.append(everything)
    return masks


# -- score against missing rate ---------------------------------------------------
@validate_params(
    {
        "scoring": [str, None],
        "missing_rates": ["array-like"],
        "n_repeats": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def missing_rate_report(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    scoring: str | None = None,
    missing_rates: Any = DEFAULT_MISSING_RATES,
    n_repeats: int = 1,
    random_state: Any = 0,
) -> pd.DataFrame:
    """Score a fitted estimator as modalities go missing at random, rate by rate.

    For each rate r of ``missing_rates`` and each modality m, m is withheld from a
    random share r of the samples that have it, the other modalities left as they are;
    then a random share r of all the present values (sample, modality) is withheld at
    once ("all modalities"). A sample always keeps one modality: a value is never
    withheld from a sample that has nothing else, so the share reached,
    ``withheld_fraction``, may stay below r (with two modalities present everywhere,
    "all modalities" reaches at most 0.5: every sample down to one). The random order
    is drawn once per repeat, so a larger rate withholds a superset of what a smaller
    one withholds, and the scores are comparable across rates.

    Parameters
    ----------
    estimator : fitted MultimodalFusionClassifier
        Any fitted classifier accepting multimodal X.
    X : dict, list of dict, MultimodalData or pandas.DataFrame
        Test samples, ideally held out from training. A DataFrame is split into
        modalities by the estimator's ``modalities`` columns.
    y : array-like of shape (n_samples,)
        True labels.
    scoring : str, default=None
        A scikit-learn scorer name; None uses ``"roc_auc"`` for two classes and
        ``"accuracy"`` otherwise.
    missing_rates : array-like of float, default=(0.0, 0.25, 0.5, 0.75, 0.9)
        Shares of samples, in [0, 1], from which a modality is withheld.
    n_repeats : int, default=1
        Random draws per rate, averaged; more give smoother curves on small test sets.
    random_state : int, RandomState instance or None, default=0
        Seeds the draws.

    Returns
    -------
    pandas.DataFrame
        One row per rate (``missing_rate``) and withheld modality (``withheld``: a
        modality name, or ``"all modalities"``): ``withheld_fraction`` (the share of
        the present values of that modality, or of all modalities, actually withheld),
        the mean score over repeats in a column named after the scorer, and its
        standard deviation (``<scorer>_std``, 0 with one repeat).

    See Also
    --------
    MissingModalityDisplay : Plots this table and the scores per subset of modalities.
    mmfusion_sklearn.metrics.missing_modality_report : Scores per subset of modalities.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> from mmfusion_sklearn.plotting import missing_rate_report
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30)
    >>> X = {"a": rng.normal(size=(60, 2)) + y[:, None],
    ...      "b": rng.normal(size=(60, 3)) - y[:, None]}
    >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
    ...                                  early_stopping=False, device="cpu",
    ...                                  random_state=0).fit(X, y)
    >>> table = missing_rate_report(clf, X, y, missing_rates=[0, 0.5, 0.9])
    >>> table.columns.tolist()
    ['withheld', 'missing_rate', 'withheld_fraction', 'roc_auc', 'roc_auc_std']
    >>> table[table["missing_rate"] == 0.9][["withheld", "withheld_fraction"]]
             withheld  withheld_fraction
    6               a                0.9
    7               b                0.9
    8  all modalities                0.5
    """
    check_is_fitted(estimator)
    data = _as_data(estimator, X)
    y = _check_y(data, y)
    rates = _check_missing_rates(missing_rates)
    scoring = _default_scoring(estimator, scoring)
    scorer = check_scoring(estimator, scoring=_named_scorer(scoring))
    names = data.modality_names
    presence = data.presence.to_numpy()
    labels = [*names, ALL_MODALITIES]
    # values that can be withheld: per modality, then all present values together
    totals = np.append(presence.sum(axis=0), presence.sum()).clip(min=1)
    rng = check_random_state(random_state)
    cache: dict[bytes, float] = {}  # rate 0 and capped shares repeat the same masks
    scores = np.empty((len(rates), len(labels), n_repeats))
    fractions = np.empty((len(rates), len(labels)))  # the same in every repeat
    for repeat in range(n_repeats):
        draw = rng.random_sample(presence.shape)
        for r, rate in enumerate(rates):
            for j, mask in enumerate(_withheld_masks(presence, draw, rate)):
                key = np.packbits(mask).tobytes()
                if key not in cache:
                    cache[key] = float(scorer(estimator, _withhold(data, mask), y))
                scores[r, j, repeat] = cache[key]
                fractions[r, j] = mask.sum() / totals[j]
    spread = np.where(np.ptp(scores, axis=2) > 0, scores.std(axis=2), 0.0)
    return pd.DataFrame({
        "withheld": np.tile(np.array(labels, dtype=object), len(rates)),
        "missing_rate": np.repeat(rates, len(labels)),
        "withheld_fraction": fractions.ravel(),
        scoring: scores.mean(axis=2).ravel(),
        f"{scoring}_std": spread.ravel(),
    })
