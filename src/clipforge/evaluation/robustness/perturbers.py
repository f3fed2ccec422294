"""The three adversaries behind one interface: ``start_batch`` then ``perturb(task, ε, rows)``.

A perturber returns adversarial pixels for the batch rows a task scores; ``describe()`` adds what
it was (surrogate, perturbation file) to the result.
"""

from __future__ import annotations

import torch

from ...data.transforms import ImageTransform
from ..embedding import frozen
from .pgd import pgd, retrieval_loss, zeroshot_loss
from .pixels import PixelBatch, PixelEncoder, PixelReader
from .sga import sga_loss
from .uap import apply_uap, load_perturbation, save_perturbation, train_uap


class PGDPerturber:
    """White-box PGD on the evaluated model, each task its own loss."""

    def __init__(self, context):
        self.context = context
        self.generator = torch.Generator().manual_seed(context.config.seed)

    def start_batch(self, batch: PixelBatch, labels: torch.Tensor, own_mean: torch.Tensor):
        self.batch, self.labels, self.own_mean = batch, labels, own_mean

    def __call__(self, task: str, eps: float, rows: torch.Tensor) -> torch.Tensor:
        context, config = self.context, self.context.config
        if task == "zeroshot":
            loss = zeroshot_loss(context.encoder, context.classifier, self.labels[rows])
        else:
            loss = retrieval_loss(context.encoder, self.own_mean[rows])
        return pgd(
            loss,
            self.batch.pixels[rows],
            eps,
            config.alpha(eps),
            config.steps,
            config.random_start,
            self.generator,
        )

    def describe(self) -> dict:
        return {}


class UAPPerturber:
    """One δ per ε, trained on ``uap_data`` (or read from ``perturbation``), added to all."""

    def __init__(self, context, preprocess: ImageTransform):
        config = context.config
        size = preprocess.preprocess.image_size
        self.context, self.file = context, config.perturbation
        if config.perturbation is not None:
            saved = load_perturbation(config.perturbation, size)
            missing = [e for e in config.eps if not any(abs(e - s) < 1e-9 for s in saved)]
            if missing:
                raise ValueError(
                    f"{config.perturbation}: has no perturbation for eps "
                    f"{', '.join(f'{e:g}' for e in missing)}; it holds {sorted(saved)}"
                )
            self.deltas = {
                e: next(d for s, d in saved.items() if abs(e - s) < 1e-9) for e in config.eps
            }
        else:
            self.deltas = self._train(preprocess, size)
            if config.save_perturbation is not None:
                meta = {"model_image_size": size, "trained_on": config.uap_data}
                self.file = save_perturbation(config.save_perturbation, self.deltas, meta)

    def _train(self, preprocess, size) -> dict[float, torch.Tensor]:
        from .task import open_robustness_data

        context, config = self.context, self.context.config
        if not config.uap_data:
            raise ValueError(
                "--attack uap needs --uap-data SPEC (the split the perturbation is trained on) "
                "or --perturbation FILE"
            )
        train = open_robustness_data(config.uap_data)
        if context.classifier is not None and len(train.class_names() or []) != len(
            context.class_names
        ):
            raise ValueError(
                f"{config.uap_data}: its classes differ from the test data's; train the "
                f"perturbation on another split of the same data set"
            )
        reader = PixelReader.for_model(preprocess, config.encode, config.limit)
        device = context.encoder.mean.device

        def batches():
            for batch in reader.batches(train, device):
                labels = torch.tensor([-1 if y is None else y for y in batch.labels], device=device)
                if context.classifier is not None and bool((labels >= 0).any()):
                    rows = labels >= 0
                    yield (
                        batch.pixels[rows],
                        zeroshot_loss(context.encoder, context.classifier, labels[rows]),
                    )
                else:
                    _, _, own_mean = context.own_captions(batch)
                    yield batch.pixels, retrieval_loss(context.encoder, own_mean)

        generator = torch.Generator().manual_seed(config.seed)
        return {
            eps: train_uap(
                batches,
                (3, size, size),
                eps,
                config.alpha(eps),
                config.uap_epochs,
                device,
                generator,
            )
            for eps in config.eps
        }

    def start_batch(self, batch, labels, own_mean):
        self.batch = batch

    def __call__(self, task: str, eps: float, rows: torch.Tensor) -> torch.Tensor:
        return apply_uap(self.batch.pixels[rows], self.deltas[eps])

    def describe(self) -> dict:
        config = self.context.config
        return {
            "uap_data": config.uap_data,
            "uap_epochs": config.uap_epochs,
            "perturbation_file": None if self.file is None else str(self.file),
        }


class SGAPerturber:
    """SGA's image perturbation computed on the surrogate, the same for every task."""

    def __init__(self, context, preprocess: ImageTransform):
        from ...loading import load

        config = context.config
        self.context = context
        device = context.encoder.mean.device
        self.model, surrogate_preprocess, self.tokenizer = load(config.surrogate, device=device)
        if self.tokenizer is None:
            raise ValueError(f"{config.surrogate}: the surrogate has no tokenizer (tokenizer.json)")
        self.encoder = PixelEncoder(self.model, surrogate_preprocess)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.cache: dict[float, torch.Tensor] = {}

    def start_batch(self, batch, labels, own_mean):
        from ..embedding import encode_texts

        self.batch, self.cache = batch, {}
        sets = self.context.caption_sets(batch)
        longest = max(1, max(len(s) for s in sets))
        flat = [c for s in sets for c in s]
        with frozen(self.model):
            embeds = encode_texts(self.model, self.tokenizer, flat, self.context.config.encode)
        embeds = embeds.to(batch.pixels.device)
        self.captions = torch.zeros(len(sets), longest, embeds.shape[-1], device=embeds.device)
        self.mask = torch.zeros(len(sets), longest, dtype=torch.bool, device=embeds.device)
        start = 0
        for row, captions in enumerate(sets):
            self.captions[row, : len(captions)] = embeds[start : start + len(captions)]
            self.mask[row, : len(captions)] = True
            start += len(captions)

    def __call__(self, task: str, eps: float, rows: torch.Tensor) -> torch.Tensor:
        if eps not in self.cache:
            config = self.context.config
            loss = sga_loss(self.encoder, self.captions, self.mask, config.sga_scales)
            with frozen(self.model):
                self.cache[eps] = pgd(
                    loss,
                    self.batch.pixels,
                    eps,
                    config.alpha(eps),
                    config.steps,
                    config.random_start,
                    self.generator,
                )
        return self.cache[eps][rows]

    def describe(self) -> dict:
        config = self.context.config
        return {"surrogate": config.surrogate, "sga_scales": list(config.sga_scales)}


def make_perturber(context, preprocess: ImageTransform):
    attack = context.config.attack
    if attack == "pgd":
        return PGDPerturber(context)
    if attack == "uap":
        return UAPPerturber(context, preprocess)
    if attack == "sga":
        return SGAPerturber(context, preprocess)
    raise ValueError(f"attack {attack!r} perturbs no pixels")


__all__ = ["PGDPerturber", "SGAPerturber", "UAPPerturber", "make_perturber"]
