"""The drop in score when each modality is withheld: :class:`ModalityImportanceDisplay`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted
from sklearn_compat.utils._param_validation import validate_params

from ..metrics import modality_importance
from ._base import _as_data, _check_y, _default_scoring, _panels, _pyplot, _score_label

_IMPORTANCE_COLUMNS = ("modality", "score_full", "score_without", "importance")


# -- modality importance ---------------------------------------------------------
class ModalityImportanceDisplay:
    """Horizontal bars of the drop in score when each modality is withheld.

    The bars are :func:`~mmfusion_sklearn.metrics.modality_importance`: the score with
    every modality minus the score with one modality withheld from every sample, the
    most important modality on top; each bar is labelled with the drop and the two
    scores.

    It is recommended to build it with :meth:`from_estimator`. All parameters are
    stored as attributes.

    Parameters
    ----------
    importances : pandas.DataFrame
        A :func:`~mmfusion_sklearn.metrics.modality_importance` table, with columns
        ``modality``, ``score_full``, ``score_without`` and ``importance``.
    score_name : str or None, default=None
        The scorer's name, for the axis label.

    Attributes
    ----------
    bars_ : matplotlib BarContainer
        One bar per modality.
    ax_ : matplotlib Axes
        The axes drawn on.
    figure_ : matplotlib Figure
        The figure holding the axes.

    See Also
    --------
    mmfusion_sklearn.metrics.modality_importance : The table plotted.
    MissingModalityDisplay : Scores per subset of modalities and missing rate.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> from mmfusion_sklearn.plotting import ModalityImportanceDisplay
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30)
    >>> X = {"a": rng.normal(size=(60, 2)) + y[:, None],
    ...      "b": rng.normal(size=(60, 3)) - y[:, None]}
    >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
    ...                                  early_stopping=False, device="cpu",
    ...                                  random_state=0).fit(X, y)
    >>> display = ModalityImportanceDisplay.from_estimator(clf, X, y)
    >>> len(display.bars_), display.ax_.get_xlabel()
    (2, 'drop in ROC AUC when the modality is withheld')
    """

    def __init__(self, importances: pd.DataFrame, *, score_name: str | None = None) -> None:
        self.importances = importances
        self.score_name = score_name

    def plot(self, ax: Any = None, *, bar_kwargs: dict | None = None
             ) -> ModalityImportanceDisplay:
        """Draw one horizontal bar per modality, the most important on top.

        Parameters
        ----------
        ax : matplotlib Axes or None, default=None
            Axes to draw on; None makes a new figure.
        bar_kwargs : dict or None, default=None
            Keyword arguments of matplotlib's ``barh``.

        Returns
        -------
        ModalityImportanceDisplay
            This display, with ``ax_``, ``figure_`` and ``bars_`` set.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import pandas as pd
        >>> from mmfusion_sklearn.plotting import ModalityImportanceDisplay
        >>> table = pd.DataFrame({"modality": ["image", "table"], "score_full": 0.9,
        ...                       "score_without": [0.7, 0.85],
        ...                       "importance": [0.2, 0.05]})
        >>> display = ModalityImportanceDisplay(table, score_name="roc_auc").plot()
        >>> [tick.get_text() for tick in display.ax_.get_yticklabels()]  # top first
        ['image', 'table']
        """
        table = self.importances
        lacking = [c for c in _IMPORTANCE_COLUMNS if c not in table]
        if lacking:
            raise ValueError(
                f"'importances' lacks the columns {lacking} of a modality_importance "
                f"table. Got {list(table.columns)} instead."
            )
        figure, axes = _panels(ax, 1, "ModalityImportanceDisplay.plot", "the bars",
                               width=6.0)
        axis = axes[0]
        table = table.sort_values("importance", ascending=False, ignore_index=True)
        values = table["importance"].to_numpy(dtype=float)
        positions = np.arange(len(table))[::-1]  # the most important on top
        colours = ["C0" if not v < 0 else "C3" for v in values]
        self.bars_ = axis.barh(positions, np.nan_to_num(values),
                               **{"color": colours, "height": 0.6, **(bar_kwargs or {})})
        notes = [
            "n/a (the only modality)" if np.isnan(v)
            else f"{v:+.3f} ({full:.3f} \u2192 {without:.3f})"
            for v, full, without in zip(values, table["score_full"], table["score_without"])
        ]
        # every note right of the zero line: on the left of a negative bar it would run
        # into the modality names
        for position, value, note in zip(positions, values, notes):
            start = value if value > 0 else 0.0
            axis.annotate(note, (start, position), xytext=(3, 0),
                          textcoords="offset points", va="center", ha="left",
                          fontsize="small")
        axis.set_yticks(positions, [str(m) for m in table["modality"]])
        axis.axvline(0, color="0.3", linewidth=0.8)
        span = np.nanmax(np.abs(values), initial=0.0) or 1.0
        low = min(np.nanmin(values, initial=0.0), 0.0)
        axis.set_xlim(low - 0.1 * span, 1.9 * span)
        axis.set_xlabel(f"drop in {_score_label(self.score_name)} when the modality is "
                        "withheld")
        axis.set_title("Modality importance (leave one modality out)", fontsize="medium")
        axis.grid(True, axis="x", alpha=0.3)
        self.ax_, self.figure_ = axis, figure
        return self

    @classmethod
    @validate_params({"scoring": [str, None]}, prefer_skip_nested_validation=True)
    def from_estimator(cls, estimator: Any, X: Any, y: Any, *, scoring: str | None = None,
                       ax: Any = None) -> ModalityImportanceDisplay:
        """Compute the modality importances of a fitted estimator and plot them.

        Parameters
        ----------
        estimator : fitted MultimodalFusionClassifier
            Any fitted classifier accepting multimodal X.
        X : dict, list of dict, MultimodalData or pandas.DataFrame
            Samples, ideally held out from training. A DataFrame is split into
            modalities by the estimator's ``modalities`` columns.
        y : array-like of shape (n_samples,)
            True labels.
        scoring : str, default=None
            A scikit-learn scorer name; None uses ``"roc_auc"`` for two classes and
            ``"accuracy"`` otherwise.
        ax : matplotlib Axes or None, default=None
            Axes to draw on; None makes a new figure.

        Returns
        -------
        ModalityImportanceDisplay
            The display, drawn, with the table as ``importances``.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from mmfusion_sklearn import MultimodalFusionClassifier
        >>> from mmfusion_sklearn.plotting import ModalityImportanceDisplay
        >>> rng = np.random.default_rng(0)
        >>> y = np.tile([0, 1], 30)
        >>> X = {"a": rng.normal(size=(60, 2)) + y[:, None], "b": rng.normal(size=(60, 3))}
        >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
        ...                                  early_stopping=False, device="cpu",
        ...                                  random_state=0).fit(X, y)
        >>> ModalityImportanceDisplay.from_estimator(
        ...     clf, X, y, scoring="accuracy").importances.columns.tolist()[:4]
        ['modality', 'score_full', 'score_without', 'importance']
        """
        _pyplot("ModalityImportanceDisplay.from_estimator")
        check_is_fitted(estimator)
        data = _as_data(estimator, X)
        y = _check_y(data, y)
        scoring = _default_scoring(estimator, scoring)
        importances = modality_importance(estimator, data, y, scoring=scoring)
        return cls(importances, score_name=scoring).plot(ax=ax)
