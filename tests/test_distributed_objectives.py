"""Every objective that all-gathers gives, on two gloo ranks, the loss and gradients of one
process on the same global batch.

Generic on purpose: each case builds the objective from the registry (``micro_train_module`` +
``setup``), runs it through its own code under DDP on each rank's half of the batch, and compares
the mean rank loss (DDP averages gradients, so that is the loss being optimised) and every
parameter's gradient with a single process on the whole batch, fp32 throughout. Terms that are
per rank by design (``PER_RANK_TERMS``) have as reference the gathered terms on the whole batch
plus the mean over the halves of the per-rank term — still computed only through the objective.
FILIP and LightCLIP gather token features: before ``distributed._ContiguousGrad`` their text
gradients came back scrambled on gloo (the all-gather's backward sent non-contiguous storage).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_distributed import free_port, loss_and_grads

from clipforge.data.batch import Batch
from clipforge.training.module import TrainModule

from synthetic import micro_train_module

WORLD, LOCAL_BATCH, LENGTH, SUBS = 2, 4, 16, 3
CASES = {
    "filip": ("filip", {}),
    "lightclip": ("lightclip", {}),
    "alip": ("alip", {}),
    "lexlip": ("lexlip", {}),
    "tcl_online": ("tcl", {"momentum_encoder": False, "queue_size": 0}),
    "tcl_momentum": ("tcl", {"queue_size": 16, "alpha_warmup_steps": 0}),
    "dreamlip": ("dreamlip", {}),
    "clip_improved": ("clip_improved", {"head_layers": 1}),  # BatchNorm statistics are per rank
}
# the weight of a term computed on each rank's own batch, as the released code does: TCL's
# in_batch_g2l_loss and LexLIP's FLOPS regulariser (a square of the batch mean)
PER_RANK_TERMS = {"tcl": "local_weight", "lexlip": "flops_weight"}


def build(objective: str, params: dict) -> TrainModule:
    module = micro_train_module(objective, params)
    torch.manual_seed(1)  # queues and heads made in setup: same on every rank
    for part in module.objectives.values():
        part.setup(module.model)
    return module.float()


def token_rows(generator, rows: int) -> torch.Tensor:
    text = torch.randint(3, 64, (rows, LENGTH), generator=generator)
    lengths = torch.randint(4, LENGTH - 2, (rows,), generator=generator)
    text[:, 0] = 1
    for row, length in enumerate(lengths.tolist()):
        text[row, length] = 2  # the micro model's EOS id, then padding
        text[row, length + 1 :] = 0
    return text


def global_batch() -> Batch:
    generator = torch.Generator().manual_seed(1)
    size = WORLD * LOCAL_BATCH
    subs = token_rows(generator, size * SUBS).reshape(size, SUBS, LENGTH)
    sub_mask = torch.ones(size, SUBS, dtype=torch.bool)
    sub_mask[1, 2] = sub_mask[6, 1:] = False
    extras = {
        "image_view2": torch.randn(size, 3, 32, 32, generator=generator),
        "text_view2": token_rows(generator, size),
        "sub_captions": subs,
        "sub_caption_mask": sub_mask,
        "alt_text": token_rows(generator, size),
        "alt_text_present": torch.tensor([True, False, True, True, True, True, False, True]),
    }
    return Batch(
        torch.randn(size, 3, 32, 32, generator=generator),
        token_rows(generator, size),
        [str(i) for i in range(size)],
        extras=extras,
    )


def rows_of(batch: Batch, rows: slice) -> Batch:
    return Batch(
        batch.images[rows],
        batch.text[rows],
        batch.keys[rows],
        extras={key: value[rows] for key, value in batch.extras.items()},
    )


def _rank_main(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        local = rows_of(global_batch(), slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH))
        results = {}
        for case, (objective, params) in CASES.items():
            module = DistributedDataParallel(build(objective, params), find_unused_parameters=True)
            loss, grads = loss_and_grads(module, local)
            results[case] = {"loss": loss, "grads": grads}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_objectives")
    mp.spawn(_rank_main, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def combine(parts: list[tuple[float, float, dict]]) -> tuple[float, dict]:
    """Σ weight · (loss, grads) over ``parts`` of (weight, loss, grads)."""
    loss = sum(weight * value for weight, value, _ in parts)
    names = set().union(*(grads.keys() for _, _, grads in parts))
    grads = {name: sum(weight * g[name] for weight, _, g in parts if name in g) for name in names}
    return loss, grads


def single_process(objective: str, params: dict) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss and gradients that two ranks must reproduce, from one process."""
    batch = global_batch()
    term = PER_RANK_TERMS.get(objective)
    if term is None:
        return loss_and_grads(build(objective, params), batch)
    # gathered terms over the whole batch + the mean over the halves of the per-rank term
    parts = [(1.0, *loss_and_grads(build(objective, {**params, term: 0.0}), batch))]
    for rank in range(WORLD):
        half = rows_of(batch, slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH))
        parts.append((1 / WORLD, *loss_and_grads(build(objective, params), half)))
        parts.append((-1 / WORLD, *loss_and_grads(build(objective, {**params, term: 0.0}), half)))
    return combine(parts)


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_match_one_process(rank_results, case):
    objective, params = CASES[case]
    expected_loss, expected_grads = single_process(objective, params)
    losses = [rank_results[r][case]["loss"] for r in range(WORLD)]
    assert sum(losses) / WORLD == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)
    for r in range(WORLD):
        grads = rank_results[r][case]["grads"]
        for name, expected in expected_grads.items():
            if not expected.abs().max() > 0:
                continue  # a parameter this loss does not reach
            assert name in grads, f"{case} rank {r}: no gradient for {name}"
            where = f"{case} rank {r} {name}"
            torch.testing.assert_close(
                grads[name],
                expected,
                rtol=1e-4,
                atol=1e-6,
                msg=lambda m, where=where: f"{where}: {m}",
            )
