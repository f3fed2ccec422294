"""Training on the user's own data from the command line: a WebDataset stream from scratch (the
tokenizer learns from a sample of the stream's captions) and the default validation split."""

from __future__ import annotations

import json

from clipforge.cli.main import main
from clipforge.data.sources.webdataset import WebDatasetSource
from clipforge.data.tokenizer import Tokenizer

from datagen import write_shards
from synthetic import micro_model_overrides


def micro_flags(run) -> list[str]:
    return [
        "--model",
        "tiny",
        "--out",
        str(run),
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--no-progress",
        "model.tokenizer_vocab_size=300",
        *(f"model.overrides.{key}={value}" for key, value in micro_model_overrides().items()),
    ]


def test_stream_captions_sample_is_the_first_n_in_listed_order_on_every_rank(tmp_path):
    expected = write_shards(tmp_path / "shards", shards=3, per_shard=4)
    first = list(expected.values())[:6]
    for rank in (0, 1):  # rank 1 of 2 reads other shards in training, the same captions here
        source = WebDatasetSource(str(tmp_path / "shards"), rank=rank, world_size=2)
        assert list(source.captions(6)) == first
    assert len(list(source.captions(100))) == 12


def test_train_from_scratch_on_a_webdataset_stream(tmp_path, capsys):
    expected = write_shards(tmp_path / "shards", shards=2, per_shard=6)
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            f"wds:{tmp_path / 'shards'}/{{00000..00001}}.tar",
            "--val",
            "none",
            "--steps",
            "2",
            *micro_flags(run),
        ]
    )
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2
    tokenizer = Tokenizer.load(run)  # learned from the stream's own captions
    assert "sample" in tokenizer.backend.get_vocab() or "Ġsample" in tokenizer.backend.get_vocab()
    ids = tokenizer([next(iter(expected.values()))])[0]
    assert (ids != tokenizer.pad_id).sum() <= 8  # "caption of sample 0": few merged tokens


def write_pairs_csv(root, count):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from synthetic import COLORS, SHAPES, draw

    (root / "images").mkdir(parents=True)
    paths, captions = [], []
    for index in range(count):
        color, shape = list(COLORS)[index % 4], SHAPES[index % 3]
        draw(color, shape, jitter=index % 3).resize((16, 16)).save(root / "images" / f"{index}.png")
        paths.append(f"images/{index}.png")
        captions.append(f"a {color} {shape} number {index}")
    pacsv.write_csv(pa.table({"image": paths, "caption": captions}), root / "pairs.csv")
    return root / "pairs.csv"


def test_holdout_is_deterministic_disjoint_and_sized():
    from clipforge.data.holdout import holdout_size, split_holdout
    from clipforge.data.sources.base import MapSource

    class Numbers(MapSource):
        def __init__(self, count):
            self.count = count

        def __len__(self):
            return self.count

        def __getitem__(self, index):
            return index

    assert [holdout_size(n) for n in (99, 100, 10_000, 50_000)] == [0, 5, 500, 1000]
    kept, held = split_holdout(Numbers(400))
    _, again_held = split_holdout(Numbers(400))
    assert held.indices == again_held.indices and len(held) == 20
    assert sorted(kept.indices + held.indices) == list(range(400))
    assert held.indices != list(range(20))  # spread, not the first rows
    assert split_holdout(Numbers(50))[1] is None


def test_own_csv_without_val_validates_on_a_held_out_split_not_on_emoji(tmp_path, capsys):
    table = write_pairs_csv(tmp_path / "data", 100)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                f"csv:{table}",
                "--epochs",
                "1",
                *micro_flags(run),
                "--batch-size",
                "5",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "validation: 5 records held out of the training data" in printed
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1]["step"] == 95 // 5  # held-out rows not trained on
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert "image_retrieval_recall@1" in evals[-1]
    assert "acc1" not in evals[-1]  # no zero-shot over the emoji classes


def test_too_little_data_for_a_held_out_split_says_so_and_skips_validation(tmp_path, capsys):
    table = write_pairs_csv(tmp_path / "data", 12)
    run = tmp_path / "run"
    assert main(["train", "--data", f"csv:{table}", "--steps", "1", *micro_flags(run)]) == 0
    assert "validation: none (12 records are under 100" in capsys.readouterr().out
    assert not (run / "eval.jsonl").exists()
