"""MultimodalData: a sliceable container of per-sample values of several modalities.

One class with the indexing protocol scikit-learn's model selection relies on (length,
integer/slice/mask rows, ``shape``), kept in one module of about 590 lines because the
class is one object; value normalisation and input conversion already live in
:mod:`.values`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from .modality import KINDS, Modality, resolve_modality_spec
from .values import (
    _dataframe_to_dict,
    _normalise_values,
    _records_to_dict,
    _take,
)


class MultimodalData:
    """A sliceable container of per-sample values of several modalities.

    It is what scikit-learn's model selection tools need from ``X``: a length, a
    ``shape`` whose first entry is the number of samples, and integer, slice and
    boolean-mask indexing along samples. ``cross_val_score``, ``GridSearchCV``,
    ``StratifiedKFold``, ``train_test_split`` and Optuna take it unchanged.

    It also has the small part of the DataFrame interface that
    :func:`sklearn.inspection.permutation_importance` uses, with one modality per
    "column": ``iloc``, ``loc``, ``take``, ``index``, ``columns``, ``copy`` and
    assignment of a modality (``data["clinical"] = values``). Permutation importance
    therefore permutes whole modalities across samples, presence included. Rows are
    aligned by position: ``index`` is always 0 to ``n_samples - 1``.

    It is not one array: :func:`numpy.asarray` raises a ``TypeError`` (so does a
    scikit-learn transformer given it whole, such as ``StandardScaler``); preprocess a
    modality with :class:`~mmfusion_sklearn.ModalityTransformer` instead.

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
        For DataFrame input: ``{name: column, list of columns or Modality}`` saying
        which columns form which modality. None makes the whole DataFrame one tabular
        modality named ``"tabular"``. For other input: ``{name: kind or Modality}``
        without column names. The container keeps these specifications: a
        :class:`~mmfusion_sklearn.MultimodalFusionClassifier` with ``modalities=None``
        fitted on it uses them (kinds, ``image_size``, encoders), so that one
        specification serves both.

    Attributes
    ----------
    modality_names : list of str
        The names of the modalities held, in order.
    presence : pandas.DataFrame
        ``(n_samples, n_modalities)`` boolean frame: True where the sample has the
        modality.
    shape : tuple of int
        ``(n_samples, n_modalities)``.
    index : pandas.RangeIndex
        The positions of the samples, 0 to ``n_samples - 1``.
    columns : pandas.Index
        The modality names (the "columns" of the DataFrame interface).
    iloc : indexer
        Position-based indexing, ``data.iloc[rows]`` or ``data.iloc[rows, modalities]``.
    loc : indexer
        Label-based indexing: sample labels are their positions, modality labels their
        names (``data.loc[mask, ["clinical"]]``).

    See Also
    --------
    ModalityTransformer : Apply a scikit-learn transformer to one modality.

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
    >>> data.iloc[[2, 0, 1], 0].presence["clinical"].tolist()   # one modality, permuted
    [True, True, False]
    """

    def __init__(self, X: Any, modalities: Mapping[str, Any] | None = None) -> None:
        if isinstance(X, MultimodalData):
            self._values = dict(X._values)
            self._presence = dict(X._presence)
            self._n_samples = X._n_samples
            self._specs = _kept_specs(X._specs, self._values, modalities)
            self._labels = X._labels
            return
        specs = None
        labels = None
        if isinstance(X, pd.DataFrame):
            labels = X.index
            X, specs = _dataframe_to_dict(X, modalities)
        elif isinstance(X, Mapping):
            labels = _common_labels(X)
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
            _check_name(name)
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
        self._specs = specs if specs is not None else _kept_specs(None, self._values,
                                                                  modalities)
        self._labels = None if labels is None or _is_default(labels, self._n_samples) \
            else labels

    @classmethod
    def _assemble(
        cls, values: dict[str, Any], presence: dict[str, np.ndarray], n_samples: int,
        specs: dict[str, Modality] | None, labels: pd.Index | None = None,
    ) -> MultimodalData:
        """A container from already normalised parts (no copies, no checks)."""
        data = cls.__new__(cls)
        data._values = values
        data._presence = presence
        data._n_samples = n_samples
        data._specs = None if specs is None else {k: specs[k] for k in values if k in specs}
        data._labels = labels
        return data

    @property
    def sample_labels(self) -> pd.Index:
        """The samples' labels: their DataFrames' index, else 0 to ``n_samples - 1``.

        The index of the DataFrame(s) the data came from (e.g. patient IDs) is kept
        through slicing.

        Rows still align by position (:attr:`index` is always the positions); the
        labels are what reports such as
        :func:`~mmfusion_sklearn.metrics.modality_contributions` give back as their
        index.
        """
        labels = getattr(self, "_labels", None)
        return pd.RangeIndex(self._n_samples) if labels is None else labels

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
        return self._rows(np.arange(self._n_samples)[key])

    def _rows(self, index: np.ndarray) -> MultimodalData:
        """The samples at the positions ``index`` (an integer array)."""
        return MultimodalData._assemble(
            {k: _take(v, index) for k, v in self._values.items()},
            {k: v[index] for k, v in self._presence.items()},
            len(index),
            self._specs,
            None if getattr(self, "_labels", None) is None else self._labels[index],
        )

    def _modalities(self, names: list[str]) -> MultimodalData:
        """The same samples with only the modalities ``names``, in that order."""
        return MultimodalData._assemble(
            {k: self._values[k] for k in names}, {k: self._presence[k] for k in names},
            self._n_samples, self._specs, getattr(self, "_labels", None),
        )

    def _withheld(self, withheld: np.ndarray) -> MultimodalData:
        """The same samples with modality j marked absent where ``withheld[:, j]``
        (columns in the order of ``modality_names``); the values are shared."""
        return MultimodalData._assemble(
            dict(self._values),
            {k: self._presence[k] & ~withheld[:, j] for j, k in enumerate(self._values)},
            self._n_samples, self._specs, getattr(self, "_labels", None),
        )

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

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        names = ", ".join(
            f"{name!r}: {_describe(values)}" for name, values in self._values.items()
        )
        raise TypeError(
            f"MultimodalData is not one array: it holds {len(self._values)} modalities "
            f"({names}), each with its own values and missing samples, so it cannot "
            "become one numeric array. A scikit-learn transformer such as StandardScaler "
            "cannot take it whole: to preprocess a modality, put "
            "mmfusion_sklearn.ModalityTransformer([(name, transformer)]) in the "
            "pipeline before the classifier; data.values(name) gives one modality's "
            "values."
        )

    # -- the DataFrame interface of permutation_importance -----------------------
    @property
    def index(self) -> pd.RangeIndex:
        """The positions of the samples, 0 to ``n_samples - 1`` (rows align by position)."""
        return pd.RangeIndex(self._n_samples)

    @index.setter
    def index(self, value: Any) -> None:
        if not pd.Index(value).equals(self.index):
            raise ValueError(
                "MultimodalData aligns samples by position: its index is always "
                f"0 .. {self._n_samples - 1}. Got {pd.Index(value)!r:.120} instead."
            )

    @property
    def columns(self) -> pd.Index:
        """The modality names: the "columns" of the DataFrame interface."""
        return pd.Index(list(self._values), dtype=object)

    @property
    def iloc(self) -> _PositionIndexer:
        """Position-based indexing: ``data.iloc[rows]`` or ``data.iloc[rows, modalities]``.

        ``rows`` is an integer, a slice, integer positions or a boolean mask;
        ``modalities`` the same over the modalities. An integer modality gives a
        container of that one modality (a "column"); an integer row of an integer
        modality gives that sample's value (None where it is absent).
        """
        return _PositionIndexer(self)

    @property
    def loc(self) -> _LabelIndexer:
        """Label-based indexing: ``data.loc[rows]`` or ``data.loc[rows, names]``.

        Sample labels are their positions (``index``), modality labels their names;
        slices include their end, as in pandas.
        """
        return _LabelIndexer(self)

    def take(self, indices: Any, axis: int = 0) -> MultimodalData:
        """Return the samples (``axis=0``) or modalities (``axis=1``) at ``indices``.

        Parameters
        ----------
        indices : array-like of int
            Positions, negative ones counting from the end.
        axis : {0, 1}, default=0
            0 takes samples, 1 takes modalities.

        Returns
        -------
        MultimodalData
            A new container (the values are not copied).
        """
        indices = np.asarray(indices, dtype=np.intp).reshape(-1)
        if axis == 0:
            return self._rows(np.arange(self._n_samples)[indices])
        if axis == 1:
            return self._modalities([self.modality_names[i] for i in indices])
        raise ValueError(f"MultimodalData.take takes axis 0 or 1. Got {axis!r} instead.")

    def copy(self, deep: bool = False) -> MultimodalData:
        """Return a new container of the same samples and modalities.

        Parameters
        ----------
        deep : bool, default=False
            Also copy the stored values. A shallow copy shares them, which is safe for
            assigning modalities (``copy["name"] = ...``): the package never writes
            into stored values.

        Returns
        -------
        MultimodalData
            The copy.
        """
        values = {k: _copy_values(v) if deep else v for k, v in self._values.items()}
        return MultimodalData._assemble(
            values, {k: v.copy() for k, v in self._presence.items()}, self._n_samples,
            self._specs, getattr(self, "_labels", None),
        )

    def __setitem__(self, name: str, value: Any) -> None:
        """Set (or add) modality ``name``: per-sample values, or a one-modality container."""
        _check_name(name)
        if isinstance(value, MultimodalData):
            if value.shape[1] != 1:
                raise ValueError(
                    f"Only one modality can be assigned to {name!r}. Got a MultimodalData "
                    f"of {value.shape[1]} modalities ({value.modality_names}) instead."
                )
            (source,) = value.modality_names
            stored, present = value._values[source], value._presence[source]
            spec = (value._specs or {}).get(source)
        else:
            stored, present = _normalise_values(name, value)
            spec = None
        if len(present) != self._n_samples:
            raise ValueError(
                f"Modality {name!r} must have one value per sample ({self._n_samples}). "
                f"Got {len(present)} instead."
            )
        self._values[name] = stored
        self._presence[name] = present
        if name not in (self._specs or {}) and (self._specs is not None or spec is not None):
            # every modality of a container with specifications has one (inferred: Modality())
            specs = self._specs or {k: Modality() for k in self._values}
            self._specs = {k: specs.get(k, Modality()) for k in self._values}
            if spec is not None:
                self._specs[name] = spec


class _PositionIndexer:
    """``MultimodalData.iloc``: positions of samples and of modalities."""

    def __init__(self, data: MultimodalData) -> None:
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        data = self._data
        if not isinstance(key, tuple):
            return data[key]
        if len(key) != 2:
            raise IndexError(
                "MultimodalData.iloc takes [rows] or [rows, modalities]. Got "
                f"{len(key)} indices instead."
            )
        rows, columns = key
        names = data.modality_names
        if isinstance(columns, numbers.Integral) and not isinstance(columns, bool):
            column = data._modalities([names[int(columns)]])
            if isinstance(rows, numbers.Integral) and not isinstance(rows, bool):
                return column._record(int(rows)).get(names[int(columns)])
            return column[rows]
        picked = np.arange(len(names))[columns]
        return data._modalities([names[i] for i in np.atleast_1d(picked)])[rows]


class _LabelIndexer:
    """``MultimodalData.loc``: sample labels (= positions) and modality names."""

    def __init__(self, data: MultimodalData) -> None:
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        data = self._data
        if not isinstance(key, tuple):
            return data.iloc[_positions(data.index, key, "sample")]
        if len(key) != 2:
            raise IndexError(
                "MultimodalData.loc takes [rows] or [rows, modalities]. Got "
                f"{len(key)} indices instead."
            )
        rows, columns = key
        return data.iloc[_positions(data.index, rows, "sample"),
                         _positions(data.columns, columns, "modality")]


def _positions(index: pd.Index, key: Any, what: str) -> Any:
    """Positions in ``index`` of the labels ``key`` (a label, labels, a mask, a slice)."""
    if isinstance(key, slice):
        return index.slice_indexer(key.start, key.stop, key.step)
    if isinstance(key, (str, numbers.Integral)) and not isinstance(key, bool):
        if key not in index:
            raise KeyError(f"No {what} labelled {key!r}; the labels are {list(index)[:10]}.")
        return int(index.get_loc(key))
    labels = np.asarray(key)
    if labels.dtype == bool:
        return labels
    positions = index.get_indexer(labels.reshape(-1))
    if (positions < 0).any():
        unknown = labels.reshape(-1)[positions < 0].tolist()
        raise KeyError(f"No {what} labelled {unknown[:10]}; the labels are {list(index)[:10]}.")
    return positions


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise ValueError(f"Modality names must be strings. Got {name!r} instead.")
    if not name:
        raise ValueError("Modality names must be non-empty strings. Got '' instead.")


def _describe(values: Any) -> str:
    """A few words on one modality's stored values (for messages)."""
    if isinstance(values, pd.DataFrame):
        return f"a table of {values.shape[1]} columns"
    if values.dtype == object:
        return "per-sample items"
    return f"an array of shape {values.shape}"


def _copy_values(values: Any) -> Any:
    return values.copy(deep=True) if isinstance(values, pd.DataFrame) else values.copy()


def _kept_specs(
    old: dict[str, Modality] | None, values: Mapping[str, Any], modalities: Any
) -> dict[str, Modality] | None:
    """The specifications a container built from a dict, records or a MultimodalData
    keeps: ``old`` (a MultimodalData's), updated with ``modalities`` (kinds and
    Modality objects; column names only where they are those ``old`` was built from)."""
    new = resolve_modality_spec(modalities)
    if new is None:
        return None if old is None else {k: old[k] for k in values if k in old}
    specs = dict(old or {})
    for name, modality in new.items():
        held = specs.get(name)
        if modality.columns is not None and not (
            held is not None and _same_columns(modality.columns, held.columns)
        ):
            what = (f"is {modality.columns!r}, which is not a kind {list(KINDS)}"
                    if modality.kind is None else f"names columns {modality.columns!r}")
            raise ValueError(
                f"Modality {name!r} in 'modalities' {what}; column names apply to "
                "DataFrame input only. Give a kind or a Modality without columns."
            )
        specs[name] = modality if held is None else replace(modality, columns=held.columns)
    return {k: specs.get(k, Modality()) for k in values}


def _same_columns(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    listed = [[a] if isinstance(a, str) else list(a), [b] if isinstance(b, str) else list(b)]
    return listed[0] == listed[1]


def recorded_spec(data: MultimodalData) -> dict[str, Modality] | None:
    """The modality specifications ``data`` was built with (None if it was given none).

    Every modality ``data`` holds has one; those of a DataFrame's modalities carry
    the columns they were built from.
    """
    return None if data._specs is None else dict(data._specs)


def as_multimodal(X: Any, modalities: Mapping[str, Modality] | None = None) -> MultimodalData:
    """Return ``X`` as a :class:`MultimodalData` (unchanged if it already is one)."""
    if isinstance(X, MultimodalData):
        return X
    return MultimodalData(X, modalities=modalities)


def _is_default(labels: pd.Index, n: int) -> bool:
    """Whether ``labels`` are the positions 0 .. n-1 (a default RangeIndex)."""
    return isinstance(labels, pd.RangeIndex) and labels.equals(pd.RangeIndex(n))


def _common_labels(X: Mapping[str, Any]) -> pd.Index | None:
    """The row labels that a dict's DataFrames (and Series) agree on.

    Rows of a dict align by position; DataFrames that carry their own row labels (not
    the default 0 .. n-1) must carry the same labels in the same order, or a patient's
    table would meet another patient's image. Returns those labels, or None.
    """
    labelled = [(name, values.index) for name, values in X.items()
                if isinstance(values, (pd.DataFrame, pd.Series))
                and not _is_default(values.index, len(values))]
    if not labelled:
        return None
    first_name, first = labelled[0]
    for name, labels in labelled[1:]:
        if labels.equals(first):
            continue
        if len(labels) == len(first) and set(labels) == set(first):
            raise ValueError(
                f"Modalities {first_name!r} and {name!r} hold the same rows in another "
                "order (their indexes differ): rows align by position, so align them "
                f"first, e.g. X[{name!r}] = X[{name!r}].loc[X[{first_name!r}].index]."
            )
        differ = next((a, b) for a, b in zip(first, labels) if a != b) \
            if len(labels) == len(first) else (len(first), len(labels))
        raise ValueError(
            f"Modalities {first_name!r} and {name!r} have different row labels (e.g. "
            f"{differ[0]!r} and {differ[1]!r}): rows align by position, so give every "
            "DataFrame the same index in the same order (or reset_index(drop=True) "
            "where the order already matches)."
        )
    return first
