"""Plots in scikit-learn's Display style: training curves and scores under missing modalities.

Every display stores the numbers it draws (``history``, ``subsets``, ``rates``,
``importances``) and is built the same way as scikit-learn's ``RocCurveDisplay``:
``from_estimator(...)`` computes the numbers from a fitted estimator and calls
``plot``; ``plot(ax=None)`` draws them, sets ``ax_`` and ``figure_`` and the artists,
and returns the display. matplotlib is imported only when something is drawn, so this
module imports without it; install it with ``pip install -e ".[plots]"`` (from a checkout).
"""

from __future__ import annotations

from ._history import STAGES as STAGES
from ._history import TrainingHistoryDisplay
from ._importance import ModalityImportanceDisplay
from ._missing import MissingModalityDisplay
from ._rates import ALL_MODALITIES as ALL_MODALITIES
from ._rates import DEFAULT_MISSING_RATES as DEFAULT_MISSING_RATES
from ._rates import missing_rate_report

__all__ = [
    "MissingModalityDisplay",
    "ModalityImportanceDisplay",
    "TrainingHistoryDisplay",
    "missing_rate_report",
]
