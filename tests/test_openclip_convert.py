"""OpenCLIP formats around clipforge: hub layout out and back, the open_clip_train run layout, the
offline ``hf-hub:`` cache, the CLI, and every bad input as a one-line error naming it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import clipforge
from clipforge.cli.main import main
from clipforge.data.tokenizer import Tokenizer
from clipforge.interop.openclip import (
    convert_from_openclip,
    convert_to_openclip,
    load_openclip,
)
from clipforge.interop.openclip_config import OPENCLIP_MODELS
from clipforge.interop.openclip_weights import to_openclip_state_dict
from clipforge.models import create_model, model_config
from clipforge.models.io import save_model_dir

from openclip_oracle import openclip_model_module, openclip_root

SMALL_CFG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}
CAPTIONS = ["a red apple on a table", "two dogs run in the park", "a blue car", "the red car"] * 3


@pytest.fixture(scope="module")
def oc_model():
    return openclip_model_module()


@pytest.fixture(scope="module")
def small(oc_model, tmp_path_factory):
    """OpenCLIP's own small model saved as open_clip_train would, and as a hub directory."""
    torch.manual_seed(0)
    theirs = oc_model.CLIP(**SMALL_CFG).eval()
    root = tmp_path_factory.mktemp("oc")
    checkpoint = root / "logs" / "run" / "checkpoints" / "epoch_2.pt"
    checkpoint.parent.mkdir(parents=True)
    state = theirs.state_dict()
    torch.save({"epoch": 2, "state_dict": {f"module.{k}": v for k, v in state.items()}}, checkpoint)
    (root / "small.json").write_text(json.dumps(SMALL_CFG))
    hub = root / "hub"
    hub.mkdir()
    (hub / "open_clip_config.json").write_text(json.dumps({"model_cfg": SMALL_CFG}))
    torch.save(state, hub / "open_clip_pytorch_model.bin")
    return theirs, checkpoint, root / "small.json", hub


def embeddings(model, ids):
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return model.encode_image(images, normalize=True), model.encode_text(ids, normalize=True)


def test_openclip_to_clipforge_to_openclip_is_bit_exact(small, oc_model, tmp_path):
    theirs, checkpoint, config_json, _ = small
    clipforge_dir = convert_from_openclip(checkpoint, tmp_path / "cf", model_config=config_json)
    out = convert_to_openclip(clipforge_dir, tmp_path / "oc")
    written = json.loads((out / "open_clip_config.json").read_text())
    assert set(written["preprocess_cfg"]) <= {"size", "mean", "std", "interpolation", "resize_mode"}
    # what open_clip's loader does with the directory: CLIP(**model_cfg), strict load
    again = oc_model.CLIP(**written["model_cfg"]).eval()
    again.load_state_dict(load_file(str(out / "open_clip_model.safetensors")), strict=True)
    original = theirs.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in again.state_dict().items())
    model, tokenizer = load_openclip(out)
    ids = tokenizer(["a cat", "a dog"])
    for mine, want in zip(embeddings(model, ids), embeddings(again, ids)):
        torch.testing.assert_close(mine, want, atol=1e-5, rtol=0)


def test_clipforge_to_openclip_to_clipforge_is_bit_exact(tmp_path, oc_model):
    """A clipforge model with its own BPE (<end_of_text> = 2): OpenCLIP pools at eos_id and
    reads the tokenizer from the directory (hf_tokenizer_name); config and weights come back."""
    torch.manual_seed(1)
    tokenizer = Tokenizer.train(CAPTIONS, vocab_size=300, context_length=16, min_frequency=1)
    config = model_config("tiny")
    config.vision.layers = config.text.layers = 2
    config.text.vocab_size, config.text.context_length = tokenizer.vocab_size, 16
    config.logit_bias_init, config.activation = -10.0, "quick_gelu"
    model = create_model(config).eval()
    save_model_dir(tmp_path / "run", model, tokenizer)
    out = convert_to_openclip(tmp_path / "run", tmp_path / "oc")
    written = json.loads((out / "open_clip_config.json").read_text())["model_cfg"]
    assert written["text_cfg"]["pool_type"] == "eos" and written["text_cfg"]["eos_id"] == 2
    back, back_tokenizer = load_openclip(out)
    assert back.config == model.config
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in back.state_dict().items())
    assert torch.equal(back_tokenizer(CAPTIONS), tokenizer(CAPTIONS))
    # its training checkpoint with that config: the HF tokenizer is found beside the config
    checkpoint = tmp_path / "epoch_1.pt"
    torch.save({"state_dict": load_file(str(out / "open_clip_model.safetensors"))}, checkpoint)
    _, from_checkpoint = load_openclip(checkpoint, model_config=out / "open_clip_config.json")
    assert torch.equal(from_checkpoint(CAPTIONS), tokenizer(CAPTIONS))
    theirs = oc_model.CLIP(**written).eval()  # OpenCLIP's own code pools at eos_id too
    theirs.load_state_dict(load_file(str(out / "open_clip_model.safetensors")), strict=True)
    images = torch.randn(2, 3, 64, 64)
    ids = tokenizer(CAPTIONS[:2])
    with torch.no_grad():
        for ours, oracle, inputs in [
            (model.encode_text, theirs.encode_text, ids),
            (model.encode_image, theirs.encode_image, images),
        ]:
            torch.testing.assert_close(ours(inputs), oracle(inputs, True), atol=1e-5, rtol=0)


def test_hub_dir_with_bin_weights(small):
    theirs, _, _, hub = small
    model, preprocess, tokenizer = clipforge.load(hub)
    ids = tokenizer(["a cat"])
    for mine, want in zip(embeddings(model, ids), embeddings(theirs, ids)):
        torch.testing.assert_close(mine, want, atol=1e-5, rtol=0)


def test_train_checkpoint_names_its_model_in_params_txt(small, tmp_path):
    """``logs/NAME/params.txt`` records ``model: NAME``; with none, the error lists the fits."""
    _, checkpoint, _, _ = small
    with pytest.raises(ValueError, match=r"epoch_2.pt: which OpenCLIP model.*fit no known"):
        clipforge.load(checkpoint)
    run = tmp_path / "logs" / "b32" / "checkpoints"
    run.mkdir(parents=True)
    with torch.device("meta"):  # only the shapes matter: zeros, one tensor marked
        shapes = {k: v.shape for k, v in create_model("ViT-B-32").state_dict().items()}
    b32 = {k: torch.zeros(shape) for k, shape in shapes.items()}
    b32["visual.proj.weight"].normal_()
    state = to_openclip_state_dict(b32, model_config("ViT-B-32"))
    torch.save({"state_dict": state}, run / "epoch_latest.pt")
    with pytest.raises(ValueError, match="fit ViT-B-32, ViT-B-32-quickgelu"):
        clipforge.load(run / "epoch_latest.pt")
    params = "batch_size: 256\nforce_quick_gelu: True\nmodel: ViT-B-32\n"
    (run.parent / "params.txt").write_text(params)
    model, _, tokenizer = clipforge.load(run / "epoch_latest.pt")
    assert model.config.activation == "quick_gelu" and tokenizer.vocab_size == 49408
    assert torch.equal(model.visual.proj.weight, b32["visual.proj.weight"])
    named, _, _ = clipforge.load("ViT-B-32-quickgelu", weights=run / "epoch_latest.pt")
    assert named.config.name == "ViT-B-32-quickgelu" and named.config.activation == "quick_gelu"


def test_hf_hub_name_resolves_offline_from_the_cache(small, tmp_path, monkeypatch):
    theirs, _, _, hub = small
    repo = tmp_path / "hub" / "models--someone--small-clip"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for name in ("open_clip_config.json", "open_clip_pytorch_model.bin"):
        (snapshot / name).write_bytes((hub / name).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    model, _, _ = clipforge.load("hf-hub:someone/small-clip")
    assert torch.equal(model.visual.patch_embed.weight, theirs.visual.conv1.weight)
    with pytest.raises(FileNotFoundError, match=r"hf-hub:someone/other: .*does not download"):
        clipforge.load("hf-hub:someone/other")


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown-name", r"unknown OpenCLIP model 'ViT-Q-99'; known: ViT-B-32, "),
        ("wrong-shapes", r"epoch_2.pt: not this architecture \(ViT-B-32\).*fits no known model"),
        ("no-weights", r"no OpenCLIP weights \(open_clip_model.safetensors or "),
        ("no-config", r"open_clip_config.json: OpenCLIP model config not found"),
        ("unsupported", r"OpenCLIP vision_cfg key timm_model_name='vit_base' is not supported"),
        ("name-for-hub-dir", r"hub: a hub directory carries its own open_clip_config.json"),
        ("bad-json", r"broken/open_clip_config.json: not valid JSON"),
    ],
)
def test_bad_input_is_one_line_naming_it(small, tmp_path, case, message):
    _, checkpoint, _, hub = small
    broken = tmp_path / "broken"
    broken.mkdir()
    if case == "unknown-name":
        call = lambda: load_openclip(checkpoint, model_name="ViT-Q-99")  # noqa: E731
    elif case == "wrong-shapes":
        call = lambda: load_openclip(checkpoint, model_name="ViT-B-32")  # noqa: E731
    elif case == "bad-json":
        (broken / "open_clip_config.json").write_text("{model_cfg: ")
        call = lambda: clipforge.load(broken)  # noqa: E731
    elif case == "name-for-hub-dir":
        call = lambda: load_openclip(hub, model_name="ViT-B-32")  # noqa: E731
    elif case == "no-weights":
        (broken / "open_clip_config.json").write_text(json.dumps({"model_cfg": SMALL_CFG}))
        call = lambda: clipforge.load(broken)  # noqa: E731
    elif case == "no-config":
        (broken / "open_clip_model.safetensors").write_bytes(b"")
        call = lambda: clipforge.load(broken)  # noqa: E731
    else:
        cfg = json.loads(json.dumps(SMALL_CFG))
        cfg["vision_cfg"]["timm_model_name"] = "vit_base"
        (broken / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
        weights = "open_clip_pytorch_model.bin"
        (broken / weights).write_bytes((hub / weights).read_bytes())
        call = lambda: clipforge.load(broken)  # noqa: E731
    with pytest.raises((ValueError, FileNotFoundError), match=message) as raised:
        call()
    assert "\n" not in str(raised.value)


def test_cli_convert_from_and_to_openclip(small, tmp_path, capsys):
    _, checkpoint, config_json, _ = small
    imported, exported = tmp_path / "cf", tmp_path / "oc"
    argv = ["convert", "--from-openclip", str(checkpoint), "--model-config", str(config_json)]
    assert main([*argv, "--out", str(imported)]) == 0
    assert json.loads((imported / "config.json").read_text())["format"] == "clipforge"
    assert main(["convert", "--to-openclip", str(imported), "--out", str(exported)]) == 0
    assert (exported / "open_clip_model.safetensors").is_file()
    capsys.readouterr()
    bad = ["convert", "--from-openclip", str(checkpoint), "--model-name", "ViT-Q-99"]
    assert main([*bad, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipforge convert: error: unknown OpenCLIP model 'ViT-Q-99'")
    assert "\n" not in err and not (tmp_path / "x").exists()
    assert (
        main(["convert", "--to-hf", str(imported), "--model-name", "ViT-B-32", "--out", "y"]) == 2
    )


def test_named_architectures_equal_openclips_own_configs():
    """Each row of our table equals OpenCLIP's JSON of that name (their values, ours written)."""

    def with_defaults(cfg: dict) -> dict:
        cfg = json.loads(json.dumps(cfg))
        cfg["vision_cfg"].setdefault("head_width", 64)
        cfg["vision_cfg"].setdefault("mlp_ratio", 4.0)
        return cfg

    for name, ours in OPENCLIP_MODELS.items():
        theirs = json.loads((openclip_root() / "model_configs" / f"{name}.json").read_text())
        assert with_defaults(ours) == with_defaults(theirs), name


@pytest.mark.parametrize(
    "section, key, value, accepted",
    [
        ("vision_cfg", "ls_init_value", 1e-5, False),  # layer scale: another network
        ("text_cfg", "hf_model_name", "roberta-base", False),
        ("text_cfg", "proj_type", "mlp", False),
        ("vision_cfg", "qk_norm", False, True),  # spelled out at the default: fine
        ("vision_cfg", "final_ln_after_pool", True, True),  # LayerNorm is per token
        ("text_cfg", "norm_kwargs", {"eps": 1e-6}, True),
    ],
)
def test_config_keys_are_mapped_or_refused_by_name(section, key, value, accepted):
    from clipforge.interop.openclip_config import model_config_from_openclip

    cfg = json.loads(json.dumps(SMALL_CFG))
    cfg[section][key] = value
    if accepted:
        config = model_config_from_openclip(cfg, None, "m", "m.json")
        assert config.text.layer_norm_eps == (1e-6 if key == "norm_kwargs" else 1e-5)
    else:
        with pytest.raises(ValueError, match=f"m.json: OpenCLIP {section} key {key}="):
            model_config_from_openclip(cfg, None, "m", "m.json")
