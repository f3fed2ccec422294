"""``clipforge index``: embeddings → a FAISS index (chosen by size and memory budget) + metadata."""

from __future__ import annotations

import argparse

EXAMPLE = """examples:
  clipforge index --embeddings emb --out idx                      # index chosen for N and 2GB
  clipforge index --embeddings emb --out idx --memory-budget 512MB --target-recall 0.9
  clipforge index --embeddings emb --out idx --index-key HNSW32,Flat"""


def _default(cls_name: str, name: str):
    from dataclasses import MISSING, fields

    from ..search import build, index
    cls = {"IndexConfig": index.IndexConfig, "BuildConfig": build.BuildConfig}[cls_name]
    field = next(f for f in fields(cls) if f.name == name)
    return field.default if field.default is not MISSING else None


def memory_size(text: str) -> int:
    from ..search.index import parse_bytes
    try:
        value = parse_bytes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"memory budget {text!r} must be positive")
    return value


def index_key(text: str) -> str:
    from ..search.index import check_index_key
    try:
        return check_index_key(text)
    except (ValueError, ImportError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def recall(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"target recall {text!r} must be in (0, 1]")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLE
    budget = _default("IndexConfig", "memory_budget") / 2**30
    parser.add_argument("--embeddings", required=True, help="directory written by `embed`")
    parser.add_argument("--out", required=True, help="index directory to write")
    parser.add_argument("--memory-budget", type=memory_size, metavar="SIZE",
                        help=f"memory the index may take, e.g. 2GB, 512MB (default: {budget:g}GB)")
    parser.add_argument("--modality", choices=["image", "text"],
                        help="which vectors to index (default: "
                        f"{_default('BuildConfig', 'modality')})")
    parser.add_argument("--index-key", type=index_key, metavar="FACTORY",
                        help="force a FAISS factory string, e.g. 'HNSW32,Flat' or "
                        "'IVF1024,PQ32np' (default: chosen from N and the budget)")
    parser.add_argument("--target-recall", type=recall, metavar="R",
                        help="recall@10 the search parameter is tuned for (default: "
                        f"{_default('IndexConfig', 'target_recall')})")
    parser.add_argument("--image-root", help="folder that holds every image, served by `serve` "
                        "(default: the thumbnails `embed` wrote, else the images' deepest common "
                        "folder; never / or the home folder)")


def run(args: argparse.Namespace) -> int:
    import json

    from ..search.build import BuildConfig, build_index_dir
    from ..search.index import IndexConfig
    index = IndexConfig(**{k: v for k, v in {"memory_budget": args.memory_budget,
                                             "index_key": args.index_key,
                                             "target_recall": args.target_recall}.items()
                           if v is not None})
    build = {"modality": args.modality, "image_root": args.image_root}
    info = build_index_dir(BuildConfig(args.embeddings, args.out, index=index,
                                       **{k: v for k, v in build.items() if v is not None}))
    summary = {k: info[k] for k in ("index_type", "count", "dim", "recall_at_10",
                                    "search_params", "build_seconds", "index_bytes")}
    print(json.dumps(summary))
    return 0
