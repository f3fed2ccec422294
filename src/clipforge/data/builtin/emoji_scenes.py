"""``builtin:emoji-scenes``: emoji composited on varied backgrounds at known boxes, for grounding.

A generated grounding set (dense score maps, pointing game, box IoU; region-text objectives) that
needs nothing but the shipped emoji (:mod:`.emoji`). Each scene is a ``image_size``² RGB image
(default 224) with 1–4 distinct emoji, each 20–40 % of the side, placed without overlap on a
plain, gradient or noise background (:mod:`.scene_backgrounds`).

**Records.** ``captions`` is the scene caption, the emoji named left to right ("a cat and an
apple"). ``metadata`` carries the regions, aligned lists with one entry per object:

    boxes            [[x0, y0, x1, y1], …]  pixels of this image, x1/y1 exclusive (PIL ``getbbox``):
                                            the tight box of the emoji's alpha > 0
    region_captions  ["the red apple at the left", "a cat at the top right", …]
    names            ["red apple", "cat"]   CLDR names (skin tones dropped, "flag: X" → "flag of X")
    positions        ["left", "top right"]  the 3 × 3 cell of the box centre ("centre" if middle)
    emoji, emoji_keys                       the characters and their Noto keys
    background       "plain" | "gradient" | "noise";  image_size;  split

A region objective or detector reads ``boxes`` + ``region_captions`` (scaled by the model's
``image_size / metadata["image_size"]``: the eval transform of a square image is a plain resize).

**Determinism.** Scene ``i`` of a split is drawn from ``numpy.random.default_rng([seed, split,
i])`` alone, so it is the same bytes on every machine and in any order or worker.

**Built lazily, per index.** Rendering a 224² scene costs ~4.4 ms of CPU (measured over 200
scenes; decoding a 224² JPEG costs 0.6 ms), small beside a training step and spread over the
loader's workers, so nothing is cached on disk: there is no cache to invalidate when the
generator changes, any ``seed`` works at once, random access is free, and nothing is written
under the user's cache directory. Opening the source (reading the emoji asset) takes ~0.3 s.

**Split.** By emoji, from :mod:`.emoji`'s split: ``val`` scenes use only the held-out emoji (of
1,872 distinct emoji names ~15 % are in ``val``), so a model trained on ``train`` scenes is tested
on objects it never saw. ``all`` is ``train`` then ``val``. Skin-tone variants are dropped: one
emoji per name (the plain one), so names in a scene are distinct.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..record import RawRecord
from ..sources.base import MapSource, SourceOptions
from .emoji import EmojiSource
from .scene_backgrounds import BACKGROUND_KINDS, draw_background
from .splits import check_split

SCENES_PER_SPLIT = {"train": 5000, "val": 500}
IMAGE_SIZE = 224
OBJECT_COUNTS, OBJECT_COUNT_WEIGHTS = (1, 2, 3, 4), (0.15, 0.35, 0.3, 0.2)
OBJECT_SIDE = (0.2, 0.4)  # of the image side
PLACEMENT_TRIES = 40
_SPLIT_CODES = {"train": 0, "val": 1}


@dataclass(frozen=True)
class Sprite:
    key: str
    emoji: str
    name: str  # the phrase used in captions
    image: bytes  # encoded RGBA


@dataclass(frozen=True)
class SceneObject:
    sprite: Sprite
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), tight around alpha > 0
    position: str
    region_caption: str


def caption_name(base: str) -> str:
    """A CLDR base name as a noun phrase: "flag: Japan" → "flag of Japan", "man: red hair" →
    "man with red hair", "man: bald" → "bald man", "family: woman, boy" → "family of woman and
    boy", "keycap: 1" → "keycap 1"."""
    head, sep, tail = base.partition(": ")
    if not sep:
        return base
    if head == "keycap":
        return f"keycap {tail}"
    if tail == "bald":
        return f"bald {head}"
    if head == "flag" or ", " in tail:
        return f"{head} of {tail.replace(', ', ' and ')}"
    return f"{head} with {tail}"


def indefinite(phrase: str) -> str:
    """ "a cat", "an apple" (by the first letter; "uni…", "one", "eu…" take "a")."""
    lowered = phrase.lower()
    vowel = lowered[:1] in "aeiou" and not lowered.startswith(("uni", "one", "eu", "use"))
    return f"{'an' if vowel else 'a'} {phrase}"


def position_of(box: tuple[int, int, int, int], size: int) -> str:
    """The 3 × 3 cell of the box centre: "top left", "left", "top", "centre", "bottom right" …"""
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    column = ("left", "", "right")[min(int(3 * centre_x / size), 2)]
    row = ("top", "", "bottom")[min(int(3 * centre_y / size), 2)]
    return " ".join(word for word in (row, column) if word) or "centre"


def region_caption(name: str, position: str, definite: bool) -> str:
    """ "the red apple at the left", "a cat at the top right", "the dog in the centre"."""
    where = "in the centre" if position == "centre" else f"at the {position}"
    return f"{'the ' + name if definite else indefinite(name)} {where}"


def scene_caption(names: list[str]) -> str:
    """ "a cat", "a cat and an apple", "a cat, a dog and an apple"."""
    phrases = [indefinite(name) for name in names]
    if len(phrases) == 1:
        return phrases[0]
    return f"{', '.join(phrases[:-1])} and {phrases[-1]}"


def sprite_pool(split: str) -> list[Sprite]:
    """One sprite per emoji name of ``split`` (the plain variant), in the asset's order."""
    source = EmojiSource(split)
    chosen: dict[str, Sprite] = {}
    for index in range(len(source)):
        record = source[index]
        base = record.metadata["base"]
        plain = record.metadata["name"] == base
        if (base not in chosen or plain) and isinstance(record.image, bytes):
            chosen[base] = Sprite(
                record.key, record.metadata["emoji"], caption_name(base), record.image
            )
    return list(chosen.values())


def _overlaps(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> bool:
    gap = 2
    return any(
        box[0] < o[2] + gap and o[0] < box[2] + gap and box[1] < o[3] + gap and o[1] < box[3] + gap
        for o in others
    )


class EmojiScenesSource(MapSource):
    """Generated scenes of one split; each rendered when its record is read."""

    name = "emoji-scenes"

    def __init__(
        self, split: str = "train", seed: int = 0, count: int | None = None, image_size: int = 224
    ):
        check_split(split, "emoji-scenes")
        if seed < 0 or (count is not None and count < 1) or image_size < 16:
            raise ValueError(
                f"emoji-scenes needs seed ≥ 0, count ≥ 1 and image_size ≥ 16; got seed={seed}, "
                f"count={count}, image_size={image_size}"
            )
        self.split, self.seed, self.image_size = split, seed, image_size
        parts = ("train", "val") if split == "all" else (split,)
        self._parts = [(part, count or SCENES_PER_SPLIT[part]) for part in parts]
        self._pools = {part: sprite_pool(part) for part in parts}
        self._decoded: dict[str, Image.Image] = {}

    @classmethod
    def from_options(cls, options: SourceOptions) -> EmojiScenesSource:
        return cls(split=options.split or "train", seed=options.seed)

    def __len__(self) -> int:
        return sum(count for _, count in self._parts)

    def _locate(self, index: int) -> tuple[str, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"emoji-scenes index {index} out of range for {len(self)} scenes")
        index %= len(self)
        for part, count in self._parts:
            if index < count:
                return part, index
            index -= count
        raise AssertionError("unreachable")

    def _sprite_image(self, sprite: Sprite) -> Image.Image:
        if sprite.key not in self._decoded:
            self._decoded[sprite.key] = Image.open(io.BytesIO(sprite.image)).convert("RGBA")
        return self._decoded[sprite.key]

    def scene(self, part: str, index: int) -> tuple[Image.Image, list[SceneObject], str]:
        """Scene ``index`` of split ``part``: the image, its objects (left to right), background."""
        rng = np.random.default_rng([self.seed, _SPLIT_CODES[part], index])
        size, pool = self.image_size, self._pools[part]
        background = str(rng.choice(BACKGROUND_KINDS))
        image = draw_background(background, size, rng)
        wanted = int(rng.choice(OBJECT_COUNTS, p=OBJECT_COUNT_WEIGHTS))
        picks = rng.choice(len(pool), size=min(wanted, len(pool)), replace=False)
        placed: list[tuple[int, int, int, int]] = []
        objects = []
        for pick in picks:
            sprite = pool[int(pick)]
            for _ in range(PLACEMENT_TRIES):
                side = max(4, int(rng.uniform(*OBJECT_SIDE) * size))
                x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
                square = (x0, y0, x0 + side, y0 + side)
                if not _overlaps(square, placed):
                    break
            else:
                continue  # no room left: the scene has fewer objects
            resized = self._sprite_image(sprite).resize((side, side), Image.Resampling.LANCZOS)
            tight = resized.getchannel("A").getbbox()
            if tight is None:
                continue
            placed.append(square)
            image.paste(resized, (x0, y0), resized)
            box = (x0 + tight[0], y0 + tight[1], x0 + tight[2], y0 + tight[3])
            position = position_of(box, size)
            caption = region_caption(sprite.name, position, definite=bool(rng.random() < 0.5))
            objects.append(SceneObject(sprite, box, position, caption))
        objects.sort(key=lambda o: (o.box[0] + o.box[2], o.box[1]))
        return image, objects, background

    def __getitem__(self, index: int) -> RawRecord:
        part, local = self._locate(index)
        image, objects, background = self.scene(part, local)
        metadata = {
            "boxes": [list(o.box) for o in objects],
            "region_captions": [o.region_caption for o in objects],
            "names": [o.sprite.name for o in objects],
            "positions": [o.position for o in objects],
            "emoji": [o.sprite.emoji for o in objects],
            "emoji_keys": [o.sprite.key for o in objects],
            "background": background,
            "image_size": self.image_size,
            "split": part,
        }
        caption = scene_caption([o.sprite.name for o in objects])
        return RawRecord(f"{part}-{local:06d}", image, (caption,), metadata)

    def captions(self) -> Iterator[str]:
        """Scene and region captions (a tokenizer then knows the position words)."""
        for index in range(len(self)):
            record = self[index]
            yield from record.captions
            yield from record.metadata["region_captions"]
