"""Scores per subset of modalities and against a missing rate: :class:`MissingModalityDisplay`."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from sklearn_compat.utils._param_validation import validate_params

from ..metrics import missing_modality_report
from ._base import _as_data, _check_y, _default_scoring, _panels, _plotted, _pyplot
from ._rates import (
    ALL_MODALITIES,
    DEFAULT_MISSING_RATES,
    _check_missing_rates,
    missing_rate_report,
)

_REPORT_COLUMNS = ("modalities", "n_samples", "n_dropped")


# -- scores under missing modalities ----------------------------------------------
def _score_column(table: pd.DataFrame, score_name: str | None, fixed: tuple[str, ...],
                  what: str) -> str:
    if score_name is not None:
        if score_name not in table:
            raise ValueError(f"'{what}' has no column {score_name!r} (score_name). Its "
                             f"columns: {list(table.columns)}.")
        return score_name
    scores = [c for c in table.columns if c not in fixed and not str(c).endswith("_std")]
    if not scores:
        raise ValueError(f"'{what}' has no score column. Its columns: {list(table.columns)}.")
    return scores[0]


def _chance_line(axis: Any, score_name: str, direction: str) -> None:
    """A dotted line at 0.5 (a model that ranks at random), for ROC AUC and the
    concordance index only."""
    if not (str(score_name).startswith("roc_auc") or score_name == "concordance_index"):
        return
    draw = axis.axhline if direction == "h" else axis.axvline
    draw(0.5, color="0.45", linestyle=":", linewidth=1.2, label="chance (0.5)")


class MissingModalityDisplay:
    """Scores of a model with modalities withheld: per subset, and against a missing rate.

    The left panel is a bar per subset of modalities (the others withheld from every
    sample; :func:`~mmfusion_sklearn.metrics.missing_modality_report`). The right one
    is the score against the share of a modality's values withheld at random
    (:func:`missing_rate_report`): one line per modality, and a dashed one for values
    of every modality withheld at random. A sample always keeps one modality, so a
    line ends where no more can be withheld (at 0.5 for "all modalities" with two
    modalities present everywhere).

    It is recommended to build it with :meth:`from_estimator`. All parameters are
    stored as attributes.

    Parameters
    ----------
    subsets : pandas.DataFrame or None, default=None
        A :func:`~mmfusion_sklearn.metrics.missing_modality_report` table; None draws
        no subset panel.
    rates : pandas.DataFrame or None, default=None
        A :func:`missing_rate_report` table; None draws no missing-rate panel.
    score_name : str or None, default=None
        The score column of both tables (a scorer name); None takes the first column
        that is not one of the tables' fixed columns.

    Attributes
    ----------
    bars_ : matplotlib BarContainer or None
        The bars of the subset panel.
    lines_ : dict of str to matplotlib Line2D
        The lines of the missing-rate panel, by withheld modality (and
        ``"all modalities"``).
    axes_ : ndarray of matplotlib Axes
        One Axes per panel drawn: subsets, then missing rates.
    ax_ : matplotlib Axes
        The last of ``axes_``: the missing-rate panel when it is drawn.
    figure_ : matplotlib Figure
        The figure holding the axes.

    See Also
    --------
    mmfusion_sklearn.metrics.missing_modality_report : The subset table.
    missing_rate_report : The missing-rate table.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> from mmfusion_sklearn.plotting import MissingModalityDisplay
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30)
    >>> X = {"a": rng.normal(size=(60, 2)) + y[:, None],
    ...      "b": rng.normal(size=(60, 3)) - y[:, None]}
    >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
    ...                                  early_stopping=False, device="cpu",
    ...                                  random_state=0).fit(X, y)
    >>> display = MissingModalityDisplay.from_estimator(clf, X, y, missing_rates=[0, 0.5])
    >>> display.subsets["modalities"].tolist()
    ['a+b', 'a', 'b']
    >>> sorted(display.lines_)
    ['a', 'all modalities', 'b']
    """

    def __init__(self, *, subsets: pd.DataFrame | None = None,
                 rates: pd.DataFrame | None = None, score_name: str | None = None) -> None:
        self.subsets = subsets
        self.rates = rates
        self.score_name = score_name

    def plot(self, ax: Any = None, *, kind: str | None = None,
             bar_kwargs: dict | None = None, line_kwargs: dict | None = None
             ) -> MissingModalityDisplay:
        """Draw the subset bars and/or the missing-rate curves.

        Parameters
        ----------
        ax : matplotlib Axes, sequence of Axes or None, default=None
            One Axes per panel drawn (two for ``kind="both"``); None makes a new
            figure.
        kind : {"both", "subsets", "rates"} or None, default=None
            Panels to draw; None draws a panel for each table held.
        bar_kwargs : dict or None, default=None
            Keyword arguments of matplotlib's ``barh`` for the subset bars.
        line_kwargs : dict or None, default=None
            Keyword arguments of matplotlib's ``plot`` for every missing-rate line.

        Returns
        -------
        MissingModalityDisplay
            This display, with ``axes_``, ``ax_``, ``figure_``, ``bars_`` and
            ``lines_`` set.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import pandas as pd
        >>> from mmfusion_sklearn.plotting import MissingModalityDisplay
        >>> subsets = pd.DataFrame({"modalities": ["image+table", "image", "table"],
        ...                         "n_samples": 40, "n_dropped": 0,
        ...                         "roc_auc": [0.9, 0.8, 0.7]})
        >>> display = MissingModalityDisplay(subsets=subsets).plot()
        >>> display.bars_.datavalues.tolist()
        [0.9, 0.8, 0.7]
        """
        panels = self._panels(kind)
        figure, axes = _panels(ax, len(panels), "MissingModalityDisplay.plot",
                               " and ".join(panels))
        self.bars_ = None
        self.lines_ = {}
        for axis, panel in zip(axes, panels):
            if panel == "subsets":
                self._plot_subsets(axis, bar_kwargs or {})
            else:
                self._plot_rates(axis, line_kwargs or {})
        self.axes_, self.ax_, self.figure_ = axes, axes[-1], figure
        return self

    def _panels(self, kind: str | None) -> list[str]:
        if kind is None:
            panels = [p for p in ("subsets", "rates") if getattr(self, p) is not None]
            if not panels:
                raise ValueError("MissingModalityDisplay holds neither 'subsets' nor "
                                 "'rates': there is nothing to plot.")
            return panels
        if kind not in ("both", "subsets", "rates"):
            raise ValueError(
                "The 'kind' parameter of MissingModalityDisplay.plot must be a str among "
                f"{{'both', 'rates', 'subsets'}}. Got {kind!r} instead."
            )
        panels = ["subsets", "rates"] if kind == "both" else [kind]
        lacking = [p for p in panels if getattr(self, p) is None]
        if lacking:
            raise ValueError(
                f"kind={kind!r} needs the table(s) {lacking}, which this display does not "
                "hold; compute them with from_estimator(..., kind=kind)."
            )
        return panels

    def _plot_subsets(self, axis: Any, bar_kwargs: dict) -> None:
        table = self.subsets
        score = _score_column(table, self.score_name, _REPORT_COLUMNS, "subsets")
        labels = [str(s).replace("+", " + ") for s in table["modalities"]]
        if "n_dropped" in table and "n_samples" in table:
            # a subset scored on fewer samples (the others had none of its modalities)
            labels = [f"{label} (n={n})" if dropped else label for label, n, dropped
                      in zip(labels, table["n_samples"], table["n_dropped"])]
        sign, axis_label = _plotted(score)
        values = sign * table[score].to_numpy(dtype=float)
        positions = np.arange(len(table))[::-1]  # the first row (all modalities) on top
        self.bars_ = axis.barh(positions, values, **{"color": "C0", "height": 0.6,
                                                     **bar_kwargs})
        notes = ["n/a" if np.isnan(value) else f"{value:.3f}" for value in values]
        axis.bar_label(self.bars_, labels=notes, padding=3, fontsize="small")
        _chance_line(axis, score, "v")
        axis.set_yticks(positions, labels)
        axis.margins(x=0.22)
        if np.nanmin(values, initial=0.0) >= 0 and np.nanmax(values, initial=0.0) <= 1:
            axis.set_xlim(0, 1.18)
        chance = " (dotted: chance)" if axis.get_legend_handles_labels()[0] else ""
        axis.set_xlabel(axis_label + chance)
        axis.set_title("Score per subset of modalities\n(the others withheld from every "
                       "sample)", fontsize="medium")
        axis.grid(True, axis="x", alpha=0.3)

    def _plot_rates(self, axis: Any, line_kwargs: dict) -> None:
        table = self.rates
        score = _score_column(table, self.score_name,
                              ("withheld", "missing_rate", "withheld_fraction"), "rates")
        std = f"{score}_std"
        sign, axis_label = _plotted(score)
        colour = 0
        banded = False
        for label, part in table.groupby("withheld", sort=False):
            # drawn at the share actually withheld; rates capped at the same share
            # (a sample keeps one modality) give one point
            part = part.sort_values("missing_rate").drop_duplicates("withheld_fraction")
            everything = label == ALL_MODALITIES
            style = ({"color": "0.15", "linestyle": "--", "marker": "s"} if everything
                     else {"color": f"C{colour}", "marker": "o"})
            colour += not everything
            shown = "all modalities at random" if everything else f"{label} withheld"
            (line,) = axis.plot(part["withheld_fraction"], sign * part[score],
                                **{"linewidth": 1.8, "markersize": 4, **style,
                                   **line_kwargs, "label": shown})
            self.lines_[label] = line
            if std in part and (part[std] > 0).any():
                banded = True
                axis.fill_between(part["withheld_fraction"],
                                  sign * part[score] - part[std],
                                  sign * part[score] + part[std], color=line.get_color(),
                                  alpha=0.1, linewidth=0)
        _chance_line(axis, score, "h")
        axis.set_xlabel("share of the present values withheld")
        axis.set_ylabel(axis_label)
        axis.set_title("Score against the missing rate\n(random draws, one modality "
                       "always kept" + ("; mean \u00b1 sd)" if banded else ")"),
                       fontsize="medium")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small", loc="best")

    @classmethod
    @validate_params(
        {
            "scoring": [str, None],
            "missing_rates": ["array-like"],
            "kind": [StrOptions({"both", "subsets", "rates"})],
            "n_repeats": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        scoring: str | None = None,
        missing_rates: Any = DEFAULT_MISSING_RATES,
        kind: str = "both",
        n_repeats: int = 1,
        random_state: Any = 0,
        ax: Any = None,
    ) -> MissingModalityDisplay:
        """Score a fitted estimator per subset and against missing rates, and plot.

        Parameters
        ----------
        estimator : fitted MultimodalFusionClassifier
            Any fitted classifier accepting multimodal X.
        X : dict, list of dict, MultimodalData or pandas.DataFrame
            Test samples, ideally held out from training. A DataFrame is split into
            modalities by the estimator's ``modalities`` columns.
        y : array-like of shape (n_samples,)
            True labels.
        scoring : str, default=None
            A scikit-learn scorer name; None uses ``"roc_auc"`` for two classes and
            ``"accuracy"`` otherwise.
        missing_rates : array-like of float, default=(0.0, 0.25, 0.5, 0.75, 0.9)
            Shares of samples, in [0, 1], from which a modality is withheld.
        kind : {"both", "subsets", "rates"}, default="both"
            Tables to compute and panels to draw.
        n_repeats : int, default=1
            Random draws per missing rate, averaged (a band shows their standard
            deviation).
        random_state : int, RandomState instance or None, default=0
            Seeds the draws of the missing-rate curves.
        ax : matplotlib Axes, sequence of Axes or None, default=None
            One Axes per panel drawn; None makes a new figure.

        Returns
        -------
        MissingModalityDisplay
            The display, drawn, with the tables as ``subsets`` and ``rates``.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from mmfusion_sklearn import MultimodalFusionClassifier
        >>> from mmfusion_sklearn.plotting import MissingModalityDisplay
        >>> rng = np.random.default_rng(0)
        >>> y = np.tile([0, 1], 30)
        >>> X = {"a": rng.normal(size=(60, 2)) + y[:, None], "b": rng.normal(size=(60, 3))}
        >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
        ...                                  early_stopping=False, device="cpu",
        ...                                  random_state=0).fit(X, y)
        >>> display = MissingModalityDisplay.from_estimator(clf, X, y, kind="rates",
        ...                                                 missing_rates=[0, 0.9])
        >>> display.subsets is None, display.rates.shape
        (True, (6, 5))
        """
        _pyplot("MissingModalityDisplay.from_estimator")
        check_is_fitted(estimator)
        _check_missing_rates(missing_rates)
        data = _as_data(estimator, X)
        y = _check_y(data, y)
        scoring = _default_scoring(estimator, scoring)
        subsets = rates = None
        if kind in ("both", "subsets"):
            subsets = missing_modality_report(estimator, data, y, scoring=scoring)
        if kind in ("both", "rates"):
            rates = missing_rate_report(estimator, data, y, scoring=scoring,
                                        missing_rates=missing_rates, n_repeats=n_repeats,
                                        random_state=random_state)
        display = cls(subsets=subsets, rates=rates, score_name=scoring)
        return display.plot(ax=ax, kind=kind)
