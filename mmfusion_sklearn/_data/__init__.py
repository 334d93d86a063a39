"""Input parsing and the MultimodalData container (no torch here)."""

from .container import MultimodalData, as_multimodal, recorded_spec
from .inference import infer_kind
from .modality import KINDS, Modality, resolve_modality_spec

__all__ = [
    "KINDS",
    "Modality",
    "MultimodalData",
    "as_multimodal",
    "infer_kind",
    "recorded_spec",
    "resolve_modality_spec",
]
