"""The fusion network: encoders, modality tokens, fusion, classifier and projection heads."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .fusion import (
    ClassifierHead,
    LinearLogits,
    MLPFusion,
    ModalityTokens,
    ProjectionHead,
    TransformerFusion,
    single_modality_masks,
)


class ModalityEncoders(nn.ModuleList):
    """The encoders in modality order, also indexed by modality name.

    A list, not a ``ModuleDict``: modality names are the user's strings, and names such
    as ``"keys"``, ``"training"`` or ``"a.b"`` cannot be module attributes. The weights
    are stored under the modality's position (``encoders.0.``, ``encoders.1.``, ...).

    Parameters
    ----------
    encoders : mapping of str to nn.Module
        One encoder per modality, in order.
    """

    def __init__(self, encoders: Mapping[str, nn.Module]) -> None:
        super().__init__(list(encoders.values()))
        self.names = list(encoders)

    def __getitem__(self, key):
        if isinstance(key, str):
            key = self.names.index(key)
        return super().__getitem__(key)


class MultimodalFusionNet(nn.Module):
    """Encode each modality, fill absent ones with tokens, fuse, and map to the task's
    outputs (class logits, a standardised prediction or a risk score).

    Parameters
    ----------
    encoders : mapping of str to nn.Module
        One encoder per modality, in order, each mapping its batch to (B, embed_dim).
    n_outputs : int
        Width of the head: the number of classes, or 1 for a continuous target (and for
        a risk score).
    embed_dim : int, default=128
        Width of encoder outputs, tokens and the fused vector.
    fusion : {"mlp", "transformer"}, default="mlp"
        Fusion head.
    missing_token : {"learned", "zero"}, default="learned"
        Learnable zero-initialised tokens, or fixed zeros.
    dropout : float, default=0.1
        Dropout in the fusion and classifier heads.
    projection_dim : int, default=128
        Output width of the projection head (contrastive stage).
    linear_widths : mapping of str to int, default=None
        Modalities that also get a linear path straight to the class logits, with the
        width of their (flat) input: their logits add ``W_m x_m`` where m is present and
        a learned per-class constant where it is absent. None: no linear path.

    Notes
    -----
    ``inputs`` are dicts ``{name: Tensor}`` with one row per sample (rows of absent
    samples are ignored) and ``present`` a (B, M) boolean tensor in the encoders' order.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        n_outputs: int,
        embed_dim: int = 128,
        fusion: str = "mlp",
        missing_token: str = "learned",
        dropout: float = 0.1,
        projection_dim: int = 128,
        linear_widths: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.modality_names = list(encoders)
        self.embed_dim = embed_dim
        self.encoders = ModalityEncoders(encoders)
        n_modalities = len(self.modality_names)
        self.tokens = ModalityTokens(n_modalities, embed_dim, learned=missing_token == "learned")
        if fusion == "mlp":
            self.fusion = MLPFusion(n_modalities, embed_dim, dropout)
        elif fusion == "transformer":
            self.fusion = TransformerFusion(n_modalities, embed_dim, dropout=dropout)
        else:
            raise ValueError(f"fusion must be 'mlp' or 'transformer'. Got {fusion!r} instead.")
        self.classifier = ClassifierHead(embed_dim, n_outputs, dropout)
        self.projection = ProjectionHead(embed_dim, projection_dim)
        self.linear = LinearLogits(self.modality_names, linear_widths or {}, n_outputs)

    def encode(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Run each encoder once, on the samples that have its modality: (B, M, D)."""
        batch = present.shape[0]
        columns = []
        for m, name in enumerate(self.modality_names):
            rows = present[:, m]
            x = inputs[name]
            if bool(rows.all()):
                columns.append(self.encoders[m](x))
                continue
            h = x.new_zeros((batch, self.embed_dim))
            index = rows.nonzero(as_tuple=True)[0]
            if len(index):
                encoded = self.encoders[m](x.index_select(0, index))
                h = h.to(encoded.dtype).index_copy(0, index, encoded)
            columns.append(h)
        return torch.stack(columns, dim=1)

    def fuse(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Fused vector (B, D) from features (B, M, D), tokens where ``present`` is False.

        Learned tokens stand in for absent features before the per-modality LayerNorm.
        With ``missing_token="zero"`` the normalised features of absent modalities are
        zeros (plain zero-filling: a zero before the LayerNorm would become its learned
        bias, a learned token in disguise).
        """
        if self.tokens.learned:
            normed = self.fusion.norm(self.tokens(features, present))
        else:
            normed = self.fusion.norm(features) * present.unsqueeze(-1).to(features.dtype)
        return self.fusion.combine(normed)

    def single_modality_masks(self, present: torch.Tensor) -> torch.Tensor:
        """(M, B, M) masks: configuration m keeps modality m alone."""
        return single_modality_masks(present)

    def fuse_configurations(
        self, features: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse the full input and each single-modality configuration in one pass.

        Returns
        -------
        fused_full : Tensor (B, D)
        fused_single : Tensor (M, B, D)
        """
        batch, n_modalities, _ = features.shape
        masks = torch.cat([present.unsqueeze(0), self.single_modality_masks(present)])
        stacked = features.unsqueeze(0).expand(n_modalities + 1, -1, -1, -1)
        fused = self.fuse(
            stacked.reshape(-1, n_modalities, features.shape[-1]),
            masks.reshape(-1, n_modalities),
        ).reshape(n_modalities + 1, batch, -1)
        return fused[0], fused[1:]

    def classify(
        self, fused: torch.Tensor, present: torch.Tensor, linear: torch.Tensor | None
    ) -> torch.Tensor:
        """Class logits from fused vectors (..., B, D), plus the linear path if any.

        ``present`` (..., B, M) says which modalities each configuration keeps;
        ``linear`` is the output of :meth:`linear_terms`.
        """
        logits = self.classifier(fused)
        if linear is not None:
            logits = logits + self.linear.combine(linear, present)
        return logits

    def linear_terms(
        self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor
    ) -> torch.Tensor | None:
        """Per-modality linear logits (B, M, C), or None without a linear path."""
        return self.linear(inputs, present) if len(self.linear) else None

    def configuration_logits(
        self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the full input (B, C) and of each single modality (M, B, C)."""
        features = self.encode(inputs, present)
        linear = self.linear_terms(inputs, present)
        full, single = self.fuse_configurations(features, present)
        masks = self.single_modality_masks(present)
        return self.classify(full, present, linear), self.classify(single, masks, linear)

    def logits(
        self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Class logits (B, C) with the modalities in ``keep`` (default ``present``)."""
        keep = present if keep is None else keep
        features = self.encode(inputs, present)
        return self.classify(self.fuse(features, keep), keep,
                             self.linear_terms(inputs, present))

    def projected_views(
        self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The contrastive stage's views: projections of each single-modality
        configuration and of the full input, (M+1, B, P), and which samples have each
        view, (M+1, B) of bool (the full input: every sample)."""
        full, single = self.fuse_configurations(self.encode(inputs, present), present)
        views = self.projection(torch.cat([single, full.unsqueeze(0)]))
        view_present = torch.cat([present.T, torch.ones_like(present[:, :1]).T])
        return views, view_present

    def forward(
        self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor
    ) -> torch.Tensor:
        """Class logits (B, C) with the modalities marked in ``present``."""
        return self.logits(inputs, present)
