"""MultimodalFusionRegressor: what a continuous target adds to the shared engine (a
target standardised inside fit, squared error, R^2)."""

from __future__ import annotations

from numbers import Number
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.multiclass import type_of_target

from .._data.messages import rows_text
from .._torch.tasks import RegressionTask
from . import _docs
from ._base import SHARED_PARAMETERS, BaseMultimodalFusion


class MultimodalFusionRegressor(RegressorMixin, BaseMultimodalFusion):
    __doc__ = f"""Predict a continuous target from several modalities, any of which may be missing.

    The same method as :class:`MultimodalFusionClassifier` (per-modality encoders,
    learnable tokens for absent modalities, simultaneous modality dropout, an optional
    contrastive stage, a linear path, cross-fitted members) with a one-output head
    trained on the squared error. The target is standardised inside ``fit`` (its mean
    and standard deviation over the training rows) and predictions come back in its
    units, so a target in thousands and the same in units learn the same model; the
    members' predictions are averaged. The contrastive stage has no classes to pair:
    its positives are each sample's unimodal and fused views; it is off by default
    (``contrastive=None``), the one default that differs from the classifier's, since
    it changed no score significantly in the regression benchmarks.

    Parameters
    ----------
{_docs.parameters(SHARED_PARAMETERS, {"contrastive": _docs.REGRESSOR_CONTRASTIVE})}
    Attributes
    ----------
{_docs.attributes(_docs.SHARED_ATTRIBUTE_ORDER)}
    See Also
    --------
    MultimodalFusionClassifier : The same engine for class labels.
    mmfusion_sklearn.metrics.missing_modality_report : Scores per subset of modalities.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionRegressor
    >>> rng = np.random.default_rng(0)
    >>> labs = rng.normal(size=(80, 3))
    >>> y = 100 + 20 * labs[:, 0] + rng.normal(size=80)
    >>> X = {{
    ...     "labs": labs,
    ...     "image": [rng.normal(size=(8, 8)) + labs[i, 0] if i % 3 else None
    ...               for i in range(80)],
    ... }}
    >>> reg = MultimodalFusionRegressor(
    ...     embed_dim=16, max_epochs=5, pretrain_epochs=0, random_state=0)
    >>> reg.fit(X, y).predict({{"labs": labs[:2]}}).shape
    (2,)
    """

    _target_kind = "continuous"

    def _target_vector(self, y: Any) -> np.ndarray:
        array = np.asarray(y)
        if array.dtype.names is not None:
            raise ValueError(
                "y is a structured array (an event indicator and a time, as "
                "scikit-survival's Surv.from_arrays makes): a survival target, not a "
                "continuous one. Use MultimodalFusionSurvivalAnalysis for censored times."
            )
        if array.ndim == 2 and array.shape[1] > 1:
            raise ValueError(
                f"{type(self).__name__} predicts one target; y has {array.shape[1]} "
                "columns. Fit one regressor per column (e.g. with "
                "sklearn.multioutput.MultiOutputRegressor)."
            )
        return super()._target_vector(y)

    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, None]:
        if y.dtype.kind == "O" and all(
            isinstance(v, Number) and not isinstance(v, complex) for v in y
        ):
            y = y.astype(np.float64)  # numbers held in an object array
        if y.dtype.kind not in "biuf":
            kind = type_of_target(y) if y.dtype.kind != "O" else "object"
            raise ValueError(
                f"{type(self).__name__} needs a numeric target; y holds values of dtype "
                f"{y.dtype} ({kind}), e.g. {y[0]!r}. Convert it to numbers, or use "
                "MultimodalFusionClassifier for labels."
            )
        y = y.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(y))
        if len(bad):
            raise ValueError(
                f"y must be finite; it holds {float(y[bad[0]])!r} at rows {rows_text(bad)}. Drop "
                "those rows or impute their target."
            )
        mean, scale = float(y.mean()), float(y.std())
        if not np.isfinite(scale) or not np.isfinite((y - mean) / (scale or 1.0)).all():
            raise ValueError(
                "y is too large to standardise in float64 (its spread overflows); "
                "rescale it."
            )
        self._target_mean = mean
        # a constant target: predictions are that constant (any scale works)
        self._target_scale = scale if scale > 0 else 1.0
        return ((y - mean) / self._target_scale).astype(np.float32), None

    def _task(self) -> RegressionTask:
        return RegressionTask()

    def _target_config(self) -> dict[str, Any]:
        return {"target": {"mean": self._target_mean, "scale": self._target_scale}}

    def _set_target_config(self, state: dict[str, Any]) -> None:
        self._target_mean = state["mean"]
        self._target_scale = state["scale"]

    def predict(self, X: Any) -> np.ndarray:
        """Predicted target values, in the units of the ``y`` given to ``fit``.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.

        Returns
        -------
        ndarray of shape (n_samples,)
            The members' mean prediction of each sample.
        """
        standardised = self._predict_outputs(X)[:, 0]
        return standardised * self._target_scale + self._target_mean
