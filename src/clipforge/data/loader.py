"""Source → decoded, augmented, tokenised batches.

One batch's path: the sampler picks record indices (a seeded permutation per epoch) → a worker
reads each :class:`RawRecord`, decodes and transforms its image and picks a caption (all
randomness from ``Random(seed, epoch, index)``, so batches are identical for any worker count and
after a resume) → ``collate`` tokenises and stacks, dropping bad records and reporting them in
``Batch.skipped``.

Objectives ask for extra inputs (a second view, sub-captions, …) by declaring them
(``Objective.extra_inputs``); what each is and how it is made lives in :mod:`.extras`, and the
loader only calls it, so it knows no objective.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from .. import distributed
from .batch import Batch
from .extras import ExtraInput, SampleView, resolve_extra_inputs
from .record import BadRecordError, RawRecord, clean_captions, decode_image, open_image
from .sources.base import MapSource, StreamSource
from .tokenizer import Tokenizer
from .transforms import ImageTransform


@dataclass
class LoaderConfig:
    batch_size: int = 64
    workers: int = 2
    shuffle: bool = True
    drop_last: bool = True
    seed: int = 0
    strict: bool = False  # stop at the first bad record instead of skipping it
    caption_choice: str = "random"  # "random" | "first": which caption of a record to use
    extra_inputs: tuple[str | ExtraInput, ...] = ()  # names in data.extras or objects
    prefetch_factor: int = 4
    jpeg_draft: bool = True  # decode big JPEGs at 1/2, 1/4, 1/8 scale when enough
    persistent_workers: bool = True  # workers live across epochs (no restart, no re-import)


@dataclass
class Sample:
    key: str
    image: torch.Tensor | None = None
    caption: str = ""
    label: int | None = None
    error: str | None = None
    extras: dict = field(default_factory=dict)
    filler: bool = False  # pads a batch of bad-record reports; neither trained nor counted


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    return random.Random(hash((seed, epoch, index)) & 0xFFFFFFFFFFFF)


class SampleMaker:
    """RawRecord → Sample: decode, augment, pick caption(s); bad records become error samples."""

    def __init__(self, transform: ImageTransform, config: LoaderConfig):
        self.transform = transform
        self.config = config
        self.extras = resolve_extra_inputs(config.extra_inputs)

    def __call__(self, record: RawRecord, rng: random.Random) -> Sample:
        if "shard_error" in record.metadata:  # a marker for the rest of a broken shard
            if self.config.strict:
                raise BadRecordError(record.key, str(record.metadata["shard_error"]))
            return Sample(record.key, error=f"broken shard: {record.metadata['shard_error']}")
        try:
            captions = clean_captions(record)
            if self.config.jpeg_draft:
                record = with_jpeg_draft(record, self.transform)
            image = decode_image(record, self.transform.preprocess.background)
        except BadRecordError as error:
            if self.config.strict:
                raise
            return Sample(record.key, error=error.reason)
        caption = captions[0] if self.config.caption_choice == "first" else rng.choice(captions)
        sample = Sample(
            record.key, self.transform(image, rng), caption, record.metadata.get("label")
        )
        if self.extras:
            view = SampleView(captions, caption, image, self.transform, rng, record.metadata)
            sample.extras = {extra.name: extra.make(view) for extra in self.extras}
        return sample


def with_jpeg_draft(record: RawRecord, transform: ImageTransform) -> RawRecord:
    """The record with its image opened (not decoded) and, for a JPEG much larger than the
    transform needs, set to decode at a reduced scale.

    libjpeg can decode straight to 1/2, 1/4 or 1/8 size (DCT scaling, Pillow's ``draft``): for a
    640×480 photo cropped to 64 px that is ~10× less decoding work. The scale is the largest
    that keeps every crop the transform may take at ≥ ``image_size`` pixels a side: for the
    random resized crop (area ≥ s_min, aspect ≤ 4/3) the smallest crop side is
    √(W·H·s_min·3/4); for resize + centre crop it is the short side. Anything unreadable is
    left for :func:`decode_image` to report.
    """
    ref = record.image
    if isinstance(ref, Image.Image):
        return record
    try:
        image = open_image(ref, record.key)  # refuses decompression bombs from the header
    except BadRecordError:  # decode_image names the problem
        return record
    if image.format == "JPEG":
        width, height = image.size
        smallest: float = min(width, height)
        if transform.train:
            smallest = min(smallest, math.sqrt(width * height * transform.crop_scale[0] * 0.75))
        factor = smallest / transform.preprocess.image_size
        if factor >= 2:
            image.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))
    return dataclasses.replace(record, image=image)


class SharedPosition:
    """Epoch and resume point of a dataset, in shared memory so persistent workers see them.

    A persistent DataLoader worker keeps its own copy of the dataset for the whole run, so a
    plain attribute set in the main process after the worker started would never reach it. The
    values live in a shared tensor instead (inherited by forked workers, passed by handle to
    spawned ones) and are set before ``iter(loader)`` starts an epoch, while workers are idle.
    """

    def __init__(self):
        self._position = torch.zeros(2, dtype=torch.long).share_memory_()  # [epoch, skip]

    @property
    def epoch(self) -> int:
        return int(self._position[0])

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._position[0] = value

    @property
    def skip_batches(self) -> int:
        """Batches of this epoch already consumed (streams, set on resume)."""
        return int(self._position[1])

    @skip_batches.setter
    def skip_batches(self, value: int) -> None:
        self._position[1] = value


class MapDataset(SharedPosition, Dataset):
    def __init__(self, source: MapSource, maker: SampleMaker, seed: int):
        super().__init__()
        self.source, self.maker, self.seed = source, maker, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Sample:
        return self.maker(self.source[index], sample_rng(self.seed, self.epoch, index))


class StreamDataset(SharedPosition, IterableDataset):
    """A stream source's records as samples, resumable mid-epoch.

    With W DataLoader workers, batch i of an epoch comes from worker i mod W (the DataLoader
    takes them in turn, always starting at worker 0). To resume after k batches, each worker
    drops ⌊k / W⌋ batches' worth of records *before decoding*, and the consumer discards the
    first k mod W batches the loader then makes (:func:`set_loader_epoch` says how many).

    With ``drop_last`` the DataLoader drops each worker's last partial batch, and with it the
    reports of any bad records in it (often a broken shard's marker, which comes last). So
    samples are handed on a batch at a time, and a partial last batch holding bad records
    becomes one batch of only those reports, padded with fillers that :class:`Collate` ignores:
    nothing is trained on, everything bad is counted.
    """

    def __init__(
        self,
        source: StreamSource,
        maker: SampleMaker,
        seed: int,
        batch_size: int = 1,
        drop_last: bool = False,
    ):
        super().__init__()
        self.source, self.maker, self.seed = source, maker, seed
        self.batch_size, self.drop_last = batch_size, drop_last

    def __iter__(self) -> Iterator[Sample]:
        epoch = self.epoch  # read once: the main process may move on
        self.source.set_epoch(epoch)
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        skip = self.skip_batches // workers * self.batch_size
        salt = distributed.rank() * workers + worker_id  # this reader's slot
        pending: list[Sample] = []
        for position, record in enumerate(self.source):
            if position < skip:
                continue
            sample = self.maker(record, sample_rng(self.seed, epoch, hash((salt, position))))
            if not self.drop_last:
                yield sample
                continue
            pending.append(sample)
            if len(pending) == self.batch_size:
                yield from pending
                pending = []
        reports = [sample for sample in pending if sample.error is not None]
        if reports:  # the partial batch the loader would drop
            yield from reports
            yield from (Sample("", filler=True) for _ in range(self.batch_size - len(reports)))


class EpochSampler(torch.utils.data.Sampler[int]):
    """A seeded permutation per epoch (or identity), sharded across ranks, resumable mid-epoch."""

    def __init__(self, size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skip = 0  # samples of this epoch already consumed (set on resume)

    def order(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            indices = torch.randperm(self.size, generator=generator).tolist()
        else:
            indices = list(range(self.size))
        usable = len(indices) - len(indices) % self.world_size if self.shuffle else len(indices)
        return indices[self.rank : usable : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.order()) - self.skip)


class Collate:
    """Samples → Batch; tokenises captions (and text extras) in the worker."""

    def __init__(self, tokenizer: Tokenizer, config: LoaderConfig):
        self.tokenizer, self.config = tokenizer, config
        self.extras = resolve_extra_inputs(config.extra_inputs)

    def __call__(self, samples: Sequence[Sample]) -> Batch:
        samples = [s for s in samples if not s.filler]
        good = [s for s in samples if s.error is None]
        skipped = [(s.key, s.error) for s in samples if s.error is not None]
        if not good:
            empty = torch.empty(0)
            return Batch(empty, empty.long(), [], [], None, skipped)
        labels = None
        if all(s.label is not None for s in good):
            labels = torch.tensor([s.label for s in good], dtype=torch.long)
        captions = [s.caption for s in good]
        images = cast(list[torch.Tensor], [s.image for s in good])  # error-free samples have one
        batch = Batch(
            torch.stack(images),
            self.tokenizer(captions),
            [s.key for s in good],
            captions,
            labels,
            skipped,
        )
        for extra in self.extras:
            values = [s.extras[extra.name] for s in good]
            batch.extras.update(extra.collate(values, captions, self.tokenizer))
        return batch


def build_loader(
    source: MapSource | StreamSource,
    transform: ImageTransform,
    tokenizer: Tokenizer,
    config: LoaderConfig,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader of :class:`Batch`. For map sources, ``loader.sampler`` is the
    :class:`EpochSampler` (set ``.epoch`` / ``.skip`` on it and ``loader.dataset.epoch``)."""
    maker = SampleMaker(transform, config)
    collate = Collate(tokenizer, config)
    dataset: StreamDataset | MapDataset
    sampler: EpochSampler | None = None
    if isinstance(source, StreamSource):
        dataset = StreamDataset(source, maker, config.seed, config.batch_size, config.drop_last)
    else:
        dataset = MapDataset(source, maker, config.seed)
        sampler = EpochSampler(len(source), config.shuffle, config.seed, rank, world_size)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
        # own generator: worker seeding must not consume the global RNG (exact resume)
        generator=torch.Generator().manual_seed(config.seed),
        drop_last=config.drop_last,
        prefetch_factor=config.prefetch_factor if config.workers > 0 else None,  # None: default
        persistent_workers=config.persistent_workers and config.workers > 0,
    )


def set_loader_epoch(loader: DataLoader, epoch: int, skip_samples: int = 0) -> int:
    """Position a loader at ``epoch``, with the first ``skip_samples`` of it already consumed.

    Returns how many leading batches of the next ``iter(loader)`` the caller must discard
    (streams with several workers resume at the start of a round of workers; see
    :class:`StreamDataset`); 0 for map sources."""
    dataset = loader.dataset
    if not isinstance(dataset, SharedPosition):
        raise TypeError(f"set_loader_epoch needs a loader from build_loader, got {dataset!r}")
    dataset.epoch = epoch
    if isinstance(loader.sampler, EpochSampler):
        loader.sampler.epoch = epoch
        loader.sampler.skip = skip_samples
    elif isinstance(dataset, StreamDataset):
        dataset.skip_batches = skip_samples // dataset.batch_size  # the loader's batch size
        return dataset.skip_batches % max(1, loader.num_workers)
    return 0
