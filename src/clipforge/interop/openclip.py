"""OpenCLIP interop: load and convert OpenCLIP checkpoints and hub model directories.

What is read (``clipforge.load``, every ``--model``, ``clipforge convert --from-openclip``):

- a hub-layout directory: ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and
  ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``;
- ``hf-hub:org/name``: that directory found in the local Hugging Face cache (:mod:`.hub_cache`);
- an ``open_clip_train`` checkpoint (``epoch_N.pt``, ``epoch_latest.pt``; DDP's ``module.``
  prefix or not) with its architecture: a name (:data:`~.openclip_config.OPENCLIP_MODELS`), a
  model-config JSON, or else the ``model:`` line of the run's ``params.txt`` two folders up
  (``logs/NAME/checkpoints/epoch_N.pt`` → ``logs/NAME/params.txt``).

:func:`convert_to_openclip` writes the hub layout that ``open_clip.create_model("local-dir:DIR")``
reads. Weights map one to one (:mod:`.openclip_weights`), so embeddings equal OpenCLIP's to float
rounding and a round trip is bit-exact. Text uses OpenCLIP's tokenizer, shipped with clipforge
(:mod:`clipforge.data.openclip_tokenizer`); ``open_clip`` itself is never imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..common.files import atomic_write_text, read_json
from ..data.openclip_tokenizer import openclip_tokenizer
from ..data.tokenizer import Tokenizer
from ..models.clip import CLIP
from ..models.config import ModelConfig
from .hf import _check_out_dir
from .hf_tokens import load_tokenizer, save_hf_tokenizer
from .hub_cache import is_hub_name, resolve_hub_name
from .openclip_config import (
    CLIPFORGE_KEY,
    OPENCLIP_MODELS,
    model_config_from_openclip,
    openclip_config_from_model,
)
from .openclip_weights import (
    from_openclip_state_dict,
    read_openclip_weights,
    to_openclip_state_dict,
)

CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin")
PARAMS_FILE = "params.txt"  # open_clip_train's record of its arguments, one "name: value" a line


def is_openclip_source(ref: str | Path) -> bool:
    """True for ``hf-hub:…``, a hub-layout directory (its config or its weights: a missing
    config is then reported by name) or a PyTorch checkpoint file."""
    if is_hub_name(ref):
        return True
    path = Path(ref)
    if path.is_dir():
        return any((path / name).is_file() for name in (CONFIG_FILE, *WEIGHT_FILES))
    return path.is_file() and path.suffix in CHECKPOINT_SUFFIXES


def is_openclip_weights(path: str | Path) -> bool:
    """A PyTorch checkpoint, or a safetensors file with OpenCLIP's tensor names."""
    path = Path(path)
    if path.suffix in CHECKPOINT_SUFFIXES:
        return True
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    from safetensors import safe_open

    with safe_open(str(path), "pt") as weights:
        return any(key.endswith("visual.conv1.weight") for key in weights.keys())


def create_openclip_model(name: str) -> tuple[CLIP, Tokenizer | None]:
    """A randomly initialised model of the named OpenCLIP architecture and its tokenizer."""
    model_cfg = openclip_model_cfg(name)
    config = model_config_from_openclip(model_cfg, None, name, name)
    model = CLIP(config)
    model.init_weights()
    return model, _tokenizer(model_cfg, config, None)


def resolve_openclip_source(ref: str | Path) -> Path:
    """``hf-hub:org/name`` → its cached snapshot folder; a path stays itself."""
    return resolve_hub_name(str(ref), CONFIG_FILE) if is_hub_name(ref) else Path(ref)


def openclip_model_cfg(name: str) -> dict[str, Any]:
    """The ``model_cfg`` of a named OpenCLIP architecture; ValueError listing the known ones."""
    if name not in OPENCLIP_MODELS:
        raise ValueError(
            f"unknown OpenCLIP model {name!r}; known: {', '.join(OPENCLIP_MODELS)} "
            "(or pass its model-config JSON)"
        )
    return json.loads(json.dumps(OPENCLIP_MODELS[name]))  # a deep copy


def read_model_config_json(path: str | Path) -> dict[str, Any]:
    """An OpenCLIP model-config JSON: a bare ``model_cfg`` or an ``open_clip_config.json``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model config file not found")
    data = read_json(path)
    data = data.get("model_cfg", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(data):
        raise ValueError(f"{path}: not an OpenCLIP model config (embed_dim, vision_cfg, text_cfg)")
    return data


def load_openclip(
    source: str | Path,
    model_name: str | None = None,
    model_config: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[CLIP, Tokenizer | None]:
    """An OpenCLIP hub directory, ``hf-hub:`` name or checkpoint → (clipforge ``CLIP`` in eval
    mode, tokenizer). ``model_name`` / ``model_config`` (a JSON file) give a checkpoint's
    architecture; a hub directory carries its own."""
    path = resolve_openclip_source(source)
    if path.is_dir():
        if model_name or model_config:
            raise ValueError(
                f"{source}: a hub directory carries its own {CONFIG_FILE}; "
                "a model name or config is only for checkpoints"
            )
        model, tokenizer = _load_hub_dir(path)
    else:
        model, tokenizer = _load_checkpoint(path, model_name, model_config)
    return model.to(device).eval(), tokenizer


def _load_hub_dir(directory: Path) -> tuple[CLIP, Tokenizer | None]:
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: OpenCLIP model config not found")
    data = read_json(config_path)
    if not isinstance(data, dict) or not isinstance(data.get("model_cfg"), dict):
        raise ValueError(f"{config_path}: no model_cfg in this OpenCLIP config")
    weights = next((directory / n for n in WEIGHT_FILES if (directory / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(
            f"{directory}: no OpenCLIP weights ({' or '.join(WEIGHT_FILES)}) beside {CONFIG_FILE}"
        )
    config = model_config_from_openclip(
        data["model_cfg"],
        data.get("preprocess_cfg"),
        directory.name,
        str(config_path),
        data.get(CLIPFORGE_KEY),
    )
    tokenizer = _tokenizer(data["model_cfg"], config, directory)
    return _build(config, read_openclip_weights(weights), str(weights)), tokenizer


def _load_checkpoint(
    path: Path, model_name: str | None, model_config: str | Path | None
) -> tuple[CLIP, Tokenizer | None]:
    if model_name and model_config:
        raise ValueError("give the model name or its config file, not both")
    state = read_openclip_weights(path)
    if model_config is not None:
        model_cfg, name = read_model_config_json(model_config), Path(model_config).stem
    else:
        name = model_name or _name_from_params(path) or _ask_for_name(path, state)
        model_cfg = openclip_model_cfg(name)
        if _params(path).get("force_quick_gelu") == "True":
            model_cfg["quick_gelu"] = True
    config = model_config_from_openclip(model_cfg, None, name, str(path))
    # an HF tokenizer the config names is looked for beside the config file
    tokenizer_dir = Path(model_config).parent if model_config is not None else None
    return _build(config, state, str(path)), _tokenizer(model_cfg, config, tokenizer_dir)


def _params(checkpoint: Path) -> dict[str, str]:
    """``logs/NAME/params.txt`` of ``logs/NAME/checkpoints/epoch_N.pt`` ({} if absent)."""
    params = checkpoint.resolve().parent.parent / PARAMS_FILE
    if checkpoint.parent.name != "checkpoints" or not params.is_file():
        return {}
    lines = params.read_text(errors="replace").splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def _name_from_params(checkpoint: Path) -> str | None:
    return _params(checkpoint).get("model")


def _ask_for_name(path: Path, state: dict[str, torch.Tensor]) -> str:
    """No name anywhere: raise, naming the known architectures the tensors fit."""
    fits = fitting_models(state)
    hint = f"its tensors fit {', '.join(fits)}" if fits else "its tensors fit no known model"
    raise ValueError(
        f"{path}: which OpenCLIP model is this? Pass its name (--model-name) or config "
        f"(--model-config); {hint}"
    )


def fitting_models(state: dict[str, torch.Tensor]) -> list[str]:
    """The names in :data:`OPENCLIP_MODELS` whose tensor names and shapes ``state`` matches."""
    fits = []
    for name, model_cfg in OPENCLIP_MODELS.items():
        config = model_config_from_openclip(model_cfg, None, name, name)
        try:
            from_openclip_state_dict(state, config, name)
        except ValueError:
            continue
        fits.append(name)
    return fits


def _build(config: ModelConfig, state: dict[str, torch.Tensor], source: str) -> CLIP:
    try:
        converted = from_openclip_state_dict(state, config, source)
    except ValueError as error:
        fits = fitting_models(state)
        hint = f"; its tensors fit {', '.join(fits)}" if fits else "; it fits no known model"
        raise ValueError(f"{error}{hint}") from None
    with torch.device("meta"):  # no random init of weights about to be replaced (ViT-bigG: 2.5 B)
        model = CLIP(config)
    model.load_state_dict(converted, strict=True, assign=True)
    return model


def _tokenizer(
    model_cfg: dict[str, Any], config: ModelConfig, directory: Path | None
) -> Tokenizer | None:
    """OpenCLIP's default tokenizer, or the directory's own files when the config names an HF
    tokenizer (``text_cfg.hf_tokenizer_name``)."""
    text_cfg = model_cfg.get("text_cfg", {})
    context = config.text.context_length
    if text_cfg.get("hf_tokenizer_name"):
        tokenizer = load_tokenizer(directory, context) if directory is not None else None
        if tokenizer is None:
            raise ValueError(
                f"{directory or 'checkpoint'}: the model uses the Hugging Face tokenizer "
                f"{text_cfg['hf_tokenizer_name']!r}, whose files (tokenizer.json) are not here"
            )
        return tokenizer
    if config.text.vocab_size != 49408:
        return None
    return openclip_tokenizer(context)


def convert_from_openclip(
    source: str | Path,
    out_dir: str | Path,
    model_name: str | None = None,
    model_config: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an OpenCLIP hub directory / ``hf-hub:`` name / checkpoint as a clipforge model dir."""
    from ..models.io import save_model_dir

    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    model, tokenizer = load_openclip(source, model_name, model_config)
    return save_model_dir(out_dir, model, tokenizer)


def convert_to_openclip(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write a clipforge run directory / checkpoint / model directory in OpenCLIP's hub layout."""
    from ..models.io import load_model_dir, resolve_model_dir

    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    model, tokenizer = load_model_dir(resolve_model_dir(run_dir), "cpu")
    return save_openclip_dir(model, tokenizer, out_dir)


def save_openclip_dir(model: CLIP, tokenizer: Tokenizer | None, out_dir: Path) -> Path:
    """Write ``model`` in the hub layout: ``open_clip_config.json`` and
    ``open_clip_model.safetensors`` (+ HF tokenizer files when its tokenizer is not OpenAI's BPE,
    named by ``hf_tokenizer_name`` so ``open_clip.get_tokenizer("local-dir:DIR")`` uses them).
    Raises ``ValueError`` for what OpenCLIP's ``CLIP`` cannot express (MLP head, pretrained text
    encoder)."""
    from ..models.io import save_safetensors

    data = openclip_config_from_model(model.config)
    state = to_openclip_state_dict(model.state_dict(), model.config)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer is not None and not _is_openai_bpe(tokenizer):
        save_hf_tokenizer(tokenizer, out_dir, None)
        data["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = out_dir.name
    save_safetensors(state, out_dir / WEIGHT_FILES[0], metadata={"format": "pt"})
    atomic_write_text(out_dir / CONFIG_FILE, json.dumps(data, indent=2))
    return out_dir


def _is_openai_bpe(tokenizer: Tokenizer) -> bool:
    """OpenAI's 49,408-token BPE (OpenCLIP's or transformers' spelling): OpenCLIP's default
    ``SimpleTokenizer`` gives the same ids, so no tokenizer files are needed."""
    return tokenizer.vocab_size == 49408 and (tokenizer.sot_id, tokenizer.eot_id) == (49406, 49407)
