"""Two gloo ranks on CPU give the loss and gradients of one process on the same global batch.

Each objective's distributed path is checked against a single-process step on the concatenated
batch: CLIP with a differentiable all-gather (global logits, and ``local_loss`` rows × global
columns) and SigLIP with the ring exchange of text blocks, each also through GradCache (chunked,
un-wrapped module, gradients averaged by hand). DDP averages gradients over ranks, so the
per-rank losses are built such that their mean is the global loss; the test checks exactly
that, then every parameter's gradient with fp32 tolerance sized to the gradient
(tests/numerics.py). A second test runs the real trainer
under ``torchrun --nproc-per-node 2 -m clipforge train`` and compares its logged losses with a
single process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from clipforge.cli.train import add_arguments, config_from_args
from clipforge.data.batch import Batch
from clipforge.distributed import average_gradients
from clipforge.training import train
from clipforge.training.gradcache import gradcache_step
from clipforge.training.module import TrainModule

from numerics import LOSS_CURVE_RTOL, assert_same_grads
from synthetic import micro_model_overrides, micro_train_module

WORLD, LOCAL_BATCH = 2, 4
CASES = {
    "clip": ("clip", {}),
    "clip_local_loss": ("clip", {"local_loss": True}),
    "siglip": ("siglip", {}),
    # GradCache runs the un-wrapped module in chunks, then averages gradients itself
    "clip_gradcache": ("clip", {"local_loss": True}),
    "siglip_gradcache": ("siglip", {}),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_module(objective: str, params: dict) -> TrainModule:
    return micro_train_module(objective, params)


def global_batch() -> Batch:
    generator = torch.Generator().manual_seed(1)
    size = WORLD * LOCAL_BATCH
    images = torch.randn(size, 3, 32, 32, generator=generator)
    text = torch.randint(3, 64, (size, 16), generator=generator)
    text[:, 9] = 2  # the micro model's EOS id
    return Batch(images, text, [str(i) for i in range(size)])


def loss_and_grads(module, batch) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and every gradient by parameter name (a DDP wrapper's ``module.`` prefix dropped)."""
    loss, _ = module(batch)
    loss.backward()
    grads = {
        n.removeprefix("module."): p.grad.clone()
        for n, p in module.named_parameters()
        if p.grad is not None
    }
    return loss.item(), grads


def _rank_main(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        full = global_batch()
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        local = Batch(full.images[rows], full.text[rows], full.keys[rows])
        results = {}
        for case, (objective, params) in CASES.items():
            module = build_module(objective, params)
            if case.endswith("_gradcache"):
                loss = gradcache_step(module, local, chunk=LOCAL_BATCH // 2)[0].item()
                average_gradients(list(module.parameters()))
                grads = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
            else:
                trained = DistributedDataParallel(module, find_unused_parameters=True)
                loss, grads = loss_and_grads(trained, local)
            results[case] = {
                "loss": loss,
                "grads": {n.removeprefix("module."): g for n, g in grads.items()},
            }
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank_main, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_match_one_process(rank_results, case):
    objective, params = CASES[case]
    expected_loss, expected_grads = loss_and_grads(build_module(objective, params), global_batch())
    losses = [rank_results[r][case]["loss"] for r in range(WORLD)]
    # DDP averages gradients, so the mean of the rank losses is the loss being optimised.
    assert sum(losses) / WORLD == pytest.approx(expected_loss, rel=1e-5)
    if case == "clip":  # global logits: every rank computes the whole loss
        assert losses == pytest.approx([expected_loss] * WORLD, rel=1e-5)
    for r in range(WORLD):  # fp32 throughout (no autocast here); kernel-sized tolerance
        assert_same_grads(
            rank_results[r][case]["grads"], expected_grads, "fp32", f"{case} rank {r}"
        )


# -- the trainer under torchrun ----------------------------------------------------------------


def write_shapes_folder(root: Path, count: int) -> Path:
    """A ``folder:`` data set of ShapesSource drawings: ``i.png`` + ``i.txt``."""
    from synthetic import ShapesSource

    source = ShapesSource(count)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        record = source[index]
        record.image.save(root / f"{index:03d}.png")
        (root / f"{index:03d}.txt").write_text(record.captions[0])
    return root


def write_micro_config(path: Path, batch_size: int, objective: str = "clip") -> Path:
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "name": "tiny",
                    "overrides": micro_model_overrides(),
                    "tokenizer_vocab_size": 300,
                },
                "objectives": [objective],
                "data": {"batch_size": batch_size, "workers": 0, "val": None},
                "optim": {"lr": 2e-3},
                # pinned: auto is bf16 on AVX-512 BF16 machines, and this test compares two paths
                "run": {"steps": 4, "log_every": 1, "progress": False, "precision": "fp32"},
            }
        )
    )
    return path


def logged_losses(run_dir: Path) -> list[float]:
    return [
        json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def clipforge_env() -> dict:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )


@pytest.mark.parametrize("objective", ["siglip"])
def test_torchrun_trainer_matches_single_process(tmp_path, objective):
    data = write_shapes_folder(tmp_path / "data", 32)
    common = ["train", "--data", f"folder:{data}", "--no-progress"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    train(
        config_from_args(
            parser.parse_args(  # one process, the same CLI config
                [
                    *common[1:],
                    "--out",
                    str(tmp_path / "one"),
                    "--config",
                    str(write_micro_config(tmp_path / "one.yaml", 2 * LOCAL_BATCH, objective)),
                ]
            )
        )
    )
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(WORLD),
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(free_port()),
            "-m",
            "clipforge",
            *common,
            "--out",
            str(tmp_path / "two"),
            "--config",
            str(write_micro_config(tmp_path / "two.yaml", LOCAL_BATCH, objective)),
        ],
        env=clipforge_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # the same global batches (rank r reads every WORLD-th index of the epoch's permutation),
    # the same gradients: the logged (rank-averaged) losses follow the single-process curve
    assert logged_losses(tmp_path / "two") == pytest.approx(
        logged_losses(tmp_path / "one"), rel=LOSS_CURVE_RTOL["fp32"]
    )
