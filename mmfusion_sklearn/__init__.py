"""Multimodal fusion with missing modalities, as scikit-learn estimators: a classifier
and a regressor on one engine.

The method is that of Gu, Saito and Ma, "Learning Contrastive Multimodal Fusion with
Improved Modality Dropout for Disease Detection and Prediction" (MICCAI 2025):
learnable modality tokens, simultaneous modality dropout and supervised sigmoid
contrastive learning with fused representations, generalised to any number of
modalities.
"""

from ._compose import ModalityTransformer
from ._data import Modality, MultimodalData
from ._estimators.classifier import MultimodalFusionClassifier
from ._estimators.regressor import MultimodalFusionRegressor
from ._training.cache import clear_feature_cache
from ._version import __version__

__all__ = [
    "Modality",
    "ModalityTransformer",
    "MultimodalData",
    "MultimodalFusionClassifier",
    "MultimodalFusionRegressor",
    "__version__",
    "clear_feature_cache",
    "load",
]


def load(path, device="cpu"):
    """Load a model saved with ``save`` (a classifier or a regressor, as the file says).

    Machine settings (``num_workers``, ``n_threads``, ``cache_dir``, ``callbacks``,
    ``verbose``, ``distributed``, ``device``) are never taken from the file.

    Parameters
    ----------
    path : str or path-like
        The folder written by ``save``.
    device : str or torch.device, default="cpu"
        Where to put the model.

    Returns
    -------
    MultimodalFusionClassifier or MultimodalFusionRegressor
        The fitted estimator.
    """
    from ._persistence.files import saved_estimator_name

    name = saved_estimator_name(path)
    cls = MultimodalFusionRegressor if name == "MultimodalFusionRegressor" \
        else MultimodalFusionClassifier
    return cls.load(path, device=device)
