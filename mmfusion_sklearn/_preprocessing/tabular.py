"""Fitted preprocessing of tables and embedding vectors into float32 matrices.

The state is plain JSON (lists, numbers, strings) so that a fitted model can be saved
without pickle.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .._data.messages import rows_text as _rows_text
from .._data.messages import user_stacklevel
from .._data.values import _is_missing_item
from .columns import (
    _has_names,
    _value_kind,
    _warn_identifier_column,
    _warn_mixed_column,
)


def as_frame(name: str, values: Any) -> pd.DataFrame:
    """Return a tabular modality's stored values as a DataFrame (rows = samples)."""
    if isinstance(values, pd.DataFrame):
        return values.reset_index(drop=True)
    if values.dtype != object:
        array = np.asarray(values)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(
                f"Tabular modality {name!r} must be 2-D (samples x features). Got an "
                f"array of shape {array.shape} instead."
            )
        return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])
    # object items: 1-D vectors, scalars (one categorical/numeric column) or None
    first = next((v for v in values if not _is_missing_item(v)), None)
    if first is not None and np.ndim(first) == 1:
        width = len(first)
        rows = []
        for i, item in enumerate(values):
            if _is_missing_item(item):
                rows.append(np.full(width, np.nan))
                continue
            vector = np.asarray(item, dtype=float)
            if vector.shape != (width,):
                raise ValueError(
                    f"Tabular modality {name!r}: row {i} has {vector.size} features "
                    f"but row 0 of the present rows has {width}."
                )
            rows.append(vector)
        return pd.DataFrame(np.vstack(rows), columns=[str(i) for i in range(width)])
    # numbers (with None for missing) stay numeric; strings/mixed stay object
    return pd.DataFrame({name: pd.Series(list(values), dtype=object).infer_objects()})


#: Largest magnitude a preprocessed value may have: the network runs in float32, where
#: squares and sums of larger values overflow (a LayerNorm of 1e30 is NaN).
MAX_ABS_VALUE = 1e15


def check_magnitude(name: str, out: np.ndarray, row_ids: np.ndarray | None = None) -> None:
    """Refuse preprocessed values beyond :data:`MAX_ABS_VALUE`, naming modality and rows."""
    flat = out.reshape(len(out), -1)
    if not flat.size or np.abs(flat).max() <= MAX_ABS_VALUE:
        return
    rows = np.flatnonzero(np.abs(flat).max(axis=1) > MAX_ABS_VALUE)
    if row_ids is not None:
        rows = np.asarray(row_ids)[rows]
    raise ValueError(
        f"Modality {name!r} has values too large for float32 arithmetic in rows "
        f"{_rows_text(rows)} (beyond {MAX_ABS_VALUE:g} after preprocessing). Rescale "
        "them, e.g. take a logarithm or change units."
    )


def warn_unseen_categories(name: str, unseen: Mapping[str, set]) -> None:
    """One warning per column naming the categories that fit never saw (pointing at the
    user's line)."""
    for column, categories in unseen.items():
        warnings.warn(
            f"Modality {name!r}, column {column!r}: categories {sorted(categories)[:10]} "
            "were not seen in fit and are encoded as all zeros.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def _check_unique_columns(name: str, frame: pd.DataFrame) -> None:
    names = [str(c) for c in frame.columns]
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise ValueError(
            f"Modality {name!r} has duplicate column names {duplicated}: rename them."
        )


def _is_categorical(column: pd.Series) -> bool:
    # object, string, category and boolean columns (pandas counts bool as numeric)
    return pd.api.types.is_bool_dtype(column.dtype) or not pd.api.types.is_numeric_dtype(
        column.dtype
    )


def _category_key(value: Any) -> str:
    """The string a category is stored under: 1, 1.0 and np.int64(1) all give "1"."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


class TabularPreprocessor:
    """Standardise numeric columns, add missing-value indicators, one-hot categoricals.

    Parameters
    ----------
    name : str
        Modality name, used in error messages.
    categorical : list of str, default=None
        Columns to one-hot encode even though they are numeric.

    Notes
    -----
    Statistics come from the rows where the modality is present. Missing numeric
    cells become the column mean (0 after scaling) and, for columns that had missing
    cells in fit, an indicator column set to 1. A category unseen in fit encodes as
    all zeros, with a warning.
    """

    kind = "tabular"

    def __init__(self, name: str, categorical: list[str] | None = None) -> None:
        self.name = name
        self.categorical = list(categorical or [])

    def fit(self, values: Any, present: np.ndarray) -> TabularPreprocessor:
        frame = as_frame(self.name, values)
        _check_unique_columns(self.name, frame)
        # scikit-learn's convention: columns are matched by name only when they have
        # names, i.e. a DataFrame whose column labels are all strings; else by position
        self.named_ = _has_names(values)
        self.durations_ = [str(c) for c in frame.columns
                           if _value_kind(frame[c]) == "duration"]
        frame = self._read_values(frame, present)
        rows = frame[present]
        self.columns_ = [str(c) for c in frame.columns]
        frame.columns = self.columns_
        rows.columns = self.columns_
        unknown = [c for c in self.categorical if c not in self.columns_]
        if unknown:
            raise ValueError(
                f"Modality {self.name!r}: categorical columns {unknown} are not among "
                f"its columns {self.columns_}."
            )
        self.categorical_ = [
            c for c in self.columns_ if c in self.categorical or _is_categorical(frame[c])
        ]
        self.numeric_ = [c for c in self.columns_ if c not in self.categorical_]
        for column in self.categorical_:
            if column not in self.categorical:
                _warn_mixed_column(self.name, column, rows[column])
                _warn_identifier_column(self.name, column, rows[column])
        numeric = self._numeric(rows)
        self._check_finite(numeric, np.flatnonzero(present))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            mean = np.nanmean(numeric, axis=0) if len(numeric) else np.zeros(numeric.shape[1])
            std = np.nanstd(numeric, axis=0) if len(numeric) else np.ones(numeric.shape[1])
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        self.mean_ = mean.tolist()
        self.scale_ = std.tolist()
        self.indicator_ = [
            c for c, has_nan in zip(self.numeric_, np.isnan(numeric).any(axis=0)) if has_nan
        ]
        self.categories_ = {
            c: sorted({_category_key(v) for v in rows[c] if not pd.isna(v)})
            for c in self.categorical_
        }
        self.n_features_out_ = (
            len(self.numeric_)
            + len(self.indicator_)
            + sum(len(v) for v in self.categories_.values())
        )
        if self.n_features_out_ == 0:
            raise ValueError(f"Modality {self.name!r} has no usable column.")
        return self

    def _numeric(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.numeric_:
            return np.zeros((len(frame), 0))
        try:
            return frame[self.numeric_].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Modality {self.name!r}: numeric columns could not be read as numbers "
                f"({exc})."
            ) from exc

    def _check_finite(self, numeric: np.ndarray, row_ids: np.ndarray) -> None:
        bad = np.isinf(numeric)
        if bad.any():
            rows, cols = np.nonzero(bad)
            raise ValueError(
                f"Modality {self.name!r} has infinite values in column "
                f"{self.numeric_[cols[0]]!r}, rows {_rows_text(row_ids[np.unique(rows)])}. "
                "Replace them with finite values or NaN (missing)."
            )

    def transform(
        self, values: Any, present: np.ndarray, row_ids: np.ndarray | None = None,
        unseen: dict[str, set] | None = None,
    ) -> np.ndarray:
        """Encode the present rows; zeros elsewhere.

        Parameters
        ----------
        values : DataFrame or ndarray
            The modality's stored values.
        present : ndarray of bool
            Presence mask.
        row_ids : ndarray of int, default=None
            Row numbers to name in errors (a chunk of a larger input); None: 0..n-1.
        unseen : dict, default=None
            Collects categories unseen in fit per column instead of warning (the
            caller warns once for all chunks).
        """
        frame = as_frame(self.name, values)
        frame.columns = [str(c) for c in frame.columns]
        _check_unique_columns(self.name, frame)
        frame = self._align_columns(frame, _has_names(values))
        frame = self._read_values(frame, present)
        missing = [c for c in self.columns_ if c not in frame.columns]
        if missing:
            raise ValueError(
                f"Modality {self.name!r} lacks the columns {missing} it had in fit."
            )
        extra = [c for c in frame.columns if c not in self.columns_]
        if extra:  # as scikit-learn does: a column it never saw may be a mistake
            raise ValueError(
                f"Modality {self.name!r} has columns {extra[:10]} it did not have in fit "
                f"({len(self.columns_)} columns: {self.columns_[:10]}). Drop them."
            )
        out = np.zeros((len(frame), self.n_features_out_), dtype=np.float32)
        rows = np.flatnonzero(present)
        if len(rows) == 0:
            return out
        part = frame.iloc[rows]
        numeric = self._numeric(part)
        self._check_finite(numeric, rows if row_ids is None else np.asarray(row_ids)[rows])
        nan = np.isnan(numeric)
        scaled = (numeric - np.asarray(self.mean_)) / np.asarray(self.scale_)
        scaled[nan] = 0.0
        blocks = [scaled]
        if self.indicator_:
            positions = [self.numeric_.index(c) for c in self.indicator_]
            blocks.append(nan[:, positions].astype(float))
        for column, categories in self.categories_.items():
            lookup = {c: i for i, c in enumerate(categories)}
            onehot = np.zeros((len(part), len(categories)))
            new = set()
            for i, value in enumerate(part[column]):
                if pd.isna(value):
                    continue
                index = lookup.get(_category_key(value))
                if index is None:
                    new.add(_category_key(value))
                else:
                    onehot[i, index] = 1.0
            if new and unseen is not None:
                unseen.setdefault(column, set()).update(new)
            elif new:
                warn_unseen_categories(self.name, {column: new})
            blocks.append(onehot)
        out[rows] = np.hstack(blocks).astype(np.float32)
        check_magnitude(self.name, out, row_ids)
        return out

    def _read_values(self, frame: pd.DataFrame, present: np.ndarray) -> pd.DataFrame:
        """Durations in days, ``Decimal`` numbers as floats; dates refused; a duration
        where fit saw numbers (or numbers where it saw durations) refused."""
        durations = getattr(self, "durations_", [])
        converted = {}
        for position, column in enumerate(frame.columns):
            series = frame.iloc[:, position]
            kind = _value_kind(series[present] if len(present) == len(series) else series)
            if kind == "date":
                raise ValueError(
                    f"Modality {self.name!r}, column {column!r} holds dates or times "
                    f"({series.dtype}); a date is no feature by itself. Convert it to a "
                    "number first, e.g. the days since a reference date "
                    "((df[col] - pd.Timestamp('2000-01-01')).dt.days) or the patient's age "
                    "at that date."
                )
            if kind == "duration" and str(column) not in durations:
                raise ValueError(
                    f"Modality {self.name!r}, column {column!r} holds durations "
                    f"(timedeltas), but it held numbers in fit: convert it to the number "
                    "the model was fitted on (e.g. days: df[col] / pd.Timedelta(days=1))."
                )
            if str(column) in durations and kind not in ("duration", "empty"):
                raise ValueError(
                    f"Modality {self.name!r}, column {column!r} held durations "
                    "(timedeltas) in fit, read as days; give durations here too."
                )
            if kind == "duration":
                converted[column] = pd.to_timedelta(series) / pd.Timedelta(days=1)
            elif kind == "decimal":
                converted[column] = pd.to_numeric(series.astype(object), errors="coerce")
        if not converted:
            return frame
        frame = frame.copy()
        for column, values in converted.items():
            frame[column] = values.to_numpy(dtype=np.float64)
        return frame

    def _align_columns(self, frame: pd.DataFrame, given_names: bool) -> pd.DataFrame:
        """Columns by name when both fit and this input have names; else by position
        (with a warning when only one of them has names), as scikit-learn does."""
        named = getattr(self, "named_", True)  # models saved before: by name
        if named and given_names:
            return frame
        given = [str(c) for c in frame.columns]
        if len(given) > len(self.columns_):  # by position: the last ones are extra
            raise ValueError(
                f"Modality {self.name!r} has columns {given[len(self.columns_):][:10]} it "
                f"did not have in fit ({len(self.columns_)} columns: {self.columns_[:10]}). "
                "Drop them."
            )
        if len(given) < len(self.columns_):
            raise ValueError(
                f"Modality {self.name!r} lacks the columns {self.columns_[len(given):]} it "
                "had in fit."
            )
        if named:
            warnings.warn(
                f"Modality {self.name!r} was fitted on columns with names "
                f"{self.columns_[:10]} but is given without names (an array): its columns "
                "are taken in the order of fit.",
                UserWarning, stacklevel=user_stacklevel(),
            )
        elif given_names:
            warnings.warn(
                f"Modality {self.name!r} was fitted without column names (an array, or "
                "labels that are not all strings) but is given named columns "
                f"{list(frame.columns[:10])}: they are taken by position, not by name.",
                UserWarning, stacklevel=user_stacklevel(),
            )
        frame = frame.copy()
        frame.columns = self.columns_
        return frame

    def get_state(self) -> dict[str, Any]:
        """Return the fitted state as JSON-serialisable data."""
        keys = ("columns_", "categorical_", "numeric_", "mean_", "scale_", "indicator_",
                "categories_", "n_features_out_", "named_", "durations_")
        return {"kind": self.kind, "name": self.name, "categorical": self.categorical,
                **{k: getattr(self, k) for k in keys}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`get_state` output."""
        self = cls(state["name"], state["categorical"])
        for key, value in state.items():
            if key.endswith("_"):
                setattr(self, key, value)
        return self


class EmbeddingPreprocessor:
    """Pass precomputed feature vectors through as float32, checking their width.

    Scaling is left to the encoder's LayerNorm. A vector with some (not all) NaN
    entries is an error: an all-NaN vector marks the modality missing.

    Parameters
    ----------
    name : str
        Modality name, used in error messages.
    """

    kind = "embedding"

    def __init__(self, name: str) -> None:
        self.name = name

    def _matrix(self, values: Any, present: np.ndarray,
                row_ids: np.ndarray | None = None) -> np.ndarray:
        if isinstance(values, np.ndarray) and values.dtype == object:
            for row in np.flatnonzero(present):
                shape = np.shape(values[row])
                if len(shape) > 1 or isinstance(values[row], str):
                    shown = row if row_ids is None else int(np.asarray(row_ids)[row])
                    raise ValueError(
                        f"Embedding modality {self.name!r} needs one vector per sample; row "
                        f"{shown} is {'a string' if isinstance(values[row], str) else 'an '}"
                        f"{'' if isinstance(values[row], str) else f'array of shape {shape}'}"
                        ". Declare images 'image' and volumes 'volume'."
                    )
                break
        # a copy: to_numpy may return a read-only view (pandas copy-on-write)
        matrix = as_frame(self.name, values).to_numpy(
            dtype=np.float32, na_value=np.nan, copy=True
        )
        part = matrix[present]
        bad = ~np.isfinite(part).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(present)[bad]
            if row_ids is not None:
                rows = np.asarray(row_ids)[rows]
            raise ValueError(
                f"Embedding modality {self.name!r} has NaN or infinite entries in rows "
                f"{_rows_text(rows)}. A missing embedding must be all-NaN or None."
            )
        matrix[~present] = 0.0
        return matrix

    def fit(self, values: Any, present: np.ndarray) -> EmbeddingPreprocessor:
        self.n_features_out_ = int(self._matrix(values, present).shape[1])
        return self

    def transform(self, values: Any, present: np.ndarray, row_ids: np.ndarray | None = None,
                  unseen: Any = None) -> np.ndarray:
        """The vectors of the present rows as float32; zeros elsewhere.

        ``row_ids`` are the row numbers named in errors (None: 0..n-1); ``unseen`` is
        accepted for a common signature with :class:`TabularPreprocessor`.
        """
        matrix = self._matrix(values, present, row_ids)
        check_magnitude(self.name, matrix, row_ids)
        if matrix.shape[1] != self.n_features_out_:
            raise ValueError(
                f"Embedding modality {self.name!r} has {matrix.shape[1]} features, but "
                f"{self.n_features_out_} in fit."
            )
        return matrix

    def get_state(self) -> dict[str, Any]:
        """Return the fitted state as JSON-serialisable data."""
        return {"kind": self.kind, "name": self.name, "n_features_out_": self.n_features_out_}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EmbeddingPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`get_state` output."""
        self = cls(state["name"])
        self.n_features_out_ = int(state["n_features_out_"])
        return self
