"""Training on the user's own data from the command line: a WebDataset stream from scratch (the
tokenizer learns from a sample of the stream's captions) and the default validation split."""

from __future__ import annotations

import json

from datagen import write_shards
from synthetic import micro_model_overrides

from clipforge.cli.main import main
from clipforge.data.sources.webdataset import WebDatasetSource
from clipforge.data.tokenizer import Tokenizer


def micro_flags(run) -> list[str]:
    return ["--model", "tiny", "--out", str(run), "--batch-size", "4", "--workers", "0",
            "--no-progress", "model.tokenizer_vocab_size=300",
            *(f"model.overrides.{key}={value}" for key, value in micro_model_overrides().items())]


def test_stream_captions_sample_is_the_first_n_in_listed_order_on_every_rank(tmp_path):
    expected = write_shards(tmp_path / "shards", shards=3, per_shard=4)
    first = list(expected.values())[:6]
    for rank in (0, 1):      # rank 1 of 2 reads other shards in training, the same captions here
        source = WebDatasetSource(str(tmp_path / "shards"), rank=rank, world_size=2)
        assert list(source.captions(6)) == first
    assert len(list(source.captions(100))) == 12


def test_train_from_scratch_on_a_webdataset_stream(tmp_path, capsys):
    expected = write_shards(tmp_path / "shards", shards=2, per_shard=6)
    run = tmp_path / "run"
    code = main(["train", "--data", f"wds:{tmp_path / 'shards'}/{{00000..00001}}.tar",
                 "--val", "none", "--steps", "2", *micro_flags(run)])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2
    tokenizer = Tokenizer.load(run)             # learned from the stream's own captions
    assert "sample" in tokenizer.backend.get_vocab() or "Ġsample" in tokenizer.backend.get_vocab()
    ids = tokenizer([next(iter(expected.values()))])[0]
    assert (ids != tokenizer.pad_id).sum() <= 8       # "caption of sample 0": few merged tokens
