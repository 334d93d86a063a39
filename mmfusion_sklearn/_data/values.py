"""Per-modality values: normalisation, presence, row selection and input conversion.

What :class:`~mmfusion_sklearn.MultimodalData` stores for each modality, and how dicts,
records and DataFrames become those values (no torch here).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import replace
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
        dict_items = [v for v in values[present] if isinstance(v, (Mapping, pd.Series))]
        if dict_items and len(dict_items) == present.sum():
            # Per-sample feature dicts (records of a tabular modality, or the rows of a
            # table as MultimodalData's records give them) become a table.
            frame = pd.DataFrame.from_records(
                [(v.to_dict() if isinstance(v, pd.Series) else v) if p else {}
                 for v, p in zip(values, present)]
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
) -> tuple[dict[str, Any], dict[str, Modality] | None]:
    """The modalities of a DataFrame, and their specifications with their columns."""
    spec = resolve_modality_spec(modalities)
    if spec is None:
        return {"tabular": frame}, None
    out: dict[str, Any] = {}
    specs: dict[str, Modality] = {}
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
        specs[name] = replace(modality, columns=columns)
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
    return out, specs



def _object_column(column: pd.Series) -> bool:
    """True for a column of paths or arrays, or one with no value at all (not a plain
    numeric/categorical column)."""
    for item in column:
        if _is_missing_item(item):
            continue
        return isinstance(item, (str, PathLike, np.ndarray, list))
    return True
