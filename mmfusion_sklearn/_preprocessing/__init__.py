"""Per-modality preprocessing and file readers (no torch here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._data import Modality, MultimodalData
from .arrays import ArrayPreprocessor, UnreadableFileError, holds_files
from .readers import read_file
from .tabular import EmbeddingPreprocessor, TabularPreprocessor

__all__ = [
    "ArrayPreprocessor",
    "EmbeddingPreprocessor",
    "TabularPreprocessor",
    "UnreadableFileError",
    "fit_preprocessors",
    "holds_files",
    "make_preprocessor",
    "preprocessor_from_state",
    "read_file",
    "sample_shape",
]


def make_preprocessor(name: str, kind: str, modality: Any) -> Any:
    """Return an unfitted preprocessor for modality ``name`` of ``kind``.

    Parameters
    ----------
    name : str
        Modality name.
    kind : {"tabular", "image", "volume", "embedding"}
        The modality kind.
    modality : Modality
        Its specification (``categorical``, ``image_size``, ``transform``, ``augment``
        are read from it). A frozen encoder's input is not standardised.
    """
    if kind == "tabular":
        return TabularPreprocessor(name, modality.categorical)
    if kind == "embedding":
        return EmbeddingPreprocessor(name)
    frozen = modality.encoder is not None and not modality.trainable
    return ArrayPreprocessor(name, kind, modality.image_size, modality.transform,
                             modality.augment, standardize=not frozen)


def preprocessor_from_state(state: Mapping[str, Any]) -> Any:
    """Rebuild a fitted preprocessor from its JSON state."""
    kind = state["kind"]
    if kind == "tabular":
        return TabularPreprocessor.from_state(state)
    if kind == "embedding":
        return EmbeddingPreprocessor.from_state(state)
    return ArrayPreprocessor.from_state(state)


def fit_preprocessors(
    data: MultimodalData, modalities: dict[str, Modality], on_read_error: str = "raise",
    failures: dict[tuple[str, int], tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Fit one preprocessor per modality on the samples where it is present.

    Files of image and volume modalities that cannot be read go to ``failures`` as
    ``(modality, row) -> (file, message)`` when ``on_read_error`` is "missing".
    """
    preprocessors = {}
    for name, modality in modalities.items():
        preprocessor = make_preprocessor(name, modality.kind, modality)
        if modality.kind in ("image", "volume"):
            met: dict[int, tuple[str, str]] = {}
            preprocessor.fit(data.values(name), data.present(name), on_read_error, met)
            if failures is not None:
                failures.update({(name, row): failure for row, failure in met.items()})
        else:
            preprocessor.fit(data.values(name), data.present(name))
        preprocessors[name] = preprocessor
    return preprocessors


def sample_shape(preprocessor: Any) -> tuple[int, ...]:
    """Shape of one transformed sample: ``(width,)`` for tables, ``(C, *spatial)`` else."""
    shape = preprocessor.n_features_out_
    return tuple(shape) if isinstance(shape, tuple) else (shape,)
