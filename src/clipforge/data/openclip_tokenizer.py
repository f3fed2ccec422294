"""OpenCLIP's (and OpenAI CLIP's) tokenizer, offline and without ``open_clip``.

The same ids as ``open_clip.get_tokenizer("ViT-B-32")`` (``SimpleTokenizer``): a 49,408-token
byte-level BPE with an end-of-word suffix ``</w>`` —

- vocabulary = the 256 byte symbols, the same with ``</w>``, one token per merge (the first
  48,894 merges of ``bpe_simple_vocab_16e6.txt.gz``, shipped in ``data/assets``), then
  ``<start_of_text>`` = 49406 and ``<end_of_text>`` = 49407;
- text cleaned by :func:`~clipforge.data.text_clean.clean_lower` (ftfy, HTML, whitespace, lower);
- split by OpenAI's regex (``'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+``);
- rows ``[SOT] ids… [EOT]`` cut to ``context_length`` (77) keeping the EOT, padded with 0 as
  OpenCLIP does (the text tower pools at the first EOT, so padding never changes an embedding).

It is built with Hugging Face ``tokenizers`` (the BPE runs in Rust) and is a plain
:class:`~clipforge.data.tokenizer.Tokenizer`: saved as ``tokenizer.json`` with ``clean: lower`` in
``tokenizer_config.json``, it reloads identical.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from tokenizers import Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from .tokenizer import EOT, SOT, Tokenizer

BPE_FILE = Path(__file__).with_name("assets") / "bpe_simple_vocab_16e6.txt.gz"
MERGES = 49152 - 256 - 2  # OpenAI's cut: vocabulary 49,408 = 2·256 + merges + 2 specials
PAD = "!"  # id 0: OpenCLIP pads with zeros
SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's byte → printable character table (bytes that print keep their character).

    Its insertion order (printable bytes first, then the rest) is the order of the vocabulary's
    first 256 ids."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def _backend() -> HFTokenizer:
    """Built once a process (~0.5 s) and shared: Tokenizer only encodes and decodes with it."""
    lines = gzip.open(BPE_FILE, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    backend = HFTokenizer(
        models.BPE(
            vocab=vocab,
            merges=[(a, b) for a, b in merges],
            end_of_word_suffix="</w>",
            continuing_subword_prefix="",
            fuse_unk=False,
        )
    )
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace("</w>", " ")])
    backend.add_special_tokens([SOT, EOT])
    return backend


def openclip_tokenizer(context_length: int = 77) -> Tokenizer:
    """OpenCLIP's default tokenizer (``SimpleTokenizer``, ``clean="lower"``) as a clipforge one."""
    return Tokenizer(_backend(), context_length, SOT, EOT, PAD, clean="lower")
