"""MultimodalFusionClassifier: what classification adds to the shared engine (labels,
class weights, temperatures, probabilities)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets

from .._torch.tasks import ClassificationTask
from .._training.batches import FusionDataset
from .._training.calibration import fit_temperature_table
from . import _docs
from ._base import SHARED_PARAMETERS, BaseMultimodalFusion, plain

_PARAMETERS = SHARED_PARAMETERS[:19] + ["class_weight"] + SHARED_PARAMETERS[19:26] + [
    "calibration"] + SHARED_PARAMETERS[26:]


class MultimodalFusionClassifier(ClassifierMixin, BaseMultimodalFusion):
    __doc__ = f"""Classify from several modalities, any of which may be missing.

    Each modality has an encoder (tabular MLP, 2-D or 3-D CNN, LayerNorm+linear for
    precomputed embeddings, or a user module). A learnable token per modality stands
    in for its features wherever it is absent; the per-modality features are fused by
    an MLP (or a transformer) and classified. Training uses simultaneous modality
    dropout (the full input and every single-modality configuration in each step) and,
    optionally, a supervised sigmoid contrastive pretraining stage (Gu, Saito and Ma,
    MICCAI 2025).

    Parameters
    ----------
{_docs.parameters(_PARAMETERS)}
    Attributes
    ----------
{_docs.attributes(["classes_", *_docs.SHARED_ATTRIBUTE_ORDER[:5], "temperatures_",
                   *_docs.SHARED_ATTRIBUTE_ORDER[5:]])}
    See Also
    --------
    MultimodalFusionRegressor : The same engine for a continuous target.
    MultimodalData : The sliceable container that model selection tools accept.
    mmfusion_sklearn.metrics.missing_modality_report : Scores per subset of modalities.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 60)
    >>> X = {{
    ...     "clinical": rng.normal(size=(60, 3)) + y[:, None],
    ...     "image": [rng.normal(size=(8, 8)) + y[i] if i % 3 else None for i in range(60)],
    ... }}
    >>> clf = MultimodalFusionClassifier(
    ...     embed_dim=16, max_epochs=5, pretrain_epochs=2, random_state=0)
    >>> clf.fit(X, y).predict({{"clinical": X["clinical"][:2]}}).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **BaseMultimodalFusion._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "calibration": [StrOptions({"temperature"}), None],
    }

    def __init__(
        self,
        modalities=None,
        *,
        fusion="mlp",
        embed_dim=128,
        missing_token="learned",
        modality_dropout="simultaneous",
        dropout_rate=0.3,
        unimodal_weight=1.0,
        contrastive="fused",
        contrastive_loss="balanced",
        pretrain_epochs=10,
        max_epochs=100,
        batch_size=64,
        lr=1e-3,
        weight_decay=1e-4,
        early_stopping=True,
        validation_fraction=0.1,
        patience=10,
        ensemble_size="auto",
        linear_path=True,
        class_weight=None,
        device="auto",
        random_state=None,
        verbose=0,
        precision="32",
        num_workers=0,
        on_read_error="raise",
        cache_dir=None,
        calibration=None,
        callbacks=None,
        n_threads=None,
        distributed="auto",
    ):
        super().__init__(
            modalities, fusion=fusion, embed_dim=embed_dim, missing_token=missing_token,
            modality_dropout=modality_dropout, dropout_rate=dropout_rate,
            unimodal_weight=unimodal_weight, contrastive=contrastive,
            contrastive_loss=contrastive_loss, pretrain_epochs=pretrain_epochs,
            max_epochs=max_epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, ensemble_size=ensemble_size, linear_path=linear_path,
            device=device, random_state=random_state, verbose=verbose, precision=precision,
            num_workers=num_workers, on_read_error=on_read_error, cache_dir=cache_dir,
            callbacks=callbacks, n_threads=n_threads, distributed=distributed,
        )
        self.class_weight = class_weight
        self.calibration = calibration

    # -- the task ----------------------------------------------------------------------
    def _target_vector(self, y: Any) -> np.ndarray:
        if getattr(np.asarray(y), "dtype", np.dtype(float)).names is not None:
            raise ValueError(
                "y is a structured array (an event indicator and a time, as scikit-survival's "
                "Surv.from_arrays makes): a survival target, not class labels. Use "
                "MultimodalFusionSurvivalAnalysis for censored times, or classify whether "
                "the event happened by a fixed horizon."
            )
        return super()._target_vector(y)

    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y contains only one class ({plain(self.classes_[0])!r}): a classifier needs "
                "samples of at least 2 classes."
            )
        return y_index.astype(np.int64), y_index

    def _task(self) -> ClassificationTask:
        return ClassificationTask(len(self.classes_))

    def _sample_weight(self, weight: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.class_weight is not None:
            weight = weight * compute_sample_weight(self.class_weight, y)
        return weight

    def _check_fit_parameters(self) -> None:
        if self.calibration is not None and not self.early_stopping:
            raise ValueError(
                f"calibration={self.calibration!r} fits its temperatures on the held-out "
                "rows, which early_stopping=False does not keep. Set early_stopping=True, "
                "or wrap the estimator in sklearn.calibration.CalibratedClassifierCV."
            )

    def _after_training(self, dataset: FusionDataset, plans: list) -> None:
        """Temperatures per modality subset on the held-out rows (``calibration``)."""
        self.__dict__.pop("temperatures_", None)
        self._temperatures = None
        if self.calibration is None:
            return
        valids = [None if p.valid_index is None else dataset.subset(p.valid_index)
                  for p in plans]
        table = fit_temperature_table(
            [net.module_ for net in self._nets], valids, len(self.modalities_),
            batch_size=self.batch_size, device=self.device_, precision=self.precision,
            num_workers=self.num_workers,
        )
        self._temperatures = table
        self.temperatures_ = table.frame(list(self.modalities_))

    def _temperature_table(self) -> Any:
        return getattr(self, "_temperatures", None)

    def _target_config(self) -> dict[str, Any]:
        from .._persistence.files import classes_to_json

        return classes_to_json(self.classes_)

    def _set_target_config(self, state: dict[str, Any]) -> None:
        self.classes_ = state["classes"]

    # -- prediction ----------------------------------------------------------------
    def _log_proba(self, X: Any) -> torch.Tensor:
        """Log of the members' mean class probabilities, (n, n_classes) float64."""
        return torch.from_numpy(self._predict_outputs(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores (logits): shape (n_samples,) for two classes, else (n, n_classes).

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.

        Returns
        -------
        ndarray
            For two classes the log-odds of ``classes_[1]``.
        """
        log_proba = self._log_proba(X)
        if log_proba.shape[1] == 2:
            return (log_proba[:, 1] - log_proba[:, 0]).numpy()
        return log_proba.numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probability of each class of ``classes_``; rows sum to 1.
        """
        return torch.exp(self._log_proba(X)).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.

        Returns
        -------
        ndarray of shape (n_samples,)
            The most probable class of each sample, taken from ``classes_``.
        """
        index = self._log_proba(X).argmax(dim=1).numpy()
        return self.classes_[index]
