"""joblib's Parallel yielding results as they finish, where the installed joblib can."""

from __future__ import annotations

import joblib
from joblib import Parallel


def unordered_parallel(n_jobs: int) -> Parallel:
    """``Parallel(return_as="generator_unordered")`` (joblib >= 1.4), or in order before
    that (the package's lowest joblib is 1.3). Results must carry their own keys."""
    major, minor = (int(part) for part in joblib.__version__.split(".")[:2])
    unordered = (major, minor) >= (1, 4)
    return Parallel(n_jobs=n_jobs, return_as="generator_unordered" if unordered
                    else "generator")
