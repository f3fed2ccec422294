"""A run's lifecycle from the command line: new runs, --resume, --overwrite, damaged checkpoints,
inputs and values checked before anything is written, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import micro_overrides, write_shapes_csv

from clipforge.cli.main import main
from clipforge.training import TrainConfig

CHECKPOINT_4 = "step-00000004"


def train_argv(table: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        f"csv:{table}",
        "--val",
        "none",
        "--model",
        "tiny",
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--log-every",
        "1",
        "--no-progress",
        "--objective",
        "siglip",
        "model.tokenizer_vocab_size=300",
        "optim.warmup_fraction=0.5",
        *micro_overrides(),
        *extra,
    ]


def losses(run: Path) -> list[tuple[int, float]]:
    return [
        (row["step"], row["loss"])
        for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    ]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 4-step run on a CSV (batch 8, siglip) with checkpoints at steps 2 and 4."""
    root = tmp_path_factory.mktemp("lifecycle")
    table = write_shapes_csv(root / "data")
    run = root / "run"
    assert main(train_argv(table, run, "--steps", "4", "--save-every", "2")) == 0
    return table, run


def copy_of(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_run_dir_saves_its_config(finished):
    table, run = finished
    saved = TrainConfig.from_yaml(run / "config.yaml")
    assert saved.data.train == f"csv:{table}" and saved.data.batch_size == 8
    assert [o.name for o in saved.objectives] == ["siglip"] and saved.run.steps == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-00000002",
        CHECKPOINT_4,
    ]


def test_resume_continues_with_the_saved_config_and_extends_the_run(finished, tmp_path, capsys):
    _, run = finished
    run = copy_of(run, tmp_path)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--steps", "6", "--no-progress"]) == 0
    assert "re-planned" in capsys.readouterr().err
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["steps"] == 6
    config = summary["config"]
    assert config["data"]["train"].startswith("csv:") and config["data"]["batch_size"] == 8
    assert [o["name"] for o in config["objectives"]] == ["siglip"]
    assert [step for step, _ in losses(run)] == [1, 2, 3, 4, 5, 6]
    assert TrainConfig.from_yaml(run / "config.yaml").run.steps == 6


def test_resume_with_contradicting_flags_names_them_and_changes_nothing(finished, tmp_path, capsys):
    _, run = finished
    run = copy_of(run, tmp_path)
    before = (run / "metrics.jsonl").read_text()
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--resume",
                "--batch-size",
                "16",
                "--data",
                "builtin:emoji",
                "--steps",
                "6",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "data.batch_size" in error and "data.train" in error and error.count("\n") == 1
    assert (run / "metrics.jsonl").read_text() == before


def test_a_write_cut_short_does_not_make_a_run_foreign(tmp_path):
    from clipforge.training.run_dir import foreign_entries

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    (run / ".tmp-4242-metrics.json").write_text("{")  # atomic_write's temporary, run killed
    assert foreign_entries(run) == []
    (run / "notes.txt").write_text("mine")
    assert foreign_entries(run) == ["notes.txt"]


def test_resume_needs_a_complete_checkpoint(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "absent"), "--resume", "--steps", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists()
    empty_run = tmp_path / "run"
    (empty_run / "checkpoints" / ".tmp-step-00000002").mkdir(parents=True)  # killed mid-save
    assert main(["train", "--out", str(empty_run), "--resume", "--steps", "2"]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in empty_run.iterdir()) == ["checkpoints"]


def test_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(finished, tmp_path, capsys):
    _, run = finished
    run = copy_of(run, tmp_path)
    weights = run / "checkpoints" / CHECKPOINT_4 / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    error = capsys.readouterr().err
    assert CHECKPOINT_4 in error and "resuming from step-00000002" in error
    assert losses(run) == losses(finished[1])  # steps 3-4 redone exactly


def test_out_holding_a_run_needs_resume_or_overwrite(finished, tmp_path, capsys):
    table, run = finished
    run = copy_of(run, tmp_path)
    assert main(train_argv(table, run, "--steps", "2")) == 2
    error = capsys.readouterr().err
    assert "--resume" in error and "--overwrite" in error and "checkpoints" in error
    assert (run / "checkpoints" / CHECKPOINT_4).is_dir()

    assert main(train_argv(table, run, "--steps", "2", "--overwrite")) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002"]
    assert [step for step, _ in losses(run)] == [1, 2]
    assert TrainConfig.from_yaml(run / "config.yaml").run.steps == 2


def test_overwrite_never_deletes_a_folder_holding_other_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.jsonl").write_text("")
    (out / "notes.txt").write_text("precious")
    assert main(["train", "--out", str(out), "--overwrite", "--steps", "1"]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "precious" and (out / "metrics.jsonl").exists()
    assert main(["train", "--out", str(out), "--steps", "1"]) == 2
    assert "notes.txt" in capsys.readouterr().err


def test_a_file_as_out_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["train", "--out", str(target), "--steps", "1"]) == 2
    error = capsys.readouterr().err
    assert "is a file" in error and error.count("\n") == 1 and target.read_text() == "x"


def test_a_missing_val_set_is_found_before_training(tmp_path, capsys):
    table = write_shapes_csv(tmp_path / "data")
    out = tmp_path / "run"
    argv = train_argv(table, out, "--steps", "50")
    argv[argv.index("--val") + 1] = "csv:/nowhere/val.csv"
    assert main(argv) == 2
    assert "/nowhere/val.csv" in capsys.readouterr().err
    assert not out.exists()  # no training, nothing written


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["data.batch_size=abc"], "data.batch_size"),
        (["run.precision=fp16"], "fp16"),
        (["--steps", "0"], "--steps"),
        (["--steps", "-5"], "-5"),
        (["--epochs", "0"], "--epochs"),
        (["--time-budget", "0"], "--time-budget"),
        (["--time-budget", "-2"], "-2"),
        (["--accumulation", "0"], "--accumulation"),
        (["--log-every", "0"], "--log-every"),
        (["--batch-size", "0"], "--batch-size"),
        (["optim.lr=fast"], "optim.lr"),
        (["optim.lr=[1,"], "optim.lr"),
    ],
)
def test_bad_values_fail_when_parsed(extra, needle, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *extra]) == 2
    error = capsys.readouterr().err
    assert needle in error and error.count("\n") == 1, error
    assert not out.exists()


def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  batch_size: 8\n run: [\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "bad.yaml" in error and "line 3" in error and error.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_library_configs_validate_too():
    with pytest.raises(ValueError, match="data.batch_size"):
        TrainConfig.from_dict({"data": {"batch_size": "abc"}})
    with pytest.raises(ValueError, match="run.steps"):
        TrainConfig.from_dict({"run": {"steps": 0}})
    config = TrainConfig()
    config.optim.accumulation = 0  # set after construction
    with pytest.raises(ValueError, match="optim.accumulation"):
        config.validate()


def test_debug_flag_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="run.steps"):
        main(["--debug", "train", "--out", str(tmp_path / "run"), "--steps", "0"])


def write_csv_with_a_missing_image(root: Path) -> Path:
    table = write_shapes_csv(root)
    lines = table.read_text().splitlines()
    lines[4] = lines[4].replace("images/3.png", "images/missing.png")  # data row 3
    table.write_text("\n".join(lines) + "\n")
    return table


@pytest.mark.parametrize("workers", ["0", "2"])
def test_strict_is_one_line_naming_the_file_and_record(workers, tmp_path):
    table = write_csv_with_a_missing_image(tmp_path / "data")
    argv = train_argv(table, tmp_path / "run", "--steps", "4", "--strict")
    argv[argv.index("--workers") + 1] = workers
    done = subprocess.run(
        [sys.executable, "-m", "clipforge", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    # besides the run's "[clipforge] …" progress lines, the error is one line
    error = "\n".join(
        line for line in done.stderr.strip().splitlines() if not line.startswith("[clipforge] ")
    )
    assert "\n" not in error and "Traceback" not in error, error
    assert error.startswith("clipforge train: error: ")
    assert str(table) in error and "'3'" in error and "missing.png" in error


def test_worker_errors_are_reported_by_their_original_message():
    from torch._utils import ExceptionWrapper

    from clipforge.cli.main import one_line

    try:
        raise FileNotFoundError("shard /data/00001.tar is gone")
    except FileNotFoundError:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(FileNotFoundError) as caught:
        wrapper.reraise()
    assert "\n" in str(caught.value)
    assert one_line(caught.value) == "shard /data/00001.tar is gone"
