"""
Missing modalities: train on what there is, predict on what comes
=================================================================

In a real cohort not every patient has every test: a gene-expression assay is
expensive, a scan was never ordered, a file is lost. Dropping those patients throws
data away, and a separate model per combination of available modalities multiplies
the work. :class:`~mmfusion_sklearn.MultimodalFusionClassifier` trains on every
patient with at least one modality and serves every subset of modalities with one
model: a learned token stands in for each absent modality, and training optimises the
full input and each modality alone at the same time (simultaneous modality dropout).

We take the GSE7390 breast-cancer cohort (76 gene expressions and four clinical
variables; distant metastasis), withhold the genes from 40 % of the training patients,
and measure what the fitted model does with each subset of modalities on held-out
patients, with :func:`~mmfusion_sklearn.metrics.missing_modality_report`.
"""

# %%
# A cohort where the genes are missing for some patients
# ------------------------------------------------------
#
# An all-NaN table row marks the modality missing for that patient (``None`` does the
# same for an image or a file, and so does a key absent from a record).
import numpy as np
from sklearn.model_selection import train_test_split
from sksurv.datasets import load_breast_cancer

from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier

frame, outcome = load_breast_cancer()
y = outcome["e.tdm"].astype(int)
clinical_columns = ["age", "er", "grade", "size"]
genes = frame.drop(columns=clinical_columns)
clinical = frame[clinical_columns]

train, test = train_test_split(
    np.arange(len(y)), test_size=0.3, stratify=y, random_state=0
)
rng = np.random.default_rng(0)
no_assay = rng.choice(train, size=int(0.4 * len(train)), replace=False)
genes_observed = genes.copy()
genes_observed.loc[no_assay] = np.nan  # these training patients were never profiled

X_train = MultimodalData(
    {"genes": genes_observed.loc[train], "clinical": clinical.loc[train]}
)
y_train, y_test = y[train], y[test]
X_test = MultimodalData({"genes": genes.loc[test], "clinical": clinical.loc[test]})
print(X_train)
print(X_test)

# %%
# Fit on every training patient
# -----------------------------
#
# Nothing to impute and nobody to drop: the patients without genes train the
# clinical pathway and the fusion, with the genes' token in place of the genes. The
# settings are small so that the page builds in seconds.
settings = dict(
    embed_dim=32,
    max_epochs=20,
    pretrain_epochs=0,
    ensemble_size=1,
    device="cpu",
    random_state=0,
)
clf = MultimodalFusionClassifier(**settings).fit(X_train, y_train)

# %%
# Predict with a modality absent
# ------------------------------
#
# At prediction time a modality can be absent for some patients (NaN rows, ``None``
# items, keys missing from records) or for all of them (the key left out of the
# dict). Here a clinic without the assay sends only the clinical table:
proba = clf.predict_proba({"clinical": clinical.loc[test[:5]]})
print(proba.round(3))

# %%
# A patient with no modality at all cannot be predicted, and the estimator says so
# rather than returning a guess:
try:
    clf.predict_proba([{"clinical": clinical.loc[test[0]].to_dict()}, {}])
except ValueError as error:
    print(error)

# %%
# Every subset of modalities, scored at once
# ------------------------------------------
#
# :func:`~mmfusion_sklearn.metrics.missing_modality_report` withholds each subset of
# modalities from every test patient in turn and scores what is left: the table of
# the paper (full / genes only / clinical only) in one call.
from mmfusion_sklearn.metrics import missing_modality_report

report = missing_modality_report(
    clf, X_test, y_test, scoring=["roc_auc", "neg_log_loss"]
)
report

# %%
# One split is not a measurement
# -------------------------------
#
# Sixty test patients with 15 events leave each of these AUROCs uncertain by several
# hundredths. For a measurement, repeat the experiment over the five folds of a
# stratified cross-validation, the genes again withheld from 40 % of each training
# fold, and look at the spread. ``MultimodalData`` is sliced by the folds' indices
# like an array.
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import StratifiedKFold

full = MultimodalData({"genes": genes, "clinical": clinical})
reports = []
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
for fold, (train, test) in enumerate(folds.split(np.zeros(len(y)), y)):
    genes_observed = genes.copy()
    no_assay = rng.choice(train, size=int(0.4 * len(train)), replace=False)
    genes_observed.loc[no_assay] = np.nan
    X_fold = MultimodalData(
        {"genes": genes_observed.loc[train], "clinical": clinical.loc[train]}
    )
    model = MultimodalFusionClassifier(**settings).fit(X_fold, y[train])
    report = missing_modality_report(model, full[test], y[test])
    reports.append(report.assign(fold=fold))
scores = pd.concat(reports).pivot(
    index="fold", columns="modalities", values="roc_auc"
)
scores.round(3)

# %%
fig, ax = plt.subplots(figsize=(6.5, 2.8))
for i, name in enumerate(scores.columns):
    ax.plot(scores[name], [i] * len(scores), "o", color="C0", alpha=0.6)
    ax.plot(scores[name].mean(), i, "|", color="black", ms=22, mew=2.5)
ax.set_yticks(range(scores.shape[1]), scores.columns)
ax.set_ylim(scores.shape[1] - 0.5, -0.5)
ax.axvline(0.5, color="grey", lw=1, ls=":")
ax.set_xlabel("test AUROC of each of the 5 folds (dots) and their mean (bar)")
ax.set_ylabel("modalities given")
fig.tight_layout()

# %%
# Five folds of 40 patients are still a small experiment: the folds disagree by more
# than the subsets do. What the page shows is the mechanism: one model per fold
# answers for every subset of modalities, including the clinical table alone, having
# trained on patients with and without genes. The :doc:`benchmarks </benchmarks>`
# measure it properly (15 splits, two training regimes, each modality withheld from
# 25 % to 100 % of the test patients, against unimodal specialists and early and late
# fusion, with paired tests).
#
# :func:`~mmfusion_sklearn.metrics.modality_importance` gives the related summary
# per modality: how much the score drops when it is withheld.
from mmfusion_sklearn.metrics import modality_importance

modality_importance(clf, X_test, y_test)
