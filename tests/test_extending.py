"""docs/extending.md's worked examples are real: each new objective, data source and evaluator
there is one file plus one registry line. This test executes those very code blocks as the
modules they name, adds the registry lines, lists them, trains with all three (the evaluator
from an ``evals:`` section) and runs the evaluator through ``clipforge eval``."""

from __future__ import annotations

import ast
import json
import re
import sys
import types
from pathlib import Path

import pytest

import clipforge
from clipforge.cli.main import main
from clipforge.registry import Registry
from clipforge.training import TrainConfig, train

from synthetic import draw, micro_model_overrides

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
BLOCK = re.compile(r"```python\n(# src/(\S+?\.py)[^\n]*)\n(.*?)```", re.S)
TABLE_LINE = re.compile(r"one line in the (\w+) table")


def doc_blocks() -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """{module name: source} of the example files and (package, table, entry) registry lines."""
    files, lines = {}, []
    for header, path, body in BLOCK.findall(DOC.read_text()):
        module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        table = TABLE_LINE.search(header)
        if table:
            lines.append((module, table.group(1), body.strip()))
        else:
            files[module] = body
    return files, lines


@pytest.fixture
def extended(monkeypatch):
    """Install the documented modules and registry lines; returns the new names by table."""
    files, lines = doc_blocks()
    assert len(files) == 3 and len(lines) == 3, "expected an objective, a source, an evaluator"
    namespaces = {}
    for name, source in files.items():
        module = types.ModuleType(name)
        module.__package__ = name.rpartition(".")[0]
        monkeypatch.setitem(sys.modules, name, module)
        exec(compile(source, f"{DOC}:{name}", "exec"), module.__dict__)
        namespaces[module.__package__] = module
    added = {}
    for package_name, table, line in lines:
        package = sys.modules[package_name]
        key_node, value_node = (lambda d: (d.keys[0], d.values[0]))(
            ast.parse("{" + line + "}", mode="eval").body
        )
        scope = {**vars(package), **vars(namespaces[package_name])}
        entry = eval(compile(ast.Expression(value_node), "registry line", "eval"), scope)
        old = getattr(package, table)
        new = Registry(old.kind, {**dict(old.items()), key_node.value: entry})
        for module in list(sys.modules.values()):  # every module that holds the table
            if module and module.__name__.startswith("clipforge"):
                for attribute, value in list(vars(module).items()):
                    if value is old:
                        monkeypatch.setattr(module, attribute, new)
        added[table] = key_node.value
    return added


def write_pairs(directory: Path, count: int = 16) -> Path:
    rows = []
    for index in range(count):
        color = ["red", "green", "blue", "yellow"][index % 4]
        shape = ["circle", "square"][index % 2]
        draw(color, shape).save(directory / f"{index}.png")
        rows.append(json.dumps({"image": f"{index}.png", "caption": f"a {color} {shape}"}))
    path = directory / "pairs.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_documented_components_list_train_and_evaluate(extended, tmp_path, capsys):
    assert extended == {
        "OBJECTIVES": "align",
        "DATA_SOURCES": "jsonl",
        "EVALUATORS": "pair_similarity",
    }
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for kind, name in (
        ("objectives", "align"),
        ("data", "jsonl"),
        ("evaluators", "pair_similarity"),
    ):
        assert re.search(rf"^{kind}: .*\b{name}\b", listed, re.M), listed

    pairs = write_pairs(tmp_path)
    out = tmp_path / "run"
    config = TrainConfig.from_dict(
        {
            "model": {
                "name": "tiny",
                "overrides": micro_model_overrides(),
                "tokenizer_vocab_size": 300,
            },
            "data": {"train": f"jsonl:{pairs}", "val": None, "batch_size": 8, "workers": 0},
            "objectives": [{"name": "clip"}, {"name": "align", "weight": 0.5, "alpha": 2.0}],
            "evals": [
                {
                    "name": "pair_similarity",
                    "data": f"jsonl:{pairs}",
                    "every": 2,
                    "options": {"threshold": 0.1},
                }
            ],
            "run": {
                "out": str(out),
                "steps": 4,
                "eval_every": 2,
                "log_every": 1,
                "progress": False,
            },
        }
    )
    train(config)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(row["align/loss"] > 0 for row in logged)
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [row["step"] for row in evals] == [2, 4]  # step 4 is not evaluated twice
    for row in evals:
        assert set(row) == {
            "step",
            "pair_similarity/mean_cosine",
            "pair_similarity/above_threshold",
        }
        assert -1 <= row["pair_similarity/mean_cosine"] <= 1
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["eval"] == {k: v for k, v in evals[-1].items() if k != "step"}

    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                "pair_similarity",
                "--model",
                str(out),
                "--data",
                f"jsonl:{pairs}",
                "--threshold",
                "2",
                "--workers",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "pair_similarity" in printed and re.search(r"above_threshold\s+0\.0000", printed)
    assert clipforge.__name__ == "clipforge"
