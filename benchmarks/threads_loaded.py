"""Busy cores: one fit's wall time under each thread setting, on idle and on busy cores.

Other processes holding the cores (another fit, a job scheduler's neighbour, a notebook
kernel) make torch's threads wait for one another at every parallel operation. This
times one default fit per setting, side by side:

- ``n_threads=<cores>``: torch on every core (torch's own default, and the package's
  default before it measured the free cores);
- ``n_threads=1``;
- ``n_threads=None``: the package's default, torch's setting lowered to the cores that
  other processes leave free when the fit starts;

on GSE7390 (genes + clinical tables, 198 patients) and on Br35H MRI images (arrays,
``--images`` of them at 64 px), with the cores idle and then with one busy process per
core (``while True: pass``). Each setting runs once per repeat in an order that rotates
between repeats; the best wall time is reported with its ratio to ``n_threads=1``. Run::

    python -m benchmarks.threads_loaded            # both data sets, 2 repeats
    python -m benchmarks.threads_loaded --quick    # 60 images, 3 epochs, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from typing import Any

import pandas as pd
from skorch.callbacks import Callback

from . import datasets
from ._report import markdown

#: What ``--quick`` changes in the estimator's defaults: short training.
QUICK_PARAMS: dict[str, Any] = {"max_epochs": 3, "pretrain_epochs": 1}


@contextmanager
def busy_cores(count: int):
    """``count`` processes spinning on the CPU for the block's duration."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(count)]
    try:
        time.sleep(1.0)  # their interpreters have started and spin
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


class ThreadCount(Callback):
    """Records torch's thread count at the end of every epoch (in ``SEEN``: the
    estimator may copy its callbacks)."""

    def on_epoch_end(self, net, **kwargs):
        import torch

        SEEN.append(torch.get_num_threads())


#: The thread counts :class:`ThreadCount` saw.
SEEN: list[int] = []


def _fit_seconds(X: Any, y: Any, n_threads: int | None, quick: bool) -> tuple[float, int]:
    import torch

    from mmfusion_sklearn import MultimodalFusionClassifier
    from mmfusion_sklearn._training import cores

    SEEN.clear()
    cores._last = None  # measure anew for every fit: the load changed on purpose
    params = {"random_state": 0, "device": "cpu", "n_threads": n_threads,
              "callbacks": [("threads", ThreadCount())]}
    if quick:
        params.update(QUICK_PARAMS)
    start = time.perf_counter()
    MultimodalFusionClassifier(**params).fit(X, y)
    return time.perf_counter() - start, (SEEN[-1] if SEEN else torch.get_num_threads())


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="default 2 (quick: 1)")
    parser.add_argument("--images", type=int, default=None, help="default 300 (quick: 60)")
    parser.add_argument("--data", nargs="+", choices=("tables", "images"),
                        default=["tables", "images"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 2)
    images = args.images or (60 if args.quick else 300)
    cores = torch.get_num_threads()
    loaders = {
        "GSE7390 tables": lambda: datasets.load_gse7390()[:2],
        f"Br35H {images} images, 64 px": lambda: datasets.load_br35h(
            image_size=64, max_images=images)[:2],
    }
    wanted = [name for key, name in zip(("tables", "images"), loaders, strict=True)
              if key in args.data]
    settings = {f"n_threads={cores}": cores, "n_threads=1": 1, "n_threads=None": None}
    rows = []
    for data_name in wanted:
        X, y = loaders[data_name]()
        for load in ("idle", f"{cores} busy processes"):
            walls: dict[str, list[float]] = {name: [] for name in settings}
            used: dict[str, int] = {}
            with busy_cores(cores) if load != "idle" else nullcontext():
                for repeat in range(repeats):
                    names = list(settings)
                    order = names[repeat % 3:] + names[:repeat % 3]
                    for name in order:
                        wall, used[name] = _fit_seconds(X, y, settings[name], args.quick)
                        walls[name].append(wall)
                        print(f"{data_name}, {load}, {name}: {wall:.1f} s "
                              f"({used[name]} threads)", flush=True)
            single = min(walls["n_threads=1"])
            for name in settings:
                rows.append({"data": data_name, "cores": load, "setting": name,
                             "threads used": used[name],
                             "best wall (s)": round(min(walls[name]), 1),
                             "ratio to n_threads=1": round(min(walls[name]) / single, 2)})
    print(f"\n{cores} torch threads by default, {os.cpu_count()} cores visible, best of "
          f"{repeats}" + (", quick" if args.quick else ""))
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
