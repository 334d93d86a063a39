"""
Images from files: a manifest of paths, read per batch
======================================================

Imaging cohorts rarely fit in memory: they arrive as a folder of files and a manifest
saying which file belongs to which sample. Give the estimator the paths. It reads the
files batch by batch, in fit and in prediction (PNG, JPEG and TIFF through Pillow;
DICOM and NIfTI through MONAI), resizes them if asked, and never holds the decoded
cohort at once. A path that is ``None`` marks the image missing for that sample; a
file that cannot be read either stops the fit with an error that names it, or, with
``on_read_error="missing"``, becomes a missing image with one warning.

To keep the page offline and fast, the "scans" are scikit-learn's handwritten digits
(8x8 grey-level images), written to PNG files in a temporary folder. The task is to
recognise the digit, a ten-class problem.
"""

# %%
# A folder of image files and a manifest
# --------------------------------------
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits

digits = load_digits()
folder = Path(tempfile.mkdtemp(prefix="mmfusion-digits-"))
paths = []
for i, pixels in enumerate(digits.images[:600]):
    path = folder / f"scan_{i:04d}.png"
    Image.fromarray((pixels * 255 / 16).astype(np.uint8)).save(path)
    paths.append(str(path))
manifest = pd.DataFrame({"scan": paths, "label": digits.target[:600]})
manifest.head()

# %%
# Real manifests have holes. Scan 3 was never acquired (``None``), and scan 5 is a
# corrupt file:
manifest.loc[3, "scan"] = None
Path(manifest.loc[5, "scan"]).write_bytes(b"not a PNG any more")
manifest.loc[2:6]

# %%
# Fit on the paths
# ----------------
#
# A DataFrame column of paths forms an image modality; ``modalities`` says which
# column (a list of columns would form a table), and the kind is inferred from the
# file suffix. Every sample needs at least one modality, and scan 3 has none: rather
# than train on a blank image, the estimator refuses and names the row.
import warnings

from mmfusion_sklearn import Modality, MultimodalFusionClassifier

train, test = manifest.iloc[:450], manifest.iloc[450:]
clf = MultimodalFusionClassifier(
    modalities={"scan": Modality("image", columns="scan")},
    on_read_error="missing",
    embed_dim=32,
    max_epochs=8,
    pretrain_epochs=0,
    early_stopping=False,
    lr=3e-3,
    device="cpu",
    random_state=0,
)
try:
    clf.fit(train[["scan"]], train["label"])
except ValueError as error:
    print(error)

# %%
# With a second modality (a clinical table, say) that patient would simply lack the
# image. Here we drop the row. The corrupt file is only found when it is read; with
# ``on_read_error="missing"`` it is treated as a missing image, a warning names it,
# and a sample left with no readable modality takes no part in training. (The default,
# ``"raise"``, stops the fit with an error naming the modality, the row and the file.)
train = train.dropna(subset=["scan"])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    clf.fit(train[["scan"]], train["label"])
for warning in caught:
    print(f"{warning.category.__name__}: {warning.message}")

# %%
# Predict from new files
# ----------------------
#
# The 150 held-out scans are read the same way. ``num_workers`` would read them in
# DataLoader worker processes, for cohorts where decoding is the bottleneck.
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score

predicted = clf.predict(test[["scan"]])
accuracy = accuracy_score(test["label"], predicted)
print(f"accuracy on {len(test)} held-out scans: {accuracy:.3f}")

# %%
# The first held-out scans as read from disk, with the predicted digit, and where the
# model errs:
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 8, figsize=(8, 1.4))
for ax, path, digit in zip(axes, test["scan"], predicted):
    ax.imshow(Image.open(path), cmap="Greys_r")
    ax.set_title(f"predicted {digit}", fontsize=9)
    ax.axis("off")
fig.tight_layout()

fig, ax = plt.subplots(figsize=(4.5, 4.5))
ConfusionMatrixDisplay.from_predictions(
    test["label"], predicted, ax=ax, colorbar=False
)
ax.set_title(f"{len(test)} held-out scans")
fig.tight_layout()

# %%
# In-memory arrays work the same way (a ``(n, H, W)`` array, or a list of arrays with
# ``None`` for missing ones), as do DICOM files and series folders and NIfTI volumes:
# see :ref:`the DICOM example <sphx_glr_auto_examples_files_plot_files_dicom.py>`.
# ``Modality(image_size=...)`` resizes images of different sizes as they are read,
# ``Modality(transform=...)`` applies a MONAI transform or any callable to each sample,
# and ``Modality(augment=...)`` a random one to training batches only.
