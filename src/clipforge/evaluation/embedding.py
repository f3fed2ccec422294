"""Batched, gradient-free encoding of a data source's images and of lists of texts.

Evaluation needs every caption of a record (retrieval: all of an image's captions are its texts)
and its label (zero-shot), so it reads records itself rather than through the training loader,
which picks one caption. Records are decoded in DataLoader workers with the model's deterministic
eval transform; bad ones (undecodable image, missing file) are skipped and listed by key, as in
training. Encoding runs under ``torch.no_grad`` with the model in eval mode, in fp32 unless
``autocast_dtype`` is given (bf16 is slow on CPUs without AMX/AVX-512 BF16); embeddings are
returned as float32 on the CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from ..data.record import BadRecordError, RawRecord, decode_image
from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform


@dataclass
class EncodeConfig:
    batch_size: int = 256
    workers: int = 2
    autocast_dtype: torch.dtype | None = None  # e.g. torch.bfloat16 on GPUs; None = fp32
    progress: bool = True  # tqdm bars on stderr

    def __post_init__(self):
        if self.batch_size < 1 or self.workers < 0:
            raise ValueError(
                f"batch size must be ≥ 1 and workers ≥ 0, got {self.batch_size} and {self.workers}"
            )


@dataclass
class EncodedImages:
    """A source's usable records, in one order: embeddings and what each record carries."""

    embeds: torch.Tensor  # [N, D] float32, L2-normalised
    keys: list[str] = field(default_factory=list)
    captions: list[tuple[str, ...]] = field(default_factory=list)  # cleaned; may be empty
    labels: list[int | None] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)


@dataclass
class _Item:
    key: str
    image: torch.Tensor | None
    captions: tuple[str, ...] = ()
    label: int | None = None
    error: str | None = None


class _ReadRecord:
    """RawRecord → _Item: decode + eval transform; captions cleaned but allowed to be empty."""

    def __init__(self, transform: ImageTransform):
        self.transform = transform
        preprocess = getattr(transform, "preprocess", None)
        self.background = getattr(preprocess, "background", (255, 255, 255))

    def __call__(self, record: RawRecord) -> _Item:
        captions = tuple(" ".join(c.split()) for c in record.captions if c and c.strip())
        label = record.metadata.get("label")
        try:
            image = decode_image(record, self.background)
        except BadRecordError as error:
            return _Item(record.key, None, error=error.reason)
        return _Item(
            record.key, self.transform(image), captions, None if label is None else int(label)
        )


class _MapItems(Dataset):
    def __init__(self, source: MapSource, read: _ReadRecord):
        self.source, self.read = source, read

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> _Item:
        return self.read(self.source[index])


class _StreamItems(IterableDataset):
    """The source splits its shards across ranks and workers itself."""

    def __init__(self, source: StreamSource, read: _ReadRecord):
        self.source, self.read = source, read

    def __iter__(self) -> Iterator[_Item]:
        self.source.set_epoch(0)
        for record in self.source:
            yield self.read(record)


def _collate(items: Sequence[_Item]) -> list[_Item]:
    return list(items)


@contextlib.contextmanager
def inference_mode(model: torch.nn.Module, autocast_dtype: torch.dtype | None) -> Iterator[None]:
    """Eval mode, no grad and optional autocast; the model's train/eval mode is restored after."""
    was_training = model.training
    model.eval()
    device_type = _device_of(model).type
    autocast = (
        torch.autocast(device_type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    try:
        with torch.no_grad(), autocast:
            yield
    finally:
        model.train(was_training)


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def encode_images(
    model, transform: ImageTransform, source: MapSource | StreamSource, config: EncodeConfig
) -> EncodedImages:
    """Encode every decodable image of ``source`` (in source order for map sources)."""
    read = _ReadRecord(transform)
    dataset = (
        _StreamItems(source, read) if isinstance(source, StreamSource) else _MapItems(source, read)
    )
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.workers,
        collate_fn=_collate,
        shuffle=False,
    )
    total = len(dataset) if isinstance(dataset, _MapItems) else None
    device = _device_of(model)
    encoded = EncodedImages(torch.empty(0))
    chunks = []
    bar = tqdm(total=total, desc="images", unit="img", disable=not config.progress, leave=False)
    with inference_mode(model, config.autocast_dtype):
        for items in loader:
            good = [item for item in items if item.error is None]
            encoded.skipped.extend((item.key, item.error) for item in items if item.error)
            if good:
                images = torch.stack([item.image for item in good]).to(device)
                chunks.append(
                    F.normalize(model.encode_image(images, normalize=True).float(), dim=-1).cpu()
                )
                encoded.keys.extend(item.key for item in good)
                encoded.captions.extend(item.captions for item in good)
                encoded.labels.extend(item.label for item in good)
            bar.update(len(items))
    bar.close()
    encoded.embeds = torch.cat(chunks) if chunks else torch.empty(0, model.config.embed_dim)
    return encoded


def encode_texts(
    model, tokenizer, texts: Sequence[str], config: EncodeConfig, description: str = "texts"
) -> torch.Tensor:
    """Texts → [len(texts), D] float32 L2-normalised embeddings, ``batch_size`` at a time."""
    device = _device_of(model)
    chunks = []
    starts = range(0, len(texts), config.batch_size)
    with inference_mode(model, config.autocast_dtype):
        for start in tqdm(
            starts, desc=description, unit="batch", disable=not config.progress, leave=False
        ):
            ids = tokenizer(list(texts[start : start + config.batch_size])).to(device)
            chunks.append(F.normalize(model.encode_text(ids, normalize=True).float(), dim=-1).cpu())
    return torch.cat(chunks) if chunks else torch.empty(0, model.config.embed_dim)


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration (a backward pass then computes only
    the input's gradient: learnt prompts, adversarial pixels); both restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        model.train(was_training)
