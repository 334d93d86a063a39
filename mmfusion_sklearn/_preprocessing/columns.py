"""What a table's columns hold: names or positions, dates, durations, decimals, and
columns that look like identifiers or mistyped numbers (warned about at fit)."""

from __future__ import annotations

import datetime
import decimal
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._data.messages import user_stacklevel

#: A text or category column with more distinct values than this share of its rows
#: (and at least :data:`IDENTIFIER_MIN_VALUES`) is warned about as an identifier.
IDENTIFIER_SHARE = 0.5
IDENTIFIER_MIN_VALUES = 50


def _value_kind(series: pd.Series) -> str:
    """"date", "duration", "decimal", "empty" or "other", from the dtype or, for object
    columns, from every non-missing value."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "date"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "duration"
    if not pd.api.types.is_object_dtype(dtype):
        return "other"
    values = [v for v in series if not _is_missing_value(v)]
    if not values:
        return "empty"
    if all(isinstance(v, (datetime.date, np.datetime64, pd.Period)) for v in values):
        return "date"
    if all(isinstance(v, (datetime.timedelta, np.timedelta64)) for v in values):
        return "duration"
    if any(isinstance(v, decimal.Decimal) for v in values) and all(
            isinstance(v, (decimal.Decimal, int, float, np.number))
            and not isinstance(v, (bool, np.bool_)) for v in values):
        return "decimal"
    return "other"


def _is_missing_value(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _warn_identifier_column(name: str, column: str, values: pd.Series) -> None:
    """Warn when a categorical column looks like an identifier or free text: nearly one
    category per row, each a one-hot feature that no new sample will share."""
    present = values.dropna()
    distinct = present.astype(str).nunique()
    if distinct >= max(IDENTIFIER_MIN_VALUES, IDENTIFIER_SHARE * len(present)):
        warnings.warn(
            f"Modality {name!r}, column {column!r} has {distinct} distinct values in "
            f"{len(present)} rows: an identifier (patient ID) or free text? One-hot "
            f"encoding makes {distinct} features of it that no new sample will share. "
            "Drop it, or convert it to numbers if it is a measurement.",
            UserWarning, stacklevel=user_stacklevel(),
        )


def _has_names(values: Any) -> bool:
    """Whether a table's columns have names: a DataFrame whose labels are all strings."""
    return isinstance(values, pd.DataFrame) and len(values.columns) > 0 and all(
        isinstance(c, str) for c in values.columns)


def _warn_mixed_column(name: str, column: str, values: pd.Series) -> None:
    """Warn when a column of mostly numbers holds a few strings (a typed "n/a", say):
    it becomes categorical, one category per number."""
    present = [v for v in values if not pd.isna(v)]
    is_number = [isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                 for v in present]
    n_numbers = sum(is_number)
    others = sorted({str(v) for v, number in zip(present, is_number) if not number})
    if n_numbers and others and n_numbers >= len(present) - n_numbers:
        warnings.warn(
            f"Modality {name!r}, column {column!r} holds numbers and the values "
            f"{others[:10]}, so it is encoded as categorical ({len(set(map(str, present)))} "
            "categories). If these values mean 'missing', replace them with NaN; "
            "otherwise convert the column to numbers.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
