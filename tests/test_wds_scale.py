"""WebDataset at training scale: epochs counted in samples, exact mid-epoch resume of a stream,
and the ranks × workers split through the real loader. (Shard reading, the split of shards over
reader slots and resampling are tested in test_sources.py.)"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from clipforge.data.loader import LoaderConfig, build_loader
from clipforge.data.sources import SourceOptions
from clipforge.data.sources.webdataset import WebDatasetSource
from clipforge.data.tokenizer import Tokenizer
from clipforge.data.transforms import ImageTransform
from clipforge.models import create_model, model_config
from clipforge.models.io import save_model_dir
from clipforge.training import TrainConfig, train
from clipforge.training.setup import set_dotted

from datagen import write_shards
from synthetic import micro_model_overrides


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("wds")
    expected = write_shards(root / "shards", shards=6, per_shard=8)
    return root, expected


@pytest.fixture(scope="module")
def start_model(shards):
    """Training on a stream needs a tokenizer made beforehand: a fresh micro model dir."""
    root, expected = shards
    config = model_config("tiny")
    for key, value in micro_model_overrides().items():
        set_dotted(config, key, value)
    tokenizer = Tokenizer.train(
        expected.values(), vocab_size=300, context_length=config.text.context_length
    )
    config.text.vocab_size = tokenizer.vocab_size
    config.text.eos_token_id, config.text.pad_token_id = tokenizer.eot_id, tokenizer.pad_id
    return save_model_dir(root / "start", create_model(config), tokenizer)


def stream_config(out, start_model, shards, data: dict, **run) -> TrainConfig:
    root, _ = shards
    return TrainConfig.from_dict(
        {
            "model": {"name": str(start_model)},
            "data": {
                "train": f"wds:{root / 'shards'}?resampled=true&shuffle_buffer=4",
                "batch_size": 4,
                "workers": 2,
                "val": None,
                **data,
            },
            "run": {"out": str(out), "log_every": 1, "progress": False, **run},
        }
    )


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_endless_resampled_stream_has_epochs_of_epoch_samples(tmp_path, shards, start_model):
    config = stream_config(tmp_path / "run", start_model, shards, {"epoch_samples": 12}, epochs=2)
    result = train(config)
    assert result.steps == 6  # 2 epochs × 12 samples / 4
    logged = rows(tmp_path / "run")
    assert [r["epoch"] for r in logged] == [0, 0, 0, 1, 1, 1]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["samples_seen"] == 24


def test_epochs_of_a_stream_need_a_size(tmp_path, shards, start_model):
    config = stream_config(tmp_path / "run", start_model, shards, {}, epochs=1)
    with pytest.raises(ValueError, match="epoch_samples"):
        train(config)


def test_stream_resumes_mid_epoch_exactly(tmp_path, shards, start_model):
    """Two workers, a shuffle buffer, resampled shards: after a resume at step 3 each worker
    skips the records of the batches it had made, so the loss curve goes on unchanged."""
    full = tmp_path / "full"
    train(stream_config(full, start_model, shards, {}, steps=7, save_every=3, keep_checkpoints=5))
    broken = tmp_path / "broken"
    shutil.copytree(full, broken)
    shutil.rmtree(broken / "checkpoints" / "step-00000006")
    shutil.rmtree(broken / "checkpoints" / "step-00000007")
    (broken / "model.safetensors").unlink()
    train(stream_config(broken, start_model, shards, {}, steps=7, save_every=3, resume=True))
    assert [r["loss"] for r in rows(broken)] == [r["loss"] for r in rows(full)]


def test_two_ranks_two_workers_read_each_sample_once_through_the_loader(shards, start_model):
    root, expected = shards
    tokenizer = Tokenizer.load(start_model)
    transform = ImageTransform(model_config("tiny").preprocess, train=True)
    seen = Counter()
    for rank in range(2):
        source = WebDatasetSource(
            str(root / "shards"), SourceOptions(shuffle_buffer=4), rank=rank, world_size=2
        )
        loader = build_loader(
            source,
            transform,
            tokenizer,
            LoaderConfig(batch_size=4, workers=2, drop_last=False),
            rank=rank,
            world_size=2,
        )
        for batch in loader:
            seen.update(batch.keys)
    assert set(seen) == set(expected) and set(seen.values()) == {1}
