"""Modality tokens, fusion heads, classifier and projection heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


class ClassifierHead(nn.Module):
    """LayerNorm, Dropout, Linear: fused vector to class logits."""

    def __init__(self, embed_dim: int, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(embed_dim), nn.Dropout(dropout), nn.Linear(embed_dim, n_classes)
        )

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
