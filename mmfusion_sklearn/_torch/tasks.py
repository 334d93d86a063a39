"""What differs between tasks in the torch core: the head's width, the loss, how the
members' outputs are averaged, and the contrastive stage's positives.

The engine (the network, the SMD objective, the linear path, the training loop and
streamed prediction) takes one of these objects and never asks which task it runs. A
new task is one more class here (and one short estimator module above).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .losses import simultaneous_dropout_loss, weighted_cross_entropy, weighted_mean


class Task:
    """The interface the engine calls; see :class:`ClassificationTask` for an example.

    Attributes
    ----------
    name : str
        The task stage's name in the history (``stage``) and the progress bar.
    n_outputs : int
        Width of the network's head (and of the linear path's output).
    full_loss_name : str
        Name of the full-input held-out loss in the history
        (``pooled_valid_<full_loss_name>``).
    target_dtype : torch.dtype
        dtype of the encoded targets the losses take.
    """

    name: str = "task"
    n_outputs: int = 1
    full_loss_name: str = "loss"
    target_dtype: torch.dtype = torch.float32

    def loss(self, outputs: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted task loss of ``outputs`` (B, n_outputs) over the rows in ``mask``
        (0 when no row takes part)."""
        raise NotImplementedError

    def smd_loss(self, full: torch.Tensor, single: torch.Tensor, y: torch.Tensor,
                 present: torch.Tensor, weight: torch.Tensor | None,
                 unimodal_weight: float) -> torch.Tensor:
        """Simultaneous modality dropout: loss(full) + unimodal_weight * sum over m of
        loss(only m), a sample lacking m taking no part in the "only m" term."""
        loss = self.loss(full, y, weight)
        for m in range(single.shape[0]):
            loss = loss + unimodal_weight * self.loss(single[m], y, weight, present[:, m])
        return loss

    def configuration_losses(self, outputs: torch.Tensor, y: torch.Tensor,
                             weight: torch.Tensor) -> torch.Tensor:
        """Per-configuration weighted losses (K,) of outputs (K, B, n_outputs), with
        per-configuration weights (K, B) (the linear path's batched objective)."""
        return torch.stack([self.loss(outputs[k], y, weight[k]) for k in range(len(outputs))])

    def linear_l2(self, C: float, weight: torch.Tensor, y: torch.Tensor | None = None) -> float:
        """The L2 coefficient of the mean loss that matches the inverse penalty ``C``
        (``y``, the fitted rows' targets, for a loss whose scale depends on them)."""
        raise NotImplementedError

    def combine(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """The members' outputs (each (B, n_outputs)) averaged, float64."""
        raise NotImplementedError

    def contrastive_labels(self, y: torch.Tensor) -> torch.Tensor:
        """Labels whose equal pairs are the contrastive stage's positives. Without
        classes, each sample is its own class: the positives are the same sample's
        unimodal and fused views (label-free)."""
        return torch.arange(len(y), device=y.device)


class ClassificationTask(Task):
    """Cross-entropy over ``n_classes`` logits; members' probabilities are averaged.

    Parameters
    ----------
    n_classes : int
        Number of classes.
    """

    name = "classification"
    full_loss_name = "log_loss"
    target_dtype = torch.int64

    def __init__(self, n_classes: int) -> None:
        self.n_outputs = int(n_classes)

    def loss(self, outputs, y, weight=None, mask=None):
        return weighted_cross_entropy(outputs, y, weight, mask)

    def smd_loss(self, full, single, y, present, weight, unimodal_weight):
        return simultaneous_dropout_loss(full, single, y, present, weight, unimodal_weight)

    def configuration_losses(self, outputs, y, weight):
        k, batch, n_classes = outputs.shape
        losses = F.cross_entropy(outputs.reshape(-1, n_classes).float(), y.repeat(k),
                                 reduction="none").reshape(k, batch)
        w = weight.to(losses.dtype)
        return (losses * w).sum(dim=1) / w.sum(dim=1).clamp_min(1e-12)

    def linear_l2(self, C, weight, y=None):
        # scikit-learn minimises C * sum_i w_i loss_i + ||w||^2 / 2 with one weight vector
        # for two classes (K for more); the path has one row per class, and for two
        # classes its optimum has w_1 = -w_0, so the penalty is doubled to match
        factor = 2.0 if self.n_outputs == 2 else 1.0
        return factor / (2.0 * C * float(weight.sum()))

    def combine(self, outputs):
        """Log of the members' mean class probabilities, (B, n_classes)."""
        logs = torch.stack([torch.log_softmax(o.double(), dim=1) for o in outputs])
        return torch.logsumexp(logs, dim=0) - math.log(len(outputs))

    def contrastive_labels(self, y):
        return y


class RegressionTask(Task):
    """Squared error on a standardised target; members' predictions are averaged.

    The estimator standardises the target, so that the loss, the linear path's penalty
    grid, the learning rate and early stopping mean the same in any unit.
    """

    name = "regression"
    full_loss_name = "squared_error"
    target_dtype = torch.float32
    n_outputs = 1

    def loss(self, outputs, y, weight=None, mask=None):
        errors = (outputs.float()[:, 0] - y.float()) ** 2
        return weighted_mean(errors, weight, mask)

    def configuration_losses(self, outputs, y, weight):
        errors = (outputs.float()[..., 0] - y.float().unsqueeze(0)) ** 2
        w = weight.to(errors.dtype)
        return (errors * w).sum(dim=1) / w.sum(dim=1).clamp_min(1e-12)

    def linear_l2(self, C, weight, y=None):
        # ridge: sum_i w_i (y_i - f_i)^2 + alpha ||w||^2 with alpha = 1 / C, divided by
        # sum_i w_i to match the mean loss
        return 1.0 / (C * float(weight.sum()))

    def combine(self, outputs):
        """The members' mean prediction (standardised units), (B, 1)."""
        return torch.stack([o.double() for o in outputs]).mean(dim=0)
