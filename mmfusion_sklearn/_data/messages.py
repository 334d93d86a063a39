"""Row lists in error messages ("Sample 3 has", "rows 1, 4, 9 ... (40 rows)"), and
warnings that point at the user's line."""

from __future__ import annotations

import os
import sys

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


#: Folders whose frames a warning skips to reach the user's code: this package, and the
#: wrappers that scikit-learn puts around ``fit`` (``_fit_context``).
_INTERNAL_DIRS: tuple[str, ...] = ()


def _internal_dirs() -> tuple[str, ...]:
    global _INTERNAL_DIRS
    if not _INTERNAL_DIRS:
        import contextlib

        import sklearn
        import sklearn_compat

        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        _INTERNAL_DIRS = tuple(
            os.path.join(os.path.dirname(os.path.abspath(module.__file__)), "")
            for module in (sklearn, sklearn_compat)
        ) + (os.path.join(package, ""), os.path.abspath(contextlib.__file__))
    return _INTERNAL_DIRS


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes the caller's ``warnings.warn`` point at the user's
    line: the first frame outside this package and scikit-learn's ``fit`` wrappers.

    Counting frames by hand breaks whenever a call moves between layers; this walks
    the stack instead.
    """
    internal = _internal_dirs()
    frame = sys._getframe(1)  # the function that calls warnings.warn: stacklevel 1
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(internal):
        frame = frame.f_back
        level += 1
    return level
