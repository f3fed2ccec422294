"""Experiment tracking: ``--report-to tensorboard,wandb,csv`` and the always-written
``train.log``, read back from the files each tracker writes (offline, no network)."""

from __future__ import annotations

import csv
import json
import re
import sys

import pytest

from clipforge.cli.main import main
from clipforge.training import TrainConfig, train, trainer
from clipforge.training.reporters import REPORTERS, parse_report_to

from synthetic import ShapesSource, micro_model_overrides
from wandb_records import history


def tiny_config(out, **run) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "model": {"name": "tiny", "overrides": micro_model_overrides()},
            "data": {"batch_size": 8, "workers": 0},
            "run": {"out": str(out), "steps": 6, "log_every": 2, "progress": False, **run},
        }
    )


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """One 6-step run reporting to all three trackers, evaluated at step 3 and at the end."""
    out = tmp_path_factory.mktemp("tracked") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        config = tiny_config(out, eval_every=3, report_to="tensorboard,wandb,csv")
        train(config, ShapesSource(48), ShapesSource(16, seed=1))
    return out


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_csv_rows_are_the_jsonl_rows(tracked_run):
    with (tracked_run / "metrics.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    logged = jsonl(tracked_run / "metrics.jsonl")
    assert reader.fieldnames == list(logged[0])  # step, epoch, loss, lr, … in jsonl's order
    assert [int(r["step"]) for r in rows] == [r["step"] for r in logged] == [2, 4, 6]
    for row, expected in zip(rows, logged):
        for key, value in expected.items():
            assert float(row[key]) == pytest.approx(float(value)), key


def test_tensorboard_events_hold_the_logged_scalars(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    logged = jsonl(tracked_run / "metrics.jsonl")
    losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [s for s, _ in losses] == [2, 4, 6]
    assert [v for _, v in losses] == pytest.approx([r["loss"] for r in logged], rel=1e-6)
    assert {"train/lr", "train/samples_per_s", "train/logit_scale"} <= tags
    evaluated = jsonl(tracked_run / "eval.jsonl")
    assert [row["step"] for row in evaluated] == [3, 6]
    acc1 = [(e.step, e.value) for e in events.Scalars("eval/acc1")]
    assert acc1 == [(row["step"], pytest.approx(row["acc1"], rel=1e-6)) for row in evaluated]


def test_wandb_offline_run_holds_the_history(tracked_run):
    runs = list((tracked_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    rows = history(next(runs[0].glob("run-*.wandb")))
    by_step = {}
    for row in rows:
        by_step.setdefault(row["_step"], {}).update(row)
    logged = jsonl(tracked_run / "metrics.jsonl")
    assert sorted(by_step) == [2, 3, 4, 6]  # training rows and the step-3 evaluation
    for expected in logged:
        assert by_step[expected["step"]]["loss"] == pytest.approx(expected["loss"])
    final_eval = jsonl(tracked_run / "eval.jsonl")[-1]
    assert by_step[6]["eval/acc1"] == pytest.approx(final_eval["acc1"])


def test_train_log_holds_what_the_console_showed(tracked_run):
    text = (tracked_run / "train.log").read_text()
    assert "[clipforge]" not in text and "\r" not in text
    assert "train tiny" in text and "48 samples, batch 8, 6 steps per epoch" in text
    assert "plan: 6 steps;" in text
    steps = [line.split()[3] for line in text.splitlines() if line.split()[2:3] == ["step"]]
    assert steps == ["2/6", "4/6", "6/6"]
    assert "eval at step 3: acc1 " in text and "eval at step 6: acc1 " in text
    assert "held-out evaluation" in text and "next steps:" in text  # the end-of-run table


def test_train_log_ends_with_the_error_and_tensorboard_keeps_what_came_before(
    tmp_path, monkeypatch
):
    real_step, calls = trainer.optimizer_step, []

    def failing_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the disk\nwent away")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "optimizer_step", failing_step)
    with pytest.raises(RuntimeError):
        train(tiny_config(tmp_path / "run", report_to="tensorboard"), ShapesSource(48), None)
    lines = (tmp_path / "run" / "train.log").read_text().splitlines()
    assert lines[-1].endswith("error: RuntimeError: the disk went away")
    assert any("step 2/6" in line for line in lines)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()  # what was logged before the crash is on disk
    assert [event.step for event in events.Scalars("train/loss")] == [2]


def test_a_resumed_run_continues_its_log_csv_and_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    first = tiny_config(out, steps=4, save_every=2, report_to="csv,wandb")
    train(first, ShapesSource(48), None)
    train(tiny_config(out, steps=6, resume=True, report_to="csv,wandb"), ShapesSource(48), None)
    with (out / "metrics.csv").open(newline="") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == [row["step"] for row in jsonl(out / "metrics.jsonl")] == [2, 4, 6]
    text = (out / "train.log").read_text()
    assert text.count("plan: ") == 2 and "step 6/6" in text
    # offline-run-DATE_TIME-ID, and W&B adds "-1" when the resumed run starts in the same second
    named = [
        (re.fullmatch(r"offline-run-(\d{8}_\d{6})-([a-z0-9]+)(-\d+)?", p.name), p)
        for p in (out / "wandb").glob("offline-run-*")
    ]
    runs = [p for _, p in sorted(named, key=lambda m: (m[0][1], m[0][3] or ""))]
    assert len(runs) == 2 and len({m[0][2] for m in named}) == 1  # one run id, resumed
    resumed = history(next(runs[1].glob("run-*.wandb")))
    assert [row["_step"] for row in resumed] == [6]


def test_report_to_parses_a_comma_list_and_names_the_known_on_a_typo(capsys):
    assert main(["list", "reporters"]) == 0
    assert capsys.readouterr().out.strip() == "reporters: csv, tensorboard, wandb"
    assert parse_report_to("tensorboard, CSV,tensorboard") == ["tensorboard", "csv"]
    assert parse_report_to(["wandb"]) == ["wandb"] and parse_report_to("none") == []
    assert REPORTERS.names() == ["csv", "tensorboard", "wandb"]
    with pytest.raises(ValueError, match="known reporters: csv, tensorboard, wandb"):
        parse_report_to("tensorboard,comet")


def test_an_unknown_reporter_is_a_one_line_error_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--report-to", "tensorboard,comet", "--steps", "1", "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert "'comet'" in error and "csv, tensorboard, wandb" in error
    assert not out.exists()


@pytest.mark.parametrize(
    ("reporter", "module"), [("wandb", "wandb"), ("tensorboard", "torch.utils.tensorboard")]
)
def test_a_missing_tracker_package_names_the_extra(tmp_path, capsys, monkeypatch, reporter, module):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    out = tmp_path / "run"
    argv = ["train", "--report-to", reporter, "--steps", "1", "--out", str(out), "--val", "none"]
    code = main([*argv, *[f"model.overrides.{k}={v}" for k, v in micro_model_overrides().items()]])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert f"--report-to {reporter}" in error and "pip install 'clipforge[track]'" in error
    assert not out.exists()
