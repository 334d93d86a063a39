"""
Disease progression from clinical measurements and blood serum
===============================================================

scikit-learn's diabetes data are 442 real patients: age, sex, body-mass index and
blood pressure measured at the clinic, six blood-serum measurements from the lab, and
a continuous outcome, a measure of disease progression one year later. We treat the
clinic and the lab as two modalities, withhold the lab results of some patients (as
when a test was never ordered), and compare
:class:`~mmfusion_sklearn.MultimodalFusionRegressor` with what a data scientist tries
first: a ridge regression per modality and their average.
"""

# %%
# Two modalities, some patients without lab results
# --------------------------------------------------
import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmfusion_sklearn import MultimodalData, MultimodalFusionRegressor
from mmfusion_sklearn.metrics import missing_modality_report

diabetes = load_diabetes(as_frame=True, scaled=False)
frame, y = diabetes.data, diabetes.target.to_numpy()
clinic = frame[["age", "sex", "bmi", "bp"]]
lab = frame[["s1", "s2", "s3", "s4", "s5", "s6"]].copy()
rng = np.random.default_rng(0)
no_lab = rng.random(len(y)) < 0.3  # 30 % of patients have no lab results
lab[no_lab] = np.nan
X = MultimodalData({"clinic": clinic, "lab": lab})
train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0)
print(f"{len(train)} training, {len(test)} test patients; {no_lab.mean():.0%} without lab")

# %%
# The fused model
# ---------------
# Defaults, apart from fewer epochs and no contrastive stage so that this page builds
# quickly. The target (in the data set's own units) is standardised inside ``fit``;
# predictions come back in those units.
reg = MultimodalFusionRegressor(max_epochs=20, pretrain_epochs=0, device="cpu",
                                random_state=0)
reg.fit(X[train], y[train])
print(f"R² on the test patients: {reg.score(X[test], y[test]):.3f}")

# %%
# Every subset of modalities from one model
# -----------------------------------------
# ``missing_modality_report`` withholds modalities from every test patient: the lab
# alone, the clinic alone. Patients left with nothing are counted, not scored.
report = missing_modality_report(reg, X[test], y[test], scoring=["r2",
                                 "neg_mean_absolute_error"])
print(report[["modalities", "n_samples", "r2", "neg_mean_absolute_error"]])

# %%
# Against ridge specialists and their late fusion
# -----------------------------------------------
# A ridge regression per modality (penalty by internal cross-validation), each trained
# on the patients that have its modality, and the average of the available ones.


def ridge():
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


has_lab = ~no_lab
specialists = {
    "clinic": ridge().fit(clinic.iloc[train], y[train]),
    "lab": ridge().fit(lab.iloc[train[has_lab[train]]], y[train[has_lab[train]]]),
}
clinic_pred = specialists["clinic"].predict(clinic.iloc[test])
lab_pred = np.full(len(test), np.nan)
lab_rows = has_lab[test]
lab_pred[lab_rows] = specialists["lab"].predict(lab.iloc[test[lab_rows]])
late = np.nanmean(np.stack([clinic_pred, lab_pred]), axis=0)
scores = pd.Series({
    "fused model": r2_score(y[test], reg.predict(X[test])),
    "ridge, clinic only": r2_score(y[test], clinic_pred),
    "ridge late fusion": r2_score(y[test], late),
}, name="R² (test)")
print(scores.round(3))

# %%
# One split of 133 patients says little: ``benchmarks/regression.py`` compares these
# methods over repeated cross-validation with paired tests (docs/benchmarks_regression).
