"""The peers clipforge is timed against, built with the same dimensions as a clipforge model.

- Hugging Face ``transformers.CLIPModel`` trained the way its contrastive example trains it:
  ``model(input_ids, pixel_values, return_loss=True).loss`` and ``torch.optim.AdamW``.
- OpenCLIP's ``CLIP`` from ``open_clip.create_model`` with a model-config dict matching our dims,
  trained with ``open_clip.ClipLoss`` (what its ``training/train.py`` does).

OpenCLIP imports torchvision at import time (its preprocessing transforms and
``FrozenBatchNorm2d``), and torchvision is not installable next to this torch build. Timing the
model needs none of it, so :func:`install_import_stubs` puts a minimal stand-in ``torchvision``
(and ``ftfy``, used only by its tokenizer) in ``sys.modules`` — inside the benchmark process only.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import sys
import types

import torch
from torch import nn

from clipforge.models import ModelConfig


class _Placeholder:
    """Stands in for a torchvision transform class; fails loudly if actually used."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision stand-in: transforms are not available in benchmarks")


class _InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__spec__ = importlib.util.spec_from_loader(name, loader=None)
    return module


def install_import_stubs() -> None:
    """Stand-in ``torchvision`` (and ``ftfy`` if missing) modules, for ``import open_clip``."""
    if "torchvision" not in sys.modules:
        transform_names = (
            "Normalize",
            "Compose",
            "RandomResizedCrop",
            "ToTensor",
            "Resize",
            "CenterCrop",
            "ColorJitter",
            "Grayscale",
            "RandomHorizontalFlip",
            "Lambda",
        )
        transforms = _module(
            "torchvision.transforms",
            InterpolationMode=_InterpolationMode,
            **{n: type(n, (_Placeholder,), {}) for n in transform_names},
        )
        functional = _module(
            "torchvision.transforms.functional", InterpolationMode=_InterpolationMode
        )

        def _unavailable(*args, **kwargs):
            raise RuntimeError("torchvision stand-in: functional transforms are not available")

        for name in (
            "resize",
            "pad",
            "crop",
            "center_crop",
            "get_dimensions",
            "to_tensor",
            "normalize",
            "hflip",
            "rgb_to_grayscale",
            "adjust_brightness",
        ):
            setattr(functional, name, _unavailable)
        transforms.functional = functional
        misc = _module(
            "torchvision.ops.misc", FrozenBatchNorm2d=type("FrozenBatchNorm2d", (nn.Module,), {})
        )
        ops = _module("torchvision.ops", misc=misc)
        root = _module("torchvision", transforms=transforms, ops=ops, __version__="0.0-stub")
        sys.modules.update(
            {
                "torchvision": root,
                "torchvision.transforms": transforms,
                "torchvision.transforms.functional": functional,
                "torchvision.ops": ops,
                "torchvision.ops.misc": misc,
            }
        )
    if importlib.util.find_spec("ftfy") is None and "ftfy" not in sys.modules:
        sys.modules["ftfy"] = _module("ftfy", fix_text=lambda text: text)


# -- Hugging Face ----------------------------------------------------------------------------


def hf_clip(config: ModelConfig, attn_implementation: str = "sdpa") -> nn.Module:
    """A randomly initialised ``transformers.CLIPModel`` with ``config``'s dimensions."""
    from transformers import CLIPConfig, CLIPModel

    vision, text = config.vision, config.text
    act = "quick_gelu" if config.activation == "quick_gelu" else "gelu"
    hf_config = CLIPConfig(
        text_config=dict(
            vocab_size=text.vocab_size,
            hidden_size=text.width,
            intermediate_size=int(text.width * text.mlp_ratio),
            num_hidden_layers=text.layers,
            num_attention_heads=text.heads,
            max_position_embeddings=text.context_length,
            hidden_act=act,
            layer_norm_eps=text.layer_norm_eps,
            eos_token_id=text.eos_token_id,
            pad_token_id=text.pad_token_id,
            bos_token_id=None,
        ),
        vision_config=dict(
            image_size=vision.image_size,
            patch_size=vision.patch_size,
            hidden_size=vision.width,
            intermediate_size=int(vision.width * vision.mlp_ratio),
            num_hidden_layers=vision.layers,
            num_attention_heads=vision.heads,
            hidden_act=act,
            layer_norm_eps=vision.layer_norm_eps,
        ),
        projection_dim=config.embed_dim,
    )
    hf_config._attn_implementation = attn_implementation
    hf_config.text_config._attn_implementation = attn_implementation
    hf_config.vision_config._attn_implementation = attn_implementation
    return CLIPModel(hf_config)


def hf_loss(model: nn.Module, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The HF contrastive example's step: the model computes CLIP's loss itself."""
    return model(input_ids=text, pixel_values=images, return_loss=True).loss


# -- OpenCLIP --------------------------------------------------------------------------------


def open_clip_config(config: ModelConfig) -> dict:
    """OpenCLIP's model-config dict (``embed_dim``/``vision_cfg``/``text_cfg``) for our dims."""
    vision, text = config.vision, config.text
    return {
        "embed_dim": config.embed_dim,
        "quick_gelu": config.activation == "quick_gelu",
        "vision_cfg": {
            "image_size": vision.image_size,
            "patch_size": vision.patch_size,
            "width": vision.width,
            "layers": vision.layers,
            "head_width": vision.width // vision.heads,
            "mlp_ratio": vision.mlp_ratio,
        },
        "text_cfg": {
            "context_length": text.context_length,
            "vocab_size": text.vocab_size,
            "width": text.width,
            "heads": text.heads,
            "layers": text.layers,
            "mlp_ratio": text.mlp_ratio,
        },
    }


def open_clip_model(config: ModelConfig) -> nn.Module:
    """``open_clip.create_model`` of an OpenCLIP ``CLIP`` with ``config``'s dimensions."""
    install_import_stubs()
    import logging

    import open_clip

    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights loaded": intended
    # A built-in name gives the factory its defaults; our dict overrides every architecture key.
    return open_clip.create_model(
        "ViT-B-32", pretrained=None, output_dict=True, **open_clip_config(config)
    )


def open_clip_loss_fn():
    install_import_stubs()
    import open_clip

    loss = open_clip.ClipLoss()

    def step_loss(model: nn.Module, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        out = model(images, text)
        return loss(out["image_features"], out["text_features"], out["logit_scale"])

    return step_loss


# -- contenders: one system + levers, ready to step ---------------------------------------------


class Contender:
    """A model, its optimizer and a fixed random batch; ``step()`` is one training step."""

    def __init__(
        self, model: nn.Module, loss_fn, encode_image, optimizer, images, text, precision: str
    ):
        self.model, self.loss_fn, self.encode_image = model, loss_fn, encode_image
        self.optimizer, self.images, self.text = optimizer, images, text
        self.precision = precision
        self.parameters = sum(p.numel() for p in model.parameters())

    def autocast(self):
        import contextlib

        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self) -> None:
        with self.autocast():
            loss = self.loss_fn(self.images, self.text)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def infer(self) -> None:
        with torch.inference_mode(), self.autocast():
            self.encode_image(self.images)


def adamw(parameters, implementation: str | None) -> torch.optim.AdamW:
    """AdamW with CLIP's hyper-parameters; ``None`` = PyTorch's default implementation choice."""
    flags = {
        "fused": {"fused": True},
        "foreach": {"foreach": True},
        "forloop": {"foreach": False, "fused": False},
        None: {},
    }[implementation]
    return torch.optim.AdamW(
        parameters, lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2, **flags
    )


OPTIMIZER_LEVERS = ("fused", "foreach", "forloop")


MIN_CAPTION_TOKENS = 4


def caption_lengths(config: ModelConfig) -> range:
    """Caption lengths (tokens incl. EOS) of the benchmark's batches, drawn uniformly: 4 up to
    the whole context by default, so every batch has a caption filling the context (mean ≈ half
    of it; web captions are shorter: ~15 of 77 tokens), or up to ``--caption-tokens`` (handed
    to worker processes as ``BENCH_CAPTION_TOKENS``)."""
    longest = int(os.environ.get("BENCH_CAPTION_TOKENS") or config.text.context_length)
    longest = max(MIN_CAPTION_TOKENS, min(longest, config.text.context_length))
    return range(MIN_CAPTION_TOKENS, longest + 1)


def build(spec: str, model_name: str, batch: int, precision: str) -> Contender:
    """``clipforge+foreach`` → a ready contender (see benchmarks/train_throughput.py)."""
    from clipforge.models import model_config

    system, *levers = spec.split("+")
    config = model_config(model_name)
    torch.manual_seed(0)
    size, context = config.vision.image_size, config.text.context_length
    images = torch.randn(batch, 3, size, size)
    text = torch.randint(3, config.text.vocab_size - 1, (batch, context))
    lengths = caption_lengths(config)
    for row in range(batch):
        eos = lengths[torch.randint(len(lengths), ()).item()] - 1
        text[row, eos] = config.text.eos_token_id
        text[row, eos + 1 :] = config.text.pad_token_id
    optimizer_kind = next((lever for lever in levers if lever in OPTIMIZER_LEVERS), None)
    if "channels_last" in levers:
        images = images.contiguous(memory_format=torch.channels_last)
    if system == "clipforge":
        contender = _clipforge(config, optimizer_kind, levers, images, text, precision)
    elif system == "hf":
        model = hf_clip(config, "eager" if "eager" in levers else "sdpa").train()
        contender = Contender(
            model,
            lambda i, t: hf_loss(model, i, t),
            lambda i: model.get_image_features(pixel_values=i),
            adamw(model.parameters(), optimizer_kind),
            images,
            text,
            precision,
        )
    elif system == "openclip":
        model = open_clip_model(config).train()
        loss_fn = open_clip_loss_fn()
        contender = Contender(
            model,
            lambda i, t: loss_fn(model, i, t),
            model.encode_image,
            adamw(model.parameters(), optimizer_kind),
            images,
            text,
            precision,
        )
    else:
        raise ValueError(f"unknown system {system!r} in contender {spec!r}")
    if "compile" in levers:
        contender.loss_fn = torch.compile(contender.loss_fn)
    return contender


def _clipforge(config, optimizer_kind, levers, images, text, precision) -> Contender:
    import clipforge
    from clipforge.data.batch import Batch
    from clipforge.training.config import ObjectiveSpec, OptimSection
    from clipforge.training.module import TrainModule, build_objectives
    from clipforge.training.optim import build_optimizer, no_decay

    model = clipforge.create_model(config).train()
    if "manual_attn" in levers:
        _use_manual_attention(model)
    if "one_group" in levers or "no_trim" in levers:
        _use_text_padding(model.text, "one_group" if "one_group" in levers else "none")
    if "conv_patch" in levers or "linear_patch" in levers:
        _use_patch_embedding(model.visual, "conv" if "conv_patch" in levers else "linear")
    module = TrainModule(model, build_objectives([ObjectiveSpec("clip")]), {"clip": 1.0})
    if optimizer_kind is None or optimizer_kind == "fused":  # the trainer's optimizer
        optimizer = build_optimizer(module.named_parameters(), OptimSection(), torch.device("cpu"))
    else:
        named = list(module.named_parameters())
        optimizer = adamw(
            [
                {"params": [p for n, p in named if not no_decay(n, p)]},
                {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
            ],
            optimizer_kind,
        )
    batch = Batch(images, text, [str(i) for i in range(len(images))])
    return Contender(
        module,
        lambda i, t: module(batch)[0],
        model.encode_image,
        optimizer,
        images,
        text,
        precision,
    )


def _use_manual_attention(model: nn.Module) -> None:
    """Lever: softmax(QKᵀ/√d + mask)·V written out, instead of ``scaled_dot_product_attention``."""
    import types

    from clipforge.models.transformer import SelfAttention

    def forward(self, x, causal=False, attn_mask=None):
        batch, tokens, width = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
        if causal:
            scores = scores + torch.full((tokens, tokens), float("-inf")).triu(1)
        if attn_mask is not None:
            scores = scores + attn_mask
        out = scores.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, width))

    for module in model.modules():
        if isinstance(module, SelfAttention):
            module.forward = types.MethodType(forward, module)


def _use_text_padding(text_tower: nn.Module, kind: str) -> None:
    """Lever: ``one_group`` cuts the whole batch after its longest caption (no length groups);
    ``none`` encodes the full padded context like the peers do."""
    import types

    def pooled_by_length(self, text, eos):
        if kind == "one_group":
            text = text[:, : int(eos.max()) + 1]
        x = self.encode_tokens(text)
        return x[torch.arange(x.shape[0]), eos]

    text_tower.pooled_by_length = types.MethodType(pooled_by_length, text_tower)


def _use_patch_embedding(visual: nn.Module, kind: str) -> None:
    """Lever: patchify by Conv2d, or by reshaping into patches and one matmul (same weight)."""
    import types

    import torch.nn.functional as F

    def patchify(images):
        if kind == "conv":
            return F.conv2d(images, visual.patch_embed.weight, stride=visual.config.patch_size)
        b, c, h, w = images.shape
        p = visual.config.patch_size
        patches = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        out = (
            patches.reshape(b, (h // p) * (w // p), c * p * p)
            @ visual.patch_embed.weight.reshape(visual.config.width, -1).T
        )
        return out.transpose(1, 2).reshape(b, -1, h // p, w // p)

    # the tower calls self.patch_embed(images): route that call through the chosen path,
    # keeping the Conv2d parameter (and its state-dict key) where it is.
    conv = visual.patch_embed
    conv.forward = types.MethodType(lambda self, images: patchify(images), conv)
