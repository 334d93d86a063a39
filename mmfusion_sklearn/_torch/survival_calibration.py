"""The calibration slope of Cox risk scores on rows the model did not train on.

A network's risk scores spread more on its training rows than on new patients (it
fits them), so survival curves from a Breslow baseline fitted on in-sample scores are
too extreme on new data. The remedy of clinical prediction modelling (the calibration
slope, Van Houwelingen and Le Cessie 1990) is one Cox regression of the outcome on the
held-out risk score: its coefficient (about 0.7 on small cohorts) shrinks the scores
before the baseline is fitted.
"""

from __future__ import annotations

import numpy as np
import torch

from .survival import cox_partial_likelihood


def calibration_slope(risk, time, event, weight=None, ties: str = "efron",
                      tol: float = 1e-10) -> float:
    """Fit the coefficient b of a one-variable Cox model on ``risk``.

    The negative log partial likelihood is convex in b, so its derivative (by
    autograd) is increasing: the root is bracketed from 0 upwards and found by
    bisection, which needs no second derivative (the partial likelihood's
    log-sum-exps are not twice differentiable everywhere in autograd).

    Parameters
    ----------
    risk : array-like (n,)
        Risk scores of rows the model did not train on.
    time : array-like (n,)
        Their event or censoring times.
    event : array-like (n,)
        Their event indicators.
    weight : array-like (n,), default=None
        Sample weights; None is all ones.
    ties : {"efron", "breslow"}, default="efron"
        Approximation for tied event times.
    tol : float, default=1e-10
        Width of the final bracket, in units of the scores' standard deviation.

    Returns
    -------
    float
        The slope, at least 0: 1 where the scores are as spread as the outcomes say, below
        1 where they are too spread (overfitting), 0 where they carry no information on
        these rows (every patient then gets the baseline curve). 1.0 where it cannot be
        estimated (no event, or all scores equal).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=2000)
    >>> time = rng.exponential(np.exp(-signal))
    >>> round(calibration_slope(2 * signal, time, rng.random(2000) < 0.7), 1)
    0.5
    """
    r = torch.as_tensor(np.ascontiguousarray(risk, dtype=np.float64))
    t = torch.as_tensor(np.ascontiguousarray(time, dtype=np.float64))
    e = torch.as_tensor(np.ascontiguousarray(event, dtype=bool))
    w = None if weight is None else torch.as_tensor(
        np.ascontiguousarray(weight, dtype=np.float64))
    spread = float(r.std()) if len(r) > 1 else 0.0
    if not bool(e.any()) or not np.isfinite(spread) or spread == 0.0:
        return 1.0
    r = (r - r.mean()) / spread  # in unit scale; the slope is divided back

    def derivative(b: float) -> float:
        coefficient = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        cox_partial_likelihood(coefficient * r, t, e, w, ties).backward()
        return float(coefficient.grad)

    if not derivative(0.0) < 0:  # no positive association on these rows
        return 0.0
    low, high = 0.0, 1.0
    while derivative(high) < 0:
        low, high = high, 2.0 * high
        if high > 1e6:  # the scores separate the outcomes: no finite maximum
            return high / spread
    while high - low > tol:
        middle = 0.5 * (low + high)
        if derivative(middle) < 0:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high) / spread
