"""Objectives run end to end. filip, tcl, lightclip, dreamlip, alip and lexlip on a real (tiny)
model: forward and backward reach both towers and the objective's own parameters; their shipped
configs train two steps, and tcl's momentum encoder and queue are saved with the run. Every other
literature config parses and builds the objectives it names.

The formulas themselves are checked against hand-computed cases and released code in each
method's own tests/test_objective_<name>.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import clipforge
from clipforge.objectives import OBJECTIVES
from clipforge.training import TrainConfig, train
from clipforge.training.module import build_objectives

from synthetic import ShapesSource, micro_model_overrides
from tiny_clip import real_batch, tiny_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# objectives that run on a real model here and whose configs train two steps
NAMES = ("filip", "tcl", "lightclip", "dreamlip", "alip", "lexlip")
# the other literature configs: parsed, objectives built, not trained
LITERATURE_CONFIGS = [
    "mlcd",
    "cep",
    "hcl",
    "unime",
    "distill",
    "refine",
    "grow",
    "lit",
    "clip-improved",
]


# -- every objective on a real (tiny) model --------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_on_a_tiny_model(name):
    model = tiny_model()
    kwargs = {"queue_size": 8} if name == "tcl" else {}
    objective = OBJECTIVES.get(name)(**kwargs)
    objective.setup(model)
    batch = real_batch()
    outputs = model(batch.images, batch.text, return_tokens=objective.needs_tokens)
    terms = objective(outputs, batch)
    terms["loss"].backward()
    assert math.isfinite(terms["loss"].item())
    for tower in (model.visual, model.text):
        assert sum(p.grad.abs().sum().item() for p in tower.parameters() if p.grad is not None) > 0
    for parameter in objective.parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0


# -- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_config_parses_and_trains_two_steps(name, tmp_path):
    config = TrainConfig.from_yaml(
        CONFIGS / f"{name}.yaml",
        [
            f"run.out={tmp_path / name}",
            "run.steps=2",
            "run.time_budget=null",
            "run.progress=false",
            "run.log_every=1",
            "data.val=null",
            "data.workers=0",
            "data.batch_size=8",
            "model.tokenizer_vocab_size=300",
        ],
    )
    assert name in [spec.name for spec in config.objectives]
    assert all(spec.name in OBJECTIVES for spec in config.objectives)
    assert config.run.out == str(tmp_path / name)
    config.model.overrides = micro_model_overrides()
    train(config, ShapesSource(24))
    rows = [
        json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["step"] for row in rows] == [1, 2]
    assert all(math.isfinite(row[f"{name}/loss"]) for row in rows)
    if name == "lexlip":  # the heads travel with the run, for sparse search
        from clipforge.search.lexicon import load_lexicon_heads

        model, _, _ = clipforge.load(tmp_path / name)
        assert load_lexicon_heads(tmp_path / name, model) is not None


def test_tcl_momentum_state_is_saved_with_the_run(tmp_path):
    from safetensors.torch import load_file

    config = TrainConfig.from_yaml(
        CONFIGS / "tcl.yaml",
        [
            f"run.out={tmp_path}",
            "run.steps=2",
            "run.time_budget=null",
            "run.progress=false",
            "data.val=null",
            "data.workers=0",
            "data.batch_size=8",
            "model.tokenizer_vocab_size=300",
        ],
    )
    config.objectives[0].params["queue_size"] = 12
    config.model.overrides = micro_model_overrides()
    train(config, ShapesSource(24))
    saved = load_file(str(tmp_path / "objectives.safetensors"))
    assert saved["tcl.queue_ptr"].item() == 4  # 2 steps × 8 samples, wrapped
    assert "tcl.momentum_model.visual.proj.weight" in saved
    model, _, _ = clipforge.load(tmp_path)
    assert not torch.equal(
        saved["tcl.momentum_model.visual.proj.weight"], model.visual.proj.weight
    )  # EMA lags the trained weights


@pytest.mark.parametrize("name", LITERATURE_CONFIGS)
def test_literature_configs_parse_and_name_registered_objectives(name):
    from clipforge.models.grow import GrowStage, validate_grow_schedule

    config = TrainConfig.from_yaml(CONFIGS / f"{name}.yaml")
    assert config.objectives and all(spec.name in OBJECTIVES for spec in config.objectives)
    objectives = build_objectives(config.objectives)  # kwargs fit the constructors
    assert set(objectives) == {spec.name for spec in config.objectives}
    validate_grow_schedule(config.grow)
    if name == "grow":
        assert config.grow[0] == GrowStage(at_fraction=0.3, vision_layers=2, text_layers=2)
    if name == "lit":
        assert config.model.freeze == ["text.encoder"]
        assert config.model.overrides["text.pretrained"].startswith("pkg:")
