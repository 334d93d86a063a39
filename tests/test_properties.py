"""Property-based tests of input handling: one fitted model, many ways to ask it.

Predictions must not depend on the input form (dict, records, MultimodalData,
DataFrame), on the order of keys, on the batch size, or on which other rows are in the
call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import fast_clf, make_multimodal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from mmfusion_sklearn import MultimodalData

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model():
    X, y = make_multimodal(n=40)
    return fast_clf().fit(X, y), X


def _records(X, rows, key_order):
    out = []
    for i in rows:
        record = {}
        for name in key_order:
            value = X[name][i]
            if value is None or (np.ndim(value) == 1 and np.isnan(value).all()):
                continue  # absent from the record = missing
            record[name] = value
        out.append(record)
    return out


rows_strategy = st.lists(st.integers(0, 39), min_size=1, max_size=25)


@SETTINGS
@given(rows=rows_strategy)
def test_a_row_predicts_the_same_whatever_rows_come_with_it(model, rows):
    clf, X = model
    full = clf.predict_proba(X)
    data = MultimodalData(X)
    assert_allclose(clf.predict_proba(data[np.array(rows)]), full[rows], rtol=1e-5,
                    atol=1e-6)


@SETTINGS
@given(rows=rows_strategy, reverse=st.booleans())
def test_every_input_form_gives_the_same_probabilities(model, rows, reverse):
    clf, X = model
    order = ["image", "table"] if reverse else ["table", "image"]
    index = np.array(rows)
    as_dict = {name: (X[name][index] if name == "table" else [X[name][i] for i in rows])
               for name in order}
    expected = clf.predict_proba(MultimodalData(X)[index])
    assert_allclose(clf.predict_proba(as_dict), expected, rtol=1e-5, atol=1e-6)
    assert_allclose(clf.predict_proba(_records(X, rows, order)), expected, rtol=1e-5,
                    atol=1e-6)
    # a DataFrame whose columns form the modalities (named as the array's columns were)
    columns = ["0", "1", "2", "3"]
    frame = pd.DataFrame(X["table"][index], columns=columns)
    frame["image"] = pd.Series([X["image"][i] for i in rows], dtype=object)
    spec = {"image": "image", "table": columns} if reverse else {"table": columns,
                                                                 "image": "image"}
    assert_allclose(clf.predict_proba(MultimodalData(frame, modalities=spec)), expected,
                    rtol=1e-5, atol=1e-6)


@SETTINGS
@given(batch_size=st.integers(1, 64))
def test_batch_size_does_not_change_predictions(model, batch_size):
    clf, X = model
    expected = clf.predict_proba(X)
    clf.set_params(batch_size=batch_size)
    try:
        assert_allclose(clf.predict_proba(X), expected, rtol=1e-5, atol=1e-6)
    finally:
        clf.set_params(batch_size=32)


@SETTINGS
@given(subset=st.sampled_from([("table",), ("image",), ("table", "image")]),
       rows=rows_strategy)
def test_a_left_out_key_equals_none_everywhere(model, subset, rows):
    clf, X = model
    index = np.array(rows)
    left_out = {name: (X[name][index] if name == "table" else [X[name][i] for i in rows])
                for name in subset}
    as_none = dict(left_out)
    if "image" not in subset:
        as_none["image"] = [None] * len(rows)
    if "table" not in subset:
        as_none["table"] = np.full((len(rows), 4), np.nan)
    present = MultimodalData(as_none).presence.any(axis=1).to_numpy()
    if not present.all():
        return  # a row with nothing left: an error, tested elsewhere
    assert_allclose(clf.predict_proba(left_out), clf.predict_proba(as_none), rtol=1e-5,
                    atol=1e-6)
