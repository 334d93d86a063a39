"""The displays of mmfusion_sklearn.plotting, and scikit-learn's own displays on our estimator.

Every estimator here is tiny (60 samples, embed_dim 8, a few epochs) and fitted once per
module; the plots are drawn with the Agg backend and closed after each test.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from conftest import fast_clf  # noqa: E402
from pandas.testing import assert_frame_equal  # noqa: E402
from sklearn.calibration import CalibrationDisplay, calibration_curve  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    RocCurveDisplay,
    confusion_matrix,
    roc_auc_score,
)

from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier, plotting  # noqa: E402
from mmfusion_sklearn.metrics import (  # noqa: E402
    missing_modality_report,
    modality_importance,
)
from mmfusion_sklearn.plotting import (  # noqa: E402
    ALL_MODALITIES,
    MissingModalityDisplay,
    ModalityImportanceDisplay,
    TrainingHistoryDisplay,
    missing_rate_report,
)
from mmfusion_sklearn.plotting._rates import _withheld_masks, _withhold  # noqa: E402

N = 60


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def make_data(n: int = N, seed: int = 0):
    """Three numeric modalities carrying the class; every 7th sample lacks "clin"."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.array(["control", "disease"]), n // 2)
    sick = (y == "disease").astype(float)
    clin = rng.normal(size=(n, 2)) + sick[:, None]
    clin[::7] = np.nan  # no clinical record
    gene = rng.normal(size=(n, 3)) - sick[:, None]
    emb = rng.normal(size=(n, 4)) + 0.5 * sick[:, None]
    return {"clin": clin, "gene": gene, "emb": emb}, y


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def clf(data):
    """Plain fit: one member, no early stopping, no contrastive stage."""
    X, y = data
    return fast_clf(device="cpu").fit(X, y)


@pytest.fixture(scope="module")
def staged(data):
    """Two cross-fitted members, early stopping and a contrastive stage."""
    X, y = data
    return fast_clf(device="cpu", pretrain_epochs=2, max_epochs=6, early_stopping=True,
                    patience=2, ensemble_size=2).fit(X, y)


# -- matplotlib is optional ------------------------------------------------------------
def test_module_imports_matplotlib_only_inside_functions():
    for path in sorted(Path(plotting.__file__).parent.glob("*.py")):  # every module
        tree = ast.parse(path.read_text())
        top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not [name for name in names if name.startswith("matplotlib")], path.name


def test_without_matplotlib_the_error_says_how_to_install(monkeypatch, clf, data):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    history = clf.history_
    with pytest.raises(ImportError, match=r'pip install -e "\.\[plots\]"'):
        TrainingHistoryDisplay(history).plot()
    with pytest.raises(ImportError, match="MissingModalityDisplay.from_estimator requires"):
        MissingModalityDisplay.from_estimator(clf, *data)


# -- TrainingHistoryDisplay ------------------------------------------------------------
def test_history_display_draws_each_stage_and_member(staged):
    display = TrainingHistoryDisplay.from_estimator(staged)
    history = staged.history_
    assert [ax.get_title() for ax in display.axes_] == [
        "Contrastive stage (2 members)", "Classification stage (2 members)"]
    assert display.ax_ is display.axes_[-1]
    assert display.figure_ is display.ax_.figure
    for axis, stage in zip(display.axes_, ["contrastive", "classification"]):
        lines = display.lines_[stage]
        assert len(lines["train"]) == len(lines["valid"]) == 2
        assert axis.get_xlabel() == "epoch" and axis.get_ylabel() == "loss"
        rows = history[history["stage"] == stage]
        for member, (train, valid) in enumerate(zip(lines["train"], lines["valid"])):
            part = rows[rows["member"] == member]
            np.testing.assert_allclose(train.get_xdata(), part["epoch"])
            np.testing.assert_allclose(train.get_ydata(), part["train_loss"])
            np.testing.assert_allclose(valid.get_ydata(), part["valid_loss"])
            assert train in axis.lines and train.get_linewidth() < 1.5
    # no pooled loss in the contrastive stage; in classification one bold line
    assert display.lines_["contrastive"]["pooled_valid"] == []
    (pooled,) = display.lines_["classification"]["pooled_valid"]
    rows = history[history["stage"] == "classification"]
    np.testing.assert_allclose(pooled.get_ydata(),
                               rows.groupby("epoch")["pooled_valid_loss"].first())
    assert pooled.get_linewidth() > 2


def test_history_display_marks_the_best_epoch(staged):
    display = TrainingHistoryDisplay.from_estimator(staged)
    assert display.best_epoch == staged.best_epoch_ is not None
    line = display.best_epoch_line_
    assert line in display.ax_.lines
    assert line.get_xdata()[0] == staged.best_epoch_
    low, high = display.ax_.get_xlim()
    assert low <= staged.best_epoch_ <= high
    labels = display.ax_.get_legend_handles_labels()[1]
    assert f"best epoch: {staged.best_epoch_}" in " ".join(labels)


def test_history_display_without_early_stopping(clf):
    display = TrainingHistoryDisplay.from_estimator(clf)
    assert len(display.axes_) == 1 and display.ax_.get_title() == "Classification stage"
    lines = display.lines_["classification"]
    assert len(lines["train"]) == 1 and lines["valid"] == [] and lines["pooled_valid"] == []
    assert display.best_epoch is None and display.best_epoch_line_ is None
    assert lines["train"][0].get_linewidth() > 1.5  # one member: a normal line


def test_history_display_draws_into_the_given_axes(clf, staged):
    figure, ax = plt.subplots()
    display = TrainingHistoryDisplay.from_estimator(clf, ax=ax)
    assert display.ax_ is ax and display.figure_ is figure
    assert display.lines_["classification"]["train"][0] in ax.lines
    # two stages: two axes, or a single stage chosen
    figure, axes = plt.subplots(1, 2)
    display = TrainingHistoryDisplay(staged.history_).plot(ax=axes)
    assert list(display.axes_) == list(axes) and display.figure_ is figure
    assert axes[0].lines and axes[1].lines
    figure, ax = plt.subplots()
    display = TrainingHistoryDisplay.from_estimator(staged, ax=ax, stages="classification")
    assert display.ax_ is ax and list(display.lines_) == ["classification"]


def test_history_display_errors(staged, data):
    figure, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"draws 2 panel\(s\) .*contrastive, "
                                         r"classification.* Got 1 instead"):
        TrainingHistoryDisplay.from_estimator(staged, ax=ax)
    with pytest.raises(ValueError, match=r"'stages' parameter must name stages"):
        TrainingHistoryDisplay(staged.history_).plot(stages="pretraining")
    with pytest.raises(ValueError, match=r"lacks the columns \['train_loss'\]"):
        TrainingHistoryDisplay(staged.history_.drop(columns="train_loss")).plot()
    with pytest.raises(NotFittedError):
        TrainingHistoryDisplay.from_estimator(MultimodalFusionClassifier())


# -- missing_rate_report -------------------------------------------------------------
def test_withheld_masks_keep_a_modality_and_are_nested():
    rng = np.random.default_rng(0)
    presence = rng.random((50, 3)) < 0.8
    presence[~presence.any(axis=1), 0] = True
    draw = rng.random(presence.shape)
    previous = None
    for rate in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0):
        masks = _withheld_masks(presence, draw, rate)
        assert len(masks) == 4
        for j, mask in enumerate(masks):
            assert not (mask & ~presence).any()  # only present values are withheld
            assert (presence & ~mask).any(axis=1).all()  # every sample keeps one
            if j < 3:  # one modality: its own column only, round(rate * n_j) if it can
                assert not np.delete(mask, j, axis=1).any()
                others = np.delete(presence, j, axis=1).any(axis=1)
                can = (presence[:, j] & others).sum()
                assert mask[:, j].sum() == min(round(rate * presence[:, j].sum()), can)
        everything = masks[-1]
        assert everything.sum() == min(round(rate * presence.sum()),
                                       presence.sum() - len(presence))
        if previous is not None:  # a larger rate withholds a superset
            assert all((old & ~new).sum() == 0 for old, new in zip(previous, masks))
        previous = masks
    assert not any(m.any() for m in _withheld_masks(presence, draw, 0.0))


def test_withholding_equals_missing_values(clf, data):
    """Withheld by the presence mask = the same samples given as missing (NaN rows)."""
    X, y = data
    mask = np.zeros((N, 3), dtype=bool)
    mask[1::3, 1] = True  # "gene" withheld from a third of the samples
    as_nan = dict(X, gene=np.where(mask[:, [1]], np.nan, X["gene"]))
    withheld = _withhold(MultimodalData(X), mask)
    np.testing.assert_array_equal(withheld.present("gene"), ~mask[:, 1])
    np.testing.assert_allclose(clf.predict_proba(withheld), clf.predict_proba(as_nan))
    assert MultimodalData(X).present("gene").all()  # the input is left as it was


def test_missing_rate_report_table(clf, data):
    X, y = data
    table = missing_rate_report(clf, X, y, missing_rates=[0.5, 0, 0.9])
    assert table.columns.tolist() == ["withheld", "missing_rate", "withheld_fraction",
                                      "roc_auc", "roc_auc_std"]
    assert table["missing_rate"].tolist() == [0.0] * 4 + [0.5] * 4 + [0.9] * 4
    assert table["withheld"].tolist()[:4] == ["clin", "gene", "emb", ALL_MODALITIES]
    full = roc_auc_score(y, clf.predict_proba(X)[:, 1])
    np.testing.assert_allclose(table.loc[:3, "roc_auc"], full)
    # the share reached: the rate, rounded to whole samples, or less where capped (a
    # sample keeps one modality: with three, at most 111 of the 171 present values)
    assert (table["withheld_fraction"] <= table["missing_rate"] + 1 / 51).all()
    assert table.loc[11, "withheld_fraction"] == pytest.approx(111 / 171)
    assert (table["roc_auc_std"] == 0).all()
    # seeded: the same table again, another one with another seed
    assert_frame_equal(table, missing_rate_report(clf, X, y, missing_rates=[0, 0.5, 0.9]))
    other = missing_rate_report(clf, X, y, missing_rates=[0, 0.5, 0.9], random_state=1)
    assert not np.allclose(other["roc_auc"], table["roc_auc"])
    repeated = missing_rate_report(clf, X, y, missing_rates=[0, 0.5], scoring="accuracy",
                                   n_repeats=3)
    assert (repeated.loc[4:, "accuracy_std"] > 0).any()
    assert (repeated.loc[:3, "accuracy_std"] == 0).all()


@pytest.mark.parametrize("rates", [[1.5], [-0.1], [], [0.2, np.nan], ["half"]])
def test_missing_rate_report_rejects_bad_rates(clf, data, rates):
    with pytest.raises(ValueError, match=r"'missing_rates' parameter must be a non-empty "
                                         r"sequence of numbers in \[0, 1\]"):
        missing_rate_report(clf, *data, missing_rates=rates)


# -- MissingModalityDisplay ------------------------------------------------------------
def test_missing_modality_display_both(clf, data):
    X, y = data
    display = MissingModalityDisplay.from_estimator(clf, X, y, missing_rates=[0, 0.5, 0.9])
    assert_frame_equal(display.subsets, missing_modality_report(clf, X, y))
    assert_frame_equal(display.rates,
                       missing_rate_report(clf, X, y, missing_rates=[0, 0.5, 0.9]))
    assert display.score_name == "roc_auc"
    assert len(display.axes_) == 2 and display.ax_ is display.axes_[1]
    assert display.figure_ is display.ax_.figure
    subsets_ax, rates_ax = display.axes_
    # the bars are the subset scores, the full set on top
    np.testing.assert_allclose(display.bars_.datavalues, display.subsets["roc_auc"])
    assert [t.get_text() for t in subsets_ax.get_yticklabels()][0] == "clin + gene + emb"
    assert subsets_ax.get_xlabel() == "ROC AUC (dotted: chance)"
    # one line per modality and one for all, at the share withheld
    assert list(display.lines_) == ["clin", "gene", "emb", ALL_MODALITIES]
    for label, line in display.lines_.items():
        part = display.rates[display.rates["withheld"] == label].drop_duplicates(
            "withheld_fraction")
        np.testing.assert_allclose(line.get_xdata(), part["withheld_fraction"])
        np.testing.assert_allclose(line.get_ydata(), part["roc_auc"])
        assert line in rates_ax.lines
    assert rates_ax.get_xlabel() and rates_ax.get_ylabel() == "ROC AUC"
    assert rates_ax.get_legend() is not None


def test_missing_modality_display_kinds_and_given_axes(clf, data):
    X, y = data
    figure, ax = plt.subplots()
    display = MissingModalityDisplay.from_estimator(clf, X, y, kind="subsets", ax=ax)
    assert display.rates is None and display.ax_ is ax and display.figure_ is figure
    assert display.lines_ == {} and display.bars_.patches[0] in ax.patches
    display = MissingModalityDisplay.from_estimator(clf, X, y, kind="rates",
                                                    missing_rates=[0, 0.5],
                                                    scoring="accuracy")
    assert display.subsets is None and display.bars_ is None
    assert display.rates.columns[3] == "accuracy" and display.ax_.get_ylabel() == "accuracy"
    figure, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="needs the table"):
        display.plot(ax=axes, kind="both")
    redrawn = display.plot(ax=axes[1])
    assert redrawn is display and display.ax_ is axes[1]


def test_missing_modality_display_errors(clf, data):
    X, y = data
    with pytest.raises(ValueError, match=r"The 'kind' parameter of MissingModalityDisplay"
                                         r"\.from_estimator must be a str among"):
        MissingModalityDisplay.from_estimator(clf, X, y, kind="bars")
    with pytest.raises(ValueError, match="'missing_rates' parameter"):
        MissingModalityDisplay.from_estimator(clf, X, y, missing_rates=[0.5, 2])
    with pytest.raises(ValueError, match=r"The 'kind' parameter of MissingModalityDisplay"
                                         r"\.plot"):
        MissingModalityDisplay(subsets=missing_modality_report(clf, X, y)).plot(kind="x")
    with pytest.raises(ValueError, match=r"Number of samples in X \(60\) and y \(59\)"):
        MissingModalityDisplay.from_estimator(clf, X, y[:-1])
    with pytest.raises(ValueError, match="draws 2 panel"):
        MissingModalityDisplay.from_estimator(clf, X, y, missing_rates=[0],
                                              ax=plt.subplots()[1])
    with pytest.raises(NotFittedError):
        MissingModalityDisplay.from_estimator(MultimodalFusionClassifier(), X, y)


def test_missing_modality_display_on_a_dataframe_with_column_groups(data):
    """A DataFrame is split by the estimator's column groups, as in predict."""
    X, y = data
    frame = pd.DataFrame(np.hstack([X["clin"], X["gene"]]), columns=list("abcde"))
    spec = {"clin": ["a", "b"], "gene": ["c", "d", "e"]}
    by_columns = fast_clf(spec, device="cpu").fit(frame, y)
    display = MissingModalityDisplay.from_estimator(by_columns, frame, y,
                                                    missing_rates=[0, 0.5])
    split = MultimodalData(frame, modalities=spec)
    assert_frame_equal(display.subsets, missing_modality_report(by_columns, split, y))
    assert_frame_equal(display.rates,
                       missing_rate_report(by_columns, split, y, missing_rates=[0, 0.5]))
    assert display.subsets["modalities"].tolist() == ["clin+gene", "clin", "gene"]
    assert display.subsets.loc[0, "roc_auc"] == pytest.approx(
        roc_auc_score(y, by_columns.predict_proba(frame)[:, 1]))
    importance = ModalityImportanceDisplay.from_estimator(by_columns, frame, y)
    assert sorted(importance.importances["modality"]) == ["clin", "gene"]


# -- ModalityImportanceDisplay ---------------------------------------------------------
def test_modality_importance_display(clf, data):
    X, y = data
    display = ModalityImportanceDisplay.from_estimator(clf, X, y)
    expected = modality_importance(clf, X, y, scoring="roc_auc")
    assert_frame_equal(display.importances, expected)
    np.testing.assert_allclose(display.bars_.datavalues, expected["importance"])
    labels = [t.get_text() for t in display.ax_.get_yticklabels()]
    assert labels == expected["modality"].tolist()  # the most important on top
    positions = [bar.get_y() for bar in display.bars_]
    assert positions == sorted(positions, reverse=True)
    assert display.ax_.get_xlabel() == "drop in ROC AUC when the modality is withheld"
    assert display.figure_ is display.ax_.figure
    figure, ax = plt.subplots()
    display = ModalityImportanceDisplay.from_estimator(clf, X, y, scoring="accuracy", ax=ax)
    assert display.ax_ is ax and display.bars_.patches[0] in ax.patches
    assert display.ax_.get_xlabel() == "drop in accuracy when the modality is withheld"
    with pytest.raises(NotFittedError):
        ModalityImportanceDisplay.from_estimator(MultimodalFusionClassifier(), X, y)
    with pytest.raises(ValueError, match="lacks the columns"):
        ModalityImportanceDisplay(expected.drop(columns="importance")).plot()


# -- scikit-learn's displays take every input form -------------------------------------
def _input_forms():
    X, y = make_data()
    X = {"clin": X["clin"], "gene": X["gene"]}
    records = [
        {name: values[i] for name, values in X.items() if not np.isnan(values[i]).all()}
        for i in range(N)
    ]
    frame = pd.DataFrame(np.hstack([X["clin"], X["gene"]]), columns=list("abcde"))
    spec = {"clin": ["a", "b"], "gene": ["c", "d", "e"]}
    return y, {"dict": (X, None), "records": (records, None),
               "MultimodalData": (MultimodalData(X), None), "DataFrame": (frame, spec)}


FORMS_Y, FORMS = _input_forms()


@pytest.fixture(scope="module")
def fitted_per_form():
    return {form: fast_clf(spec, device="cpu").fit(X, FORMS_Y)
            for form, (X, spec) in FORMS.items()}


@pytest.mark.parametrize("form", list(FORMS))
def test_sklearn_displays_take_every_input_form(form, fitted_per_form):
    X, _ = FORMS[form]
    y = FORMS_Y
    estimator = fitted_per_form[form]
    proba = estimator.predict_proba(X)[:, 1]
    roc = RocCurveDisplay.from_estimator(estimator, X, y)
    assert roc.roc_auc == pytest.approx(roc_auc_score(y, proba))
    calibration = CalibrationDisplay.from_estimator(estimator, X, y, n_bins=4)
    prob_true, prob_pred = calibration_curve(y, proba, n_bins=4, pos_label="disease")
    np.testing.assert_allclose(calibration.prob_pred, prob_pred)
    np.testing.assert_allclose(calibration.prob_true, prob_true)
    matrix = ConfusionMatrixDisplay.from_estimator(estimator, X, y)
    np.testing.assert_array_equal(matrix.confusion_matrix,
                                  confusion_matrix(y, estimator.predict(X)))
    assert [t.get_text() for t in matrix.ax_.get_xticklabels()] == ["control", "disease"]


def test_a_negated_loss_is_drawn_as_the_loss_itself(clf, data):
    X, y = data
    display = MissingModalityDisplay.from_estimator(clf, X, y, scoring="neg_log_loss",
                                                    missing_rates=(0.0, 0.5))
    widths = [bar.get_width() for bar in display.bars_]
    np.testing.assert_allclose(widths, -display.subsets["neg_log_loss"].to_numpy())
    assert all(w > 0 for w in widths)
    assert display.axes_[0].get_xlabel().startswith("log loss (lower is better)")
    line = next(iter(display.lines_.values()))
    assert (line.get_ydata() > 0).all()
    assert display.axes_[1].get_ylabel() == "log loss (lower is better)"


def test_importance_notes_stay_right_of_zero_for_negative_bars():
    table = pd.DataFrame({"modality": ["a", "b"], "score_full": 0.7,
                          "score_without": [0.6, 0.72], "importance": [0.1, -0.02]})
    display = ModalityImportanceDisplay(table, score_name="roc_auc").plot()
    notes = [t for t in display.ax_.texts if "\u2192" in t.get_text()]
    assert len(notes) == 2
    assert all(note.xy[0] >= 0 for note in notes)
    assert display.ax_.get_xlim()[0] < -0.02  # the negative bar is inside the axes
