"""Per-modality encoders: each maps a batch of one modality to (B, embed_dim)."""

from __future__ import annotations

import torch
from torch import nn


class TabularEncoder(nn.Module):
    """MLP over preprocessed table features.

    Parameters
    ----------
    in_features : int
        Width of the preprocessed table (numeric, indicator and one-hot columns).
    embed_dim : int
        Output width.
    hidden_dim : int, default=None
        Hidden width; None uses ``2 * embed_dim``.
    dropout : float, default=0.1
        Dropout after the hidden layer.
    """

    def __init__(
        self, in_features: int, embed_dim: int, hidden_dim: int | None = None, dropout: float = 0.1
    ) -> None:
        super().__init__()
        hidden_dim = hidden_dim or 2 * embed_dim
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, embed_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EmbeddingEncoder(nn.Module):
    """LayerNorm then a linear map of precomputed (e.g. foundation-model) features.

    Parameters
    ----------
    in_features : int
        Width of the precomputed vectors (e.g. 1408 for CT Foundation).
    embed_dim : int
        Output width.
    """

    def __init__(self, in_features: int, embed_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.proj = nn.Linear(in_features, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(x))


def _conv_block(conv: type[nn.Module], pool: type[nn.Module], cin: int, cout: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: encoders see only the present samples of a batch,
    # which may be very few.
    return nn.Sequential(
        conv(cin, cout, kernel_size=3, padding=1),
        nn.GroupNorm(min(8, cout), cout),
        nn.ReLU(),
        pool(2, ceil_mode=True),
    )


class _ConvEncoder(nn.Module):
    conv: type[nn.Module]
    pool: type[nn.Module]
    global_pool: type[nn.Module]

    def __init__(
        self, in_channels: int, embed_dim: int, widths: tuple[int, ...] = (16, 32, 64)
    ) -> None:
        super().__init__()
        layers = []
        cin = in_channels
        for width in widths:
            layers.append(_conv_block(self.conv, self.pool, cin, width))
            cin = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(self.global_pool(1), nn.Flatten(), nn.Linear(cin, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ImageEncoder(_ConvEncoder):
    """Small 2-D CNN: three conv-GroupNorm-ReLU-pool blocks, global average pool, linear.

    Parameters
    ----------
    in_channels : int
        Image channels.
    embed_dim : int
        Output width.
    widths : tuple of int, default=(16, 32, 64)
        Channels of the conv blocks.
    """

    conv = nn.Conv2d
    pool = nn.MaxPool2d
    global_pool = nn.AdaptiveAvgPool2d


class VolumeEncoder(_ConvEncoder):
    """Small 3-D CNN for volumes ``(B, C, D, H, W)``; same layout as :class:`ImageEncoder`.

    Parameters
    ----------
    in_channels : int
        Volume channels.
    embed_dim : int
        Output width.
    widths : tuple of int, default=(16, 32, 64)
        Channels of the conv blocks.
    """

    conv = nn.Conv3d
    pool = nn.MaxPool3d
    global_pool = nn.AdaptiveAvgPool3d


class ModuleEncoder(nn.Module):
    """Wrap a user's module (e.g. a pretrained backbone) and map its output to embed_dim.

    Parameters
    ----------
    backbone : nn.Module
        Maps a batch of the modality to features; outputs with more than two
        dimensions are flattened.
    out_features : int
        Width of the flattened backbone output.
    embed_dim : int
        Output width.
    """

    def __init__(self, backbone: nn.Module, out_features: int, embed_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.proj = nn.Linear(out_features, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.flatten(self.backbone(x), 1))


@torch.no_grad()
def module_output_width(module: nn.Module, sample_shape: tuple[int, ...]) -> int:
    """Width of ``module``'s flattened output for one input of ``sample_shape``."""
    was_training = module.training
    module.eval()
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    out = module(torch.zeros((2, *sample_shape), device=device))
    module.train(was_training)
    return int(torch.flatten(out, 1).shape[1])


@torch.no_grad()
def compute_features(
    module: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device | str
) -> torch.Tensor:
    """Run a frozen ``module`` once over ``x`` in batches; return flattened CPU features."""
    module = module.to(device).eval()
    out = [
        torch.flatten(module(x[i : i + batch_size].to(device)), 1).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros((0, 0))


def build_encoder(kind: str, in_shape: int | tuple[int, ...], embed_dim: int) -> nn.Module:
    """Build the default encoder of a modality ``kind``.

    Parameters
    ----------
    kind : {"tabular", "embedding", "image", "volume"}
        The modality kind.
    in_shape : int or tuple of int
        Feature width (tabular, embedding) or sample shape ``(C, *spatial)``.
    embed_dim : int
        Output width.
    """
    if kind == "tabular":
        return TabularEncoder(int(in_shape), embed_dim)
    if kind == "embedding":
        return EmbeddingEncoder(int(in_shape), embed_dim)
    if kind == "image":
        return ImageEncoder(int(in_shape[0]), embed_dim)
    if kind == "volume":
        return VolumeEncoder(int(in_shape[0]), embed_dim)
    raise ValueError(f"Unknown modality kind {kind!r}.")
