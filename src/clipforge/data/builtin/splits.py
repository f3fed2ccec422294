"""A fixed, stratified train/val split for the built-in sets, decided by hashing names.

Why hash and not shuffle: the split of an item depends only on its own name (and the items of its
stratum), never on a seed, the machine or the file order, so a model trained on ``train`` can be
scored on ``val`` anywhere and the two never share an item.

Items come in *units* that must stay together (an emoji and its skin-tone variants, a clip-art
file and the links to it); units come in *strata* (an emoji subgroup, a clip-art folder). In each
stratum the units are ordered by ``sha256(salt:unit)`` and taken into ``val`` while that brings
the stratum's val share of items closer to ``val_fraction`` — plus always the first unit when the
stratum has at least ``min_items_for_val`` items in two or more units, so every such stratum is
seen in validation — but never the last unit, so every stratum is also seen in training.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

SPLITS = ("train", "val", "all")
SPLIT_SALT = "clipforge-split-v1"


def stable_fraction(name: str, salt: str = SPLIT_SALT) -> float:
    """A number in [0, 1) fixed by ``name`` alone: the first 8 bytes of ``sha256(salt:name)``."""
    digest = hashlib.sha256(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def choose_val_units(
    items: Iterable[tuple[str, str]], val_fraction: float = 0.15, min_items_for_val: int = 3
) -> set[str]:
    """The units that go to ``val``, from ``(unit, stratum)`` pairs, one pair per item."""
    unit_sizes: dict[str, int] = defaultdict(int)
    strata: dict[str, list[str]] = defaultdict(list)
    for unit, stratum in items:
        if unit not in unit_sizes:
            strata[stratum].append(unit)
        unit_sizes[unit] += 1
    val: set[str] = set()
    for units in strata.values():
        total = sum(unit_sizes[unit] for unit in units)
        target = val_fraction * total
        chosen = 0
        must_have_one = len(units) >= 2 and total >= min_items_for_val
        for taken, unit in enumerate(sorted(units, key=stable_fraction)):
            if taken == len(units) - 1:
                break
            closer = abs(chosen + unit_sizes[unit] - target) < abs(chosen - target)
            if closer or (must_have_one and chosen == 0):
                val.add(unit)
                chosen += unit_sizes[unit]
    return val


def check_split(split: str, set_name: str) -> str:
    if split not in SPLITS:
        raise ValueError(
            f"unknown split {split!r} for builtin:{set_name}; choose one of {', '.join(SPLITS)}"
        )
    return split
