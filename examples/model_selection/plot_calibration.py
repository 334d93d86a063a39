"""
Calibrated probabilities under every subset of modalities
=========================================================

A probability of 0.8 should come true four times in five, whether it was computed from
every modality or from the only one a patient has. A network's probabilities are often
over- or under-confident, and by different amounts for different subsets of
modalities. ``calibration="temperature"`` fits, after training, one temperature per
subset of modalities on the held-out rows, and divides each sample's log-probabilities
by the temperature of the modalities it has: probabilities move, predicted labels never
change.

The data are scikit-learn's breast-cancer set (569 fine-needle aspirates; ten nuclear
measurements summarised as mean, standard error and "worst", our three modalities).
"""

# %%
# Two fits, with and without temperatures
# ---------------------------------------
#
# The temperatures are fitted on the rows early stopping holds out. With more than one
# network, every training row is held out by one of them (cross-fitting), so all the
# training rows serve; we train two networks to keep the page fast (the default trains
# five on a table this size).
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier

cancer = load_breast_cancer(as_frame=True)
df = cancer.frame.drop(columns="target")
y = cancer.target_names[cancer.target]
X = MultimodalData(
    {
        "mean": df[[c for c in df if c.startswith("mean ")]],
        "error": df[[c for c in df if c.endswith(" error")]],
        "worst": df[[c for c in df if c.startswith("worst ")]],
    }
)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.4, stratify=y, random_state=0
)

settings = dict(
    embed_dim=16,
    max_epochs=15,
    pretrain_epochs=0,
    ensemble_size=2,
    device="cpu",
    random_state=0,
)
plain = MultimodalFusionClassifier(**settings).fit(X_train, y_train)
calibrated = MultimodalFusionClassifier(calibration="temperature", **settings)
calibrated.fit(X_train, y_train)
calibrated.temperatures_

# %%
# A temperature above 1 softens over-confident probabilities, one below 1 sharpens
# under-confident ones. Here the network is over-confident when it has two or three
# modalities and a little under-confident with one: a single temperature for all
# subsets could not correct both. The labels are the same:
same = (plain.predict(X_test) == calibrated.predict(X_test)).all()
print("same predictions:", same)

# %%
# Log loss per subset of modalities
# ---------------------------------
#
# :func:`~mmfusion_sklearn.metrics.missing_modality_report` scores both models with
# each subset of modalities given, on the 228 test aspirates.
import matplotlib.pyplot as plt
import pandas as pd

from mmfusion_sklearn.metrics import missing_modality_report

models = {"no calibration": plain, 'calibration="temperature"': calibrated}
losses = pd.DataFrame(
    {
        name: -missing_modality_report(
            model, X_test, y_test, scoring="neg_log_loss"
        ).set_index("modalities")["neg_log_loss"]
        for name, model in models.items()
    }
)
losses.round(3)

# %%
ax = losses.plot.barh(figsize=(6.5, 3.6), color=["C7", "C0"])
ax.set_xlabel("test log loss (lower is better)")
ax.set_ylabel("modalities given")
ax.invert_yaxis()
ax.legend(fontsize="small", loc="lower right")
plt.tight_layout()

# %%
# The log loss falls most with all three modalities, whose temperature is the
# furthest from 1, and no subset gets worse by more than a few thousandths (the
# temperatures are fitted on the training rows, the losses measured on the test
# ones). For a reliability diagram, scikit-learn's
# :class:`~sklearn.calibration.CalibrationDisplay` takes a column of
# ``predict_proba``.
#
# Calibration is learned from the held-out rows only, so it costs no test data and no
# extra fit; it needs ``early_stopping=True``, the default. Predictions for patients
# with other subsets of modalities use their own subset's temperature. The benchmarks
# report log loss, Brier score and expected calibration error for every scenario
# (:doc:`/benchmarks`).
