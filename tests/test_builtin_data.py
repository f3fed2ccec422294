"""Built-in data sets: builtin:emoji (shipped Parquet) and builtin:openclipart (Debian package)."""

from __future__ import annotations

import io
import time
from collections import Counter, defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
from emoji_asset.emoji_captions import base_name, class_name, phrase, with_article
from PIL import Image

from clipforge.data.builtin import BUILTIN_SETS, EmojiSource, OpenClipartSource
from clipforge.data.builtin.emoji import EMOJI_ASSET
from clipforge.data.builtin.openclipart import OPENCLIPART_ROOT
from clipforge.data.builtin.openclipart_names import (
    clipart_captions,
    learn_authors,
    title_from_stem,
)
from clipforge.data.builtin.splits import choose_val_units, stable_fraction
from clipforge.data.record import decode_image
from clipforge.data.sources import open_source


@pytest.fixture(scope="module")
def emoji():
    return {split: EmojiSource(split) for split in ("train", "val", "all")}


# --- splits -----------------------------------------------------------------------------------


def test_stable_fraction_is_fixed_by_the_name():
    assert stable_fraction("grinning face") == stable_fraction("grinning face")
    values = [stable_fraction(f"item {i}") for i in range(2000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.45 < np.mean(values) < 0.55  # roughly uniform


def test_choose_val_units_by_stratum():
    items = [(f"a{i}", "big") for i in range(20)]  # 20 singles: 15 % → 3 in val
    items += [("t1", "three"), ("t2", "three"), ("t3", "three")]  # ≥ 3 items → 1 forced in val
    items += [("p1", "pair"), ("p2", "pair")]  # < 3 items → none
    items += [("solo", "one")] * 6  # one unit of 6 → stays in train
    items += [("fam", "grouped")] * 5 + [("x", "grouped"), ("y", "grouped")]
    val = choose_val_units(items)
    assert sum(unit.startswith("a") for unit in val) == 3
    assert len(val & {"t1", "t2", "t3"}) == 1
    assert not val & {"p1", "p2", "solo"}
    assert "fam" not in val or not {"x", "y"} <= val  # a stratum keeps a train unit
    assert val == choose_val_units(list(reversed(items)))  # order does not matter


# --- emoji --------------------------------------------------------------------------------------


def test_emoji_counts_and_disjoint_splits(emoji):
    train, val, every = emoji["train"], emoji["val"], emoji["all"]
    assert len(every) == 3655  # Unicode 15.0 fully-qualified
    assert len(train) + len(val) == len(every)
    assert 0.13 < len(val) / len(every) < 0.18
    names = {
        split: {source[i].metadata["name"] for i in range(len(source))}
        for split, source in emoji.items()
    }
    assert not names["train"] & names["val"]
    bases = {
        split: {source[i].metadata["base"] for i in range(len(source))}
        for split, source in emoji.items()
    }
    assert not bases["train"] & bases["val"]
    assert {every[i].metadata["split"] for i in range(len(every))} == {"train", "val"}


def test_skin_tone_variants_share_the_split_of_their_base(emoji):
    split_of = {
        record.metadata["name"]: record.metadata["split"]
        for record in (emoji["all"][i] for i in range(len(emoji["all"])))
    }
    toned = [name for name in split_of if "skin tone" in name]
    assert len(toned) > 1500
    with_base = [name for name in toned if base_name(name) in split_of]
    assert len(with_base) > 1000
    assert all(split_of[name] == split_of[base_name(name)] for name in with_base)
    assert base_name("handshake: light skin tone, dark skin tone") == "handshake"
    assert base_name("man: medium skin tone, red hair") == "man: red hair"


def test_subgroups_are_in_both_splits_when_big_enough(emoji):
    every = emoji["all"]
    subgroup_sizes = Counter(every[i].metadata["subgroup"] for i in range(len(every)))
    bases = defaultdict(set)
    for i in range(len(every)):
        bases[every[i].metadata["subgroup"]].add(every[i].metadata["base"])
    in_val = {emoji["val"][i].metadata["subgroup"] for i in range(len(emoji["val"]))}
    in_train = {emoji["train"][i].metadata["subgroup"] for i in range(len(emoji["train"]))}
    assert len(subgroup_sizes) == 99
    assert in_train == set(subgroup_sizes)
    should_be_in_val = {s for s, n in subgroup_sizes.items() if n >= 3 and len(bases[s]) >= 2}
    assert should_be_in_val <= in_val
    assert len(in_val) == 96  # only animal-amphibian (1), hotel (2), currency (2) are not


def test_class_names_and_labels(emoji):
    names = emoji["train"].class_names()
    assert names == emoji["val"].class_names() == emoji["all"].class_names()
    assert len(names) == len(set(names)) == 99
    assert names[0] == "smiling face"
    assert class_name("animal-mammal") == "mammal" and class_name("new-thing") == "new thing"
    for source in emoji.values():
        for i in range(0, len(source), 37):
            metadata = source[i].metadata
            assert (
                names[metadata["label"]]
                == metadata["class_name"]
                == class_name(metadata["subgroup"])
            )


def test_emoji_record_decodes_to_a_72px_image_with_transparent_background(emoji):
    every = emoji["all"]
    record = every[0]
    assert record.key == "1f600" and record.metadata["emoji"] == "\U0001f600"
    assert record.metadata["group"] == "Smileys & Emotion"
    assert record.metadata["subgroup"] == "face-smiling" and record.metadata["label"] == 0
    assert isinstance(record.image, bytes) and Image.open(io.BytesIO(record.image)).mode == "RGBA"
    on_white = decode_image(record)
    on_black = decode_image(record, background=(0, 0, 0))
    assert on_white.mode == "RGB" and on_white.size == (72, 72)
    assert on_white.getpixel((0, 0)) == (255, 255, 255) and on_black.getpixel((0, 0)) == (0, 0, 0)
    red, green, blue = np.asarray(on_white, dtype=float)[36, 36]  # the face is yellow
    assert red > 200 and green > 150 and blue < 120
    assert np.asarray(on_white, dtype=float).std() > 30


def test_emoji_captions(emoji):
    every = emoji["all"]
    by_name = {every[i].metadata["name"]: every[i] for i in range(len(every))}
    assert by_name["grinning face"].captions == (
        "an emoji of a grinning face",
        "grinning face: face, grin",
        "grinning face",
        "a grinning face, a smiling face emoji",
        "an icon of a grinning face (smileys & emotion)",
    )
    assert by_name["flag: Japan"].captions[0] == "an emoji of the flag of Japan"
    assert by_name["waving hand: medium skin tone"].captions[0] == (
        "an emoji of a waving hand with medium skin tone"
    )
    assert by_name["cherries"].captions[0] == "an emoji of cherries"
    assert with_article("x-ray") == "an x-ray" and with_article("unicorn") == "a unicorn"
    assert phrase("family: man, woman, boy") == "family of man, woman and boy"
    for record in by_name.values():
        assert len(record.captions) == 5 and len(set(record.captions)) == 5
        assert all(phrase(record.metadata["name"]) in caption for caption in record.captions)
    fast = list(emoji["val"].captions())
    assert fast == [c for i in range(len(emoji["val"])) for c in emoji["val"][i].captions]


def test_open_source_builtin_specs():
    started = time.perf_counter()
    val = open_source("builtin:emoji?split=val")
    assert time.perf_counter() - started < 2.0
    assert isinstance(val, EmojiSource) and val.split == "val" and len(val) == 564
    assert len(open_source("builtin:emoji")) == 3655 - 564
    with pytest.raises(
        ValueError, match="builtin:emoji, builtin:emoji-scenes, builtin:openclipart"
    ):
        open_source("builtin:nope")
    with pytest.raises(ValueError, match="unknown split 'test'.*train, val, all"):
        open_source("builtin:emoji?split=test")
    assert BUILTIN_SETS.names() == ["emoji", "emoji-scenes", "openclipart"]


def test_shipped_asset_stays_small():
    assert EMOJI_ASSET.stat().st_size < 8 * 2**20
    assert (EMOJI_ASSET.parent / "NOTICE").read_text().count("SIL OPEN FONT LICENSE") == 1


def test_missing_emoji_asset_names_the_rebuild_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare_builtin.py emoji"):
        EmojiSource("train", tmp_path / "emoji.parquet")


def test_shipped_emoji_match_a_fresh_preparation(emoji):
    from emoji_asset.prepare import debian_emoji_files, emoji_font, emoji_table, render
    from emoji_asset.unicode_emoji import read_emoji

    missing = [str(path) for path in debian_emoji_files() if not path.exists()]
    if missing:
        pytest.skip(
            f"Debian emoji sources not installed ({', '.join(missing)}): apt-get install "
            "fonts-noto-color-emoji unicode-data unicode-cldr-core to compare"
        )
    fresh = emoji_table(images=False)
    every = emoji["all"]
    assert fresh.num_rows == len(every)
    assert fresh.column("key").to_pylist() == [every[i].key for i in range(len(every))]
    assert fresh.column("split").to_pylist() == [
        every[i].metadata["split"] for i in range(len(every))
    ]
    assert [tuple(c) for c in fresh.column("captions").to_pylist()] == [
        every[i].captions for i in range(len(every))
    ]
    font, entries = emoji_font(), read_emoji()
    for index in (0, 1000, 3654):  # pixels: palette error only
        drawn = np.asarray(render(entries[index], font, 72), dtype=float)
        shipped = np.asarray(
            Image.open(io.BytesIO(every[index].image)).convert("RGBA"), dtype=float
        )
        assert np.abs(drawn - shipped).mean() < 2.0


# --- openclipart --------------------------------------------------------------------------------


def test_clipart_titles_drop_authors_and_numbering():
    stems = [
        "2_dead_frogs_lumen_desig_01",
        "tram_lumen_design_stu_01",
        "bus_lumen_design_01",
        "tree_lumen_design_02",
        "hotel_icon_room_service_01",
        "hotel_icon_room_service_02",
        "hotel_icon_room_service_03",
    ]
    authors = learn_authors(stems)
    assert authors == ["lumen_design"]
    assert title_from_stem("2_dead_frogs_lumen_desig_01", authors) == "2 dead frogs"
    assert title_from_stem("hotel_icon_room_service_01", authors) == "hotel icon room service"
    assert title_from_stem("BandeMarquageSecurite", authors) == "bande marquage securite"
    assert title_from_stem("pattern-dots-square-grid", authors) == "pattern dots square grid"
    assert title_from_stem("star_90pt23step", authors) == "90-pointed star"
    assert clipart_captions("2 dead frogs", ["animals", "animals/amphibian"]) == (
        "a drawing of 2 dead frogs, animals",
        "2 dead frogs, animals",
        "clip art of 2 dead frogs (animals)",
        "a drawing of 2 dead frogs",
        "2 dead frogs, animals / amphibian",
    )


def test_missing_openclipart_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `clipforge data prepare openclipart`"):
        OpenClipartSource("train", root=tmp_path / "openclipart")


def pretend_root_with_apt(monkeypatch, root, installs=None):
    """Make ``root`` the Debian location and us root with apt-get; record apt-get calls."""
    from clipforge.data.builtin import openclipart

    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        if installs:
            installs(root)
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(openclipart, "OPENCLIPART_ROOT", root)
    monkeypatch.setattr(openclipart.os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(openclipart.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(openclipart.subprocess, "run", fake_run)
    return calls


def fake_openclipart_tree(root):
    for folder, count in (("animals", 7), ("signs_and_symbols", 7)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.new("RGBA", (32, 24), (10 * index, 90, 160, 255)).save(
                root / folder / f"thing_{folder}_{index:02d}.png"
            )


def test_opening_openclipart_never_runs_apt_get(tmp_path, monkeypatch):
    calls = pretend_root_with_apt(monkeypatch, tmp_path / "png")
    with pytest.raises(FileNotFoundError, match="clipforge data prepare openclipart"):
        OpenClipartSource("train", root=tmp_path / "png")
    with pytest.raises(FileNotFoundError, match="clipforge data prepare openclipart"):
        open_source("builtin:openclipart")
    assert calls == []


def test_data_prepare_openclipart_installs_then_indexes(tmp_path, monkeypatch, capsys):
    from clipforge.cli.main import main

    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path / "cache"))
    calls = pretend_root_with_apt(monkeypatch, tmp_path / "png", installs=fake_openclipart_tree)
    assert main(["data", "prepare", "openclipart", "--root", str(tmp_path / "png")]) == 0
    assert calls == [["apt-get", "install", "-y", "openclipart-png"]]
    assert "ready: 14 drawings" in capsys.readouterr().out
    assert list((tmp_path / "cache").glob("openclipart-index-*.parquet"))
    assert len(OpenClipartSource("all", root=tmp_path / "png")) == 14


def test_data_prepare_errors_and_shipped_sets(tmp_path, capsys):
    from clipforge.cli.main import main

    assert (
        main(
            ["data", "prepare", "openclipart", "--no-install", "--root", str(tmp_path / "nowhere")]
        )
        == 2
    )
    assert "sudo apt-get install openclipart-png" in capsys.readouterr().err
    assert main(["data", "prepare", "emoji"]) == 0
    assert "ships with clipforge" in capsys.readouterr().out
    assert main(["data", "prepare", "emojj"]) == 2
    assert "emoji, emoji-scenes, openclipart" in capsys.readouterr().err


def test_openclipart_listing_split_and_records(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPFORGE_CACHE", str(tmp_path))
    if not OPENCLIPART_ROOT.is_dir():  # not installed: the error path
        with pytest.raises(FileNotFoundError, match="clipforge data prepare openclipart"):
            OpenClipartSource("train")
        return
    every = OpenClipartSource("all")  # builds and caches the index
    assert list(tmp_path.glob("openclipart-index-*.parquet"))
    started = time.perf_counter()
    train, val = OpenClipartSource("train"), OpenClipartSource("val")
    assert time.perf_counter() - started < 2.0  # both from the cache
    assert 6500 < len(every) == len(train) + len(val)
    assert 0.12 < len(val) / len(every) < 0.18
    assert not {row["key"] for row in train.rows} & {row["key"] for row in val.rows}
    names = every.class_names()
    assert names == train.class_names() == val.class_names()
    assert len(names) == 22 and "signs and symbols" in names and "animals" in names
    frogs = next(
        i
        for i, row in enumerate(every.rows)
        if row["key"] == "animals/2_dead_frogs_lumen_desig_01.png"
    )
    record = every[frogs]
    assert record.captions[0] == "a drawing of 2 dead frogs, animals"
    assert names[record.metadata["label"]] == "animals"
    image = decode_image(record)
    assert image.mode == "RGB" and max(image.size) <= 256
    assert np.asarray(image, dtype=float).std() > 10
    first_two = [*val[0].captions, *val[1].captions]
    assert list(val.captions())[: len(first_two)] == first_two
    assert len(list(val.captions())) == sum(len(row["captions"]) for row in val.rows)
