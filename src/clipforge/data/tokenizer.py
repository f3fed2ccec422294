"""Text → fixed-length token ids, backed by Hugging Face ``tokenizers``.

Two kinds:
- a byte-level BPE trained on the training captions (the default for the built-in data; saved as
  ``tokenizer.json`` with the checkpoint): specials ``<pad>`` = 0, ``<start_of_text>`` = 1,
  ``<end_of_text>`` = 2;
- OpenAI's CLIP BPE loaded from local files (``tokenizer.json``, or ``vocab.json`` + ``merges.txt``)
  for converted models: ``<|startoftext|>`` / ``<|endoftext|>``, padded with ``<|endoftext|>``.

Every row is ``[SOT] tokens… [EOT] pad…`` of exactly ``context_length`` ids; over-long text is
truncated so the EOT token is kept (the text tower pools there).

A BPE trained from scratch learns from every caption of a listable source, and from the first
:data:`STREAM_TOKENIZER_CAPTIONS` (100,000) captions of a stream (WebDataset shards in their
listed order): for a vocabulary of a few thousand to ~50k merges that sample sees the frequent
words, and it bounds the pass over the shards to the first ~100k samples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from .text_clean import cleaner

PAD, SOT, EOT = "<pad>", "<start_of_text>", "<end_of_text>"
CLIP_SOT, CLIP_EOT = "<|startoftext|>", "<|endoftext|>"
STREAM_TOKENIZER_CAPTIONS = 100_000  # captions of a stream a new tokenizer is trained on


class Tokenizer:
    """Callable: ``tokenizer(["a red apple"]) -> LongTensor [B, context_length]``."""

    def __init__(
        self,
        backend: HFTokenizer,
        context_length: int,
        sot_token: str,
        eot_token: str,
        pad_token: str,
        clean: str | None = None,
    ):
        self.backend = backend
        self.clean = clean  # a text_clean name applied before the BPE (OpenCLIP: "lower")
        self._clean_fn = cleaner(clean)
        self.context_length = context_length
        self.sot_token, self.eot_token, self.pad_token = sot_token, eot_token, pad_token
        self.sot_id = self._id(sot_token)
        self.eot_id = self._id(eot_token)
        self.pad_id = self._id(pad_token)
        self.backend.no_padding()
        self.backend.no_truncation()

    def _id(self, token: str) -> int:
        token_id = self.backend.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no special token {token!r}")
        return token_id

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None
    ) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        if self._clean_fn is not None:
            texts = [self._clean_fn(text) for text in texts]
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=False)
        out = torch.full((len(texts), length), self.pad_id, dtype=torch.long)
        for row, encoding in enumerate(encodings):
            ids = [self.sot_id, *encoding.ids[: length - 2], self.eot_id]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of a row up to its first EOT (what follows is padding; OpenCLIP pads
        with id 0, an ordinary token, so padding is cut by position, not by id)."""
        kept = []
        for i in map(int, ids):
            if i == self.eot_id:
                break
            kept.append(i)
        # the backend skips its special tokens (SOT, <pad>), not an ordinary id 0
        return self.backend.decode(kept, skip_special_tokens=True).strip()

    # -- persistence -------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.backend.save(str(directory / "tokenizer.json"))
        meta = {
            "context_length": self.context_length,
            "sot_token": self.sot_token,
            "eot_token": self.eot_token,
            "pad_token": self.pad_token,
        }
        if self.clean is not None:
            meta["clean"] = self.clean
        (directory / "tokenizer_config.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | Path, context_length: int | None = None) -> Tokenizer:
        """Load from a directory holding ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``."""
        directory = Path(directory)
        meta_path = directory / "tokenizer_config.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if (directory / "tokenizer.json").exists():
            backend = HFTokenizer.from_file(str(directory / "tokenizer.json"))
        elif (directory / "vocab.json").exists() and (directory / "merges.txt").exists():
            backend = _clip_bpe_from_files(directory / "vocab.json", directory / "merges.txt")
        else:
            raise FileNotFoundError(f"{directory}: no tokenizer.json, nor vocab.json + merges.txt")
        if backend.token_to_id(CLIP_EOT) is not None and "sot_token" not in meta:
            # OpenAI CLIP vocabulary (as saved by transformers' CLIPTokenizer)
            meta.update(sot_token=CLIP_SOT, eot_token=CLIP_EOT, pad_token=CLIP_EOT)
        length = context_length or meta.get("context_length") or meta.get("model_max_length") or 77
        return cls(
            backend,
            int(length),
            meta.get("sot_token", SOT),
            meta.get("eot_token", EOT),
            meta.get("pad_token", PAD),
            clean=meta.get("clean"),
        )

    @classmethod
    def train(
        cls,
        captions: Iterable[str],
        vocab_size: int = 8192,
        context_length: int = 32,
        min_frequency: int = 2,
    ) -> Tokenizer:
        """Train a lower-cased byte-level BPE on ``captions``."""
        backend = HFTokenizer(models.BPE())
        backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[PAD, SOT, EOT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(captions, trainer=trainer)
        return cls(backend, context_length, SOT, EOT, PAD)


def _clip_bpe_from_files(vocab_path: Path, merges_path: Path) -> HFTokenizer:
    """OpenAI CLIP's BPE (``</w>`` end-of-word suffix) from ``vocab.json`` + ``merges.txt``.

    Mirrors ``transformers.CLIPTokenizer`` (NFC, collapse whitespace, lower-case, CLIP's split
    regex, byte-level) so both give the same ids; like it, and unlike OpenAI's reference code, no
    ``ftfy`` clean-up is applied. Patterns must be ``tokenizers.Regex``: a plain ``str`` is matched
    literally.
    """
    from tokenizers import Regex

    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(merges_path.read_text(encoding="utf-8").splitlines(), 1):
        if line and not line.startswith("#version"):
            pair = line.split()
            if len(pair) != 2:  # tokenizers would refuse it too, with a less helpful TypeError
                raise ValueError(f"{merges_path}:{number}: a merge is two symbols, got {line!r}")
            merges.append((pair[0], pair[1]))
    backend = HFTokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            end_of_word_suffix="</w>",
            continuing_subword_prefix="",
            fuse_unk=False,
            unk_token=CLIP_EOT,
        )
    )
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    # bytes back to text, then the end-of-word suffix becomes the space between words
    backend.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace("</w>", " ")])
    backend.add_special_tokens([CLIP_SOT, CLIP_EOT])
    return backend
