"""The step functions that a survival estimator returns per sample (survival or
cumulative hazard over time), with scikit-survival's ``StepFunction`` interface."""

from __future__ import annotations

from typing import Any

import numpy as np


class StepFunction:
    """A right-continuous step function of time, one per sample.

    It has the interface of scikit-survival's ``sksurv.functions.StepFunction``
    (``x``, ``y``, ``domain`` and ``__call__``), so that scikit-survival's metrics and
    plotting code take it, and needs no scikit-survival.

    ``f(t) = y[i]`` for ``x[i] <= t < x[i + 1]``; before ``x[0]`` it is ``initial``
    (1 for a survival function, 0 for a cumulative hazard: nothing has happened before
    the first event time), which scikit-survival's class, clipping to ``x[0]``, does
    not give.

    Parameters
    ----------
    x : ndarray of shape (n_points,)
        The times where the function steps, ascending (the training event times).
    y : ndarray of shape (n_points,)
        Its value from each of them on.
    initial : float
        Its value before ``x[0]``.
    domain : tuple of float
        ``(lower, upper)``: the times where it is defined. The upper end is the last
        training time (event or censoring): the model knows nothing beyond it.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, initial: float,
                 domain: tuple[float, float]) -> None:
        self.x = x
        self.y = y
        self.initial = float(initial)
        self._domain = (float(domain[0]), float(domain[1]))

    @property
    def domain(self) -> tuple[float, float]:
        """``(lower, upper)``: the times where the function is defined."""
        return self._domain

    def __call__(self, t: Any) -> Any:
        """The function's value at ``t``.

        Parameters
        ----------
        t : float or array-like of shape (n_times,)
            Times within :attr:`domain`.

        Returns
        -------
        float or ndarray of shape (n_times,)
            A float for one time, as scikit-survival's ``StepFunction`` does.

        Raises
        ------
        ValueError
            Where a time is not finite or outside :attr:`domain`.
        """
        times = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if not np.isfinite(times).all():
            raise ValueError("The times must be finite.")
        low, high = self._domain
        if times.size and (times.min() < low or times.max() > high):
            raise ValueError(
                f"The times must lie within the function's domain [{low:g}, {high:g}] (from 0 "
                f"to the last training time); got values in [{times.min():g}, "
                f"{times.max():g}]."
            )
        index = np.searchsorted(self.x, times, side="right") - 1
        values = np.where(index >= 0, self.y[np.clip(index, 0, None)] if len(self.y) else 0.0,
                          self.initial)
        return values[0] if values.shape[0] == 1 and np.ndim(t) == 0 else values

    def __repr__(self) -> str:
        return f"StepFunction(x={self.x!r}, y={self.y!r}, initial={self.initial!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StepFunction):
            return NotImplemented
        return (np.array_equal(self.x, other.x) and np.array_equal(self.y, other.y)
                and self.initial == other.initial and self._domain == other._domain)

    __hash__ = None  # mutable arrays: equal functions need not hash alike
