"""Numeric settings of a fit or a prediction: autocast precision, the float16 gradient
scaler, torch's thread count."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .cores import default_thread_count

#: What ``precision`` accepts, and the autocast dtype of each (None: full precision).
PRECISIONS = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def autocast(device: torch.device | str, precision: str):
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op context for "32")."""
    dtype = PRECISIONS[precision]
    device = torch.device(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def make_grad_scaler(device: torch.device | str, precision: str):
    """A gradient scaler for float16 training (None otherwise): small gradients would
    underflow in float16 without it."""
    if precision != "16-mixed":
        return None
    device = torch.device(device)
    try:
        return torch.amp.GradScaler(device.type)
    except (AttributeError, TypeError, RuntimeError) as exc:  # torch < 2.3
        if device.type == "cuda":
            return torch.cuda.amp.GradScaler()
        raise ValueError(
            f"precision='16-mixed' on {device.type!r} needs torch >= 2.3 (this is "
            f"{torch.__version__}); use precision='bf16-mixed' on the CPU."
        ) from exc


@contextmanager
def torch_threads(n_threads: int | None):
    """Run the block with ``torch.set_num_threads(n_threads)``, restored afterwards.

    None: torch's setting, lowered to the cores that other processes leave free
    (:func:`~mmfusion_sklearn._training.cores.default_thread_count`): threads on busy
    cores make a fit several times slower than one thread.
    """
    before = torch.get_num_threads()
    wanted = default_thread_count(before) if n_threads is None else int(n_threads)
    if wanted == before:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)
