"""Missing-modality scenarios for the quality benchmark: who loses which modality.

A data set here is a dict ``{modality: DataFrame or float ndarray}`` with one sample
per row. A modality is *withheld* from a sample by setting its whole row to NaN,
which :class:`~mmfusion_sklearn.MultimodalData` reads as "modality missing"; the
baselines see the same NaN rows. No function here ever withholds a sample's last
modality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Data = dict[str, Any]

#: Percentages of the eligible test samples that lose one modality.
MISSING_RATES = (25, 50, 75)


@dataclass(frozen=True)
class Scenario:
    """One test-time condition.

    Parameters
    ----------
    name : str
        Column label: ``"all"``, ``"<m> only"`` or ``"-<m> <rate>%"``.
    kind : {"all", "alone", "missing"}
        Every modality given; only modality ``modality``; or ``modality`` withheld
        from ``rate`` % of the test samples that have it and at least one other.
    modality : str or None
        The modality kept ("alone") or withheld ("missing").
    rate : int
        Percentage for "missing" (0 otherwise).
    """

    name: str
    kind: str
    modality: str | None = None
    rate: int = 0


def as_nullable(X: Data) -> Data:
    """Copy ``X`` with integer and boolean table columns as floats (so rows can be NaN).

    Parameters
    ----------
    X : dict
        Modality name to DataFrame or ndarray.

    Returns
    -------
    dict
        The same data; tables with no integer/boolean columns are not copied.
    """
    out: Data = {}
    for name, values in X.items():
        if isinstance(values, pd.DataFrame):
            ints = [c for c in values.columns if values[c].dtype.kind in "iub"]
            values = values.astype(dict.fromkeys(ints, np.float64)) if ints else values
        else:
            values = np.asarray(values, dtype=np.float32)
        out[name] = values
    return out


def take(X: Data, index: np.ndarray) -> Data:
    """Rows ``index`` of every modality (tables re-indexed from 0).

    Parameters
    ----------
    X : dict
        Modality name to DataFrame or ndarray.
    index : ndarray of int or bool
        Rows to keep.

    Returns
    -------
    dict
        The selected rows.
    """
    return {
        name: v.iloc[index].reset_index(drop=True) if isinstance(v, pd.DataFrame) else v[index]
        for name, v in X.items()
    }


def presence(X: Data) -> np.ndarray:
    """``(n, M)`` boolean matrix: True where a sample has the modality (a non-NaN cell).

    Parameters
    ----------
    X : dict
        Modality name to DataFrame or ndarray.

    Returns
    -------
    ndarray of bool
        One column per modality, in the order of ``X``.
    """
    columns = []
    for values in X.values():
        if isinstance(values, pd.DataFrame):
            columns.append(~values.isna().all(axis=1).to_numpy())
        else:
            flat = np.asarray(values).reshape(len(values), -1)
            columns.append(~np.isnan(flat).all(axis=1))
    return np.column_stack(columns)


def withhold(X: Data, remove: np.ndarray) -> Data:
    """Copy ``X`` with modality ``j`` set to NaN in the rows where ``remove[:, j]``.

    Parameters
    ----------
    X : dict
        Modality name to DataFrame or float ndarray (see :func:`as_nullable`).
    remove : ndarray of bool, shape (n, M)
        Cells to withhold, columns in the order of ``X``.

    Returns
    -------
    dict
        The data with those modalities missing; untouched modalities are shared.
    """
    out: Data = {}
    for j, (name, values) in enumerate(X.items()):
        rows = remove[:, j]
        if not rows.any():
            out[name] = values
        elif isinstance(values, pd.DataFrame):
            values = values.copy()
            values.iloc[np.flatnonzero(rows), :] = np.nan
            out[name] = values
        else:
            values = values.copy()
            values[rows] = np.nan
            out[name] = values
    return out


def added_missingness(present: np.ndarray, fraction: float, seed: Any) -> np.ndarray:
    """Training regime "added": a fraction of the samples lose one random modality.

    Only samples with at least two modalities are eligible; ``fraction`` of them
    (rounded) lose one of their modalities, chosen uniformly.

    Parameters
    ----------
    present : ndarray of bool, shape (n, M)
        Presence before removal.
    fraction : float
        Fraction of the eligible samples that lose a modality.
    seed : int or sequence of int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    ndarray of bool, shape (n, M)
        The cells to withhold.
    """
    rng = np.random.default_rng(seed)
    remove = np.zeros_like(present)
    eligible = np.flatnonzero(present.sum(axis=1) >= 2)
    chosen = rng.permutation(eligible)[: round(fraction * len(eligible))]
    for i in chosen:
        remove[i, rng.choice(np.flatnonzero(present[i]))] = True
    return remove


def make_scenarios(
    names: list[str], present: np.ndarray, seed: Any
) -> list[tuple[Scenario, np.ndarray, np.ndarray]]:
    """Every test-time scenario with its sample mask and withheld cells.

    "missing" scenarios are nested: the samples losing modality m at 25 % also lose
    it at 50 % and 75 %. The eligible samples for m are those with m and at least
    one other modality, so no sample loses its last modality.

    Parameters
    ----------
    names : list of str
        Modality names, in column order of ``present``.
    present : ndarray of bool, shape (n, M)
        Presence in the test set (natural missingness).
    seed : int or sequence of int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    list of (Scenario, keep, remove)
        ``keep`` (n,) selects the samples scored (those with the modality in an
        "alone" scenario, all otherwise); ``remove`` (n, M) the withheld cells.
    """
    rng = np.random.default_rng(seed)
    n, n_mod = present.shape
    out = [(Scenario("all", "all"), np.ones(n, bool), np.zeros((n, n_mod), bool))]
    if n_mod == 1:
        return out
    for j, name in enumerate(names):
        remove = np.ones((n, n_mod), bool)
        remove[:, j] = False
        out.append((Scenario(f"{name} only", "alone", name), present[:, j].copy(), remove))
    for j, name in enumerate(names):
        eligible = np.flatnonzero(present[:, j] & (present.sum(axis=1) >= 2))
        order = rng.permutation(eligible)
        for rate in MISSING_RATES:
            remove = np.zeros((n, n_mod), bool)
            remove[order[: round(rate / 100 * len(eligible))], j] = True
            scenario = Scenario(f"-{name} {rate}%", "missing", name, rate)
            out.append((scenario, np.ones(n, bool), remove))
    return out
