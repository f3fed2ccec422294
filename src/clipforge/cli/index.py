"""``clipforge index``: embeddings → a FAISS index (chosen by size and memory budget) + metadata."""

from __future__ import annotations

import argparse

from .defaults import given, shows_default

INDEX = "clipforge.search.index:IndexConfig"
DESCRIPTION = """Build a search index from an embedding directory written by `clipforge embed` or
by `clip-retrieval inference` (img_emb/, text_emb/, metadata/ Parquet, paired by partition): a
FAISS index chosen for the number of vectors and the memory budget (exact Flat, IVF, or IVF-PQ;
any factory string with --index-key), its search parameter tuned to the target recall, the
metadata, a lexical index when the embeddings have one, and the folder images are served from."""
EXAMPLES = """examples:
  clipforge index --embeddings emb --out idx                      # index chosen for N and 2GB
  clipforge index --embeddings emb --out idx --memory-budget 512MB --target-recall 0.9
  clipforge index --embeddings emb --out idx --index-key HNSW32,Flat
  clipforge index --embeddings clip_retrieval_out --out idx --model runs/demo  # clip-retrieval"""


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
    if parser.epilog is None:  # a cli/main.py that does not read EXAMPLES yet
        parser.formatter_class, parser.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    parser.add_argument(
        "--embeddings",
        required=True,
        help="directory written by `clipforge embed` or `clip-retrieval inference`",
    )
    parser.add_argument("--out", required=True, help="index directory to write")
    parser.add_argument(
        "--memory-budget",
        type=memory_size,
        metavar="SIZE",
        help="memory the index may take, e.g. 2GB, 512MB (default: 2GB, IndexConfig.memory_budget)",
    )
    shows_default(
        parser.add_argument("--modality", choices=["image", "text"], help="which vectors to index"),
        "clipforge.search.build:BuildConfig.modality",
    )
    parser.add_argument(
        "--index-key",
        type=index_key,
        metavar="FACTORY",
        help="force a FAISS factory string, e.g. 'HNSW32,Flat' or "
        "'IVF1024,PQ32np' (default: chosen from N and the budget)",
    )
    shows_default(
        parser.add_argument(
            "--target-recall",
            type=recall,
            metavar="R",
            help="recall@10 the search parameter is tuned for",
        ),
        f"{INDEX}.target_recall",
    )
    parser.add_argument(
        "--model",
        help="the model that made the vectors, recorded for `serve` to embed queries with "
        "(default: the one `clipforge embed` recorded; clip-retrieval folders record none)",
    )
    parser.add_argument(
        "--image-root",
        help="folder that holds every image, served by `serve` "
        "(default: the thumbnails `embed` wrote, else the images' deepest common "
        "folder; never / or the home folder)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        default=None,
        help="no progress bar (default: a bar on stderr)",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from ..search.build import BuildConfig, build_index_dir
    from ..search.index import IndexConfig

    index = IndexConfig(
        **given(
            memory_budget=args.memory_budget,
            index_key=args.index_key,
            target_recall=args.target_recall,
        )
    )
    info = build_index_dir(
        BuildConfig(
            args.embeddings,
            args.out,
            index=index,
            progress=not args.no_progress,
            **given(modality=args.modality, image_root=args.image_root, model=args.model),
        )
    )
    summary = {
        k: info[k]
        for k in (
            "index_type",
            "count",
            "dim",
            "recall_at_10",
            "search_params",
            "build_seconds",
            "index_bytes",
        )
    }
    print(json.dumps(summary))
    return 0
