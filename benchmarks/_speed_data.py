"""The data of the speed benchmark: Fashion-MNIST images, a table derived from the labels,
a continuous target derived from both (for the regressor) and a censored time to event
derived from the labels (for the survival model).

The survival target: the event time of a sample of class ``label`` is exponential with
hazard ``0.05 * exp(0.3 * (label - 4.5))`` (class 9 fails about 15 times as fast as class
0); exactly 30 % of the samples, drawn at random, are censored at a time uniform between
0 and their event time. It is drawn from its own generator (seeded by ``[seed, 1]``), so
that the images, the table and the regressor's target are those of the same seed without
it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets import fashion_mnist_available, load_fashion_mnist

N_TABLE = 20
#: Share of the survival target's samples that are censored.
CENSORED_FRACTION = 0.3


@dataclass
class BenchData:
    """The two modalities of the benchmark, for the largest size asked.

    Parameters
    ----------
    image : ndarray of float32, shape (n, 1, 28, 28)
        Pixels in [0, 1].
    table : ndarray of float32, shape (n, 20)
        Label-dependent columns plus noise.
    y : ndarray of int64, shape (n,)
        Class labels 0-9.
    source : str
        Where the images come from.
    real_images : bool
        False when the images were generated.
    target : ndarray of float64, shape (n,)
        The regressor's continuous target: ``100 + 10 * y + 5 * table[:, 0]`` (the
        class, seen in the image, plus a table column; not standardised, so that the
        regressor's standardisation does work).
    survival : structured ndarray of shape (n,)
        The survival model's target, fields ``event`` (bool) and ``time`` (float64):
        exponential event times whose hazard grows with the label, 30 % censored (see
        :func:`survival_target`).
    """

    image: np.ndarray
    table: np.ndarray
    y: np.ndarray
    source: str
    real_images: bool
    target: np.ndarray
    survival: np.ndarray

    def X(self, n: int) -> dict[str, np.ndarray]:
        """Return the estimator's input for the first ``n`` samples (views, no copy).

        Parameters
        ----------
        n : int
            Samples.

        Returns
        -------
        dict of str to ndarray
            ``{"image": ..., "table": ...}``.
        """
        return {"image": self.image[:n], "table": self.table[:n]}


def make_data(n: int, seed: int = 0, synthetic: bool = False) -> BenchData:
    """Load the first ``n`` Fashion-MNIST images and derive a table from the labels.

    Parameters
    ----------
    n : int
        Number of samples (at most 70,000 with real images).
    seed : int, default=0
        Seed of the table's noise (and of generated images).
    synthetic : bool, default=False
        Generate the images even where the Debian package is installed.

    Returns
    -------
    BenchData
        Images, table, labels, the regression target and the survival target.
    """
    rng = np.random.default_rng(seed)
    if not synthetic and fashion_mnist_available() is not None:
        X, y, info = load_fashion_mnist()
        if n > len(y):
            raise ValueError(f"Fashion-MNIST has {len(y)} images; asked for {n}.")
        image = X["image"][:n].astype(np.float32) / 255.0
        y = y[:n]
        source = f"Fashion-MNIST, real images ({info['path']}, first {n:,} of {len(X['image']):,})"
        real = True
    else:
        # same shape and class structure: a smooth class template plus pixel noise
        y = rng.integers(0, 10, n).astype(np.int64)
        templates = rng.random((10, 1, 7, 7)).repeat(4, axis=2).repeat(4, axis=3)
        image = np.clip(templates[y] + 0.3 * rng.normal(size=(n, 1, 28, 28)), 0, 1)
        image = image.astype(np.float32)
        reason = "--synthetic" if synthetic else "dataset-fashion-mnist is not installed"
        source = f"GENERATED images of the same shape ({reason}); not real data"
        real = False
    centres = rng.normal(size=(10, N_TABLE))
    table = (centres[y] + 1.5 * rng.normal(size=(n, N_TABLE))).astype(np.float32)
    target = 100.0 + 10.0 * y + 5.0 * table[:, 0].astype(np.float64)
    return BenchData(image, table, y, source, real, target, survival_target(y, seed))


def survival_target(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Draw censored event times whose hazard depends on the label.

    The event time of a sample of class ``y`` is exponential with hazard
    ``0.05 * exp(0.3 * (y - 4.5))``; ``round(0.3 * n)`` samples drawn at random are
    censored at a time uniform between 0 and their event time.

    Parameters
    ----------
    y : ndarray of int64, shape (n,)
        Class labels 0-9.
    seed : int, default=0
        Seeds the target's own generator (``[seed, 1]``).

    Returns
    -------
    structured ndarray of shape (n,)
        Fields ``event`` (bool, False for the censored samples) and ``time`` (float64,
        > 0), as scikit-survival makes them.
    """
    rng = np.random.default_rng([seed, 1])
    n = len(y)
    hazard = 0.05 * np.exp(0.3 * (y.astype(np.float64) - 4.5))
    time = rng.exponential(1.0 / hazard)
    censored = np.zeros(n, dtype=bool)
    censored[rng.permutation(n)[: round(CENSORED_FRACTION * n)]] = True
    time[censored] *= rng.uniform(size=int(censored.sum()))
    out = np.empty(n, dtype=[("event", bool), ("time", float)])
    out["event"], out["time"] = ~censored, time
    return out
