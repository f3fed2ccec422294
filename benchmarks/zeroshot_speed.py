"""Zero-shot classification over 10,000 images at ``tiny``: images/s against the 10 s target.

    python benchmarks/zeroshot_speed.py                       # tiny, random weights, 10,000 images
    python benchmarks/zeroshot_speed.py --model runs/demo     # trained: acc1 means something
    python benchmarks/zeroshot_speed.py --images 2000 --precision bf16 --device cuda

The images are made in memory before the clock starts: the built-in emoji (train split) drawn
again and again with augmentation (random crop of 60–100 % of the side, flip, rotation up to
±20°, brightness/contrast/saturation ±25 %, output 96 px so the model's preprocessing resizes
them) — 10,000 distinct images over the emoji's ~100 classes. The clock then times what
``clipforge eval zeroshot`` does on a data set: build the classifier (every class × the 16
templates through the text tower), preprocess every image in DataLoader workers, encode them
with the image tower, and classify (top-5 against the classifier, acc1/acc5). Nothing is read
from or written to disk inside the clock. A warm-up pass over ``--warmup`` images goes first
(thread pools, allocator). A second clock times the image tower alone on preprocessed tensors,
to show how much of the time is the model and how much the input side (on the first
``--tower-images``, 2,000 by default, so the run stays short on a slow CPU).

The result — wall time, images/s, the split, acc1, ``machine_info`` with the precision that
ran — is written to ``benchmarks/results/zeroshot-speed-YYYYMMDD-HHMMSS.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_SECONDS = 10.0


def augmented_images(count: int, seed: int = 0, size: int = 96):
    """``count`` augmented emoji as (PIL image, label), and the class names."""
    from PIL import Image, ImageEnhance

    from clipforge.data.record import decode_image
    from clipforge.data.sources import open_source

    emoji = open_source("builtin:emoji")
    base = [(decode_image(emoji[i]), emoji[i].metadata["label"]) for i in range(len(emoji))]
    rng = random.Random(seed)
    images = []
    for index in range(count):
        image, label = base[index % len(base)]
        width, height = image.size
        side = int(min(width, height) * rng.uniform(0.6, 1.0))
        left, top = rng.randint(0, width - side), rng.randint(0, height - side)
        view = image.crop((left, top, left + side, top + side))
        if rng.random() < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        view = view.rotate(rng.uniform(-20, 20), fillcolor=(255, 255, 255))
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            view = enhance(view).enhance(rng.uniform(0.75, 1.25))
        images.append((view.resize((size, size), Image.Resampling.BICUBIC), label))
    return images, emoji.class_names()


def make_source(images, class_names):
    from clipforge.data.record import RawRecord
    from clipforge.data.sources.base import MapSource

    class Source(MapSource):
        name = "emoji-augmented"

        def __len__(self):
            return len(images)

        def __getitem__(self, index):
            image, label = images[index]
            return RawRecord(str(index), image, (class_names[label],), {"label": label})

        def class_names(self):
            return list(class_names)

    return Source()


def load_model(name: str, device: str):
    """A model dir / run dir, or a size name built with random weights and an emoji tokenizer."""
    from clipforge.loading import load

    if Path(name).exists():
        return load(name, device=device)
    from clipforge.data.sources import open_source
    from clipforge.data.tokenizer import Tokenizer
    from clipforge.models import CLIP, model_config
    from clipforge.models.io import save_model_dir

    config = model_config(name)
    tokenizer = Tokenizer.train(
        open_source("builtin:emoji").captions(),
        vocab_size=config.text.vocab_size,
        context_length=config.text.context_length,
    )
    config.text.vocab_size = tokenizer.vocab_size
    model = CLIP(config)
    model.init_weights()
    folder = Path(tempfile.mkdtemp(prefix="zeroshot-speed-"))
    return load(save_model_dir(folder / name, model, tokenizer), device=device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="size name (random weights) or model dir")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=512)
    parser.add_argument("--tower-images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--note", default="", help="stored with the result (e.g. machine load)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    import os

    import torch

    from clipforge.evaluation.embedding import EncodeConfig
    from clipforge.evaluation.zeroshot import ZeroShotConfig, zeroshot_classification
    from clipforge.machine import describe, machine_info
    from clipforge.training.precision import resolve_precision

    device = (
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    precision = resolve_precision(args.precision, torch.device(device))
    dtype = torch.bfloat16 if precision == "bf16" else None
    model, preprocess, tokenizer = load_model(args.model, device)
    start = time.perf_counter()
    images, class_names = augmented_images(args.images + args.warmup)
    print(f"made {len(images)} augmented images in {time.perf_counter() - start:.1f} s (untimed)")
    config = ZeroShotConfig(
        encode=EncodeConfig(args.batch_size, args.workers, dtype, progress=False)
    )
    warm = make_source(images[: args.warmup], class_names)
    timed = make_source(images[args.warmup :], class_names)
    zeroshot_classification(model, preprocess, tokenizer, warm, config)

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    result = zeroshot_classification(model, preprocess, tokenizer, timed, config)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()[0]

    # the image tower alone, on tensors preprocessed before the clock
    tower_images = images[args.warmup :][: args.tower_images]
    tensors = torch.stack([preprocess(image) for image, _ in tower_images])
    autocast = torch.autocast(device, dtype) if dtype else torch.autocast(device, enabled=False)
    start = time.perf_counter()
    with torch.no_grad(), autocast:
        for batch in tensors.split(args.batch_size):
            model.encode_image(batch.to(device))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    model_seconds = time.perf_counter() - start

    count = result["num_samples"]
    report = {
        "benchmark": "zeroshot_speed",
        "model": args.model,
        "images": count,
        "classes": len(class_names),
        "templates": result["num_templates"],
        "batch_size": args.batch_size,
        "workers": args.workers,
        "wall_seconds": round(wall, 3),
        "images_per_second": round(count / wall, 1),
        "target_seconds": TARGET_SECONDS,
        "meets_target": wall <= TARGET_SECONDS,
        "image_tower_images": len(tensors),
        "image_tower_seconds": round(model_seconds, 3),
        "image_tower_images_per_second": round(len(tensors) / model_seconds, 1),
        "acc1": result["metrics"]["acc1"],
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "torch_threads": torch.get_num_threads(),
        "note": args.note,
        "machine": machine_info(precision),
    }
    verdict = "met" if wall <= TARGET_SECONDS else "missed"
    print(
        f"zero-shot, {count} images at {args.model}: {wall:.2f} s wall, "
        f"{count / wall:.0f} images/s (target {TARGET_SECONDS:.0f} s: {verdict}); image tower "
        f"alone {len(tensors) / model_seconds:.0f} images/s; acc1 "
        f"{100 * result['metrics']['acc1']:.2f}; load average {load_before:.1f}→{load_after:.1f}"
    )
    print(describe(report["machine"]))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"zeroshot-speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
