"""A validation split held out of the training data itself, when none is given.

Reporting metrics on some other data set (the built-in emoji, say) while training on your own
would say nothing about your model, so the default validation of a run is part of its own data:
:data:`HOLDOUT_FRACTION` (5 %) of the records, at most :data:`HOLDOUT_MAX` (1,000: enough for a
stable recall@k, small enough to evaluate in seconds), never trained on. The choice is a
permutation seeded by a fixed seed, not the run's, so runs with different seeds (and a resumed
run) hold out the same records and their metrics compare. With fewer than
:data:`HOLDOUT_MIN_RECORDS` (100) records there is no held-out split (five records would be
noise); streams are not split either (their size is unknown): give ``--val`` for those.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .record import RawRecord
from .sources.base import MapSource

HOLDOUT_FRACTION = 0.05
HOLDOUT_MAX = 1000
HOLDOUT_MIN_RECORDS = 100
HOLDOUT_SEED = "clipforge-holdout"


class Subset(MapSource):
    """The records of ``source`` at ``indices``, in that order; class names pass through."""

    def __init__(self, source: MapSource, indices: Sequence[int]):
        self.source, self.indices = source, list(indices)
        self.name = getattr(source, "name", "source")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> RawRecord:
        return self.source[self.indices[index]]

    def class_names(self) -> list[str] | None:
        return self.source.class_names()


def holdout_size(records: int) -> int:
    """How many of ``records`` are held out: 5 %, at most 1,000; 0 under 100 records."""
    if records < HOLDOUT_MIN_RECORDS:
        return 0
    return min(HOLDOUT_MAX, int(records * HOLDOUT_FRACTION))


def split_holdout(source: MapSource) -> tuple[MapSource, Subset | None]:
    """(records to train on, held-out records) — or (source, None) when too small to split."""
    count = holdout_size(len(source))
    if count == 0:
        return source, None
    order = list(range(len(source)))
    random.Random(f"{HOLDOUT_SEED}-{len(source)}").shuffle(order)
    held = sorted(order[:count])
    kept = sorted(order[count:])
    return Subset(source, kept), Subset(source, held)
