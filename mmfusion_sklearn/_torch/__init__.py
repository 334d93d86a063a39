"""The PyTorch core: encoders, modality tokens and fusion heads, losses, the network.

Nothing here imports scikit-learn; each part can be built and tested alone.
"""

from .encoders import (
    EmbeddingEncoder,
    ImageEncoder,
    ModuleEncoder,
    TabularEncoder,
    VolumeEncoder,
    build_encoder,
)
from .fusion import ClassifierHead, MLPFusion, ModalityTokens, ProjectionHead, TransformerFusion
from .losses import (
    SigmoidContrastiveLoss,
    contrastive_pairs,
    make_contrastive_loss,
    random_modality_mask,
    simultaneous_dropout_loss,
    weighted_cross_entropy,
)
from .model import MultimodalFusionNet

__all__ = [
    "ClassifierHead",
    "EmbeddingEncoder",
    "ImageEncoder",
    "MLPFusion",
    "ModalityTokens",
    "ModuleEncoder",
    "MultimodalFusionNet",
    "ProjectionHead",
    "SigmoidContrastiveLoss",
    "TabularEncoder",
    "TransformerFusion",
    "VolumeEncoder",
    "build_encoder",
    "contrastive_pairs",
    "make_contrastive_loss",
    "random_modality_mask",
    "simultaneous_dropout_loss",
    "weighted_cross_entropy",
]
