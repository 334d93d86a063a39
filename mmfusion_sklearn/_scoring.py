"""Which estimator predicts, and the scorer names the reports accept beside
scikit-learn's (Harrell's concordance index of a survival model)."""

from __future__ import annotations

from typing import Any

from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline


def _unwrap(estimator: Any) -> Any:
    """The fitted estimator inside a search (``best_estimator_``), else ``estimator``."""
    while hasattr(estimator, "best_estimator_"):
        estimator = estimator.best_estimator_
    return estimator


def _input_step(estimator: Any) -> Any:
    """The step that receives ``X``: the first step of a pipeline, else the estimator."""
    estimator = _unwrap(estimator)
    while isinstance(estimator, Pipeline) and estimator.steps:
        estimator = _unwrap(estimator.steps[0][1])
    return estimator


def _final_step(estimator: Any) -> Any:
    """The step that predicts: the last step of a pipeline, else the estimator."""
    estimator = _unwrap(estimator)
    while isinstance(estimator, Pipeline) and estimator.steps:
        estimator = _unwrap(estimator.steps[-1][1])
    return estimator


#: The scorer name of Harrell's concordance index (a survival model's ``score``), which
#: every function here accepts beside scikit-learn's scorer names.
CONCORDANCE = "concordance_index"


def is_survival_model(estimator: Any) -> bool:
    """Whether ``estimator`` (or the last step of a pipeline or search around it)
    predicts survival functions, as scikit-survival's models and
    :class:`~mmfusion_sklearn.MultimodalFusionSurvivalAnalysis` do.

    Parameters
    ----------
    estimator : estimator
        An estimator, a pipeline or a search.

    Returns
    -------
    bool
    """
    return hasattr(_final_step(estimator), "predict_survival_function")


def _concordance_scorer(estimator: Any, X: Any, y: Any) -> float:
    """Harrell's concordance index: a survival model's own ``score``."""
    return float(estimator.score(X, y))


def _named_scorer(name: Any) -> Any:
    """A scorer for a name (``"concordance_index"`` included); other values unchanged."""
    if name == CONCORDANCE:
        return _concordance_scorer
    return get_scorer(name) if isinstance(name, str) else name
