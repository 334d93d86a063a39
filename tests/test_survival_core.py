"""The survival core: the Cox partial likelihood, the Breslow baseline, Harrell's C and
the survival task, against plain-loop references and scikit-survival."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmfusion_sklearn._torch.fusion import LinearLogits
from mmfusion_sklearn._torch.linear import fit_linear_path
from mmfusion_sklearn._torch.survival import (
    SurvivalTask,
    breslow_baseline,
    concordance_index,
    cox_partial_likelihood,
    cumulative_hazard,
    survival_function,
)


def reference_loss(risk, time, event, weight=None, ties="efron"):
    """Weighted negative log partial likelihood per weighted event, plain loops
    (R's survival::coxph weighted Efron)."""
    n = len(risk)
    weight = [1.0] * n if weight is None else list(weight)
    event_times = sorted({time[i] for i in range(n) if event[i] and weight[i] > 0})
    total, events = 0.0, 0.0
    for t in event_times:
        tied = [i for i in range(n) if time[i] == t and event[i] and weight[i] > 0]
        at_risk = [j for j in range(n) if time[j] >= t and weight[j] > 0]
        risk_set = sum(weight[j] * math.exp(risk[j]) for j in at_risk)
        tied_risk = sum(weight[i] * math.exp(risk[i]) for i in tied)
        tied_weight = sum(weight[i] for i in tied)
        total -= sum(weight[i] * risk[i] for i in tied)
        if ties == "breslow":
            total += tied_weight * math.log(risk_set)
        else:
            d = len(tied)
            total += sum(tied_weight / d * math.log(risk_set - k / d * tied_risk)
                         for k in range(d))
        events += tied_weight
    return total / events if events else 0.0


def survival_data(n, seed, n_times=None, p=3, censoring=0.3):
    """X (n, p), time (ties when n_times is given), event, all numpy."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = np.linspace(1.0, -0.5, p)
    time = rng.exponential(np.exp(-X @ beta))
    if n_times is not None:
        time = np.ceil(time / time.max() * n_times)
    event = rng.random(n) > censoring
    event[0] = True
    return X, time, event


def as_tensors(*arrays):
    return [torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in arrays]


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_cox_loss_equals_the_plain_loop_reference(ties, weighted, seed):
    rng = np.random.default_rng(seed)
    n = 25
    risk = rng.normal(size=n)
    time = rng.integers(1, 6, size=n).astype(float)  # many ties
    event = rng.random(n) > 0.4
    weight = rng.uniform(0.2, 3.0, size=n) if weighted else None
    if weighted:
        weight[rng.random(n) < 0.2] = 0.0  # rows taking no part
    expected = reference_loss(risk, time, event, weight, ties)
    got = cox_partial_likelihood(*as_tensors(risk, time), torch.as_tensor(event),
                                 None if weight is None else torch.as_tensor(weight), ties)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_loss_equals_scikit_survival_objective(ties):
    pytest.importorskip("sksurv")
    from sksurv.linear_model.coxph import CoxPHOptimizer

    X, time, event = survival_data(40, seed=3, n_times=8)
    beta = np.array([0.3, -0.7, 0.2])
    optimizer = CoxPHOptimizer(X, event, time, np.zeros(3), ties)
    expected = optimizer.nlog_likelihood(beta)  # -log PL / n_samples
    got = cox_partial_likelihood(*as_tensors(X @ beta, time), torch.as_tensor(event),
                                 ties=ties)
    assert float(got) * event.sum() / len(X) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_scikit_survival_ridge_cox_is_a_stationary_point(ties):
    pytest.importorskip("sksurv")
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    X, time, event = survival_data(60, seed=4, n_times=10)
    alpha = 2.0
    model = CoxPHSurvivalAnalysis(alpha=alpha, ties=ties).fit(X, Surv.from_arrays(event, time))
    X_, time_, event_ = as_tensors(X, time, event)

    def gradient(beta):
        beta = torch.as_tensor(beta).clone().requires_grad_(True)
        objective = cox_partial_likelihood(X_ @ beta, time_, event_, ties=ties)
        objective = objective + alpha / (2.0 * event.sum()) * (beta ** 2).sum()
        (grad,) = torch.autograd.grad(objective, beta)
        return grad

    assert gradient(model.coef_).abs().max() < 1e-7
    assert gradient(model.coef_ + 0.1).abs().max() > 1e-3  # and not anywhere


def test_efron_equals_breslow_without_ties_and_differs_with_them():
    rng = np.random.default_rng(5)
    risk = torch.as_tensor(rng.normal(size=20))
    event = torch.as_tensor(rng.random(20) > 0.3)
    distinct = torch.as_tensor(rng.permutation(20).astype(float))
    weight = torch.as_tensor(rng.uniform(0.5, 2.0, size=20))
    for w in (None, weight):
        efron = cox_partial_likelihood(risk, distinct, event, w, "efron")
        breslow = cox_partial_likelihood(risk, distinct, event, w, "breslow")
        assert float(efron) == pytest.approx(float(breslow), rel=1e-12)
    tied = torch.div(distinct, 5, rounding_mode="floor")
    efron = cox_partial_likelihood(risk, tied, event, ties="efron")
    breslow = cox_partial_likelihood(risk, tied, event, ties="breslow")
    assert float(efron) < float(breslow) - 1e-3  # Efron's risk sets shrink within a tie


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("case", ["censored", "zero_weight", "single", "empty"])
def test_a_batch_without_an_event_gives_an_exact_zero_in_the_graph(ties, case):
    n = 0 if case == "empty" else 1 if case == "single" else 6
    risk = torch.linspace(-3.0, 40.0, n).requires_grad_(True)
    time = torch.arange(n, dtype=torch.float32)
    event = torch.zeros(n, dtype=torch.bool)
    weight = None
    if case == "zero_weight":
        event[:] = True
        weight = torch.zeros(n)
    elif case == "single":
        event[:] = True  # one event alone in its risk set: log PL = 0
    loss = cox_partial_likelihood(risk, time, event, weight, ties)
    assert loss.requires_grad and float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(risk.grad, torch.zeros(n))


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_integer_weights_equal_duplication(ties):
    rng = np.random.default_rng(6)
    n = 15
    risk = rng.normal(size=n)
    time = rng.permutation(n).astype(float) if ties == "efron" else \
        rng.integers(1, 5, size=n).astype(float)
    event = rng.random(n) > 0.3
    counts = rng.integers(1, 4, size=n)
    weighted = cox_partial_likelihood(*as_tensors(risk, time), torch.as_tensor(event),
                                      torch.as_tensor(counts.astype(float)), "breslow")
    repeated = [np.repeat(a, counts) for a in (risk, time, event)]
    duplicated = cox_partial_likelihood(*as_tensors(*repeated[:2]),
                                        torch.as_tensor(repeated[2]), ties="breslow")
    assert float(weighted) == pytest.approx(float(duplicated), rel=1e-12)
    if ties == "efron":
        # with distinct times weighted Efron is Breslow; duplication itself makes ties
        efron = cox_partial_likelihood(*as_tensors(risk, time), torch.as_tensor(event),
                                       torch.as_tensor(counts.astype(float)), "efron")
        assert float(efron) == pytest.approx(float(weighted), rel=1e-12)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_rows_outside_the_mask_take_no_part(ties):
    rng = np.random.default_rng(7)
    n = 20
    X, time, event = survival_data(n, seed=7, n_times=6)
    task = SurvivalTask(ties)
    y = task.encode_targets(time, event)
    outputs = torch.as_tensor(rng.normal(size=(n, 1)), dtype=torch.float32)
    mask = torch.as_tensor(rng.random(n) > 0.4)
    mask[0] = True
    weight = torch.as_tensor(rng.uniform(0.5, 2.0, size=n), dtype=torch.float32)
    expected = task.loss(outputs[mask], y[mask], weight[mask])
    outputs[~mask] = torch.as_tensor([1e30, float("nan"), -float("inf")]).repeat(n)[
        :int((~mask).sum())].unsqueeze(1)
    outputs.requires_grad_(True)
    got = task.loss(outputs, y, weight, mask)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    got.backward()
    assert torch.isfinite(outputs.grad).all() and not outputs.grad[~mask].any()


def test_extreme_risk_scores_stay_finite_and_shift_invariant():
    X, time, event = survival_data(30, seed=8, n_times=5)
    risk = torch.as_tensor(np.random.default_rng(8).normal(size=30), dtype=torch.float32)
    base = cox_partial_likelihood(risk, torch.as_tensor(time), torch.as_tensor(event))
    shifted = cox_partial_likelihood(risk + 500.0, torch.as_tensor(time),
                                     torch.as_tensor(event))
    assert float(shifted) == pytest.approx(float(base), abs=2e-3)
    wide = (risk * 1000.0).requires_grad_(True)
    for ties in ("efron", "breslow"):
        loss = cox_partial_likelihood(wide, torch.as_tensor(time), torch.as_tensor(event),
                                      ties=ties)
        (grad,) = torch.autograd.grad(loss, wide)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_breslow_baseline_matches_scikit_survival():
    pytest.importorskip("sksurv")
    from sksurv.linear_model.coxph import BreslowEstimator

    X, time, event = survival_data(50, seed=9, n_times=12)
    risk = X @ np.array([0.5, -0.2, 0.1])
    times, cum_baseline = breslow_baseline(torch.as_tensor(risk), time, event)
    reference = BreslowEstimator().fit(risk, event, time)
    assert np.array_equal(times, np.unique(time[event]))
    at = reference.unique_times_  # every distinct time, censored ones included
    ours = cumulative_hazard(np.zeros(1), cum_baseline, times, at)[0]
    np.testing.assert_allclose(ours, reference.cum_baseline_hazard_.y, rtol=1e-12)
    # weights: integer weights are duplication
    counts = np.arange(len(risk)) % 3 + 1
    w_times, w_cum = breslow_baseline(risk, time, event, counts)
    duplicated = BreslowEstimator().fit(*(np.repeat(a, counts) for a in (risk, event, time)))
    np.testing.assert_allclose(
        cumulative_hazard([0.0], w_cum, w_times, duplicated.unique_times_)[0],
        duplicated.cum_baseline_hazard_.y, rtol=1e-12)


def test_survival_function_matches_scikit_survival_cox():
    pytest.importorskip("sksurv")
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    X, time, event = survival_data(50, seed=10, n_times=12)
    X_new = np.random.default_rng(10).normal(size=(7, 3))
    model = CoxPHSurvivalAnalysis(ties="efron").fit(X, Surv.from_arrays(event, time))
    times, cum_baseline = breslow_baseline(model.predict(X), time, event)
    risk = model.predict(X_new)
    at = model.unique_times_
    np.testing.assert_allclose(
        survival_function(risk, times, cum_baseline, at),
        model.predict_survival_function(X_new, return_array=True), rtol=1e-10)
    np.testing.assert_allclose(
        cumulative_hazard(risk, cum_baseline, times, at),
        model.predict_cumulative_hazard_function(X_new, return_array=True), rtol=1e-10)
    # at the event times themselves, and before the first one
    assert survival_function(risk, times, cum_baseline).shape == (7, len(times))
    before = survival_function(risk, times, cum_baseline, [times[0] - 1.0, times[-1] + 5])
    np.testing.assert_allclose(before[:, 0], 1.0)
    np.testing.assert_allclose(before[:, 1], np.exp(-cum_baseline[-1] * np.exp(risk)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [50, 1 << 22])
def test_concordance_index_matches_scikit_survival(seed, chunk_size):
    pytest.importorskip("sksurv")
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(seed)
    n = 80
    time = rng.integers(1, 15, size=n).astype(float)  # tied times
    event = rng.random(n) > 0.4
    risk = np.round(rng.normal(size=n), 1)  # tied risks
    expected = concordance_index_censored(event, time, risk)[0]
    got = concordance_index(time, event, torch.as_tensor(risk), chunk_size=chunk_size)
    assert got == pytest.approx(expected, rel=1e-12)


def test_concordance_index_without_comparable_pairs_raises():
    with pytest.raises(ValueError, match="comparable"):
        concordance_index([1.0, 2.0], [False, False], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        concordance_index([1.0, 2.0], [True, False], [float("nan"), 0.2])


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_linear_path_recovers_scikit_survival_ridge_cox(ties):
    pytest.importorskip("sksurv")
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    X, time, event = survival_data(80, seed=11, n_times=20, p=4)
    X = X * np.array([1.0, 10.0, 0.1, 3.0]) + 5.0  # units: the path standardises
    C = 0.05
    task = SurvivalTask(ties)
    y = task.encode_targets(time, event)
    weight = torch.ones(len(X))
    linear = LinearLogits(["tab"], {"tab": X.shape[1]}, 1)
    inputs = {"tab": torch.as_tensor(X, dtype=torch.float32)}
    present = torch.ones(len(X), 1, dtype=torch.bool)
    l2 = task.linear_l2(C, weight, y)
    assert l2 == pytest.approx(1.0 / (2.0 * C * event.sum()))
    assert SurvivalTask(ties, event_fraction=event.mean()).linear_l2(C, weight) \
        == pytest.approx(l2)
    fit_linear_path(linear, inputs, present, y, weight, l2, configurations=False, task=task)
    with torch.no_grad():
        ours = linear.combine(linear(inputs, present), present)[:, 0].double().numpy()

    standardised = (X - X.mean(0)) / X.std(0)  # population std, as the path
    model = CoxPHSurvivalAnalysis(alpha=1.0 / C, ties=ties)
    model.fit(standardised, Surv.from_arrays(event, time))
    expected = model.predict(standardised)
    assert np.corrcoef(ours, expected)[0, 1] > 0.9999
    np.testing.assert_allclose(ours - ours.mean(), expected - expected.mean(), atol=2e-3)


def test_configuration_losses_are_the_per_configuration_losses():
    rng = np.random.default_rng(12)
    X, time, event = survival_data(24, seed=12, n_times=6)
    task = SurvivalTask()
    y = task.encode_targets(time, event)
    outputs = torch.as_tensor(rng.normal(size=(3, 24, 1)), dtype=torch.float32)
    weight = torch.as_tensor(rng.uniform(0.5, 2.0, size=(3, 24)), dtype=torch.float32)
    weight[1, rng.random(24) < 0.5] = 0.0
    weight[2] = weight[2] * torch.as_tensor(~event, dtype=torch.float32)  # no event at all
    got = task.configuration_losses(outputs, y, weight)
    expected = torch.stack([task.loss(outputs[k], y, weight[k]) for k in range(3)])
    assert got.shape == (3,)
    torch.testing.assert_close(got, expected)
    assert float(got[2]) == 0.0


def test_every_batch_of_a_small_cohort_has_a_finite_loss():
    rng = np.random.default_rng(13)
    n, batch_size = 150, 32
    time = rng.exponential(10.0, size=n)
    event = np.zeros(n, dtype=bool)
    event[rng.choice(n, 40, replace=False)] = True
    task = SurvivalTask()
    y = task.encode_targets(time, event)
    outputs = torch.as_tensor(rng.normal(size=(n, 1)), dtype=torch.float32)
    outputs.requires_grad_(True)
    present = torch.as_tensor(rng.random((n, 2)) > 0.3)
    order = torch.as_tensor(rng.permutation(n))
    for batch in order.split(batch_size):
        single = outputs[batch].unsqueeze(0).repeat(2, 1, 1) * 0.5
        loss = task.smd_loss(outputs[batch], single, y[batch], present[batch], None, 1.0)
        (grad,) = torch.autograd.grad(loss, outputs)
        assert torch.isfinite(loss) and loss.item() >= 0.0
        assert torch.isfinite(grad).all()


def test_survival_task_interface():
    task = SurvivalTask()
    assert (task.name, task.n_outputs, task.full_loss_name) == ("survival", 1, "cox_loss")
    assert task.target_dtype == torch.float32
    y = task.encode_targets([3.0, 1.0, 2.0], [True, False, True])
    assert y.dtype == torch.float32 and y.tolist() == [[3, 1], [1, 0], [2, 1]]
    combined = task.combine([torch.tensor([[1.0], [2.0], [0.0]]),
                             torch.tensor([[3.0], [0.0], [1.0]])])
    # the members side by side: the estimator averages risks and mixes curves
    assert combined.dtype == torch.float64
    assert combined.tolist() == [[1.0, 3.0], [2.0, 0.0], [0.0, 1.0]]
    assert task.contrastive_labels(y).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="ties"):
        SurvivalTask("exact")
    with pytest.raises(ValueError, match="ties"):
        cox_partial_likelihood(torch.zeros(2), torch.zeros(2), torch.ones(2), ties="exact")


def test_calibration_slope_is_a_one_variable_cox_fit():
    from mmfusion_sklearn._torch.survival_calibration import calibration_slope

    rng = np.random.default_rng(0)
    signal = rng.normal(size=400)
    time = np.round(rng.exponential(np.exp(-signal)), 1)  # ties
    event = rng.random(400) < 0.6
    weight = rng.uniform(0.5, 2.0, 400)
    slope = calibration_slope(3 * signal, time, event)
    assert 0.25 < slope < 0.45  # scores three times too spread: about 1/3
    assert calibration_slope(-signal, time, event) == 0.0  # anti-predictive
    assert calibration_slope(signal, time, np.zeros(400, bool)) == 1.0  # no event
    assert calibration_slope(np.ones(400), time, event) == 1.0  # no spread
    # weights count, and only their ratios matter
    weighted = calibration_slope(signal, time, event, weight)
    assert weighted != pytest.approx(calibration_slope(signal, time, event), abs=1e-6)
    assert calibration_slope(signal, time, event, 10 * weight) == pytest.approx(weighted)
    sksurv_linear = pytest.importorskip("sksurv.linear_model")
    y = np.array(list(zip(event, time)), dtype=[("e", bool), ("t", float)])
    theirs = sksurv_linear.CoxPHSurvivalAnalysis(ties="efron").fit((3 * signal)[:, None], y)
    assert slope == pytest.approx(float(theirs.coef_[0]), rel=1e-6)
