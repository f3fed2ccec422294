"""File-based data sources: folder, CSV/TSV/Parquet tables, WebDataset shards, bad records."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from clipforge.data.record import BadRecordError, clean_captions, decode_image
from clipforge.data.sources import SourceOptions, open_source
from clipforge.data.sources import webdataset as wds_source
from clipforge.data.sources.folder import FolderSource
from clipforge.data.sources.table import TableSource
from clipforge.data.sources.webdataset import WebDatasetSource

from datagen import (
    RANDOM_BYTES,
    color_of,
    image_bytes,
    truncate_shard_inside,
    truncated_jpeg,
    write_folder,
    write_image_files,
    write_shards,
    write_table,
)


def pixel(record):
    return decode_image(record).getpixel((4, 4))


def close_to(rgb, expected, tolerance=12):  # JPEG shifts colours a little
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, expected))


# ----------------------------------------------------------------------------------- folder


def test_folder_lists_sorted_records_with_captions_and_json(tmp_path):
    expected = write_folder(tmp_path / "pairs", count=5)
    source = open_source(str(tmp_path / "pairs"))  # a bare directory → folder
    assert isinstance(source, FolderSource) and len(source) == 5
    records = [source[i] for i in range(len(source))]
    assert [r.key for r in records] == sorted(expected)  # 00000/… before 00001/…
    assert [r.key for r in records][:3] == ["00000/000000000", "00000/000000002", "00000/000000004"]
    for record in records:
        assert record.captions == (expected[record.key],)
        index = int(record.key.split("/")[1])
        assert record.metadata == {"index": index, "width": 8}
        assert close_to(pixel(record), color_of(index))
    assert sorted(source.captions()) == sorted(expected.values())


def test_folder_missing_caption_and_corrupt_image_are_bad_records(tmp_path):
    write_folder(tmp_path, count=4, missing_caption=(2,), corrupt=(3,), with_json=False)
    source = FolderSource(str(tmp_path), SourceOptions())
    by_key = {source[i].key: source[i] for i in range(len(source))}
    no_caption = by_key["00000/000000002"]
    assert no_caption.captions == () and no_caption.metadata == {}
    with pytest.raises(BadRecordError, match="empty caption") as caught:
        clean_captions(no_caption)
    assert caught.value.key == "00000/000000002"
    with pytest.raises(BadRecordError, match="cannot decode") as caught:
        decode_image(by_key["00001/000000003"])
    assert caught.value.key == "00001/000000003"
    assert clean_captions(by_key["00001/000000001"]) == ["picture number 1"]


def test_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FolderSource(str(tmp_path / "nowhere"), SourceOptions())
    write_image_files(tmp_path / "cats", 2)
    with pytest.raises(ValueError, match="no caption files.*classfolder"):
        FolderSource(str(tmp_path), SourceOptions())


# ------------------------------------------------------------------------------------ tables


def test_csv_relative_and_absolute_paths_keys_and_metadata(tmp_path):
    names = write_image_files(tmp_path / "images", 3)
    absolute = str((tmp_path / "images" / names[2]).resolve())
    table = write_table(
        tmp_path / "data" / "pairs.csv",
        {
            "id": ["007", "008", "009"],
            "image": [f"../images/{names[0]}", f"../images/{names[1]}", absolute],
            "caption": ['a "red", square', "1984", "third"],
            "source": ["web", "web", "book"],
        },
    )
    source = open_source(str(table))
    assert isinstance(source, TableSource) and len(source) == 3
    first = source[0]
    assert first.key == "007"  # text, not the number 7
    assert first.captions == ('a "red", square',)
    assert first.metadata == {"source": "web"}
    assert source[1].captions == ("1984",)  # not parsed as an int
    assert source[2].image == Path(absolute)
    assert [pixel(source[i]) for i in range(3)] == [color_of(i) for i in range(3)]
    assert list(source.captions()) == ['a "red", square', "1984", "third"]
    with pytest.raises(IndexError):
        source[3]


def test_spec_options_and_row_number_keys(tmp_path, monkeypatch):
    write_image_files(tmp_path, 2)
    write_table(tmp_path / "data.csv", {"path": ["img0.png", "img1.png"], "text": ["zero", "one"]})
    monkeypatch.chdir(tmp_path)
    source = open_source("data.csv?caption_column=text&image_column=path")
    assert [source[i].key for i in range(2)] == ["0", "1"]
    assert source[1].captions == ("one",) and source[1].metadata == {}
    assert pixel(source[1]) == color_of(1)


def test_tsv_by_suffix_prefix_and_sniffing(tmp_path):
    write_image_files(tmp_path, 2)
    columns = {"image": ["img0.png", "img1.png"], "caption": ['"quoted" start', "plain, comma"]}
    tsv = write_table(tmp_path / "pairs.tsv", columns)
    for spec in (str(tsv), f"tsv:{tsv}", f"table:{tsv}"):
        source = open_source(spec)
        assert [source[i].captions[0] for i in range(2)] == ['"quoted" start', "plain, comma"]
    txt = tmp_path / "pairs.txt"
    txt.write_bytes(tsv.read_bytes())
    assert open_source(f"tsv:{txt}")[1].captions == ("plain, comma",)  # sniffed tab
    semicolon = write_table(
        tmp_path / "semi.txt", {"image": ["img0.png"], "caption": ["x"]}, separator=";"
    )
    assert open_source(f"csv:{semicolon}?separator=;")[0].captions == ("x",)


def test_parquet_bytes_caption_lists_and_extra_caption_columns(tmp_path):
    table = write_table(
        tmp_path / "pairs.parquet",
        {
            "key": ["a", "b", "c"],
            "image": [image_bytes(0), image_bytes(1, "JPEG"), None],
            "caption": [["first a", "second a"], ["only b"], None],
            "synthetic": ["a synthetic a", None, "a synthetic c"],
            "width": [8, 8, 8],
        },
    )
    source = open_source(f"parquet:{table}?extra_caption_columns=synthetic")
    a, b, c = (source[i] for i in range(3))
    assert a.key == "a" and isinstance(a.image, bytes)
    assert a.captions == ("first a", "second a", "a synthetic a")
    assert a.metadata == {"synthetic": "a synthetic a", "width": 8}
    assert b.captions == ("only b",) and b.metadata["synthetic"] is None
    assert pixel(a) == color_of(0) and close_to(pixel(b), color_of(1))
    assert c.captions == ("a synthetic c",) and c.image == b""
    with pytest.raises(BadRecordError, match="cannot decode") as caught:
        decode_image(c)
    assert caught.value.key == "c"
    assert list(source.captions()) == [
        "first a",
        "second a",
        "only b",
        "a synthetic a",
        "a synthetic c",
    ]


def test_parquet_hugging_face_image_struct(tmp_path):
    write_image_files(tmp_path, 2)
    table = write_table(
        tmp_path / "hf.parquet",
        {
            "image": [{"bytes": image_bytes(3), "path": None}, {"bytes": None, "path": "img1.png"}],
            "caption": ["from bytes", "from path"],
        },
    )
    source = TableSource(str(table), SourceOptions())
    assert pixel(source[0]) == color_of(3) and pixel(source[1]) == color_of(1)


def test_missing_column_error_names_file_column_and_columns(tmp_path):
    table = write_table(tmp_path / "pairs.csv", {"url": ["x.png"], "text": ["hi"]})
    with pytest.raises(ValueError) as caught:
        open_source(str(table))
    message = str(caught.value)
    assert str(table) in message and "'image'" in message and "['url', 'text']" in message
    with pytest.raises(ValueError, match="'alt'.*extra_caption_columns"):
        open_source(f"{table}?image_column=url&caption_column=text&extra_caption_columns=alt")
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        open_source(str(tmp_path / "nothere.csv"))
    urls = write_table(tmp_path / "urls.csv", {"image": ["https://x.org/a.jpg"], "caption": ["a"]})
    with pytest.raises(ValueError, match="holds URLs"):
        open_source(str(urls))


def test_table_bad_records_missing_file_corrupt_empty_caption(tmp_path):
    write_image_files(tmp_path, 1)
    (tmp_path / "truncated.jpg").write_bytes(truncated_jpeg())
    (tmp_path / "random.png").write_bytes(RANDOM_BYTES)
    table = write_table(
        tmp_path / "pairs.csv",
        {
            "key": ["ok", "gone", "cut", "noise", "blank"],
            "image": ["img0.png", "missing.png", "truncated.jpg", "random.png", "img0.png"],
            "caption": ["fine", "x", "x", "x", "   "],
        },
    )
    source = open_source(str(table))
    records = {source[i].key: source[i] for i in range(len(source))}
    assert clean_captions(records["ok"]) == ["fine"] and pixel(records["ok"]) == color_of(0)
    for key, reason in (
        ("gone", "not found"),
        ("cut", "cannot decode"),
        ("noise", "cannot decode"),
    ):
        with pytest.raises(BadRecordError, match=reason) as caught:
            decode_image(records[key])
        assert caught.value.key == key and key in str(caught.value)
    with pytest.raises(BadRecordError, match="'blank': empty caption"):
        clean_captions(records["blank"])


# ------------------------------------------------------------------------------- webdataset


def read_all(source):
    return list(source)


def test_wds_reads_every_sample_in_order(tmp_path):
    expected = write_shards(tmp_path / "shards", shards=3, per_shard=3)
    source = open_source(f"wds:{tmp_path}/shards/{{00000..00002}}.tar?shuffle_buffer=0")
    assert isinstance(source, WebDatasetSource) and len(source.shards) == 3
    records = read_all(source)
    assert [r.key for r in records] == sorted(expected)
    for index, record in enumerate(records):
        assert record.captions == (expected[record.key],)
        assert record.metadata["index"] == index
        assert record.metadata["url"].endswith(f"{index // 3:05d}.tar")
        assert close_to(pixel(record), color_of(index))
    assert source.shard_errors == 0 and source.num_samples is None


def test_wds_shard_list_forms_and_sample_count(tmp_path):
    expected = write_shards(tmp_path / "shards", shards=3, per_shard=2)
    (tmp_path / "shards" / "sizes.json").write_text(
        json.dumps({f"{i:05d}.tar": 2 for i in range(3)})
    )
    listing = tmp_path / "list.txt"
    listing.write_text("# shards\nshards/00000.tar\n\nshards/00002.tar\n")
    by_file = WebDatasetSource(str(listing), SourceOptions(shuffle_buffer=0))
    assert by_file.shards == [
        str(tmp_path / "shards" / "00000.tar"),
        str(tmp_path / "shards" / "00002.tar"),
    ]
    assert [r.key for r in by_file] == ["000000000", "000000001", "000020000", "000020001"]
    assert by_file.num_samples == 4
    by_dir = open_source(f"wds:{tmp_path / 'shards'}?shuffle_buffer=0")
    assert {r.key for r in by_dir} == set(expected) and by_dir.num_samples == 6
    bare = open_source(f"{tmp_path}/shards/{{00000..00001}}.tar")  # guessed: brace → wds
    assert isinstance(bare, WebDatasetSource) and len(bare.shards) == 2
    with pytest.raises(FileNotFoundError, match="none of its 2 shards"):
        WebDatasetSource(f"{tmp_path}/nope/{{0..1}}.tar", SourceOptions())


def fake_worker(monkeypatch, worker_id, workers):
    monkeypatch.setattr(
        wds_source, "get_worker_info", lambda: SimpleNamespace(id=worker_id, num_workers=workers)
    )


@pytest.mark.parametrize("shuffle_buffer", [0, 4])
def test_wds_split_over_ranks_and_workers_no_duplicates_no_gaps(
    tmp_path, monkeypatch, shuffle_buffer
):
    expected = write_shards(tmp_path, shards=8, per_shard=2)
    seen, per_reader = [], []
    for rank in range(2):
        source = WebDatasetSource(
            str(tmp_path), SourceOptions(shuffle_buffer=shuffle_buffer), rank=rank, world_size=2
        )
        source.set_epoch(3)
        for worker in range(2):
            fake_worker(monkeypatch, worker, 2)
            keys = [r.key for r in source]
            per_reader.append(keys)
            seen.extend(keys)
    assert sorted(seen) == sorted(expected)  # no gaps, no repeats
    assert [len(k) for k in per_reader] == [4, 4, 4, 4]  # two shards each


class AsDataset(torch.utils.data.IterableDataset):
    """What the loader's StreamDataset does, minus decoding."""

    def __init__(self, source):
        self.source = source

    def __iter__(self):
        return iter(self.source)


def test_wds_split_with_real_dataloader_workers(tmp_path):
    expected = write_shards(tmp_path, shards=8, per_shard=2)
    seen = []
    for rank in range(2):
        source = WebDatasetSource(
            str(tmp_path), SourceOptions(shuffle_buffer=0), rank=rank, world_size=2
        )
        loader = torch.utils.data.DataLoader(
            AsDataset(source), batch_size=None, num_workers=2, collate_fn=lambda record: record
        )
        seen.extend(record.key for record in loader)
    assert sorted(seen) == sorted(expected)


def test_wds_fewer_shards_than_readers_warns(tmp_path, monkeypatch):
    write_shards(tmp_path, shards=1, per_shard=2)
    source = WebDatasetSource(str(tmp_path), SourceOptions(shuffle_buffer=0), rank=1, world_size=2)
    with pytest.warns(UserWarning, match="reader 1 gets none"):
        assert read_all(source) == []


def test_wds_shuffle_is_seeded_by_seed_and_epoch(tmp_path):
    expected = write_shards(tmp_path, shards=4, per_shard=5)

    def order(seed, epoch):
        source = WebDatasetSource(str(tmp_path), SourceOptions(shuffle_buffer=8, seed=seed))
        source.set_epoch(epoch)
        return [r.key for r in source]

    first = order(0, 0)
    assert sorted(first) == sorted(expected)
    assert first != sorted(expected)
    assert order(0, 0) == first  # repeatable
    assert order(0, 1) != first and order(1, 0) != first  # reseeded
    assert sorted(order(0, 1)) == sorted(expected)


def test_wds_resampled_is_endless_and_seeded(tmp_path):
    expected = write_shards(tmp_path, shards=3, per_shard=2)

    def first_keys(count, seed=0):
        source = WebDatasetSource(
            str(tmp_path), SourceOptions(resampled=True, seed=seed, shuffle_buffer=0)
        )
        stream = iter(source)
        return [next(stream).key for _ in range(count)]

    keys = first_keys(30)  # 5× the data: it keeps going
    assert set(keys) <= set(expected) and len(set(keys)) > 2
    assert first_keys(30) == keys
    assert first_keys(30, seed=1) != keys


def test_wds_samples_missing_image_or_caption_become_bad_records(tmp_path):
    write_shards(tmp_path, shards=1, per_shard=3, drop={"000000001": "jpg", "000000002": "txt"})
    records = {r.key: r for r in WebDatasetSource(str(tmp_path), SourceOptions(shuffle_buffer=0))}
    assert set(records) == {"000000000", "000000001", "000000002"}
    assert records["000000001"].image == b""
    with pytest.raises(BadRecordError, match="'000000001'"):
        decode_image(records["000000001"])
    assert records["000000002"].captions == ()
    with pytest.raises(BadRecordError, match="'000000002': empty caption"):
        clean_captions(records["000000002"])


def test_wds_corrupt_and_missing_shards_do_not_stop_the_stream(tmp_path):
    expected = write_shards(tmp_path / "shards", shards=4, per_shard=4)
    truncate_shard_inside(tmp_path / "shards" / "00001.tar", "000010002.jpg")
    (tmp_path / "shards" / "00002.tar").write_bytes(b"\x00garbage" * 100)
    listing = tmp_path / "shards.txt"
    listing.write_text("\n".join(f"shards/{i:05d}.tar" for i in range(4)) + "\nshards/gone.tar\n")
    with pytest.warns(UserWarning, match="1 of 5 shards are missing"):
        source = WebDatasetSource(str(listing), SourceOptions(shuffle_buffer=0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_all(source)
    markers = [r for r in records if r.key.startswith("shard-error:")]
    good = [r.key for r in records if not r.key.startswith("shard-error:")]
    assert source.shard_errors == 3 and len(markers) == 3
    assert sorted(m.metadata["url"].rsplit("/", 1)[1] for m in markers) == [
        "00001.tar",
        "00002.tar",
        "gone.tar",
    ]
    assert sum("skipping the rest of shard" in str(w.message) for w in caught) == 3
    for marker in markers:  # the loader counts it as bad
        assert marker.metadata["shard_error"]
        with pytest.raises(BadRecordError):
            clean_captions(marker)
    shard0 = {k for k in expected if k.startswith("00000")}
    shard3 = {k for k in expected if k.startswith("00003")}
    shard1_prefix = [k for k in good if k.startswith("00001")]
    assert shard0 | shard3 <= set(good)  # intact shards read in full
    assert shard1_prefix == ["000010000", "000010001"]  # the truncated one up to the cut
    assert len(good) == len(set(good))


# ------------------------------------------------------------------ through the real loader


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_skips_and_reports_bad_wds_records(tmp_path, workers):
    from clipforge.data.loader import LoaderConfig, build_loader
    from clipforge.data.tokenizer import Tokenizer
    from clipforge.data.transforms import eval_transform
    from clipforge.models.config import PreprocessConfig

    expected = write_shards(
        tmp_path / "shards", shards=4, per_shard=3, drop={"000000001": "jpg", "000020002": "txt"}
    )
    truncate_shard_inside(tmp_path / "shards" / "00003.tar", "000030001.jpg")
    source = WebDatasetSource(str(tmp_path / "shards"), SourceOptions(shuffle_buffer=0))
    tokenizer = Tokenizer.train(expected.values(), vocab_size=300, context_length=16)
    config = LoaderConfig(batch_size=4, workers=workers, drop_last=False, prefetch_factor=2)
    transform = eval_transform(PreprocessConfig(image_size=8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(build_loader(source, transform, tokenizer, config))
    good = [key for batch in batches for key in batch.keys]
    skipped = {key for batch in batches for key, _ in batch.skipped}
    assert skipped == {
        "000000001",
        "000020002",
        "shard-error:" + str(tmp_path / "shards" / "00003.tar"),
    }
    intact = set(expected) - skipped - {"000030001", "000030002"}
    assert sorted(good) == sorted(intact)  # 12 - 2 bad - 2 after the cut
    assert all(batch.images.shape[1:] == (3, 8, 8) for batch in batches if batch.keys)
