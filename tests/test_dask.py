"""mmfusion_sklearn.dask: prediction over Dask DataFrames and Bags on a local cluster.

The cluster has two worker processes, so the model really travels (as its save() bytes,
never a pickle) and each worker loads it into its own cache; the probabilities must be
those of one process.
"""

from __future__ import annotations

import ast
import hashlib
import json
import pickle
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fast_clf, make_multimodal
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
db = pytest.importorskip("dask.bag")
distributed = pytest.importorskip("distributed")

import mmfusion_sklearn  # noqa: E402
from mmfusion_sklearn import MultimodalFusionClassifier  # noqa: E402
from mmfusion_sklearn import dask as mmdask  # noqa: E402
from mmfusion_sklearn._persistence.schema import ModelFileError  # noqa: E402

N = 48
LABS = [f"lab{i}" for i in range(4)]
EMB = [f"emb{i}" for i in range(4)]
SPEC = {"labs": LABS, "emb": EMB}
PARAMS = {"embed_dim": 16, "max_epochs": 3}


@pytest.fixture(scope="module")
def client():
    """A local cluster of two single-threaded worker processes, closed at the end."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def fitted():
    """A model on a DataFrame (labs + an embedding, each missing for some rows) with
    string labels and a non-default index, and the frame."""
    X, y = make_multimodal(n=N, labels=["healthy", "sick"])
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(N, 4)) + (y == "sick")[:, None]
    has_labs = ~np.isnan(X["table"]).all(axis=1)
    emb[(np.arange(N) % 6 == 1) & has_labs] = np.nan  # no embedding for these rows
    frame = pd.DataFrame(np.hstack([X["table"], emb]), columns=LABS + EMB,
                         index=pd.Index(1000 + 3 * np.arange(N), name="patient"))
    clf = fast_clf(SPEC, **PARAMS).fit(frame, y)
    return clf, frame


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for _, row in frame.iterrows():
        record = {}
        for name, columns in SPEC.items():
            values = row[columns].astype(float)
            if not values.isna().all():  # a tabular modality's record: {column: value}
                record[name] = values.to_dict()
        out.append(record)
    return out


def _sha256(clf, tmp_path) -> str:
    clf.save(tmp_path / "model")
    return json.loads((tmp_path / "model" / "config.json").read_text())["weights_sha256"]


# -- the same results as one process ---------------------------------------------------------
def test_frame_probabilities_are_those_of_one_process(client, fitted):
    clf, frame = fitted
    ddf = dd.from_pandas(frame, npartitions=5)
    proba = mmdask.predict_proba(clf, ddf)
    assert list(proba.columns) == ["proba_healthy", "proba_sick"]
    assert proba.divisions == ddf.divisions and proba.known_divisions
    assert (proba.dtypes == np.float64).all()
    result = client.compute(proba).result()
    assert_array_equal(result.index, frame.index)
    assert result.index.name == "patient"
    assert_allclose(result.to_numpy(), clf.predict_proba(frame), atol=1e-6)
    assert not np.allclose(result.to_numpy(), 0.5, atol=1e-3)  # a real model, not a constant
    # every partition's divisions hold: partition k covers divisions[k] to divisions[k+1]
    for k, part in enumerate(client.gather(client.compute(proba.to_delayed()))):
        assert ddf.divisions[k] <= part.index.min() <= part.index.max() <= ddf.divisions[k + 1]


def test_predict_gives_the_labels_of_one_process(client, fitted):
    clf, frame = fitted
    labels = mmdask.predict(clf, dd.from_pandas(frame, npartitions=4))
    assert labels.name == "prediction"
    result = client.compute(labels).result()
    assert_array_equal(result.to_numpy(), clf.predict(frame))
    assert_array_equal(result.index, frame.index)
    assert labels.dtype == result.dtype  # meta agrees with the partitions


def test_bag_of_records_gives_the_rows_of_one_process(client, fitted):
    clf, frame = fitted
    records = _records(frame)
    assert {len(r) for r in records} == {1, 2}  # some records lack a modality
    bag = db.from_sequence(records, npartitions=5)
    rows = client.compute(mmdask.predict_proba(clf, bag)).result()
    assert len(rows) == N and set(rows[0]) == {"proba_healthy", "proba_sick"}
    got = np.array([[row["proba_healthy"], row["proba_sick"]] for row in rows])
    assert_allclose(got, clf.predict_proba(records), atol=1e-6)
    labels = client.compute(mmdask.predict(clf, bag)).result()
    assert labels == clf.predict(records).tolist()


# dask < 2025 warns that a distributed client is active (the module's cluster fixture)
@pytest.mark.filterwarnings("ignore:Running on a single-machine scheduler:UserWarning")
def test_threaded_scheduler_and_empty_partitions(fitted):
    clf, frame = fitted
    ddf = dd.from_pandas(frame, npartitions=4)
    some = ddf[ddf.index.to_series() < frame.index[20]]  # the last partitions become empty
    with dask.config.set(scheduler="threads"):
        result = mmdask.predict_proba(clf, some).compute()
        labels = mmdask.predict(clf, some).compute()
    expected = clf.predict_proba(frame.iloc[:20])
    assert_allclose(result.to_numpy(), expected, atol=1e-6)
    assert_array_equal(labels.to_numpy(), clf.predict(frame.iloc[:20]))


def test_image_paths_are_read_on_the_workers(client, tmp_path):
    from PIL import Image

    X, y = make_multimodal(n=32, seed=3)
    paths = []
    for i, image in enumerate(X["image"]):
        if image is None:
            paths.append(None)
            continue
        pixels = np.clip(40 * image + 128, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"scan{i:02d}.png")
        paths.append(str(tmp_path / f"scan{i:02d}.png"))
    frame = pd.DataFrame(X["table"], columns=LABS)
    frame["scan"] = pd.Series(paths, dtype=object)
    spec = {"labs": LABS, "scan": "scan"}
    clf = fast_clf(spec, **PARAMS).fit(frame, y)
    assert clf.modalities_["scan"].kind == "image"
    result = client.compute(mmdask.predict_proba(clf, dd.from_pandas(frame, npartitions=3)))
    assert_allclose(result.result().to_numpy(), clf.predict_proba(frame), atol=1e-6)
    del result  # else the cluster keeps the result of this very graph
    # the workers read the files: one that disappears is an error there, naming it
    gone = tmp_path / "scan00.png"
    gone.unlink()
    with pytest.raises(Exception, match="scan00.png"):
        client.compute(mmdask.predict_proba(clf, dd.from_pandas(frame, npartitions=3))).result()


# -- how the model travels -------------------------------------------------------------------
def test_the_model_is_loaded_once_per_worker(client, fitted, tmp_path):
    clf, frame = fitted
    sha = _sha256(clf, tmp_path)
    ddf = dd.from_pandas(frame, npartitions=12)
    here = mmdask._cache_info().get(sha, 0)
    for _ in range(2):
        client.compute(mmdask.predict_proba(clf, ddf)).result()
    loads = {worker: info.get(sha, 0)
             for worker, info in client.run(mmdask._cache_info).items()}
    assert len(loads) == 2
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1, loads
    # the client process loaded nothing more (the cluster did the work)
    assert mmdask._cache_info().get(sha, 0) == here


def test_the_estimator_is_never_pickled(client, fitted, monkeypatch):
    clf, frame = fitted

    def refuse(self, protocol=None):
        raise AssertionError("the estimator was pickled")

    monkeypatch.setattr(MultimodalFusionClassifier, "__reduce_ex__", refuse)
    with pytest.raises(AssertionError, match="was pickled"):
        pickle.dumps(clf)  # the trap works
    ddf = dd.from_pandas(frame, npartitions=3)
    proba = mmdask.predict_proba(clf, ddf)
    # the graph holds the model once, as bytes, whatever the number of partitions
    model_keys = [k for k in dict(proba.__dask_graph__())
                  if str(k[0] if isinstance(k, tuple) else k).startswith("mmfusion-model-")]
    assert len(model_keys) == 1
    result = client.compute(proba).result()
    bag = client.compute(mmdask.predict_proba(clf, db.from_sequence(_records(frame), 3)))
    assert len(bag.result()) == N
    monkeypatch.undo()
    assert_allclose(result.to_numpy(), clf.predict_proba(frame), atol=1e-6)


def test_a_damaged_model_is_refused_on_the_worker(fitted, monkeypatch):
    clf, _ = fitted
    monkeypatch.setattr(mmdask, "_cache", OrderedDict())  # nothing loaded yet
    shipped = mmdask._ship(clf, "cpu")
    weights = bytearray(shipped.weights)
    weights[-1] ^= 1
    damaged = mmdask._ShippedModel(shipped.sha256, shipped.config, bytes(weights), "cpu")
    with pytest.raises(ModelFileError, match="SHA-256"):
        mmdask._model(damaged)
    # under a key that fits the damaged bytes, load()'s own check of config.json refuses it
    relabelled = mmdask._ShippedModel(hashlib.sha256(weights).hexdigest(), shipped.config,
                                      bytes(weights), "cpu")
    with pytest.raises(ModelFileError, match="checksum does not match"):
        mmdask._model(relabelled)
    assert len(mmdask._cache) == 0
    assert mmdask._model(shipped).predict_proba is not None and len(mmdask._cache) == 1


# -- errors ----------------------------------------------------------------------------------
def test_an_unfitted_estimator_is_refused(fitted):
    _, frame = fitted
    ddf = dd.from_pandas(frame, npartitions=2)
    for function in (mmdask.predict_proba, mmdask.predict):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            function(fast_clf(SPEC), ddf)
    with pytest.raises(TypeError, match="must be a fitted MultimodalFusionClassifier. "
                                        "Got LogisticRegression instead"):
        from sklearn.linear_model import LogisticRegression

        mmdask.predict_proba(LogisticRegression(), ddf)


@pytest.mark.parametrize("function", [mmdask.predict_proba, mmdask.predict])
def test_data_of_another_type_is_refused(fitted, function):
    clf, frame = fitted
    with pytest.raises(TypeError, match=r"'data' parameter .* must be a Dask DataFrame .*"
                                        r"Got pandas.* instead\."):
        function(clf, frame)
    series = dd.from_pandas(frame, npartitions=2)["lab0"]
    with pytest.raises(TypeError, match=r"Got dask.*Series instead\. .*\.to_frame\(\)"):
        function(clf, series)


def test_missing_dask_names_the_extra(fitted, monkeypatch):
    clf, frame = fitted
    for name in ("dask", "dask.dataframe", "dask.bag"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[distributed\]"'):
        mmdask.predict_proba(clf, frame)


def test_the_package_imports_without_dask():
    """No module of the package imports dask or distributed at its top level (only
    inside functions), so ``import mmfusion_sklearn`` and its modules never need them."""
    package = Path(mmfusion_sklearn.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.If, ast.Try)):  # e.g. a guarded import
                continue
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom)
                     and node.level == 0 else [])
            if any(n.split(".")[0] in ("dask", "distributed") for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders
    assert "dask" in (package / "dask.py").read_text(encoding="utf-8")  # the check sees it
