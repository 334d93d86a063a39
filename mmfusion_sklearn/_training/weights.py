"""Training weights: checked, and divided by their mean so that only their ratios
matter."""

from __future__ import annotations

import numpy as np

from .._data.messages import rows_text

#: Largest ratio between two positive sample weights: the losses run in float32, whose
#: range (about 1e-38 to 3e38 with a mean weight of 1) must hold every weight.
MAX_WEIGHT_RATIO = 1e30


def normalised_weights(weight: np.ndarray, given: bool) -> np.ndarray:
    """Training weights divided by their mean, after refusing negative, non-finite or
    all-zero ones and ratios that float32 losses cannot hold.

    Only the ratios between weights matter: uniform weights of any size (1e-300 or
    1e39) train the same model as no weights, bit for bit, since the penalties of the
    linear path and the losses then see weights of mean 1.
    """
    source = "sample_weight" if given else "class_weight"
    bad = np.flatnonzero(~np.isfinite(weight) | (weight < 0))
    if len(bad):
        raise ValueError(
            f"Sample weights (sample_weight times class_weight) must be finite and "
            f"non-negative. Got {float(weight[bad[0]])!r} for rows {rows_text(bad)} instead."
        )
    positive = weight > 0
    if not positive.any():
        raise ValueError("Every sample weight is zero: at least one sample must count.")
    low, high = weight[positive].min(), weight[positive].max()
    if high / low > MAX_WEIGHT_RATIO or not np.isfinite(high / low):
        rows = np.flatnonzero(weight == high)
        raise ValueError(
            f"Sample weights (sample_weight times class_weight) span a ratio above "
            f"{MAX_WEIGHT_RATIO:g} (from {low:g} to {high:g} at rows {rows_text(rows)}), which "
            f"the float32 losses cannot hold; rescale {source} (only ratios between "
            "weights matter)."
        )
    mean = weight.mean()
    return weight if mean == 1.0 else weight / mean
