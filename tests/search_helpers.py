"""Small models, embedding directories and indexes for the search tests (embed/index/API/page)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clipforge.data.tokenizer import Tokenizer
from clipforge.models import create_model, model_config
from clipforge.models.io import save_model_dir
from clipforge.search.build import BuildConfig, build_index_dir
from clipforge.search.index import IndexConfig
from clipforge.search.shards import INFO_FILE, ShardData, write_shard

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 30),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 20),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
}


def micro_config():
    config = model_config("tiny")
    config.embed_dim = 32
    config.vision.image_size, config.vision.patch_size = 32, 8
    config.vision.width, config.vision.layers, config.vision.heads = 32, 1, 2
    config.preprocess.image_size = 32
    config.text.width, config.text.layers, config.text.heads = 32, 1, 2
    config.text.context_length = 16
    return config


def micro_model_dir(path: Path, captions: list[str], seed: int = 0) -> Path:
    """A random micro CLIP with a BPE tokenizer trained on ``captions``, saved at ``path``."""
    torch.manual_seed(seed)
    tokenizer = Tokenizer.train(captions, vocab_size=300, context_length=16, min_frequency=1)
    config = micro_config()
    config.text.vocab_size = tokenizer.vocab_size
    return save_model_dir(path, create_model(config), tokenizer)


def text_embedding(model_dir: Path, text: str) -> np.ndarray:
    from clipforge import load

    model, _, tokenizer = load(model_dir)
    with torch.no_grad():
        return model.encode_text(tokenizer([text]), normalize=True)[0].numpy()


def swatch(colour: str, size: int = 48) -> Image.Image:
    return Image.new("RGB", (size, size), COLOURS[colour])


def apple(size: int = 48) -> Image.Image:
    """A red disc with a brown stalk and a green leaf on white."""
    from PIL import ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    pen.ellipse((6, 10, size - 6, size - 4), fill=COLOURS["red"])
    pen.line((size // 2, 12, size // 2 + 2, 3), fill=(110, 70, 30), width=3)
    pen.ellipse((size // 2 + 3, 2, size // 2 + 14, 9), fill=COLOURS["green"])
    return image


def write_embedding_dir(
    directory: Path,
    image_vectors: np.ndarray,
    captions: list[str],
    model: str | None,
    images: list[Image.Image] | None = None,
    sparse_image=None,
    shard_size: int | None = None,
) -> Path:
    """An embedding directory as ``embed`` writes it, from vectors given directly."""
    directory = Path(directory)
    count, dim = image_vectors.shape
    shard_size = shard_size or count
    shards = []
    for shard, start in enumerate(range(0, count, shard_size)):
        rows = range(start, min(count, start + shard_size))
        thumbnails = []
        for row in rows:
            if images is None:
                thumbnails.append("")
                continue
            relative = f"images/{shard:04d}/{row:09d}.png"
            (directory / relative).parent.mkdir(parents=True, exist_ok=True)
            images[row].save(directory / relative)
            thumbnails.append(relative)
        write_shard(
            directory,
            shard,
            ShardData(
                list(rows),
                [f"item-{r}" for r in rows],
                [captions[r] for r in rows],
                [f"item-{r}" for r in rows],
                thumbnails,
                image=image_vectors[start : rows.stop],
                sparse_image=None if sparse_image is None else sparse_image[start : rows.stop],
            ),
        )
        shards.append(shard)
    dims = {"image": dim}
    if sparse_image is not None:
        dims["sparse_image"] = sparse_image.shape[1]
    info = {
        "model": str(model) if model else None,
        "dims": dims,
        "count": count,
        "shards": shards,
        "skipped": 0,
    }
    (directory / INFO_FILE).write_text(json.dumps(info))
    return directory


def known_answer_index(
    tmp_path: Path, query: str = "a red apple", count: int = 12, target: int = 3
) -> tuple[Path, Path]:
    """(model dir, index dir) where the text ``query`` embeds exactly to item ``target``.

    Item vectors are random except ``target``, which is the model's embedding of ``query``, so
    the query's top hit is ``target`` with cosine 1 whatever the random weights are.
    """
    colours = list(COLOURS)
    captions = [f"a {colours[i % len(colours)]} square number {i}" for i in range(count)]
    captions[target] = query
    model_dir = micro_model_dir(tmp_path / "model", captions + [query])
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(count, 32)).astype(np.float32)
    vectors[target] = text_embedding(model_dir, query)
    images = [swatch(colours[i % len(colours)]) for i in range(count)]
    images[target] = apple()
    write_embedding_dir(tmp_path / "emb", vectors, captions, model_dir, images)
    index_dir = tmp_path / "idx"
    build_index_dir(BuildConfig(tmp_path / "emb", index_dir, index=IndexConfig()))
    return model_dir, index_dir


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(app):
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
