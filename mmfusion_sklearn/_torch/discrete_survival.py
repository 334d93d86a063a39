r"""Discrete-time survival in the torch core: the logistic-hazard likelihood (as in
MultiSurv, PORPOISE and pycox's ``LogisticHazard``), its interval edges, and the
survival curves and risk scores it gives.

Time is cut into ``n_bins`` intervals at edges ``cuts = [c_0 = 0, c_1, ..., c_n]``
(interval j is :math:`(c_j, c_{j+1}]`, the first one closed on the left, so that it
holds events at time 0). The network gives one logit :math:`\phi_{ij}` per interval,
the conditional hazard :math:`h_{ij} = \sigma(\phi_{ij})` of an event in interval j
given none before, and the survival at the end of interval j is
:math:`S_{ij} = \prod_{k \le j} (1 - h_{ik})`.

Targets are discretised as pycox's ``LabTransDiscreteTime`` does (events move to the
right edge of their interval, censorings to the left edge, ``censor_side="left"``):

- an event at time t falls in the interval that holds t (an event at a cut ``c_j`` in
  interval j - 1, at time 0 in interval 0); the sample survived every earlier interval;
- a censored sample survived every interval that ends at or before its time, and takes
  no part in the interval in which it was censored (censored exactly at a cut, it
  survived the interval that ends there; censored before ``c_1``, it takes part in no
  interval);
- a time after the last cut (held-out rows only: the cuts end at the training rows'
  largest time) is censored at the last cut, event or not.

pycox's network has one more output than this one, the hazard at ``c_0`` itself (its
interval 0 holds only time 0); here interval 0 is ``[0, c_1]``, so n + 1 edges give
n outputs, and everything else matches pycox output for output.

The loss is the weighted mean, over the rows taking part, of each row's negative log
likelihood, a sum of binary cross-entropies over the intervals it was at risk in (label
1 on the interval of its event). What it guarantees, where published implementations
stumble (pycox issue #124, torchsurv issue #35):

- a batch without any event has a genuine likelihood (every at-risk interval survived),
  finite with finite gradients; a single row likewise; no row taking part (an empty
  mask, zero weights, an empty batch) gives an exact 0 in the autograd graph;
- rows outside the mask take no part whatever their logits (even NaN or infinite):
  they are replaced, not multiplied by 0, so their gradients are exactly 0;
- everything is vectorised over the batch and over leading dimensions (the linear
  path's configurations, the SMD objective's M + 1 inputs).

No scikit-learn or scikit-survival here. One module, longer than most, because the
cuts, the discretisation, the loss and the curves share one convention (which interval
a time falls in) that must not drift apart; about half of it is docstrings.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from .survival import SurvivalTask, _numpy
from .tasks import Task

#: Arrays, lists or tensors of numbers.
Values = ArrayLike | torch.Tensor

#: The number of intervals :func:`default_n_bins` never goes below and above.
MIN_BINS, MAX_BINS = 4, 20
#: :func:`default_n_bins` aims at this many events per interval.
EVENTS_PER_BIN = 10


def _check_targets(time, event) -> tuple[np.ndarray, np.ndarray]:
    t = _numpy(time)
    e = _numpy(event, bool)
    if len(t) != len(e):
        raise ValueError(
            f"time and event must have the same length. Got {len(t)} and {len(e)} instead."
        )
    if not np.all(np.isfinite(t)):
        raise ValueError("time must be finite; some values are NaN or infinite.")
    if len(t) and t.min() < 0:
        raise ValueError(f"time must be non-negative. Got a minimum of {t.min()!r} instead.")
    return t, e


def _check_cuts(cuts) -> np.ndarray:
    c = _numpy(cuts)
    if len(c) < 2 or not np.all(np.isfinite(c)) or np.any(np.diff(c) <= 0) or c[0] < 0:
        raise ValueError(
            "cuts must hold at least two finite, non-negative, strictly increasing edges "
            f"(as discrete_cuts makes them). Got {c.tolist()!r} instead."
        )
    return c


def default_n_bins(n_events: int) -> int:
    """Return the number of intervals for a training set with ``n_events`` events.

    ``min(20, max(4, n_events // 10))``: about ten events per interval (each interval's
    hazard is then estimated from a useful number of events), never fewer than 4
    intervals (a coarser curve says little) and never more than 20 (MultiSurv's and
    pycox's usual grids are 10 to 20 wide; more only adds parameters to the head).

    Parameters
    ----------
    n_events : int
        Number of events in the training set.

    Returns
    -------
    int
        The number of intervals.

    Examples
    --------
    >>> [default_n_bins(n) for n in (0, 50, 120, 1000)]
    [4, 5, 12, 20]
    """
    return int(min(MAX_BINS, max(MIN_BINS, int(n_events) // EVENTS_PER_BIN)))


def discrete_cuts(time: Values, event: Values, n_bins: int | None = None) -> np.ndarray:
    """Return interval edges at quantiles of the event times.

    The edges are 0, the empirical quantiles of the event times at levels
    ``1 / n_bins, ..., (n_bins - 1) / n_bins`` (actual event times, numpy's
    ``"inverted_cdf"``, so that each interval holds about as many events and the events
    at an edge belong to the interval that ends there), and the largest time (event or
    censoring). Repeated edges (tied event times, events at time 0) are merged, so
    there may be fewer than ``n_bins`` intervals. Without any event the quantiles are
    those of all times.

    Parameters
    ----------
    time : array-like or Tensor (n,)
        Event or censoring times, finite and non-negative, at least one positive.
    event : array-like or Tensor (n,)
        Event indicators (bool, or nonzero = event).
    n_bins : int, default=None
        The number of intervals wanted; None is :func:`default_n_bins` of the number of
        events.

    Returns
    -------
    ndarray of float64 (n_intervals + 1,)
        Distinct ascending edges, from 0 to ``max(time)``.

    Examples
    --------
    >>> discrete_cuts([1.0, 2.0, 3.0, 4.0, 5.0, 9.0], [1, 1, 1, 1, 1, 0], n_bins=2)
    array([0., 3., 9.])
    """
    t, e = _check_targets(time, event)
    if not len(t) or t.max() <= 0:
        raise ValueError(
            "time must hold at least one positive value to cut it into intervals. Got "
            f"{len(t)} values, the largest {t.max() if len(t) else None!r}, instead."
        )
    if n_bins is None:
        n_bins = default_n_bins(int(e.sum()))
    elif isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer or None. Got {n_bins!r} instead.")
    source = t[e] if e.any() else t
    levels = np.arange(1, int(n_bins)) / int(n_bins)
    inner = np.quantile(source, levels, method="inverted_cdf") if len(levels) else []
    return np.unique(np.concatenate([[0.0], inner, [t.max()]]))


def discretise(time: Values, event: Values, cuts: Values) -> tuple[np.ndarray, np.ndarray]:
    """Return the interval of each sample and whether it has an event there.

    pycox's convention (see the module's docstring): an event at t is in the interval
    :math:`(c_j, c_{j+1}]` that holds t (interval 0 for t = 0); a censored sample's
    interval is the last one that ends at or before its time, the last it survived
    (-1 where it survived none); a time after the last cut is censored there.

    Parameters
    ----------
    time : array-like or Tensor (n,)
        Event or censoring times.
    event : array-like or Tensor (n,)
        Event indicators (bool, or nonzero = event).
    cuts : array-like (n_bins + 1,)
        Interval edges, strictly increasing (from :func:`discrete_cuts`).

    Returns
    -------
    interval : ndarray of int64 (n,)
        The sample's last interval at risk, in ``[-1, n_bins - 1]``: it survived every
        interval before it, and this one too unless ``event``.
    event : ndarray of bool (n,)
        Whether the sample has its event in ``interval`` (False after the last cut).

    Examples
    --------
    >>> interval, event = discretise([1.0, 2.0, 2.0, 0.5, 7.0], [1, 1, 0, 0, 1],
    ...                              [0.0, 1.0, 3.0, 6.0])
    >>> interval.tolist(), event.tolist()
    ([0, 1, 0, -1, 2], [True, True, False, False, False])
    """
    c = _check_cuts(cuts)
    t = _numpy(time)
    e = _numpy(event, bool)
    if len(t) != len(e):
        raise ValueError(
            f"time and event must have the same length. Got {len(t)} and {len(e)} instead."
        )
    n_bins = len(c) - 1
    is_event = e & (t <= c[-1])
    event_interval = np.clip(np.searchsorted(c, t, side="left") - 1, 0, n_bins - 1)
    censored_interval = np.clip(np.searchsorted(c, t, side="right") - 2, -1, n_bins - 1)
    return np.where(is_event, event_interval, censored_interval).astype(np.int64), is_event


def _discretise_tensor(time: torch.Tensor, event: torch.Tensor,
                       cuts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`discretise` in torch, on ``time``'s device, comparing in ``cuts``' dtype."""
    t = time.to(cuts.dtype).contiguous()
    n_bins = len(cuts) - 1
    is_event = (event != 0) & (t <= cuts[-1])
    event_interval = (torch.searchsorted(cuts, t) - 1).clamp(0, n_bins - 1)
    censored_interval = (torch.searchsorted(cuts, t, right=True) - 2).clamp(-1, n_bins - 1)
    return torch.where(is_event, event_interval, censored_interval), is_event


def logistic_hazard_nll(logits: torch.Tensor, interval: torch.Tensor, event: torch.Tensor,
                        weight: torch.Tensor | None = None) -> torch.Tensor:
    r"""Weighted mean negative log-likelihood of the logistic-hazard model.

    Row i, at risk through interval :math:`k_i` (``interval``) with event indicator
    :math:`d_i`, contributes

    .. math::

        \ell_i = -\sum_{j < k_i} \log(1 - h_{ij})
                 - d_i \log h_{ik_i} - (1 - d_i) \log(1 - h_{ik_i}),
        \qquad h_{ij} = \sigma(\phi_{ij}),

    a sum of binary cross-entropies with logits (nothing for :math:`k_i = -1`), and
    the loss is :math:`\sum_i w_i \ell_i / \sum_i w_i` over the rows with
    :math:`w_i > 0`. Unweighted, it is pycox's ``nll_logistic_hazard`` (mean
    reduction) without pycox's extra time-0 output.

    Parameters
    ----------
    logits : Tensor (..., B, n_bins)
        Logits of the conditional hazards. Leading dimensions are batched, all sharing
        ``interval`` and ``event``.
    interval : Tensor of int (B,)
        Each row's last interval at risk, in ``[-1, n_bins - 1]`` (from
        :func:`discretise`).
    event : Tensor (B,)
        Whether the row has its event in ``interval`` (bool, or nonzero = event).
    weight : Tensor broadcastable to ``logits.shape[:-1]``, default=None
        Non-negative sample weights; None is all ones. A row of weight 0 takes no part,
        whatever its logits: this is how masks are applied.

    Returns
    -------
    Tensor of shape ``logits.shape[:-2]``
        The loss, float32 (float64 for float64 ``logits``); 0 in the graph, with zero
        gradients, where no row has a positive weight.

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(2, 3, requires_grad=True)
    >>> loss = logistic_hazard_nll(logits, torch.tensor([1, 2]), torch.tensor([True, False]))
    >>> round(loss.item(), 4)  # (2 + 3) * log(2) / 2
    1.7329
    """
    logits = torch.as_tensor(logits)
    dtype = (torch.promote_types(logits.dtype, torch.float32) if logits.is_floating_point()
             else torch.float32)
    phi = logits.to(dtype)
    if phi.dim() < 2 or interval.shape != phi.shape[-2:-1] or event.shape != interval.shape:
        raise ValueError(
            f"logits must have shape (..., B, n_bins) and interval and event shape (B,). "
            f"Got {tuple(logits.shape)}, {tuple(interval.shape)} and {tuple(event.shape)} "
            "instead."
        )
    interval = interval.to(phi.device)
    event = event.to(phi.device)
    w = torch.as_tensor(1.0 if weight is None else weight, device=phi.device).to(dtype)
    w = torch.broadcast_to(w, phi.shape[:-1])
    takes_part = w > 0  # False for NaN weights too
    bins = torch.arange(phi.shape[-1], device=phi.device)
    at_risk = bins <= interval.unsqueeze(-1)  # (B, n_bins)
    label = ((bins == interval.unsqueeze(-1)) & (event != 0).unsqueeze(-1)).to(dtype)
    active = at_risk & takes_part.unsqueeze(-1)  # (..., B, n_bins)
    zero = torch.zeros((), dtype=dtype, device=phi.device)
    safe = torch.where(active, phi, zero)  # NaN or inf logits outside: no NaN gradients
    terms = F.binary_cross_entropy_with_logits(safe, label.expand_as(safe), reduction="none")
    per_row = torch.where(active, terms, zero).sum(-1)
    w = torch.where(takes_part, w, zero)
    total = w.sum(-1)
    return (w * per_row).sum(-1) / torch.where(total > 0, total, torch.ones_like(total))


def survival_curves(logits: torch.Tensor) -> torch.Tensor:
    r"""Return the survival at the end of each interval, :math:`\prod_{k \le j}(1 - h_k)`.

    Computed as :math:`\exp \sum_{k \le j} \log \sigma(-\phi_k)`, which is exact for
    any logits (no :math:`1 - \sigma` rounding to 0 or 1).

    Parameters
    ----------
    logits : Tensor (..., n_bins)
        Logits of the conditional hazards.

    Returns
    -------
    Tensor (..., n_bins)
        Survival probabilities, non-increasing along the last dimension, in [0, 1]; the
        dtype of ``logits`` (float32 at least).
    """
    logits = torch.as_tensor(logits)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return torch.exp(torch.cumsum(F.logsigmoid(-logits.to(dtype)), dim=-1))


def survival_at(curves: Values, cuts: Values, times: Values) -> np.ndarray:
    """Evaluate survival curves, as step functions, at arbitrary times.

    The curve is 1 before ``cuts[1]`` (the end of the first interval), ``curves[:, j]``
    from ``cuts[j + 1]`` (the end of interval j) until the next cut, and its last value
    after the last cut: right-continuous steps at the interval ends, like
    scikit-survival's ``StepFunction`` over the cuts.

    Parameters
    ----------
    curves : array-like or Tensor (n, n_bins)
        Survival at the end of each interval (e.g. :meth:`DiscreteSurvivalTask.combine`).
    cuts : array-like (n_bins + 1,)
        The interval edges.
    times : array-like (k,)
        Where to evaluate.

    Returns
    -------
    ndarray of float64 (n, k)
        Row i is sample i's survival at each time.

    Examples
    --------
    >>> survival_at([[0.8, 0.5]], [0.0, 1.0, 3.0], [0.5, 1.0, 2.0, 3.0, 10.0])
    array([[1. , 0.8, 0.8, 0.5, 0.5]])
    """
    c = _check_cuts(cuts)
    s = _curves(curves, len(c) - 1)
    index = np.searchsorted(c[1:], _numpy(times), side="right") - 1
    values = s[:, np.clip(index, 0, None)]
    return np.where(index >= 0, values, 1.0)


def _curves(curves, n_bins: int) -> np.ndarray:
    if isinstance(curves, torch.Tensor):
        curves = curves.detach().cpu().numpy()
    s = np.asarray(curves, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != n_bins:
        raise ValueError(
            f"curves must have shape (n, {n_bins}), one column per interval of the cuts. "
            f"Got {s.shape} instead."
        )
    return s


def restricted_mean_survival_time(curves: Values, cuts: Values) -> np.ndarray:
    r"""Return the restricted mean survival time over the cuts, :math:`\int_0^{c_n} S(t)\,dt`.

    Within an interval the curve is taken as linear between the survival at its two
    ends (events spread evenly over the interval, pycox's "constant density"
    interpolation): :math:`\sum_j (c_{j+1} - c_j)(S_{j-1} + S_j) / 2` with
    :math:`S_{-1} = 1`. Every interval's hazard, the last one's included, enters.

    Parameters
    ----------
    curves : array-like or Tensor (n, n_bins)
        Survival at the end of each interval.
    cuts : array-like (n_bins + 1,)
        The interval edges.

    Returns
    -------
    ndarray of float64 (n,)
        The expected time alive up to the last cut, in the units of the cuts.

    Examples
    --------
    >>> restricted_mean_survival_time([[0.5, 0.25]], [0.0, 1.0, 3.0])
    array([1.5])
    """
    c = _check_cuts(cuts)
    s = _curves(curves, len(c) - 1)
    start = np.concatenate([np.ones((len(s), 1)), s[:, :-1]], axis=1)
    return ((start + s) / 2.0) @ np.diff(c)


def risk_score(curves: Values, cuts: Values) -> np.ndarray:
    """Return a risk score from survival curves: minus the restricted mean survival time.

    Higher means an earlier event (scikit-survival's convention). Minus the restricted
    mean survival time over the cuts (:func:`restricted_mean_survival_time`) is chosen
    over the survival at one time (e.g. the median event time) because it summarises
    the whole curve: it uses every interval's hazard, it orders two curves that cross
    by the area between them instead of by where one time falls, and it does not tie
    the samples whose curves agree at that one time. With equal-width intervals it
    ranks as PORPOISE's risk (minus the sum of the survival probabilities).

    Parameters
    ----------
    curves : array-like or Tensor (n, n_bins)
        Survival at the end of each interval.
    cuts : array-like (n_bins + 1,)
        The interval edges.

    Returns
    -------
    ndarray of float64 (n,)
        The risk scores.

    Examples
    --------
    >>> risk_score([[0.5, 0.25], [0.9, 0.8]], [0.0, 1.0, 3.0])
    array([-1.5 , -2.65])
    """
    return -restricted_mean_survival_time(curves, cuts)


class DiscreteSurvivalTask(Task):
    """Discrete-time hazard (logistic hazard): one logit per interval of the cuts.

    Targets are float32 tensors (B, 2), time then event (1.0 or 0.0), the Cox task's
    format (:meth:`encode_targets`); the task discretises them with its cuts inside
    every loss (see :func:`discretise`). The loss is :func:`logistic_hazard_nll`, the
    weighted mean per row, logged as ``discrete_loss``. :meth:`combine` averages the
    members' survival curves (the survival at the end of each interval); risk scores
    come from :func:`risk_score`, curves at arbitrary times from :func:`survival_at`.
    The contrastive stage is label-free (each sample its own class).

    Parameters
    ----------
    cuts : array-like (n_bins + 1,)
        Interval edges, strictly increasing, usually from :func:`discrete_cuts` on the
        training rows (see :meth:`from_targets`).

    Attributes
    ----------
    cuts : list of float
        The edges, as given (JSON-ready: ``DiscreteSurvivalTask(task.cuts)`` rebuilds
        the task).
    n_bins : int
        The number of intervals, ``len(cuts) - 1``.
    n_outputs : int
        The head's width, ``n_bins``.

    Examples
    --------
    >>> import torch
    >>> task = DiscreteSurvivalTask.from_targets([1.0, 2.0, 3.0, 4.0, 5.0, 9.0],
    ...                                          [1, 1, 1, 1, 1, 0], n_bins=2)
    >>> task.cuts, task.n_outputs
    ([0.0, 3.0, 9.0], 2)
    >>> y = task.encode_targets([2.0, 5.0], [True, False])
    >>> round(float(task.loss(torch.zeros(2, 2), y)), 4)  # (1 + 1) * log(2) / 2
    0.6931
    """

    name = "survival"
    full_loss_name = "discrete_loss"
    target_dtype = torch.float32

    def __init__(self, cuts: Values) -> None:
        edges = _check_cuts(cuts)
        self.cuts = [float(c) for c in edges]
        self.n_bins = len(edges) - 1
        self.n_outputs = self.n_bins
        self._cuts_by_device: dict[str, torch.Tensor] = {}

    @classmethod
    def from_targets(cls, time: Values, event: Values,
                     n_bins: int | None = None) -> DiscreteSurvivalTask:
        """Build the task with cuts from the training targets (:func:`discrete_cuts`).

        Parameters
        ----------
        time : array-like or Tensor (n,)
            Event or censoring times of the training rows.
        event : array-like or Tensor (n,)
            Their event indicators.
        n_bins : int, default=None
            The number of intervals wanted; None is :func:`default_n_bins`.

        Returns
        -------
        DiscreteSurvivalTask
            The task.
        """
        return cls(discrete_cuts(time, event, n_bins))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cuts_by_device"] = {}  # device copies stay behind (a CUDA one in a pickle)
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cuts={self.cuts!r})"

    def _cuts_on(self, device: torch.device) -> torch.Tensor:
        # float32, the targets' dtype: an event time equal to a cut stays equal to it
        key = str(device)
        if key not in self._cuts_by_device:
            self._cuts_by_device[key] = torch.tensor(self.cuts, dtype=torch.float32,
                                                     device=device)
        return self._cuts_by_device[key]

    def discretise_targets(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return each row's last interval at risk and event indicator.

        Parameters
        ----------
        y : Tensor (B, 2)
            Time and event.

        Returns
        -------
        interval : Tensor of int64 (B,)
            In ``[-1, n_bins - 1]``, as :func:`discretise` (compared in float32).
        event : Tensor of bool (B,)
            Whether the row has its event in ``interval``.
        """
        return _discretise_tensor(y[:, 0], y[:, 1], self._cuts_on(y.device))

    #: Targets in the Cox task's format, float32 (n, 2): time, then event as 1.0 or 0.0.
    encode_targets = staticmethod(SurvivalTask.encode_targets)

    def loss(self, outputs, y, weight=None, mask=None):
        """Logistic-hazard loss of ``outputs`` over the rows in ``mask``.

        Parameters
        ----------
        outputs : Tensor (B, n_bins)
            Hazard logits.
        y : Tensor (B, 2)
            Time and event.
        weight : Tensor (B,), default=None
            Sample weights; None is all ones.
        mask : Tensor (B,) of bool, default=None
            Rows taking part; None is all.

        Returns
        -------
        Tensor
            A scalar, 0 (in the graph) when no row takes part.
        """
        if mask is not None:
            mask = mask.to(outputs.device)
            weight = mask.float() if weight is None else weight * mask.to(weight.dtype)
        interval, event = self.discretise_targets(y.to(outputs.device))
        return logistic_hazard_nll(outputs, interval, event, weight)

    def smd_loss(self, full, single, y, present, weight, unimodal_weight):
        """Compute the SMD objective in one batched loss (one discretisation).

        Parameters
        ----------
        full : Tensor (B, n_bins)
            Logits with every available modality.
        single : Tensor (M, B, n_bins)
            Logits with modality m alone.
        y : Tensor (B, 2)
            Time and event.
        present : Tensor (B, M) of bool
            Which rows have which modality.
        weight : Tensor (B,) or None
            Sample weights.
        unimodal_weight : float
            Weight of the single-modality terms.

        Returns
        -------
        Tensor
            ``loss(full) + unimodal_weight * sum_m loss(only m)``.
        """
        w = torch.ones(full.shape[0], device=full.device) if weight is None \
            else weight.to(full.device).float()
        weights = torch.cat([w.unsqueeze(0),
                             w.unsqueeze(0) * present.to(full.device).T.float()])
        losses = self.configuration_losses(torch.cat([full.unsqueeze(0), single]), y, weights)
        return losses[0] + float(unimodal_weight) * losses[1:].sum()

    def configuration_losses(self, outputs, y, weight):
        """Logistic-hazard losses of K configurations at once.

        Parameters
        ----------
        outputs : Tensor (K, B, n_bins)
            Hazard logits per configuration.
        y : Tensor (B, 2)
            Time and event.
        weight : Tensor (K, B)
            Per-configuration weights; 0 where a row takes no part.

        Returns
        -------
        Tensor (K,)
            The losses.
        """
        interval, event = self.discretise_targets(y.to(outputs.device))
        return logistic_hazard_nll(outputs, interval, event, weight)

    def linear_l2(self, C, weight, y=None):
        r"""The L2 coefficient of the mean loss that matches the inverse penalty C.

        scikit-learn's convention (C times the summed weighted loss plus half the
        squared norm), :math:`C \sum_i w_i \ell_i + \frac{1}{2}\lVert W\rVert^2`,
        divided by the loss's normaliser :math:`C \sum_i w_i`, is the mean loss plus
        ``l2 * ||W||^2`` with ``l2 = 1 / (2 C sum(weight))``. As the logistic-hazard
        likelihood is the binary log-loss of the person-period rows (one row per sample
        and interval it is at risk in, label 1 on its event interval) and a linear
        head has its own weights and (unpenalised) intercept per interval, the
        objective falls apart into one problem per interval: the weights of interval
        j are those of ``LogisticRegression(C=C)`` fitted on interval j's person-period
        rows with the samples' weights (inputs standardised as the linear path does).

        Parameters
        ----------
        C : float
            Inverse penalty.
        weight : Tensor (n,)
            Sample weights of the rows fitted.
        y : Tensor (n, 2), default=None
            Their targets; not needed (the loss's normaliser is ``sum(weight)``).

        Returns
        -------
        float
            The coefficient.
        """
        return 1.0 / (2.0 * C * max(float(weight.double().sum()), 1e-12))

    def combine(self, outputs):
        """The members' survival curves averaged.

        Parameters
        ----------
        outputs : list of Tensor (B, n_bins)
            Each member's hazard logits.

        Returns
        -------
        Tensor of float64 (B, n_bins)
            The mean over members of the survival at the end of each interval
            (:func:`survival_curves`): non-increasing along each row, in [0, 1].
        """
        return torch.stack([survival_curves(o.double()) for o in outputs]).mean(dim=0)
