"""Training-step throughput on synthetic inputs: the ``clipforge bench train`` contract.

Times the full step the trainer runs — both towers forward, the objectives, backward, fused
AdamW — on random images and token ids, after warm-up steps that are not counted.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from ..data.batch import Batch
from ..machine import machine_info
from ..models import create_model
from .config import ObjectiveSpec, OptimSection
from .module import TrainModule, build_objectives
from .optim import build_optimizer
from .precision import autocast, resolve_precision


@dataclass
class BenchConfig:
    model: str = "tiny"
    batch_size: int = 64
    steps: int = 20
    warmup: int = 3
    precision: str = "auto"
    objectives: tuple[str, ...] = ("clip",)
    threads: int | None = None


def bench_train(config: BenchConfig) -> dict:
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = create_model(config.model).to(device).train()
    objectives = build_objectives([ObjectiveSpec.parse(o) for o in config.objectives])
    for objective in objectives.values():
        objective.setup(model)
    module = TrainModule(model, objectives, {name: 1.0 for name in objectives}).to(device)
    optimizer = build_optimizer(module.named_parameters(), OptimSection(), device)
    precision = resolve_precision(config.precision, device)
    size = model.config.vision.image_size
    context = model.config.text.context_length
    images = torch.randn(config.batch_size, 3, size, size, device=device)
    text = torch.randint(3, model.config.text.vocab_size, (config.batch_size, context),
                         device=device)
    text[:, context // 2] = model.config.text.eos_token_id
    batch = Batch(images, text, [str(i) for i in range(config.batch_size)])

    times = []
    for step in range(config.warmup + config.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with autocast(precision, device):
            loss, _ = module(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= config.warmup:
            times.append(time.perf_counter() - started)
    median = statistics.median(times)
    vision, text_config = model.config.vision, model.config.text
    return {
        "model": config.model, "device": str(device), "threads": torch.get_num_threads(),
        "embed_dim": model.config.embed_dim,
        "vision": {"image_size": vision.image_size, "patch_size": vision.patch_size,
                   "width": vision.width, "layers": vision.layers, "heads": vision.heads},
        "text": {"context_length": text_config.context_length, "width": text_config.width,
                 "layers": text_config.layers, "heads": text_config.heads,
                 "vocab_size": text_config.vocab_size},
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": config.batch_size, "precision": precision, "steps": config.steps,
        "samples_per_s": round(config.batch_size / median, 2),
        "step_ms_median": round(1000 * median, 2),
        "step_ms_min": round(1000 * min(times), 2), "step_ms_max": round(1000 * max(times), 2),
        "machine": machine_info(precision),
    }
