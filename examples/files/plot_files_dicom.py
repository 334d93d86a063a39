"""
DICOM files and series: pixels plus a header table
==================================================

A DICOM file carries both an image and a header of patient and acquisition fields
(sex, age, weight, modality, pixel spacing, ...). :func:`mmfusion_sklearn.io.from_dicom`
turns a list of DICOM files, or of folders each holding one series, into a
:class:`~mmfusion_sklearn.MultimodalData` with two modalities: the pixels (kept on
disk as paths, decoded per batch when the estimator needs them) and the header table.
It reads headers only, and checks up front whether each file can be decoded, so that a
truncated file or one with no pixel data is reported now, not halfway through an
epoch.

The files here are the ones pydicom ships for its own tests (the folder of
``pydicom.data.get_testdata_file``, listed directly: ``get_testdata_files`` would also
try to download pydicom's larger test set): real CT, MR, ultrasound and radiotherapy
objects from many vendors, in many encodings, and a number of deliberately broken
ones. They are not a cohort, so the model at the end shows the
mechanics, not a result.
"""

# %%
# Read the headers of a folder of DICOM files
# -------------------------------------------
import warnings
from pathlib import Path

from pydicom.data import get_testdata_file

from mmfusion_sklearn.io import from_dicom

folder = Path(get_testdata_file("CT_small.dcm", download=False)).parent
paths = sorted(str(path) for path in folder.glob("*.dcm"))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    data = from_dicom(paths, on_read_error="missing")
print(f"{len(paths)} files -> {data}")

# %%
# With ``on_read_error="missing"`` the files that cannot be read are marked missing
# and one warning lists them with the reason (the default, ``"raise"``, stops with the
# same list). The first lines of it:
ours = [w for w in caught if str(w.message).startswith("from_dicom")]
message = str(ours[0].message).replace(f"{folder}/", "").splitlines()
print("\n".join(message[:8]))
print(f"... and {len(message) - 8} more lines")

# %%
# Single-frame files form the ``"image"`` modality and multi-frame files the
# ``"volume"`` one (``pixels_name`` renames it when all samples are of one kind); the
# header table is the ``"dicom"`` modality, one row per file, NaN where a field is
# absent (an empty sex, a weight of 0 written by a scanner for "unknown"):
header = data.values("dicom")
header.insert(0, "file", [Path(p).name for p in paths])
header[data.present("image")].head(10)

# %%
# Series folders are volumes
# --------------------------
#
# A folder holding the slices of one series is one sample: its slices are ordered
# along the slice normal and read as one volume.
series_root = folder / "dicomdirtests"
series = [
    series_root / "77654033" / "CT2",
    series_root / "98892001" / "CT5N",
    series_root / "98892003" / "MR700",
]
volumes = from_dicom(series)
print(volumes)
volumes.values("dicom")[
    ["sex", "age", "modality", "rows", "columns", "n_frames", "slice_thickness"]
]

# %%
# What the scans look like
# ------------------------
#
# For a model we keep the single-frame CT and MR images that can be decoded. Many
# of pydicom's files are one scan in several encodings (``MR_small*.dcm``): keep one
# file per distinct header.
keep = data.present("image") & header["modality"].isin(["CT", "MR"]).to_numpy()
keep &= ~header.drop(columns="file").duplicated().to_numpy()
cohort = data[keep]
cohort_header = cohort.values("dicom").reset_index(drop=True)
print(cohort)
print([Path(path).name for path in cohort.values("image")])

# %%
# pydicom decodes them here for display; the estimator reads them itself.
import matplotlib.pyplot as plt
import pydicom

paths_shown = cohort.values("image")
fig, axes = plt.subplots(1, len(cohort), figsize=(2 * len(cohort), 2.4))
for ax, path, (_, row) in zip(axes, paths_shown, cohort_header.iterrows()):
    ax.imshow(pydicom.dcmread(path).pixel_array, cmap="gray")
    ax.set_title(f"{row['modality']}, {row['rows']:.0f}x{row['columns']:.0f}")
    ax.axis("off")
fig.tight_layout()

# %%
# Into the estimator
# ------------------
#
# The container goes to ``fit`` as it is. The images have different sizes, so the
# image modality resizes them as they are read; of the header we keep the patient's
# sex, age and weight (the acquisition fields would give the answer away). The label
# is simply "CT or MR". A handful of test files make no cohort and no score on them
# would mean anything: the point is that the paths, the header table and its missing
# values go in unchanged.
from mmfusion_sklearn import Modality, MultimodalData, MultimodalFusionClassifier

X = MultimodalData(
    {
        "image": cohort.values("image"),
        "patient": cohort_header[["sex", "age", "weight"]],
    }
)
y = cohort_header["modality"].to_numpy()
clf = MultimodalFusionClassifier(
    modalities={
        "image": Modality("image", image_size=(32, 32)),
        "patient": "tabular",
    },
    embed_dim=16,
    max_epochs=5,
    pretrain_epochs=0,
    early_stopping=False,
    device="cpu",
    random_state=0,
)
clf.fit(X, y)
print(
    "classes:",
    clf.classes_,
    "kinds:",
    {n: m.kind for n, m in clf.modalities_.items()},
)
clf.predict_proba(X[:3]).round(3)

# %%
# Other readers: NIfTI volumes are paths too (``.nii``, ``.nii.gz``), and
# ``Modality(transform=...)`` takes MONAI transforms (orientation, spacing, intensity
# windowing) that receive DICOM and NIfTI samples with their affine. The estimator's
# ``on_read_error`` decides what a file that fails while decoding does.
