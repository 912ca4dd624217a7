"""Rank/world discovery, rank shards of a plan, and the collective that synchronises reports
across ranks.

Only ``torch.distributed`` is used (gloo on CPU, nccl on GPU). Indices travel as int64 and values
as float32 in separate tensors, so no index is ever rounded through a float.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from ..arguments import check_index


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def resolve_rank_world(
    rank: int | None, world_size: int | None, *, standalone: bool = False
) -> tuple[int, int]:
    """(rank, world_size): the arguments where given, else the initialised process group's.

    Without an initialised group the defaults are rank 0 of 1. An explicit layout of more than
    one rank needs an initialised process group of that size, because reports are shared only
    through it (else each rank's store would silently drift apart); ``standalone=True`` accepts
    it anyway, for one process that plays one rank of a layout (inspecting a checkpoint, tests).
    """
    initialised = dist.is_available() and dist.is_initialized()
    group_world = dist.get_world_size() if initialised else 1
    if world_size is None:
        world_size = group_world
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    world_size, rank = int(world_size), int(rank)
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    check_index("rank", rank, world_size)
    if not standalone and world_size != group_world:
        where = (
            f"the initialised process group has {group_world} rank(s)"
            if initialised
            else "no torch.distributed process group is initialised"
        )
        raise ValueError(
            f"world_size={world_size} but {where}: the ranks could not share their reports and their "
            "stores would drift apart. Call torch.distributed.init_process_group first, or pass "
            "standalone=True to play one rank of that layout in a single process"
        )
    if not standalone and initialised and rank != dist.get_rank():
        raise ValueError(
            f"rank={rank} but this process is rank {dist.get_rank()} of the process group"
        )
    return rank, world_size


def rank_shard(plan: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s strided slice of ``plan`` ([S]), the plan first padded cyclically to a
    multiple of ``world_size`` so that every rank gets ``ceil(S / world_size)`` indices (the
    layout of ``DistributedSampler``); the plan itself for one rank."""
    if world_size == 1:
        return plan
    per_rank = -(-len(plan) // world_size)
    padded = np.resize(plan, per_rank * world_size) if len(plan) else plan
    return padded[rank::world_size]


def collective_device() -> torch.device:
    """Device the default process group's backend communicates on (CUDA for nccl)."""
    backend = dist.get_backend()
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``local`` [n_r, ...] in rank order; ``n_r`` may differ per rank.

    Three steps: gather the row counts, pad each rank's rows to the maximum, gather, trim.
    ``local`` must be on :func:`collective_device`. Every rank must call this (a collective).
    """
    world = dist.get_world_size()
    count = torch.tensor([local.shape[0]], dtype=torch.int64, device=local.device)
    counts: list[torch.Tensor] = [torch.empty_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]  # one host sync per gather, at sync points only
    longest = max(sizes)
    padded = local
    if local.shape[0] < longest:
        pad = torch.zeros(
            (longest - local.shape[0], *local.shape[1:]), dtype=local.dtype, device=local.device
        )
        padded = torch.cat([local, pad])
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)])


def barrier() -> None:
    if is_distributed():
        dist.barrier()
