"""``clipforge data SUB-VERB``: data-set chores, one sub-verb each.

``prepare NAME`` readies a built-in set that is not shipped with the package (for
``builtin:openclipart``: install Debian's ``openclipart-png`` as root, then build the cached
index). Reading data never installs anything; this command is the one explicit step that does.
``export-wds SPEC --out DIR`` writes a data set in CLIP_benchmark's ``wds_*`` layout.

Examples::

    sudo clipforge data prepare openclipart
    clipforge data export-wds "builtin:emoji?split=val" --out wds_emoji
"""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  sudo clipforge data prepare openclipart        # apt-get openclipart-png, then index it
  clipforge data prepare openclipart --no-install --root /usr/share/openclipart/png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_verb", required=True, metavar="SUB-VERB")
    prepare = actions.add_parser(
        "prepare",
        help="install and index a built-in data set that is not shipped",
        description="Install and index a built-in data set, e.g. "
        "`clipforge data prepare openclipart` (needs root for apt-get).",
        epilog=EXAMPLES,
        formatter_class=parser.formatter_class,
    )
    prepare.add_argument("name", help="built-in data set, e.g. openclipart")
    prepare.add_argument(
        "--root", help="where the set's files are (default: where Debian installs them)"
    )
    prepare.add_argument(
        "--no-install",
        action="store_true",
        help="only index files already there; never run apt-get",
    )
    prepare.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default: a bar on stderr)"
    )
    prepare.set_defaults(_data_run=run_prepare)
    export = actions.add_parser(
        "export-wds",
        help="write a data set in CLIP_benchmark's wds_* layout",
        description="Write a data set in CLIP_benchmark's wds_* layout (as "
        "clip_benchmark_export_wds does): OUT/SPLIT/0.tar … with nshards.txt, and "
        "classnames.txt + zeroshot_classification_templates.txt, or dataset_type.txt for "
        "--retrieval.",
        epilog="""examples:
  clipforge data export-wds "builtin:emoji?split=val" --out wds_emoji     # classification
  clipforge data export-wds "builtin:emoji?split=val" --out wds_emoji_captions --retrieval""",
        formatter_class=parser.formatter_class,
    )
    export.add_argument("data", help="data spec, e.g. builtin:emoji?split=val or an image folder")
    export.add_argument("--out", required=True, help="the data set's root folder")
    export.add_argument("--split", default="test", help="split folder to write (default: test)")
    export.add_argument(
        "--retrieval",
        action="store_true",
        help="write each image's captions (.txt) instead of its label (.cls)",
    )
    export.add_argument(
        "--max-count", type=int, default=10_000, help="samples per shard (default: 10000)"
    )
    export.set_defaults(_data_run=run_export)


def run(args: argparse.Namespace) -> int:
    return args._data_run(args)


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.builtin import BUILTIN_SETS

    source_class = BUILTIN_SETS.get(args.name)
    prepare = getattr(source_class, "prepare", None)
    if prepare is None:
        print(f"builtin:{args.name} ships with clipforge; nothing to prepare")
        return 0
    options = {"install": not args.no_install, "progress": not args.no_progress}
    if args.root:
        options["root"] = args.root
    print(prepare(**options))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..data.clip_benchmark_export import export_clip_benchmark
    from ..data.sources.base import MapSource
    from ..evaluation.runner import open_classification_data, open_data
    from ..evaluation.templates import load_templates

    source = open_data(args.data) if args.retrieval else open_classification_data(args.data)
    if not isinstance(source, MapSource):
        raise ValueError(f"{args.data}: a streamed source cannot be exported; give a map source")
    own = source.templates()
    summary = export_clip_benchmark(
        source,
        args.out,
        args.split,
        args.retrieval,
        () if args.retrieval else (own or load_templates()),
        args.max_count,
    )
    skipped = f", {len(summary.skipped)} records left out" if summary.skipped else ""
    print(f"wrote {summary.samples} samples in {summary.shards} shards to {args.out}{skipped}")
    return 0
