"""DataLoader workers persist across epochs and still give the exact batches of each epoch.

Restarting workers every epoch cost seconds per epoch on small data (issue 10); persistent
workers keep their own copy of the dataset, so the epoch and resume point must reach them
through shared memory, or epoch 2 would repeat epoch 1's augmentations.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random

import torch

from clipforge.data.loader import LoaderConfig, build_loader, set_loader_epoch
from clipforge.data.record import RawRecord
from clipforge.data.sources.base import StreamSource
from clipforge.data.tokenizer import Tokenizer
from clipforge.data.transforms import ImageTransform
from clipforge.models.config import PreprocessConfig

from synthetic import ShapesSource


class PidShapes(ShapesSource):
    """Shapes whose record keys name the process that read them."""

    def __getitem__(self, index: int) -> RawRecord:
        record = super().__getitem__(index)
        return dataclasses.replace(record, key=f"{os.getpid()}/{record.key}")


class ShapeStream(StreamSource):
    """The shapes in an order shuffled per epoch, read in turn by the workers."""

    def __init__(self, count: int = 24):
        self.shapes, self.order = ShapesSource(count), list(range(count))

    def set_epoch(self, epoch: int) -> None:
        self.order = list(range(len(self.shapes)))
        random.Random(epoch).shuffle(self.order)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for position, index in enumerate(self.order):
            if position % workers == worker:
                yield self.shapes[index]


def make_loader(source, workers: int):
    tokenizer = Tokenizer.train(ShapesSource(24).captions(), vocab_size=300, context_length=16)
    transform = ImageTransform(PreprocessConfig(image_size=16), train=True)
    config = LoaderConfig(batch_size=4, workers=workers, prefetch_factor=2, seed=3)
    return build_loader(source, transform, tokenizer, config)


def read_epoch(loader, epoch: int, batches: int | None = None) -> list:
    set_loader_epoch(loader, epoch)
    return list(itertools.islice(iter(loader), batches))


def test_workers_are_not_restarted_between_epochs():
    loader = make_loader(PidShapes(24), workers=2)
    pids = [
        {key.split("/")[0] for batch in read_epoch(loader, epoch) for key in batch.keys}
        for epoch in range(3)
    ]
    assert len(pids[0]) == 2 and str(os.getpid()) not in pids[0]
    assert pids[0] == pids[1] == pids[2]


def test_persistent_workers_give_each_epochs_exact_batches():
    persistent = make_loader(ShapesSource(24), workers=2)
    for epoch in range(3):
        kept = read_epoch(persistent, epoch)
        fresh = read_epoch(make_loader(ShapesSource(24), workers=0), epoch)
        assert [b.keys for b in kept] == [b.keys for b in fresh]
        for a, b in zip(kept, fresh):
            assert torch.equal(a.images, b.images)  # epoch-seeded augmentations


def test_a_stream_epoch_cut_short_is_followed_by_the_exact_next_epoch():
    persistent = make_loader(ShapeStream(), workers=2)
    read_epoch(persistent, 0, batches=3)  # an epoch of 3 batches, as
    kept = read_epoch(persistent, 1, batches=3)  # data.epoch_samples makes it
    fresh = read_epoch(make_loader(ShapeStream(), workers=2), 1, batches=3)
    assert [b.keys for b in kept] == [b.keys for b in fresh]
    for a, b in zip(kept, fresh):
        assert torch.equal(a.images, b.images)
