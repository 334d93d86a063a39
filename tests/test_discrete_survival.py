"""The discrete-time (logistic-hazard) survival task: its cuts, its discretisation, its
loss against plain-loop and pycox-convention references, and a linear model trained
with it."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from mmfusion_sklearn._torch.discrete_survival import (
    DiscreteSurvivalTask,
    default_n_bins,
    discrete_cuts,
    discretise,
    restricted_mean_survival_time,
    risk_score,
    survival_at,
    survival_curves,
)
from mmfusion_sklearn._torch.fusion import LinearLogits
from mmfusion_sklearn._torch.linear import fit_linear_path
from mmfusion_sklearn._torch.survival import concordance_index
from mmfusion_sklearn._torch.tasks import Task

# Hand data on the edges 0, 1, 3, 6: intervals [0, 1], (1, 3], (3, 6].
CUTS = [0.0, 1.0, 3.0, 6.0]
TIME = [2.0, 1.0, 3.0, 4.5, 0.5, 0.0, 2.0, 6.0, 7.0, 6.0, 3.0]
EVENT = [1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1]
# Worked out by hand from the convention (the module's docstring):
INTERVAL = [
    1,   # event at 2: in (1, 3]
    0,   # event at the cut 1: in [0, 1], the interval that ends there
    1,   # censored at the cut 3: survived [0, 1] and (1, 3]
    1,   # censored at 4.5, inside (3, 6]: survived the first two only
    -1,  # censored at 0.5, before the first interval ended: at risk in none
    0,   # event at time 0: in [0, 1]
    1,   # event at 2, tied with row 0
    2,   # censored at the last cut: survived all three
    2,   # event at 7, after the last cut: censored at 6, survived all three
    2,   # event at the last cut 6: in (3, 6]
    1,   # event at 3, tied with row 2's censoring: in (1, 3]
]
HAS_EVENT = [True, True, False, False, False, True, True, False, False, True, True]


def reference_nll(logits, interval, event, weight=None):
    """Weighted mean negative log-likelihood of the logistic hazard, plain loops."""
    logits = np.asarray(logits, dtype=np.float64)
    weight = np.ones(len(logits)) if weight is None else np.asarray(weight, np.float64)
    total, weights = 0.0, 0.0
    for i in range(len(logits)):
        if weight[i] <= 0:
            continue
        log_likelihood = 0.0
        for j in range(interval[i] + 1):
            hazard = 1.0 / (1.0 + math.exp(-logits[i, j]))
            if j == interval[i] and event[i]:
                log_likelihood += math.log(hazard)
            else:
                log_likelihood += math.log(1.0 - hazard)
        total -= weight[i] * log_likelihood
        weights += weight[i]
    return total / weights if weights else 0.0


def assert_close(actual, desired, rtol=0.0, atol=0.0):
    """numpy's assert_allclose on tensors (torch.testing's first call imports a lot)."""
    np.testing.assert_allclose(actual.detach().cpu().numpy(), desired.detach().cpu().numpy(),
                               rtol=rtol, atol=atol)


def hand_logits(seed=0, n=None):
    n = len(TIME) if n is None else n
    rng = np.random.default_rng(seed)
    return rng.normal(scale=1.5, size=(n, len(CUTS) - 1))


def ph_data(n, seed, p=3, censoring_rate=0.3):
    """Proportional hazards: exponential event times with log-hazard X @ beta,
    exponential censoring."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    beta = np.linspace(1.0, -0.6, p)
    event_time = rng.exponential(np.exp(-X @ beta))
    censor_time = rng.exponential(1.0 / censoring_rate, size=n)
    return X, np.minimum(event_time, censor_time), event_time <= censor_time


def fit_linear(X, time, event, task, C, weight=None):
    """The package's linear path fitted with the task; returns the path."""
    weight = torch.ones(len(X)) if weight is None else torch.as_tensor(weight, dtype=torch.float32)
    linear = LinearLogits(["tab"], {"tab": X.shape[1]}, task.n_outputs)
    inputs = {"tab": torch.as_tensor(X, dtype=torch.float32)}
    present = torch.ones(len(X), 1, dtype=torch.bool)
    y = task.encode_targets(time, event)
    l2 = task.linear_l2(C, weight, y)
    fit_linear_path(linear, inputs, present, y, weight, l2, configurations=False,
                    max_iter=500, task=task)
    return linear


def linear_outputs(linear, X):
    inputs = {"tab": torch.as_tensor(X, dtype=torch.float32)}
    present = torch.ones(len(X), 1, dtype=torch.bool)
    with torch.no_grad():
        return linear.combine(linear(inputs, present), present)


# --- cuts and discretisation ---------------------------------------------------------


def test_discretise_follows_the_convention_by_hand():
    interval, event = discretise(TIME, EVENT, CUTS)
    assert interval.dtype == np.int64 and event.dtype == bool
    assert interval.tolist() == INTERVAL
    assert event.tolist() == HAS_EVENT
    # the task's float32 torch discretisation agrees
    task = DiscreteSurvivalTask(CUTS)
    got_interval, got_event = task.discretise_targets(task.encode_targets(TIME, EVENT))
    assert got_interval.tolist() == INTERVAL
    assert got_event.tolist() == HAS_EVENT


def test_an_event_at_a_cut_that_float32_cannot_hold_stays_in_its_interval():
    # 0.1 and 0.3 are not float32 numbers: the float32 targets must still meet the cuts
    time = np.array([0.1, 0.3, 0.3, 0.2, 0.05])
    event = np.array([1, 1, 0, 1, 1], dtype=bool)
    cuts = discrete_cuts(time, event, n_bins=2)
    np.testing.assert_array_equal(cuts, [0.0, 0.1, 0.3])
    expected = ([0, 1, 1, 1, 0], [True, True, False, True, True])
    interval, has_event = discretise(time, event, cuts)
    assert (interval.tolist(), has_event.tolist()) == expected
    task = DiscreteSurvivalTask(cuts)
    interval, has_event = task.discretise_targets(task.encode_targets(time, event))
    assert (interval.tolist(), has_event.tolist()) == expected


def test_default_number_of_bins_rule():
    assert [default_n_bins(n) for n in (0, 3, 39, 40, 50, 99, 150, 199, 200, 10**5)] \
        == [4, 4, 4, 4, 5, 9, 15, 19, 20, 20]


def test_discrete_cuts_on_realistic_follow_up():
    # follow-up in whole days (ties), Weibull event times, uniform censoring
    rng = np.random.default_rng(1)
    n = 500
    event_time = np.ceil(365 * 3 * rng.weibull(1.3, size=n))
    censor_time = np.ceil(rng.uniform(30, 365 * 6, size=n))
    time = np.minimum(event_time, censor_time)
    event = event_time <= censor_time
    cuts = discrete_cuts(time, event)
    assert cuts[0] == 0.0 and cuts[-1] == time.max()
    assert np.all(np.diff(cuts) > 0)
    n_bins = default_n_bins(event.sum())
    assert n_bins == 20 and n_bins - 2 <= len(cuts) - 1 <= n_bins
    # every training row falls in the cuts, every interval holds events, about as many
    interval, has_event = discretise(time, event, cuts)
    assert np.array_equal(has_event, event)  # nothing beyond the last cut
    counts = np.bincount(interval[has_event], minlength=len(cuts) - 1)
    assert counts.min() >= 0.5 * event.sum() / n_bins
    assert counts.max() <= 2.0 * event.sum() / n_bins


def test_discrete_cuts_small_cohort_ties_and_no_event():
    rng = np.random.default_rng(2)
    time = rng.exponential(size=60)
    event = rng.random(60) < 0.5
    cuts = discrete_cuts(time, event)
    assert len(cuts) - 1 == 4  # fewer than 40 events: 4 intervals
    np.testing.assert_allclose(cuts[1:-1], np.quantile(time[event], [0.25, 0.5, 0.75],
                                                       method="inverted_cdf"))
    # heavy ties and events at time 0 merge edges: distinct, from 0 to the largest time
    time = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 5], dtype=float)
    cuts = discrete_cuts(time, np.ones(10, dtype=bool), n_bins=8)
    np.testing.assert_array_equal(cuts, [0.0, 1.0, 2.0, 5.0])
    # no event at all: quantiles of every time
    cuts = discrete_cuts([1.0, 2.0, 3.0, 4.0], [0, 0, 0, 0], n_bins=2)
    np.testing.assert_array_equal(cuts, [0.0, 2.0, 4.0])


@pytest.mark.parametrize(("time", "event", "n_bins", "match"), [
    ([1.0, -2.0], [1, 1], None, "time must be non-negative"),
    ([1.0, np.nan], [1, 1], None, "time must be finite"),
    ([1.0, 2.0], [1], None, "same length"),
    ([0.0, 0.0], [1, 1], None, "at least one positive"),
    ([1.0, 2.0], [1, 1], 0, "n_bins must be a positive integer"),
    ([1.0, 2.0], [1, 1], 2.5, "n_bins must be a positive integer"),
])
def test_discrete_cuts_errors(time, event, n_bins, match):
    with pytest.raises(ValueError, match=match):
        discrete_cuts(time, event, n_bins)


@pytest.mark.parametrize("cuts", [[0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 1.0], [-1.0, 1.0],
                                  [0.0, np.inf]])
def test_bad_cuts_are_refused(cuts):
    with pytest.raises(ValueError, match="cuts must hold"):
        DiscreteSurvivalTask(cuts)


# --- the loss ------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["plain", "weights", "weights and mask"])
def test_loss_matches_a_plain_loop_reference(case):
    task = DiscreteSurvivalTask(CUTS)
    logits = hand_logits(0)
    rng = np.random.default_rng(3)
    weight = mask = None
    keep = np.ones(len(TIME), dtype=bool)
    w = np.ones(len(TIME))
    if case != "plain":
        w = rng.uniform(0.2, 3.0, size=len(TIME))
        weight = torch.as_tensor(w, dtype=torch.float64)
    if case == "weights and mask":
        keep = np.array([1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1], dtype=bool)
        mask = torch.as_tensor(keep)
    got = task.loss(torch.as_tensor(logits), task.encode_targets(TIME, EVENT), weight, mask)
    expected = reference_nll(logits, INTERVAL, HAS_EVENT, w * keep)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, rel=1e-12)
    # float32 outputs give float32, the same value
    got32 = task.loss(torch.as_tensor(logits, dtype=torch.float32),
                      task.encode_targets(TIME, EVENT), weight, mask)
    assert got32.dtype == torch.float32
    assert float(got32) == pytest.approx(expected, rel=1e-5)


def test_loss_equals_pycox_logistic_hazard_worked_out_by_hand():
    # pycox's LabTransDiscreteTime on the cuts [0, 1, 3, 6] gives 4 outputs, one per cut
    # (output 0: an event at time 0 exactly); events move to the right cut, censorings
    # to the left cut (or stay on a cut they are at), times after 6 are censored at 6.
    # Its nll_logistic_hazard sums BCE-with-logits over outputs 0..idx (label = event
    # at idx) and averages over rows. The event at time 0 (row 5) is left out: pycox
    # gives it its own output, this task its first interval.
    rows = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    pycox_idx = [
        2,  # event at 2 -> right cut 3
        1,  # event at 1 -> cut 1
        2,  # censored at 3 -> cut 3
        2,  # censored at 4.5 -> left cut 3
        0,  # censored at 0.5 -> left cut 0
        2,  # event at 2 -> right cut 3
        3,  # censored at 6 -> cut 6
        3,  # event at 7 -> censored at 6
        3,  # event at 6 -> cut 6
        2,  # event at 3 -> cut 3
    ]
    pycox_event = [1, 1, 0, 0, 0, 1, 0, 0, 1, 1]
    logits = hand_logits(4)[rows]
    # pycox's output at cut 0 carries (almost) no hazard, so its term is ~0
    phi = np.concatenate([np.full((len(rows), 1), -40.0), logits], axis=1)
    target = np.zeros_like(phi)
    target[np.arange(len(rows)), pycox_idx] = pycox_event
    bce = np.logaddexp(0.0, phi) - target * phi
    pycox_loss = np.cumsum(bce, axis=1)[np.arange(len(rows)), pycox_idx].mean()

    task = DiscreteSurvivalTask(CUTS)
    y = task.encode_targets(np.array(TIME)[rows], np.array(EVENT)[rows])
    got = task.loss(torch.as_tensor(logits), y)
    assert float(got) == pytest.approx(pycox_loss, rel=1e-12)
    # the hand-written pycox indices are this task's intervals shifted by one
    interval, event = discretise(np.array(TIME)[rows], np.array(EVENT)[rows], CUTS)
    assert (interval + 1).tolist() == pycox_idx
    assert event.astype(int).tolist() == pycox_event


def test_a_batch_without_events_has_a_finite_likelihood_and_gradient():
    task = DiscreteSurvivalTask(CUTS)
    time, event = [3.0, 4.5, 6.0, 7.0, 0.5], [0, 0, 0, 0, 0]
    logits = torch.tensor(hand_logits(5, n=5), requires_grad=True)
    loss = task.loss(logits, task.encode_targets(time, event))
    loss.backward()
    expected = reference_nll(logits.detach().numpy(), [1, 1, 2, 2, -1], [False] * 5)
    assert loss.item() == pytest.approx(expected, rel=1e-12) and loss.item() > 0
    assert torch.isfinite(logits.grad).all()
    # every survived interval pushes its hazard down; the others get nothing
    at_risk = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0]]).bool()
    assert (logits.grad[at_risk] > 0).all()
    assert (logits.grad[~at_risk] == 0).all()


def test_no_participating_row_gives_an_exact_zero_in_the_graph():
    task = DiscreteSurvivalTask(CUTS)
    y = task.encode_targets(TIME, EVENT)
    cases = {
        "empty mask": dict(mask=torch.zeros(len(TIME), dtype=torch.bool)),
        "zero weights": dict(weight=torch.zeros(len(TIME))),
    }
    for name, kwargs in cases.items():
        logits = torch.as_tensor(hand_logits(6), dtype=torch.float32).requires_grad_()
        loss = task.loss(logits, y, **kwargs)
        assert loss.requires_grad, name
        loss.backward()
        assert loss.item() == 0.0, name
        assert torch.equal(logits.grad, torch.zeros_like(logits)), name
    # rows at risk in no interval (censored before the first cut) and an empty batch
    for time, event in (([0.5, 0.2], [0, 0]), ([], [])):
        logits = torch.zeros(len(time), 3, requires_grad=True)
        loss = task.loss(logits, task.encode_targets(time, event))
        loss.backward()
        assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize(("time", "event"), [(2.0, 1), (4.5, 0), (0.0, 1)])
def test_a_single_row_batch_has_its_own_likelihood(time, event):
    task = DiscreteSurvivalTask(CUTS)
    logits = torch.tensor(hand_logits(7, n=1), requires_grad=True)
    loss = task.loss(logits, task.encode_targets([time], [event]))
    loss.backward()
    interval, has_event = discretise([time], [event], CUTS)
    expected = reference_nll(logits.detach().numpy(), interval, has_event)
    assert loss.item() == pytest.approx(expected, rel=1e-12) and loss.item() > 0
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_rows_outside_the_mask_take_no_part_whatever_their_logits():
    task = DiscreteSurvivalTask(CUTS)
    y = task.encode_targets(TIME, EVENT)
    logits = torch.as_tensor(hand_logits(8), dtype=torch.float32)
    mask = torch.ones(len(TIME), dtype=torch.bool)
    mask[[0, 3, 7]] = False
    bad = logits.clone()
    bad[0] = torch.nan
    bad[3] = torch.inf
    bad[7] = -torch.inf
    bad.requires_grad_()
    loss = task.loss(bad, y, mask=mask)
    loss.backward()
    expected = task.loss(logits[mask], y[mask])
    assert loss.item() == pytest.approx(float(expected), rel=1e-6)
    assert torch.isfinite(bad.grad).all()
    assert (bad.grad[~mask] == 0).all()
    # huge logits of rows taking part: finite loss and gradients
    huge = (torch.sign(logits) * 1e4).requires_grad_()
    loss = task.loss(huge, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(huge.grad).all()


def test_configuration_losses_and_smd_are_the_loops_over_loss():
    rng = np.random.default_rng(9)
    task = DiscreteSurvivalTask(CUTS)
    y = task.encode_targets(TIME, EVENT)
    n = len(TIME)
    outputs = torch.as_tensor(rng.normal(size=(4, n, 3)), dtype=torch.float32)
    weight = torch.as_tensor(rng.uniform(0.5, 2.0, size=(4, n)), dtype=torch.float32)
    weight[1, rng.random(n) < 0.5] = 0.0
    weight[2] = 0.0  # a configuration without any row
    weight[3] = weight[3] * (1.0 - y[:, 1])  # one without any event
    got = task.configuration_losses(outputs, y, weight)
    expected = torch.stack([task.loss(outputs[k], y, weight[k]) for k in range(4)])
    assert got.shape == (4,)
    assert_close(got, expected, rtol=1e-6)
    assert float(got[2]) == 0.0 and float(got[3]) > 0.0

    present = torch.as_tensor(rng.random((n, 3)) < 0.6)
    sample_weight = weight[0]
    for w in (None, sample_weight):
        got = task.smd_loss(outputs[0], outputs[1:], y, present, w, 0.7)
        expected = Task.smd_loss(task, outputs[0], outputs[1:], y, present, w, 0.7)
        assert_close(got, expected, rtol=1e-6)


# --- the linear path's penalty ---------------------------------------------------------


def test_linear_l2_is_scikit_learns_convention():
    task = DiscreteSurvivalTask(CUTS)
    weight = torch.as_tensor([0.5, 1.5, 2.0])
    assert task.linear_l2(0.25, weight) == pytest.approx(1.0 / (2.0 * 0.25 * 4.0))
    assert task.linear_l2(0.25, weight, task.encode_targets([1.0, 2.0, 3.0], [1, 0, 1])) \
        == task.linear_l2(0.25, weight)


def test_linear_path_per_interval_is_logistic_regression_on_person_periods():
    from sklearn.linear_model import LogisticRegression

    X, time, event = ph_data(150, seed=10)
    X = X * np.array([1.0, 10.0, 0.1]) + 3.0  # units: the path standardises
    task = DiscreteSurvivalTask.from_targets(time, event, n_bins=3)
    C = 0.1
    linear = fit_linear(X, time, event, task, C)
    ours = linear_outputs(linear, X).double().numpy()

    standardised = (X - X.mean(0)) / X.std(0)  # population std, as the path
    interval, has_event = discretise(time, event, task.cuts)
    for j in range(task.n_bins):
        rows = interval >= j
        label = has_event[rows] & (interval[rows] == j)
        model = LogisticRegression(C=C, tol=1e-10, max_iter=10_000)
        model.fit(standardised[rows], label)
        expected = model.decision_function(standardised)
        np.testing.assert_allclose(ours[:, j], expected, atol=2e-3)


def test_scaling_the_weights_is_scaling_C_and_mean_one_weights_are_scale_free():
    X, time, event = ph_data(120, seed=11)
    task = DiscreteSurvivalTask.from_targets(time, event, n_bins=4)
    rng = np.random.default_rng(11)
    w = rng.uniform(0.2, 2.0, size=len(X))
    base = linear_outputs(fit_linear(X, time, event, task, 0.05, w), X)
    # scikit-learn's convention: weights times 4 = C times 4
    scaled = linear_outputs(fit_linear(X, time, event, task, 0.05, 4 * w), X)
    more_c = linear_outputs(fit_linear(X, time, event, task, 0.2, w), X)
    assert_close(scaled, more_c, atol=1e-3)
    assert (scaled - base).abs().max() > 0.05  # so the comparison above can fail
    # the estimator divides weights by their mean: then any scale fits the same model
    for factor in (1e-3, 50.0):
        v = factor * w
        again = linear_outputs(fit_linear(X, time, event, task, 0.05, v / v.mean()), X)
        ref = linear_outputs(fit_linear(X, time, event, task, 0.05, w / w.mean()), X)
        assert_close(again, ref, atol=1e-4)


# --- curves, risk scores, persistence, end to end ----------------------------------------


def test_combine_averages_monotone_survival_curves():
    task = DiscreteSurvivalTask(CUTS)
    rng = np.random.default_rng(12)
    members = [torch.as_tensor(rng.normal(scale=3.0, size=(6, 3)), dtype=torch.float32)
               for _ in range(3)]
    members[0][0] = torch.tensor([60.0, -60.0, 60.0])  # extreme hazards
    one = task.combine(members[:1])
    h = 1.0 / (1.0 + np.exp(-members[0].double().numpy()))
    # (1 - h rounds to 0 in float64 where the task, in log space, stays exact)
    np.testing.assert_allclose(one.numpy(), np.cumprod(1.0 - h, axis=1), rtol=1e-10,
                               atol=1e-20)
    assert 0.0 < float(one[0, 0]) < 1e-20
    curves = task.combine(members)
    assert curves.dtype == torch.float64 and curves.shape == (6, 3)
    singles = torch.stack([task.combine([m]) for m in members])
    assert_close(curves, singles.mean(0), rtol=1e-12)
    assert torch.isfinite(curves).all()
    assert ((curves >= 0) & (curves <= 1)).all()
    assert (curves[:, 1:] <= curves[:, :-1]).all()
    assert_close(survival_curves(members[1].double()), task.combine(members[1:2]), rtol=1e-12)


def test_survival_at_is_a_step_function_over_the_cuts():
    curves = np.array([[0.9, 0.6, 0.2], [0.5, 0.5, 0.1]])
    got = survival_at(curves, CUTS, [0.0, 0.99, 1.0, 2.0, 3.0, 5.9, 6.0, 100.0])
    expected = [[1.0, 1.0, 0.9, 0.9, 0.6, 0.6, 0.2, 0.2],
                [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1]]
    np.testing.assert_array_equal(got, expected)
    assert survival_at(torch.as_tensor(curves), CUTS, [2.0]).shape == (2, 1)
    with pytest.raises(ValueError, match="one column per interval"):
        survival_at(curves[:, :2], CUTS, [1.0])


def test_risk_score_is_minus_the_restricted_mean_survival_time():
    curves = np.array([[0.9, 0.6, 0.2], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    # widths 1, 2, 3; trapezoids between the survival at each interval's two ends
    rmst = restricted_mean_survival_time(curves, CUTS)
    np.testing.assert_allclose(rmst, [1 * 1.9 / 2 + 2 * 1.5 / 2 + 3 * 0.8 / 2, 6.0, 0.5])
    np.testing.assert_allclose(risk_score(curves, CUTS), -rmst)
    # a curve lower everywhere, even only in the last interval, is a higher risk
    lower = curves[:1] * np.array([1.0, 1.0, 0.5])
    assert risk_score(lower, CUTS)[0] > risk_score(curves[:1], CUTS)[0]


def test_the_task_rebuilds_from_its_cuts_and_pickles():
    time = np.array([5.0, 1.0, 8.0, 2.5, 3.0, 9.5, 0.5, 4.0])
    event = np.array([1, 1, 0, 1, 1, 0, 1, 1])
    task = DiscreteSurvivalTask.from_targets(time, event, n_bins=3)
    assert (task.name, task.full_loss_name, task.target_dtype) \
        == ("survival", "discrete_loss", torch.float32)
    assert task.n_outputs == task.n_bins == len(task.cuts) - 1 == 3
    assert task.cuts == discrete_cuts(time, event, 3).tolist()
    y = task.encode_targets(time, event)
    logits = torch.as_tensor(hand_logits(13, n=len(time)), dtype=torch.float32)
    loss = task.loss(logits, y)  # fills the device cache
    rebuilt = DiscreteSurvivalTask(json.loads(json.dumps(task.cuts)))
    assert float(rebuilt.loss(logits, y)) == float(loss)
    unpickled = pickle.loads(pickle.dumps(task))
    assert unpickled.cuts == task.cuts and float(unpickled.loss(logits, y)) == float(loss)
    assert repr(task).startswith("DiscreteSurvivalTask(cuts=[0.0, ")
    labels = task.contrastive_labels(y)
    assert labels.tolist() == list(range(len(time)))  # label-free


def test_a_linear_model_trained_with_the_loss_ranks_proportional_hazards():
    X, time, event = ph_data(600, seed=14)
    train, test = slice(0, 300), slice(300, 600)
    task = DiscreteSurvivalTask.from_targets(time[train], event[train])
    assert task.n_bins == default_n_bins(event[train].sum())
    linear = fit_linear(X[train], time[train], event[train], task, C=1.0)
    curves = task.combine([linear_outputs(linear, X[test])])
    risk = risk_score(curves, task.cuts)
    c_index = concordance_index(time[test], event[test], risk)
    assert c_index > 0.65
    # the curves themselves rank too: survival at the median event time
    middle = np.median(time[train][event[train]])
    at_middle = survival_at(curves, task.cuts, [middle])[:, 0]
    assert concordance_index(time[test], event[test], -at_middle) > 0.65
