"""
Foundation-model embeddings and frozen pretrained encoders
==========================================================

Few labelled patients and a network pretrained on lots of other images is the usual
situation in medical imaging. There are two ways to bring that network in:

* **embeddings**: run it once over the images and pass its feature vectors as an
  ``"embedding"`` modality. This is how foundation-model features usually arrive (a
  1408-d CT Foundation vector per study, computed by someone else); the estimator
  normalises them and learns on top.
* **a frozen encoder**: give the PyTorch module itself as the modality's encoder with
  ``Modality(encoder=module, trainable=False)``. The estimator runs it on the images
  as they are read, once per sample and process: its features are cached, so
  cross-validation folds, grid searches and tuning trials reuse them.

Offline, we make our own "pretrained" network: a small CNN trained for a few seconds to
recognise the digit in half of scikit-learn's handwritten digits (plenty of labels for
a related task). The new question, on the other half, is whether the digit is odd,
with only 100 labelled images to learn it from.
"""

# %%
# A backbone pretrained on another task
# -------------------------------------
#
# Any ``torch.nn.Module`` that maps a batch of images ``(B, C, H, W)`` to features
# ``(B, F)`` will do: a timm or MONAI model, or a foundation model's image encoder.
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

digits = load_digits()
images = (digits.images / 16.0).astype(np.float32)  # (n, 8, 8), values in [0, 1]
source = np.arange(len(images)) < 900  # pretraining images: which digit is it?
target = ~source  # the other images, for the new question: is it odd?

torch.manual_seed(0)
backbone = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1),
    nn.ReLU(),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(32 * 4 * 4, 64),
    nn.ReLU(),
)
head = nn.Linear(64, 10)
optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=3e-3)
x_source = torch.from_numpy(images[source]).unsqueeze(1)
y_source = torch.from_numpy(digits.target[source])
for _ in range(8):  # epochs
    for batch in torch.randperm(len(x_source)).split(64):
        loss = nn.functional.cross_entropy(
            head(backbone(x_source[batch])), y_source[batch]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
backbone.eval()
print(f"pretrained on {source.sum()} images to recognise the digit")

# %%
# The new question: 100 labelled images
# -------------------------------------
from sklearn.model_selection import train_test_split

X_images = images[target]
y = np.where(digits.target[target] % 2 == 1, "odd", "even")
train, test = train_test_split(
    np.arange(len(y)), train_size=100, stratify=y, random_state=0
)
print(f"{len(train)} training and {len(test)} test images")

# Small and fast settings for this page.
settings = dict(
    embed_dim=32,
    max_epochs=30,
    pretrain_epochs=0,
    ensemble_size=1,
    device="cpu",
    random_state=0,
)

# %%
# 1. Precomputed embeddings
# -------------------------
#
# Encode every image once, as a foundation model's provider would, and declare the
# vectors an ``"embedding"`` modality (a 2-D float array would otherwise be read as a
# table).
from mmfusion_sklearn import Modality, MultimodalFusionClassifier

with torch.no_grad():
    embeddings = backbone(torch.from_numpy(X_images).unsqueeze(1)).numpy()
print("embeddings:", embeddings.shape)

on_embeddings = MultimodalFusionClassifier(
    modalities={"features": "embedding"}, **settings
)
on_embeddings.fit({"features": embeddings[train]}, y[train])
accuracy = {
    "precomputed embeddings": on_embeddings.score(
        {"features": embeddings[test]}, y[test]
    )
}

# %%
# 2. The module as a frozen encoder
# ---------------------------------
#
# The images go in as they are and the estimator runs the module. To see the cache at
# work we count the samples the module runs on (the estimator works on a copy of the
# module, and the copy keeps this hook).
ran_on = []  # the batch sizes the module sees
backbone.register_forward_hook(lambda module, args, out: ran_on.append(len(out)))

frozen = MultimodalFusionClassifier(
    modalities={"digit": Modality("image", encoder=backbone, trainable=False)},
    **settings,
)
frozen.fit({"digit": X_images[train]}, y[train])
print("first fit, samples through the module:", sum(ran_on))

ran_on.clear()
frozen.set_params(lr=3e-3).fit({"digit": X_images[train]}, y[train])
print(
    "second fit (another learning rate), samples through the module:", sum(ran_on)
)
accuracy["frozen encoder"] = frozen.score({"digit": X_images[test]}, y[test])

# %%
# The second fit ran the module on two inputs only, zeros, to learn the width of its
# output; the features of the 100 images came from the in-process cache, keyed by
# the module's weights and each sample's content. ``cache_dir`` keeps them on disk
# too, so that worker processes (``n_jobs``) and later sessions share them;
# :func:`~mmfusion_sklearn.clear_feature_cache` empties the in-process cache.
#
# 3. For comparison: a CNN trained from scratch
# ---------------------------------------------
#
# Without a backbone the estimator trains its own small CNN, on the 100 labelled
# images only.
scratch = MultimodalFusionClassifier(modalities={"digit": "image"}, **settings)
scratch.fit({"digit": X_images[train]}, y[train])
accuracy["CNN from scratch"] = scratch.score({"digit": X_images[test]}, y[test])

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 2.4))
bars = ax.barh(list(accuracy), list(accuracy.values()), color=["C0", "C0", "C7"])
ax.bar_label(bars, fmt="%.3f", label_type="center", color="white")
ax.set_xlim(0, 1)
ax.set_xlabel(f"accuracy on {len(test)} test images (odd or even)")
ax.invert_yaxis()
fig.tight_layout()

# %%
# Both routes to the pretrained network use the same features, so they score alike;
# which to choose is a matter of where the features are computed. The CNN trained
# from scratch on the 100 images scores a little lower here: images this small and
# simple leave it little to miss; a pretrained network matters more for larger
# images, harder questions and fewer labels. With real foundation-model
# embeddings, the embedding modality is usually one of several: a table of clinical
# variables, or another image, sits beside it in the same dict.
