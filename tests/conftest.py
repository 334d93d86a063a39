"""Shared fixtures: a small seeded two-modality data set and cheap estimator settings.

Everything here is tiny on purpose (tens of samples, 8x8 images, embed_dim 8): the test
machine has two shared CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmfusion_sklearn import MultimodalFusionClassifier

#: Settings that make a fit take a fraction of a second.
FAST = {
    "embed_dim": 8,
    "max_epochs": 4,
    "pretrain_epochs": 0,
    "early_stopping": False,
    "batch_size": 32,
    "lr": 1e-2,
    "random_state": 0,
}


def quadrant_images(n: int, seed: int = 0):
    """Seeded 8-bit grey 12x12 images whose bright quadrant gives the class, a 3-column
    table carrying it too, and the labels: ``(images, table, y)``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    rng.shuffle(y)
    images = rng.integers(0, 120, size=(n, 12, 12)).astype(np.uint8)
    for i, label in enumerate(y):
        images[i, 6 * label : 6 * label + 6, :6] += 120
    table = rng.normal(size=(n, 3)) + y[:, None]
    return images, table, y


def fast_clf(modalities=None, **params) -> MultimodalFusionClassifier:
    """A MultimodalFusionClassifier with the cheap settings of :data:`FAST`."""
    return MultimodalFusionClassifier(modalities, **{**FAST, **params})


def make_multimodal(
    n: int = 60,
    n_classes: int = 2,
    seed: int = 0,
    signal: float = 1.5,
    missing: bool = True,
    labels=None,
):
    """A seeded two-modality data set: ``{"table": (n, 4), "image": list of 8x8}``.

    Both modalities carry the class: the table through the mean of its columns, the
    image through a class-specific bright quadrant. With ``missing``, every 5th image
    is None and every 7th table row all-NaN (never both for one sample).

    Returns
    -------
    X : dict
        ``{"table": ndarray (n, 4), "image": list of (8, 8) arrays or None}``.
    y : ndarray (n,)
        Class indices, or ``labels[index]`` when ``labels`` is given.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    table = rng.normal(size=(n, 4)) + signal * (y[:, None] - (n_classes - 1) / 2)
    images = rng.normal(size=(n, 8, 8)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = divmod(int(label) % 4, 2)
        images[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 2 * signal
    image_items = list(images)
    if missing:
        for i in range(n):
            if i % 5 == 2:
                image_items[i] = None
            elif i % 7 == 3:
                table[i] = np.nan
    X = {"table": table, "image": image_items}
    if labels is not None:
        y = np.asarray(labels)[y]
    return X, y


def only(X: dict, names) -> tuple[dict, np.ndarray]:
    """Keep the modalities ``names`` of ``X`` and the rows that have one of them.

    Returns the reduced dict and the boolean mask of the rows kept.
    """
    from mmfusion_sklearn import MultimodalData

    names = [names] if isinstance(names, str) else list(names)
    rows = MultimodalData(X).presence[names].any(axis=1).to_numpy()
    index = np.flatnonzero(rows)
    out = {}
    for name in names:
        values = X[name]
        if isinstance(values, list):
            out[name] = [values[i] for i in index]
        elif hasattr(values, "iloc"):
            out[name] = values.iloc[index]
        else:
            out[name] = values[index]
    return out, rows


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Run torch on one intra-op thread for the whole suite, then restore.

    The test networks are tiny: on two (possibly shared) cores one thread is 5-40x
    faster than two, since there is no thread synchronisation against other load.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data():
    """Binary two-modality data with missing images and all-NaN table rows."""
    return make_multimodal()


@pytest.fixture
def data3():
    """Three-class version of :func:`data`."""
    return make_multimodal(n=60, n_classes=3)
