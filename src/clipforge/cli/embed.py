"""``clipforge embed``: a data source → sharded embeddings + Parquet metadata, resumable."""

from __future__ import annotations

import argparse

from .defaults import given, shows_default

CONFIG = "clipforge.search.embed:EmbedConfig"
DESCRIPTION = """Embed every record of a data set with a trained model: float32/float16 .npy shards
of image and/or text embeddings plus Parquet metadata (key, caption, image path). A killed run
resumes: finished shards are kept, only missing ones are computed. `clipforge index` builds a
search index from the result."""
EXAMPLES = """examples:
  clipforge embed --model runs/demo --data "builtin:emoji?split=all" --out emb
  clipforge embed --model runs/demo --data "csv:pairs.csv" --out emb --float16 --modality image"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="run directory, checkpoint, model directory or HF CLIP directory",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="data spec, e.g. builtin:emoji?split=all, csv:pairs.csv, folder:DIR",
    )
    parser.add_argument(
        "--out", required=True, help="embedding directory (resumed when it holds an earlier embed)"
    )
    shows_default(
        parser.add_argument(
            "--modality", choices=["image", "text", "both"], help="which embeddings to write"
        ),
        f"{CONFIG}.modality",
    )
    parser.add_argument(
        "--float16",
        action="store_true",
        help="store float16 shards: half the disk, ~1e-3 error (default: float32)",
    )
    shows_default(
        parser.add_argument("--batch-size", type=int, help="records per forward"),
        f"{CONFIG}.batch_size",
    )
    shows_default(
        parser.add_argument("--workers", type=int, help="data-loader processes"),
        f"{CONFIG}.workers",
    )
    shows_default(
        parser.add_argument("--shard-size", type=int, help="records per shard"),
        f"{CONFIG}.shard_size",
    )
    parser.add_argument(
        "--no-thumbnails",
        action="store_true",
        help="don't export thumbnails of records that have no image file "
        "(default: export them, for the search page)",
    )
    shows_default(parser.add_argument("--device", help="cpu, cuda, cuda:1 …"), f"{CONFIG}.device")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default: a bar on stderr)"
    )


def run(args: argparse.Namespace) -> int:
    from ..search.embed import EmbedConfig, embed

    config = EmbedConfig(
        model=args.model,
        data=args.data,
        out=args.out,
        **given(
            modality=args.modality,
            float16=args.float16 or None,
            batch_size=args.batch_size,
            workers=args.workers,
            shard_size=args.shard_size,
            thumbnails=False if args.no_thumbnails else None,
            device=args.device,
        ),
    )
    result = embed(config, progress=not args.no_progress)
    print(
        f"{result.count} vectors in {len(result.computed_shards) + len(result.reused_shards)} "
        f"shards ({len(result.computed_shards)} computed, {len(result.reused_shards)} kept), "
        f"{result.skipped} records skipped → {result.out}"
    )
    return 0
