"""``clip_benchmark:ROOT``: a data set in CLIP_benchmark's WebDataset layout, read in place.

CLIP_benchmark (LAION-AI) ships its evaluation sets as ``wds_*`` folders (written by
``clip_benchmark_export_wds``; ``clip-benchmark/wds_*`` on the Hugging Face hub)::

    ROOT/
      test/  nshards.txt  0.tar 1.tar …     one folder per split
      train/ …
      classnames.txt                          one class name per line, in label order
      zeroshot_classification_templates.txt   one template per line, {c} for the class name
      dataset_type.txt                        "retrieval" (absent: classification)

A classification sample is ``KEY.webp|png|jpg|jpeg`` + ``KEY.cls`` (the label as decimal text);
a retrieval sample is an image + ``KEY.txt`` holding **all** its captions joined by ``\\n``
(CLIP_benchmark reads them with ``str.splitlines``; so does this source: an image with five
captions gives five texts, each counting that image as its positive). Reading such a shard as
plain ``wds:`` would make the five captions one long text and retrieval recall silently wrong.

The split is ``?split=NAME``, default ``test`` (CLIP_benchmark's default). ``nshards.txt`` names
the shards ``0.tar … n-1.tar``; without it every ``.tar`` of the split folder is read, in
numeric order. The source is a :class:`MapSource`: the tar headers are indexed once (stdlib
``tarfile``) and each record is read by offset, so DataLoader workers split it by index and
results come in shard order. Classification records carry ``metadata["label"]`` and their class
name as caption; :meth:`templates` returns the set's own templates for zero-shot.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ..record import RECORD_ERROR, RawRecord
from .base import MapSource, SourceOptions

DEFAULT_SPLIT = "test"
IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")  # CLIP_benchmark's order of preference
CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
TYPE_FILE = "dataset_type.txt"
NSHARDS_FILE = "nshards.txt"
KINDS = ("classification", "retrieval")


def looks_like_clip_benchmark(path: str | Path) -> bool:
    """A folder with a split sub-folder of shards (``nshards.txt`` or ``.tar`` files) or one of
    CLIP_benchmark's own metadata files. ``classnames.txt`` alone does not count: an image
    folder may keep one beside its class folders."""
    root = Path(path)
    if not root.is_dir():
        return False
    if (root / TYPE_FILE).is_file() or (root / TEMPLATES_FILE).is_file():
        return True
    return any(
        (child / NSHARDS_FILE).is_file() or any(child.glob("*.tar"))
        for child in root.iterdir()
        if child.is_dir()
    )


@dataclass
class _Sample:
    """Where one sample's files lie: extension → (shard index, data offset, size)."""

    key: str
    shard: int
    files: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def _read_lines(path: Path) -> list[str]:
    """Stripped lines as CLIP_benchmark reads them (blank lines dropped)."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def _shard_number(path: Path) -> tuple[int, str]:
    digits = re.match(r"\d+", path.name)
    return (int(digits.group()) if digits else -1, path.name)


def _list_shards(split_dir: Path) -> list[Path]:
    count_file = split_dir / NSHARDS_FILE
    if count_file.is_file():
        text = count_file.read_text().strip()
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{count_file}: expected a positive number of shards, got {text!r}")
        shards = [split_dir / f"{index}.tar" for index in range(int(text))]
        missing = [s for s in shards if not s.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{missing[0]}: missing ({len(missing)} of the {len(shards)} shards "
                f"{NSHARDS_FILE} announces are absent)"
            )
        return shards
    shards = sorted((p for p in split_dir.glob("*.tar") if p.is_file()), key=_shard_number)
    if not shards:
        raise ValueError(
            f"{split_dir}: no .tar shards in this split folder (and no {NSHARDS_FILE})"
        )
    return shards


def _index_shard(shard: Path, number: int, samples: dict[str, _Sample]) -> None:
    """Add the shard's files to ``samples``, keyed as webdataset does (up to the first dot)."""
    try:
        with tarfile.open(shard, "r:") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, dot, extension = name.partition(".")
                if not dot or stem.startswith("_"):
                    continue  # webdataset skips extension-less and __meta__ files too
                key = f"{folder}/{stem}" if folder else stem
                sample = samples.setdefault(f"{number}:{key}", _Sample(key, number))
                sample.files[extension.lower()] = (number, member.offset_data, member.size)
    except (tarfile.TarError, OSError) as error:
        raise ValueError(f"{shard}: not a readable tar shard ({error})") from None


class CLIPBenchmarkSource(MapSource):
    name = "clip_benchmark"

    def __init__(self, location: str | Path, options: SourceOptions | None = None):
        options = options or SourceOptions()
        self.root = Path(location).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such CLIP_benchmark data set folder")
        self.split = options.split or DEFAULT_SPLIT
        split_dir = self.root / self.split
        if not split_dir.is_dir():
            splits = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise FileNotFoundError(
                f"{split_dir}: no such split folder (splits here: {', '.join(splits) or 'none'})"
            )
        type_file = self.root / TYPE_FILE
        self.kind = _read_lines(type_file)[0].lower() if type_file.is_file() else KINDS[0]
        if self.kind not in KINDS:
            raise ValueError(
                f"{type_file}: data set type {self.kind!r} is not supported "
                f"(supported: {', '.join(KINDS)})"
            )
        self._class_names: list[str] | None = None
        if self.kind == "classification":
            names_file = self.root / CLASSNAMES_FILE
            if not names_file.is_file():
                raise FileNotFoundError(
                    f"{names_file}: missing; a CLIP_benchmark classification set needs it "
                    f"(one class name per line, in label order)"
                )
            self._class_names = _read_lines(names_file)
        templates_file = self.root / TEMPLATES_FILE
        self._templates = tuple(_read_lines(templates_file)) if templates_file.is_file() else None
        self.shards = _list_shards(split_dir)
        indexed: dict[str, _Sample] = {}
        for number, shard in enumerate(self.shards):
            _index_shard(shard, number, indexed)
        self.samples = list(indexed.values())
        if not self.samples:
            raise ValueError(f"{split_dir}: the shards hold no samples")

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, location: tuple[int, int, int]) -> bytes:
        number, offset, size = location
        with open(self.shards[number], "rb") as shard:
            shard.seek(offset)
            return shard.read(size)

    def __getitem__(self, index: int) -> RawRecord:
        sample = self.samples[index]
        image_at = next((sample.files[e] for e in IMAGE_EXTENSIONS if e in sample.files), None)
        image = self._read(image_at) if image_at else b""
        metadata: dict = {"shard": self.shards[sample.shard].name}
        if self.kind == "retrieval":
            text = self._read(sample.files["txt"]) if "txt" in sample.files else b""
            captions = tuple(text.decode("utf-8", errors="replace").splitlines())
            return RawRecord(sample.key, image, captions, metadata)
        if "cls" not in sample.files:
            return RawRecord(sample.key, image, (), metadata)  # unlabelled: skipped, listed
        raw_label = self._read(sample.files["cls"]).decode("utf-8", errors="replace").strip()
        assert self._class_names is not None
        if not raw_label.isdigit() or int(raw_label) >= len(self._class_names):
            metadata[RECORD_ERROR] = (
                f"label {raw_label!r} is not a class index below {len(self._class_names)} "
                f"({CLASSNAMES_FILE} has {len(self._class_names)} names)"
            )
            return RawRecord(sample.key, image, (), metadata)
        label = int(raw_label)
        metadata["label"] = label
        return RawRecord(sample.key, image, (self._class_names[label],), metadata)

    def class_names(self) -> list[str] | None:
        return list(self._class_names) if self._class_names is not None else None

    def templates(self) -> tuple[str, ...] | None:
        """The set's ``zeroshot_classification_templates.txt``, or None when it has none."""
        return self._templates

    def dataset_name(self) -> str:
        """CLIP_benchmark's name for the set: ``wds/NAME`` from a ``wds_NAME`` folder."""
        return "wds/" + self.root.resolve().name.removeprefix("wds_")
