"""Row lists in error messages ("Sample 3 has", "rows 1, 4, 9 ... (40 rows)")."""

from __future__ import annotations

import numpy as np


def rows_text(rows: np.ndarray, limit: int = 10) -> str:
    """The first ``limit`` row numbers, joined, with the total when there are more."""
    rows = [int(r) for r in rows]
    text = ", ".join(map(str, rows[:limit]))
    return text + (f" ... ({len(rows)} rows)" if len(rows) > limit else "")


def samples_have(rows: np.ndarray) -> str:
    """'Sample 3 has' or 'Samples 3, 8 have' (the start of a message about rows)."""
    if len(rows) == 1:
        return f"Sample {int(rows[0])} has"
    return f"Samples {rows_text(rows)} have"
