"""Distributed tuning: one study on PostgreSQL, filled by 1 worker process or by several.

``tune`` on GSE7390 (genes + clinical, 198 patients; the estimator's defaults, CPU, one
torch thread per worker), ``--trials`` trials of ``--folds``-fold cross-validation over the
learning rate (log-uniform in [3e-4, 3e-3], no pruning, so that every run does the same
work), stored on a throw-away local PostgreSQL server (:mod:`benchmarks._postgres`).
Each setting runs its worker processes (``python -m benchmarks.tuning_distributed
--worker ...``), lets them import and connect, then releases them together; the wall
time runs from that release until the last worker has finished. Printed: the wall time
per setting, the ratio to one worker, the finished trials in the study (MaxTrialsCallback
lets each other worker finish the trial it is running when the study fills up), and the
trials each worker ran. Run::

    python -m benchmarks.tuning_distributed                # 8 trials x 3 folds, 1 vs 2
    python -m benchmarks.tuning_distributed --quick        # short training
    python -m benchmarks.tuning_distributed --workers 1 2 4 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ._report import markdown

ROOT = Path(__file__).resolve().parents[1]
#: What ``--quick`` changes in the estimator's defaults: short training (handed to the
#: worker processes in their spec).
QUICK_PARAMS: dict[str, Any] = {"max_epochs": 10, "pretrain_epochs": 2}


def _worker(spec: dict[str, Any]) -> None:
    """One worker: load the data, wait for the go, tune, print what it ran as JSON."""
    import optuna
    import torch

    from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier
    from mmfusion_sklearn.tuning import tune

    from . import datasets

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y, _ = datasets.load_gse7390()
    params: dict[str, Any] = {"device": "cpu", "random_state": 0, "n_threads": 1,
                              **spec["params"]}
    space = {"lr": optuna.distributions.FloatDistribution(3e-4, 3e-3, log=True)}
    folder = Path(spec["folder"])
    (folder / f"ready-{os.getpid()}").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)
    result = tune(MultimodalFusionClassifier(**params), MultimodalData(X), y,
                  n_trials=spec["trials"], cv=spec["folds"], scoring="roc_auc", search_space=space,
                  storage=spec["url"], study_name=spec["study"],
                  pruner=optuna.pruners.NopPruner(), random_state=spec["seed"], refit=False)
    mine = f":{os.getpid()}"
    ran = [t.number for t in result.study.trials
           if str(t.user_attrs.get("worker", "")).endswith(mine)]
    print(json.dumps({"ran": ran}), flush=True)


def _run(url: str, study: str, workers: int, trials: int, folds: int,
         quick: bool) -> dict[str, Any]:
    import optuna

    with tempfile.TemporaryDirectory() as folder:
        processes = []
        for index in range(workers):
            spec = {"url": url, "study": study, "trials": trials, "folds": folds,
                    "params": QUICK_PARAMS if quick else {}, "seed": index,
                    "folder": folder}
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "benchmarks.tuning_distributed", "--worker",
                 json.dumps(spec)], cwd=ROOT, stdout=subprocess.PIPE, text=True))
        while len(list(Path(folder).glob("ready-*"))) < workers:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError("a worker exited before it was ready")
            time.sleep(0.05)
        start = time.perf_counter()
        Path(folder, "go").touch()
        outputs = [p.communicate()[0] for p in processes]
        wall = time.perf_counter() - start
    if any(p.returncode for p in processes):
        raise RuntimeError(f"a worker failed: {[p.returncode for p in processes]}")
    ran = [len(json.loads(out.strip().splitlines()[-1])["ran"]) for out in outputs]
    loaded = optuna.load_study(study_name=study, storage=url)
    states = [t.state.name for t in loaded.trials]
    return {"wall": wall, "finished": states.count("COMPLETE") + states.count("PRUNED"),
            "left": len(states) - states.count("COMPLETE") - states.count("PRUNED"),
            "ran": ran, "best": float(loaded.best_value)}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one worker's spec
    args = parser.parse_args(argv)
    if args.worker:
        _worker(json.loads(args.worker))
        return
    import optuna

    from ._postgres import postgres_server

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    walls: dict[int, list[float]] = {n: [] for n in args.workers}
    last: dict[int, dict[str, Any]] = {}
    load = os.getloadavg()[0]
    with postgres_server() as url:
        for repeat in range(args.repeats):
            shift = repeat % len(args.workers)
            for n in args.workers[shift:] + args.workers[:shift]:
                out = _run(url, f"r{repeat}-w{n}", n, args.trials, args.folds, args.quick)
                walls[n].append(out["wall"])
                last[n] = out
                print(f"repeat {repeat}: {n} worker(s): {out['wall']:.1f} s, "
                      f"{out['finished']} finished trials ({out['left']} not finished), "
                      f"trials per worker {out['ran']}, best AUROC {out['best']:.4f}",
                      flush=True)
    first = min(walls[args.workers[0]])
    table = pd.DataFrame({
        "worker processes": args.workers,
        "best wall (s)": [round(min(walls[n]), 1) for n in args.workers],
        "ratio to first": [round(min(walls[n]) / first, 2) for n in args.workers],
        "finished trials": [last[n]["finished"] for n in args.workers],
        "trials per worker": [" + ".join(map(str, last[n]["ran"])) for n in args.workers],
        "best mean AUROC": [round(last[n]["best"], 4) for n in args.workers],
    })
    print(f"\n{args.trials} trials x {args.folds} folds on GSE7390, PostgreSQL storage, "
          f"1 torch thread per worker, {os.cpu_count()} cores, best of {args.repeats}, "
          f"load average {load:.1f} before / {os.getloadavg()[0]:.1f} after")
    print(markdown(table))


if __name__ == "__main__":
    main()
