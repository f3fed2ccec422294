"""Config hygiene: the README's config table is generated from the dataclasses, every config
with a precision uses the one precision type, and grow stages are typed."""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path

import pytest

from clipforge.cli.main import build_parser
from clipforge.models.grow import GrowStage, stage_step
from clipforge.training import TrainConfig
from clipforge.training.bench import BenchConfig
from clipforge.training.config import RunSection
from clipforge.training.precision import PRECISIONS
from clipforge.training.refine import RefineConfig

ROOT = Path(__file__).resolve().parents[1]
TABLE = runpy.run_path(str(ROOT / "scripts" / "config_table.py"), run_name="config_table")


def test_readme_config_table_is_generated_from_the_dataclasses():
    readme = (ROOT / "README.md").read_text()
    assert TABLE["updated_readme"](readme) == readme, (
        "README config table is stale: run python scripts/config_table.py"
    )


def test_the_table_follows_the_dataclasses():
    table = TABLE["render"]()
    rows = table.splitlines()[2:]
    sections = {"model", "data", "optim", "run"}
    expected = (
        sum(len(dataclasses.fields(type(getattr(TrainConfig(), name)))) for name in sections)
        + len(dataclasses.fields(TrainConfig))
        - len(sections)
    )
    assert len(rows) == expected
    assert "| `run.precision` | `auto` |" in table and "(one of auto, fp32, bf16)" in table
    assert "| `data.batch_size` | `64` | per process |" in table
    assert "entries `{name, data, every, options, label}`" in table
    # every field has a written meaning
    assert all(not line.endswith("|  |") for line in rows), [
        line for line in rows if line.endswith("|  |")
    ]
    stale = (
        (ROOT / "README.md")
        .read_text()
        .replace("| `data.batch_size` | `64`", "| `data.batch_size` | `32`")
    )
    assert TABLE["updated_readme"](stale) != stale


@pytest.mark.parametrize("config_class", [RunSection, BenchConfig, RefineConfig])
def test_every_precision_field_uses_the_one_type(config_class):
    field = {f.name: f for f in dataclasses.fields(config_class)}["precision"]
    assert field.type == "Precision" and field.default == "auto"


@pytest.mark.parametrize("verb", ["train", "bench", "refine"])
def test_every_precision_flag_offers_the_same_choices(verb):
    verbs = build_parser()._subparsers._group_actions[0].choices
    action = next(a for a in verbs[verb]._actions if "--precision" in a.option_strings)
    assert tuple(action.choices) == PRECISIONS == ("auto", "fp32", "bf16")


def test_grow_stages_are_typed_and_checked():
    config = TrainConfig.from_dict(
        {
            "grow": [
                {"at_fraction": 0.5, "vision_layers": 2},
                {"at_step": 7, "text_width": 64, "seed": 3},
            ]
        }
    )
    assert config.grow == [
        GrowStage(at_fraction=0.5, vision_layers=2),
        GrowStage(at_step=7, text_width=64, seed=3),
    ]
    assert [stage_step(stage, 10) for stage in config.grow] == [5, 7]
    assert TrainConfig.from_dict(config.to_dict()).grow == config.grow  # round trip
    with pytest.raises(ValueError, match="unknown keys \\['vision_layer'\\]"):
        TrainConfig.from_dict({"grow": [{"at_step": 1, "vision_layer": 2}]})
    with pytest.raises(ValueError, match="neither at_fraction nor at_step"):
        TrainConfig.from_dict({"grow": [{"vision_layers": 2}]})
