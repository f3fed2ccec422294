"""Image-text pairs in WebDataset tar shards, as img2dataset writes them, streamed.

Each shard holds samples as files sharing a key: ``KEY.jpg`` (or ``.jpeg .png .webp .bmp
.gif``), ``KEY.txt`` (the caption) and optionally ``KEY.json`` (merged into ``metadata``, with
the shard's path under ``"url"``). Captions may instead come from a ``.json`` field, or be
several per sample (``caption_key``, ``caption_lines``: :mod:`.wds_captions`); a key given
explicitly is checked on the first samples at once. The location names the shards as

- a brace pattern: ``shards/{00000..00099}.tar`` (``::`` joins several patterns);
- a ``.txt`` file listing one shard per line, relative to that file's folder;
- a directory: every ``.tar`` in it, sorted.

Each epoch, the shard list is permuted with ``Random(seed, epoch)`` (the same on every rank;
kept in order when ``shuffle_buffer`` is 0, for evaluation) and dealt out round-robin over
``world_size × num_workers`` reader slots, slot ``rank × num_workers + worker``: no shard is
read twice and none is left out. With fewer shards
than slots some readers get none (a warning says so); use more, smaller shards. With
``resampled`` every reader instead draws shards with replacement, endlessly, from its own seeded
stream (OpenCLIP's ``--dataset-resampled``). Samples then pass a ``shuffle_buffer``-sized
shuffle, seeded from ``(seed, epoch, slot)`` so a run repeats exactly.

Bad data never stops the stream; the loader decides what is bad:

- a sample without an image yields a record with empty ``image`` bytes, one without a caption a
  record with no captions — :func:`~clipforge.data.record.decode_image` /
  :func:`~clipforge.data.record.clean_captions` then raise ``BadRecordError`` for them;
- an unreadable shard (truncated, corrupt, missing) is abandoned where it breaks, with a
  warning. Its samples read so far are kept, ``self.shard_errors`` counts it (in this process;
  DataLoader workers count in their own copies), and one marker record goes downstream so the
  loader's skip count shows it across processes: key ``shard-error:<shard>``, no image, no
  caption, ``metadata["shard_error"]`` holding the error.

Tar reading, shard lists, resampling and shuffling are webdataset's (``DataPipeline``,
``SimpleShardList``, ``ResampledShards``, ``tarfile_to_samples``, ``shuffle``); this module only
chooses shards and turns samples into :class:`RawRecord`.
"""

from __future__ import annotations

import json
import random
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import webdataset as wds
from torch.utils.data import get_worker_info
from webdataset.shardlists import expand_urls

from ... import distributed
from ..record import RawRecord
from .base import SourceOptions, StreamSource, first_captions
from .wds_captions import TXT_CAPTION, CaptionKey, parse_json_member

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
SHARD_ERROR_PREFIX = "shard-error:"


def list_shards(location: str) -> list[str]:
    """The shard paths/URLs ``location`` names (see the module docstring)."""
    location = location.strip()
    as_path = Path(location).expanduser()
    if as_path.is_dir():
        shards = sorted(
            str(p)
            for p in as_path.iterdir()
            if p.name.lower().endswith(SHARD_SUFFIXES) and not p.name.startswith(".")
        )
        if not shards:
            raise ValueError(f"{as_path}: no .tar shards in this folder")
        return shards
    if location.lower().endswith(".txt"):
        if not as_path.is_file():
            raise FileNotFoundError(f"{as_path}: no such shard list file")
        lines = [line.strip() for line in as_path.read_text().splitlines()]
        shards = [
            _resolve(line, as_path.parent) for line in lines if line and not line.startswith("#")
        ]
        if not shards:
            raise ValueError(f"{as_path}: the shard list is empty")
        return shards
    shards = [
        str(Path(url).expanduser()) if _is_local(url) else url for url in expand_urls(location)
    ]
    local = [s for s in shards if _is_local(s)]
    if local and not any(Path(s).is_file() for s in local):
        raise FileNotFoundError(
            f"{location}: none of its {len(shards)} shards exist (first: {shards[0]})"
        )
    return shards


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def _resolve(entry: str, folder: Path) -> str:
    if not _is_local(entry):
        return entry
    path = Path(entry).expanduser()
    return str(path if path.is_absolute() else folder / path)


def count_samples(shards: list[str]) -> int | None:
    """Total samples when the shards' folder says: a ``sizes.json`` (shard name → count), else
    img2dataset's per-shard ``NNNNN_stats.json`` (``successes``); None when unknown."""
    if not shards or not all(_is_local(s) for s in shards):
        return None
    paths = [Path(s) for s in shards]
    sizes_file = paths[0].parent / "sizes.json"
    try:
        if sizes_file.is_file():
            sizes = json.loads(sizes_file.read_text())
            return sum(int(sizes[p.name]) for p in paths)
        total = 0
        for path in paths:
            stats = path.with_name(path.name.split(".")[0] + "_stats.json")
            total += int(json.loads(stats.read_text())["successes"])
        return total
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _ShardErrorLog:
    """The handler given to webdataset: remembers which shard broke instead of raising.

    ``track`` sits right after the shard list, so ``current`` is the shard being read when
    the tar reader fails (webdataset opens the next shard only once the last is exhausted).
    A shard is counted once however many errors it raises.
    """

    def __init__(self, source: WebDatasetSource):
        self.source = source
        self.current = ""
        self.pending: list[tuple[str, str]] = []
        self.broken: set[str] = set()

    def track(self, shards: Iterator[dict]) -> Iterator[dict]:
        for shard in shards:
            self.current = shard["url"]
            yield shard

    def handle(self, error: Exception) -> bool:
        message = f"{type(error).__name__}: {error.args[0] if error.args else error}"
        if self.current not in self.broken:
            self.broken.add(self.current)
            self.pending.append((self.current, message))
            self.source.shard_errors += 1
            warnings.warn(f"skipping the rest of shard {self.current}: {message}", stacklevel=2)
        return True  # go on with the next file / shard

    def drain(self) -> Iterator[RawRecord]:
        while self.pending:
            url, message = self.pending.pop(0)
            yield RawRecord(SHARD_ERROR_PREFIX + url, b"", (), {"shard_error": message, "url": url})


def sample_to_record(sample: dict, caption_key: CaptionKey = TXT_CAPTION) -> RawRecord:
    """A webdataset sample dict (``__key__``, ``jpg``, ``txt``, …) → RawRecord, with the
    captions ``caption_key`` names (:mod:`.wds_captions`)."""
    image = next((sample[ext] for ext in IMAGE_EXTENSIONS if ext in sample), b"")
    parsed, json_error = parse_json_member(sample)
    metadata: dict = {}
    if parsed is not None:
        metadata.update(parsed if isinstance(parsed, dict) else {"json": parsed})
    if json_error is not None:
        metadata["json_error"] = json_error
    metadata["url"] = sample.get("__url__", "")
    captions = caption_key.captions(sample, parsed) or ()
    return RawRecord(sample["__key__"], image, captions, metadata)


class WebDatasetSource(StreamSource):
    name = "wds"

    def __init__(
        self,
        location: str,
        options: SourceOptions | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        """``rank``/``world_size`` override :mod:`clipforge.distributed` (tests, custom
        launchers); by default they are read when iteration starts."""
        self.location = location
        self.options = options or SourceOptions()
        self.shards = list_shards(location)
        self.caption_key = CaptionKey.parse(self.options.caption_key, self.options.caption_lines)
        first_local = next((s for s in self.shards if _is_local(s) and Path(s).is_file()), None)
        if self.options.caption_key is not None and first_local:  # default: class-only shards
            self.caption_key.check(first_local)  # remote shards are not opened here
        self.rank_override, self.world_size_override = rank, world_size
        self.epoch = 0
        self.shard_errors = 0
        self.num_samples = count_samples(self.shards)
        missing = [s for s in self.shards if _is_local(s) and not Path(s).is_file()]
        if missing:
            warnings.warn(
                f"{location}: {len(missing)} of {len(self.shards)} shards are missing "
                f"(first: {missing[0]}); they will be skipped",
                stacklevel=2,
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def reader_slot(self) -> tuple[int, int]:
        """(this reader's slot, number of slots) over ranks × DataLoader workers."""
        rank = distributed.rank() if self.rank_override is None else self.rank_override
        world = (
            distributed.world_size()
            if self.world_size_override is None
            else self.world_size_override
        )
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        return rank * workers + worker_id, world * workers

    def shards_for(self, slot: int, slots: int) -> list[str]:
        """The shards reader ``slot`` of ``slots`` reads this epoch (disjoint, covering all)."""
        order = list(self.shards)
        if self.options.shuffle_buffer > 0:
            random.Random(f"shards-{self.options.seed}-{self.epoch}").shuffle(order)
        return order[slot::slots]

    def __iter__(self) -> Iterator[RawRecord]:
        slot, slots = self.reader_slot()
        seed = (self.options.seed * 1_000_003 + self.epoch) * 1_000_003 + slot
        if self.options.resampled:
            shard_list = wds.ResampledShards(
                self.shards,
                nshards=sys.maxsize,
                seed=seed,
                worker_seed=lambda: 0,
                deterministic=True,
            )
        else:
            mine = self.shards_for(slot, slots)
            if not mine:
                warnings.warn(
                    f"{self.location}: {len(self.shards)} shards for {slots} readers "
                    f"(ranks × workers); reader {slot} gets none",
                    stacklevel=2,
                )
                return
            shard_list = wds.SimpleShardList(mine)
        log = _ShardErrorLog(self)
        buffer = self.options.shuffle_buffer
        pipeline = wds.DataPipeline(
            shard_list,
            log.track,
            wds.tarfile_to_samples(handler=log.handle),
            lambda samples: _records(samples, log, self.caption_key),
            wds.shuffle(buffer, initial=min(buffer, 100), seed=seed) if buffer > 1 else None,
        )
        yield from pipeline

    def captions(self, limit: int) -> Iterator[str]:
        """The first ``limit`` captions, shards in listed order, unshuffled, whatever the rank
        or worker. Images are not decoded; an unreadable shard is passed over silently (training
        reports it)."""
        pipeline = wds.DataPipeline(
            wds.SimpleShardList(self.shards),
            wds.tarfile_to_samples(handler=wds.ignore_and_continue),
        )
        records = (sample_to_record(sample, self.caption_key) for sample in pipeline)
        return first_captions(records, limit)


def _records(
    samples: Iterator[dict], log: _ShardErrorLog, caption_key: CaptionKey
) -> Iterator[RawRecord]:
    for sample in samples:
        yield from log.drain()
        yield sample_to_record(sample, caption_key)
    yield from log.drain()
