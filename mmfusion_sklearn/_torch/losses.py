"""Losses: weighted cross-entropy and means, simultaneous modality dropout, sigmoid
contrastive."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def weighted_cross_entropy(
    logits: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy averaged with per-sample weights over the samples in ``mask``.

    Parameters
    ----------
    logits : Tensor (B, C)
        Class logits.
    y : Tensor (B,)
        Integer class indices.
    weight : Tensor (B,), default=None
        Per-sample weights (sample_weight times class_weight); None is all ones.
    mask : Tensor (B,) of bool, default=None
        Samples taking part; None is all. With no sample taking part the loss is 0.
    """
    return weighted_mean(F.cross_entropy(logits.float(), y, reduction="none"), weight, mask)


def weighted_mean(
    losses: torch.Tensor,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample ``losses`` (B,) averaged with ``weight`` over the samples in ``mask``.

    Parameters
    ----------
    losses : Tensor (B,)
        Per-sample losses.
    weight : Tensor (B,), default=None
        Per-sample weights; None is all ones.
    mask : Tensor (B,) of bool, default=None
        Samples taking part; None is all. With no sample taking part the result is 0.
    """
    w = torch.ones_like(losses) if weight is None else weight.to(losses.dtype)
    if mask is not None:
        w = w * mask.to(losses.dtype)
    total = w.sum()
    return (losses * w).sum() / total.clamp_min(1e-12)


def simultaneous_dropout_loss(
    logits_full: torch.Tensor,
    logits_single: torch.Tensor,
    y: torch.Tensor,
    present: torch.Tensor,
    weight: torch.Tensor | None = None,
    unimodal_weight: float = 1.0,
) -> torch.Tensor:
    """The SMD objective: CE(full) + unimodal_weight * sum over m of CE(only m).

    Parameters
    ----------
    logits_full : Tensor (B, C)
        Logits with every available modality.
    logits_single : Tensor (M, B, C)
        Logits with modality m alone (all others replaced by their tokens).
    y : Tensor (B,)
        Integer class indices.
    present : Tensor (B, M) of bool
        Which samples have which modality; a sample lacking m takes no part in the
        "only m" term.
    weight : Tensor (B,), default=None
        Per-sample weights.
    unimodal_weight : float, default=1.0
        lambda, the weight of the single-modality terms.
    """
    loss = weighted_cross_entropy(logits_full, y, weight)
    for m in range(logits_single.shape[0]):
        loss = loss + unimodal_weight * weighted_cross_entropy(
            logits_single[m], y, weight, present[:, m]
        )
    return loss


def random_modality_mask(
    present: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Conventional modality dropout: drop each present modality with probability rate.

    At least one present modality of every sample is kept (a random one when all
    would be dropped).

    Parameters
    ----------
    present : Tensor (B, M) of bool
        Available modalities.
    rate : float
        Drop probability.
    generator : torch.Generator, default=None
        Random source (on the device of ``present``).
    """
    draws = torch.rand(present.shape, generator=generator, device=present.device)
    keep = present & (draws >= rate)
    empty = ~keep.any(dim=1)
    if empty.any():
        # pick one present modality per emptied sample, uniformly
        scores = torch.rand(present.shape, generator=generator, device=present.device)
        scores = scores.masked_fill(~present, -1.0)
        choice = F.one_hot(scores.argmax(dim=1), present.shape[1]).bool()
        keep = torch.where(empty.unsqueeze(1), choice & present, keep)
    return keep


def contrastive_pairs(n_modalities: int, mode: str) -> list[tuple[int, int]]:
    """View pairs of the contrastive stage; view M is the fused embedding.

    ``"fused"``: every two unimodal views and each unimodal view with the fused one;
    ``"unimodal"``: the unimodal pairs only.
    """
    pairs = [(a, b) for a in range(n_modalities) for b in range(a + 1, n_modalities)]
    if mode == "fused":
        pairs += [(m, n_modalities) for m in range(n_modalities)]
    return pairs


class SigmoidContrastiveLoss(nn.Module):
    """Supervised sigmoid (SigLIP-style) contrastive loss with learnable scale and bias.

    For views a and b, ``logit_ij = scale * <u_a_i, u_b_j> + bias``; same-class pairs
    (i, j) are positives (+1), others negatives (-1), and each pair costs
    ``-log sigmoid(label * logit)``. Only pairs where sample i has view a and sample j
    has view b count. The loss of a view pair is the mean over its pairs or, with
    ``balanced=True``, the mean of the positives' mean and the negatives' mean; the
    loss is averaged over view pairs.

    Parameters
    ----------
    init_scale : float, default=10.0
        Initial scale (kept positive through a log parameterisation).
    init_bias : float, default=-10.0
        Initial bias. SigLIP's -10 assumes that positives are rare (one per row); with
        same-class positives they are about half of all pairs with two classes, every
        positive then starts with a loss above ln 2, and the quickest way down is to
        pull every projection together (collapse). The log-odds of the positive share
        (0 with ``balanced=True``) starts the loss at its uninformative level instead.
    balanced : bool, default=False
        Weigh positives and negatives equally whatever their shares, so that a loss of
        ln 2 means "no class structure learned" for any number and balance of classes.

    Attributes
    ----------
    pair_stats : Tensor of shape (4,)
        Since the last :meth:`reset_pair_stats`: sum and count of the cosine of
        same-class pairs of different samples, then of different-class pairs.

    See Also
    --------
    make_contrastive_loss : The package's two settings, "balanced" and "paper".
    """

    def __init__(
        self, init_scale: float = 10.0, init_bias: float = -10.0, balanced: bool = False
    ) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.bias = nn.Parameter(torch.tensor(float(init_bias)))
        self.balanced = balanced
        self.register_buffer("pair_stats", torch.zeros(4, dtype=torch.float64),
                             persistent=False)

    def reset_pair_stats(self) -> None:
        """Zero :attr:`pair_stats`."""
        self.pair_stats.zero_()

    def pair_cosines(self) -> tuple[float, float]:
        """Mean cosine of same-class and of different-class pairs since the last reset.

        Returns
        -------
        tuple of float
            NaN where no such pair was seen.
        """
        sums = self.pair_stats.tolist()
        same = sums[0] / sums[1] if sums[1] else math.nan
        other = sums[2] / sums[3] if sums[3] else math.nan
        return same, other

    def forward(
        self,
        views: torch.Tensor,
        view_present: torch.Tensor,
        y: torch.Tensor,
        pairs: list[tuple[int, int]],
    ) -> torch.Tensor:
        """Loss for ``views`` (V, B, P) L2-normalised, ``view_present`` (V, B) bool."""
        same_class = y.unsqueeze(0) == y.unsqueeze(1)
        sign = same_class.to(views.dtype) * 2.0 - 1.0
        other_sample = ~torch.eye(len(y), dtype=torch.bool, device=y.device)
        scale = self.log_scale.exp()
        total = views.new_zeros(())
        n_terms = 0
        for a, b in pairs:
            valid = view_present[a].unsqueeze(1) & view_present[b].unsqueeze(0)
            if not valid.any():
                continue
            cosine = (views[a] @ views[b].T).float()
            losses = -F.logsigmoid(sign * (scale * cosine + self.bias))
            total = total + self._pair_loss(losses, valid, same_class)
            n_terms += 1
            with torch.no_grad():
                self._count(cosine, valid & other_sample, same_class)
        if n_terms == 0:
            # no valid pair in this batch: a zero that is still part of the graph
            # (zero gradients), so that backward() works instead of raising
            return 0.0 * (views.sum() + self.log_scale + self.bias)
        return total / n_terms

    def _pair_loss(
        self, losses: torch.Tensor, valid: torch.Tensor, same_class: torch.Tensor
    ) -> torch.Tensor:
        if not self.balanced:
            return losses[valid].mean()
        means = [losses[mask].mean() for mask in (valid & same_class, valid & ~same_class)
                 if mask.any()]
        return sum(means) / len(means)

    def _count(self, cosine: torch.Tensor, mask: torch.Tensor, same_class: torch.Tensor) -> None:
        same, other = mask & same_class, mask & ~same_class
        self.pair_stats += torch.stack([
            cosine[same].sum(), same.sum(), cosine[other].sum(), other.sum()
        ]).to(self.pair_stats)


#: The settings of :func:`make_contrastive_loss`: (init_scale, init_bias, balanced).
CONTRASTIVE_LOSSES = {
    "balanced": (10.0, 0.0, True),
    "paper": (10.0, -10.0, False),
}


def make_contrastive_loss(kind: str = "balanced") -> SigmoidContrastiveLoss:
    """The supervised sigmoid loss in one of the package's settings.

    Parameters
    ----------
    kind : {"balanced", "paper"}, default="balanced"
        "balanced": positives and negatives weighted equally, bias initialised to 0
        (the log-odds of a balanced positive share), scale 10. "paper": SigLIP's
        initialisation as in Gu, Saito and Ma (scale 10, bias -10), pairs unweighted.

    Returns
    -------
    SigmoidContrastiveLoss
    """
    if kind not in CONTRASTIVE_LOSSES:
        raise ValueError(
            f"kind must be one of {sorted(CONTRASTIVE_LOSSES)}. Got {kind!r} instead."
        )
    scale, bias, balanced = CONTRASTIVE_LOSSES[kind]
    return SigmoidContrastiveLoss(init_scale=scale, init_bias=bias, balanced=balanced)
