"""
Survival on GSE7390: metastasis-free time from genes and the clinic
===================================================================

GSE7390 (shipped with scikit-survival) holds 198 real breast-cancer patients: 76 gene
expressions of the tumour, four clinical variables (age, tumour size, grade, oestrogen
receptor status), and for each patient the time to distant metastasis or, for the 147
without one, to the last follow-up (censored). We keep the censoring, fit
:class:`~mmfusion_sklearn.MultimodalFusionSurvivalAnalysis` on two modalities, withhold
the genes of some test patients (as when no tumour sample was profiled), and score it
with scikit-survival's metrics against ridge Cox models per modality.
"""

# %%
# Two modalities and the follow-up
# --------------------------------
# ``y`` is scikit-survival's structured array: the event indicator, then the time.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sksurv.datasets import load_breast_cancer
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import (
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.preprocessing import OneHotEncoder

from mmfusion_sklearn import MultimodalData, MultimodalFusionSurvivalAnalysis
from mmfusion_sklearn.metrics import missing_modality_report

frame, y = load_breast_cancer()
genes = [c for c in frame.columns if c.startswith("X")]
clinical = [c for c in frame.columns if c not in genes]
X = MultimodalData(frame, modalities={"genes": genes, "clinical": clinical})
event, days = y["e.tdm"], y["t.tdm"]
train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=event,
                               random_state=0)
print(f"{len(train)} training, {len(test)} test patients; "
      f"{event.sum()} metastases, {(~event).sum()} censored")

# %%
# The fused survival model
# ------------------------
# Defaults, apart from ``device="cpu"`` (the same results on any machine). ``predict``
# gives risk scores (higher: earlier metastasis) and ``score`` Harrell's concordance
# index; a Breslow baseline hazard turns them into survival curves.
surv = MultimodalFusionSurvivalAnalysis(device="cpu", random_state=0)
surv.fit(X[train], y[train])
print(f"Harrell's C on the test patients: {surv.score(X[test], y[test]):.3f}")

# %%
# Every subset of modalities from one model
# -----------------------------------------
report = missing_modality_report(surv, X[test], y[test])
print(report)

# %%
# scikit-survival's metrics on the outputs
# ----------------------------------------
# Uno's concordance index (weighted for censoring, up to 10 years), the time-dependent
# AUC at 3, 5 and 8 years, and the integrated Brier score of the survival curves from
# 2 to 8 years, against the same Kaplan-Meier curve for every patient.
times = np.array([3, 5, 8]) * 365.25
risk = surv.predict(X[test])
uno = concordance_index_ipcw(y[train], y[test], risk, tau=10 * 365.25)[0]
_, auc = cumulative_dynamic_auc(y[train], y[test], risk, times)
grid = np.linspace(2, 8, 25) * 365.25
curves = surv.predict_survival_function(X[test])
ibs = integrated_brier_score(y[train], y[test], np.vstack([f(grid) for f in curves]), grid)
km_times, km = kaplan_meier_estimator(event[train], days[train])
km_at = km[np.searchsorted(km_times, grid, side="right") - 1]
ibs_km = integrated_brier_score(y[train], y[test], np.tile(km_at, (len(test), 1)), grid)
print(f"Uno's C {uno:.3f}; mean time-dependent AUC {auc:.3f}; "
      f"integrated Brier score {ibs:.3f} (Kaplan-Meier: {ibs_km:.3f})")

# %%
# Against ridge Cox models per modality
# -------------------------------------
# scikit-survival's ``CoxPHSurvivalAnalysis`` with a ridge penalty on each modality
# (clinical categories one-hot encoded), and the late fusion of the two: the mean of
# their risk scores, standardised on the training patients.


def ridge_cox(alpha):
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(OneHotEncoder(), StandardScaler(), CoxPHSurvivalAnalysis(alpha=alpha))


def c_index(risk_scores):
    from sksurv.metrics import concordance_index_censored

    return concordance_index_censored(event[test], days[test], risk_scores)[0]


specialists, standardised = {}, {}
for name, alpha in (("genes", 100.0), ("clinical", 1.0)):
    values = X.values(name)
    model = ridge_cox(alpha).fit(values.iloc[train], y[train])
    on_train = model.predict(values.iloc[train])
    standardised[name] = (model.predict(values.iloc[test]) - on_train.mean()) / on_train.std()
print(f"ridge Cox, genes: {c_index(standardised['genes']):.3f}; clinical: "
      f"{c_index(standardised['clinical']):.3f}; late fusion: "
      f"{c_index(standardised['genes'] + standardised['clinical']):.3f}")

# %%
# Genes withheld from half the test patients
# ------------------------------------------
# One fitted model predicts every patient from whatever they have; the specialists'
# late fusion falls back to the clinical model where the genes are missing.
rng = np.random.default_rng(0)
no_genes = rng.random(len(test)) < 0.5
genes_left = X.values("genes").iloc[test].copy()
genes_left[no_genes] = np.nan  # an all-NaN row: the modality is missing
fused = surv.predict(MultimodalData({"genes": genes_left,
                                     "clinical": X.values("clinical").iloc[test]}))
late = np.where(no_genes, standardised["clinical"],
                (standardised["genes"] + standardised["clinical"]) / 2)
print(f"with half the genes withheld: fused model {c_index(fused):.3f}, "
      f"late fusion {c_index(late):.3f}")

# %%
# Survival curves of three test patients
# --------------------------------------
fig, ax = plt.subplots(figsize=(6, 4))
order = np.argsort(risk)
for i, label in ((order[0], "lowest risk"), (order[len(order) // 2], "median risk"),
                 (order[-1], "highest risk")):
    f = curves[i]
    ax.step(f.x / 365.25, f.y, where="post", label=label)
ax.step(km_times / 365.25, km, where="post", color="0.5", linestyle=":",
        label="Kaplan-Meier (training)")
ax.set_xlabel("years")
ax.set_ylabel("probability of no distant metastasis")
ax.set_ylim(0, 1.02)
ax.legend()

# %%
# One split of 60 patients says little: ``benchmarks/survival.py`` compares these
# methods over repeated cross-validation with paired tests
# (docs/benchmarks_survival.md).
