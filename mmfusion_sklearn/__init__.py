"""Multimodal fusion with missing modalities, as scikit-learn estimators: a classifier,
a regressor and a survival model (censored time-to-event) on one engine.

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
from ._estimators.survival import MultimodalFusionSurvivalAnalysis
from ._training.cache import clear_feature_cache, clear_sample_cache, set_sample_cache_size
from ._version import __version__

__all__ = [
    "Modality",
    "ModalityTransformer",
    "MultimodalData",
    "MultimodalFusionClassifier",
    "MultimodalFusionRegressor",
    "MultimodalFusionSurvivalAnalysis",
    "__version__",
    "clear_feature_cache",
    "clear_sample_cache",
    "set_sample_cache_size",
    "load",
]


def load(path, device="cpu"):
    """Load a model saved with ``save``: whichever estimator the folder holds.

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
    MultimodalFusionClassifier, MultimodalFusionRegressor or MultimodalFusionSurvivalAnalysis
        The fitted estimator.
    """
    from ._persistence.files import saved_estimator_name

    name = saved_estimator_name(path)
    classes = {cls.__name__: cls for cls in (
        MultimodalFusionClassifier, MultimodalFusionRegressor,
        MultimodalFusionSurvivalAnalysis)}
    return classes.get(name, MultimodalFusionClassifier).load(path, device=device)
