"""MultimodalData: a sliceable container of per-sample values of several modalities."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from .modality import Modality, resolve_modality_spec


def _is_missing_item(item: Any) -> bool:
    if item is None:
        return True
    if isinstance(item, float) and np.isnan(item):
        return True
    return item is pd.NA


def _rows_all_nan(values: np.ndarray) -> np.ndarray:
    """True for the rows (axis 0) of a float array whose every entry is NaN."""
    flat = values.reshape(len(values), int(np.prod(values.shape[1:])))
    if flat.shape[1] == 0:
        return np.ones(len(values), dtype=bool)
    return np.isnan(flat).all(axis=1)


def _table_presence(frame: pd.DataFrame) -> np.ndarray:
    if frame.shape[1] == 0:
        return np.zeros(len(frame), dtype=bool)
    return ~frame.isna().all(axis=1).to_numpy()


def _normalise_values(name: str, values: Any) -> tuple[Any, np.ndarray]:
    """Turn one modality's per-sample values into (stored values, presence mask).

    Stored values are a DataFrame (tables), a numeric ndarray with samples on axis 0,
    or a 1-D object ndarray of items (arrays, file paths, dicts, or None).
    """
    if isinstance(values, pd.DataFrame):
        return values, _table_presence(values)
    if isinstance(values, pd.Series):
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            # paths, arrays or strings (pandas >= 3 gives strings their own dtype)
            values = values.to_numpy(dtype=object)
        else:
            frame = values.to_frame()
            return frame, _table_presence(frame)
    if isinstance(values, (list, tuple)):
        items = np.empty(len(values), dtype=object)
        items[:] = list(values) if len(values) else []
        values = items
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        present = np.array([not _is_missing_item(v) for v in values], dtype=bool)
        dict_items = [v for v in values[present] if isinstance(v, Mapping)]
        if dict_items and len(dict_items) == present.sum():
            # Per-sample feature dicts (records of a tabular modality) become a table.
            frame = pd.DataFrame.from_records(
                [v if p else {} for v, p in zip(values, present)]
            )
            return frame, _table_presence(frame)
        return values, present
    if hasattr(values, "toarray") or hasattr(values, "tocsr"):
        raise TypeError(
            f"Modality {name!r}: sparse matrices are not supported; pass a dense "
            "array or a DataFrame instead."
        )
    array = np.asarray(values)
    if array.ndim == 0:
        raise ValueError(
            f"Modality {name!r} must hold one value per sample along its first axis. "
            f"Got a scalar {values!r} instead. (For a single sample given as a record, "
            "pass a list of records: [record].)"
        )
    if array.dtype == object:
        items = np.empty(len(array), dtype=object)
        items[:] = list(array)
        return _normalise_values(name, items)
    if array.dtype.kind == "c":
        raise ValueError(
            f"Modality {name!r} has complex values, which a classifier cannot use. Pass "
            "real numbers (e.g. the magnitude and the phase as two columns)."
        )
    if array.dtype.kind == "f":
        return array, ~_rows_all_nan(array)
    if array.dtype.kind in "iub":
        return array, np.ones(len(array), dtype=bool)
    if array.dtype.kind in "US" and array.ndim == 1:
        items = np.empty(len(array), dtype=object)
        items[:] = [str(v) for v in array]
        return items, np.ones(len(array), dtype=bool)
    if array.dtype.kind in "US" and array.ndim == 2:
        # a table of strings: every column is a categorical feature
        frame = pd.DataFrame(array.astype(object),
                             columns=[str(i) for i in range(array.shape[1])])
        return frame, _table_presence(frame)
    if array.dtype.kind in "US":
        raise ValueError(
            f"Modality {name!r} is a {array.ndim}-D array of strings; strings form a "
            "table (2-D) or a list of file paths (1-D)."
        )
    raise ValueError(
        f"Modality {name!r} has values of unsupported dtype {array.dtype}. Pass numbers, "
        "arrays, file paths or a DataFrame."
    )


def _take(values: Any, index: np.ndarray) -> Any:
    if isinstance(values, pd.DataFrame):
        return values.iloc[index]
    return values[index]


class MultimodalData:
    """A sliceable container of per-sample values of several modalities.

    It is what scikit-learn's model selection tools need from ``X``: a length, a
    ``shape`` whose first entry is the number of samples, and integer, slice and
    boolean-mask indexing along samples. ``cross_val_score``, ``GridSearchCV``,
    ``StratifiedKFold``, ``train_test_split`` and Optuna take it unchanged.

    Parameters
    ----------
    X : dict, list of dict, pandas.DataFrame or MultimodalData
        A dict ``{modality name: per-sample values}``; a list of per-sample dicts
        (records: a key absent from a record is a modality missing for that sample);
        a DataFrame whose columns ``modalities`` assigns to modalities; or a
        MultimodalData (copied shallowly). Per-sample values may be a 2-D numeric array
        or a DataFrame (a table; an all-NaN row is a missing modality), an array with
        samples on axis 0 (images ``(n, H, W)``/``(n, C, H, W)``, volumes
        ``(n, C, D, H, W)``), or a list whose items are arrays, file paths, feature
        dicts or None (None marks the modality missing for that sample).
    modalities : dict, default=None
        Only for DataFrame input: ``{name: column, list of columns or Modality}``
        saying which columns form which modality. None makes the whole DataFrame one
        tabular modality named ``"tabular"``.

    Attributes
    ----------
    modality_names : list of str
        The names of the modalities held, in order.
    presence : pandas.DataFrame
        ``(n_samples, n_modalities)`` boolean frame: True where the sample has the
        modality.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalData
    >>> data = MultimodalData({
    ...     "clinical": np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0]]),
    ...     "image": [np.zeros((8, 8)), np.ones((8, 8)), None],
    ... })
    >>> data.shape
    (3, 2)
    >>> data.presence.to_numpy().tolist()
    [[True, True], [False, True], [True, False]]
    >>> len(data[[0, 2]])
    2
    """

    def __init__(self, X: Any, modalities: Mapping[str, Any] | None = None) -> None:
        if isinstance(X, MultimodalData):
            self._values = dict(X._values)
            self._presence = dict(X._presence)
            self._n_samples = X._n_samples
            return
        if isinstance(X, pd.DataFrame):
            X = _dataframe_to_dict(X, modalities)
        elif isinstance(X, (list, tuple)) and all(isinstance(r, Mapping) for r in X):
            X = _records_to_dict(X)
        if not isinstance(X, Mapping):
            raise TypeError(
                "X must be a dict {modality: values}, a list of per-sample dicts, a "
                f"DataFrame or a MultimodalData. Got {type(X).__name__} instead."
            )
        if not X:
            raise ValueError("X holds no modality: pass at least one.")
        self._values: dict[str, Any] = {}
        self._presence: dict[str, np.ndarray] = {}
        lengths = {}
        for name, values in X.items():
            if not isinstance(name, str):
                raise ValueError(f"Modality names must be strings. Got {name!r} instead.")
            if not name:
                raise ValueError("Modality names must be non-empty strings. Got '' instead.")
            stored, present = _normalise_values(name, values)
            self._values[name] = stored
            self._presence[name] = present
            lengths[name] = len(present)
        if len(set(lengths.values())) > 1:
            raise ValueError(
                "All modalities must have the same number of samples. Got "
                + ", ".join(f"{k!r}: {v}" for k, v in lengths.items())
                + " instead."
            )
        self._n_samples = next(iter(lengths.values()))

    # -- sample axis -------------------------------------------------------------
    def __len__(self) -> int:
        return self._n_samples

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_modalities)``."""
        return (self._n_samples, len(self._values))

    @property
    def modality_names(self) -> list[str]:
        """The names of the modalities held, in order."""
        return list(self._values)

    @property
    def presence(self) -> pd.DataFrame:
        """Boolean frame ``(n_samples, n_modalities)``: True where a sample has it."""
        return pd.DataFrame(self._presence, index=pd.RangeIndex(self._n_samples))

    def values(self, name: str) -> Any:
        """Return the stored per-sample values of modality ``name``.

        Parameters
        ----------
        name : str
            A modality held by this container.

        Returns
        -------
        pandas.DataFrame or ndarray
            A table, a numeric array with samples on axis 0, or a 1-D object array of
            per-sample items (arrays, file paths or None).
        """
        return self._values[name]

    def present(self, name: str) -> np.ndarray:
        """Return the boolean presence mask of modality ``name`` (all False if absent).

        Parameters
        ----------
        name : str
            A modality name; one this container does not hold is absent everywhere.

        Returns
        -------
        ndarray of bool of shape (n_samples,)
            True where the sample has the modality.
        """
        if name not in self._presence:
            return np.zeros(self._n_samples, dtype=bool)
        return self._presence[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._values[key]
        if isinstance(key, tuple):
            # scikit-learn indexes array-likes as X[key, ...]
            rest = key[1:]
            if not all(k is Ellipsis or k == slice(None) for k in rest):
                raise IndexError("MultimodalData is indexed along samples only.")
            key = key[0]
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            return self._record(int(key))
        index = np.arange(self._n_samples)[key]
        subset = MultimodalData.__new__(MultimodalData)
        subset._values = {k: _take(v, index) for k, v in self._values.items()}
        subset._presence = {k: v[index] for k, v in self._presence.items()}
        subset._n_samples = len(index)
        return subset

    def _record(self, i: int) -> dict[str, Any]:
        if not -self._n_samples <= i < self._n_samples:
            raise IndexError(f"Sample {i} is out of range for {self._n_samples} samples.")
        record = {}
        for name, values in self._values.items():
            if self._presence[name][i]:
                record[name] = values.iloc[i] if isinstance(values, pd.DataFrame) else values[i]
        return record

    def __iter__(self):
        for i in range(self._n_samples):
            yield self._record(i)

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{k}: {int(p.sum())}/{self._n_samples}" for k, p in self._presence.items()
        )
        return f"MultimodalData(n_samples={self._n_samples}, present={{{counts}}})"


def _records_to_dict(records: list[Mapping[str, Any]]) -> dict[str, list]:
    names: dict[str, None] = {}
    for record in records:
        for name in record:
            names.setdefault(name, None)
    if not names:
        raise ValueError("X holds no modality: every record is empty.")
    return {name: [record.get(name) for record in records] for name in names}


def _dataframe_to_dict(
    frame: pd.DataFrame, modalities: Mapping[str, Any] | None
) -> dict[str, Any]:
    spec = resolve_modality_spec(modalities)
    if spec is None:
        return {"tabular": frame}
    out: dict[str, Any] = {}
    used: set = set()
    for name, modality in spec.items():
        columns = modality.columns if modality.columns is not None else name
        listed = [columns] if isinstance(columns, str) else list(columns)
        missing = [c for c in listed if c not in frame.columns]
        if len(missing) == len(listed):
            continue  # none of its columns: the modality is missing for every sample
        if missing:
            raise ValueError(
                f"Modality {name!r} refers to columns {missing} that X does not have "
                f"(it has the others of {listed})."
            )
        used.update(listed)
        if isinstance(columns, str) and (
            modality.kind in ("image", "volume")
            or (modality.kind is None and _object_column(frame[columns]))
        ):
            out[name] = frame[columns].to_numpy(dtype=object)
        else:
            out[name] = frame[listed]
    if not out:
        raise ValueError(
            f"X has none of the columns that 'modalities' assigns ({list(spec)}). "
            f"Its columns: {list(frame.columns)}."
        )
    unassigned = [c for c in frame.columns if c not in used]
    if unassigned:
        warnings.warn(
            f"Columns {unassigned} of X are assigned to no modality and are ignored.",
            UserWarning,
            stacklevel=3,
        )
    return out


def _object_column(column: pd.Series) -> bool:
    """True for a column of paths or arrays, or one with no value at all (not a plain
    numeric/categorical column)."""
    for item in column:
        if _is_missing_item(item):
            continue
        return isinstance(item, (str, PathLike, np.ndarray, list))
    return True


def as_multimodal(X: Any, modalities: Mapping[str, Modality] | None = None) -> MultimodalData:
    """Return ``X`` as a :class:`MultimodalData` (unchanged if it already is one)."""
    if isinstance(X, MultimodalData):
        return X
    return MultimodalData(X, modalities=modalities)
