"""The CLI end to end on seconds-long runs, and its bad-input paths."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from clipforge.cli.main import main

from synthetic import COLORS, SHAPES, draw, micro_model_overrides


def write_shapes_csv(root, count=32):
    images = root / "images"
    images.mkdir(parents=True)
    paths, captions = [], []
    for index in range(count):
        color, shape = list(COLORS)[index % 4], SHAPES[index % 3]
        draw(color, shape, jitter=index % 3).save(images / f"{index}.png")
        paths.append(f"images/{index}.png")
        captions.append(f"a {color} {shape}")
    table = root / "pairs.csv"
    pacsv.write_csv(pa.table({"image": paths, "caption": captions}), table)
    return table


def write_class_folder(root):
    for shape in SHAPES:
        (root / shape).mkdir(parents=True)
        for index, color in enumerate(COLORS):
            draw(color, shape).save(root / shape / f"{index}.png")
    return root


def micro_overrides() -> list[str]:
    return [f"model.overrides.{key}={value}" for key, value in micro_model_overrides().items()]


def test_train_then_evaluate_from_the_command_line(tmp_path, capsys):
    table = write_shapes_csv(tmp_path / "data")
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            f"csv:{table}",
            "--val",
            str(table),
            "--model",
            "tiny",
            "--out",
            str(run),
            "--steps",
            "4",
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--log-every",
            "1",
            "--no-progress",
            "model.tokenizer_vocab_size=300",
            *micro_overrides(),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "image_retrieval_recall@1" in printed and "steps 4" in printed
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    summary = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= summary["eval"]["image_retrieval_recall@1"] <= 1.0

    folder = write_class_folder(tmp_path / "classes")
    result = tmp_path / "zeroshot.json"
    assert (
        main(
            [
                "eval",
                "zeroshot",
                "--model",
                str(run),
                "--data",
                str(folder),
                "--json",
                str(result),
                "--no-progress",
            ]
        )
        == 0
    )
    metrics = json.loads(result.read_text())["metrics"]
    assert {"acc1", "mean_per_class_recall"} <= metrics.keys()


def test_yaml_config_with_flag_and_key_value_overrides(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: {name: tiny}\ndata: {batch_size: 4}\nrun: {epochs: 3}\n"
        "objectives: [{name: siglip}]\noptim: {lr: 0.1}\n"
    )
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--steps",
            "7",
            "--lr",
            "0.01",
            "optim.weight_decay=0.5",
            "--print-config",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "steps: 7" in printed and "epochs: null" in printed
    assert "lr: 0.01" in printed and "weight_decay: 0.5" in printed
    assert "name: siglip" in printed and "batch_size: 4" in printed


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--data", "csv:/nowhere/pairs.csv", "--steps", "1"], "/nowhere/pairs.csv"),
        (["train", "--config", "/nowhere/run.yaml"], "/nowhere/run.yaml"),
        (["train", "--model", "tinyy", "--steps", "1"], "tinyy"),
        (["train", "--objective", "clipp", "--steps", "1"], "clipp"),
        (["train", "--steps", "1", "optim.learning_rate=3"], "learning_rate"),
    ],
)
def test_bad_input_exits_2_naming_it(argv, needle, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert needle in capsys.readouterr().err


def test_bench_train_contract(capsys):
    micro = json.dumps(micro_model_overrides())  # the contract, not the speed
    assert (
        main(
            [
                "bench",
                "train",
                f"model.overrides={micro}",
                "--model",
                "tiny",
                "--batch-size",
                "4",
                "--steps",
                "2",
                "--warmup",
                "1",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    for key in (
        "batch_size",
        "precision",
        "samples_per_s",
        "step_ms_median",
        "embed_dim",
        "vision",
        "text",
    ):
        assert key in result
    assert result["batch_size"] == 4 and result["samples_per_s"] > 0
    # where and how it was measured: a figure is meaningless without CPU, flags and precision
    assert result["machine"]["precision"] == result["precision"] in ("fp32", "bf16")
    assert result["machine"]["cpu"] and "cpu_flags" in result["machine"]
