"""Training curves: :class:`TrainingHistoryDisplay`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ._base import _panels, _pyplot

#: Stages of ``history_``, in the order they train.
STAGES = ("contrastive", "classification")


# -- training history -----------------------------------------------------------
class TrainingHistoryDisplay:
    """Training and validation losses per epoch, one panel per training stage.

    Each member of the ensemble is a thin line (training loss in blue, its held-out
    loss in orange); the validation loss pooled over all members' held-out rows, which
    early stopping watches, is the bold orange line, and a dashed vertical line marks
    the epoch whose weights were kept. The contrastive stage, when there was one, has
    its own panel on the left (its loss has another scale).

    It is recommended to build it with :meth:`from_estimator`. All parameters are
    stored as attributes.

    Parameters
    ----------
    history : pandas.DataFrame
        A fitted estimator's ``history_``: one row per member, stage and epoch, with
        columns ``stage``, ``epoch`` and ``train_loss``, and optionally ``member``,
        ``valid_loss`` and ``pooled_valid_loss``.
    best_epoch : int or None, default=None
        The classification epoch whose weights were kept (``best_epoch_``; 0 is the
        starting point), marked on the plot; None marks nothing.

    Attributes
    ----------
    lines_ : dict of str to dict of str to list of matplotlib Line2D
        Per stage, the lines drawn: ``"train"`` and ``"valid"`` (one per member) and
        ``"pooled_valid"`` (one line, or none).
    best_epoch_line_ : matplotlib Line2D or None
        The vertical line at ``best_epoch``.
    axes_ : ndarray of matplotlib Axes
        One Axes per stage drawn, in training order.
    ax_ : matplotlib Axes
        The last of ``axes_``: the task stage (classification, regression) when it is drawn.
    figure_ : matplotlib Figure
        The figure holding the axes.

    See Also
    --------
    MultimodalFusionClassifier : Its ``history_`` and ``best_epoch_`` are plotted.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> from mmfusion_sklearn.plotting import TrainingHistoryDisplay
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 30)
    >>> X = {"a": rng.normal(size=(60, 2)) + y[:, None],
    ...      "b": rng.normal(size=(60, 3)) - y[:, None]}
    >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=2,
    ...                                  ensemble_size=2, device="cpu",
    ...                                  random_state=0).fit(X, y)
    >>> display = TrainingHistoryDisplay.from_estimator(clf)
    >>> [ax.get_title() for ax in display.axes_]
    ['Contrastive stage (2 members)', 'Classification stage (2 members)']
    """

    def __init__(self, history: pd.DataFrame, *, best_epoch: int | None = None) -> None:
        self.history = history
        self.best_epoch = best_epoch

    def _stages(self, stages: Any) -> list[str]:
        history = self.history
        if not isinstance(history, pd.DataFrame):
            raise TypeError(
                "TrainingHistoryDisplay needs 'history' as a pandas DataFrame (an "
                f"estimator's history_). Got {type(history).__name__} instead."
            )
        lacking = [c for c in ("stage", "epoch", "train_loss") if c not in history]
        if lacking:
            raise ValueError(
                f"'history' lacks the columns {lacking}; it needs 'stage', 'epoch' and "
                f"'train_loss', as in an estimator's history_. Got {list(history.columns)} "
                "instead."
            )
        present = list(dict.fromkeys(history["stage"]))
        present = [s for s in STAGES if s in present] + [s for s in present if s not in STAGES]
        if not present:
            raise ValueError("'history' has no rows: the estimator recorded no epoch.")
        if stages is None:
            return present
        stages = [stages] if isinstance(stages, str) else list(stages)
        unknown = [s for s in stages if s not in present]
        if unknown or not stages:
            raise ValueError(
                f"The 'stages' parameter must name stages of the history {present}. Got "
                f"{stages!r} instead."
            )
        return [s for s in present if s in stages]

    def plot(self, ax: Any = None, *, stages: str | list[str] | None = None
             ) -> TrainingHistoryDisplay:
        """Draw the losses of each stage per epoch.

        Parameters
        ----------
        ax : matplotlib Axes, sequence of Axes or None, default=None
            One Axes per stage drawn (``stages``); None makes a new figure.
        stages : str, list of str or None, default=None
            Stages to draw (``"contrastive"``, ``"classification"``); None draws every
            stage of the history.

        Returns
        -------
        TrainingHistoryDisplay
            This display, with ``axes_``, ``ax_``, ``figure_``, ``lines_`` and
            ``best_epoch_line_`` set.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import pandas as pd
        >>> from mmfusion_sklearn.plotting import TrainingHistoryDisplay
        >>> history = pd.DataFrame({"stage": "classification", "member": 0,
        ...                         "epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.4],
        ...                         "valid_loss": [0.7, 0.6, 0.65]})
        >>> display = TrainingHistoryDisplay(history, best_epoch=2).plot()
        >>> display.best_epoch_line_.get_xdata()[0]
        2
        """
        stages = self._stages(stages)
        figure, axes = _panels(ax, len(stages), "TrainingHistoryDisplay.plot",
                               "one per stage: " + ", ".join(stages))
        from matplotlib.ticker import MaxNLocator

        self.lines_ = {}
        self.best_epoch_line_ = None
        for axis, stage in zip(axes, stages):
            self.lines_[stage] = self._plot_stage(axis, stage)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_xlabel("epoch")
            axis.set_ylabel("loss")
            axis.grid(True, alpha=0.3)
            if stage != "contrastive" and self.best_epoch is not None:  # the task stage
                best = int(self.best_epoch)
                label = f"best epoch: {best}" + (" (the starting point)" if best == 0 else "")
                self.best_epoch_line_ = axis.axvline(best, color="0.2", linestyle="--",
                                                     linewidth=1.2, label=label)
            axis.legend(fontsize="small", loc="best")
        self.axes_, self.ax_, self.figure_ = axes, axes[-1], figure
        return self

    def _plot_stage(self, axis: Any, stage: str) -> dict[str, list[Any]]:
        rows = self.history[self.history["stage"] == stage]
        members = (rows.groupby("member", sort=True) if "member" in rows
                   else [(0, rows)])
        members = [(m, part.sort_values("epoch")) for m, part in members]
        several = len(members) > 1
        thin = {"linewidth": 0.9, "alpha": 0.55} if several else {"linewidth": 1.8}
        lines: dict[str, list[Any]] = {"train": [], "valid": [], "pooled_valid": []}
        for i, (_, part) in enumerate(members):
            lines["train"] += axis.plot(
                part["epoch"], part["train_loss"], color="C0", **thin,
                label=("training (each member)" if several else "training") if i == 0
                else "_nolegend_")
        for _, part in members:
            if "valid_loss" not in part or part["valid_loss"].isna().all():
                continue
            lines["valid"] += axis.plot(
                part["epoch"], part["valid_loss"], color="C1", **thin,
                label=("validation (each member's held-out rows)" if several
                       else "validation") if not lines["valid"] else "_nolegend_")
        pooled = rows.get("pooled_valid_loss")
        if several and pooled is not None and not pooled.isna().all():
            per_epoch = rows.groupby("epoch", sort=True)["pooled_valid_loss"].first()
            lines["pooled_valid"] += axis.plot(
                per_epoch.index, per_epoch.to_numpy(), color="C1", linewidth=2.6,
                label="validation (pooled, early stopping)")
        count = f" ({len(members)} members)" if several else ""
        axis.set_title(f"{stage.capitalize()} stage{count}")
        return lines

    @classmethod
    def from_estimator(cls, estimator: Any, *, stages: str | list[str] | None = None,
                       ax: Any = None) -> TrainingHistoryDisplay:
        """Plot a fitted estimator's ``history_``, marking its ``best_epoch_``.

        Parameters
        ----------
        estimator : fitted MultimodalFusionClassifier
            Any fitted estimator with a ``history_`` DataFrame.
        stages : str, list of str or None, default=None
            Stages to draw; None draws every stage trained.
        ax : matplotlib Axes, sequence of Axes or None, default=None
            One Axes per stage drawn; None makes a new figure.

        Returns
        -------
        TrainingHistoryDisplay
            The display, drawn.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from mmfusion_sklearn import MultimodalFusionClassifier
        >>> from mmfusion_sklearn.plotting import TrainingHistoryDisplay
        >>> rng = np.random.default_rng(0)
        >>> y = np.tile([0, 1], 30)
        >>> X = {"a": rng.normal(size=(60, 2)) + y[:, None], "b": rng.normal(size=(60, 3))}
        >>> clf = MultimodalFusionClassifier(embed_dim=8, max_epochs=3, pretrain_epochs=0,
        ...                                  early_stopping=False, device="cpu",
        ...                                  random_state=0).fit(X, y)
        >>> display = TrainingHistoryDisplay.from_estimator(clf)
        >>> len(display.lines_["classification"]["train"])  # one network
        1
        >>> display.best_epoch_line_ is None  # no early stopping: no best epoch
        True
        """
        _pyplot("TrainingHistoryDisplay.from_estimator")
        check_is_fitted(estimator)
        history = getattr(estimator, "history_", None)
        if not isinstance(history, pd.DataFrame):
            raise ValueError(
                f"{type(estimator).__name__} has no history_ DataFrame to plot; "
                "TrainingHistoryDisplay needs a fitted MultimodalFusionClassifier."
            )
        display = cls(history, best_epoch=getattr(estimator, "best_epoch_", None))
        return display.plot(ax=ax, stages=stages)
