"""clip and siglip against hand-computed cases and against OpenCLIP's loss.py."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clipforge.models.clip import ModelOutput
from clipforge.objectives import OBJECTIVES, ClipLoss, SigLipLoss


def outputs(images, texts, scale, bias=None) -> ModelOutput:
    return ModelOutput(
        torch.tensor(images),
        torch.tensor(texts),
        torch.tensor(scale),
        None if bias is None else torch.tensor(bias),
    )


def test_clip_loss_by_hand():
    # I = [[1,0],[0,1]], T = [[1,0],[0.6,0.8]], scale 2 → logits = 2·I·Tᵀ = [[2,1.2],[0,1.6]]
    out = outputs([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]], 2.0)
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1.2)))
    row1 = -math.log(math.exp(1.6) / (math.exp(0) + math.exp(1.6)))
    col0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))
    col1 = -math.log(math.exp(1.6) / (math.exp(1.2) + math.exp(1.6)))
    expected = ((row0 + row1) / 2 + (col0 + col1) / 2) / 2
    assert ClipLoss()(out, None)["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_siglip_loss_by_hand():
    # logits = 2·I·Tᵀ − 1 = [[1, 0.2], [−1, 0.6]]; z = +1 on the diagonal, −1 elsewhere
    out = outputs([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]], 2.0, -1.0)

    def nls(x):  # −log σ(x)
        return math.log(1 + math.exp(-x))

    expected = (nls(1.0) + nls(-0.2) + nls(1.0) + nls(0.6)) / 2
    assert SigLipLoss()(out, None)["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_siglip_declares_paper_defaults_and_needs_a_bias():
    assert SigLipLoss.model_defaults == {
        "logit_scale_init": math.log(10.0),
        "logit_bias_init": -10.0,
        "logit_scale_max": None,
    }  # uncapped, as big_vision
    with pytest.raises(ValueError, match="logit bias"):
        SigLipLoss()(outputs([[1.0, 0.0]], [[1.0, 0.0]], 1.0), None)


def test_clip_label_smoothing_raises_loss_of_a_confident_model():
    out = outputs([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], 20.0)
    assert ClipLoss(label_smoothing=0.1)(out, None)["loss"] > ClipLoss()(out, None)["loss"]


def load_openclip_loss():
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("open-clip-torch is not installed (make test installs it with --no-deps)")
    path = Path(list(spec.submodule_search_locations)[0]) / "loss.py"
    module_spec = importlib.util.spec_from_file_location("openclip_loss", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_same_loss_as_openclip(name):
    oracle = load_openclip_loss()
    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(8, 16, generator=generator), dim=-1)
    texts = F.normalize(torch.randn(8, 16, generator=generator), dim=-1)
    scale, bias = torch.tensor(14.3), torch.tensor(-3.0)
    ours = OBJECTIVES.get(name)()(ModelOutput(images, texts, scale, bias), None)["loss"]
    if name == "clip":
        theirs = oracle.ClipLoss()(images, texts, scale)
    else:
        theirs = oracle.SigLipLoss()(images, texts, scale, bias)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


def test_unknown_objective_lists_known_ones():
    with pytest.raises(KeyError, match="known objectives: .*clip"):
        OBJECTIVES.get("clipp")
