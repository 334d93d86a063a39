"""Per-modality preprocessing and file readers (no torch here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .arrays import ArrayPreprocessor, UnreadableFileError, holds_files
from .readers import read_file
from .tabular import EmbeddingPreprocessor, TabularPreprocessor

__all__ = [
    "ArrayPreprocessor",
    "EmbeddingPreprocessor",
    "TabularPreprocessor",
    "UnreadableFileError",
    "holds_files",
    "make_preprocessor",
    "preprocessor_from_state",
    "read_file",
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
