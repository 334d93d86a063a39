"""Never wrong in silence: odd modality names, non-finite values and losses, faults."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fast_clf, make_multimodal
from numpy.testing import assert_allclose

from mmfusion_sklearn import MultimodalData


# -- any modality name --------------------------------------------------------------------------
@pytest.mark.parametrize("names", [("keys", "type"), ("training", "a.b"), ("0", "forward"),
                                   ("encoders", "names"), ("ü b", "x" * 300)])
def test_every_modality_name_works(names, tmp_path):
    X, y = make_multimodal(n=40)
    renamed = {names[0]: X["table"], names[1]: X["image"]}
    clf = fast_clf().fit(renamed, y)
    proba = clf.predict_proba(renamed)
    assert list(clf.modalities_) == list(names) and np.isfinite(proba).all()
    only_first = clf.predict_proba({names[0]: X["table"][[0, 1]]})
    assert only_first.shape == (2, 2)
    clf.save(tmp_path / "model")
    loaded = type(clf).load(tmp_path / "model")
    assert_allclose(loaded.predict_proba(renamed), proba, rtol=1e-6, atol=1e-7)


def test_empty_modality_name_is_a_clear_error():
    X, y = make_multimodal(n=20)
    with pytest.raises(ValueError, match="Modality names must be non-empty strings. Got ''"):
        fast_clf().fit({"": X["table"], "image": X["image"]}, y)
    with pytest.raises(ValueError, match="non-empty strings. Got '' in 'modalities'"):
        fast_clf({"": "tabular"}).fit({"t": X["table"]}, y)
    with pytest.raises(ValueError, match="non-empty"):
        MultimodalData({"": X["table"]})
