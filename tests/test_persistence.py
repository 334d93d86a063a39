"""save() and load(): atomic writes, checksums, config schema, order-independence, old formats.

A model folder that was damaged or edited must be an error naming the file and the
field, never a silently different model or a huge allocation.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast_clf, make_multimodal
from numpy.testing import assert_array_equal

import mmfusion_sklearn
from mmfusion_sklearn import MultimodalFusionClassifier
from mmfusion_sklearn._persistence import files as _files
from mmfusion_sklearn._persistence import schema as _schema
from mmfusion_sklearn._persistence.schema import ModelFileError

CONFIG, WEIGHTS = "config.json", "model.safetensors"


@pytest.fixture(scope="module")
def basic():
    """A tiny fitted model on the dict data (int labels), and its data."""
    X, y = make_multimodal(n=30)
    return fast_clf(max_epochs=2).fit(X, y), X


@pytest.fixture(scope="module")
def ordered():
    """A model whose modality order is not alphabetical, with two categorical columns
    (also not alphabetical), an embedding and class weights: everything that a JSON
    rewrite could reorder."""
    X, y = make_multimodal(n=30, labels=["no", "yes"])
    rows = np.arange(30)
    clinical = pd.DataFrame({
        "x1": X["table"][:, 0], "site": np.where(rows % 3, "left", "right"),
        "arm": np.where(rows % 2, "b", "a"), "x2": X["table"][:, 1],
    })
    data = {"scan": X["image"], "clinical": clinical,
            "emb": np.random.default_rng(1).normal(size=(30, 5)) + (y == "yes")[:, None]}
    clf = fast_clf({"scan": "image", "clinical": "tabular", "emb": "embedding"},
                   max_epochs=2, class_weight={"yes": 2.0, "no": 1.0}).fit(data, y)
    return clf, data


def _saved(clf, tmp_path):
    folder = tmp_path / "model"
    clf.save(folder)
    return folder


def _config(folder):
    return json.loads((folder / CONFIG).read_text())


def _write_config(folder, config, **dumps):
    (folder / CONFIG).write_text(json.dumps(config, **dumps))


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _data_start(path):
    """Offset of the first tensor byte of a safetensors file (after its header)."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def _rewrite_weights(folder, edit):
    """Apply ``edit`` to the weights dict and store it with a matching checksum."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / WEIGHTS))
    save_file(edit(weights), str(folder / WEIGHTS))
    config = _config(folder)
    config["weights_sha256"] = _sha256(folder / WEIGHTS)
    _write_config(folder, config)


# -- what save writes ----------------------------------------------------------------------
def test_config_records_versions_checksum_and_order(ordered, tmp_path):
    clf, _ = ordered
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    assert config["format_version"] == 3
    assert config["package_version"] == mmfusion_sklearn.__version__
    assert config["weights_sha256"] == _sha256(folder / WEIGHTS)
    assert config["modality_order"] == ["scan", "clinical", "emb"]


def test_save_creates_missing_parent_folders(basic, tmp_path):
    clf, X = basic
    clf.save(tmp_path / "a" / "b" / "model")
    loaded = MultimodalFusionClassifier.load(tmp_path / "a" / "b" / "model")
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# -- atomic save ----------------------------------------------------------------------------
@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "ctrl-c"])
def test_failed_save_leaves_the_previous_model_intact(basic, tmp_path, monkeypatch, error):
    import safetensors.torch

    clf, X = basic
    folder = _saved(clf, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    other = fast_clf(max_epochs=1, random_state=1).fit(X, clf.classes_[np.arange(30) % 2])

    def half_write(tensors, filename, *args, **kwargs):
        with open(filename, "wb") as stream:
            stream.write(b"\x00" * 100)  # half a file, then the failure
        raise error

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(type(error), match=str(error) or None):
        other.save(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    assert_array_equal(MultimodalFusionClassifier.load(folder).predict_proba(X),
                       clf.predict_proba(X))


def test_overwrite_replaces_the_whole_model(basic, ordered, tmp_path):
    first, _ = ordered
    second, X = basic
    folder = _saved(first, tmp_path)
    second.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG, WEIGHTS]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # old and temp folders gone
    loaded = MultimodalFusionClassifier.load(folder)
    assert list(loaded.modalities_) == ["table", "image"]
    assert_array_equal(loaded.predict_proba(X), second.predict_proba(X))


def test_save_into_an_empty_existing_folder(basic, tmp_path):
    clf, X = basic
    (tmp_path / "model").mkdir()
    folder = _saved(clf, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG, WEIGHTS]


@pytest.mark.parametrize("files", [
    {"notes.txt": "my notes"},
    {CONFIG: "{}", WEIGHTS: "x"},  # e.g. another library's model folder
    {CONFIG: '{"format_version": 3, "estimator": "X"}', "data.csv": "1,2"},
    {WEIGHTS: "x"},
], ids=["other-file", "foreign-config", "model-plus-file", "weights-only"])
def test_save_refuses_a_folder_it_did_not_write(basic, tmp_path, files):
    clf, _ = basic
    folder = tmp_path / "model"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(FileExistsError, match=r"(?s)holds files that save\(\) did not write"):
        clf.save(folder)
    assert {p.name: p.read_text() for p in folder.iterdir()} == files
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_save_refuses_a_file_path(basic, tmp_path):
    clf, _ = basic
    (tmp_path / "model").write_text("data")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        clf.save(tmp_path / "model")
    assert (tmp_path / "model").read_text() == "data"


# -- checksum ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n_bytes", [1, 200])
def test_flipped_weight_bytes_fail_the_checksum(basic, tmp_path, n_bytes):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    data = bytearray((folder / WEIGHTS).read_bytes())
    start = _data_start(folder / WEIGHTS)
    positions = np.random.default_rng(0).choice(len(data) - start, n_bytes, replace=False)
    for position in start + positions:
        data[position] ^= 0xFF
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model\.safetensors'.*checksum does not match"):
        MultimodalFusionClassifier.load(folder)


def test_a_file_without_checksum_loads_unchecked(basic, tmp_path):
    clf, X = basic
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    del config["weights_sha256"]  # as written before checksums were recorded
    _write_config(folder, config)
    assert_array_equal(MultimodalFusionClassifier.load(folder).predict_proba(X),
                       clf.predict_proba(X))


def test_truncated_weights_without_checksum_name_the_file(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    del config["weights_sha256"]
    _write_config(folder, config)
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors'.*tensor .* data offsets"):
        MultimodalFusionClassifier.load(folder)


# -- config schema -----------------------------------------------------------------------------
def _set(*keys, value):
    def edit(config):
        target = config
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _delete(*keys):
    def edit(config):
        target = config
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return edit


CONFIG_EDITS = {
    "unknown-key": (_set("pickle", value="cos\nsystem"), r"key 'pickle' is unknown"),
    "missing-key": (_delete("classes"), r"classes is missing"),
    "key-type": (_set("params", value=[]), r"params must be an object, not a list"),
    "estimator": (_set("estimator", value="Other"), r"estimator is 'Other'"),
    "format-type": (_set("format_version", value="3"), r"format_version is '3'"),
    "unknown-param": (_set("params", "depth", value=3), r"params\.depth is not a parameter"),
    "negative-lr": (_set("params", "lr", value=-1),
                    r"params\.lr is invalid: The 'lr' parameter .* Got -1"),
    "fusion": (_set("params", "fusion", value="x"), r"params\.fusion is invalid.*'x'"),
    "float-embed-dim": (_set("params", "embed_dim", value=8.0), r"params\.embed_dim"),
    "param-modalities": (_set("params", "modalities", value=["table", "audio"]),
                         r"params\.modalities declares \['audio', 'table'\]"),
    "class-weight": (_set("params", "class_weight", value={"__items__": [[0, -1.0]]}),
                     r"params\.class_weight must be"),
    "classes-dtype": (_set("classes_dtype", value="<M8[ns]"), r"classes_dtype is '<M8\[ns\]'"),
    "classes-vs-dtype": (_set("classes_dtype", value="|b1"), r"classes holds 0, which is not"),
    "string-classes": (_set("classes", value=["0", "1"]), r"classes holds '0'"),
    "one-class": (_set("classes", value=[0]), r"classes must hold at least 2 labels"),
    "unsorted-classes": (_set("classes", value=[1, 0]), r"classes must be sorted and distinct"),
    "duplicate-classes": (_set("classes", value=[1, 1]), r"classes must be sorted and distinct"),
    "more-classes-than-head": (_set("classes", value=[0, 1, 2]),
                               r"classes holds 3 labels, but the classifier head in "
                               r"model\.safetensors has 2 outputs"),
    "ensemble-size": (_set("ensemble_size", value=3),
                      r"ensemble_size is 3, but model\.safetensors holds the members \[0\]"),
    "ensemble-size-zero": (_set("ensemble_size", value=0), r"ensemble_size is 0"),
    "modality-kind": (_set("modalities", "image", "kind", value="audio"),
                      r"modalities\.image\.kind must be one of"),
    "modality-field": (_set("modalities", "image", "encoder", value="x"),
                       r"modalities\.image must be an object with keys"),
    "modality-order": (_set("modality_order", value=["table", "table"]),
                       r"modality_order must list each modality"),
    "preprocessor-keys": (_set("preprocessors", "table", "evil_", value=1),
                          r"preprocessors\.table must have the keys"),
    "preprocessor-kind": (_set("preprocessors", "image", "kind", value="tabular"),
                          r"preprocessors\.image\.kind must be 'image'"),
    "preprocessor-mean": (_set("preprocessors", "table", "mean_", value=[0.0]),
                          r"preprocessors\.table\.mean_ has an invalid"),
    "preprocessor-scale": (_set("preprocessors", "image", "scale_", value=[0.0]),
                           r"preprocessors\.image\.scale_ has an invalid"),
    "preprocessor-missing": (_delete("preprocessors", "image"),
                             r"preprocessors has the modalities \['table'\]"),
    "negative-shape": (_set("input_shapes", "table", value=[-4]), r"input_shapes\.table must be"),
    "shape-type": (_set("input_shapes", "table", value="4"), r"input_shapes\.table must be"),
    "huge-shape": (_set("input_shapes", "image", value=[1, 10**6, 10**6]),
                   r"input_shapes\.image must be a list of positive ints of at most"),
    "shape-vs-preprocessing": (_set("input_shapes", "table", value=[5]),
                               r"input_shapes\.table is \[5\], but the preprocessing .* \[4\]"),
    "shape-missing": (_delete("input_shapes", "table"), r"input_shapes has the modalities"),
    "history": (_set("history", value=[{"stage": 1}]), r"history\[0\] is not a valid"),
    "checksum-text": (_set("weights_sha256", value="abc"), r"weights_sha256 must be 64"),
}


@pytest.mark.parametrize("edit, match", CONFIG_EDITS.values(), ids=CONFIG_EDITS.keys())
def test_invalid_config_is_an_error_naming_file_and_field(basic, tmp_path, edit, match):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    edit(config)
    _write_config(folder, config)
    with pytest.raises(ValueError, match=r"(?s)config\.json'.*" + match):
        MultimodalFusionClassifier.load(folder)


def test_huge_embed_dim_is_refused_before_any_allocation(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    config["params"]["embed_dim"] = 10**9
    _write_config(folder, config)
    start = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"config\.json'.*params\.embed_dim is 1000000000, "
                                             r"but the tokens in model\.safetensors are 8 wide"):
            MultimodalFusionClassifier.load(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 50 * 2**20


@pytest.mark.parametrize("text, match", [
    ("{not json", r"config\.json': it is not valid JSON"),
    ("[1, 2]", r"config\.json': the file must hold a JSON object"),
    ('{"format_version": 3, "format_version": 3}', r"key 'format_version' appears twice"),
], ids=["not-json", "not-object", "duplicate-key"])
def test_unreadable_config(basic, tmp_path, text, match):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    (folder / CONFIG).write_text(text)
    with pytest.raises(ValueError, match=match):
        MultimodalFusionClassifier.load(folder)


def test_newer_format_names_both_versions(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    config.update(format_version=4, package_version="9.0", future_key=1)
    _write_config(folder, config)
    version = mmfusion_sklearn.__version__.replace(".", r"\.")
    with pytest.raises(ValueError, match=rf"saved in format 4 by mmfusion_sklearn 9\.0; this "
                                         rf"version \({version}\) reads formats 1, 2, 3"):
        MultimodalFusionClassifier.load(folder)


# -- the weights against the config ------------------------------------------------------------
def test_weights_wider_than_the_config_says(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    _rewrite_weights(folder, lambda w: {**w, "members.0.tokens.tokens": torch.zeros(2, 9)})
    with pytest.raises(ValueError, match=r"config\.json'.*params\.embed_dim is 8, but the "
                                         r"tokens in model\.safetensors are 9 wide"):
        MultimodalFusionClassifier.load(folder)


def test_weights_of_another_architecture(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    config["params"]["fusion"] = "transformer"
    _write_config(folder, config)
    with pytest.raises(ValueError, match=r"model\.safetensors'.*do not match the network "
                                         r"that config\.json describes \(check params\.fusion\)"):
        MultimodalFusionClassifier.load(folder)


def test_missing_or_extra_tensor(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    _rewrite_weights(folder, lambda w: {k: v for k, v in w.items()
                                        if k != "members.0.encoders.0.net.0.bias"})
    with pytest.raises(ValueError, match=r"model\.safetensors'.*input_shapes\.table\): "
                                         r"'encoders\.0\.net\.0\.bias' is absent"):
        MultimodalFusionClassifier.load(folder)
    _rewrite_weights(folder, lambda w: {**w, "members.1.tokens.tokens": torch.zeros(2, 8)})
    with pytest.raises(ValueError, match=r"ensemble_size is 1, but .* members \[0, 1\]"):
        MultimodalFusionClassifier.load(folder)


def test_wrong_input_width_in_the_weights(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    _rewrite_weights(folder, lambda w: {**w, "members.0.encoders.0.net.0.weight":
                                        torch.zeros(16, 5)})
    with pytest.raises(ValueError, match=r"check modalities\.table\.kind or input_shapes\.table"
                                         r"\): 'encoders\.0\.net\.0\.weight' is F32 \[16, 5\], "
                                         r"expected F32 \[16, 4\]"):
        MultimodalFusionClassifier.load(folder)


def test_strict_state_dict_errors_name_the_file(basic, tmp_path, monkeypatch):
    from mmfusion_sklearn._persistence import files as _persistence

    clf, _ = basic
    folder = _saved(clf, tmp_path)
    _rewrite_weights(folder, lambda w: {k: v for k, v in w.items()
                                        if k != "members.0.projection.net.1.bias"})
    monkeypatch.setattr(_persistence, "_check_architecture", lambda *args: None)
    with pytest.raises(ValueError, match=r"(?s)model\.safetensors'.*member 0's weights do not fit"
                                         r".*projection\.net\.1\.bias"):
        MultimodalFusionClassifier.load(folder)


# -- order of the JSON -------------------------------------------------------------------------
def _reversed(value):
    """Every JSON object's keys and every ``__items__`` list in reverse order."""
    if isinstance(value, dict):
        return {k: (v[::-1] if k == "__items__" else _reversed(v))
                for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


@pytest.mark.parametrize("rewrite", [
    lambda config: json.dumps(config, sort_keys=True),
    lambda config: json.dumps(_reversed(config)),
], ids=["sort-keys", "reversed"])
def test_predictions_do_not_depend_on_the_order_of_json_keys(ordered, tmp_path, rewrite):
    clf, data = ordered
    folder = _saved(clf, tmp_path)
    (folder / CONFIG).write_text(rewrite(_config(folder)))
    loaded = MultimodalFusionClassifier.load(folder)
    assert list(loaded.modalities_) == ["scan", "clinical", "emb"]
    assert list(loaded.modalities) == ["scan", "clinical", "emb"]
    assert list(loaded._preprocessors["clinical"].categories_) == ["site", "arm"]
    assert_array_equal(loaded.predict_proba(data), clf.predict_proba(data))
    assert loaded.get_params() | {"device": None} == clf.get_params() | {"device": None}


# -- older formats -----------------------------------------------------------------------------
def _old_format(folder, version, names):
    """Rewrite a saved folder as format 1 or 2 wrote it: encoders under their modality's
    name, no modality order, version or checksum; format 1 one unprefixed network."""
    from safetensors.torch import load_file, save_file

    def old_key(key):
        if version == 1:
            key = key.removeprefix("members.0.")
        for i, name in enumerate(names):
            key = key.replace(f"encoders.{i}.", f"encoders.{name}.")
        return key

    weights = load_file(str(folder / WEIGHTS))
    save_file({old_key(k): v for k, v in weights.items()
               if version == 2 or k.startswith("members.0.")}, str(folder / WEIGHTS))
    config = _config(folder)
    for key in ("modality_order", "package_version", "weights_sha256"):
        del config[key]
    config["format_version"] = version
    if version == 1:
        del config["ensemble_size"]
    _write_config(folder, config)


@pytest.mark.parametrize("version", [1, 2])
def test_older_formats_still_load(ordered, tmp_path, version):
    clf, data = ordered
    folder = _saved(clf, tmp_path)
    _old_format(folder, version, list(clf.modalities_))
    loaded = MultimodalFusionClassifier.load(folder)
    assert list(loaded.modalities_) == list(clf.modalities_)
    assert_array_equal(loaded.predict_proba(data), clf.predict_proba(data))


def test_older_format_cannot_be_reordered(ordered, tmp_path):
    clf, _ = ordered
    folder = _saved(clf, tmp_path)
    _old_format(folder, 2, list(clf.modalities_))
    config = _config(folder)
    config["modality_order"] = ["emb", "clinical", "scan"]
    _write_config(folder, config)
    with pytest.raises(ValueError, match=r"config\.json'.*modality_order is not part of "
                                         r"format 2"):
        MultimodalFusionClassifier.load(folder)


# -- load reads only ---------------------------------------------------------------------------
def test_load_never_modifies_the_files(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)

    def snapshot():
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}

    before = snapshot()
    MultimodalFusionClassifier.load(folder)
    assert snapshot() == before
    config = _config(folder)
    config["params"]["lr"] = -1
    _write_config(folder, config)
    before = snapshot()
    with pytest.raises(ValueError, match=r"params\.lr"):
        MultimodalFusionClassifier.load(folder)
    assert snapshot() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_missing_weights_file(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    (folder / WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors is missing"):
        MultimodalFusionClassifier.load(folder)


def test_loaded_copy_is_independent_of_the_folder(basic, tmp_path):
    clf, X = basic
    folder = _saved(clf, tmp_path)
    loaded = MultimodalFusionClassifier.load(folder)
    shutil.rmtree(folder)
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# -- a model file cannot make load hang, crash or spend -----------------------------------------
def test_a_config_of_many_keys_is_read_in_linear_time(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    # before: the duplicate-key check counted every key in the list of keys (40,000
    # keys took 29 s); 200,000 keys and a repeated one at the end take well under 1 s
    text = (folder / CONFIG).read_text()
    keys = ", ".join(f'"k{i}": {i}' for i in range(200_000))
    (folder / CONFIG).write_text(text[:-1] + f', "extra": {{{keys}, "k7": 0}}}}')
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"config\.json'.*key 'k7' appears twice"):
        MultimodalFusionClassifier.load(folder)
    assert time.perf_counter() - start < 10


def test_config_size_and_item_limits(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    config["history"] = [0] * (_schema.MAX_JSON_ITEMS + 1)  # refused before parsing
    _write_config(folder, config, separators=(",", ":"))
    with pytest.raises(ModelFileError, match=r"config\.json': it holds more than 2000000 "
                                             r"JSON keys and values"):
        MultimodalFusionClassifier.load(folder)
    # a file larger than the limit (sparse: no disk used) is refused by its size, unread
    with open(folder / CONFIG, "r+b") as stream:
        stream.truncate(_schema.MAX_CONFIG_BYTES + 1)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"config\.json': the file is larger than "
                                                 r"67108864 bytes"):
            MultimodalFusionClassifier.load(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def _weights_with_header(folder, header: bytes):
    """Replace the weights' header by ``header`` (the checksum recorded to match)."""
    path = folder / WEIGHTS
    data = path.read_bytes()
    path.write_bytes(len(header).to_bytes(8, "little") + header + data[_data_start(path):])
    config = _config(folder)
    config["weights_sha256"] = _sha256(path)
    _write_config(folder, config)


@pytest.mark.parametrize("where", ["config", "header"])
def test_deeply_nested_json_is_a_model_file_error(basic, tmp_path, where):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    deep = "[" * 100_000 + "]" * 100_000  # a RecursionError in json.loads, before
    if where == "config":
        (folder / CONFIG).write_text(f'{{"history": {deep}}}')
        match = r"config\.json': it nests arrays and objects more than 64 levels deep"
    else:
        _weights_with_header(folder, f'{{"x": {deep}}}'.encode())
        match = r"model\.safetensors': the header nests arrays and objects more than 64"
    with pytest.raises(ModelFileError, match=match):
        MultimodalFusionClassifier.load(folder)
    folder = _saved(clf, tmp_path / "again")
    config = _config(folder)
    config["history"] = json.loads("[" * 63 + "]" * 63)  # in the object: 64 levels, the
    _write_config(folder, config)  # limit, not refused: the schema's checks follow
    with pytest.raises(ModelFileError, match=r"config\.json'.*history\[0\] is not a valid"):
        MultimodalFusionClassifier.load(folder)


def _load_peak(folder, match):
    """Load ``folder``, expecting a ModelFileError matching ``match``; the peak of
    Python memory allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=match):
            MultimodalFusionClassifier.load(folder)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_weights_larger_than_their_header_announces_are_not_read(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    # a link to a large file (sparse: no disk used) whose start is a valid weights file
    big = tmp_path / "big.bin"
    shutil.copy(folder / WEIGHTS, big)
    size = big.stat().st_size
    with open(big, "r+b") as stream:
        stream.truncate(64 * 2**20)
    (folder / WEIGHTS).unlink()
    (folder / WEIGHTS).symlink_to(big)
    peak = _load_peak(folder, rf"model\.safetensors': the file is {64 * 2**20} bytes, but "
                              rf"its header announces {size} \(8 \+ a \d+-byte header")
    assert peak < 16 * 2**20  # before: the whole file was read, then checked
    # a header length beyond the file
    with open(big, "r+b") as stream:
        stream.write((2**62).to_bytes(8, "little"))
    _load_peak(folder, r"model\.safetensors': the header claims 4611686018427387904 bytes")


def test_weights_beyond_what_the_network_needs_are_not_read(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    # a valid safetensors file, its checksum recorded, with 16 MiB more than the network
    # that config.json describes has: refused from its header, before its data are read
    _rewrite_weights(folder, lambda w: {**w, "members.0.spare": torch.zeros(4 * 2**20)})
    peak = _load_peak(folder, r"model\.safetensors'.*do not match the network that config"
                              r"\.json describes .*'spare' is F32 \[4194304\], expected absent")
    assert peak < 8 * 2**20


def test_machine_settings_are_never_taken_from_the_file(basic, tmp_path):
    clf, X = basic
    folder = _saved(clf, tmp_path)
    config = _config(folder)
    machine = {"num_workers": 40, "cache_dir": "/etc", "n_threads": 64, "verbose": 3,
               "distributed": True, "device": "cuda:7"}
    config["params"].update(machine, batch_size=7, precision="bf16-mixed")
    _write_config(folder, config)
    for loaded in (MultimodalFusionClassifier.load(folder, device="cpu"),
                   mmfusion_sklearn.load(folder)):
        params = loaded.get_params()
        assert {k: params[k] for k in machine} == {
            "num_workers": 0, "cache_dir": None, "n_threads": None, "verbose": 0,
            "distributed": "auto", "device": "cpu"}
        assert params["batch_size"] == 7 and params["precision"] == "bf16-mixed"  # the model's
        assert loaded.device_ == torch.device("cpu")
        assert loaded.predict_proba(X).shape == (30, 2)
    config["params"]["num_workers"] = -1  # still checked: a damaged file is an error
    _write_config(folder, config)
    with pytest.raises(ModelFileError, match=r"config\.json'.*params\.num_workers is invalid"):
        MultimodalFusionClassifier.load(folder)


@pytest.mark.parametrize("device", ["meta", torch.device("meta")], ids=["str", "torch"])
def test_a_device_that_cannot_hold_weights_is_refused_before_reading(basic, tmp_path, device,
                                                                    monkeypatch):
    clf, _ = basic
    folder = _saved(clf, tmp_path)

    def no_reading(*args, **kwargs):
        raise AssertionError("the files were opened")

    monkeypatch.setattr(_files, "_open_model", no_reading)
    with pytest.raises(ValueError, match=r"The 'device' parameter of MultimodalFusionClassifier"
                                         r"\.load must be 'auto', 'cpu', 'cuda', 'cuda:N', "
                                         r"'mps' .* a 'meta' device"):
        MultimodalFusionClassifier.load(folder, device=device)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_special_files_are_refused_not_waited_for(basic, tmp_path):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    (folder / WEIGHTS).unlink()
    os.mkfifo(folder / WEIGHTS)  # opening it to read would wait for a writer
    with pytest.raises(ModelFileError, match=r"model\.safetensors': the file is not a regular"):
        MultimodalFusionClassifier.load(folder)


# -- save never loses the model --------------------------------------------------------------
def _save_then_die(estimator, target):
    """In a child process: save ``estimator`` by two renames, killed (SIGKILL) between
    them."""
    real_rename = os.rename

    def rename(source, destination):
        real_rename(source, destination)
        if ".old-" in os.path.basename(destination):
            os.kill(os.getpid(), signal.SIGKILL)

    _files._RENAMEAT2[:] = [None]  # no atomic exchange: the two renames
    _files.os.rename = rename
    estimator.save(target)


def _spawn(target, *args):
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    return process


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_save_killed_between_its_renames_loses_nothing(basic, tmp_path, monkeypatch):
    import safetensors.torch

    first, X = basic
    second = fast_clf(max_epochs=1, random_state=1).fit(X, first.classes_[np.arange(30) % 2])
    folder = _saved(first, tmp_path)
    process = _spawn(_save_then_die, second, folder)
    process.join(120)
    assert process.exitcode == -signal.SIGKILL
    left = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert left == [".model.lock", ".model.old", ".model.tmp"]  # no "model": both copies
    # load reads the newest complete copy (before: "config.json is missing")
    for loaded in (MultimodalFusionClassifier.load(folder), mmfusion_sklearn.load(folder)):
        assert_array_equal(loaded.predict_proba(X), second.predict_proba(X))
    # the next save puts it back before anything else: a save that fails loses nothing
    monkeypatch.setattr(safetensors.torch, "save_file", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        first.save(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # leftovers and lock removed
    assert_array_equal(MultimodalFusionClassifier.load(folder).predict_proba(X),
                       second.predict_proba(X))
    monkeypatch.undo()
    first.save(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert_array_equal(MultimodalFusionClassifier.load(folder).predict_proba(X),
                       first.predict_proba(X))


def test_a_save_removes_only_the_leftovers_of_killed_saves(basic, tmp_path):
    clf, X = basic
    folder = _saved(clf, tmp_path)
    ours = {".model.tmp-0123456789ab": {WEIGHTS: b"\x00" * 100},  # killed while writing
            ".model.tmp-0123456789ac": {".tmpAb3xYz": b"\x00"},  # safetensors' own temporary
            ".model.old-a1b2c3d4e5f6": {p.name: p.read_bytes() for p in folder.iterdir()},
            ".model.tmp-00000000000f": {}}
    others = {".model.tmp-0123456789": {CONFIG: b"{}"},  # not save's name pattern
              ".model.tmp-0123456789AB": {CONFIG: b"{}"},
              ".other.tmp-0123456789ab": {CONFIG: b"{}"},  # another model's
              ".model.old-ffffffffffff": {CONFIG: b"{}", "notes.txt": b"mine"},  # not only ours
              "model.old-0123456789ab": {CONFIG: b"{}"}}
    for name, files in {**ours, **others}.items():
        (tmp_path / name).mkdir()
        for file, data in files.items():
            (tmp_path / name / file).write_bytes(data)
    (tmp_path / ".model.tmp-eeeeeeeeeeee").symlink_to(tmp_path / ".other.tmp-0123456789ab")
    (tmp_path / ".model.old-dddddddddddd").write_bytes(b"a file")
    clf.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*others, "model", ".model.tmp-eeeeeeeeeeee", ".model.old-dddddddddddd"])
    assert (tmp_path / ".other.tmp-0123456789ab" / CONFIG).read_bytes() == b"{}"
    assert_array_equal(MultimodalFusionClassifier.load(folder).predict_proba(X),
                       clf.predict_proba(X))


def test_without_flock_only_day_old_leftovers_are_removed(basic, tmp_path, monkeypatch):
    clf, _ = basic
    folder = _saved(clf, tmp_path)
    for name in (".model.tmp-0123456789ab", ".model.tmp-ba9876543210"):
        (tmp_path / name).mkdir()
        (tmp_path / name / WEIGHTS).write_bytes(b"\x00" * 100)
    two_days_ago = time.time() - 2 * 86400
    os.utime(tmp_path / ".model.tmp-ba9876543210", (two_days_ago, two_days_ago))
    monkeypatch.setattr(_files, "fcntl", None)  # no lock: another save may be running
    clf.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.tmp-0123456789ab", "model"]


def _save_repeatedly(estimator, target, exchange, start, seconds, results):
    """In a child process: save ``estimator`` to ``target`` for ``seconds`` from when
    every process passed the barrier ``start``; report the number of saves and any error."""
    import tempfile

    if not exchange:
        _files._RENAMEAT2[:] = [None]
    with tempfile.TemporaryDirectory() as warm:  # the lazy imports, before the start
        estimator.save(os.path.join(warm, "model"))
    count, error = 0, None
    start.wait()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            estimator.save(target)
            count += 1
    except Exception as exc:  # reported to the test
        error = f"{type(exc).__name__}: {exc}"
    results.put(("save", count, error))


def _load_repeatedly(target, X, start, seconds, results):
    """In a child process: load ``target``, alternating both load functions, for
    ``seconds`` from the barrier ``start``; report the loaded models' probabilities
    (predicted afterwards, so that the loads are many) and any error."""
    MultimodalFusionClassifier.load(target).predict_proba(X)  # the lazy imports, before
    loaded, error = [], None
    start.wait()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            load = (MultimodalFusionClassifier.load, mmfusion_sklearn.load)[len(loaded) % 2]
            loaded.append(load(target))
        results.put(("load", [model.predict_proba(X) for model in loaded], None))
    except Exception as exc:  # reported to the test
        error = f"{type(exc).__name__}: {exc}"
        results.put(("load", [], error))


@pytest.mark.skipif(_files.fcntl is None, reason="saves are serialised by flock (POSIX)")
def test_concurrent_saves_and_loads_never_fail_or_mix_models(basic, tmp_path):
    first, X = basic
    second = fast_clf(max_epochs=1, random_state=1).fit(X, first.classes_[np.arange(30) % 2])
    expected = [first.predict_proba(X), second.predict_proba(X)]
    folder = _saved(first, tmp_path)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(4, timeout=120), context.Queue()
    # one saver switches folders by the atomic exchange (where Linux has it), the other
    # by two renames, whose gap loads bridge with the complete copies
    processes = [context.Process(target=_save_repeatedly,
                                 args=(model, folder, exchange, start, 3.0, results))
                 for model, exchange in ((first, True), (second, False))]
    processes.append(context.Process(target=_load_repeatedly,
                                     args=(folder, X, start, 3.0, results)))
    for process in processes:
        process.start()
    try:
        start.wait()  # once the children have imported torch: all three run together
        reports = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(60)
            if process.is_alive():
                process.kill()
    assert [error for *_, error in reports] == [None, None, None]
    saves = [count for kind, count, _ in reports if kind == "save"]
    (probabilities,) = [found for kind, found, _ in reports if kind == "load"]
    assert min(saves) >= 3 and len(probabilities) >= 3, (saves, len(probabilities))
    for found in probabilities:  # every load is one whole saved model, never a mix
        assert any(np.allclose(found, e, atol=1e-6) for e in expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
