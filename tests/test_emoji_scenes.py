"""builtin:emoji-scenes: deterministic scenes, tight boxes, the right position words, the split."""

from __future__ import annotations

import random

import numpy as np
import pytest

from clipforge.data.builtin import BUILTIN_SETS
from clipforge.data.builtin.emoji import EmojiSource
from clipforge.data.builtin.emoji_scenes import (
    EmojiScenesSource,
    caption_name,
    position_of,
    region_caption,
    scene_caption,
)
from clipforge.data.builtin.scene_backgrounds import draw_background
from clipforge.data.extras import ExtraInput
from clipforge.data.loader import LoaderConfig, SampleMaker
from clipforge.data.preprocess import PreprocessConfig
from clipforge.data.sources import open_source
from clipforge.data.transforms import ImageTransform


@pytest.fixture(scope="module")
def small():
    return EmojiScenesSource("val", seed=0, count=6, image_size=64)


def test_registered_and_options_reach_the_source():
    assert "emoji-scenes" in BUILTIN_SETS
    source = open_source("builtin:emoji-scenes?split=val&seed=7")
    assert isinstance(source, EmojiScenesSource)
    assert (source.split, source.seed, len(source)) == ("val", 7, 500)
    assert len(open_source("builtin:emoji-scenes?split=all")) == 5500
    with pytest.raises(ValueError, match="unknown split 'test' for builtin:emoji-scenes"):
        open_source("builtin:emoji-scenes?split=test")


def test_same_seed_same_bytes_other_seed_differs(small):
    again = EmojiScenesSource("val", seed=0, count=6, image_size=64)
    other = EmojiScenesSource("val", seed=1, count=6, image_size=64)
    for index in range(len(small)):
        first, second = small[index], again[index]
        assert first.image.tobytes() == second.image.tobytes()
        assert first.captions == second.captions and first.metadata == second.metadata
    assert small[5].image.tobytes() == again[5].image.tobytes()  # any order gives the same scene
    differing = sum(small[i].image.tobytes() != other[i].image.tobytes() for i in range(len(small)))
    assert differing == len(small)


def test_boxes_inside_image_and_tight_around_the_emoji(small):
    """Every pixel the emoji changed lies inside a box, and every box edge touches a changed
    pixel: the background is re-drawn from the scene's RNG, which draws it first."""
    for index in range(len(small)):
        record = small[index]
        boxes = record.metadata["boxes"]
        assert 1 <= len(boxes) <= 4
        assert len(record.metadata["region_captions"]) == len(boxes)
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        rng = np.random.default_rng([0, 1, index])
        kind = str(rng.choice(("plain", "gradient", "noise")))
        assert kind == record.metadata["background"]
        background = np.asarray(draw_background(kind, 64, rng), np.int16)
        changed = np.abs(np.asarray(record.image, np.int16) - background).sum(axis=2) > 0
        inside = np.zeros_like(changed)
        for x0, y0, x1, y1 in boxes:
            inside[y0:y1, x0:x1] = True
            region = changed[y0:y1, x0:x1]
            # a faint alpha edge may leave a pixel unchanged: allow one pixel at each edge
            assert region[:2].any() and region[-2:].any()
            assert region[:, :2].any() and region[:, -2:].any()
        assert not (changed & ~inside).any()


def test_position_words_hand_checked():
    size = 90  # thirds: [0, 30), [30, 60), [60, 90)
    assert position_of((0, 0, 20, 20), size) == "top left"
    assert position_of((70, 0, 90, 20), size) == "top right"
    assert position_of((0, 35, 20, 55), size) == "left"
    assert position_of((35, 35, 55, 55), size) == "centre"
    assert position_of((35, 70, 55, 90), size) == "bottom"
    assert position_of((65, 65, 90, 90), size) == "bottom right"
    assert region_caption("red apple", "left", definite=True) == "the red apple at the left"
    assert region_caption("cat", "top right", definite=False) == "a cat at the top right"
    assert region_caption("owl", "centre", definite=False) == "an owl in the centre"
    assert scene_caption(["cat", "apple"]) == "a cat and an apple"
    assert scene_caption(["cat", "dog", "unicorn"]) == "a cat, a dog and a unicorn"
    assert caption_name("flag: Japan") == "flag of Japan"
    assert caption_name("man: red hair") == "man with red hair"
    assert caption_name("family: woman, boy") == "family of woman and boy"


def test_captions_name_each_object_at_its_position(small):
    for index in range(len(small)):
        meta = small[index].metadata
        (scene,) = small[index].captions
        for box, caption, name in zip(meta["boxes"], meta["region_captions"], meta["names"]):
            assert name in caption and name in scene
            words = position_of(tuple(box), 64)
            assert caption.endswith("in the centre" if words == "centre" else f"at the {words}")


def test_val_scenes_use_only_held_out_emoji(small):
    val_keys = set(EmojiSource("val")._keys)
    used = {key for i in range(len(small)) for key in small[i].metadata["emoji_keys"]}
    assert used and used <= val_keys


class RegionBoxes(ExtraInput):
    """What a region objective (issue 16) will ask for: each record's boxes and captions."""

    name = "region_boxes"

    def make(self, view):
        return view.metadata["boxes"], view.metadata["region_captions"]

    def collate(self, values, captions, tokenizer):
        return {self.name: [boxes for boxes, _ in values]}


def test_an_extra_input_reads_the_regions_of_a_scene(small):
    maker = SampleMaker(
        ImageTransform(PreprocessConfig(image_size=32)), LoaderConfig(extra_inputs=(RegionBoxes(),))
    )
    record = small[2]
    sample = maker(record, random.Random(0))
    assert sample.error is None and sample.image.shape == (3, 32, 32)
    boxes, captions = sample.extras["region_boxes"]
    assert boxes == record.metadata["boxes"] and captions == record.metadata["region_captions"]
