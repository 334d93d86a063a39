"""
Which modality did each prediction rest on?
===========================================

For one patient, a clinician asks why the model says what it says; for a cohort, an
analyst asks which modality carries the signal. At the level of modalities both have
an exact answer with this model, because it can predict with any modality withheld:
:func:`~mmfusion_sklearn.metrics.modality_contributions` gives, per patient and per
modality, the change in the predicted log-odds when that modality is withheld (its
learned token takes its place, as when it is missing).

The data are the GSE7390 breast-cancer cohort (76 gene expressions and four clinical
variables; distant metastasis). The genes are first reduced to ten principal
components by a :class:`~mmfusion_sklearn.ModalityTransformer` in a pipeline: the
``ColumnTransformer`` of multimodal data, which applies a scikit-learn transformer to
one modality and leaves the others as they are.
"""

# %%
# A pipeline with per-modality preprocessing
# ------------------------------------------
import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.datasets import load_breast_cancer

from mmfusion_sklearn import (
    ModalityTransformer,
    MultimodalData,
    MultimodalFusionClassifier,
)

frame, outcome = load_breast_cancer()
y = np.where(outcome["e.tdm"], "metastasis", "none")
clinical_columns = ["age", "er", "grade", "size"]
X = MultimodalData(
    {
        "genes": frame.drop(columns=clinical_columns),
        "clinical": frame[clinical_columns],
    }
)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)

model = make_pipeline(
    ModalityTransformer(
        [("genes", make_pipeline(StandardScaler(), PCA(n_components=10)))]
    ),
    MultimodalFusionClassifier(
        embed_dim=32,
        max_epochs=40,
        pretrain_epochs=3,
        ensemble_size=1,
        device="cpu",
        random_state=0,
    ),
)
model.fit(X_train, y_train)
print(model[0].transform(X_test))
print("classes:", model.classes_)

# %%
# Contributions per patient
# -------------------------
#
# One row per test patient, one column per modality, in units of log-odds of
# ``classes_[1]`` (here "none": a negative contribution pushes towards metastasis).
# The pipeline is explained as a whole; the contributions do not have to add up to the
# full log-odds, since the modalities interact in the fusion network.
from mmfusion_sklearn.metrics import modality_contributions

contributions = modality_contributions(model, X_test, target="metastasis")
contributions.head()

# %%
# With ``target="metastasis"`` a positive value pushes towards metastasis. The
# patients the model ranks highest, and what it rested on for them:
risk = model.predict_proba(X_test)[:, list(model.classes_).index("metastasis")]
top = np.argsort(-risk)[:5]
contributions.iloc[top].assign(risk=risk[top].round(3), outcome=y_test[top])

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5.5, 4.5))
for label, marker, colour in [("none", "o", "C0"), ("metastasis", "^", "C3")]:
    rows = y_test == label
    ax.scatter(
        contributions.loc[rows, "genes"],
        contributions.loc[rows, "clinical"],
        marker=marker,
        color=colour,
        alpha=0.75,
        label=f"outcome: {label}",
    )
ax.axhline(0, color="grey", lw=1)
ax.axvline(0, color="grey", lw=1)
ax.set_xlabel("contribution of the genes (log-odds of metastasis)")
ax.set_ylabel("contribution of the clinical variables")
ax.set_title(f"{len(y_test)} test patients")
ax.legend(fontsize="small")
fig.tight_layout()

# %%
# Each point is a patient: to the right of the vertical line the genes raised the
# predicted risk, above the horizontal one the clinical variables did. Patients in
# the upper right have both modalities pointing the same way.
#
# Over the cohort
# ---------------
#
# The mean absolute contribution says how much each modality moves the predictions;
# :func:`~mmfusion_sklearn.metrics.modality_importance` says how much the score drops
# when it is withheld from everyone. They answer different questions: a modality can
# move predictions a lot and still add little to the ranking.
from mmfusion_sklearn.metrics import modality_importance

print(contributions.abs().mean().round(3).to_dict())
modality_importance(model, X_test, y_test)

# %%
# scikit-learn's :func:`~sklearn.inspection.permutation_importance` also takes a
# ``MultimodalData``, shuffling whole modalities across patients; see
# :doc:`/explanations` for all three tools side by side.
