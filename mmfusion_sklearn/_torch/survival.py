"""Censored time-to-event outcomes in the torch core: the Cox partial likelihood, the
Breslow baseline hazard, Harrell's concordance index and the survival task head.

The network's one output is a log-hazard ratio (a risk score: higher means an earlier
event, as in scikit-survival). It is trained with the negative log partial likelihood
of Cox's model (DeepSurv), ties handled by Efron's or Breslow's approximation, with
sample weights; survival curves come from Breslow's estimator of the cumulative
baseline hazard on the training rows' risk scores.

What the loss guarantees, where published implementations stumble (pycox issue #124:
a batch without an event divides by zero; torchsurv issue #35: a batch of one sample
gives 0):

- a batch, or a configuration, without any event gives an exact 0 in the autograd graph
  (zero gradients), never NaN; a lone sample gives 0, the partial likelihood's own value;
- tied times form one risk set (not the order of a sort, as pycox's cumulative sum
  does), and tied events follow Efron's or Breslow's approximation;
- the risk sets are log-sum-exps over the sorted batch (``torch.logcumsumexp``), so
  any spread of risk scores is finite;
- rows with zero weight (outside the mask) take no part at all, neither as events nor
  in anyone's risk set, whatever their risk score (even NaN or infinite);
- everything is vectorised over the batch (one sort, cumulative sums, group sums) and
  over leading dimensions (the linear path's configurations).

No scikit-learn or scikit-survival here; tests/test_survival_core.py compares with both.
"""

from __future__ import annotations

import numpy as np
import torch

from .tasks import Task

#: Approximations of the partial likelihood for tied event times.
TIES = ("efron", "breslow")

#: How far below the lowest participating log-weighted risk the rows taking no part
#: go: exp(-1000) is 0 in float32 and float64, yet every value and gradient is finite.
_OUTSIDE = 1000.0


def _check_ties(ties: str) -> None:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {list(TIES)}. Got {ties!r} instead.")


def cox_partial_likelihood(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor,
                           weight: torch.Tensor | None = None,
                           ties: str = "efron") -> torch.Tensor:
    r"""Negative log partial likelihood of Cox's model, per (weighted) event.

    With distinct event times :math:`t_g`, :math:`D_g` the events at :math:`t_g`
    (:math:`d_g` of them, total weight :math:`W_g`), :math:`R_g` the rows with time
    :math:`\ge t_g`, :math:`S_g = \sum_{j \in R_g} w_j e^{r_j}` and
    :math:`E_g = \sum_{i \in D_g} w_i e^{r_i}`:

    .. math::

        \ell = \frac{1}{\sum_g W_g} \sum_g \Big( \frac{W_g}{d_g}
        \sum_{k=0}^{d_g - 1} \log\big(S_g - \tfrac{k}{d_g} E_g\big)
        - \sum_{i \in D_g} w_i r_i \Big)

    (Efron; Breslow drops the :math:`E_g` term, giving :math:`W_g \log S_g`). This is
    the weighted Efron likelihood of R's ``survival::coxph``; without weights and
    multiplied by the number of events it is scikit-survival's
    ``CoxPHSurvivalAnalysis`` objective (times the number of samples). Without tied
    event times both approximations are the same exact partial likelihood.

    Parameters
    ----------
    risk : Tensor (..., B)
        Log-hazard ratios (risk scores). Leading dimensions are batched: each slice is
        one loss, all sharing ``time`` and ``event`` (one sort for all).
    time : Tensor (B,)
        Event or censoring times.
    event : Tensor (B,)
        Event indicators (bool, or nonzero = event).
    weight : Tensor broadcastable to risk, default=None
        Non-negative sample weights; None is all ones. A row of weight 0 takes no part
        (neither as an event nor in any risk set): this is how masks are applied.
    ties : {"efron", "breslow"}, default="efron"
        Approximation for tied event times.

    Returns
    -------
    Tensor of shape ``risk.shape[:-1]``
        The loss, float32 (float64 for float64 ``risk``). It is 0, with zero gradients,
        where no row with positive weight has an event.

    Examples
    --------
    >>> import torch
    >>> risk = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    >>> loss = cox_partial_likelihood(risk, torch.tensor([1.0, 2.0, 3.0]),
    ...                               torch.tensor([False, False, False]))
    >>> loss.backward()
    >>> loss.item(), risk.grad.tolist()
    (0.0, [0.0, 0.0, 0.0])
    """
    _check_ties(ties)
    risk = torch.as_tensor(risk)
    dtype = (torch.promote_types(risk.dtype, torch.float32) if risk.is_floating_point()
             else torch.float32)
    r = risk.to(dtype)
    n = r.shape[-1] if r.dim() else 0
    time = torch.as_tensor(time, device=r.device)
    event = torch.as_tensor(event, device=r.device)
    if r.dim() == 0 or time.shape != (n,) or event.shape != (n,):
        raise ValueError(
            f"risk must have shape (..., B) and time and event shape (B,). Got "
            f"{tuple(risk.shape)}, {tuple(time.shape)} and {tuple(event.shape)} instead."
        )
    w = torch.as_tensor(1.0 if weight is None else weight, device=r.device).to(dtype)
    r, w = torch.broadcast_tensors(r, w)
    if n == 0:
        return r.sum(-1) * 0.0

    order = torch.argsort(time, stable=True)
    _, group, counts = torch.unique_consecutive(time[order], return_inverse=True,
                                                return_counts=True)
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    first = starts[group]  # (B,) the first sorted row of each row's time group
    r, w = r[..., order], w[..., order]
    takes_part = w > 0
    is_event = (event[order] != 0) & takes_part

    # log of w * exp(r); the rows taking no part far below everyone else
    z = r + torch.log(w.clamp_min(torch.finfo(dtype).tiny))
    with torch.no_grad():
        floor = torch.where(takes_part, z, torch.inf).amin(-1, keepdim=True)
        floor = torch.where(torch.isfinite(floor), floor, torch.zeros_like(floor)) - _OUTSIDE
    z = torch.where(takes_part, z, floor)
    # log S_g, the (weighted) risk set of each row's time: everyone at or after it
    log_risk_set = torch.logcumsumexp(z.flip(-1), -1).flip(-1)[..., first]

    zero = torch.zeros((), dtype=dtype, device=r.device)
    event_weight = torch.where(is_event, w, zero)
    numerator = torch.where(is_event, w * r, zero).sum(-1)
    total = event_weight.sum(-1)
    if ties == "breslow":
        denominator = (event_weight * log_risk_set).sum(-1)
    else:
        n_groups, dim = len(counts), r.dim() - 1

        def group_sum(values: torch.Tensor) -> torch.Tensor:
            return values.new_zeros(values.shape[:-1] + (n_groups,)).index_add(
                dim, group, values)

        # k of each event among its group's events, d_g, W_g / d_g and E_g / S_g
        seen = torch.cumsum(is_event.to(dtype), -1)
        seen = torch.cat([torch.zeros_like(seen[..., :1]), seen], -1)
        before = seen[..., starts]
        n_tied = (seen[..., ends] - before).clamp_min(1.0)
        rank = seen[..., 1:] - before[..., group] - 1.0
        mean_weight = (group_sum(event_weight) / n_tied)[..., group]
        share = group_sum(torch.where(is_event, torch.exp(z - log_risk_set), zero))
        share = share.clamp(max=1.0)[..., group]
        fraction = torch.where(is_event, rank / n_tied[..., group], zero)
        terms = log_risk_set + torch.log1p(-fraction * share)
        denominator = torch.where(is_event, mean_weight * terms, zero).sum(-1)
    return (denominator - numerator) / torch.where(total > 0, total, torch.ones_like(total))


def _numpy(values, dtype=np.float64) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype).reshape(-1)


def breslow_baseline(risk, time, event, weight=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Estimate the cumulative baseline hazard by Breslow's estimator.

    :math:`H_0(t) = \sum_{t_g \le t} W_g / \sum_{j: T_j \ge t_g} w_j e^{r_j}`, the
    weighted events :math:`W_g` at each distinct event time :math:`t_g`, as
    scikit-survival's ``BreslowEstimator`` computes it (there without weights).

    Parameters
    ----------
    risk : array-like or Tensor (n,)
        Log-hazard ratios of the training rows.
    time : array-like or Tensor (n,)
        Event or censoring times.
    event : array-like or Tensor (n,)
        Event indicators (bool, or nonzero = event).
    weight : array-like or Tensor (n,), default=None
        Non-negative sample weights; None is all ones.

    Returns
    -------
    times : ndarray of float64 (m,)
        The distinct event times (of rows with positive weight), ascending.
    cum_baseline : ndarray of float64 (m,)
        :math:`H_0` at each of them. It is constant between event times, so it equals
        scikit-survival's, which also lists the censoring times, wherever both are
        defined.
    """
    r, t = _numpy(risk), _numpy(time)
    e = _numpy(event, bool)
    w = np.ones_like(r) if weight is None else _numpy(weight)
    if not (len(r) == len(t) == len(e) == len(w)):
        raise ValueError(
            f"risk, time, event and weight must have the same length. Got {len(r)}, "
            f"{len(t)}, {len(e)} and {len(w)} instead."
        )
    if len(r) == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(t, kind="mergesort")
    r, t, e, w = r[order], t[order], e[order], w[order]
    times, first = np.unique(t, return_index=True)
    with np.errstate(divide="ignore"):
        z = np.where(w > 0, r + np.log(w), -np.inf)
    log_risk_set = np.logaddexp.accumulate(z[::-1])[::-1][first]
    events = np.add.reduceat(np.where(e, w, 0.0), first)
    keep = events > 0
    increments = np.exp(np.log(events[keep]) - log_risk_set[keep])
    return times[keep], np.cumsum(increments)


def cumulative_hazard(risk, cum_baseline, times=None, at=None) -> np.ndarray:
    r"""Cumulative hazards :math:`H(t \mid x) = H_0(t) e^{r(x)}`.

    Parameters
    ----------
    risk : array-like or Tensor (n,)
        Log-hazard ratios.
    cum_baseline : array-like (m,)
        :math:`H_0` at ``times`` (from :func:`breslow_baseline`).
    times : array-like (m,), default=None
        The times of ``cum_baseline``, ascending; needed only with ``at``.
    at : array-like (k,), default=None
        Where to evaluate the step function :math:`H_0` (right-continuous, 0 before the
        first time, the last value after the last); None is at ``times``.

    Returns
    -------
    ndarray of float64 (n, m), or (n, k) with ``at``
        Row i is sample i's cumulative hazard.
    """
    base = _baseline_at(cum_baseline, times, at)
    r = _numpy(risk)
    with np.errstate(divide="ignore"):
        return np.exp(r[:, None] + np.log(base)[None, :])


def survival_function(risk, times, cum_baseline, at=None) -> np.ndarray:
    r"""Survival functions :math:`S(t \mid x) = \exp(-H_0(t) e^{r(x)})`.

    Parameters
    ----------
    risk : array-like or Tensor (n,)
        Log-hazard ratios.
    times : array-like (m,)
        The times of ``cum_baseline``, ascending (from :func:`breslow_baseline`).
    cum_baseline : array-like (m,)
        :math:`H_0` at ``times``.
    at : array-like (k,), default=None
        Where to evaluate (see :func:`cumulative_hazard`); None is at ``times``.

    Returns
    -------
    ndarray of float64 (n, m), or (n, k) with ``at``
        Row i is sample i's survival probability at each time.
    """
    return np.exp(-cumulative_hazard(risk, cum_baseline, times, at))


def _baseline_at(cum_baseline, times, at) -> np.ndarray:
    base = _numpy(cum_baseline)
    if at is None:
        return base
    if times is None:
        raise ValueError("times, those of cum_baseline, are needed to evaluate it at 'at'.")
    times = _numpy(times)
    if len(times) != len(base):
        raise ValueError(
            f"times and cum_baseline must have the same length. Got {len(times)} and "
            f"{len(base)} instead."
        )
    index = np.searchsorted(times, _numpy(at), side="right") - 1
    return np.where(index >= 0, base[np.clip(index, 0, None)] if len(base) else 0.0, 0.0)


def concordance_index(time, event, risk, tied_tol: float = 1e-8,
                      chunk_size: int = 1 << 22) -> float:
    """Compute Harrell's concordance index of risk scores (higher = earlier event).

    A pair is comparable when the earlier time has an event; with tied times, when one
    has an event and the other is censored (the censored one counts as later); two
    events at the same time are not comparable. A comparable pair is concordant when
    the earlier one has the higher risk; risks within ``tied_tol`` count one half. The
    same definition as scikit-survival's ``concordance_index_censored``.

    Parameters
    ----------
    time : array-like or Tensor (n,)
        Event or censoring times.
    event : array-like or Tensor (n,)
        Event indicators (bool, or nonzero = event).
    risk : array-like or Tensor (n,)
        Risk scores.
    tied_tol : float, default=1e-8
        Risks closer than this (absolute difference) are tied.
    chunk_size : int, default=4194304
        How many pairs are compared at once (O(n^2) comparisons, O(chunk_size)
        memory).

    Returns
    -------
    float
        The concordance index, in [0, 1].

    Raises
    ------
    ValueError
        Where no pair is comparable (no event, or every event at the last time), or a
        risk score is not finite.
    """
    t, r = _numpy(time), _numpy(risk)
    e = _numpy(event, bool)
    if not (len(t) == len(e) == len(r)):
        raise ValueError(
            f"time, event and risk must have the same length. Got {len(t)}, {len(e)} and "
            f"{len(r)} instead."
        )
    if not np.all(np.isfinite(r)):
        raise ValueError("The risk scores must be finite; some are NaN or infinite.")
    rows = np.flatnonzero(e)
    step = max(1, int(chunk_size) // max(len(t), 1))
    concordant, comparable_pairs = 0.0, 0
    for start in range(0, len(rows), step):
        i = rows[start:start + step]
        ti, ri = t[i, None], r[i, None]
        comparable = (t[None, :] > ti) | ((t[None, :] == ti) & ~e[None, :])
        tied = np.abs(r[None, :] - ri) <= tied_tol
        concordant += np.count_nonzero(comparable & (r[None, :] < ri) & ~tied)
        concordant += 0.5 * np.count_nonzero(comparable & tied)
        comparable_pairs += np.count_nonzero(comparable)
    if comparable_pairs == 0:
        raise ValueError(
            "No pair of samples is comparable (no event before another sample's time): "
            "the concordance index is undefined."
        )
    return float(concordant / comparable_pairs)


class SurvivalTask(Task):
    r"""Cox proportional hazards: one output, the log-hazard ratio (risk score).

    Targets are float32 tensors (B, 2): time, then event (1.0 or 0.0), as
    :meth:`encode_targets` makes them. The loss is
    :func:`cox_partial_likelihood` per weighted event over the rows taking part (rows
    outside ``mask`` take no part in the risk sets either); the full-input held-out
    loss is logged as ``cox_loss``. :meth:`combine` keeps the members' risk scores
    apart (the estimator averages them and mixes the members' curves). The contrastive
    stage is label-free (each sample its own class), as for regression.

    Parameters
    ----------
    ties : {"efron", "breslow"}, default="efron"
        Approximation for tied event times.
    event_fraction : float, default=None
        The weighted share of rows with an event, used by :meth:`linear_l2` when it is
        not given the targets; None treats every row as an event there.
    """

    name = "survival"
    full_loss_name = "cox_loss"
    target_dtype = torch.float32
    n_outputs = 1

    def __init__(self, ties: str = "efron", event_fraction: float | None = None) -> None:
        _check_ties(ties)
        if event_fraction is not None and not 0.0 < float(event_fraction) <= 1.0:
            raise ValueError(
                f"event_fraction must be in (0, 1]. Got {event_fraction!r} instead."
            )
        self.ties = ties
        self.event_fraction = event_fraction

    @staticmethod
    def encode_targets(time, event) -> torch.Tensor:
        """Encode targets as the losses take them.

        Parameters
        ----------
        time : array-like (n,)
            Event or censoring times.
        event : array-like (n,)
            Event indicators (bool, or nonzero = event).

        Returns
        -------
        Tensor of float32 (n, 2)
            Time, then event as 1.0 or 0.0.
        """
        return torch.stack([torch.as_tensor(_numpy(time), dtype=torch.float32),
                            torch.as_tensor(_numpy(event, bool), dtype=torch.float32)], 1)

    def loss(self, outputs, y, weight=None, mask=None):
        """Cox loss of the risk scores ``outputs[:, 0]`` over the rows in ``mask``.

        Parameters
        ----------
        outputs : Tensor (B, 1)
            Risk scores.
        y : Tensor (B, 2)
            Time and event.
        weight : Tensor (B,), default=None
            Sample weights; None is all ones.
        mask : Tensor (B,) of bool, default=None
            Rows taking part; None is all.

        Returns
        -------
        Tensor
            A scalar, 0 (in the graph) when no row taking part has an event.
        """
        if mask is not None:
            mask = mask.to(outputs.device)
            weight = mask.float() if weight is None else weight * mask.to(weight.dtype)
        return cox_partial_likelihood(outputs[..., 0], y[:, 0], y[:, 1], weight, self.ties)

    def configuration_losses(self, outputs, y, weight):
        """Cox losses of K configurations at once (one sort).

        Parameters
        ----------
        outputs : Tensor (K, B, 1)
            Risk scores per configuration.
        y : Tensor (B, 2)
            Time and event.
        weight : Tensor (K, B)
            Per-configuration weights; 0 where a row takes no part.

        Returns
        -------
        Tensor (K,)
            The losses.
        """
        return cox_partial_likelihood(outputs[..., 0], y[:, 0], y[:, 1], weight, self.ties)

    def linear_l2(self, C, weight, y=None):
        r"""The L2 coefficient of the per-event loss that matches the inverse penalty C.

        scikit-learn's convention (``LogisticRegression``: C times the summed loss plus
        half the squared norm) with the summed loss the negative log partial likelihood
        :math:`-\log PL(\beta)` is a ridge Cox model
        :math:`-\log PL(\beta) + \frac{1}{2C}\lVert\beta\rVert^2`, which is
        scikit-survival's ``CoxPHSurvivalAnalysis(alpha=1 / C)`` (its objective is that
        divided by the number of samples). The loss here is divided by the weighted
        number of events D, so the coefficient is :math:`1 / (2 C D)`: minimising
        ``loss + l2 * ||beta||^2`` then gives exactly ``alpha = 1 / C``'s coefficients
        (unit weights; the linear path's inputs standardised with the population
        standard deviation, as it does). D is read from ``y`` where given; otherwise it
        is ``event_fraction * sum(weight)``, or ``sum(weight)`` without
        ``event_fraction`` (which is then ``alpha = event share / C``).

        Parameters
        ----------
        C : float
            Inverse penalty.
        weight : Tensor (n,)
            Sample weights of the rows fitted.
        y : Tensor (n, 2), default=None
            Their targets, for the exact number of events.

        Returns
        -------
        float
            The coefficient.
        """
        weight = weight.double()
        if y is not None:
            events = float((weight * (y[:, 1] != 0).to(weight.dtype)).sum())
        elif self.event_fraction is not None:
            events = float(self.event_fraction) * float(weight.sum())
        else:
            events = float(weight.sum())
        return 1.0 / (2.0 * C * max(events, 1e-12))

    def combine(self, outputs):
        """The members' risk scores side by side: each member's curves come from its
        own baseline hazard (a Cox risk is defined up to a constant), so the estimator
        averages the columns for the risk score and mixes the members' curves.

        Parameters
        ----------
        outputs : list of Tensor (B, 1)
            Each member's risk scores.

        Returns
        -------
        Tensor of float64 (B, K)
            Column k is member k's risk score.
        """
        return torch.cat([o.double() for o in outputs], dim=1)
