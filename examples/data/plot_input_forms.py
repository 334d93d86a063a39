"""
Four ways to give ``X``: dict, records, MultimodalData, DataFrame
=================================================================

The same patients can reach the estimator in whichever shape the data already have:
a dict of modalities (one table or image stack per modality), a list of per-patient
records (what a JSON export or a document database gives), a
:class:`~mmfusion_sklearn.MultimodalData` container (for scikit-learn's model
selection), or one flat DataFrame whose column groups you name. A model fitted on one
form predicts on the others.

The data are scikit-learn's breast-cancer set: 569 fine-needle aspirates, each
described by ten measurements of its cell nuclei (radius, texture, concavity, ...)
computed from a digitised image, summarised three ways: the mean over the nuclei, the
standard error, and the mean of the three largest ("worst") values. We treat the
three summaries as three modalities.
"""

# %%
# One flat DataFrame, and a column spec
# -------------------------------------
#
# Most tables arrive flat. ``modalities`` maps each modality name to its columns; the
# labels can be strings (any hashable values work).
import numpy as np
from sklearn.datasets import load_breast_cancer

from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier

cancer = load_breast_cancer(as_frame=True)
df = cancer.frame.drop(columns="target")
y = cancer.target_names[cancer.target]  # "malignant" / "benign"
groups = {
    "mean": [c for c in df.columns if c.startswith("mean ")],
    "error": [c for c in df.columns if c.endswith(" error")],
    "worst": [c for c in df.columns if c.startswith("worst ")],
}
print({name: len(columns) for name, columns in groups.items()})

# Small and fast for this page; the defaults are for real use.
settings = dict(
    embed_dim=16,
    max_epochs=10,
    pretrain_epochs=0,
    early_stopping=False,
    device="cpu",
    random_state=0,
)
clf = MultimodalFusionClassifier(modalities=groups, **settings).fit(df, y)
print(clf.classes_, {name: m.kind for name, m in clf.modalities_.items()})

# %%
# A dict of modalities
# --------------------
#
# The basic form: ``{modality name: per-sample values}``. Here each value is a slice
# of the DataFrame; it could equally be a NumPy array, a stack of images or a list of
# file paths. The model fitted on the flat DataFrame takes it as it is.
X_dict = {name: df[columns] for name, columns in groups.items()}
proba_df = clf.predict_proba(df)
proba_dict = clf.predict_proba(X_dict)
print("same probabilities:", np.allclose(proba_df, proba_dict))

# %%
# Records: one dict per patient
# -----------------------------
#
# Each record maps a modality to that patient's values; a table row is a dict of
# ``{column: value}``, as in a JSON export. A key absent from a record means that this
# patient lacks that modality. Say the standard errors were only exported for every
# third patient:
rows = {name: df[columns].to_dict("records") for name, columns in groups.items()}
records = [{name: rows[name][i] for name in groups} for i in range(len(df))]
for i, record in enumerate(records):
    if i % 3:
        del record["error"]
print(list(records[1]), list(records[3]))
print(records[3]["error"])
clf.predict_proba(records[:4]).round(3)

# %%
# MultimodalData: a container scikit-learn can slice
# --------------------------------------------------
#
# Built from a dict or from records, it has a length, integer, slice and mask
# indexing, and a ``presence`` table saying which patient has which modality. Because
# it slices like an array, ``train_test_split``, ``StratifiedKFold``,
# ``cross_val_score`` and ``GridSearchCV`` take it unchanged.
from sklearn.model_selection import cross_val_score

data = MultimodalData(records)
print(data)
data.presence.head()

# %%
scores = cross_val_score(
    MultimodalFusionClassifier(**settings), data, y, cv=3, scoring="roc_auc"
)
print("AUROC of each fold:", scores.round(3))

# %%
# The presence table is also a quick picture of what is missing where:
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 1.8))
ax.imshow(
    data.presence.to_numpy()[:60].T,
    aspect="auto",
    cmap="Greys",
    interpolation="nearest",
)
ax.set_yticks(range(data.shape[1]), data.modality_names)
ax.set_xlabel("patient (first 60)")
ax.set_title("Modalities present (black)")
fig.tight_layout()

# %%
# Whatever the form, missing values follow the same rules: ``None`` for a sample's
# image or file, an all-NaN table row, or an absent key mark the modality missing for
# that patient; a NaN in an otherwise filled row is a missing feature. The
# :ref:`next example <sphx_glr_auto_examples_data_plot_missing_modalities.py>`
# trains with modalities missing and measures what each subset of modalities is
# worth.
