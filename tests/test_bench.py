"""``clipforge bench train`` runs the trainer's own step for every registered objective."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clipforge.cli.main import main
from clipforge.common.yaml_files import load_yaml_mapping
from clipforge.objectives import OBJECTIVES
from clipforge.training import bench as bench_module
from clipforge.training import step as step_module
from clipforge.training.bench import BenchConfig, bench_train

from synthetic import micro_model_overrides, save_micro_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def config_for(objective: str) -> Path | None:
    """The shipped config that trains ``objective`` (it carries the options it needs)."""
    for path in sorted(CONFIGS.glob("*.yaml")):
        listed = yaml.safe_load(path.read_text()).get("objectives", [])
        if any(isinstance(o, dict) and o.get("name") == objective for o in listed):
            return path
    return None


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A micro model directory standing in for the trained teacher."""
    return save_micro_model(tmp_path_factory.mktemp("teacher"))


@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_bench_times_every_objective_with_the_trainers_step(
    objective, teacher, tmp_path, monkeypatch
):
    calls = []
    real_step = step_module.optimizer_step
    monkeypatch.setattr(
        bench_module, "optimizer_step", lambda *a, **k: calls.append(1) or real_step(*a, **k)
    )
    source = config_for(objective)
    if source is None:
        config = BenchConfig(objectives=(objective,))
    else:
        data = load_yaml_mapping(source)  # its base: resolved
        data["model"] = {"name": "tiny", "tokenizer_vocab_size": 300}
        for spec in data["objectives"]:
            if isinstance(spec, dict) and "teacher" in spec:
                spec["teacher"] = str(teacher)
        path = tmp_path / source.name
        path.write_text(yaml.safe_dump(data))
        config = BenchConfig(config=str(path))
    config.overrides = [f"model.overrides={json.dumps(micro_model_overrides())}"]
    config.batch_size, config.steps, config.warmup, config.precision = 4, 1, 1, "fp32"
    result = bench_train(config)
    assert objective in result["objectives"]
    assert result["samples_per_s"] > 0 and result["embed_dim"] == 32
    assert len(calls) == 2  # warm-up + timed: the trainer's own step


def test_bench_cli_takes_a_config_and_overrides(capsys):
    assert (
        main(
            [
                "bench",
                "train",
                f"model.overrides={json.dumps(micro_model_overrides())}",
                "--config",
                str(CONFIGS / "tcl.yaml"),
                "--batch-size",
                "4",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--precision",
                "fp32",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["objectives"] == ["tcl"] and result["batch_size"] == 4
    assert "bench: step 1/1" in captured.err  # says what it is doing while it runs


def test_bench_objective_flags_replace_the_configs(capsys):
    assert (
        main(
            [
                "bench",
                "train",
                f"model.overrides={json.dumps(micro_model_overrides())}",
                "--config",
                str(CONFIGS / "tcl.yaml"),
                "--objective",
                "siglip",
                "--batch-size",
                "4",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["objectives"] == ["siglip"]
