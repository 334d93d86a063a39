"""Which torch device a fit or a load uses."""

from __future__ import annotations

from typing import Any

import torch


def resolve_device(device: Any, owner: str = "the estimator") -> torch.device:
    """The torch.device that ``device`` names ("auto": CUDA when available, else the CPU).

    Parameters
    ----------
    device : str or torch.device
        "auto", "cpu", "cuda", "cuda:N" or a torch.device.
    owner : str, default="the estimator"
        Named in the error message (the estimator's class).

    Raises
    ------
    ValueError
        If ``device`` names no device, or CUDA where there is none.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"The 'device' parameter of {owner} must be 'auto', 'cpu', 'cuda', 'cuda:N' "
            f"or a torch.device. Got {device!r} instead."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"The 'device' parameter is {device!r} but CUDA is not available here. Use "
            "device='auto' or 'cpu'."
        )
    return resolved
