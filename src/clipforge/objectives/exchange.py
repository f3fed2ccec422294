"""Differentiable ring exchange of features between ranks (SigLIP's chunked loss).

Each step sends this rank's current text block to ``rank + 1`` and receives one from
``rank − 1``; after ``world − 1`` steps every rank has seen every other rank's texts while holding
one [B, D] block at a time. Gradients flow back along the ring in the opposite direction.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist


def _shift(tensor: torch.Tensor, to_rank: int, from_rank: int) -> torch.Tensor:
    received = torch.empty_like(tensor)
    ops = [
        dist.P2POp(dist.isend, tensor.contiguous(), to_rank),
        dist.P2POp(dist.irecv, received, from_rank),
    ]
    for request in dist.batch_isend_irecv(ops):
        request.wait()
    return received


class _RingShift(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, to_rank: int, from_rank: int) -> torch.Tensor:
        ctx.to_rank, ctx.from_rank = to_rank, from_rank
        return _shift(tensor, to_rank, from_rank)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _shift(grad, ctx.from_rank, ctx.to_rank), None, None


def neighbour_texts(texts: torch.Tensor, world: int, rank: int) -> Iterator[torch.Tensor]:
    """Yield the text blocks of ranks rank−1, rank−2, … (world − 1 blocks), with gradients."""
    to_rank, from_rank = (rank + 1) % world, (rank - 1) % world
    block = texts
    for _ in range(world - 1):
        block = _RingShift.apply(block, to_rank, from_rank)
        yield block
