"""Hugging Face transformers CLIP interop: embedding parity, exact round trips, CLI, tokenizers."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

transformers = pytest.importorskip("transformers")

import clipforge  # noqa: E402
from clipforge.cli.main import main  # noqa: E402
from clipforge.data.tokenizer import Tokenizer  # noqa: E402
from clipforge.data.transforms import eval_transform  # noqa: E402
from clipforge.interop.hf import convert_from_hf, convert_to_hf, load_hf_dir  # noqa: E402
from clipforge.interop.hf_config import preprocess_from_hf  # noqa: E402
from clipforge.interop.hf_tokens import load_tokenizer  # noqa: E402
from clipforge.models import create_model, model_config  # noqa: E402
from clipforge.models.io import load_model_dir, save_model_dir  # noqa: E402

TOL = 1e-5
CAPTIONS = [
    "a red apple on a table",
    "a photo of a cat",
    "two dogs playing in the snow",
    "the quick brown fox jumps",
    "a cat on a red table",
] * 4
# a tiny OpenAI-style BPE: 256 byte symbols, 256 end-of-word symbols, merges, specials last
MERGES = [
    "t h",
    "th e</w>",
    "p h",
    "ph o",
    "pho t",
    "phot o</w>",
    "o f</w>",
    "c a",
    "ca t</w>",
    "d o",
    "do g</w>",
    "r e",
    "re d</w>",
    "i n</w>",
    "' s</w>",
    "1 2",
]


def hf_clip_config(vocab_size: int, eos_token_id: int, act: str, text_act: str | None = None):
    tower = dict(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        hidden_act=act,
    )
    return transformers.CLIPConfig(
        text_config=dict(
            tower,
            vocab_size=vocab_size,
            max_position_embeddings=16,
            eos_token_id=eos_token_id,
            pad_token_id=0,
            bos_token_id=1,
            hidden_act=text_act or act,
        ),
        vision_config=dict(tower, image_size=32, patch_size=8),
        projection_dim=32,
        logit_scale_init_value=2.0,
    )


def write_clip_bpe(directory) -> dict[str, int]:
    """vocab.json + merges.txt in OpenAI CLIP's layout; returns the vocabulary."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(MERGES) + "\n", encoding="utf-8"
    )
    return vocab


def padded_ids(lengths: list[int], length: int, vocab: int, sot: int, eot: int, pad: int):
    """Random ids ``SOT x… EOT pad…`` (right padding) and the attention mask."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab - 3, (len(lengths), length), generator=generator)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, 0], ids[row, n - 1], ids[row, n:], mask[row, :n] = sot, eot, pad, 1
    return ids, mask


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """Modern config: eos_token_id 999 = first-occurrence pooling; gelu; no tokenizer files."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("hf_modern")
    transformers.CLIPModel(hf_clip_config(1000, 999, "gelu")).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def hf_openai_dir(tmp_path_factory):
    """OpenAI-like: legacy eos_token_id 2 (argmax pooling), quick_gelu, vocab.json + merges.txt
    and an OpenAI-style preprocessor_config.json."""
    torch.manual_seed(1)
    directory = tmp_path_factory.mktemp("hf_openai")
    vocab = write_clip_bpe(directory)
    transformers.CLIPModel(hf_clip_config(len(vocab), 2, "quick_gelu")).save_pretrained(directory)
    (directory / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "CLIPImageProcessor",
                "do_resize": True,
                "size": {"shortest_edge": 40},
                "do_center_crop": True,
                "crop_size": {"height": 32, "width": 32},
                "do_normalize": True,
                "image_mean": [0.1, 0.2, 0.3],
                "image_std": [0.4, 0.5, 0.6],
            }
        )
    )
    return directory


@pytest.fixture(scope="module")
def clipforge_dir(tmp_path_factory):
    """A small clipforge model with its own byte-level BPE (<end_of_text> = 2)."""
    torch.manual_seed(2)
    tokenizer = Tokenizer.train(CAPTIONS, vocab_size=300, context_length=16, min_frequency=1)
    config = model_config("tiny")
    config.embed_dim = 32
    config.vision.width, config.vision.layers, config.vision.image_size = 64, 2, 32
    config.text.width, config.text.layers, config.text.context_length = 64, 2, 16
    config.text.vocab_size = tokenizer.vocab_size
    config.text.eos_token_id, config.text.pad_token_id = tokenizer.eot_id, tokenizer.pad_id
    config.preprocess.image_size = 32
    config.preprocess.background = (0, 10, 20)
    directory = tmp_path_factory.mktemp("cf") / "model"
    save_model_dir(directory, create_model(config).eval(), tokenizer)
    return directory


def hf_embeds(hf_model, pixels, ids, mask):
    with torch.no_grad():
        out = hf_model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
    return out.image_embeds, out.text_embeds, out.logits_per_image


def test_load_hf_dir_matches_transformers_embeddings(hf_dir):
    hf_model = transformers.CLIPModel.from_pretrained(hf_dir).eval()
    model, preprocess, tokenizer = clipforge.load(hf_dir)
    assert tokenizer is None and model.config.activation == "gelu"
    assert model.config.text.eos_token_id == 999 and model.config.embed_dim == 32
    assert model.config.vision.mlp_ratio == 4.0 and model.config.text.context_length == 16
    assert preprocess.preprocess.image_size == 32  # CLIP defaults at the model's size
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ids, mask = padded_ids([5, 16, 9], 16, 1000, sot=1, eot=999, pad=0)
    image_ref, text_ref, logits_ref = hf_embeds(hf_model, pixels, ids, mask)
    with torch.no_grad():
        image = model.encode_image(pixels, normalize=True)
        text = model.encode_text(ids, normalize=True)
        features = hf_model.get_image_features(pixel_values=pixels)
        features = getattr(features, "pooler_output", features)  # transformers 5 vs 4
        text_no_mask = hf_model(input_ids=ids, pixel_values=pixels).text_embeds
        logits = model.scale() * image @ text.T
    assert torch.allclose(image, image_ref, atol=TOL)
    assert torch.allclose(image, torch.nn.functional.normalize(features, dim=-1), atol=TOL)
    assert torch.allclose(text, text_ref, atol=TOL)
    assert torch.allclose(text, text_no_mask, atol=TOL)  # right padding: mask is moot
    assert torch.allclose(logits, logits_ref, atol=1e-4)
    assert model.scale().item() == pytest.approx(np.exp(2.0), rel=1e-6)


def test_openai_style_dir_legacy_pooling_tokenizer_and_preprocess(hf_openai_dir):
    hf_model = transformers.CLIPModel.from_pretrained(hf_openai_dir).eval()
    hf_tokenizer = transformers.CLIPTokenizer(
        str(hf_openai_dir / "vocab.json"), str(hf_openai_dir / "merges.txt")
    )
    model, tokenizer = load_hf_dir(hf_openai_dir)
    eot = len(json.loads((hf_openai_dir / "vocab.json").read_text(encoding="utf-8"))) - 1
    assert model.config.activation == "quick_gelu"
    assert model.config.text.eos_token_id == eot == tokenizer.eot_id  # legacy 2 → largest id
    pre = model.config.preprocess
    assert (pre.image_size, pre.resize_mode) == (32, "shortest")
    assert pre.mean == (0.1, 0.2, 0.3) and pre.std == (0.4, 0.5, 0.6)
    texts = ["a photo of the cat", "the red dog's photo", "12 cats"]
    hf = hf_tokenizer(
        texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt"
    )
    ids = tokenizer(texts)
    assert torch.equal(ids, hf.input_ids)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    image_ref, text_ref, _ = hf_embeds(hf_model, pixels, hf.input_ids, hf.attention_mask)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(pixels, normalize=True), image_ref, atol=TOL)
        assert torch.allclose(model.encode_text(ids, normalize=True), text_ref, atol=TOL)


def test_clip_bpe_tokenizer_matches_transformers(tmp_path):
    vocab = write_clip_bpe(tmp_path)
    texts = [
        "a photo of the cat",
        "The  Dog's   red\tcat!! 123 été",
        "Ünïcödé ☃ 🐱 in-the-box",
        "x<|endoftext|>y",
        "",
    ]
    ours = Tokenizer.load(tmp_path, context_length=40)
    reference = transformers.CLIPTokenizer(
        str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")
    )
    expected = reference(texts, padding="max_length", max_length=40, truncation=True).input_ids
    assert ours(texts).tolist() == expected
    reference.save_pretrained(tmp_path / "saved")  # transformers 5: tokenizer.json only
    assert load_tokenizer(tmp_path / "saved", 40)(texts).tolist() == expected
    words = [
        "<|startoftext|>",
        "a</w>",
        "photo</w>",
        "of</w>",
        "the</w>",
        "cat</w>",
        "<|endoftext|>",
    ]
    assert ours(texts[0])[0, :7].tolist() == [vocab[w] for w in words]  # by hand
    assert ours.decode(ours(texts[0])[0].tolist()) == "a photo of the cat"


def test_round_trip_to_hf_and_back_is_exact(clipforge_dir, tmp_path):
    model, tokenizer = load_model_dir(clipforge_dir)
    hf_out = convert_to_hf(clipforge_dir, tmp_path / "hf")
    names = {p.name for p in hf_out.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= names
    hf_config = json.loads((hf_out / "config.json").read_text())
    vocab = model.config.text.vocab_size
    assert hf_config["text_config"]["eos_token_id"] == vocab - 1  # 2 would mean argmax
    assert hf_config["clipforge"]["token_swap"] == [2, vocab - 1]

    hf_model = transformers.CLIPModel.from_pretrained(hf_out).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(hf_out)
    texts = ["a red cat", "two dogs playing in the snow on a table with a red apple fox", ""]
    ids = tokenizer(texts)
    hf = hf_tokenizer(
        texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt"
    )
    swapped = ids.clone()
    swapped[ids == 2], swapped[ids == vocab - 1] = vocab - 1, 2
    assert torch.equal(hf.input_ids, swapped)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    image_ref, text_ref, _ = hf_embeds(hf_model, pixels, hf.input_ids, hf.attention_mask)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(pixels, normalize=True), image_ref, atol=TOL)
        assert torch.allclose(model.encode_text(ids, normalize=True), text_ref, atol=TOL)

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), np.uint8))
    processor = transformers.AutoImageProcessor.from_pretrained(hf_out)
    assert torch.equal(
        processor(images=image, return_tensors="pt").pixel_values[0],
        eval_transform(model.config.preprocess)(image),
    )

    back = convert_from_hf(hf_out, tmp_path / "back")
    model2, tokenizer2 = load_model_dir(back)
    state, state2 = model.state_dict(), model2.state_dict()
    assert state.keys() == state2.keys()
    assert all(torch.equal(state[k], state2[k]) for k in state)
    assert model2.config == model.config
    assert torch.equal(tokenizer2(texts), ids)


def test_cli_convert_both_ways(hf_dir, tmp_path, capsys):
    imported, exported = tmp_path / "run", tmp_path / "hf"
    assert main(["convert", "--from-hf", str(hf_dir), "--out", str(imported)]) == 0
    assert json.loads((imported / "config.json").read_text())["format"] == "clipforge"
    assert main(["convert", "--from-hf", str(hf_dir), "--out", str(imported)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["convert", "--from-hf", str(hf_dir), "--out", str(imported), "--force"]) == 0
    assert main(["convert", "--to-hf", str(imported), "--out", str(exported)]) == 0
    assert json.loads((exported / "config.json").read_text())["model_type"] == "clip"
    original = transformers.CLIPModel.from_pretrained(hf_dir).state_dict()
    again = transformers.CLIPModel.from_pretrained(exported).state_dict()
    assert all(torch.equal(original[k], again[k]) for k in original)
    with pytest.raises(SystemExit):
        main(["convert", "--from-hf", str(hf_dir), "--to-hf", str(imported), "--out", "x"])
    assert (
        main(["convert", "--to-hf", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    )


@pytest.mark.parametrize(
    "override, reason",
    [({"projection": "mlp"}, "projection 'mlp'"), ({"logit_bias_init": -10.0}, "logit bias")],
)
def test_export_refuses_models_hf_clip_cannot_express(tmp_path, override, reason):
    config = model_config("tiny")
    config.vision.width, config.vision.layers, config.vision.image_size = 32, 1, 16
    config.text.width, config.text.layers, config.text.vocab_size = 32, 1, 50
    source = save_model_dir(tmp_path / "m", create_model(config, **override), None)
    with pytest.raises(ValueError, match=reason):
        convert_to_hf(source, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_mixed_activations_are_refused(tmp_path):
    transformers.CLIPModel(hf_clip_config(100, 99, "quick_gelu", "gelu")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="different activations"):
        load_hf_dir(tmp_path)


def test_preprocessor_config_mapping(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "size": {"height": 48, "width": 48},
                "do_center_crop": False,
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.25, 0.25, 0.25],
            }
        )
    )
    pre = preprocess_from_hf(tmp_path, 224, {})
    assert (pre.image_size, pre.resize_mode, pre.std) == (48, "squash", (0.25, 0.25, 0.25))


def test_missing_transformers_gives_install_hint(hf_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"clipforge\[hf\]"):
        load_hf_dir(hf_dir)
    assert main(["convert", "--from-hf", str(hf_dir), "--out", str(tmp_path / "o")]) == 2
    assert "pip install" in capsys.readouterr().err


def test_hf_dispatch_lives_in_loading_not_models(hf_dir, clipforge_dir):
    """models/io reads clipforge directories only (it imports no interop); clipforge.loading
    recognises a Hugging Face directory and converts it."""
    from clipforge.loading import load_model_dir as load_any

    with pytest.raises(ValueError, match="a Hugging Face CLIP config"):
        load_model_dir(hf_dir)
    model, _ = load_any(hf_dir)
    reference, _ = load_hf_dir(hf_dir)
    assert model.state_dict().keys() == reference.state_dict().keys()
    assert all(
        torch.equal(value, reference.state_dict()[key]) for key, value in model.state_dict().items()
    )
    assert load_any(clipforge_dir)[0].config == load_model_dir(clipforge_dir)[0].config
