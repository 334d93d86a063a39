"""Fit the linear path of a network: ridge-penalised multi-configuration linear models
(logistic for classes, least squares for a continuous target: the task's loss).

The linear path (:class:`~mmfusion_sklearn._torch.fusion.LinearLogits`) gives each
tabular or embedding modality a linear score ``W_m x_m + b_m`` added to the class
logits, and a learned constant where the modality is absent. Fitting it alone, by
full-batch L-BFGS with an L2 penalty on ``W``, before the rest of the network trains,
starts every network from a well-regularised linear model: on small cohorts, where
a network overfits within a few optimiser steps, that is the model to beat, and
the network then only has to learn what is not linear.
"""

from __future__ import annotations

import torch

from .fusion import LinearLogits, single_modality_masks
from .tasks import ClassificationTask, Task


def linear_objective(
    linear: LinearLogits,
    terms: torch.Tensor,
    present: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    configurations: bool,
    unimodal_weight: float = 1.0,
    task: Task | None = None,
) -> torch.Tensor:
    """The task loss of the linear path alone (no L2 term).

    The same objective as the network's task stage (see
    :func:`~mmfusion_sklearn._torch.losses.simultaneous_dropout_loss`), computed for
    every configuration in one batched loss since L-BFGS calls it often.

    Parameters
    ----------
    linear : LinearLogits
        The path.
    terms : Tensor (B, P, C)
        ``linear(inputs, present)``, precomputed.
    present : Tensor (B, M) of bool
        Presence (or, for conventional modality dropout, the kept modalities).
    y : Tensor (B,)
        Encoded targets (class indices, or standardised values).
    weight : Tensor (B,)
        Sample weights.
    configurations : bool
        True: the SMD objective (full input plus every single modality); False: the
        full input only.
    unimodal_weight : float, default=1.0
        Weight of the single-modality terms.
    task : Task, default=None
        The task's loss; None is classification with ``linear.n_classes`` classes.

    Returns
    -------
    Tensor
        A scalar.
    """
    masks = present.unsqueeze(0)
    takes_part = torch.ones_like(present[:, :1]).T  # (1, B): every sample, full input
    if configurations:
        masks = torch.cat([masks, single_modality_masks(present)])
        takes_part = torch.cat([takes_part, present.T])
    if task is None:
        task = ClassificationTask(linear.n_classes)
    outputs = linear.combine(terms, masks)  # (K, B, C)
    w = weight.float().unsqueeze(0) * takes_part.float()
    per_configuration = task.configuration_losses(outputs, y, w)
    factors = torch.full_like(per_configuration, float(unimodal_weight))
    factors[0] = 1.0
    return (per_configuration * factors).sum()


def fit_linear_path(
    linear: LinearLogits,
    inputs: dict[str, torch.Tensor],
    present: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    l2: float,
    configurations: bool,
    unimodal_weight: float = 1.0,
    max_iter: int = 100,
    warm_start: bool = False,
    task: Task | None = None,
) -> float:
    """Fit ``linear`` in place: minimise its task loss + ``l2 * ||W||^2``.

    Parameters
    ----------
    linear : LinearLogits
        The path; its parameters are overwritten.
    inputs : dict of str to Tensor
        The (preprocessed) inputs of the training rows, at least those of the modalities
        with a path.
    present : Tensor (n, M) of bool
        Presence.
    y, weight : Tensor (n,)
        Encoded targets and sample weights.
    l2 : float
        Penalty on the squared weights (not on the biases and absent constants).
    configurations : bool
        See :func:`linear_objective`.
    unimodal_weight : float, default=1.0
        Weight of the single-modality terms.
    max_iter : int, default=100
        L-BFGS iterations.
    warm_start : bool, default=False
        Start from the current parameters (e.g. the fit of a stronger penalty) instead
        of zeros.
    task : Task, default=None
        The task's loss (see :func:`linear_objective`).

    Returns
    -------
    float
        The final penalised loss.
    """
    if not warm_start:
        linear.standardise_from(inputs, present)
        linear.reset()
    parameters = [p for p in linear.parameters() if p.requires_grad]
    optimizer = torch.optim.LBFGS(parameters, max_iter=max_iter, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-5, tolerance_change=1e-7)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        terms = linear(inputs, present)
        loss = linear_objective(linear, terms, present, y, weight, configurations,
                                unimodal_weight, task) + l2 * linear.squared_norm()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        terms = linear(inputs, present)
        loss = linear_objective(linear, terms, present, y, weight, configurations,
                                unimodal_weight, task) + l2 * linear.squared_norm()
    return float(loss)


@torch.no_grad()
def linear_loss(
    linear: LinearLogits,
    inputs: dict[str, torch.Tensor],
    present: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    configurations: bool,
    unimodal_weight: float = 1.0,
    task: Task | None = None,
) -> float:
    """The unpenalised task loss of ``linear`` on some rows (e.g. held-out ones)."""
    terms = linear(inputs, present)
    return float(linear_objective(linear, terms, present, y, weight, configurations,
                                  unimodal_weight, task))
