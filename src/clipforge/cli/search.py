"""``clipforge search``: query an index by text, image, or image + text (composed)."""

from __future__ import annotations

import argparse

from .defaults import given, shows_default

SEARCH = "clipforge.search.searcher:Searcher.search"
QUERY = "clipforge.search.query:Query"
DESCRIPTION = """Search an index built by `clipforge index`: by text, by an image, by image + text
(a composed query: the image, modified by the text), or "more like" an indexed item. Modes:
dense (embeddings, FAISS), sparse (lexical, when the model has lexicon heads) or hybrid."""
EXAMPLES = """examples:
  clipforge search --index idx "a red heart"
  clipforge search --index idx --image query.png --k 5
  clipforge search --index idx --image query.png --text "in blue" --json
  clipforge search --index idx --id 42                     # more like item 42"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="directory written by `clipforge index`")
    parser.add_argument("query", nargs="?", default=None, help="text query")
    parser.add_argument("--text", default=None, help="text query (with --image: the modification)")
    parser.add_argument("--image", default=None, help="query image file")
    parser.add_argument(
        "--id", type=int, default=None, help="more like the indexed item with this id"
    )
    shows_default(parser.add_argument("--k", type=int, help="results to return"), f"{SEARCH}.k")
    shows_default(
        parser.add_argument(
            "--mode", choices=["dense", "sparse", "hybrid"], help="which index to search"
        ),
        f"{SEARCH}.mode",
    )
    shows_default(
        parser.add_argument("--hybrid-weight", type=float, help="dense share of a hybrid score"),
        f"{SEARCH}.hybrid_weight",
    )
    shows_default(
        parser.add_argument("--text-weight", type=float, help="λ of composed queries"),
        f"{QUERY}.text_weight",
    )
    parser.add_argument(
        "--text-delta",
        action="store_true",
        help="composed query = image + λ(text − 'a photo') (default: image + λ·text)",
    )
    parser.add_argument(
        "--model", default=None, help="encode queries with this model (default: the index's model)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON (default: a table)"
    )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..data.record import RawRecord, decode_image
    from ..search.query import Query
    from ..search.searcher import Searcher

    if args.query and args.text:
        raise ValueError("give the text once: as the positional query or with --text")
    if args.k is not None and args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    image = None
    if args.image:
        if not Path(args.image).is_file():
            raise FileNotFoundError(f"{args.image}: query image not found")
        image = decode_image(RawRecord(args.image, args.image, ("query",)))
    query = Query(
        args.query or args.text,
        image,
        args.id,
        text_delta=args.text_delta,
        **given(text_weight=args.text_weight),
    )
    searcher = Searcher.open(args.index, model=args.model)
    hits = searcher.search(
        query, **given(k=args.k, mode=args.mode, hybrid_weight=args.hybrid_weight)
    )
    if args.json:
        print(json.dumps({"results": [h.to_dict() for h in hits]}, indent=2))
        return 0
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:3d}  {hit.score:8.4f}  {hit.key}  {hit.caption}")
    return 0
