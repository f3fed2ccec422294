"""``clipforge refine`` takes train's run-length flags: --steps, --epochs, --time-budget."""

from __future__ import annotations

import json

import pytest

from clipforge.cli.main import main

from synthetic import ShapesSource, save_micro_model


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    root = tmp_path_factory.mktemp("refine")
    data = root / "data"
    data.mkdir()
    source = ShapesSource(16)
    for index in range(len(source)):
        record = source[index]
        record.image.save(data / f"{index:03d}.png")
        (data / f"{index:03d}.txt").write_text(record.captions[0])
    return save_micro_model(root / "model"), data


def refine(start, out, *flags) -> dict:
    model, data = start
    assert (
        main(
            [
                "refine",
                "--model",
                str(model),
                "--data",
                f"folder:{data}",
                "--out",
                str(out),
                "--batch-size",
                "4",
                "--workers",
                "0",
                "--no-eval",
                "--no-progress",
                "--precision",
                "fp32",
                *flags,
            ]
        )
        == 0
    )
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("flags, steps", [(["--steps", "3"], 3), (["--epochs", "0.5"], 2), ([], 4)])
def test_refine_runs_as_long_as_asked(start, tmp_path, flags, steps):
    summary = refine(start, tmp_path / "out", *flags)
    assert summary["steps"] == steps  # 16 samples / batch 4: 4 steps an epoch
    report = json.loads((tmp_path / "out" / "refine.json").read_text())
    assert report["steps"] == steps and "gap_after" in report


def test_refine_time_budget_plans_the_schedule(start, tmp_path, capsys):
    summary = refine(start, tmp_path / "out", "--time-budget", "0.02")
    assert summary["config"]["run"]["time_budget"] == 0.02 and summary["steps"] >= 1
    assert "time budget 0.02 min: planned" in capsys.readouterr().err


def test_refine_takes_one_run_length(start, tmp_path, capsys):
    with pytest.raises(SystemExit):
        refine(start, tmp_path / "out", "--steps", "2", "--epochs", "1")
    assert "not allowed with argument" in capsys.readouterr().err
