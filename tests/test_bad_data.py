"""Bad training and embedding data: decompression bombs, truncated shards in a dropped partial
batch, a non-UTF-8 CSV row, an empty class folder. Each is skipped and counted, never fatal."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from PIL import Image, ImageFile

from clipforge.data.loader import LoaderConfig, build_loader
from clipforge.data.preprocess import PreprocessConfig
from clipforge.data.record import BadRecordError, RawRecord, decode_image
from clipforge.data.sources import open_source
from clipforge.data.sources.base import MapSource
from clipforge.data.tokenizer import Tokenizer
from clipforge.data.transforms import ImageTransform, eval_transform

from datagen import image_bytes, truncate_shard_inside, write_shards


def loader_over(source, batch_size=4, drop_last=False, train=False, workers=0):
    tokenizer = Tokenizer.train(["a picture of a thing"] * 4, vocab_size=300, context_length=16)
    transform = (
        ImageTransform(PreprocessConfig(image_size=8), train=True)
        if train
        else eval_transform(PreprocessConfig(image_size=8))
    )
    config = LoaderConfig(
        batch_size=batch_size,
        workers=workers,
        drop_last=drop_last,
        prefetch_factor=2 if workers else 4,
        shuffle=False,
    )
    return build_loader(source, transform, tokenizer, config)


class OneRecord(MapSource):
    def __init__(self, record):
        self.record = record

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.record


def skipped_and_good(loader):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader)
    skipped = {key: reason for batch in batches for key, reason in batch.skipped}
    return skipped, [key for batch in batches for key in batch.keys]


# ---------------------------------------------------------------------- decompression bombs


def test_importing_clipforge_data_leaves_pillow_globals_alone():
    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS\n"
        "import clipforge.data.record, clipforge.data.loader, clipforge.data.sources\n"
        "import clipforge.data.builtin, clipforge.evaluation.embedding\n"
        "print(before, Image.MAX_IMAGE_PIXELS)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == out[1] == "89478485"  # Pillow's own default, untouched


def test_image_over_pillows_limit_is_a_skipped_record_refused_before_decoding(
    tmp_path, monkeypatch
):
    # 10,000 × 9,500 = 95 MP: over Pillow's 89.5 MP limit, where Pillow itself only warns
    bomb = tmp_path / "pairs" / "bomb.png"
    bomb.parent.mkdir()
    Image.new("1", (10_000, 9_500)).save(bomb)  # 11 kB on disk, 285 MB once decoded to RGB
    bomb.with_suffix(".txt").write_text("a very large blank page")
    (tmp_path / "pairs" / "fine.png").write_bytes(image_bytes(0))
    (tmp_path / "pairs" / "fine.txt").write_text("a red square")

    def no_decoding(self):
        raise AssertionError("decoded an image over the pixel limit")

    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", no_decoding)
        with pytest.raises(BadRecordError, match="decompression-bomb limit of 89,478,485"):
            decode_image(RawRecord("bomb", bomb, ("x",)))
    skipped, good = skipped_and_good(loader_over(open_source(f"folder:{tmp_path / 'pairs'}")))
    assert good == ["fine"]
    assert list(skipped) == ["bomb"] and "95,000,000 pixels" in skipped["bomb"]


def test_pixel_limit_is_read_per_image_and_applies_to_jpeg_drafts(monkeypatch):
    # the loader opens big JPEGs with a reduced-scale draft; the limit is on the real size
    record = RawRecord("photo", image_bytes(1, "JPEG", size=64), ("a photo",))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)  # an application's choice
    assert decode_image(record).size == (64, 64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 - 1)
    with pytest.raises(BadRecordError, match="4,096 pixels"):
        decode_image(record)

    skipped, good = skipped_and_good(loader_over(OneRecord(record), train=True))
    assert good == [] and "decompression-bomb" in skipped["photo"]


# ------------------------------------------------- a broken shard at the end of the stream


@pytest.mark.parametrize("workers", [0, 2])
def test_broken_shard_marker_in_the_dropped_partial_batch_is_still_counted(tmp_path, workers):
    # shard 00000: 4 good samples, a full batch; shard 00001: 1 good sample, then the marker of
    # its truncation: a partial batch (in one reader, or in worker 1 of 2) that drop_last
    # throws away, and with it the only report of the broken shard
    write_shards(tmp_path / "shards", shards=2, per_shard=4)
    broken = tmp_path / "shards" / "00001.tar"
    truncate_shard_inside(broken, "000010001.jpg")
    source = open_source(f"wds:{tmp_path / 'shards'}", shuffle_buffer=0)
    loader = loader_over(source, batch_size=4, drop_last=True, workers=workers)
    skipped, good = skipped_and_good(loader)
    assert list(skipped) == [f"shard-error:{broken}"]
    assert sorted(good) == [f"00000{item:04d}" for item in range(4)]  # whole batches only


def test_stream_run_reports_a_broken_last_shard_in_skipped_records(tmp_path):
    import json

    from test_data_training import micro_flags

    from clipforge.cli.main import main

    write_shards(tmp_path / "shards", shards=2, per_shard=4)
    truncate_shard_inside(tmp_path / "shards" / "00001.tar", "000010001.jpg")
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                f"wds:{tmp_path / 'shards'}?shuffle_buffer=0",
                "--val",
                "none",
                "--steps",
                "2",
                *micro_flags(run),
            ]
        )
        == 0
    )  # step 2: the last batch
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["skipped_records"]["count"] == 1
    assert summary["skipped_records"]["examples"][0]["key"].endswith("00001.tar")


# ----------------------------------------------------------------- a non-UTF-8 CSV row


def test_non_utf8_byte_in_one_csv_row_skips_that_row_only(tmp_path):
    for index in range(3):
        (tmp_path / f"{index}.png").write_bytes(image_bytes(index))
    (tmp_path / "pairs.csv").write_bytes(
        b"image,caption\n0.png,a red square\n1.png,caf\xe9 au lait\n2.png,a blue square\n"
    )
    source = open_source(f"csv:{tmp_path / 'pairs.csv'}")
    assert len(source) == 3
    assert source[2].captions == ("a blue square",)
    skipped, good = skipped_and_good(loader_over(source))
    assert good == ["0", "2"]
    assert list(skipped) == ["1"]
    assert "row 1" in skipped["1"] and "'caption'" in skipped["1"] and "UTF-8" in skipped["1"]
    with pytest.raises(BadRecordError, match="row 1"):  # embedding skips it too
        decode_image(source[1])


# --------------------------------------------------------------- an empty class folder


def test_empty_class_folder_is_reported_not_counted_as_a_class(tmp_path):
    for name, count in (("cat", 2), ("dog", 0), ("fish", 1)):
        (tmp_path / name).mkdir()
        for index in range(count):
            (tmp_path / name / f"{index}.png").write_bytes(image_bytes(index))
    with pytest.warns(UserWarning, match="left out of the classes: dog"):
        source = open_source(f"classfolder:{tmp_path}")
    assert source.class_names() == ["cat", "fish"]
    assert source.empty_classes == ["dog"]
    assert [source[i].metadata["label"] for i in range(len(source))] == [0, 0, 1]
