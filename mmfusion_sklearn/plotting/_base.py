"""What every display shares: matplotlib imported lazily, the axes, the checks of X and y."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._data import MultimodalData, as_multimodal

#: Readable names of common scikit-learn scorers, for axis labels.
_SCORE_LABELS = {
    "roc_auc": "ROC AUC",
    "roc_auc_ovr": "ROC AUC (one-vs-rest)",
    "roc_auc_ovo": "ROC AUC (one-vs-one)",
    "average_precision": "average precision",
    "balanced_accuracy": "balanced accuracy",
    "neg_log_loss": "negative log loss",
    "neg_brier_score": "negative Brier score",
    "f1_macro": "F1 (macro)",
    "f1_weighted": "F1 (weighted)",
    "log_loss": "log loss",
    "r2": "R²",
    "neg_mean_absolute_error": "negative mean absolute error",
    "mean_absolute_error": "mean absolute error",
    "mean_squared_error": "mean squared error",
    "root_mean_squared_error": "root mean squared error",
    "brier_score": "Brier score",
    "concordance_index": "concordance index (Harrell's C)",
}


# -- helpers -------------------------------------------------------------------------
def _pyplot(caller: str) -> Any:
    """Import matplotlib.pyplot, or say how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} requires matplotlib, which is not installed. Install it with "
            'pip install "matplotlib>=3.7" (the plots extra; from a checkout of '
            'mmfusion_sklearn: pip install -e ".[plots]").'
        ) from exc
    return plt


def _panels(ax: Any, n: int, caller: str, what: str, width: float = 5.0) -> tuple[Any, Any]:
    """The figure and a 1-D object array of ``n`` Axes: new ones, or those given."""
    plt = _pyplot(caller)
    from matplotlib.axes import Axes

    if ax is None:
        figure, axes = plt.subplots(1, n, figsize=(width * n, 4.0), squeeze=False,
                                    layout="constrained")
        return figure, axes.ravel()
    given = [ax] if isinstance(ax, Axes) else list(np.asarray(ax, dtype=object).ravel())
    if len(given) != n or not all(isinstance(a, Axes) for a in given):
        raise ValueError(
            f"{caller} draws {n} panel(s) ({what}), so 'ax' must be "
            + ("a matplotlib Axes" if n == 1 else f"a sequence of {n} matplotlib Axes")
            + f". Got {len(given)} instead."
        )
    axes = np.empty(n, dtype=object)
    axes[:] = given
    return axes[0].figure, axes


def _score_label(score_name: str | None) -> str:
    if score_name is None:
        return "score"
    return _SCORE_LABELS.get(score_name, score_name.replace("_", " "))


def _plotted(score_name: str | None) -> tuple[float, str]:
    """The sign to plot a score with, and its axis label: a ``neg_*`` scorer's values
    are drawn as the loss itself (positive bars, lower is better)."""
    if score_name is not None and score_name.startswith("neg_"):
        loss = score_name[len("neg_"):]
        return -1.0, f"{_SCORE_LABELS.get(loss, loss.replace('_', ' '))} (lower is better)"
    return 1.0, _score_label(score_name)


def _default_scoring(estimator: Any, scoring: str | None) -> str:
    if scoring is not None:
        return scoring
    from ..metrics import default_scoring

    return default_scoring(estimator)


def _as_data(estimator: Any, X: Any) -> MultimodalData:
    """``X`` as the estimator reads it: a DataFrame through its ``modalities`` columns."""
    reader = getattr(estimator, "_as_data", None)
    if callable(reader):  # this package's classifier: exactly as its predict reads X
        return reader(X, reset=False)
    if isinstance(X, pd.DataFrame):
        return MultimodalData(X, modalities=getattr(estimator, "modalities", None))
    return as_multimodal(X)


def _check_y(data: MultimodalData, y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(data):
        raise ValueError(
            f"Number of samples in X ({len(data)}) and y ({y.shape[0] if y.ndim else 0}) "
            "do not match."
        )
    return y
