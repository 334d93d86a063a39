"""Multimodal fusion classification with missing modalities, as a scikit-learn estimator.

The method is that of Gu, Saito and Ma, "Learning Contrastive Multimodal Fusion with
Improved Modality Dropout for Disease Detection and Prediction" (MICCAI 2025):
learnable modality tokens, simultaneous modality dropout and supervised sigmoid
contrastive learning with fused representations, generalised to any number of
modalities.
"""

from ._compose import ModalityTransformer
from ._data import Modality, MultimodalData
from ._estimators._base import MultimodalFusionClassifier
from ._training.cache import clear_feature_cache

__version__ = "0.1.0"

__all__ = [
    "Modality",
    "ModalityTransformer",
    "MultimodalData",
    "MultimodalFusionClassifier",
    "__version__",
    "clear_feature_cache",
    "load",
]


def load(path, device="cpu"):
    """Load a model saved with :meth:`MultimodalFusionClassifier.save`.

    Parameters
    ----------
    path : str or path-like
        The folder written by ``save``.
    device : str or torch.device, default="cpu"
        Where to put the model.

    Returns
    -------
    MultimodalFusionClassifier
        The fitted estimator.
    """
    return MultimodalFusionClassifier.load(path, device=device)
