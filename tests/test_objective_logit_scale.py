"""The learned temperature t (scale = exp t): clamped in place after each step, free for SigLIP.

OpenAI CLIP / OpenCLIP (``model.logit_scale.clamp_(0, math.log(100))`` after
``optimizer.step()``) and ALIP keep the *parameter* in [0, ln 100]. A clamp in the forward pass
alone has zero gradient above the cap, so a t that overshoots can never come back.
"""

from __future__ import annotations

import math

import torch

from clipforge.models import create_model
from clipforge.training import TrainConfig, train

from synthetic import ShapesSource, micro_model_overrides

CAP = torch.tensor(math.log(100.0)).item()  # ln 100 as the float32 parameter holds it


def micro_model(**overrides):
    from clipforge.models import model_config
    from clipforge.training.setup import set_dotted

    config = model_config("tiny")
    for key, value in {**micro_model_overrides(), **overrides}.items():
        set_dotted(config, key, value)
    return create_model(config)


def sgd_step_on_scale(model, clamp: bool) -> float:
    """One SGD step on loss = scale (wants t lower); returns t afterwards."""
    optimizer = torch.optim.SGD([model.logit_scale], lr=1e-3)
    model.scale().backward()
    optimizer.step()
    if clamp:
        model.clamp_logit_scale()
    optimizer.zero_grad()
    return model.logit_scale.item()


def test_scale_past_the_cap_gets_gradient_again_after_the_in_place_clamp():
    model = micro_model()
    with torch.no_grad():
        model.logit_scale.fill_(CAP + 0.5)  # driven past the cap by an earlier step
    model.scale().backward()
    assert model.logit_scale.grad.item() == 0.0  # the forward clamp alone: stuck for good
    model.logit_scale.grad = None

    model.clamp_logit_scale()  # what the trainer does after each step
    assert model.logit_scale.item() == CAP
    model.scale().backward()
    assert model.logit_scale.grad.item() == torch.tensor(CAP).exp().item()  # d exp(t)/dt
    model.logit_scale.grad = None
    assert sgd_step_on_scale(model, clamp=True) < CAP  # and it can come back down


def test_without_the_in_place_clamp_the_scale_never_recovers():
    model = micro_model()
    with torch.no_grad():
        model.logit_scale.fill_(CAP + 0.5)
    for _ in range(3):
        assert sgd_step_on_scale(model, clamp=False) == CAP + 0.5  # the old behaviour


def test_the_lower_bound_is_zero():
    model = micro_model()
    with torch.no_grad():
        model.logit_scale.fill_(-2.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == 0.0


def test_training_keeps_the_parameter_within_the_cap(tmp_path):
    """A run started above the cap leaves t ≤ ln 100 (on the old code it stayed at ln 100 + 1,
    frozen: no gradient and no weight decay on the scale)."""
    config = TrainConfig.from_dict(
        {
            "model": {
                "name": "tiny",
                "tokenizer_vocab_size": 300,
                "overrides": {**micro_model_overrides(), "logit_scale_init": CAP + 1.0},
            },
            "data": {"batch_size": 8, "workers": 0, "val": None},
            "run": {"out": str(tmp_path / "run"), "steps": 2, "log_every": 1, "progress": False},
        }
    )
    train(config, ShapesSource(16))
    from clipforge.loading import load

    model, _, _ = load(tmp_path / "run")
    assert model.logit_scale.item() <= CAP + 1e-6


def test_siglip_scale_is_not_capped():
    """big_vision leaves SigLIP's t′ free: no in-place clamp and no forward clamp."""
    from clipforge.training.config import ModelSection, ObjectiveSpec
    from clipforge.training.module import build_objectives
    from clipforge.training.setup import build_model_config

    objectives = build_objectives([ObjectiveSpec("siglip", params={})])
    config = build_model_config(ModelSection(overrides=micro_model_overrides()), objectives)
    assert config.logit_scale_max is None
    model = create_model(config)
    with torch.no_grad():
        model.logit_scale.fill_(CAP + 1.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == CAP + 1.0
    assert math.isclose(model.scale().item(), math.exp(CAP + 1.0), rel_tol=1e-6)
