"""Learnable context vectors in front of the class names (CoOp).

Zhou, Yang, Loy & Liu, "Learning to Prompt for Vision-Language Models" (IJCV 2022). A class's
prompt is M learnt word vectors followed by the class name's own token embeddings::

    t_c = [SOT] [V]_1 [V]_2 … [V]_M [CLASS_c] . [EOT]          (CoOp's "end" position)

The [V]_m ∈ R^W live in the text tower's token-embedding space (W = text width) and are shared by
all classes (unified context, CoOp's default) or, with ``class_specific``, one set per class
(CSC, [C, M, W]). Everything else — the tower, the name tokens, positions — stays frozen; the
class weight is w_c = normalise(g(t_c)), g the text tower up to its projection.

clipforge generalises the prompt to a template: ``[V]_1…[V]_M`` go just before the class name
inside each template (CoOp's own is ``"{c}."``); with several templates a class weight is the
normalised mean of its normalised prompt embeddings, exactly as in zero-shot prompt ensembling.
So with M = 0 and the hand templates the weights *are* zero-shot's (tested).

How the slots are found: each prompt is tokenised once with M placeholder words ``X`` before the
name (as CoOp does; another one-token word if the tokenizer splits ``X``) and once without; the
M extra token positions are the slots whose embeddings are replaced by the context.
Shapes: P = C·K prompts (K templates), T = the longest prompt (≤ the tower's context).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...models.towers import TextTower
from ..templates import check_templates, fill

# CoOp's stand-in for a context vector when tokenising is "X"; a tokenizer that splits it (a
# word-prefix piece + "x") gets the next word that is one token of its own
PLACEHOLDER_WORDS = ("X", "a", "the", "of")
INIT_STD = 0.02  # CoOp's random initialisation N(0, 0.02²)


def _slot_start(full: torch.Tensor, base: torch.Tensor, eos_of, n_ctx: int) -> int | None:
    """Where ``full`` (the prompt with n_ctx placeholders) has them relative to ``base``; None
    when the placeholders did not tokenise as n_ctx equal tokens inserted in one place."""
    end_full, end_base = int(eos_of(full[None])[0]) + 1, int(eos_of(base[None])[0]) + 1
    if end_full != end_base + n_ctx:
        return None
    differs = (full[:end_base] != base[:end_base]).nonzero()
    start = int(differs[0]) if len(differs) else end_base - 1
    same = bool((full[start : start + n_ctx] == full[start]).all())
    return (
        start
        if same and torch.equal(full[start + n_ctx : end_full], base[start:end_base])
        else None
    )


def _prompt_ids(
    tokenizer, eos_of, template: str, name: str, n_ctx: int
) -> tuple[torch.Tensor, int]:
    """The ids [T] of ``template`` filled with n_ctx placeholders + ``name``, and the position
    of the first placeholder (the first context slot)."""
    base = tokenizer([fill(template, name)])[0]
    if n_ctx == 0:
        return base, 0
    if int(eos_of(base[None])[0]) + 1 + n_ctx > len(base):
        raise ValueError(
            f"prompt {fill(template, name)!r} with {n_ctx} context vectors does not fit the text "
            f"context of {len(base)} tokens (use fewer context vectors or a shorter template)"
        )
    for word in PLACEHOLDER_WORDS:
        full = tokenizer([fill(template, " ".join([word] * n_ctx + [name]))])[0]
        start = _slot_start(full, base, eos_of, n_ctx)
        if start is not None:
            return full, start
    raise ValueError(
        f"the tokenizer splits every placeholder word {PLACEHOLDER_WORDS} before {name!r}; "
        f"cannot place the context vectors"
    )


class PromptLearner(nn.Module):
    """Context vectors ``ctx`` ([M, W] shared, [C, M, W] class-specific) and the frozen prompts.

    ``text_tower`` is held, not registered: the learner's ``state_dict`` is the context alone,
    and ``parameters()`` are only what is learnt. ``ctx_init`` (e.g. ``"a photo of a"``) starts
    the context from those words' embeddings and sets M to their token count (CoOp's
    ``CTX_INIT``); otherwise ``n_ctx`` vectors are drawn from N(0, 0.02²) with ``generator``.
    """

    ids: torch.Tensor  # [P, T] token ids, placeholders at the slots
    slots: torch.Tensor  # [P, M] positions of the context vectors
    pool_at: torch.Tensor  # [P] where each prompt is pooled (its EOT)

    def __init__(
        self,
        text_tower: nn.Module,
        tokenizer,
        class_names: Sequence[str],
        templates: Sequence[str] = ("{c}.",),
        n_ctx: int = 16,
        class_specific: bool = False,
        ctx_init: str | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if not isinstance(text_tower, TextTower):
            raise ValueError(
                f"prompt learning needs clipforge's own text tower; this model's is "
                f"{type(text_tower).__name__}"
            )
        if n_ctx < 0:
            raise ValueError(f"n_ctx must be ≥ 0 context vectors, got {n_ctx}")
        check_templates(tuple(templates))
        self._tower = (text_tower,)  # a tuple: not a submodule, not in state_dict
        self.class_names = list(class_names)
        self.templates = tuple(templates)
        self.class_specific = class_specific
        self.ctx_init = ctx_init
        weight = text_tower.token_embedding.weight
        init = None
        if ctx_init:
            words = tokenizer([ctx_init])[0]
            end = int(text_tower.eos_positions(words[None])[0])
            init = weight[words[1:end].to(weight.device)].detach().clone()  # [M, W], no SOT/EOT
            n_ctx = init.shape[0]
        self.n_ctx = n_ctx
        ids, starts = [], []
        for name in self.class_names:
            for template in self.templates:
                prompt, start = _prompt_ids(
                    tokenizer, text_tower.eos_positions, template, name, n_ctx
                )
                ids.append(prompt)
                starts.append(start)
        ids_tensor = torch.stack(ids).to(weight.device)  # [P, T]
        if text_tower.config.causal:  # nothing after the last EOT reaches a pooled position
            ids_tensor = ids_tensor[:, : int(text_tower.pool_positions(ids_tensor).max()) + 1]
        slots = torch.tensor(starts, device=weight.device)[:, None] + torch.arange(
            n_ctx, device=weight.device
        )
        self.register_buffer("ids", ids_tensor, persistent=False)
        self.register_buffer("slots", slots, persistent=False)  # [P, M]
        self.register_buffer("pool_at", text_tower.pool_positions(ids_tensor), persistent=False)
        shape = (
            (len(self.class_names), n_ctx, weight.shape[1])
            if class_specific
            else (
                n_ctx,
                weight.shape[1],
            )
        )
        if init is not None:
            ctx = init.expand(shape).clone()
        else:
            ctx = torch.randn(shape, generator=generator) * INIT_STD
        self.ctx = nn.Parameter(ctx.to(weight.device, weight.dtype))

    @property
    def tower(self) -> TextTower:
        return self._tower[0]

    def prompt_features(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised embeddings of every prompt [P, D]; ``ctx`` overrides ``self.ctx`` (a
        functional call, for the regulated inner step)."""
        ctx = self.ctx if ctx is None else ctx
        embeds = self.tower.token_embedding(self.ids)  # [P, T, W]
        if self.n_ctx:
            per_prompt = (
                ctx[None].expand(len(self.ids), -1, -1)
                if ctx.dim() == 2
                else (ctx.repeat_interleave(len(self.templates), dim=0))
            )  # [P, M, W]
            index = self.slots[..., None].expand(-1, -1, embeds.shape[-1])
            embeds = embeds.scatter(1, index, per_prompt.to(embeds.dtype))
        return F.normalize(self.tower.forward_embeddings(embeds, self.pool_at).float(), dim=-1)

    def class_weights(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Class weights [C, D]: normalise(mean over a class's templates of its prompts)."""
        features = self.prompt_features(ctx)
        per_class = features.view(len(self.class_names), len(self.templates), -1)
        return F.normalize(per_class.mean(dim=1), dim=-1)

    def describe(self) -> list[str]:
        """The prompts as text, context shown as ``[V]×M`` (for result files)."""
        marker = f"[V]×{self.n_ctx} " if self.n_ctx else ""
        return [template.replace("{c}", marker + "{c}") for template in self.templates]
