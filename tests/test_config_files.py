"""YAML config files: ``base:`` resolution (relative, ordered, cycle-checked) and the recipes in
``configs/`` sharing one base."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clipforge.cli.main import main
from clipforge.common.yaml_files import load_yaml_mapping
from clipforge.training.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_is_relative_to_the_file_and_merges_mappings(tmp_path):
    write(tmp_path / "bases" / "root.yaml", "data: {batch_size: 8, workers: 0}\nrun: {seed: 3}\n")
    write(
        tmp_path / "bases" / "mid.yaml", "base: root.yaml\ndata: {workers: 1}\nobjectives: [clip]\n"
    )
    child = write(
        tmp_path / "run" / "child.yaml",
        "base: ../bases/mid.yaml\ndata: {batch_size: 16}\nobjectives: [siglip]\n"
        "run: {seed: null}\n",
    )
    assert load_yaml_mapping(child) == {
        "data": {"batch_size": 16, "workers": 1},
        "objectives": ["siglip"],
        "run": {"seed": None},
    }


def test_a_list_of_bases_applies_in_order(tmp_path):
    write(tmp_path / "a.yaml", "data: {batch_size: 8, workers: 0}\n")
    write(tmp_path / "b.yaml", "data: {batch_size: 4}\n")
    child = write(tmp_path / "c.yaml", "base: [a.yaml, b.yaml]\n")
    assert load_yaml_mapping(child) == {"data": {"batch_size": 4, "workers": 0}}


def test_cycle_and_missing_base_fail_with_the_files_named(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: ./a.yaml\n")
    with pytest.raises(ValueError, match=r"cycle: .*a\.yaml → .*b\.yaml → .*a\.yaml"):
        load_yaml_mapping(tmp_path / "a.yaml")
    write(tmp_path / "self.yaml", "base: self.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_yaml_mapping(tmp_path / "self.yaml")
    write(tmp_path / "lost.yaml", "base: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.yaml \(the base of .*lost\.yaml\)"):
        load_yaml_mapping(tmp_path / "lost.yaml")
    write(tmp_path / "bad.yaml", "base: {x: 1}\n")
    with pytest.raises(ValueError, match="'base' must be a file path"):
        load_yaml_mapping(tmp_path / "bad.yaml")


def test_cli_reads_bases_and_reports_a_cycle(tmp_path, capsys):
    write(tmp_path / "base.yaml", "data: {batch_size: 8}\noptim: {lr: 0.01}\n")
    child = write(tmp_path / "run.yaml", "base: base.yaml\noptim: {weight_decay: 0.0}\n")
    assert main(["train", "--config", str(child), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["batch_size"] == 8
    assert printed["optim"]["lr"] == 0.01 and printed["optim"]["weight_decay"] == 0.0
    write(tmp_path / "base.yaml", "base: run.yaml\n")
    assert main(["train", "--config", str(child), "--print-config"]) == 2
    assert "config base cycle" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_extends_the_shared_base(path):
    assert yaml.safe_load(path.read_text())["base"] == "base/tiny-emoji.yaml"
    config = TrainConfig.from_yaml(path)
    assert config.data.train == "builtin:emoji" and config.run.log_every == 10
    assert config.run.out == f"runs/{path.stem}"
