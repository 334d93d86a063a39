"""Decoded image and volume samples: each file decoded once per fit (and per process
or cache folder), never stale, never mutated, bounded; DataLoader workers that live."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import fast_clf, quadrant_images
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image

from mmfusion_sklearn import Modality, clear_sample_cache, set_sample_cache_size
from mmfusion_sklearn._preprocessing import ArrayPreprocessor
from mmfusion_sklearn._training import cache as cache_module
from mmfusion_sklearn._training.cache import SAMPLE_CACHE
from mmfusion_sklearn._training.decoded import SampleReads, sample_namespace

SPEC = {"image": "image", "table": "tabular"}


@pytest.fixture(autouse=True)
def empty_cache():
    """Every test starts and ends with an empty in-process cache and its default bound."""
    clear_sample_cache()
    bound = SAMPLE_CACHE.max_bytes
    yield
    set_sample_cache_size(bound)
    clear_sample_cache()


def _pngs(folder: Path, n: int = 30, seed: int = 0):
    """``quadrant_images`` written as PNG files: ``(X, y, images)``."""
    images, table, y = quadrant_images(n, seed)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return {"image": paths, "table": table}, y, images


@pytest.fixture
def counted_reads(monkeypatch):
    """Rows decoded by ArrayPreprocessor.read in this process."""
    rows: list[int] = []
    original = ArrayPreprocessor.read

    def counting(self, item, row):
        rows.append(row)
        return original(self, item, row)

    monkeypatch.setattr(ArrayPreprocessor, "read", counting)
    return rows


def _fitted_preprocessor(paths, transform=None):
    values = np.array(paths, dtype=object)
    return ArrayPreprocessor("image", "image", transform=transform).fit(
        values, np.ones(len(values), dtype=bool)), values


def _read(preprocessor, values, reads):
    present = np.ones(len(values), dtype=bool)
    return reads.read(preprocessor, values, present, np.arange(len(values)), "raise")[0]


def test_a_changed_file_is_decoded_anew_not_served_stale(tmp_path):
    X, _, images = _pngs(tmp_path, n=6)
    preprocessor, values = _fitted_preprocessor(X["image"])
    reads = SampleReads(sample_namespace(preprocessor), None)
    first = _read(preprocessor, values, reads)
    assert reads.decoded == 6
    assert_array_equal(_read(preprocessor, values, reads), first)
    assert reads.decoded == 6  # every sample from the cache
    changed = (255 - images[2]).astype(np.uint8)
    Image.fromarray(changed).save(values[2])
    stat = os.stat(values[2])  # a later modification time, as a real edit has
    os.utime(values[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    again = _read(preprocessor, values, reads)
    assert reads.decoded == 7
    assert_array_equal(again[2, 0], changed.astype(np.float32))
    assert_array_equal(again[[0, 1, 3, 4, 5]], first[[0, 1, 3, 4, 5]])


def _double(image):
    return image * 2


def test_another_transform_is_another_namespace(tmp_path):
    X, _, _ = _pngs(tmp_path, n=4)
    plain, values = _fitted_preprocessor(X["image"])
    doubled, _ = _fitted_preprocessor(X["image"], transform=_double)
    assert sample_namespace(plain) != sample_namespace(doubled)
    reads = SampleReads(sample_namespace(doubled), None)
    base = _read(plain, values, SampleReads(sample_namespace(plain), None))
    out = _read(doubled, values, reads)
    assert reads.decoded == 4  # nothing taken from the plain transform's entries
    assert_array_equal(out, 2 * base)


def test_a_damaged_cache_file_is_decoded_again_and_rewritten(tmp_path):
    (tmp_path / "images").mkdir()
    X, _, _ = _pngs(tmp_path / "images", n=4)
    preprocessor, values = _fitted_preprocessor(X["image"])
    folder = tmp_path / "cache"
    reads = SampleReads(sample_namespace(preprocessor), str(folder))
    truth = _read(preprocessor, values, reads)
    files = sorted(folder.rglob("*.npy"))
    assert len(files) == 4 and (folder / "mmfusion-samples").is_dir()
    files[0].write_bytes(b"not an array")  # truncated or overwritten
    np.save(files[1], np.zeros((3, 5), dtype=np.float32))  # loadable, wrong shape
    clear_sample_cache()  # another process: only the folder
    again = SampleReads(sample_namespace(preprocessor), str(folder))
    assert_array_equal(_read(preprocessor, values, again), truth)
    assert again.decoded == 2
    clear_sample_cache()
    third = SampleReads(sample_namespace(preprocessor), str(folder))
    _read(preprocessor, values, third)
    assert third.decoded == 0  # both rewritten


def test_a_full_disk_warns_once_and_the_fit_goes_on(tmp_path, monkeypatch):
    X, y, _ = _pngs(tmp_path)
    original = cache_module.FeatureCache.put

    def full_disk(self, namespace, keys, features, directory=None, memory=True):
        if directory is not None:
            raise OSError(28, "No space left on device")
        return original(self, namespace, keys, features, directory, memory)

    monkeypatch.setattr(cache_module.FeatureCache, "put", full_disk)
    with pytest.warns(UserWarning, match="cannot be written.*No space left"):
        with_folder = fast_clf(SPEC, cache_dir=str(tmp_path / "cache")).fit(X, y)
    clear_sample_cache()
    without = fast_clf(SPEC).fit(X, y)
    assert_allclose(with_folder.predict_proba(X), without.predict_proba(X), atol=1e-6)


def test_a_cache_folder_serves_a_new_process(tmp_path, counted_reads):
    X, y, _ = _pngs(tmp_path)
    folder = str(tmp_path / "cache")
    first = fast_clf(SPEC, cache_dir=folder, max_epochs=2).fit(X, y)
    assert len(counted_reads) == 2 * 30  # the statistics, and one decode each
    clear_sample_cache()  # as a fresh process finds it: only the folder
    counted_reads.clear()
    second = fast_clf(SPEC, cache_dir=folder, max_epochs=2).fit(X, y)
    assert len(counted_reads) == 30  # the statistics only
    assert_allclose(first.predict_proba(X), second.predict_proba(X), atol=1e-6)


def test_augment_draws_every_epoch_from_samples_the_cache_keeps_intact(tmp_path):
    X, y, images = _pngs(tmp_path)
    seen: list[float] = []

    def shift(sample):
        seen.append(float(sample.sum()))
        return sample + np.random.default_rng(len(seen)).normal(size=sample.shape)

    spec = {"image": Modality("image", augment=shift), "table": "tabular"}
    fast_clf(spec, max_epochs=3, ensemble_size=1, early_stopping=False).fit(X, y)
    # every epoch augments every row, always from the decoded (unaugmented) sample
    assert len(seen) == 3 * 30
    sums = sorted(float(image.astype(np.float32).sum()) for image in images)
    assert sorted(seen) == sorted(sums * 3)
    for entry in list(SAMPLE_CACHE._entries.values()):
        assert float(entry.sum()) in sums  # never augmented nor standardised in place


def test_the_bound_holds_and_above_it_files_are_read_per_batch(tmp_path, counted_reads):
    X, y, _ = _pngs(tmp_path)
    one_sample = 4 * 12 * 12
    set_sample_cache_size(10 * one_sample)  # 10 of the 30 samples
    fast_clf(SPEC, max_epochs=3, ensemble_size=1, early_stopping=False).fit(X, y)
    assert SAMPLE_CACHE._bytes <= 10 * one_sample and len(SAMPLE_CACHE) <= 10
    # the statistics, then batches each epoch; the small cache saves what it holds
    assert 30 < len(counted_reads) <= 30 + 3 * 30
    counted_reads.clear()
    set_sample_cache_size(0)
    assert len(SAMPLE_CACHE) == 0
    fast_clf(SPEC, max_epochs=3, ensemble_size=1, early_stopping=False).fit(X, y)
    assert len(counted_reads) == 30 + 3 * 30 and len(SAMPLE_CACHE) == 0


def test_set_sample_cache_size_checks_its_argument():
    for bad in (-1, 1.5, "1GB", True, None):
        with pytest.raises(ValueError, match="max_bytes must be an integer >= 0"):
            set_sample_cache_size(bad)


def test_training_workers_live_for_every_epoch(tmp_path, monkeypatch):
    X, y, _ = _pngs(tmp_path)
    log = tmp_path / "pids.txt"
    original = ArrayPreprocessor.read

    def logging_read(self, item, row):
        with open(log, "a") as stream:  # from each DataLoader worker process
            stream.write(f"{os.getpid()}\n")
        return original(self, item, row)

    monkeypatch.setattr(ArrayPreprocessor, "read", logging_read)
    set_sample_cache_size(0)  # read every epoch, in the workers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast_clf(SPEC, max_epochs=4, ensemble_size=1, early_stopping=False,
                 num_workers=2, batch_size=8).fit(X, y)
    readers = log.read_text().split()
    pids = set(readers) - {str(os.getpid())}
    assert len(readers) - readers.count(str(os.getpid())) == 4 * 30  # every epoch read
    assert len(pids) == 2  # two workers for the four epochs, not two per epoch


def test_prediction_takes_held_samples_and_keeps_no_new_ones(tmp_path, counted_reads):
    X, y, _ = _pngs(tmp_path)
    clf = fast_clf(SPEC, max_epochs=1).fit(X, y)
    held = len(SAMPLE_CACHE)
    counted_reads.clear()
    clf.predict_proba(X)
    assert counted_reads == []  # every training file is held already
    (tmp_path / "new").mkdir()
    other, _, _ = _pngs(tmp_path / "new", seed=1)
    clf.predict_proba(other)
    clf.predict_proba(other)
    assert len(counted_reads) == 2 * 30  # new files: decoded in each streamed pass
    assert len(SAMPLE_CACHE) == held  # and not kept: prediction memory stays flat
