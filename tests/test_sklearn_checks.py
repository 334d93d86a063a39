"""scikit-learn's estimator checks on a plain 2-D array (one tabular modality)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from mmfusion_sklearn import MultimodalFusionClassifier, MultimodalFusionRegressor

# Each entry says why the check cannot pass for a minibatch neural network.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "minibatch SGD: a weight of 2 is not the same as a duplicated sample, since "
        "batch composition and the number of steps differ"
    ),
    "check_methods_subset_invariance": (
        "float32 network: matrix products differ by ~1e-6 relative between batch sizes "
        "(BLAS blocking), while the check demands 1e-7"
    ),
}


CHEAP = {"embed_dim": 16, "max_epochs": 30, "pretrain_epochs": 0, "early_stopping": False,
         "batch_size": 32, "lr": 1e-2, "random_state": 0}


@parametrize_with_checks(
    [MultimodalFusionClassifier(**CHEAP), MultimodalFusionRegressor(**CHEAP)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
