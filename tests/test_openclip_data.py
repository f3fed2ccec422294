"""Coming from OpenCLIP: its training data read as it is laid out today.

Fixtures follow open_clip_train's own conventions (``open_clip_train/params.py`` and
``data.py``): ``CsvDataset`` reads any table with ``pd.read_csv(sep=--csv-separator)``, default a
tab, columns ``--csv-img-key filepath`` and ``--csv-caption-key title``, image paths opened as
written (so relative to the working directory); ``get_wds_dataset`` takes ``.txt`` as the
caption. Plus the layouts OpenCLIP cannot read but its users have: captions in a ``.json`` field,
several per sample (a ``.json`` list, CLIP_benchmark's ``\\n``-joined ``.txt``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_data_training import micro_flags

import clipforge
from clipforge.cli.main import main
from clipforge.data.loader import LoaderConfig, build_loader, set_loader_epoch
from clipforge.data.preprocess import PreprocessConfig
from clipforge.data.record import decode_image
from clipforge.data.sources import open_source
from clipforge.data.tokenizer import Tokenizer
from clipforge.data.transforms import ImageTransform

from datagen import color_of, image_bytes, write_image_files, write_shard


def pixel(record):
    return decode_image(record).getpixel((0, 0))


def write_openclip_tsv(root, count=8, name="train.csv"):
    """OpenCLIP's default table: tab-separated (whatever the suffix), ``filepath``/``title``,
    paths relative to the directory the command runs in (``root``)."""
    names = write_image_files(root / "images", count)
    lines = ["filepath\ttitle", *(f"images/{n}\tpicture {i}" for i, n in enumerate(names))]
    table = root / "data" / name
    table.parent.mkdir(parents=True)
    table.write_text("\n".join(lines) + "\n")
    return table


def write_custom_csv(root, count=8, missing=()):
    """A ``;``-separated table with its own column names, paths relative to its folder."""
    names = write_image_files(root / "pics", count)
    rows = [
        f"pics/{'gone.png' if i in missing else n};a picture, number {i};{i}"
        for i, n in enumerate(names)
    ]
    table = root / "pairs.csv"
    table.write_text("\n".join(["img;text;row", *rows]) + "\n")
    return table


def multi_caption_sample(index):
    """A sample carrying its captions three ways: .txt lines, a .json list, a .json string."""
    captions = [f"caption {c} of picture {index}" for c in range(3)]
    return {
        "__key__": f"{index:06d}",
        "png": image_bytes(index),
        "txt": "\n".join(captions),
        "json": json.dumps({"caption": captions[0], "captions": captions, "index": index}),
    }


def write_multi_caption_shards(root, shards=2, per_shard=6):
    for shard in range(shards):
        samples = [multi_caption_sample(shard * per_shard + i) for i in range(per_shard)]
        write_shard(root / f"{shard:05d}.tar", samples)
    return root


def train_metrics(run):
    return json.loads((run / "metrics.json").read_text())


# --------------------------------------------------------------------------- CSV / TSV


def test_openclip_default_tsv_is_read_with_no_options(tmp_path, monkeypatch):
    table = write_openclip_tsv(tmp_path)  # tab-separated although named .csv
    monkeypatch.chdir(tmp_path)
    source = open_source("data/train.csv")
    assert len(source) == 8
    assert [source[i].captions for i in range(2)] == [("picture 0",), ("picture 1",)]
    # not in data/images (the table's folder), found in the working directory as OpenCLIP does
    assert source[3].image == tmp_path / "images" / "img3.png"
    assert [pixel(source[i]) for i in range(8)] == [color_of(i) for i in range(8)]
    monkeypatch.chdir(table.parent)  # the table's own folder wins over the working directory
    (table.parent / "images").mkdir()
    (table.parent / "images" / "img3.png").write_bytes(image_bytes(7))
    assert open_source(str(table))[3].image == table.parent / "images" / "img3.png"


def test_custom_keys_and_separator_in_the_query_by_either_name(tmp_path):
    table = write_custom_csv(tmp_path)
    by_flag_names = open_source(f"{table}?csv_img_key=img&csv_caption_key=text&csv_separator=;")
    by_own_names = open_source(f"{table}?image_column=img&caption_column=text&separator=;")
    for source in (by_flag_names, by_own_names):
        assert source[2].captions == ("a picture, number 2",)
        assert source[2].metadata == {"row": "2"}
        assert pixel(source[5]) == color_of(5)
    with pytest.raises(ValueError, match="'image_column' given twice: image_column, csv_img_key"):
        open_source(f"{table}?image_column=img&csv_img_key=img")


def test_train_from_openclip_tsv_and_from_custom_csv_flags_and_yaml(tmp_path, monkeypatch, capsys):
    write_openclip_tsv(tmp_path / "oc", count=8)
    monkeypatch.chdir(tmp_path / "oc")
    run = tmp_path / "run-tsv"
    argv = ["train", "--data", "data/train.csv", "--val", "none", "--steps", "2"]
    assert main([*argv, *micro_flags(run)]) == 0
    assert train_metrics(run)["steps"] == 2 and train_metrics(run)["skipped_records"]["count"] == 0

    table = write_custom_csv(tmp_path / "own")
    keys = ["--csv-img-key", "img", "--csv-caption-key", "text", "--csv-separator", ";"]
    run = tmp_path / "run-csv"
    argv = ["train", "--data", str(table), "--val", str(table), "--steps", "2", *keys]
    capsys.readouterr()
    assert main([*argv, *micro_flags(run)]) == 0  # the keys apply to --val too
    saved = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert (saved["csv_img_key"], saved["csv_separator"]) == ("img", ";")
    assert train_metrics(run)["skipped_records"]["count"] == 0
    embed = next(line for line in capsys.readouterr().out.splitlines() if "clipforge embed" in line)
    suggested = shlex.split(embed)[shlex.split(embed).index("--data") + 1]
    assert open_source(suggested)[2].captions == ("a picture, number 2",)  # reads it the same way

    config = tmp_path / "own.yaml"
    data = {"train": str(table), "val": None, "csv_img_key": "img", "csv_caption_key": "text"}
    config.write_text(yaml.safe_dump({"data": {**data, "csv_separator": ";"}}))
    run = tmp_path / "run-yaml"
    assert main(["train", "--config", str(config), "--steps", "1", *micro_flags(run)]) == 0
    assert train_metrics(run)["steps"] == 1


def test_a_key_that_is_not_a_column_is_one_line_listing_the_columns(tmp_path, capsys):
    table = write_custom_csv(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "--data", str(table), "--csv-separator", ";", "--csv-img-key", "filepath"]
    assert main([*argv, "--steps", "1", *micro_flags(run)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("clipforge train: error: ")
    assert str(table) in error and "'filepath'" in error and "--csv-img-key" in error
    assert "['img', 'text', 'row']" in error
    listed = r"no column 'caption' or 'title'.*\['img', 'text', 'row'\]"
    with pytest.raises(ValueError, match=listed):
        open_source(f"{table}?csv_img_key=img&csv_separator=;")  # neither default caption


def test_missing_image_is_counted_and_strict_names_the_places_tried(tmp_path):
    table = write_custom_csv(tmp_path / "data", count=8, missing=(3,))
    keys = ["--csv-img-key", "img", "--csv-caption-key", "text", "--csv-separator", ";"]
    run = tmp_path / "run"
    argv = ["train", "--data", str(table), "--val", "none", "--steps", "2", *keys]
    assert main([*argv, *micro_flags(run)]) == 0
    skipped = train_metrics(run)["skipped_records"]
    assert skipped["count"] == 1 and skipped["examples"][0]["key"] == "3"
    in_folder, in_cwd = table.parent / "pics" / "gone.png", tmp_path / "pics" / "gone.png"
    assert str(in_folder) in skipped["examples"][0]["reason"]

    strict_run = tmp_path / "strict"
    done = subprocess.run(
        [sys.executable, "-m", "clipforge", *argv, "--strict", *micro_flags(strict_run)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(clipforge.__file__).parents[1])},
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if not line.startswith("[clipforge] ")]
    assert len(error) == 1 and error[0].startswith("clipforge train: error: ")
    assert "'3'" in error[0] and "'pics/gone.png'" in error[0]
    assert f"{in_folder} (the table's folder) and {in_cwd} (the working directory)" in error[0]


# ---------------------------------------------------------------------------- WebDataset


def test_wds_caption_key_json_field_list_and_lines(tmp_path):
    shards = write_multi_caption_shards(tmp_path / "shards")
    spec = f"wds:{shards}?shuffle_buffer=0"
    three = tuple(f"caption {c} of picture 4" for c in range(3))
    by_default = {r.key: r for r in open_source(spec)}["000004"]
    assert by_default.captions == ("\n".join(three),)  # one caption, as OpenCLIP reads .txt
    for query, expected in (
        ("caption_key=json:caption", three[:1]),
        ("wds_caption_key=json:captions", three),
        ("caption_key=txt&caption_lines=true", three),
        ("wds_caption_key=.txt&wds_caption_lines=1", three),
    ):
        records = {r.key: r for r in open_source(f"{spec}&{query}")}
        assert len(records) == 12 and records["000004"].captions == expected, query
        assert records["000004"].metadata["index"] == 4  # the .json is still metadata
    assert list(open_source(f"{spec}&caption_key=json:captions").captions(4)) == [
        f"caption {c} of picture 0" for c in range(3)
    ] + ["caption 0 of picture 1"]


def test_wds_caption_key_absent_from_the_samples_names_what_they_hold(tmp_path):
    shards = write_multi_caption_shards(tmp_path / "shards")
    with pytest.raises(ValueError) as caught:
        open_source(f"wds:{shards}?caption_key=json:title")
    message = str(caught.value)
    assert "\n" not in message and "'json:title'" in message and "--wds-caption-key" in message
    assert "['json', 'png', 'txt']" in message and "['caption', 'captions', 'index']" in message
    with pytest.raises(ValueError, match="members are|has members"):
        open_source(f"wds:{shards}?caption_key=caption")
    with pytest.raises(ValueError, match="json:FIELD"):
        open_source(f"wds:{shards}?caption_key=json")


def test_train_on_wds_json_captions_from_the_cli(tmp_path):
    shards = write_multi_caption_shards(tmp_path / "shards")
    run = tmp_path / "run"
    argv = ["train", "--data", f"wds:{shards}", "--val", "none", "--steps", "2"]
    assert main([*argv, "--wds-caption-key", "json:captions", *micro_flags(run)]) == 0
    assert train_metrics(run)["steps"] == 2 and train_metrics(run)["skipped_records"]["count"] == 0
    tokenizer = Tokenizer.load(run)  # learned from the .json captions, not the .txt
    assert len(tokenizer(["caption 2 of picture 7"])[0].nonzero()) > 0


def loader_captions(source, epoch, skip=0, batch_size=4):
    tokenizer = Tokenizer.train(["caption of picture"] * 4, vocab_size=300, context_length=16)
    transform = ImageTransform(PreprocessConfig(image_size=8), train=True)
    config = LoaderConfig(batch_size=batch_size, workers=0, seed=3, drop_last=False)
    loader = build_loader(source, transform, tokenizer, config)
    discard = set_loader_epoch(loader, epoch, skip)
    batches = list(loader)[discard:]
    return [(key, caption) for b in batches for key, caption in zip(b.keys, b.captions)]


@pytest.mark.parametrize("kind", ["wds", "parquet"])
def test_one_caption_per_step_is_drawn_from_seed_epoch_sample_and_survives_resume(kind, tmp_path):
    shards = write_multi_caption_shards(tmp_path / "shards", shards=2, per_shard=8)
    if kind == "wds":
        spec = f"wds:{shards}?caption_key=json:captions&shuffle_buffer=4"
    else:
        from datagen import write_table

        records = list(open_source(f"wds:{shards}?caption_key=json:captions&shuffle_buffer=0"))
        columns = {
            "key": [r.key for r in records],
            "image": [r.image for r in records],
            "caption": [list(r.captions) for r in records],
        }
        spec = str(write_table(tmp_path / "multi.parquet", columns))
    first = loader_captions(open_source(spec), epoch=0)
    assert first == loader_captions(open_source(spec), epoch=0)  # deterministic
    assert len(first) == 16
    for key, caption in first:
        assert caption in {f"caption {c} of picture {int(key)}" for c in range(3)}
    assert len({caption.split()[1] for _, caption in first}) > 1  # not always the first
    second = loader_captions(open_source(spec), epoch=1)
    assert dict(second) != dict(first)  # a new draw each epoch
    resumed = loader_captions(open_source(spec), epoch=1, skip=8)
    assert resumed == second[8:]  # exact resume: same samples, same captions


def test_flag_names_are_the_same_everywhere():
    from clipforge.cli.flags import DATA_KEY_FLAGS
    from clipforge.data.sources.base import FLAG_OPTION_NAMES
    from clipforge.training.config import SOURCE_OPTION_FIELDS, DataSection

    assert set(FLAG_OPTION_NAMES) == set(DATA_KEY_FLAGS) == set(SOURCE_OPTION_FIELDS)
    assert DataSection(csv_img_key="filepath").source_options() == {"csv_img_key": "filepath"}
    with pytest.raises(ValueError, match="data.wds_caption_lines"):
        DataSection(wds_caption_lines="yes")
