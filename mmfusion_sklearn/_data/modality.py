"""Modality specifications: what a modality is and how to read it (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

#: The modality kinds the package understands.
KINDS = ("tabular", "image", "volume", "embedding")


@dataclass
class Modality:
    """Describe one modality of a :class:`~mmfusion_sklearn.MultimodalFusionClassifier`.

    Parameters
    ----------
    kind : {"tabular", "image", "volume", "embedding"} or None, default=None
        How the modality is encoded. None infers it from the data: a 2-D table is
        ``"tabular"``, ``(n, H, W)`` or ``(n, C, H, W)`` arrays and 2-D image files are
        ``"image"``, ``(n, C, D, H, W)`` arrays and NIfTI files are ``"volume"``.
        Precomputed foundation-model features must be declared ``"embedding"``.
    columns : str or list of str, default=None
        For DataFrame input: the column (image/volume: a column of paths or arrays) or
        columns (tabular/embedding) that form this modality. None means the column
        named like the modality.
    encoder : torch.nn.Module, default=None
        A user encoder (for example a pretrained backbone) mapping a batch of this
        modality, shaped ``(B, C, H, W)`` for images, to ``(B, F)`` features. A linear
        layer maps F to ``embed_dim``. None uses the built-in encoder of the kind.
        The estimator trains a copy; the module passed here is never modified.
    trainable : bool, default=True
        False freezes ``encoder`` (a pretrained backbone, a foundation model): it
        encodes each sample once per process, not once per epoch or per fit; its
        features are cached, keyed by the encoder's weights, the sample (its content, or
        a file's path, size and modification time) and the reading settings, so that
        cross-validation and tuning in one process reuse them (the estimator's
        ``cache_dir`` keeps them on disk, shared between processes). A frozen encoder
        receives samples as read and transformed, without the per-channel
        standardisation of fit: put the normalisation it expects into ``transform``.
    image_size : tuple of int, default=None
        Spatial size ``(H, W)`` or ``(D, H, W)`` to which images or volumes are resized
        when they are read. None keeps their size, which must then be the same for all
        samples.
    categorical : list of str, default=None
        Tabular columns to treat as categorical even though they are numeric. Columns
        of object, string, category or boolean dtype are categorical anyway.
    transform : callable, default=None
        Images and volumes: applied to every sample as it is read, in fit and in
        prediction, before ``image_size``. It receives a DICOM or NIfTI file as MONAI's
        reader returns it (a ``MetaTensor`` with its affine, so that ``Orientation``
        and ``Spacing`` work), and a 2-D image file or an in-memory sample as a
        channels-first float32 array; it returns an array or tensor. A MONAI
        transform (``Compose`` of orientation, spacing, resizing with crop or pad,
        intensity windowing) or any callable.
    augment : callable, default=None
        Images and volumes: a random transform applied to training batches only (never
        in prediction or on held-out rows), after ``image_size``; it must keep the
        sample's shape. Transforms with ``set_random_state`` (every MONAI random
        transform) are seeded per batch from the estimator's ``random_state``.

    Examples
    --------
    >>> from mmfusion_sklearn import Modality
    >>> Modality("image", columns="mri_path", image_size=(64, 64)).kind
    'image'
    """

    kind: str | None = None
    columns: str | list[str] | None = None
    encoder: Any = None
    trainable: bool = True
    image_size: tuple[int, ...] | None = None
    categorical: list[str] | None = field(default=None)
    transform: Any = None
    augment: Any = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(
                f"Modality kind must be one of {list(KINDS)} or None. "
                f"Got {self.kind!r} instead."
            )
        if self.image_size is not None:
            self.image_size = tuple(int(s) for s in self.image_size)
        for name in ("transform", "augment"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValueError(
                    f"Modality {name} must be a callable (e.g. a MONAI transform) or None. "
                    f"Got {value!r} instead."
                )
        if (self.transform is not None or self.augment is not None) and self.kind in (
            "tabular", "embedding"
        ):
            raise ValueError(
                f"Modality transform and augment apply to images and volumes, not to a "
                f"{self.kind!r} modality."
            )

    def with_kind(self, kind: str) -> Modality:
        """Return a copy of this specification with ``kind`` set.

        Parameters
        ----------
        kind : {"tabular", "image", "volume", "embedding"}
            The kind of the copy.

        Returns
        -------
        Modality
            A new specification; this one is left unchanged.
        """
        return replace(self, kind=kind)


def resolve_modality_spec(spec: Any) -> dict[str, Modality] | None:
    """Turn the estimator's ``modalities`` parameter into ``{name: Modality}``.

    Parameters
    ----------
    spec : None, dict or list
        None; a dict mapping names to a kind string, a :class:`Modality`, a column
        name or a list of column names; or a list of names (kinds inferred).

    Returns
    -------
    dict of str to Modality, or None
        None when ``spec`` is None (everything inferred from the data).
    """
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        spec = {name: None for name in spec}
    if not isinstance(spec, dict) or not spec:
        raise ValueError(
            f"The 'modalities' parameter must be None, a non-empty dict {{name: kind or "
            f"Modality or columns}} or a list of names. Got {spec!r} instead."
        )
    resolved = {}
    for name, value in spec.items():
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"Modality names must be non-empty strings. Got {name!r} in 'modalities' "
                "instead."
            )
        if value is None:
            resolved[name] = Modality()
        elif isinstance(value, Modality):
            resolved[name] = value
        elif isinstance(value, str) and value in KINDS:
            resolved[name] = Modality(kind=value)
        elif isinstance(value, str):
            resolved[name] = Modality(columns=value)
        elif isinstance(value, (list, tuple)) and all(isinstance(c, str) for c in value):
            resolved[name] = Modality(kind="tabular", columns=list(value))
        else:
            raise ValueError(
                f"Modality {name!r} in 'modalities' must be a kind {list(KINDS)}, a "
                f"Modality, a column name or a list of column names. Got {value!r} "
                "instead."
            )
    return resolved
