"""Input-pipeline throughput (read → decode → augment → tokenise → batch) vs what training eats.

    python benchmarks/data_throughput.py            # emoji + generated JPEG WebDataset
    python benchmarks/data_throughput.py --quick

For each source, each worker count and JPEG draft on/off, the training loader
(``clipforge.data.loader.build_loader`` with the train transform of the model) is iterated and
timed after its first batch. The training side is ``clipforge.training.bench.bench_train`` on
the same model and batch size, measured in the same run. The target is a pipeline at ≥ 2× the
training speed, so data never waits on the model.

Sources:

- ``builtin:emoji``: ~3,000 small PNG drawings, captions from CLDR names;
- a WebDataset of generated 640×480 "photos" (gradients and shapes, JPEG quality 90, the size
  img2dataset typically stores), 4 shards, written to a temporary folder (``--wds`` to reuse).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def photo_like(index: int, width: int = 640, height: int = 480) -> bytes:
    """A JPEG with smooth gradients and a few shapes (compresses like a photo, unlike noise)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = random.Random(index)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            (x / width * rng.uniform(80, 255) + y / height * rng.uniform(0, 120)) % 256
            for _ in range(3)
        ],
        axis=-1,
    )
    image = Image.fromarray(base.astype(np.uint8))
    pen = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, x0 + rng.randrange(20, 300), y0 + rng.randrange(20, 300))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (pen.ellipse if rng.random() < 0.5 else pen.rectangle)(box, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_photo_shards(folder: Path, shards: int, per_shard: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    words = ["red", "blue", "green", "round", "square", "bright", "dark", "gradient", "shape"]
    for shard in range(shards):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
            for item in range(per_shard):
                index = shard * per_shard + item
                key = f"{shard:05d}{item:04d}"
                rng = random.Random(index)
                caption = "a photo of " + " ".join(rng.choice(words) for _ in range(6))
                for ext, data in (("jpg", photo_like(index)), ("txt", caption.encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return folder


def time_loader(
    source_spec: str,
    model_name: str,
    tokenizer,
    workers: int,
    draft: bool,
    batch_size: int,
    batches: int,
) -> dict:
    from clipforge.data.loader import LoaderConfig, build_loader
    from clipforge.data.sources import open_source
    from clipforge.data.transforms import ImageTransform
    from clipforge.models import model_config

    preprocess = model_config(model_name).preprocess
    source = open_source(source_spec, seed=0)
    loader = build_loader(
        source,
        ImageTransform(preprocess, train=True),
        tokenizer,
        LoaderConfig(batch_size=batch_size, workers=workers, jpeg_draft=draft),
    )
    iterator = iter(loader)
    next(iterator)  # worker start-up and the first batch are not counted
    started = time.perf_counter()
    samples, seen = 0, 0
    for batch in iterator:
        samples += len(batch)
        seen += 1
        if seen >= batches:
            break
    elapsed = time.perf_counter() - started
    del iterator
    return {
        "samples_per_s": round(samples / elapsed, 1),
        "batches": seen,
        "seconds": round(elapsed, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per setting")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--wds", type=Path, help="a folder of JPEG shards to reuse")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.workers = 4, "2"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from clipforge.data.sources import open_source
    from clipforge.data.tokenizer import Tokenizer
    from clipforge.training.bench import BenchConfig, bench_train

    tmp = tempfile.TemporaryDirectory()
    wds_dir = args.wds or write_photo_shards(
        Path(tmp.name) / "photos", 4, max(32, args.batch_size * (args.batches + 2) // 4)
    )
    captions = list(open_source("builtin:emoji").captions())[:5000]
    tokenizer = Tokenizer.train(captions, vocab_size=2000, context_length=32)
    from clipforge.machine import machine_info

    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info("fp32"),
        "load_avg_start": os.getloadavg(),
        "model": args.model,
        "batch_size": args.batch_size,
        "pipelines": [],
    }
    sources = {
        "builtin:emoji": "builtin:emoji",
        "wds-jpeg-640x480": f"wds:{wds_dir}?shuffle_buffer=64",
    }
    for name, spec in sources.items():
        for workers in (int(w) for w in args.workers.split(",")):
            drafts = (True, False) if name.startswith("wds") else (True,)
            for draft in drafts:
                result = time_loader(
                    spec, args.model, tokenizer, workers, draft, args.batch_size, args.batches
                )
                entry = {"source": name, "workers": workers, "jpeg_draft": draft, **result}
                report["pipelines"].append(entry)
                print(
                    f"{name:20s} workers {workers} draft {str(draft):5s}: "
                    f"{result['samples_per_s']:8.1f} samples/s",
                    flush=True,
                )
    train = bench_train(
        BenchConfig(
            args.model, args.batch_size, steps=4 if args.quick else 8, warmup=2, precision="fp32"
        )
    )
    report["train_samples_per_s"] = train["samples_per_s"]
    best = {}
    for entry in report["pipelines"]:
        best[entry["source"]] = max(best.get(entry["source"], 0), entry["samples_per_s"])
    report["pipeline_over_training"] = {
        k: round(v / train["samples_per_s"], 2) for k, v in best.items()
    }
    print(
        f"training consumes {train['samples_per_s']} samples/s ({args.model}, batch "
        f"{args.batch_size}, fp32); pipeline / training: {report['pipeline_over_training']}"
    )
    report["load_avg_end"] = os.getloadavg()
    out = args.out or HERE / "results" / f"data-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
