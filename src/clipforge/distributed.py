"""Thin helpers over ``torch.distributed``; everything works unchanged in a single process."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous. The differentiable all-gather's
    backward on gloo sends each slice's raw storage (all-to-all): a non-contiguous gradient — e.g.
    from an einsum over gathered token features (FILIP, LightCLIP) — arrives scrambled."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def all_gather_features(features: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
    """Concatenate ``features`` [B, D] from every rank → [world·B, D] (rank order).

    ``with_grad`` uses the differentiable all-gather, so gradients reach every rank's encoder
    (OpenCLIP's ``--gather-with-grad``); with DDP's averaging this gives exactly the gradient of
    one process on the global batch (tests/test_distributed.py). Without it, the local slice keeps
    its gradient and the others are constants: cheaper, but the terms where this rank's features
    meet other ranks' rows are dropped, so the gradient is not the global-batch one (even with
    ``local_loss``).
    """
    if not is_distributed():
        return features
    if with_grad:
        import torch.distributed.nn.functional as dist_fn

        return _ContiguousGrad.apply(torch.cat(dist_fn.all_gather(features), dim=0))
    gathered = [torch.empty_like(features) for _ in range(world_size())]
    dist.all_gather(gathered, features.contiguous())
    gathered[rank()] = features
    return torch.cat(gathered, dim=0)


def init_from_env() -> torch.device:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), else stay single-process.

    Backend: ``nccl`` when CUDA is available, ``gloo`` on CPU. Returns this process's device.
    """
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available()
    if world > 1 and not is_distributed():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def mean_over_ranks(value: float) -> float:
    """The mean of a per-rank number over all ranks (every rank gets it).

    With ``local_loss`` CLIP or SigLIP each rank's loss is its share of the global loss, and DDP
    averages gradients, so this mean is the loss being optimised — the one worth logging.
    """
    if not is_distributed():
        return value
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.item() / world_size()


def average_gradients(parameters) -> None:
    """Average ``.grad`` over ranks in place, in one flat all-reduce (what DDP does in its
    backward hooks), for steps that run the un-wrapped module, e.g. GradCache's chunked backward.
    A parameter without a gradient on this rank counts as zero (and gets the average)."""
    if not is_distributed():
        return
    trained = [p for p in parameters if p.requires_grad]
    if not trained:
        return
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in trained]
    )
    dist.all_reduce(flat)
    flat /= world_size()
    for parameter, piece in zip(trained, flat.split([p.numel() for p in trained])):
        parameter.grad = piece.view_as(parameter).clone()


def barrier() -> None:
    if is_distributed():
        dist.barrier()
