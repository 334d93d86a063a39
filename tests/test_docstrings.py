"""The public docstrings follow numpydoc and agree with the signatures.

The API reference (docs/api.rst) is built from these docstrings, so a parameter that is
renamed, added or left undocumented shows up here before it shows up in the docs.
"""

from __future__ import annotations

import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

import mmfusion_sklearn  # noqa: E402
from mmfusion_sklearn import dask as dask_  # noqa: E402  (imports without dask)
from mmfusion_sklearn import io, metrics, plotting, tuning  # noqa: E402

#: The numpydoc checks enforced. Left out on purpose: ES01 (extended summary), SA01
#: (See Also) and EX01 (Examples) are not required of every method; RT02 rejects the
#: scikit-learn convention ``self : MultimodalFusionClassifier`` for ``fit``; PR08
#: rejects descriptions that open with a lower-case name ("scikit-learn scorer ...").
CHECKED = {
    "GL02", "GL03", "GL05", "GL06", "GL07", "GL08", "GL10",  # layout, sections, docstring
    "SS01", "SS02", "SS03", "SS04", "SS05", "SS06",  # one-line summary
    "PR01", "PR02", "PR03", "PR04", "PR05", "PR06", "PR07", "PR09", "PR10",  # parameters
    "RT01", "RT03", "RT04", "RT05", "YD01",  # returns / yields
    "SA02", "SA03", "SA04",  # See Also entries, where there is a section
}


def _own_methods(cls: type) -> list[str]:
    """Public methods and properties defined by ``cls`` or its bases in this package
    (not scikit-learn's)."""
    names = []
    for owner in cls.__mro__:
        if not owner.__module__.startswith("mmfusion_sklearn"):
            continue
        for name, member in vars(owner).items():
            if name.startswith("_") or name in names:
                continue
            if isinstance(member, (classmethod, staticmethod, property)) \
                    or inspect.isfunction(member):
                names.append(name)
    return names


def _public_names() -> list[str]:
    names = []
    for name in mmfusion_sklearn.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(mmfusion_sklearn, name)
        names.append(f"mmfusion_sklearn.{name}")
        if inspect.isclass(obj):
            names += [f"mmfusion_sklearn.{name}.{method}" for method in _own_methods(obj)]
    for module in (metrics, io, plotting, tuning, dask_):
        prefix = module.__name__
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants
            names.append(f"{prefix}.{name}")
            if inspect.isclass(obj):
                names += [f"{prefix}.{name}.{method}" for method in _own_methods(obj)]
    return names


PUBLIC = _public_names()


def test_the_public_names_are_all_checked():
    required = {
        "mmfusion_sklearn.MultimodalFusionClassifier",
        "mmfusion_sklearn.MultimodalFusionClassifier.fit",
        "mmfusion_sklearn.MultimodalFusionClassifier.predict",
        "mmfusion_sklearn.MultimodalFusionClassifier.predict_proba",
        "mmfusion_sklearn.MultimodalFusionClassifier.decision_function",
        "mmfusion_sklearn.MultimodalFusionClassifier.save",
        "mmfusion_sklearn.MultimodalFusionClassifier.load",
        "mmfusion_sklearn.MultimodalFusionRegressor",
        "mmfusion_sklearn.MultimodalFusionRegressor.fit",
        "mmfusion_sklearn.MultimodalFusionRegressor.predict",
        "mmfusion_sklearn.MultimodalFusionRegressor.save",
        "mmfusion_sklearn.MultimodalFusionRegressor.load",
        "mmfusion_sklearn.MultimodalData",
        "mmfusion_sklearn.Modality",
        "mmfusion_sklearn.load",
        "mmfusion_sklearn.metrics.missing_modality_report",
        "mmfusion_sklearn.metrics.modality_importance",
        "mmfusion_sklearn.metrics.restrict_modalities",
        "mmfusion_sklearn.metrics.modality_contributions",
        "mmfusion_sklearn.ModalityTransformer",
        "mmfusion_sklearn.io.from_dicom",
        "mmfusion_sklearn.plotting.TrainingHistoryDisplay.from_estimator",
        "mmfusion_sklearn.plotting.MissingModalityDisplay.plot",
        "mmfusion_sklearn.plotting.ModalityImportanceDisplay",
        "mmfusion_sklearn.tuning.tune",
        "mmfusion_sklearn.tuning.suggest_params",
        "mmfusion_sklearn.tuning.default_search_space",
        "mmfusion_sklearn.tuning.PruningCallback.on_epoch_end",
        "mmfusion_sklearn.dask.predict_proba",
        "mmfusion_sklearn.dask.predict",
    }
    assert required <= set(PUBLIC), sorted(required - set(PUBLIC))
    # scikit-learn's own methods (score, get_params, set_fit_request, ...) are not ours
    assert "mmfusion_sklearn.MultimodalFusionClassifier.get_params" not in PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_docstring(name):
    result = numpydoc_validate.validate(name)
    errors = [f"{code}: {message}" for code, message in result["errors"] if code in CHECKED]
    assert not errors, f"{name}:\n" + "\n".join(errors)
