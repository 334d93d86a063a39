"""
Tuning with Optuna: a study, pruning, and the best model
========================================================

:func:`mmfusion_sklearn.tuning.tune` runs an Optuna study over the estimator's
parameters: each trial draws a set of parameters, cross-validates the estimator with
them, and reports the mean score. Trials that fall behind are pruned epoch by epoch, on
the validation loss of their first fold. The study lives in an Optuna storage (an
SQLite file by default), so that it can be resumed, inspected later, or shared by
several processes.

The data are the GSE7390 breast-cancer cohort (76 gene expressions and four clinical
variables; distant metastasis). A real study runs tens of trials with the default
search space (:func:`~mmfusion_sklearn.tuning.default_search_space`); this page runs
five, over three parameters, so that it builds in seconds.
"""

# %%
# The data and the estimator to tune
# ----------------------------------
import optuna
from sksurv.datasets import load_breast_cancer

from mmfusion_sklearn import MultimodalData, MultimodalFusionClassifier

frame, outcome = load_breast_cancer()
y = outcome["e.tdm"].astype(int)
clinical_columns = ["age", "er", "grade", "size"]
clinical = frame[clinical_columns].copy()
# Two patients have grade "unkown" (sic): a missing value, not a grade. Left as a
# category, every fold that trains without both of them would warn that it meets an
# unseen category when it scores them.
clinical["grade"] = clinical["grade"].cat.remove_categories("unkown")
X = MultimodalData(
    {"genes": frame.drop(columns=clinical_columns), "clinical": clinical}
)

# Parameters outside the search space stay as set here (small, for this page).
clf = MultimodalFusionClassifier(
    embed_dim=16,
    max_epochs=15,
    pretrain_epochs=0,
    ensemble_size=1,
    device="cpu",
    random_state=0,
)

# %%
# A search space
# --------------
#
# The default space covers the learning rate, weight decay, width, the weight of the
# single-modality terms, the contrastive stage, the fusion head, the batch size and
# the linear path. Take the part you want, or give your own Optuna distributions.
from mmfusion_sklearn.tuning import default_search_space, tune

names = ["lr", "weight_decay", "batch_size"]
space = {name: default_search_space()[name] for name in names}
space

# %%
# Run the study
# -------------
#
# ``storage`` takes any Optuna storage: a URL such as ``"sqlite:///tuning.db"``
# (which a later call with the same ``study_name`` resumes), or, as here, memory.
# The pruner stops a trial whose validation loss, at some epoch after the first three,
# is worse than the median of the earlier trials at that epoch.
optuna.logging.set_verbosity(optuna.logging.WARNING)
result = tune(
    clf,
    X,
    y,
    n_trials=5,
    cv=3,
    scoring="roc_auc",
    search_space=space,
    storage=optuna.storages.InMemoryStorage(),
    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=3),
    random_state=0,
)
best = {
    k: float(f"{v:.3g}") if isinstance(v, float) else v
    for k, v in result.best_params_.items()
}
print("best parameters:", best)
print(f"best cross-validated AUROC: {result.best_score_:.3f}")
trials = result.trials_dataframe()
trials[["number", "value", "state"] + [f"params_{name}" for name in names]]

# %%
# ``result.study`` is the Optuna study itself, for Optuna's own analysis tools;
# ``best_estimator_`` is a clone with the best parameters, refitted on all the data.
# Each trial reported its first fold's validation loss at every epoch (negated, so
# that higher is better: the "value" of a pruned trial above is the last one it
# reported); a pruned trial stops where the pruner gave up on it.
import matplotlib.pyplot as plt
from optuna.trial import TrialState

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for trial in result.study.trials:
    steps = sorted(trial.intermediate_values)
    losses = [-trial.intermediate_values[step] for step in steps]
    pruned = trial.state == TrialState.PRUNED
    label = f"trial {trial.number}" + (" (pruned)" if pruned else "")
    axes[0].plot(steps, losses, "o:" if pruned else "-", ms=4, label=label)
axes[0].set_xlabel("epoch (first fold)")
axes[0].set_ylabel("validation loss")
axes[0].legend(fontsize="small", ncol=2)

complete = trials[trials["state"] == "COMPLETE"]
axes[1].plot(complete["number"], complete["value"], "o", label="trial")
axes[1].step(
    complete["number"],
    complete["value"].cummax(),
    where="post",
    color="C1",
    label="best so far",
)
axes[1].set_xticks(trials["number"])
axes[1].set_xlabel("trial")
axes[1].set_ylabel("mean AUROC over 3 folds")
axes[1].legend(fontsize="small")
fig.tight_layout()

# %%
# With the score of five trials on three folds of 198 patients, differences of a few
# hundredths are noise: report the tuned model's score from an outer cross-validation
# (nested), not the best trial's, which is optimistic. The same search space works
# with ``optuna_integration.OptunaSearchCV``, and
# :class:`~mmfusion_sklearn.tuning.PruningCallback` adds epoch-level pruning to a
# study you write yourself with :func:`~mmfusion_sklearn.tuning.suggest_params`.
