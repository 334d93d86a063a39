"""File-backed images and volumes: per-batch reading, workers, transforms, augmentation,
unreadable files, mixed precision, the frozen-feature cache and streamed prediction."""

from __future__ import annotations

import os
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from conftest import fast_clf, quadrant_images
from numpy.testing import assert_allclose
from PIL import Image
from sklearn.model_selection import cross_val_score

from mmfusion_sklearn import (
    Modality,
    MultimodalData,
    MultimodalFusionClassifier,
    clear_feature_cache,
)
from mmfusion_sklearn._preprocessing import ArrayPreprocessor, readers
from mmfusion_sklearn._training.cache import FEATURE_CACHE, clear_sample_cache


@pytest.fixture
def png_data(tmp_path):
    images, table, y = quadrant_images(40)
    paths = []
    for i, image in enumerate(images):
        path = tmp_path / f"img{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths, images, table, y


def _X(paths_or_images, table, missing=(3, 11)):
    items = list(paths_or_images)
    for i in missing:
        items[i] = None
    return {"image": items, "table": table}


SPEC = {"image": "image", "table": "tabular"}


# -- per-batch reading ----------------------------------------------------------------------
def test_files_are_decoded_once_whatever_the_epochs(png_data, monkeypatch):
    paths, _, table, y = png_data
    reads = []
    original = ArrayPreprocessor.read

    def counting(self, item, row):
        reads.append(row)
        return original(self, item, row)

    monkeypatch.setattr(ArrayPreprocessor, "read", counting)
    X = _X(paths, table)
    n_present = sum(v is not None for v in X["image"])
    for epochs in (1, 4):
        clear_sample_cache()
        reads.clear()
        fast_clf(SPEC, max_epochs=epochs).fit(X, y)
        # the channel statistics read each present file once (up to 256 of them), and
        # the fit decodes each once more before its first epoch; the epochs read none
        assert sorted(reads) == sorted(2 * [i for i, v in enumerate(X["image"]) if v])
    # a second fit in this process (a fold, a trial) decodes nothing again
    reads.clear()
    fast_clf(SPEC, max_epochs=2).fit(X, y)
    assert len(reads) == n_present  # the statistics only
    reads.clear()
    fast_clf(SPEC, max_epochs=3).fit(_X(quadrant_images(40)[0], table), y)
    # in-memory items are preprocessed once in fit (statistics, then the tensor the
    # epochs slice), whatever the epochs
    assert len(reads) == 2 * n_present


def test_files_and_arrays_give_the_same_model(png_data):
    paths, images, table, y = png_data
    from_files = fast_clf(SPEC).fit(_X(paths, table), y).predict_proba(_X(paths, table))
    from_arrays = fast_clf(SPEC).fit(_X(images, table), y).predict_proba(_X(images, table))
    assert_allclose(from_files, from_arrays, atol=1e-5)


def test_workers_give_the_same_predictions(png_data):
    paths, _, table, y = png_data
    X = _X(paths, table)
    one = fast_clf(SPEC).fit(X, y)
    two = fast_clf(SPEC, num_workers=2).fit(X, y)
    assert_allclose(one.predict_proba(X), two.predict_proba(X), atol=1e-6)
    assert_allclose(one.predict_proba(X), one.set_params(num_workers=2).predict_proba(X),
                    atol=1e-6)


def test_fit_statistics_of_many_files_come_from_a_subsample(tmp_path, monkeypatch):
    from mmfusion_sklearn._preprocessing import arrays

    monkeypatch.setattr(arrays, "FIT_SAMPLE_FILES", 10)
    images, _, _ = quadrant_images(40)
    paths = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    reads = []
    original = ArrayPreprocessor.read
    monkeypatch.setattr(ArrayPreprocessor, "read",
                        lambda self, item, row: reads.append(row) or original(self, item, row))
    pre = ArrayPreprocessor("img", "image").fit(np.array(paths, dtype=object), np.ones(40, bool))
    assert len(reads) == 10 and reads[0] == 0 and reads[-1] == 39  # evenly spaced
    sub = images[sorted(set(reads))].astype(np.float64)
    assert_allclose(pre.mean_, [sub.mean()], rtol=1e-6)
    assert_allclose(pre.scale_, [sub.std()], rtol=1e-6)


# -- transforms and augmentation --------------------------------------------------------------
def test_transform_applies_in_fit_and_prediction(png_data):
    paths, images, table, y = png_data
    seen = []

    def halve(image):
        seen.append(type(image).__name__)
        return np.asarray(image)[:, ::2, ::2]

    clf = fast_clf({"image": Modality("image", transform=halve), "table": "tabular"})
    clf.fit(_X(paths, table), y)
    assert clf._preprocessors["image"].shape_ == [6, 6]
    seen.clear()
    clf.predict_proba(_X(paths, table))
    assert seen and set(seen) <= {"MetaTensor", "ndarray"}
    # the user's callable is copied, not mutated
    assert clf.modalities_["image"].transform is halve


def test_monai_transforms_resize_and_window(png_data):
    monai = pytest.importorskip("monai")
    from monai.transforms import Compose, ResizeWithPadOrCrop, ScaleIntensityRange

    paths, _, table, y = png_data
    transform = Compose([ScaleIntensityRange(0, 255, 0.0, 1.0, clip=True),
                         ResizeWithPadOrCrop((16, 10))])
    clf = fast_clf({"image": Modality("image", transform=transform), "table": "tabular"})
    proba = clf.fit(_X(paths, table), y).predict_proba(_X(paths, table))
    assert clf._preprocessors["image"].shape_ == [16, 10] and np.isfinite(proba).all()
    assert monai.__version__


def test_augment_runs_in_training_only_and_is_seeded(png_data):
    pytest.importorskip("monai")
    from monai.transforms import RandFlip

    paths, _, table, y = png_data
    calls = {"n": 0}

    class CountingFlip(RandFlip):
        def __call__(self, image, *args, **kwargs):
            calls["n"] += 1
            return super().__call__(image, *args, **kwargs)

    spec = {"image": Modality("image", augment=CountingFlip(prob=0.5, spatial_axis=1)),
            "table": "tabular"}
    X = _X(paths, table)
    a = fast_clf(spec).fit(X, y)
    assert calls["n"] == 4 * 38  # every present training sample, every epoch
    calls["n"] = 0
    proba = a.predict_proba(X)
    assert calls["n"] == 0  # never in prediction
    b = fast_clf(spec, num_workers=2).fit(X, y)
    assert_allclose(proba, b.predict_proba(X), atol=1e-6)  # same draws in workers
    plain = fast_clf(SPEC).fit(X, y).predict_proba(X)
    assert np.abs(plain - proba).max() > 1e-4  # the augmentation did something


def test_augment_that_changes_the_shape_is_an_error(png_data):
    paths, _, table, y = png_data
    spec = {"image": Modality("image", augment=lambda x: x[:, 1:]), "table": "tabular"}
    with pytest.raises(ValueError, match=r"'image', row \d+: augment changed the sample's shape"):
        fast_clf(spec).fit(_X(paths, table), y)


def test_transform_checks():
    with pytest.raises(ValueError, match="transform must be a callable"):
        Modality("image", transform="resize")
    with pytest.raises(ValueError, match="apply to images and volumes"):
        Modality("tabular", transform=np.asarray)


def test_save_refuses_a_transform(png_data, tmp_path):
    paths, _, table, y = png_data
    clf = fast_clf({"image": Modality("image", transform=np.asarray), "table": "tabular"})
    clf.fit(_X(paths, table), y)
    with pytest.raises(ValueError, match="'image' has a transform callable"):
        clf.save(tmp_path / "model")


# -- unreadable files -------------------------------------------------------------------------
def _break(paths, tmp_path):
    """Row 5: random bytes; row 8: a truncated PNG; row 9: text; row 12: no such file."""
    broken = list(paths)
    (tmp_path / "noise.png").write_bytes(os.urandom(300))
    data = open(paths[0], "rb").read()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.jpg").write_text("not an image")
    broken[5] = str(tmp_path / "noise.png")
    broken[8] = str(tmp_path / "cut.png")
    broken[9] = str(tmp_path / "notes.jpg")
    broken[12] = str(tmp_path / "gone.png")
    return broken


@pytest.mark.parametrize("num_workers", [0, 2])
def test_unreadable_file_raises_naming_modality_row_and_file(png_data, tmp_path, num_workers):
    paths, _, table, y = png_data
    clf = fast_clf(SPEC, num_workers=num_workers).fit(_X(paths, table), y)
    for row, name in ((5, "noise.png"), (8, "cut.png"), (9, "notes.jpg")):
        broken = list(paths)
        broken[row] = _break(paths, tmp_path)[row]
        with pytest.raises(ValueError, match=rf"Modality 'image', row {row}: cannot read .*{name}"):
            clf.predict_proba(_X(broken, table))
    broken = list(paths)
    broken[12] = str(tmp_path / "gone.png")
    with pytest.raises(FileNotFoundError, match=r"Modality 'image', row 12: No such file.*gone"):
        clf.predict(_X(broken, table))


def test_unreadable_files_in_fit_raise(png_data, tmp_path):
    paths, _, table, y = png_data
    with pytest.raises(ValueError, match=r"Modality 'image', row 5: cannot read .*noise.png"):
        fast_clf(SPEC).fit(_X(_break(paths, tmp_path), table), y)


def test_on_read_error_missing_treats_unreadable_files_as_missing(png_data, tmp_path):
    paths, _, table, y = png_data
    broken = _break(paths, tmp_path)
    before = list(broken)
    clf = fast_clf(SPEC, on_read_error="missing")
    with pytest.warns(UserWarning, match=r"4 file\(s\) could not be read in fit") as record:
        clf.fit(_X(broken, table), y)
    text = str([w.message for w in record if "could not be read" in str(w.message)][0])
    for name in ("noise.png", "cut.png", "notes.jpg", "gone.png"):
        assert name in text
    assert sum("could not be read" in str(w.message) for w in record) == 1  # one warning
    assert broken == before
    # the same model as one fitted with those images marked missing
    missing = fast_clf(SPEC).fit(_X(paths, table, missing=(3, 11, 5, 8, 9, 12)), y)
    with pytest.warns(UserWarning, match="could not be read in prediction"):
        proba = clf.predict_proba(_X(broken, table))
    expected = missing.predict_proba(_X(paths, table, missing=(3, 11, 5, 8, 9, 12)))
    assert_allclose(proba, expected, atol=1e-5)


def test_sample_with_nothing_readable_is_an_error_in_prediction(png_data, tmp_path):
    paths, _, table, y = png_data
    clf = fast_clf(SPEC, on_read_error="missing").fit(_X(paths, table), y)
    broken = _break(paths, tmp_path)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="Sample 1 has no readable"):
        warnings.simplefilter("ignore")
        clf.predict_proba({"image": broken[4:6]})
    assert clf.predict_proba({"image": broken[4:6], "table": table[4:6]}).shape == (2, 2)


def test_on_read_error_is_validated(png_data):
    paths, _, table, y = png_data
    with pytest.raises(ValueError, match="'on_read_error' parameter"):
        fast_clf(SPEC, on_read_error="skip").fit(_X(paths, table), y)


# -- readers ----------------------------------------------------------------------------------
def test_pillow_reads_what_monai_reads(png_data, tmp_path):
    pytest.importorskip("monai")
    paths, images, _, _ = png_data
    rgb = np.stack([images[0], images[1], images[2]], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(images[0]).convert("P").save(tmp_path / "palette.png")
    files = [paths[0], tmp_path / "rgb.png", tmp_path / "palette.png"]
    with_monai = [readers.as_float_array(readers._monai_loader("raster")(str(p)))
                  for p in files]
    without = [readers.read_file(p) for p in files]
    for a, b in zip(with_monai, without):
        assert a.shape == b.shape and a.dtype == np.float32
        assert_allclose(a, b)
    assert_allclose(without[0][0], images[0])
    assert without[1].shape == (3, 12, 12)


def test_medical_formats_without_monai_name_the_extra(monkeypatch, tmp_path):
    import sys

    pydicom = pytest.importorskip("pydicom")
    readers._monai_loader.cache_clear()
    monkeypatch.setitem(sys.modules, "monai", None)
    monkeypatch.setitem(sys.modules, "monai.data", None)
    monkeypatch.setitem(sys.modules, "monai.transforms", None)
    try:
        path = pydicom.data.get_testdata_file("CT_small.dcm")
        with pytest.raises(ImportError, match=re.escape('pip install -e ".[imaging]"')):
            readers.read_file(path)
    finally:
        readers._monai_loader.cache_clear()


def _series(folder, n_slices=4, offset=0.0):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    folder.mkdir()
    for i in range(n_slices):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.ImagePositionPatient = [0.0, 0.0, float(i) * 2.0]
        ds.InstanceNumber = i + 1
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.PixelData = (ds.pixel_array + int(offset) + 10 * i).astype(np.int16).tobytes()
        ds.save_as(folder / f"slice{n_slices - i}.dcm")  # names in reverse order
    return str(folder)


def test_dicom_series_folders_are_volumes(tmp_path):
    pytest.importorskip("monai")
    volume = readers.read_file(_series(tmp_path / "s0"))
    assert volume.shape == (1, 128, 128, 4)
    # slices ordered by position, not by file name; rescale slope and intercept applied
    steps = np.diff(volume[0].mean(axis=(0, 1)))
    assert_allclose(steps, 10.0, atol=1e-3)
    folders = [_series(tmp_path / f"s{i}", offset=400 * (i % 2)) for i in range(1, 9)]
    y = np.arange(8) % 2
    X = {"ct": folders, "table": np.random.default_rng(0).normal(size=(8, 2))}
    clf = fast_clf({"ct": Modality(image_size=(16, 16, 4)), "table": "tabular"})
    clf.fit(X, y)
    assert clf.modalities_["ct"].kind == "volume"  # a folder is inferred a volume
    assert clf.predict_proba(X).shape == (8, 2)


def test_from_dicom_feeds_the_estimator(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("monai")
    from pydicom.data import get_testdata_file

    from mmfusion_sklearn.io import from_dicom

    paths = []
    for i in range(10):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.PatientAge = f"0{40 + i}Y"
        ds.PixelData = (ds.pixel_array + 300 * (i % 2)).astype(np.int16).tobytes()
        ds.save_as(tmp_path / f"{i}.dcm")
        paths.append(str(tmp_path / f"{i}.dcm"))
    data = from_dicom(paths)
    y = np.arange(10) % 2
    clf = fast_clf({"image": Modality("image", image_size=(32, 32)), "dicom": "tabular"})
    proba = clf.fit(data, y).predict_proba(data)
    assert proba.shape == (10, 2) and np.isfinite(proba).all()


# -- mixed precision --------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_on_the_cpu(png_data, precision):
    paths, images, table, y = png_data
    X = _X(images, table)
    full = fast_clf(SPEC).fit(X, y).predict_proba(X)
    try:
        if precision == "16-mixed":  # emulated on CPUs: slow, and the fit says so
            with pytest.warns(UserWarning, match="16-mixed' on the CPU .* slower"):
                clf = fast_clf(SPEC, precision=precision).fit(X, y)
        else:
            clf = fast_clf(SPEC, precision=precision).fit(X, y)
    except ValueError as exc:  # float16 autocast or its scaler missing on this torch
        assert "bf16-mixed" in str(exc)
        pytest.skip(str(exc))
    mixed = clf.predict_proba(X)
    assert np.isfinite(mixed).all()
    assert not np.array_equal(mixed, full)  # autocast changed the arithmetic ...
    assert np.abs(mixed - full).max() < 0.1  # ... not the model


def test_precision_is_validated(png_data):
    paths, images, table, y = png_data
    with pytest.raises(ValueError, match="'precision' parameter"):
        fast_clf(SPEC, precision="fp8").fit(_X(images, table), y)


# -- frozen-feature cache ---------------------------------------------------------------------
ENCODED = {"rows": 0}


class FrozenCNN(torch.nn.Module):
    """A fixed random conv net that counts the samples it encodes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        ENCODED["rows"] += len(x)
        return self.pool(torch.relu(self.conv(x)))


def _frozen_spec():
    return {"image": Modality("image", encoder=FrozenCNN(), trainable=False),
            "table": "tabular"}


@pytest.fixture
def fresh_cache():
    clear_feature_cache()
    ENCODED["rows"] = 0
    yield
    clear_feature_cache()


def test_cross_validation_encodes_each_sample_once(png_data, fresh_cache):
    paths, _, table, y = png_data
    data = MultimodalData(_X(paths, table))
    n_present = int(data.presence["image"].sum())
    clf = fast_clf(_frozen_spec())
    cross_val_score(clf, data, y, cv=3)
    probes = 3 * 2  # the width probe of each fit: 2 zero samples
    assert ENCODED["rows"] == n_present + probes  # not 3 x n
    ENCODED["rows"] = 0
    cross_val_score(clf, data, y, cv=3)
    assert ENCODED["rows"] == probes
    assert FEATURE_CACHE.hits >= 2 * n_present


def test_cache_key_follows_weights_files_and_transform(png_data, fresh_cache, tmp_path):
    paths, _, table, y = png_data
    X = _X(paths, table)
    fast_clf(_frozen_spec()).fit(X, y)
    ENCODED["rows"] = 0
    other = FrozenCNN()
    with torch.no_grad():
        other.conv.weight.add_(1.0)
    fast_clf({"image": Modality("image", encoder=other, trainable=False),
              "table": "tabular"}).fit(X, y)
    assert ENCODED["rows"] == 38 + 2  # new weights: everything again
    ENCODED["rows"] = 0
    spec = _frozen_spec()
    spec["image"].transform = lambda image: np.asarray(image) / 255.0
    fast_clf(spec).fit(X, y)
    assert ENCODED["rows"] == 38 + 2  # a new transform: everything again
    ENCODED["rows"] = 0
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(paths[0])  # a file changes
    os.utime(paths[0], ns=(10**18, 10**18))
    fast_clf(_frozen_spec()).fit(X, y)
    assert ENCODED["rows"] == 1 + 2


def test_cache_dir_is_shared_across_processes(png_data, fresh_cache, tmp_path):
    paths, _, table, y = png_data
    X = _X(paths, table)
    cache = tmp_path / "cache"
    first = fast_clf(_frozen_spec(), cache_dir=str(cache)).fit(X, y)
    assert len(list(cache.rglob("*.npy"))) == 38
    clear_feature_cache()  # what a new process would see: only the folder
    ENCODED["rows"] = 0
    second = fast_clf(_frozen_spec(), cache_dir=cache).fit(X, y)
    assert ENCODED["rows"] == 2  # the width probe only
    assert_allclose(first.predict_proba(X), second.predict_proba(X), atol=1e-6)
    assert not list(cache.rglob("*.tmp"))
    shutil.rmtree(cache)


def test_frozen_encoder_sees_unstandardised_samples(png_data, fresh_cache):
    paths, images, table, y = png_data
    clf = fast_clf(_frozen_spec()).fit(_X(paths, table), y)
    pre = clf._preprocessors["image"]
    assert not pre.standardize and pre.mean_ == [0.0] and pre.scale_ == [1.0]


# -- streamed prediction ----------------------------------------------------------------------
def test_prediction_batches_do_not_change_results(png_data):
    paths, _, table, y = png_data
    X = _X(paths, table)
    clf = fast_clf(SPEC).fit(X, y)
    whole = clf.set_params(batch_size=64).predict_proba(X)
    assert_allclose(clf.set_params(batch_size=3).predict_proba(X), whole, atol=1e-6)


def test_progress_bars_over_prediction_batches(png_data, capsys):
    paths, _, table, y = png_data
    X = _X(paths, table)
    clf = fast_clf(SPEC, batch_size=8).fit(X, y)
    clf.set_params(verbose=1).predict_proba(X)
    err = capsys.readouterr().err
    assert "predict:" in err and "/5 [" in err  # a bar over the 5 batches
    fast_clf(SPEC, verbose=2).fit(X, y).predict(X)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "classification epoch" in text
    assert not re.search(r"\x1b\[[0-9;]*m", text)  # no raw colour codes


def test_tabular_prediction_warns_once_for_unseen_categories(monkeypatch):
    import pandas as pd

    from mmfusion_sklearn._training import sources as _pipeline

    monkeypatch.setattr(_pipeline, "TABLE_PREDICT_ROWS", 50)  # six batches

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"grade": rng.choice(["a", "b"], 300), "x": rng.normal(size=300)})
    y = (frame["grade"] == "a").to_numpy().astype(int)
    clf = MultimodalFusionClassifier({"t": "tabular"}, max_epochs=1, pretrain_epochs=0,
                                     embed_dim=4, batch_size=16, random_state=0)
    clf.fit({"t": frame}, y)
    test = frame.copy()
    test.loc[::2, "grade"] = "c"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        proba = clf.predict_proba({"t": test})
    assert_allclose(proba[1::2], clf.predict_proba({"t": frame})[1::2])
    unseen = [w for w in record if "not seen in fit" in str(w.message)]
    assert len(unseen) == 1 and "['c']" in str(unseen[0].message)


def test_save_load_keeps_the_file_settings(png_data, tmp_path):
    paths, _, table, y = png_data
    X = _X(paths, table)
    clf = fast_clf({"image": Modality("image", image_size=(8, 8)), "table": "tabular"},
                   precision="bf16-mixed", num_workers=1, on_read_error="missing",
                   cache_dir=tmp_path / "features").fit(X, y)
    clf.save(tmp_path / "model")
    loaded = MultimodalFusionClassifier.load(tmp_path / "model")
    assert loaded.get_params()["precision"] == "bf16-mixed"
    assert loaded.on_read_error == "missing"
    # machine settings (workers, a cache folder) are never taken from a file: the
    # loading machine decides them
    assert loaded.num_workers == 0 and loaded.cache_dir is None
    assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_sample_with_every_file_unreadable_takes_no_part_in_fit(png_data, tmp_path,
                                                               monkeypatch):
    from mmfusion_sklearn._training import engine as _estimator

    paths, _, table, y = png_data
    broken = list(paths)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    broken[0] = str(tmp_path / "bad.png")
    built = []
    original = _estimator.training_dataset
    monkeypatch.setattr(_estimator, "training_dataset",
                        lambda *a, **k: built.append(original(*a, **k)) or built[-1])
    with pytest.warns(UserWarning, match="could not be read in fit"):
        clf = fast_clf({"image": "image"}, on_read_error="missing").fit({"image": broken}, y)
    assert not built[0].present[0].any() and built[0].weight[0] == 0
    assert (built[0].weight[1:] == 1).all()
    assert np.isfinite(clf.predict_proba({"image": paths})).all()


def test_cached_frozen_features_are_not_read_again(png_data, fresh_cache, monkeypatch):
    paths, _, table, y = png_data
    X = _X(paths, table)
    clf = fast_clf(_frozen_spec()).fit(X, y)  # every present image encoded and cached
    reads = []
    original = ArrayPreprocessor.read
    monkeypatch.setattr(ArrayPreprocessor, "read",
                        lambda self, item, row: reads.append(row) or original(self, item, row))
    proba = clf.predict_proba(X)
    assert reads == []  # neither read nor encoded: the cache has them
    clear_feature_cache()
    assert_allclose(clf.predict_proba(X), proba, atol=1e-6)
    assert len(reads) == 38  # without the cache, each present file once
    reads.clear()
    fast_clf(_frozen_spec()).fit(X, y)
    assert len(reads) <= 16  # fit reads a few files for the channel count, not 256


def test_monai_spatial_transforms_on_nifti_volumes(tmp_path):
    nibabel = pytest.importorskip("nibabel")
    pytest.importorskip("monai")
    from monai.transforms import Compose, Orientation, ResizeWithPadOrCrop, Spacing

    rng = np.random.default_rng(0)
    paths, y = [], np.arange(8) % 2
    for i in range(8):
        volume = rng.normal(size=(10, 12, 6)).astype(np.float32) + 2 * y[i]
        affine = np.diag([2.0, 1.0, 3.0, 1.0])  # anisotropic voxels
        affine[0, 0] = -2.0  # and a flipped axis, for Orientation to undo
        path = tmp_path / f"v{i}.nii.gz"
        nibabel.save(nibabel.Nifti1Image(volume, affine), path)
        paths.append(str(path))
    seen = []

    class Spy:
        def __call__(self, image):
            seen.append(tuple(image.shape))
            return image

    transform = Compose([Orientation(axcodes="RAS"), Spacing(pixdim=(2.0, 2.0, 2.0)),
                         ResizeWithPadOrCrop((8, 8, 8)), Spy()])
    clf = fast_clf({"ct": Modality("volume", transform=transform),
                    "table": "tabular"})
    proba = clf.fit({"ct": paths, "table": rng.normal(size=(8, 2))}, y).predict_proba(
        {"ct": paths})
    assert clf._preprocessors["ct"].shape_ == [8, 8, 8] and np.isfinite(proba).all()
    assert seen and set(seen) == {(1, 8, 8, 8)}


def test_undecodable_dicom_pixels_are_unreadable_files(png_data):
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("monai")
    from pydicom.data import get_testdata_file

    lossless = get_testdata_file("SC_rgb_jpeg_gdcm.dcm", download=False)
    if lossless is None:
        pytest.skip("no JPEG Lossless test file in this pydicom")
    try:
        pydicom.dcmread(lossless).pixel_array  # noqa: B018
        pytest.skip("a JPEG Lossless decoder is installed here")
    except Exception:
        pass
    paths, _, table, y = png_data
    broken = list(paths)
    broken[6] = lossless
    clf = fast_clf({"image": Modality("image", image_size=(12, 12)), "table": "tabular"})
    with pytest.raises(ValueError, match=r"'image', row 6: cannot read .*SC_rgb_jpeg_gdcm"):
        clf.fit(_X(broken, table), y)


def test_augment_applies_to_in_memory_images_too(png_data):
    _, images, table, y = png_data
    calls = {"n": 0}

    def flip(image):
        calls["n"] += 1
        return image[:, :, ::-1].copy()

    X = _X(images, table)
    before = [None if v is None else v.copy() for v in X["image"]]
    spec = {"image": Modality("image", augment=flip), "table": "tabular"}
    clf = fast_clf(spec).fit(X, y)
    assert calls["n"] == 4 * 38  # every present training sample, every epoch
    calls["n"] = 0
    proba = clf.predict_proba(X)
    assert calls["n"] == 0
    assert all((a is None and b is None) or np.array_equal(a, b)
               for a, b in zip(X["image"], before))
    plain = fast_clf(SPEC).fit(X, y).predict_proba(X)
    assert np.abs(plain - proba).max() > 1e-4


def test_reports_treat_unreadable_files_as_missing(png_data, tmp_path):
    from mmfusion_sklearn.metrics import (
        missing_modality_report,
        modality_contributions,
        modality_importance,
    )

    paths, _, table, y = png_data
    clf = fast_clf(SPEC, on_read_error="missing").fit(_X(paths, table), y)
    broken = _break(paths, tmp_path)
    table = table.copy()
    table[5] = np.nan  # sample 5: its image is unreadable and it has no table
    X = {"image": broken, "table": table}
    unreadable = clf._unreadable(MultimodalData(X))[:, 0]
    assert unreadable.any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = missing_modality_report(clf, X, y)
        importance = modality_importance(clf, X, y)
        contributions = modality_contributions(clf, X)
    full = report.set_index("modalities").loc["image+table"]
    # the samples left with nothing readable are dropped, not an error
    assert full["n_dropped"] == int((unreadable & np.isnan(table).all(axis=1)).sum()) >= 1
    assert np.isfinite(importance["importance"]).all()
    assert (contributions.loc[unreadable, "image"].fillna(0) == 0).all()


def test_intensities_do_not_depend_on_the_files_bit_depth(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, size=(8, 8)).astype(np.uint8) for _ in range(20)]
    y = np.array([i % 2 for i in range(20)])
    for i, picture in enumerate(pictures):  # class 1 brighter
        pictures[i] = np.clip(picture.astype(int) // 2 + 100 * y[i], 0, 255).astype(np.uint8)
    eight, sixteen = [], []
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(tmp_path / f"p{i}_8.png")
        Image.fromarray(picture.astype(np.uint16) * 257).save(tmp_path / f"p{i}_16.png")
        eight.append(str(tmp_path / f"p{i}_8.png"))
        sixteen.append(str(tmp_path / f"p{i}_16.png"))
    assert Image.open(sixteen[0]).mode.startswith("I")  # really 16-bit files
    clf = fast_clf({"image": "image"}).fit({"image": eight}, y)
    np.testing.assert_allclose(clf.predict_proba({"image": sixteen}),
                               clf.predict_proba({"image": eight}), atol=1e-6)


def test_a_4d_nifti_is_a_named_unreadable_file_not_a_colour_volume(tmp_path):
    nib = pytest.importorskip("nibabel")
    pytest.importorskip("monai")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        path = tmp_path / f"v{i}.nii"
        nib.save(nib.Nifti1Image(rng.random((6, 7, 8)).astype(np.float32), np.eye(4)), path)
        paths.append(str(path))
    series = tmp_path / "series.nii"
    nib.save(nib.Nifti1Image(rng.random((6, 7, 8, 3)).astype(np.float32), np.eye(4)), series)
    y = np.arange(8) % 2
    with pytest.raises(ValueError, match=r"series.nii' is a 4-D NIfTI \(6 x 7 x 8 x 3\): 3 "
                                         "volumes over time"):
        fast_clf({"ct": "volume"}).fit({"ct": paths[:7] + [str(series)]}, y)
    # with on_read_error="missing" it is a missing modality, named in one warning
    table = rng.normal(size=(8, 2))
    with pytest.warns(UserWarning, match="series.nii"):
        fast_clf({"ct": "volume", "t": "tabular"}, on_read_error="missing").fit(
            {"ct": paths[:7] + [str(series)], "t": table}, y)


def test_a_colour_dicom_layout_is_read_as_three_channels():
    from mmfusion_sklearn._preprocessing.arrays import _channels_first

    rgb = np.arange(2 * 3 * 3, dtype=np.float32).reshape(1, 2, 3, 3)  # (1, H, W, 3)
    out = _channels_first(rgb, 2)
    assert out.shape == (3, 2, 3)
    np.testing.assert_array_equal(out[:, 1, 2], rgb[0, 1, 2])
