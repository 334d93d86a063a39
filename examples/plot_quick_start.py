"""
Quick start: metastasis from gene expression and clinical data
==============================================================

GSE7390 is a cohort of 198 breast-cancer patients with, for each, the expression of 76
genes measured on the tumour and four clinical variables (age, tumour size, grade,
oestrogen-receptor status). The question: which patients develop distant metastases?

This example fits a :class:`~mmfusion_sklearn.MultimodalFusionClassifier` on the two
modalities together, scores it on held-out patients, and then asks it the question a
clinic without a gene-expression assay would ask: what does the model say from the
clinical variables alone? One fitted model answers both.
"""

# %%
# The data: two modalities of the same patients
# ----------------------------------------------
#
# scikit-survival ships the cohort; the label is the metastasis event (``e.tdm``,
# 1 = observed). A modality is a table (or images, volumes, embeddings) whose rows are
# the patients, so the input is a dict with one entry per modality.
from sksurv.datasets import load_breast_cancer

frame, outcome = load_breast_cancer()
y = outcome["e.tdm"].astype(int)
clinical_columns = ["age", "er", "grade", "size"]
X = {
    "genes": frame.drop(columns=clinical_columns),  # 76 numeric columns
    "clinical": frame[clinical_columns],  # numbers and categories (er, grade)
}
print(f"{len(y)} patients, {y.sum()} with metastasis")
X["clinical"].head()

# %%
# The clinical table mixes numbers with categorical columns (``er`` is "positive" or
# "negative"; ``grade`` is "well differentiated", "intermediate" or "poorly
# differentiated", and "unkown" for two patients): the estimator encodes them itself,
# no preprocessing pipeline is needed.
#
# Train and test patients
# -----------------------
#
# :class:`~mmfusion_sklearn.MultimodalData` wraps the dict so that scikit-learn's
# model-selection tools can index it like an array.
from sklearn.model_selection import train_test_split

from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier

data = MultimodalData(X)
X_train, X_test, y_train, y_test = train_test_split(
    data, y, test_size=0.3, stratify=y, random_state=0
)
print(X_train)

# %%
# Fit
# ---
#
# The defaults are the ones to use on real data. To build this page in seconds we make
# the network smaller (``embed_dim=32`` instead of 128), train one network instead of
# the five cross-fitted ones the default trains on a table this size, and shorten the
# contrastive stage; early stopping on a held-out tenth of the training patients
# picks the epoch.
clf = MultimodalFusionClassifier(
    embed_dim=32,
    pretrain_epochs=3,
    max_epochs=40,
    ensemble_size=1,
    device="cpu",
    random_state=0,
)
clf.fit(X_train, y_train)
print("modalities:", {name: m.kind for name, m in clf.modalities_.items()})
print("epoch kept by early stopping:", clf.best_epoch_)

# %%
# ``history_`` holds one row per epoch of each training stage: here the losses of the
# classification stage on the training rows and on the held-out ones.
import matplotlib.pyplot as plt

history = clf.history_[clf.history_["stage"] == "classification"]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(history["epoch"], history["train_loss"], label="training rows")
ax.plot(history["epoch"], history["valid_loss"], label="held-out rows")
ax.axvline(clf.best_epoch_, color="grey", ls=":", label="epoch kept")
ax.set_xlabel("epoch")
ax.set_ylabel("loss")
ax.set_title("Classification stage")
ax.legend()
fig.tight_layout()

# %%
# Predict with every modality, and with the clinical variables alone
# -------------------------------------------------------------------
#
# ``predict_proba`` takes the same form of ``X``. Leaving a modality out of the dict
# means "not available for any of these patients": the model's learned token for that
# modality takes its place, so no refit, no imputation and no second model are
# needed.
from sklearn.metrics import RocCurveDisplay, roc_auc_score

from mmfusion_sklearn.metrics import restrict_modalities

probas = {
    "genes + clinical": clf.predict_proba(X_test)[:, 1],
    "clinical only": clf.predict_proba({"clinical": X_test.values("clinical")})[
        :, 1
    ],
    "genes only": clf.predict_proba(restrict_modalities(X_test, ["genes"]))[:, 1],
}
for name, proba in probas.items():
    print(f"test AUROC, {name:16}: {roc_auc_score(y_test, proba):.3f}")

# %%
# sphinx_gallery_thumbnail_number = 2
fig, ax = plt.subplots(figsize=(4.5, 4.5))
for name, proba in probas.items():
    RocCurveDisplay.from_predictions(y_test, proba, name=name, ax=ax)
ax.plot([0, 1], [0, 1], color="lightgrey", lw=1)
ax.set_title(f"{len(y_test)} test patients")
fig.tight_layout()

# %%
# What a logistic regression on the clinical table makes of the same split gives a
# yardstick for the clinical-only score:
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

baseline = make_pipeline(
    make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["er", "grade"]),
        remainder=StandardScaler(),
    ),
    LogisticRegression(),
)
baseline.fit(X_train.values("clinical"), y_train)
proba_baseline = baseline.predict_proba(X_test.values("clinical"))[:, 1]
auroc = roc_auc_score(y_test, proba_baseline)
print(f"test AUROC, logistic regression on clinical: {auroc:.3f}")

# %%
# Sixty test patients with 15 events make each of these AUROCs uncertain by several
# hundredths, so read them as a rough picture (most of the signal is in the genes),
# not as a ranking. The :doc:`benchmark pages </benchmarks>` compare the estimator
# with per-modality logistic regressions, gradient boosting and late fusion on this
# cohort over 15 cross-validation splits, with every modality and with each one
# withheld.
#
# Where next: :ref:`the other input forms <sphx_glr_auto_examples_data_plot_input_forms.py>`,
# :ref:`training with missing modalities <sphx_glr_auto_examples_data_plot_missing_modalities.py>`,
# and the :doc:`user guide </user_guide>`.
