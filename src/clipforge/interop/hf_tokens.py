"""Tokenizers and the end-of-text id across the Hugging Face boundary.

How HF CLIP pools text (``CLIPTextModel.forward``, transformers 5.x):

- ``text_config.eos_token_id == 2`` (configs written before transformers PR #24773, e.g.
  ``openai/clip-vit-base-patch32``): at ``argmax(input_ids)``, i.e. the first occurrence of the
  *largest id* in the row. That is the first ``<|endoftext|>`` for OpenAI's vocabulary, where it is
  the last id (49407), so on load clipforge pools at the first occurrence of the tokenizer's EOT id
  (``vocab_size - 1`` when the directory has no tokenizer).
- any other ``eos_token_id``: at its first occurrence — clipforge's rule too. Rows with no EOS
  differ: HF pools at position 0, clipforge at the last position (tokenizers always add EOS).

clipforge's own byte-level BPE has ``<end_of_text>`` = 2, which HF would read as the legacy
argmax rule. On export the ids 2 and ``vocab_size - 1`` are therefore swapped — token-embedding
rows, tokenizer vocabulary and special-token ids together — so HF gets ``eos_token_id =
vocab_size - 1`` and pools correctly; the swap is recorded in the HF config and undone on import,
so a round trip is exact.

HF's text model also applies the padding ``attention_mask`` on top of the causal mask; clipforge
uses the causal mask only. With right padding (what both tokenizers produce) the pooled EOS
feature is identical, because causality already hides the later padding; with left padding the
two differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, overload

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import processors

from ..data.tokenizer import CLIP_EOT, CLIP_SOT, Tokenizer, _clip_bpe_from_files

LEGACY_EOS = 2  # HF's "argmax pooling" marker
TOKENIZER_FILE, TOKENIZER_CONFIG_FILE = "tokenizer.json", "tokenizer_config.json"
Swap = tuple[int, int]


def export_swap(eos_token_id: int, vocab_size: int) -> Swap | None:
    """The id pair to exchange so HF does not take ``eos_token_id`` 2 for the legacy rule."""
    if eos_token_id != LEGACY_EOS or vocab_size - 1 == LEGACY_EOS:
        return None
    return (LEGACY_EOS, vocab_size - 1)


@overload
def swap_id(token_id: int, swap: Swap | None) -> int: ...
@overload
def swap_id(token_id: None, swap: Swap | None) -> None: ...
def swap_id(token_id: int | None, swap: Swap | None) -> int | None:
    """``token_id`` with the pair ``swap`` exchanged (an absent id stays absent)."""
    if swap is None or token_id is None:
        return token_id
    a, b = swap
    return b if token_id == a else a if token_id == b else token_id


def swap_rows(weight: torch.Tensor, swap: Swap | None) -> torch.Tensor:
    """A copy of the [V, W] embedding with rows ``a`` and ``b`` exchanged."""
    if swap is None:
        return weight
    order = torch.arange(weight.shape[0])
    order[[swap[0], swap[1]]] = torch.tensor([swap[1], swap[0]])
    return weight[order].contiguous()


def swap_tokenizer_json(data: dict[str, Any], swap: Swap | None) -> dict[str, Any]:
    """Exchange two ids in a ``tokenizer.json`` (model vocabulary and added tokens)."""
    if swap is None:
        return data
    vocab = data.get("model", {}).get("vocab")
    if not isinstance(vocab, dict):
        raise ValueError("cannot swap token ids: tokenizer.json has no vocabulary mapping")
    data["model"]["vocab"] = {token: swap_id(i, swap) for token, i in vocab.items()}
    for added in data.get("added_tokens", []):
        added["id"] = swap_id(added["id"], swap)
    return data


def _token_text(value: Any) -> str | None:
    """A special token as stored by transformers: a string or ``{"content": …}``."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def load_tokenizer(
    directory: Path, context_length: int, swap: Swap | None = None
) -> Tokenizer | None:
    """The directory's tokenizer (``tokenizer.json`` or ``vocab.json`` + ``merges.txt``), or None.

    Special tokens come from ``tokenizer_config.json``: clipforge's keys (``sot_token``…) or HF's
    (``bos_token``, ``eos_token``, ``pad_token``), else OpenAI CLIP's.
    """
    meta_path = directory / TOKENIZER_CONFIG_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if (directory / TOKENIZER_FILE).is_file():
        data = json.loads((directory / TOKENIZER_FILE).read_text(encoding="utf-8"))
        backend = HFTokenizer.from_str(json.dumps(swap_tokenizer_json(data, swap)))
    elif (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        if swap is not None:
            raise ValueError(f"{directory}: a token swap needs tokenizer.json")
        backend = _clip_bpe_from_files(directory / "vocab.json", directory / "merges.txt")
    else:
        return None
    sot = meta.get("sot_token") or _token_text(meta.get("bos_token")) or CLIP_SOT
    eot = meta.get("eot_token") or _token_text(meta.get("eos_token")) or CLIP_EOT
    pad = _token_text(meta.get("pad_token")) or eot
    return Tokenizer(backend, context_length, sot, eot, pad)


def save_hf_tokenizer(tokenizer: Tokenizer, directory: Path, swap: Swap | None) -> None:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` that ``AutoTokenizer`` loads as is.

    The post-processor adds ``SOT … EOT`` like clipforge's tokenizer; with
    ``padding="max_length", max_length=context_length, truncation=True`` transformers gives the
    same ids as clipforge (after ``swap``). clipforge's own keys are written too, so
    :func:`load_tokenizer` restores the special tokens.
    """
    data = swap_tokenizer_json(json.loads(tokenizer.backend.to_str()), swap)
    backend = HFTokenizer.from_str(json.dumps(data))
    sot, eot = tokenizer.sot_token, tokenizer.eot_token
    special = [(sot, backend.token_to_id(sot)), (eot, backend.token_to_id(eot))]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{sot} $A {eot}", pair=f"{sot} $A {eot} {sot} $B:1 {eot}:1", special_tokens=special
    )
    backend.save(str(directory / TOKENIZER_FILE))
    meta = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": sot,
        "eos_token": eot,
        "pad_token": tokenizer.pad_token,
        "unk_token": eot if tokenizer.eot_token == CLIP_EOT else None,
        "model_max_length": tokenizer.context_length,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        # clipforge's keys (data/tokenizer.py)
        "context_length": tokenizer.context_length,
        "sot_token": sot,
        "eot_token": eot,
    }
    meta = {key: value for key, value in meta.items() if value is not None}
    (directory / TOKENIZER_CONFIG_FILE).write_text(json.dumps(meta, indent=2))
