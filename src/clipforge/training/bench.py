"""Training-step throughput on synthetic data: the ``clipforge bench train`` contract.

Times the trainer's own optimizer step (:func:`clipforge.training.step.optimizer_step`, plus
each objective's ``after_step``) — not a copy of it — on a model and objectives built the way
``train()`` builds them (objective model defaults, ``setup``, extra inputs through the real
loader, accumulation, GradCache, freezing), so every registered objective can be timed and a
benchmark never times a cheaper step than a run takes. Batches are decoded once before timing:
the figure is the model's speed, not the data pipeline's (``benchmarks/data_throughput.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..data.batch import Batch
from ..data.record import RawRecord
from ..data.sources import MapSource
from ..data.tokenizer import Tokenizer
from ..machine import machine_info
from ..models import MODELS, create_model
from . import console
from .config import ObjectiveSpec, Precision, TrainConfig, apply_override
from .module import TrainModule, build_objectives
from .optim import build_optimizer
from .precision import resolve_precision
from .setup import (
    build_model_and_tokenizer,
    build_model_config,
    build_train_loader,
    prepare_for_training,
)
from .state import TrainState
from .step import optimizer_step

WORDS = (
    "red",
    "blue",
    "green",
    "small",
    "large",
    "round",
    "square",
    "cat",
    "dog",
    "tree",
    "house",
    "car",
    "bird",
    "flower",
    "sun",
    "moon",
    "face",
    "hand",
    "star",
    "boat",
)


@dataclass
class BenchConfig:
    model: str | None = None  # None: the config's model, else "tiny"
    batch_size: int = 64
    steps: int = 20
    warmup: int = 3  # untimed steps first (allocation, kernel choice)
    precision: Precision = "auto"
    objectives: tuple[str, ...] | None = None  # NAME[:WEIGHT]; None: the config's, else clip
    threads: int | None = None  # torch intra-op threads; None: torch's default
    config: str | None = None  # a train YAML: its model, objectives, optim, grow
    overrides: list[str] = field(default_factory=list)  # key=value on that config


class SyntheticPairs(MapSource):
    """Noise images with captions of several sentences and an alternative caption, so every
    extra input (second views, sub-captions, alt text) has something to work on."""

    name = "synthetic"

    def __init__(self, count: int, image_size: int, seed: int = 0):
        self.count, self.image_size, self.seed = count, image_size, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> RawRecord:
        rng = random.Random(self.seed * 100_003 + index)
        pixels = np.random.default_rng(rng.getrandbits(32)).integers(
            0, 256, (self.image_size, self.image_size, 3), dtype=np.uint8
        )
        sentences = [" ".join(rng.choices(WORDS, k=rng.randint(3, 8))) + "." for _ in range(3)]
        return RawRecord(
            f"synthetic-{index}",
            Image.fromarray(pixels),
            (" ".join(sentences), " ".join(rng.choices(WORDS, k=6))),
        )


class CycledBatches:
    """Batches decoded once, handed out in turn (the ``BatchSupply`` the step reads)."""

    epoch = 0

    def __init__(self, batches: list[Batch]):
        self.cycle = itertools.cycle(batches)

    def next(self) -> Batch:
        return next(self.cycle)


def bench_config_to_train(config: BenchConfig) -> TrainConfig:
    """The run a benchmark stands for: the YAML (if any), its overrides, then the flags."""
    if config.config:
        train = TrainConfig.from_yaml(config.config, list(config.overrides))
        if config.model is not None:
            train.model = dataclasses.replace(train.model, name=config.model)
        if config.objectives is not None:
            train.objectives = [ObjectiveSpec.parse(o) for o in config.objectives]
    else:
        data: dict = {
            "model": {"name": config.model or "tiny"},
            "objectives": list(config.objectives or ["clip"]),
        }
        for override in config.overrides:
            apply_override(data, override)
        train = TrainConfig.from_dict(data)
    train.data.batch_size = config.batch_size
    train.data.workers = 0
    train.run.precision = config.precision
    return train


def build_model(train: TrainConfig, objectives, source) -> tuple:
    """A registered size keeps its declared vocabulary (the embedding and any vocabulary-sized
    head cost what they will in a run); the BPE only needs to cover the synthetic captions."""
    section = train.model
    if section.name not in MODELS:
        return build_model_and_tokenizer(section, objectives, source)
    model_config = build_model_config(section, objectives)
    if model_config.text.pretrained:
        return build_model_and_tokenizer(section, objectives, source)
    if section.tokenizer_vocab_size:
        model_config.text.vocab_size = section.tokenizer_vocab_size
    tokenizer = Tokenizer.train(
        source.captions(),
        vocab_size=min(512, model_config.text.vocab_size),
        context_length=model_config.text.context_length,
    )
    model_config.text.eos_token_id, model_config.text.pad_token_id = (
        tokenizer.eot_id,
        tokenizer.pad_id,
    )
    return create_model(model_config), tokenizer


def bench_train(config: BenchConfig) -> dict:
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.steps < 1 or config.warmup < 0 or config.batch_size < 1:
        raise ValueError(
            f"bench needs --steps ≥ 1, --warmup ≥ 0 and --batch-size ≥ 1 "
            f"(got {config.steps}, {config.warmup}, {config.batch_size})"
        )
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train = bench_config_to_train(config)
    objectives = build_objectives(train.objectives)
    names = ", ".join(objectives)
    console.say(f"bench: building {train.model.name} with {names} (batch {config.batch_size})")
    micro_batches = max(1, train.optim.accumulation)
    size = 2 * config.batch_size * micro_batches
    source = SyntheticPairs(size, image_size=64)
    model, tokenizer = build_model(train, objectives, source)
    source.image_size = model.config.vision.image_size  # what the crop needs, no more
    prepare_for_training(model, train.model, objectives, device)
    module = TrainModule(model, objectives, {s.name: s.weight for s in train.objectives})
    optimizer = build_optimizer(module.named_parameters(), train.optim, device)
    precision = resolve_precision(train.run.precision, device)
    console.say(f"bench: decoding {size} synthetic samples")
    loader = build_train_loader(source, train.data, model, tokenizer, objectives, 0, 0, 1)
    batches = CycledBatches(list(loader))

    times, state = [], TrainState()
    total = config.warmup + config.steps
    for step in range(total):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        optimizer_step(module, module, optimizer, batches, train.optim, precision, device, state)
        for objective in objectives.values():
            objective.after_step(model, step + 1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        if step >= config.warmup:
            times.append(elapsed)
        kind = "warm-up step" if step < config.warmup else "step"
        console.say(f"bench: {kind} {step + 1}/{total} {1000 * elapsed:.0f} ms")
    median = statistics.median(times)
    samples = config.batch_size * micro_batches
    vision, text_config = model.config.vision, model.config.text
    return {
        "model": train.model.name,
        "objectives": list(objectives),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "embed_dim": model.config.embed_dim,
        "vision": {
            "image_size": vision.image_size,
            "patch_size": vision.patch_size,
            "width": vision.width,
            "layers": vision.layers,
            "heads": vision.heads,
        },
        "text": {
            "context_length": text_config.context_length,
            "width": text_config.width,
            "layers": text_config.layers,
            "heads": text_config.heads,
            "vocab_size": text_config.vocab_size,
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": config.batch_size,
        "accumulation": micro_batches,
        "precision": precision,
        "steps": config.steps,
        "samples_per_s": round(samples / median, 2),
        "step_ms_median": round(1000 * median, 2),
        "step_ms_min": round(1000 * min(times), 2),
        "step_ms_max": round(1000 * max(times), 2),
        "machine": machine_info(precision),
    }
