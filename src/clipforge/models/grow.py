"""Growing a model during training, function-preservingly (GrowCLIP).

Deng et al., "GrowCLIP: Data-aware Automatic Model Growing for Large-scale Contrastive
Language-Image Pre-training", ICCV 2023: start small, and at chosen points of training make the
towers deeper and/or wider, inheriting the trained weights so no progress is lost. GrowCLIP picks
*what* to grow with a data-aware search; here the schedule is given in the run config::

    grow:
      - {at_fraction: 0.5, vision_layers: 2, text_layers: 2}     # +2 blocks per tower
      - {at_step: 900, vision_width: 512}                       # new width (≥ old)

Depth (exact): new pre-norm blocks copy their neighbour's weights, then zero the attention
``out_proj`` and the MLP ``fc2`` (weights and biases): x + 0 + 0 = x, an identity residual block
(as in bert2BERT / StackBERT-style growth). They learn from the first step since the gradient of
a zero output projection is not zero. ``placement``: ``"interleave"`` (spread evenly between the
old blocks, default) or ``"top"`` (appended).

Width (Net2WiderNet, Chen et al. ICLR 2016; bert2BERT, Chen et al. ACL 2022): new channel j copies
old channel g(j) = j mod W — residual stream, LayerNorm γ/β, embeddings and every producer's
output rows are duplicated; every consumer's input columns are split among the copies of a channel
(fractions that sum to 1, random by default so the copies get different gradients and do not stay
identical forever). Attention grows by whole heads (head size kept; heads' = W'/head_dim) and the
MLP hidden layer by the same copy-and-split. LayerNorm normalises over the channels, so it is
preserved exactly only when every old channel has the same number of copies, i.e. W' = k·W:
then mean and variance of the duplicated vector equal the old ones. Other widths change the
LayerNorm statistics slightly and the grown model is only approximately the same function.

The optimizer must be rebuilt after growth (new parameters), and frozen prefixes re-applied.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from .clip import CLIP
from .pretrained_text import PretrainedTextTower
from .towers import TextTower, VisionTower
from .transformer import Block

TOWERS = ("vision", "text")


@dataclass(frozen=True)
class GrowStage:
    """One stage of a growth schedule (a ``grow:`` entry of the training config)."""

    at_fraction: float | None = None  # fire at round(at_fraction · planned steps) …
    at_step: int | None = None  # … or at this optimizer step (wins when both are set)
    vision_layers: int = 0  # blocks added to each tower
    text_layers: int = 0
    vision_width: int | None = None  # new width (≥ the old; integer multiples are exact)
    text_width: int | None = None
    placement: str = "interleave"  # where new blocks go: "interleave" or "top"
    seed: int | None = None  # width-split randomness; None: the stage's index

    @classmethod
    def parse(cls, value: GrowStage | dict[str, Any]) -> GrowStage:
        if isinstance(value, GrowStage):
            return value
        unknown = set(value) - STAGE_KEYS
        if unknown:
            raise ValueError(
                f"grow stage {value}: unknown keys {sorted(unknown)}; known: {sorted(STAGE_KEYS)}"
            )
        stage = cls(**value)
        if stage.at_step is None and stage.at_fraction is None:
            raise ValueError(f"grow stage {value} has neither at_fraction nor at_step")
        return stage


STAGE_KEYS = {f.name for f in dataclasses.fields(GrowStage)}


# -- depth --------------------------------------------------------------------------------------


def insertion_points(layers: int, added: int, placement: str) -> list[int]:
    """Old-block indices after which a new block goes (0 = before the first)."""
    if placement == "top":
        return [layers] * added
    if placement == "interleave":
        return [round((i + 1) * layers / (added + 1)) for i in range(added)]
    raise ValueError(f"unknown grow placement {placement!r}; expected 'interleave' or 'top'")


def identity_block(template: Block) -> Block:
    """A copy of ``template`` whose residual branches output 0: x ↦ x + 0 + 0."""
    block = copy.deepcopy(template)
    with torch.no_grad():
        for linear in (block.attn.out_proj, block.mlp.fc2):
            linear.weight.zero_()
            if linear.bias is not None:
                linear.bias.zero_()
    return block


def deepen_tower(tower: VisionTower | TextTower, added: int, placement: str = "interleave") -> None:
    """Insert ``added`` identity blocks into ``tower.transformer`` in place."""
    if added <= 0:
        return
    old = cast(list[Block], list(tower.transformer.blocks))  # a Transformer holds only Blocks
    after = insertion_points(len(old), added, placement)
    blocks = [identity_block(old[0]) for _ in range(after.count(0))]
    for index, block in enumerate(old, start=1):
        blocks.append(block)
        blocks.extend(identity_block(block) for _ in range(after.count(index)))
    tower.transformer.blocks = nn.ModuleList(blocks)
    tower.config.layers = len(blocks)


# -- width --------------------------------------------------------------------------------------


class ChannelMap:
    """new → old channel copy map with per-copy split fractions (summing to 1 per old channel)."""

    def __init__(self, old: int, new: int, random_split: bool, generator: torch.Generator):
        self.source = torch.arange(new) % old
        counts = torch.bincount(self.source, minlength=old).float()
        if random_split:
            raw = torch.rand(new, generator=generator) + 0.5  # U(0.5, 1.5)
            totals = torch.zeros(old).index_add_(0, self.source, raw)
            self.fraction = raw / totals[self.source]
        else:
            self.fraction = 1.0 / counts[self.source]

    @classmethod
    def grouped(cls, group_map: ChannelMap, group_size: int, repeats: int = 1) -> ChannelMap:
        """Expand a head map to channels: head h' → channels h'·size … (h'+1)·size − 1, ×repeats."""
        mapped = cls.__new__(cls)
        inner = torch.arange(group_size)
        source = (group_map.source[:, None] * group_size + inner).flatten()
        fraction = group_map.fraction.repeat_interleave(group_size)
        old_channels = int(group_map.source.max()) + 1 if len(group_map.source) else 0
        offsets = torch.arange(repeats)[:, None] * old_channels * group_size
        mapped.source = (offsets + source).flatten()
        mapped.fraction = fraction.repeat(repeats)
        return mapped


def _rows(tensor: torch.Tensor, mapping: ChannelMap, dim: int = 0) -> torch.Tensor:
    return tensor.index_select(dim, mapping.source.to(tensor.device))


def _split_columns(tensor: torch.Tensor, mapping: ChannelMap) -> torch.Tensor:
    fraction = mapping.fraction.to(tensor.device, tensor.dtype)
    return tensor.index_select(1, mapping.source.to(tensor.device)) * fraction


def widen_state(
    state: dict[str, torch.Tensor],
    old_width: int,
    new_width: int,
    heads: int,
    hidden: int,
    new_hidden: int,
    random_split: bool,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Map one tower's state dict from width ``old_width`` to ``new_width``."""
    head_dim = old_width // heads
    residual = ChannelMap(old_width, new_width, random_split, generator)
    head = ChannelMap(heads, new_width // head_dim, random_split, generator)
    per_head = ChannelMap.grouped(head, head_dim)
    qkv = ChannelMap.grouped(head, head_dim, repeats=3)
    mlp = ChannelMap(hidden, new_hidden, random_split, generator)
    proj_hidden = ChannelMap(old_width, new_width, random_split, generator)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        leaf, owner = parts[-1], parts[-2] if len(parts) > 1 else ""
        if key in ("class_embedding",) or owner.startswith("ln") or key == "patch_embed.weight":
            out[key] = _rows(value, residual)
        elif key in ("positional_embedding", "token_embedding.weight"):
            out[key] = _rows(value, residual, dim=1)
        elif owner == "qkv":
            value = _rows(value, qkv)
            out[key] = _split_columns(value, residual) if leaf == "weight" else value
        elif owner == "out_proj":
            value = _rows(value, residual)
            out[key] = _split_columns(value, per_head) if leaf == "weight" else value
        elif owner == "fc1":
            value = _rows(value, mlp)
            out[key] = _split_columns(value, residual) if leaf == "weight" else value
        elif owner == "fc2":
            value = _rows(value, residual)
            out[key] = _split_columns(value, mlp) if leaf == "weight" else value
        elif key == "proj.weight":  # linear head
            out[key] = _split_columns(value, residual)
        elif key in ("proj.0.weight", "proj.0.bias"):  # MLP head, first layer
            value = _rows(value, proj_hidden)
            out[key] = _split_columns(value, residual) if leaf == "weight" else value
        elif key == "proj.2.weight":
            out[key] = _split_columns(value, proj_hidden)
        else:
            out[key] = value
    return out


def widen_tower(
    model: CLIP,
    tower_name: str,
    new_width: int,
    generator: torch.Generator,
    random_split: bool = True,
) -> None:
    attribute = "visual" if tower_name == "vision" else "text"
    tower = getattr(model, attribute)
    config = tower.config
    if new_width == config.width:
        return
    if new_width < config.width:
        raise ValueError(f"grow: {tower_name} width {new_width} is smaller than {config.width}")
    head_dim = config.width // config.heads
    if new_width % head_dim:
        raise ValueError(
            f"grow: {tower_name} width {new_width} is not a multiple of the head size {head_dim}"
        )
    new_config = copy.deepcopy(config)
    new_config.width, new_config.heads = new_width, new_width // head_dim
    hidden = int(config.width * config.mlp_ratio)
    new_hidden = int(new_width * config.mlp_ratio)
    state = widen_state(
        tower.state_dict(),
        config.width,
        new_width,
        config.heads,
        hidden,
        new_hidden,
        random_split,
        generator,
    )
    tower_class = VisionTower if tower_name == "vision" else TextTower
    reference = next(tower.parameters())
    grown = tower_class(
        new_config, model.config.embed_dim, model.config.activation, model.config.projection
    )
    grown.load_state_dict(state)
    grown.transformer.grad_checkpointing = tower.transformer.grad_checkpointing
    grown.to(reference.device, reference.dtype).train(tower.training)
    setattr(model, attribute, grown)
    setattr(model.config, tower_name, new_config)


# -- the public entry points ------------------------------------------------------------------


def grow_model_(
    model: CLIP,
    depth: dict[str, int] | None = None,
    width: dict[str, int] | None = None,
    placement: str = "interleave",
    seed: int = 0,
    random_split: bool = True,
) -> CLIP:
    """Grow ``model`` in place (references to it stay valid) and return it.

    ``depth``: blocks to add per tower, e.g. ``{"vision": 2, "text": 2}``; ``width``: new widths,
    e.g. ``{"vision": 512}``. Width grows first, then depth.
    """
    depth, width = dict(depth or {}), dict(width or {})
    for name in set(depth) | set(width):
        if name not in TOWERS:
            raise ValueError(f"grow: unknown tower {name!r}; expected 'vision' or 'text'")
    if isinstance(model.text, PretrainedTextTower) and (depth.get("text") or width.get("text")):
        raise ValueError("grow: a pretrained Hugging Face text tower cannot be grown")
    generator = torch.Generator().manual_seed(seed)
    for name, new_width in width.items():
        if new_width:
            widen_tower(model, name, int(new_width), generator, random_split)
    for name, added in depth.items():
        tower = model.visual if name == "vision" else model.text
        if not isinstance(tower, PretrainedTextTower):  # refused above unless ``added`` is 0
            deepen_tower(tower, int(added), placement)
    return model


def grow_model(
    model: CLIP,
    depth: dict[str, int] | None = None,
    width: dict[str, int] | None = None,
    placement: str = "interleave",
    seed: int = 0,
    random_split: bool = True,
) -> CLIP:
    """A grown copy of ``model`` computing the same function (exactly for depth and for integer
    width multiples); ``model`` itself is unchanged."""
    return grow_model_(copy.deepcopy(model), depth, width, placement, seed, random_split)


def stage_step(stage: GrowStage | dict[str, Any], total_steps: int | None) -> int | None:
    """The optimizer step count at which a stage fires (None while ``total_steps`` is unknown)."""
    stage = GrowStage.parse(stage)
    if stage.at_step is not None:
        return int(stage.at_step)
    if total_steps is None or stage.at_fraction is None:
        return None
    return int(round(float(stage.at_fraction) * total_steps))


def validate_grow_schedule(schedule: Sequence[GrowStage | dict[str, Any]]) -> list[GrowStage]:
    return [GrowStage.parse(stage) for stage in schedule]


def apply_grow_schedule(
    model: CLIP, schedule: Sequence[GrowStage | dict[str, Any]], step: int, total_steps: int | None
) -> bool:
    """Grow ``model`` in place if a stage is due at ``step``; True when it grew.

    Call it before each optimizer step with the number of steps completed so far; a stage fires
    when that equals its trigger (``at_step``, or ``round(at_fraction · total_steps)``). A
    checkpoint written at that step holds the un-grown model, so a resumed run grows it again at
    the same point. On True, rebuild the optimizer (and DDP wrapper), and re-apply freezing.
    """
    grew = False
    for index, stage in enumerate(validate_grow_schedule(schedule)):
        if stage_step(stage, total_steps) != step:
            continue
        depth = {"vision": int(stage.vision_layers), "text": int(stage.text_layers)}
        width = {
            name: int(value)
            for name, value in (("vision", stage.vision_width), ("text", stage.text_width))
            if value
        }
        grow_model_(
            model, depth, width, stage.placement, index if stage.seed is None else int(stage.seed)
        )
        grew = True
    return grew
