"""A real (tiny) CLIP model and a batch carrying every objective's extras.

For tests that run an objective through the actual towers (forward, backward, saved state)
rather than against fixed embeddings: 16 px images in 8 px patches, width 32, one layer per
tower, a 50-token vocabulary and a context of 8, so a forward pass takes milliseconds.
"""

from __future__ import annotations

import torch

import clipforge
from clipforge.data.batch import Batch
from clipforge.models import model_config


def tiny_model():
    config = model_config("tiny")
    config.embed_dim = 32
    config.vision.image_size = config.preprocess.image_size = 16
    config.vision.patch_size, config.vision.width, config.vision.layers = 8, 32, 1
    config.vision.heads = config.text.heads = 2
    config.text.width, config.text.layers = 32, 1
    config.text.context_length, config.text.vocab_size = 8, 50
    torch.manual_seed(0)
    return clipforge.create_model(config)


def token_ids(batch, length=8, generator=None):
    """Rows of start (1), 1–4 random word ids, end (2), then padding (0)."""
    ids = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        n = 2 + row % 4
        ids[row, 0] = 1
        ids[row, 1:n] = torch.randint(3, 50, (n - 1,), generator=generator)
        ids[row, n] = 2
    return ids


def real_batch(size=4) -> Batch:
    """Second views (clip-improved, tcl), 3 sub-captions with the last masked (dreamlip) and a
    synthetic caption missing on the last sample (alip)."""
    generator = torch.Generator().manual_seed(1)
    subs = torch.stack([token_ids(3, generator=generator) for _ in range(size)])
    sub_mask = torch.tensor([[True, True, False]] * (size - 1) + [[True, False, False]])
    extras = {
        "image_view2": torch.randn(size, 3, 16, 16, generator=generator),
        "text_view2": token_ids(size, generator=generator),
        "sub_captions": subs,
        "sub_caption_mask": sub_mask,
        "alt_text": token_ids(size, generator=generator),
        "alt_text_present": torch.tensor([True] * (size - 1) + [False]),
    }
    return Batch(
        torch.randn(size, 3, 16, 16, generator=generator),
        token_ids(size, generator=generator),
        [str(i) for i in range(size)],
        extras=extras,
    )


def micro_config(tokenizer, context_length: int = 16):
    """``tiny`` shrunk to 32 px images in 8 px patches, width 32, one layer per tower, sized to
    ``tokenizer``'s vocabulary: a model that trains in seconds (evaluation, attacks, prompts)."""
    config = model_config("tiny")
    config.embed_dim = 32
    config.vision.image_size = config.preprocess.image_size = 32
    config.vision.patch_size, config.vision.width = 8, 32
    config.vision.layers, config.vision.heads = 1, 2
    config.text.width, config.text.layers, config.text.heads = 32, 1, 2
    config.text.context_length, config.text.vocab_size = context_length, tokenizer.vocab_size
    return config
