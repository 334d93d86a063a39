"""
Plotting a fitted model: training, missing modalities, importance
=================================================================

:mod:`mmfusion_sklearn.plotting` has three displays in scikit-learn's style
(``RocCurveDisplay``): ``from_estimator`` computes what to draw and draws it, ``plot``
draws it again (into your own axes if you pass them), and the display keeps the figure,
the axes and the numbers it drew.

* :class:`~mmfusion_sklearn.plotting.TrainingHistoryDisplay`: the losses of each
  training stage, per network, and the epoch early stopping kept;
* :class:`~mmfusion_sklearn.plotting.MissingModalityDisplay`: the score with each
  subset of modalities, and as a growing share of a modality's values goes missing;
* :class:`~mmfusion_sklearn.plotting.ModalityImportanceDisplay`: the drop in score when
  each modality is withheld.

The data are scikit-learn's breast-cancer set: 569 fine-needle aspirates, each
described by ten measurements of its cell nuclei summarised three ways (the mean, the
standard error and the "worst" value), which we treat as three modalities.
"""

# %%
# A model to look at
# ------------------
#
# Two cross-fitted networks (the default trains five on a table this size) and a
# short contrastive stage, so that the training display has something to show.
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
clf = MultimodalFusionClassifier(
    embed_dim=16,
    max_epochs=25,
    pretrain_epochs=5,
    ensemble_size=2,
    device="cpu",
    random_state=0,
)
clf.fit(X_train, y_train)
print("epoch kept:", clf.best_epoch_)

# %%
# Training
# --------
#
# Thin lines are the two networks (training loss in blue, their held-out rows in
# orange); the bold line is the held-out loss pooled over both, which early stopping
# watches, and the dashed line the epoch whose weights were kept.
from mmfusion_sklearn.plotting import TrainingHistoryDisplay

display = TrainingHistoryDisplay.from_estimator(clf)
display.figure_.set_size_inches(10, 3.5)

# %%
# As modalities go missing
# ------------------------
#
# On the left, the score with each subset of modalities given to every test sample;
# on the right, the score as a modality is withheld from a growing share of them,
# averaged over two random draws (the band is their spread). Log loss shows the
# differences better than AUROC here, where every subset ranks almost perfectly.
from mmfusion_sklearn.plotting import MissingModalityDisplay

# sphinx_gallery_thumbnail_number = 2

display = MissingModalityDisplay.from_estimator(
    clf, X_test, y_test, scoring="neg_log_loss", n_repeats=2
)
display.figure_.set_size_inches(10, 4.2)

# %%
# The numbers drawn are kept as DataFrames:
display.rates.head()

# %%
# Modality importance
# -------------------
#
# Displays draw into axes of your own when given some, here a wider one:
import matplotlib.pyplot as plt

from mmfusion_sklearn.plotting import ModalityImportanceDisplay

fig, ax = plt.subplots(figsize=(8, 2.8), layout="constrained")
display = ModalityImportanceDisplay.from_estimator(
    clf, X_test, y_test, scoring="neg_log_loss", ax=ax
)
display.importances

# %%
# Withholding the "worst" values costs the most. Withholding either of the other two
# even lowers the log loss a little: at this sample size they add more noise than
# information to the probabilities, which the subset panel above shows as well. The
# :ref:`missing-modalities example
# <sphx_glr_auto_examples_data_plot_missing_modalities.py>` shows how much such
# scores vary between splits of a small cohort.
