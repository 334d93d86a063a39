"""ModalityTransformer: scikit-learn transformers applied to single modalities.

The ``ColumnTransformer`` of multimodal data: each named tabular or embedding modality
goes through its own transformer, fitted on the samples that have that modality only;
samples without it stay without it. It takes and returns
:class:`~mmfusion_sklearn.MultimodalData`, so it sits in a ``Pipeline`` before the
classifier (no torch here).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils import Bunch
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted
from sklearn_compat.base import _fit_context

from ._data import MultimodalData, recorded_spec, resolve_modality_spec
from ._data.parsing import input_data
from ._data.values import _normalise_values

_SPECIAL = ("passthrough", "drop")


class ModalityTransformer(TransformerMixin, BaseEstimator):
    """Apply a scikit-learn transformer to each of some modalities.

    The ``ColumnTransformer`` of multimodal data. Each pair ``(modality, transformer)``
    fits a clone of the transformer on the rows of X where that modality is present,
    and transforms those rows only: a sample without the modality stays without it.
    The modality must be a table or an embedding (2-D: one row per sample); images
    and volumes are preprocessed by ``Modality(transform=...)`` instead. The output is
    a :class:`~mmfusion_sklearn.MultimodalData`, so that a ``Pipeline`` passes it to
    :class:`~mmfusion_sklearn.MultimodalFusionClassifier`; ``GridSearchCV`` reaches
    the transformers' parameters as ``<modality>__<parameter>``.

    Parameters
    ----------
    transformers : list of (str, transformer) tuples
        ``(modality name, transformer)`` pairs, one per modality. A transformer is a
        scikit-learn transformer (``fit`` and ``transform``; a ``Pipeline`` chains
        several), ``"passthrough"`` (the modality unchanged) or ``"drop"`` (the
        modality removed). Names must be distinct and contain no ``"__"``.
    remainder : {"passthrough", "drop"}, default="passthrough"
        What happens to the modalities not named in ``transformers``: kept unchanged,
        or removed.
    modalities : dict, list or None, default=None
        For DataFrame input: which columns form which modality, as the classifier's
        ``modalities`` (``{name: column or list of columns}``). A plain DataFrame or
        2-D array without it is one modality named ``"tabular"``.

    Attributes
    ----------
    transformers_ : list of (str, transformer) tuples
        The fitted transformers (or ``"passthrough"``/``"drop"``), in the order of
        ``transformers``.
    named_transformers_ : sklearn.utils.Bunch
        The same, by modality name.
    modality_names_in_ : list of str
        The modalities of X in fit.

    See Also
    --------
    MultimodalData : The container it takes and returns.
    MultimodalFusionClassifier : The classifier that follows it in a pipeline.

    Notes
    -----
    A sparse output (``OneHotEncoder``'s default) is made dense. A row whose
    transformed values are all NaN is a missing modality, as everywhere else.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mmfusion_sklearn import ModalityTransformer
    >>> rng = np.random.default_rng(0)
    >>> clinical = rng.normal(size=(6, 3))
    >>> clinical[2] = np.nan                                # sample 2 has no clinical data
    >>> X = {"clinical": clinical, "embedding": rng.normal(size=(6, 16))}
    >>> steps = ModalityTransformer([("clinical", StandardScaler()),
    ...                              ("embedding", PCA(n_components=2))])
    >>> out = steps.fit_transform(X)
    >>> out.values("embedding").shape
    (6, 2)
    >>> out.presence["clinical"].tolist()
    [True, True, False, True, True, True]
    """

    _parameter_constraints: dict = {
        "transformers": [list],
        "remainder": [StrOptions(set(_SPECIAL))],
        "modalities": [None, dict, list],
    }

    def __init__(self, transformers, *, remainder="passthrough", modalities=None):
        self.transformers = transformers
        self.remainder = remainder
        self.modalities = modalities

    # -- parameters of the transformers (as Pipeline and ColumnTransformer do) --------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Get the parameters of this transformer and, with ``deep``, of its steps.

        Parameters
        ----------
        deep : bool, default=True
            Also return each named transformer (by its modality name) and its
            parameters as ``<modality>__<parameter>``.

        Returns
        -------
        dict
            Parameter names mapped to their values.
        """
        out = super().get_params(deep=False)
        if not deep:
            return out
        pairs = self._pairs(validate=False)
        for name, transformer in pairs:
            out[name] = transformer
            if hasattr(transformer, "get_params") and not isinstance(transformer, type):
                for key, value in transformer.get_params(deep=True).items():
                    out[f"{name}__{key}"] = value
        return out

    def set_params(self, **params: Any) -> ModalityTransformer:
        """Set parameters, including a whole step (``clinical=PCA()``) or its parameters.

        Parameters
        ----------
        **params : dict
            ``transformers``, ``remainder``, ``modalities``, a modality name (its new
            transformer, ``"passthrough"`` or ``"drop"``) or ``<modality>__<parameter>``.

        Returns
        -------
        self : ModalityTransformer
            This transformer.
        """
        if "transformers" in params:
            self.transformers = params.pop("transformers")
        names = [name for name, _ in self._pairs(validate=False)]
        replaced = {k: params.pop(k) for k in list(params) if "__" not in k and k in names}
        if replaced:
            self.transformers = [
                (name, replaced.get(name, transformer))
                for name, transformer in self._pairs(validate=False)
            ]
        super().set_params(**params)
        return self

    def _pairs(self, validate: bool) -> list[tuple[str, Any]]:
        """``transformers`` as (name, transformer) pairs, checked with ``validate``."""
        pairs = []
        for entry in self.transformers if isinstance(self.transformers, list) else []:
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)):
                if validate:
                    raise ValueError(
                        "Each entry of 'transformers' must be a pair (modality name, "
                        f"transformer). Got {entry!r} instead."
                    )
                continue
            pairs.append(entry)
        if not validate:
            return pairs
        names = [name for name, _ in pairs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"Modalities {repeated} appear more than once in 'transformers'; give each "
                "one transformer (a Pipeline chains several)."
            )
        bad = [name for name in names if "__" in name or not name]
        if bad:
            raise ValueError(
                f"Modality names in 'transformers' must be non-empty and contain no '__' "
                f"(it separates nested parameters). Got {bad} instead."
            )
        clashes = [name for name in names if name in self._parameter_constraints]
        if clashes:
            raise ValueError(
                f"Modality names {clashes} in 'transformers' clash with the parameters of "
                "ModalityTransformer; rename those modalities."
            )
        for name, transformer in pairs:
            if isinstance(transformer, str) and transformer in _SPECIAL:
                continue
            if isinstance(transformer, type) or not (
                callable(getattr(transformer, "fit", None))
                and callable(getattr(transformer, "transform", None))
            ):
                raise TypeError(
                    f"The transformer of modality {name!r} in 'transformers' must be a "
                    "scikit-learn transformer (with fit and transform), 'passthrough' or "
                    f"'drop'. Got {transformer!r} instead."
                )
        return pairs

    # -- input ---------------------------------------------------------------------
    def _as_data(self, X: Any, reset: bool) -> MultimodalData:
        """Any accepted form of X as MultimodalData (``reset`` is for symmetry with
        the classifier: the reading does not depend on fit)."""
        return input_data(X, resolve_modality_spec(self.modalities))

    # -- fit and transform -----------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any = None) -> ModalityTransformer:
        """Fit each transformer on the samples that have its modality.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples in any form the classifier takes.
        y : array-like of shape (n_samples,), default=None
            Targets, passed (restricted to the same rows) to supervised transformers.

        Returns
        -------
        self : ModalityTransformer
            The fitted transformer.
        """
        self._fit(X, y, transform=False)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> MultimodalData:
        """Fit each transformer and return X with the named modalities transformed.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples in any form the classifier takes.
        y : array-like of shape (n_samples,), default=None
            Targets, passed (restricted to the same rows) to supervised transformers.
        **fit_params : dict
            Not supported: an error if any is given.

        Returns
        -------
        MultimodalData
            The transformed samples.
        """
        if fit_params:
            raise TypeError(
                "ModalityTransformer.fit_transform takes no fit parameters. Got "
                f"{sorted(fit_params)} instead."
            )
        return self._fit(X, y, transform=True)

    def _fit(self, X: Any, y: Any, transform: bool) -> MultimodalData | None:
        pairs = self._pairs(validate=True)
        data = self._as_data(X, reset=True)
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(data):
                raise ValueError(
                    f"Number of samples in X ({len(data)}) and y ({len(y)}) do not match."
                )
        unknown = [name for name, _ in pairs if name not in data]
        if unknown:
            raise ValueError(
                f"Modalities {unknown} named in 'transformers' are not in X; X has "
                f"{data.modality_names}."
            )
        fitted: list[tuple[str, Any]] = []
        outputs: dict[str, Any] = {}
        self._templates: dict[str, Any] = {}
        for name, transformer in pairs:
            if isinstance(transformer, str):
                fitted.append((name, transformer))
                continue
            table, rows = _present_table(data, name)
            if not len(rows):
                raise ValueError(
                    f"Modality {name!r} is missing for every sample in fit, so its "
                    "transformer cannot be fitted; drop it ('drop') or provide some of "
                    "its values."
                )
            estimator = clone(transformer)
            target = None if y is None else y[rows]
            with _named(name, "fit"):
                if transform:
                    out = estimator.fit_transform(table, target)
                else:
                    out = estimator.fit(table, target).transform(table)
            self._templates[name] = _template(out)
            outputs[name] = out
            fitted.append((name, estimator))
        self.transformers_ = fitted
        self.named_transformers_ = Bunch(**dict(fitted))
        self.modality_names_in_ = data.modality_names
        if not transform:
            return None
        return self._assemble(data, {name: (out, data.present(name))
                                     for name, out in outputs.items()})

    def transform(self, X: Any) -> MultimodalData:
        """Transform the named modalities of X on the samples that have them.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples in any form the classifier takes; a modality left out stays out.

        Returns
        -------
        MultimodalData
            The transformed samples.
        """
        check_is_fitted(self)
        data = self._as_data(X, reset=False)
        outputs = {}
        for name, estimator in self.transformers_:
            if isinstance(estimator, str) or name not in data:
                continue
            table, rows = _present_table(data, name)
            if len(rows):
                with _named(name, "transform"):
                    out = estimator.transform(table)
            else:
                out = None
            outputs[name] = (out, data.present(name))
        return self._assemble(data, outputs)

    def _assemble(self, data: MultimodalData, outputs: dict[str, Any]) -> MultimodalData:
        """The output container: transformed, passed-through and dropped modalities."""
        named = dict(self.transformers_)
        values, presence = {}, {}
        for name in data.modality_names:
            step = named.get(name, self.remainder)
            if isinstance(step, str) and step == "drop":
                continue
            if name in outputs:
                out, present = outputs[name]
                full = _expand(out, present, self._templates[name])
                values[name], presence[name] = _normalise_values(name, full)
            else:
                values[name], presence[name] = data.values(name), data.present(name)
        if not values:
            raise ValueError(
                "ModalityTransformer dropped every modality of X: keep at least one "
                "('passthrough' or remainder='passthrough')."
            )
        specs = recorded_spec(data)
        if specs is not None:
            # a transformed table no longer has the categorical columns named at
            # construction; its kind and source columns stay
            specs = {k: replace(specs[k], categorical=None) if k in outputs else specs[k]
                     for k in values if k in specs}
        return MultimodalData._assemble(values, presence, len(data), specs,
                                        getattr(data, "_labels", None))


class _named:
    """Add the modality to an error raised by its transformer (Python >= 3.11)."""

    def __init__(self, name: str, method: str) -> None:
        self.name, self.method = name, method

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if error is not None and hasattr(error, "add_note"):
            error.add_note(
                f"(raised by the {self.method} of the transformer of modality "
                f"{self.name!r} in ModalityTransformer)"
            )
        return False


def _present_table(data: MultimodalData, name: str) -> tuple[Any, np.ndarray]:
    """The rows of modality ``name`` where it is present, as a 2-D table, and their
    positions. Images, volumes and files are refused."""
    values = data.values(name)
    rows = np.flatnonzero(data.present(name))
    if isinstance(values, pd.DataFrame):
        return values.iloc[rows], rows
    if values.dtype != object:
        if values.ndim > 2:
            raise ValueError(
                f"Modality {name!r} holds images or volumes (an array of shape "
                f"{values.shape}); ModalityTransformer applies scikit-learn transformers "
                "to tables and embeddings (one row per sample) only. Preprocess images "
                "with Modality(transform=...) instead."
            )
        table = values[rows]
        return (table.reshape(-1, 1) if table.ndim == 1 else table), rows
    items = [values[i] for i in rows]
    shapes = {np.shape(item) for item in items if not isinstance(item, str)}
    if any(isinstance(item, str) or hasattr(item, "__fspath__") for item in items) or any(
        len(shape) > 1 for shape in shapes
    ):
        first = items[0]
        what = (f"file paths ({str(first)!r})" if isinstance(first, str)
                or hasattr(first, "__fspath__") else f"items of shape {np.shape(first)}")
        raise ValueError(
            f"Modality {name!r} holds {what}, not a table; ModalityTransformer applies "
            "scikit-learn transformers to tables and embeddings (one row per sample) "
            "only. Preprocess images with Modality(transform=...) instead."
        )
    if len(shapes) > 1:
        raise ValueError(
            f"Modality {name!r} has per-sample vectors of different lengths "
            f"({sorted(shapes)}); a transformer needs one width. Got them in X instead."
        )
    if not items:
        return np.empty((0, 0)), rows
    return np.asarray([np.atleast_1d(np.asarray(item, dtype=float)) for item in items]), rows


def _template(out: Any) -> Any:
    """What an empty output of the same transformer looks like (columns or width)."""
    if isinstance(out, pd.DataFrame):
        return list(out.columns)
    return int(np.shape(out)[1]) if np.ndim(out) == 2 else 1


def _expand(out: Any, present: np.ndarray, template: Any) -> Any:
    """The transformed rows ``out`` placed at the present rows, NaN elsewhere."""
    n = len(present)
    rows = np.flatnonzero(present)
    if out is not None and hasattr(out, "toarray"):  # sparse output, e.g. OneHotEncoder
        out = out.toarray()
    if isinstance(out, pd.DataFrame):
        return out.set_axis(rows, axis=0).reindex(pd.RangeIndex(n))
    if out is None:
        if isinstance(template, list):
            return pd.DataFrame(np.nan, index=pd.RangeIndex(n), columns=template)
        return np.full((n, template), np.nan)
    out = np.asarray(out)
    if out.ndim == 1:
        out = out.reshape(-1, 1)
    if out.dtype.kind not in "biuf":
        frame = pd.DataFrame(out, index=rows)
        return frame.reindex(pd.RangeIndex(n))
    full = np.full((n, out.shape[1]), np.nan)
    full[rows] = out
    return full
