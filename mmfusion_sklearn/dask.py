"""Prediction over Dask DataFrames and Bags, partition by partition.

A fitted :class:`~mmfusion_sklearn.MultimodalFusionClassifier` travels to the workers in
the form that :meth:`~mmfusion_sklearn.MultimodalFusionClassifier.save` writes (JSON
config and safetensors weights, as bytes), never as a pickle: the bytes are one key of
the task graph, which each worker fetches once, and each worker process loads the model
once, with the checks of :func:`~mmfusion_sklearn.load` (SHA-256 of the weights
included), into a cache keyed by the weights' SHA-256. The same code runs under the
synchronous and threaded schedulers and on a ``distributed`` cluster.

Needs dask: ``pip install -e ".[distributed]"`` from a checkout. Importing this module does
not import dask; the functions do.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["predict", "predict_proba"]

#: Column-name prefix of the probabilities: ``"proba_<label>"`` for each class.
PREFIX = "proba_"
_INSTALL = ('pip install "dask[dataframe,distributed]>=2024.8" (the distributed extra; from a '
            'checkout of mmfusion_sklearn: pip install -e ".[distributed]")')
#: Models each process keeps loaded (most recently used first out when full).
_CACHE_SIZE = 4
_cache: OrderedDict[str, tuple[str, str, Any]] = OrderedDict()
_loads: dict[str, int] = {}
_lock = threading.Lock()


# -- the model as it travels -----------------------------------------------------------------
@dataclass(frozen=True)
class _ShippedModel:
    """The saved files of a fitted model (bytes), the weights' SHA-256 and the device."""

    sha256: str
    config: bytes
    weights: bytes
    device: str
    estimator: str = "MultimodalFusionClassifier"

    def __dask_tokenize__(self) -> tuple[str, str, str]:
        return (self.sha256, hashlib.sha256(self.config).hexdigest(), self.device)


def _ship(estimator: Any, device: Any) -> _ShippedModel:
    """The estimator's save() form, made once on the client."""
    import json

    from ._persistence.files import CONFIG_FILE, WEIGHTS_FILE, model_to_bytes

    try:
        files = model_to_bytes(estimator)
    except ValueError as exc:
        raise ValueError(
            "mmfusion_sklearn.dask sends the model to the workers in its save() form "
            f"(safetensors + JSON), never as a pickle, and this model has no such form: {exc}"
        ) from exc
    sha256 = json.loads(files[CONFIG_FILE])["weights_sha256"]
    return _ShippedModel(sha256, files[CONFIG_FILE], files[WEIGHTS_FILE], str(device),
                         type(estimator).__name__)


def _model(shipped: _ShippedModel) -> Any:
    """The estimator of ``shipped``, loaded once per process and kept in the cache."""
    from . import (
        MultimodalFusionClassifier,
        MultimodalFusionRegressor,
        MultimodalFusionSurvivalAnalysis,
    )
    from ._persistence.files import CONFIG_FILE, WEIGHTS_FILE, model_from_bytes
    from ._persistence.schema import ModelFileError

    config_sha = hashlib.sha256(shipped.config).hexdigest()
    with _lock:
        entry = _cache.get(shipped.sha256)
        if entry is not None and entry[:2] == (config_sha, shipped.device):
            _cache.move_to_end(shipped.sha256)
            return entry[2]
        if hashlib.sha256(shipped.weights).hexdigest() != shipped.sha256:
            raise ModelFileError(
                "Cannot load the model sent to this worker: the SHA-256 checksum of its "
                "weights does not match the one recorded when it was saved."
            )
        cls = {c.__name__: c for c in (MultimodalFusionClassifier, MultimodalFusionRegressor,
                                        MultimodalFusionSurvivalAnalysis)}[shipped.estimator]
        estimator = model_from_bytes(
            cls,
            {CONFIG_FILE: shipped.config, WEIGHTS_FILE: shipped.weights},
            device=shipped.device,
        )
        # Dask gives the parallelism, and its worker processes are daemonic (they
        # cannot start DataLoader workers); reading in the task's thread changes no value
        estimator.set_params(num_workers=0, verbose=0)
        _cache[shipped.sha256] = (config_sha, shipped.device, estimator)
        _loads[shipped.sha256] = _loads.get(shipped.sha256, 0) + 1
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return estimator


def _cache_info() -> dict[str, int]:
    """How many times this process loaded each model, by the weights' SHA-256."""
    with _lock:
        return dict(_loads)


# -- per partition ---------------------------------------------------------------------------
def _frame_proba(part: pd.DataFrame, shipped: _ShippedModel, columns: list[str]) -> pd.DataFrame:
    if len(part) == 0:
        return pd.DataFrame(np.empty((0, len(columns))), index=part.index, columns=columns)
    proba = _model(shipped).predict_proba(part)
    return pd.DataFrame(proba.astype(np.float64, copy=False), index=part.index,
                        columns=columns)


def _frame_labels(part: pd.DataFrame, shipped: _ShippedModel, dtype: Any) -> pd.Series:
    if len(part) == 0:
        return pd.Series(np.empty(0, dtype=dtype), index=part.index, name="prediction")
    return pd.Series(_model(shipped).predict(part), index=part.index, name="prediction")


def _records_proba(records: Any, shipped: _ShippedModel,
                   columns: list[str]) -> list[dict[str, float]]:
    records = list(records)
    if not records:
        return []
    proba = _model(shipped).predict_proba(records)
    return [dict(zip(columns, row)) for row in proba.tolist()]


def _records_labels(records: Any, shipped: _ShippedModel) -> list[Any]:
    records = list(records)
    if not records:
        return []
    return _model(shipped).predict(records).tolist()


# -- checks ----------------------------------------------------------------------------------
def _import_dask() -> tuple[Any, Any, Any]:
    try:
        import dask
        import dask.bag as db
        import dask.dataframe as dd
    except ImportError as exc:
        raise ImportError(
            "mmfusion_sklearn.dask needs dask with its DataFrame and Bag parts (and "
            f"distributed for a cluster): {_INSTALL}. Importing it failed: {exc}"
        ) from exc
    return dask, dd, db


def _prepare(estimator: Any, data: Any, device: Any, function: str) -> tuple[Any, ...]:
    """Check the arguments; the dask modules, the kind of ``data`` and the model key."""
    from sklearn.utils.validation import check_is_fitted

    from . import (
        MultimodalFusionClassifier,
        MultimodalFusionRegressor,
        MultimodalFusionSurvivalAnalysis,
    )

    dask, dd, db = _import_dask()
    accepted = (MultimodalFusionClassifier,) if function == "predict_proba" else (
        MultimodalFusionClassifier, MultimodalFusionRegressor,
        MultimodalFusionSurvivalAnalysis)
    if not isinstance(estimator, accepted):
        names = " or ".join(c.__name__ for c in accepted)
        raise TypeError(
            f"The 'estimator' parameter of mmfusion_sklearn.dask.{function} must be a "
            f"fitted {names}. Got {type(estimator).__name__} instead."
        )
    check_is_fitted(estimator)
    if isinstance(data, dd.DataFrame):
        kind = "frame"
    elif isinstance(data, db.Bag):
        kind = "bag"
    else:
        hint = (" Turn a Dask Series into a DataFrame with .to_frame() first."
                if isinstance(data, dd.Series) else "")
        raise TypeError(
            f"The 'data' parameter of mmfusion_sklearn.dask.{function} must be a Dask "
            "DataFrame (dask.dataframe.DataFrame) or a Dask Bag of per-sample dicts "
            f"(dask.bag.Bag). Got {type(data).__module__}.{type(data).__qualname__} "
            f"instead.{hint}"
        )
    shipped = _ship(estimator, device)
    # one key in the graph: fetched once per worker, whatever the number of partitions
    key = dask.delayed(shipped, pure=True, traverse=False,
                       name=f"mmfusion-model-{dask.base.tokenize(shipped)}")
    return dd, kind, key


def _columns(classes: np.ndarray) -> list[str]:
    return [f"{PREFIX}{label}" for label in classes.tolist()]


# -- public ----------------------------------------------------------------------------------
def predict_proba(estimator: Any, data: Any, *, device: Any = "cpu") -> Any:
    """Class probabilities over a Dask DataFrame or Bag, partition by partition.

    Lazy: nothing runs until the result is computed (``.compute()``, ``.to_parquet()``,
    ...), under whatever scheduler is active: a ``distributed`` client, or the threaded
    or synchronous scheduler of one process. The model goes into the task graph once, as
    the bytes of its :meth:`~mmfusion_sklearn.MultimodalFusionClassifier.save` form
    (never a pickle), and each worker process loads it once (checking the weights'
    SHA-256), however many partitions it scores.

    Parameters
    ----------
    estimator : MultimodalFusionClassifier
        A fitted estimator that :meth:`~mmfusion_sklearn.MultimodalFusionClassifier.save`
        can store (no custom encoder module or transform callable).
    data : dask.dataframe.DataFrame or dask.bag.Bag
        A Dask DataFrame: each partition is read exactly as
        :meth:`~mmfusion_sklearn.MultimodalFusionClassifier.predict_proba` reads a pandas
        DataFrame, with the column specification given at fit (``modalities=``). A Dask
        Bag: its items are per-sample dicts ``{modality: value}`` (records); a key left
        out is a modality missing for that sample. File paths in either are read on the
        workers, so they must be readable there (shared storage).
    device : str or torch.device, default="cpu"
        Where the workers put the model, e.g. ``"cuda"`` on GPU workers or ``"auto"``.

    Returns
    -------
    dask.dataframe.DataFrame or dask.bag.Bag
        For a DataFrame: a Dask DataFrame of float64 columns ``"proba_<label>"``, one per
        class in the order of ``classes_`` (``"proba_0"``, ``"proba_1"`` for labels 0 and
        1), with the index and divisions of ``data``. For a Bag: a Bag with one dict
        ``{"proba_<label>": probability}`` per record, in the order of the records
        (``.to_dataframe()`` turns it into the same columns).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``data`` is neither a Dask DataFrame nor a Dask Bag.
    ImportError
        If dask is not installed.

    See Also
    --------
    predict : The most probable class over a Dask DataFrame or Bag.
    mmfusion_sklearn.MultimodalFusionClassifier.predict_proba : The same in one process.

    Examples
    --------
    >>> import dask
    >>> import dask.dataframe as dd
    >>> import numpy as np
    >>> import pandas as pd
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> from mmfusion_sklearn import dask as mmdask
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 20)
    >>> frame = pd.DataFrame(rng.normal(size=(40, 3)) + y[:, None], columns=["a", "b", "c"])
    >>> clf = MultimodalFusionClassifier(
    ...     {"labs": ["a", "b"], "vitals": ["c"]}, embed_dim=16, max_epochs=2,
    ...     pretrain_epochs=0, random_state=0).fit(frame, y)
    >>> proba = mmdask.predict_proba(clf, dd.from_pandas(frame, npartitions=4))
    >>> list(proba.columns)
    ['proba_0', 'proba_1']
    >>> with dask.config.set(scheduler="synchronous"):
    ...     result = proba.compute()
    >>> bool(np.allclose(result.to_numpy(), clf.predict_proba(frame), atol=1e-6))
    True
    """
    dd, kind, key = _prepare(estimator, data, device, "predict_proba")
    columns = _columns(estimator.classes_)
    if kind == "bag":
        return data.map_partitions(_records_proba, key, columns)
    index = pd.Index([], dtype=data.index.dtype, name=data.index.name)
    meta = pd.DataFrame(np.empty((0, len(columns))), index=index, columns=columns)
    return data.map_partitions(_frame_proba, key, columns, meta=meta)


def predict(estimator: Any, data: Any, *, device: Any = "cpu") -> Any:
    """Predict over a Dask DataFrame or Bag, partition by partition.

    Class labels of a classifier, target values of a regressor, risk scores of a
    survival model (higher: an earlier event).

    Lazy, and the model travels as in :func:`predict_proba`: once, in its
    :meth:`~mmfusion_sklearn.MultimodalFusionClassifier.save` form, never as a pickle.

    Parameters
    ----------
    estimator : MultimodalFusionClassifier, Regressor or SurvivalAnalysis
        A fitted estimator that ``save`` can store.
    data : dask.dataframe.DataFrame or dask.bag.Bag
        A Dask DataFrame read with the column specification given at fit, or a Dask Bag
        of per-sample dicts (records), as in :func:`predict_proba`.
    device : str or torch.device, default="cpu"
        Where the workers put the model.

    Returns
    -------
    dask.dataframe.Series or dask.bag.Bag
        For a DataFrame: a Dask Series named ``"prediction"`` of the labels of
        ``classes_`` (their dtype; float64 values for a regressor or a survival
        model's risk scores), with the index and
        divisions of ``data``. For a Bag: a Bag of predictions (Python scalars), in the
        order of the records.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If ``data`` is neither a Dask DataFrame nor a Dask Bag.
    ImportError
        If dask is not installed.

    See Also
    --------
    predict_proba : Class probabilities over a Dask DataFrame or Bag.

    Examples
    --------
    >>> import dask
    >>> import dask.bag as db
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> from mmfusion_sklearn import dask as mmdask
    >>> rng = np.random.default_rng(0)
    >>> y = np.tile(["no", "yes"], 20)
    >>> X = {"labs": rng.normal(size=(40, 2)) + (y == "yes")[:, None],
    ...      "emb": rng.normal(size=(40, 4))}
    >>> clf = MultimodalFusionClassifier(embed_dim=16, max_epochs=2, pretrain_epochs=0,
    ...                                  random_state=0).fit(X, y)
    >>> records = [{"labs": X["labs"][i]} if i % 3 else {"labs": X["labs"][i],
    ...            "emb": X["emb"][i]} for i in range(40)]
    >>> labels = mmdask.predict(clf, db.from_sequence(records, npartitions=4))
    >>> with dask.config.set(scheduler="synchronous"):
    ...     result = labels.compute()
    >>> result == clf.predict(records).tolist()
    True
    """
    dd, kind, key = _prepare(estimator, data, device, "predict")
    if kind == "bag":
        return data.map_partitions(_records_labels, key)
    classes = getattr(estimator, "classes_", None)
    dtype = classes.dtype if classes is not None else np.dtype(np.float64)
    index = pd.Index([], dtype=data.index.dtype, name=data.index.name)
    meta = pd.Series(np.empty(0, dtype=dtype), index=index, name="prediction")
    return data.map_partitions(_frame_labels, key, dtype, meta=meta)
