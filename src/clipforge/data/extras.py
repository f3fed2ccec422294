"""Extra per-sample inputs an objective asks the loader for, beyond image + caption.

An objective declares what it needs on its class (``Objective.extra_inputs``), by name for the
inputs below or as an :class:`ExtraInput` object of its own. The loader only calls
:meth:`ExtraInput.make` in its workers (once per sample, with that sample's seeded RNG) and
:meth:`ExtraInput.collate` when batching, so a new objective with a new input is its own file:
nothing in :mod:`.loader` changes.

Built in, by name:

- ``image_view2``   a second augmented view of each image [B, 3, H, W] (TCL, CLIP-improved)
- ``text_view2``    an EDA-augmented copy of the caption, tokenised [B, T] (TCL, CLIP-improved)
- ``sub_captions``  up to K = 6 sentences of the caption, tokenised [B, K, T] +
                    ``sub_caption_mask`` [B, K] (DreamLIP)
- ``alt_text``      the first extra caption column (e.g. synthetic captions), tokenised [B, T]
                    + ``alt_text_present`` [B] (ALIP)
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..registry import Registry
from .tokenizer import Tokenizer
from .transforms import ImageTransform


@dataclass
class SampleView:
    """What an extra input may read of one sample while it is being made (in a worker)."""

    captions: list[str]  # the record's cleaned captions
    caption: str  # the one chosen for this sample
    image: Image.Image  # decoded RGB, before the transform
    transform: ImageTransform
    rng: random.Random  # this sample's seeded RNG: draws here repeat after a resume
    # the record's metadata, e.g. builtin:emoji-scenes' "boxes" + "region_captions" (in pixels of
    # ``image``; a region input must follow the transform's crop itself)
    metadata: dict[str, Any] = field(default_factory=dict)


class ExtraInput:
    """One named extra input: a per-sample value, then its batched tensors."""

    name: str = ""

    def make(self, view: SampleView) -> Any:
        raise NotImplementedError

    def collate(
        self, values: Sequence[Any], captions: Sequence[str], tokenizer: Tokenizer
    ) -> dict[str, torch.Tensor]:
        """The batch's ``values`` (one per good sample, in order) → ``Batch.extras`` entries."""
        raise NotImplementedError


class ImageView2(ExtraInput):
    name = "image_view2"

    def make(self, view: SampleView) -> torch.Tensor:
        return view.transform(view.image, view.rng)

    def collate(self, values, captions, tokenizer):
        return {self.name: torch.stack(list(values))}


class TextView2(ExtraInput):
    name = "text_view2"

    def make(self, view: SampleView) -> str:
        from .text_augment import eda_augment

        return eda_augment(view.caption, view.rng)

    def collate(self, values, captions, tokenizer):
        return {self.name: tokenizer(list(values))}


class SubCaptions(ExtraInput):
    """DreamLIP's sub-captions: the sentences of all captions, shuffled, at most ``max_count``."""

    name = "sub_captions"

    def __init__(self, max_count: int = 6):
        self.max_count = max_count

    def make(self, view: SampleView) -> list[str]:
        sentences = split_sentences(" ".join(view.captions))
        view.rng.shuffle(sentences)
        return sentences[: self.max_count] or [view.caption]

    def collate(self, values, captions, tokenizer):
        ids = torch.full(
            (len(values), self.max_count, tokenizer.context_length),
            tokenizer.pad_id,
            dtype=torch.long,
        )
        mask = torch.zeros(len(values), self.max_count, dtype=torch.bool)
        for row, subs in enumerate(values):
            subs = subs[: self.max_count]
            ids[row, : len(subs)] = tokenizer(subs)
            mask[row, : len(subs)] = True
        return {self.name: ids, "sub_caption_mask": mask}


class AltText(ExtraInput):
    """ALIP's second caption (the first extra caption column); the main one when absent."""

    name = "alt_text"

    def make(self, view: SampleView) -> str:
        return view.captions[1] if len(view.captions) > 1 else ""

    def collate(self, values, captions, tokenizer):
        return {
            self.name: tokenizer([alt or caption for alt, caption in zip(values, captions)]),
            "alt_text_present": torch.tensor([bool(alt) for alt in values]),
        }


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?;])\s+", text) if len(s.strip()) > 1]


EXTRA_INPUTS: Registry = Registry(
    "extra input",
    {
        "image_view2": ImageView2(),
        "text_view2": TextView2(),
        "sub_captions": SubCaptions(),
        "alt_text": AltText(),
    },
)


def resolve_extra_inputs(declared: Iterable[str | ExtraInput]) -> list[ExtraInput]:
    """Names (looked up in :data:`EXTRA_INPUTS`) or objects → objects, one per name, in order."""
    resolved: dict[str, ExtraInput] = {}
    for item in declared:
        extra = EXTRA_INPUTS.get(item) if isinstance(item, str) else item
        if not isinstance(extra, ExtraInput) or not extra.name:
            raise ValueError(
                f"extra input {item!r} is neither a name in "
                f"{EXTRA_INPUTS.names()} nor a named ExtraInput"
            )
        resolved.setdefault(extra.name, extra)
    return list(resolved.values())
