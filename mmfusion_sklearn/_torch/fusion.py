"""Modality tokens, fusion heads, classifier and projection heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def single_modality_masks(present: torch.Tensor) -> torch.Tensor:
    """(M, B, M) masks: configuration m keeps modality m alone (where the sample has it).

    Parameters
    ----------
    present : Tensor (B, M) of bool
        Presence.

    Returns
    -------
    Tensor (M, B, M) of bool
    """
    eye = torch.eye(present.shape[1], dtype=torch.bool, device=present.device)
    return eye.unsqueeze(1) & present.unsqueeze(0)


class ModalityTokens(nn.Module):
    """One token per modality that stands in for its features wherever it is absent.

    Parameters
    ----------
    n_modalities : int
        Number of modalities M.
    embed_dim : int
        Token width (that of the encoders' outputs).
    learned : bool, default=True
        True: zero-initialised learnable tokens (the paper). False: fixed zeros, i.e.
        conventional zero-filling.
    """

    def __init__(self, n_modalities: int, embed_dim: int, learned: bool = True) -> None:
        super().__init__()
        self.learned = learned
        tokens = torch.zeros(n_modalities, embed_dim)
        if learned:
            self.tokens = nn.Parameter(tokens)
        else:
            self.register_buffer("tokens", tokens)

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Replace absent features: ``features`` (B, M, D), ``present`` (B, M) bool."""
        return torch.where(present.unsqueeze(-1), features, self.tokens.to(features.dtype))


class PerModalityLayerNorm(nn.Module):
    """LayerNorm over the feature axis with separate affine parameters per modality."""

    def __init__(self, n_modalities: int, embed_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_modalities, embed_dim))
        self.bias = nn.Parameter(torch.zeros(n_modalities, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) * self.weight + self.bias


class MLPFusion(nn.Module):
    """The paper's fusion head: per-modality LayerNorm, concatenation, one MLP block.

    Parameters
    ----------
    n_modalities : int
        Number of modalities M.
    embed_dim : int
        Width D of each modality's features and of the fused vector.
    dropout : float, default=0.1
        Dropout inside the MLP block.
    """

    def __init__(self, n_modalities: int, embed_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = PerModalityLayerNorm(n_modalities, embed_dim)
        width = n_modalities * embed_dim
        self.block = nn.Sequential(
            nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, embed_dim)
        )

    def combine(self, normed: torch.Tensor) -> torch.Tensor:
        """Fuse already normalised per-modality features (B, M, D) into (B, D)."""
        return self.block(torch.flatten(normed, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Fuse ``tokens`` (B, M, D) into (B, D)."""
        return self.combine(self.norm(tokens))


class TransformerFusion(nn.Module):
    """A small transformer over per-modality tokens plus a learnable summary token.

    Parameters
    ----------
    n_modalities : int
        Number of modalities M.
    embed_dim : int
        Token width D (must be divisible by ``n_heads``).
    n_layers : int, default=2
        Transformer encoder layers.
    n_heads : int, default=4
        Attention heads; reduced to a divisor of ``embed_dim`` if needed.
    dropout : float, default=0.1
        Dropout inside the layers.
    """

    def __init__(
        self,
        n_modalities: int,
        embed_dim: int,
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        while embed_dim % n_heads:
            n_heads -= 1
        self.norm = PerModalityLayerNorm(n_modalities, embed_dim)
        self.position = nn.Parameter(torch.zeros(1, n_modalities, embed_dim))
        self.summary = nn.Parameter(torch.zeros(1, 1, embed_dim))
        layer = nn.TransformerEncoderLayer(
            embed_dim, n_heads, dim_feedforward=2 * embed_dim, dropout=dropout,
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(embed_dim)

    def combine(self, normed: torch.Tensor) -> torch.Tensor:
        """Fuse already normalised per-modality features (B, M, D) into (B, D)."""
        x = normed + self.position
        x = torch.cat([self.summary.expand(len(x), -1, -1), x], dim=1)
        return self.out_norm(self.encoder(x)[:, 0])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Fuse ``tokens`` (B, M, D) into (B, D) (the summary token's output)."""
        return self.combine(self.norm(tokens))


class StandardisedLinear(nn.Module):
    """A linear map of standardised inputs: ``W ((x - mean) / scale) + b``.

    ``mean`` and ``scale`` are buffers set from training data (:meth:`standardise_from`),
    so that an L2 penalty on ``W`` treats every input feature alike whatever its units.

    Parameters
    ----------
    in_features : int
        Input width.
    out_features : int
        Output width.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.map = nn.Linear(in_features, out_features)
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("scale", torch.ones(in_features))

    @property
    def weight(self) -> torch.Tensor:
        return self.map.weight

    @torch.no_grad()
    def standardise_from(self, x: torch.Tensor) -> None:
        """Set ``mean`` and ``scale`` from the rows ``x`` (constant columns get scale 1)."""
        if len(x) == 0:
            return
        x = x.to(self.mean.dtype)
        self.mean.copy_(x.mean(dim=0))
        std = x.std(dim=0, unbiased=False) if len(x) > 1 else torch.ones_like(self.scale)
        self.scale.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.map((x - self.mean.to(x.dtype)) / self.scale.to(x.dtype))


class LinearLogits(nn.Module):
    """A linear path from modalities' inputs straight to the class logits.

    For each modality m with a path, ``W_m z_m + b_m`` where m is present (``z_m`` its
    flattened input, standardised) and a learned per-class constant ``a_m`` where it
    is absent (the path's modality token); all zero-initialised, so that the network
    starts as if there were no path.

    Parameters
    ----------
    names : list of str
        Every modality, in the network's order.
    widths : mapping of str to int
        The modalities with a path and the width of their flat input.
    n_classes : int
        Number of classes.
    """

    def __init__(self, names: list[str], widths: dict[str, int], n_classes: int) -> None:
        super().__init__()
        self.names = list(names)
        self.n_classes = n_classes
        self.index = [i for i, name in enumerate(names) if name in widths]
        self.maps = nn.ModuleList(StandardisedLinear(int(widths[names[i]]), n_classes)
                                  for i in self.index)
        self.absent = nn.Parameter(torch.zeros(len(self.index), n_classes))
        #: L2 penalty on the weights used in training (set by whoever fits the path).
        self.l2 = 0.0
        self.reset()

    def __len__(self) -> int:
        return len(self.index)

    def reset(self) -> None:
        """Zero every weight, bias and absent constant (the standardisation is kept)."""
        with torch.no_grad():
            self.absent.zero_()
            for layer in self.maps:
                layer.map.weight.zero_()
                layer.map.bias.zero_()

    def standardise_from(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> None:
        """Set every path's standardisation from the rows where its modality is present."""
        for i, layer in zip(self.index, self.maps):
            rows = present[:, i]
            layer.standardise_from(torch.flatten(inputs[self.names[i]][rows], 1))

    def squared_norm(self) -> torch.Tensor:
        """Sum of the squared weights of every map (biases and constants excluded)."""
        return sum((layer.weight ** 2).sum() for layer in self.maps)

    def forward(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Linear logits (B, P, C) of the P modalities with a path (rows of absent ones
        are computed but never used)."""
        return torch.stack(
            [layer(torch.flatten(inputs[self.names[i]], 1))
             for i, layer in zip(self.index, self.maps)], dim=1,
        )

    def combine(self, terms: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Sum over the paths of the term where kept, the absent constant elsewhere.

        ``terms`` (B, P, C); ``keep`` (..., B, M) boolean over all modalities.
        """
        kept = keep[..., self.index].unsqueeze(-1)
        return torch.where(kept, terms, self.absent.to(terms.dtype)).sum(dim=-2)


class ClassifierHead(nn.Module):
    """LayerNorm, Dropout, Linear: fused vector to class logits.

    The last layer starts at zero, so that an untrained network predicts a constant
    (or exactly its linear path) instead of a random function of its inputs: on small
    data, where early stopping keeps a network of a few optimiser steps, the noise of
    a random start would remain in its predictions.
    """

    def __init__(self, embed_dim: int, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(embed_dim), nn.Dropout(dropout), nn.Linear(embed_dim, n_classes)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ProjectionHead(nn.Module):
    """Linear, Linear, L2-normalise: the contrastive stage's embedding."""

    def __init__(self, embed_dim: int, projection_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, projection_dim)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(z), dim=-1)
