"""Data-parallel training under ``torchrun``: the process group, DDP and agreement.

torch does the distributed work: ``torch.distributed`` (gloo on the CPU, NCCL on CUDA)
and ``DistributedDataParallel``, which averages every gradient over the processes
("ranks") during the backward pass. This module adds what a fit needs around them:

- :func:`resolve_distributed` turns the estimator's ``distributed`` parameter and
  torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``) into a :class:`DistributedContext`, starting the process group when
  the script has not;
- :meth:`DistributedContext.wrap` puts a network behind DDP. The fusion network is
  trained through several of its methods, not only ``forward``, so DDP wraps a
  :class:`MethodCall` whose ``forward`` calls the method named;
- training batches are sharded with torch's ``DistributedSampler``
  (:meth:`DistributedContext.training_order`), held-out and prediction rows without
  padding (:meth:`DistributedContext.shard`);
- every number that steers training (epoch losses, early stopping, divergence) is
  reduced over the ranks first, so that all ranks take the same decisions and end
  with the same weights.

Nothing here imports scikit-learn.
"""

from __future__ import annotations

import atexit
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def launched_world_size() -> int:
    """The number of processes torchrun (or a compatible launcher) started: the
    ``WORLD_SIZE`` environment variable, 1 when it is unset or not a number."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def main_process() -> bool:
    """Whether this process is rank 0 of a started process group, or not in one."""
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()
                and torch.distributed.get_rank() != 0)


class MethodCall(nn.Module):
    """Calls a method of ``network`` by name from ``forward``.

    DDP prepares its gradient reduction in ``forward``; a training step that runs
    ``network.configuration_logits(...)`` goes through it as
    ``ddp("configuration_logits", ...)``.

    Parameters
    ----------
    network : nn.Module
        The network; its parameters are this module's.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, method: str, *args: Any) -> Any:
        return getattr(self.network, method)(*args)


class DataParallelNetwork:
    """A network's methods called through DDP: ``wrapped("logits", inputs, present)``.

    Not itself a module, so that it sits beside a skorch net's ``module_`` without
    becoming one of the net's modules (its parameters are ``module_``'s).

    Parameters
    ----------
    ddp : DistributedDataParallel
        DDP around a :class:`MethodCall`.
    """

    def __init__(self, ddp: nn.Module) -> None:
        self.ddp = ddp

    def __call__(self, method: str, *args: Any) -> Any:
        return self.ddp(method, *args)


@dataclass
class DistributedContext:
    """This process's place in a started process group.

    Parameters
    ----------
    rank : int
        This process's rank.
    world_size : int
        The number of processes.
    device : torch.device
        Where this process trains.
    backend : str
        The process group's backend ("gloo", "nccl", ...).
    """

    rank: int
    world_size: int
    device: torch.device
    backend: str

    @property
    def _comm_device(self) -> torch.device:
        # NCCL reduces CUDA tensors only; gloo works on CPU tensors
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def wrap(self, network: nn.Module) -> DataParallelNetwork:
        """``network`` behind :class:`~torch.nn.parallel.DistributedDataParallel`.

        DDP copies rank 0's parameters to every rank when it is built. Unused
        parameters are expected: the projection head in the task stage, the classifier
        head in the contrastive stage, the encoder of a modality that no sample of a
        batch has.
        """
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device] if self.device.type == "cuda" else None
        return DataParallelNetwork(DistributedDataParallel(
            MethodCall(network), device_ids=device_ids, find_unused_parameters=True))

    def training_order(self, n: int, seed: int) -> torch.Tensor:
        """This rank's share of a shuffled pass over ``n`` rows.

        torch's ``DistributedSampler`` shuffles with ``seed`` (the same on every rank)
        and pads the order by repeating rows so that every rank gets the same number
        of rows, hence the same number of batches: DDP needs every rank to take the
        same number of steps.
        """
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=self.world_size, rank=self.rank,
                                     shuffle=True, seed=int(seed), drop_last=False)
        return torch.as_tensor(list(sampler), dtype=torch.int64)

    def shard(self, n: int) -> torch.Tensor:
        """This rank's rows of ``n`` rows evaluated without gradients (every
        ``world_size``-th row, no padding: the ranks' counts may differ by one)."""
        return torch.arange(self.rank, n, self.world_size)

    def batch_size(self, batch_size: int) -> int:
        """This rank's share of a training batch of ``batch_size`` rows: the batch
        size keeps its meaning (rows per optimiser step) whatever the world size."""
        return max(1, math.ceil(batch_size / self.world_size))

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sums of ``values`` over the ranks (float64), bit-identical on every rank."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        return self._ordered_sum(tensor).tolist()

    def all_reduce_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (returned on ``tensor``'s device), bit-identical
        on every rank."""
        reduced = self._ordered_sum(tensor.to(self._comm_device, dtype=torch.float64))
        return reduced.to(tensor.device, dtype=tensor.dtype)

    def _ordered_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``tensor`` gathered, then added in rank order on every rank.

        ``all_reduce`` may add the ranks' parts in a different order on each rank (gloo's
        ring does), and float addition is not associative: the sums could differ in the
        last bit and early stopping could decide otherwise on two ranks. Gathering and
        adding locally in one fixed order gives every rank the same bits.
        """
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        total = parts[0].clone()
        for part in parts[1:]:
            total += part
        return total

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0, device=self._comm_device)
        return holder[0]

    def broadcast_module(self, module: nn.Module) -> None:
        """Overwrite ``module``'s parameters and buffers with rank 0's, in place."""
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                on_comm = tensor.data.to(self._comm_device)
                torch.distributed.broadcast(on_comm, src=0)
                if on_comm is not tensor.data:
                    tensor.data.copy_(on_comm)


def _cuda_device(device: torch.device) -> torch.device:
    """The GPU of this process: ``cuda:LOCAL_RANK`` when ``device`` names no index."""
    if device.index is not None:
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))


def resolve_distributed(distributed: Any, device: torch.device) -> DistributedContext | None:
    """The :class:`DistributedContext` of a fit, or None for a single-process fit.

    Parameters
    ----------
    distributed : "auto", bool
        "auto": distributed when the process group is started with more than one
        process, or when torchrun's ``WORLD_SIZE`` is above 1 (the group is then
        started here: gloo for a CPU ``device``, NCCL for CUDA, from torchrun's
        environment). True: the same, but a single process is an error. False: never.
    device : torch.device
        The resolved ``device`` parameter; CUDA without an index becomes
        ``cuda:LOCAL_RANK``.

    Returns
    -------
    DistributedContext or None

    Raises
    ------
    ValueError
        ``distributed=True`` in a single process, or ``torch.distributed`` missing.
    """
    if distributed is False:
        return None
    available = torch.distributed.is_available()
    started = available and torch.distributed.is_initialized()
    world = torch.distributed.get_world_size() if started else launched_world_size()
    if world <= 1:
        if distributed is True:
            raise ValueError(
                "distributed=True needs several processes: launch the script with torchrun "
                "(e.g. torchrun --nproc_per_node=2 script.py), or start a process group of "
                f"more than one process first. Got WORLD_SIZE={world} instead."
            )
        return None
    if not available:
        raise ValueError(
            f"WORLD_SIZE is {world}, but this torch build has no torch.distributed. Set "
            "distributed=False to train in each process alone."
        )
    if device.type == "cuda":
        device = _cuda_device(device)
        torch.cuda.set_device(device)
    if not started:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, init_method="env://")
        atexit.register(_destroy_process_group)
    return DistributedContext(
        rank=torch.distributed.get_rank(),
        world_size=torch.distributed.get_world_size(),
        device=device,
        backend=str(torch.distributed.get_backend()),
    )


def _destroy_process_group() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
