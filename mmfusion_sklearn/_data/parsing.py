"""Turn any accepted X into a MultimodalData and its modalities into model arrays.

This module sits between input parsing (``_data``, ``_preprocessing``) and the
estimator; it uses numpy only.
"""

from __future__ import annotations

from copy import copy
from typing import Any

import numpy as np
import pandas as pd

from . import KINDS, Modality, MultimodalData, infer_kind, recorded_spec
from .inference import path_kind
from .messages import samples_have


def is_multimodal_input(X: Any, spec: dict[str, Modality] | None) -> bool:
    """True when X is one of the multimodal forms (dict, records, MultimodalData,
    DataFrame whose columns ``spec`` assigns), False for a plain table or array."""
    if hasattr(X, "tocsr"):  # scipy sparse (the DOK format is a dict subclass)
        return False
    if isinstance(X, (MultimodalData, dict)):
        return True
    if isinstance(X, (list, tuple)) and len(X) and all(isinstance(r, dict) for r in X):
        return True
    if isinstance(X, (list, tuple)) and any(isinstance(r, dict) for r in X):
        row = next(i for i, r in enumerate(X) if not isinstance(r, dict))
        raise ValueError(
            f"X is a list of records (dicts, one per sample), but row {row} is a "
            f"{type(X[row]).__name__}: {X[row]!r:.80}. Every record must be a dict "
            "{modality: value}; use {} for a sample with no value."
        )
    if isinstance(X, pd.DataFrame) and spec is not None:
        return len(spec) > 1 or any(m.columns is not None for m in spec.values())
    return False


def check_no_column_specs(
    spec: dict[str, Modality] | None, data: MultimodalData | None = None
) -> None:
    """Reject column names in ``modalities`` for input that has no columns.

    A string that is not a kind is read as a column name, which only a DataFrame has;
    with a dict, records or MultimodalData it is most likely a misspelt kind. A
    MultimodalData built from a DataFrame is the exception: ``modalities`` may name
    the columns that each of its modalities was built from.
    """
    built = recorded_spec(data) if data is not None else None
    for name, modality in (spec or {}).items():
        if modality.kind is None and modality.columns is not None:
            held = (built or {}).get(name)
            if held is not None and held.columns == modality.columns:
                continue
            if held is not None and held.columns is not None:
                raise ValueError(
                    f"Modality {name!r} in 'modalities' is {modality.columns!r}, which is "
                    f"neither a kind {list(KINDS)} nor the column that X's modality "
                    f"{name!r} was built from ({held.columns!r})."
                )
            raise ValueError(
                f"Modality {name!r} in 'modalities' is {modality.columns!r}, which is not "
                f"a kind {list(KINDS)}; column names apply to DataFrame input only."
            )


def multimodal_input(
    X: Any, spec: dict[str, Modality] | None, *, check_columns: bool
) -> MultimodalData | None:
    """``X`` as MultimodalData when it is a multimodal form, None for a plain table.

    A DataFrame is split into modalities by the columns of ``spec``; with
    ``check_columns`` (fit), column names in ``spec`` are refused for input that has
    no columns (see :func:`check_no_column_specs`).
    """
    if not is_multimodal_input(X, spec):
        return None
    if isinstance(X, pd.DataFrame):
        data = MultimodalData(X, modalities=spec)
    else:
        if check_columns:
            check_no_column_specs(spec, X if isinstance(X, MultimodalData) else None)
        data = MultimodalData(X)
    if len(data) == 0:
        raise ValueError("Found array with 0 sample(s) in X while a minimum of 1 is required.")
    return data


def fitted_column_spec(modalities: dict[str, Modality] | None) -> dict[str, Modality] | None:
    """The fitted modalities when they say which DataFrame columns form them, else None.

    A model fitted with ``modalities=None`` on a MultimodalData built from a DataFrame
    reads a DataFrame at prediction with the columns that container was built from.
    """
    if modalities and any(m.columns is not None for m in modalities.values()):
        return modalities
    return None


def input_data(X: Any, spec: dict[str, Modality] | None) -> MultimodalData:
    """Any input form the estimator takes, as MultimodalData, without its bookkeeping.

    The multimodal forms as in :func:`multimodal_input`; a plain DataFrame or 2-D array
    is one tabular modality (named by ``spec`` when it declares one modality, else
    ``"tabular"``), an array of 3 or more dimensions one image or volume modality.
    """
    data = multimodal_input(X, spec, check_columns=True)
    if data is not None:
        return data
    name = next(iter(spec)) if spec is not None and len(spec) == 1 else None
    if isinstance(X, pd.DataFrame):
        check_no_array_columns(X)
        return MultimodalData({name or "tabular": X})
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError(
            "X is a sparse matrix, which is not supported; pass a dense array, a "
            f"DataFrame or a dict of modalities. Got {type(X).__name__} instead."
        )
    array = np.asarray(X)
    if array.ndim >= 3 and array.dtype != object:
        return MultimodalData({name or ("volume" if array.ndim == 5 else "image"): array})
    if array.ndim != 2:
        raise ValueError(
            "X must be a dict of modalities, a list of records, a MultimodalData, a "
            f"DataFrame or a 2-D array. Got a {array.ndim}-D array instead."
        )
    return MultimodalData({name or "tabular": array})


def check_no_array_columns(frame: pd.DataFrame) -> None:
    """Reject a plain DataFrame (no column assignment) holding arrays in a column, or
    columns that share a name (a name would then select several columns)."""
    names = [str(c) for c in frame.columns]
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise ValueError(
            f"X has duplicate column names {duplicated}: rename them (each column of a "
            "table needs its own name)."
        )
    for position, column in enumerate(frame.columns):
        values = frame.iloc[:, position]
        dtype = values.dtype
        if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            continue
        first = next((v for v in values if v is not None), None)
        if isinstance(first, str) and path_kind(first) is not None:
            raise ValueError(
                f"Column {column!r} of X holds file paths ({first!r}), so X is not one "
                "table. Say which columns form which modality, e.g. modalities={'image': "
                f"{column!r}, 'clinical': [...]}}."
            )
        if isinstance(first, (np.ndarray, list, tuple)):
            raise ValueError(
                f"Column {column!r} of X holds arrays, so X is not one table. Say which "
                "columns form which modality, e.g. modalities={'image': "
                f"{column!r}, 'clinical': [...]}}."
            )


def resolve_modalities(
    data: MultimodalData, spec: dict[str, Modality] | None
) -> dict[str, Modality]:
    """The fitted modalities: every modality of ``data`` with its kind resolved.

    Without ``spec``, the specifications ``data`` was built with apply (a
    MultimodalData built with ``modalities``), else every kind is inferred.

    Raises
    ------
    ValueError
        If ``spec`` declares a modality that ``data`` lacks entirely, or ``data`` holds
        one that ``spec`` does not declare.
    """
    names = data.modality_names
    if spec is None:  # the specifications X was built with, if any
        spec = recorded_spec(data)
    if spec is not None:
        absent = [name for name in spec if name not in data]
        if absent:
            raise ValueError(
                f"Modalities {absent} are declared in 'modalities' but X has none of "
                "their values in fit: a model cannot learn a modality it never sees."
            )
        undeclared = [name for name in names if name not in spec]
        if undeclared:
            raise ValueError(
                f"X holds modalities {undeclared} that 'modalities' does not declare. "
                f"Declared: {list(spec)}."
            )
        names = list(spec)
    resolved = {}
    for name in names:
        modality = copy(spec[name]) if spec is not None else Modality()
        if not data.present(name).any():
            raise ValueError(
                f"Modality {name!r} is missing for every sample in fit; drop it or "
                "provide some of its values."
            )
        if modality.kind is None:
            modality = modality.with_kind(
                infer_kind(name, data.values(name), data.present(name))
            )
        resolved[name] = modality
    return resolved


def check_known_modalities(data: MultimodalData, modalities: dict[str, Modality]) -> None:
    """Raise a ValueError naming any modality of ``data`` unseen in fit."""
    unknown = [name for name in data.modality_names if name not in modalities]
    if unknown:
        raise ValueError(
            f"X has modalities {unknown} that were not seen in fit. Known modalities: "
            f"{list(modalities)}."
        )


def presence_matrix(data: MultimodalData, names: list[str]) -> np.ndarray:
    """(n, M) boolean presence in the order of ``names``; absent keys are all False."""
    present = np.stack([data.present(name) for name in names], axis=1)
    empty = np.flatnonzero(~present.any(axis=1))
    if len(empty):
        raise ValueError(
            f"{samples_have(empty)} no modality at all; every sample needs "
            f"at least one of {names}."
        )
    return present
