"""``clipforge VERB …``: a table from verb to a small module with ``add_arguments`` and ``run``.

Each verb module parses its flags, builds a typed config and calls one library function.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# verb → (module under clipforge.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("list_components", "list registered models, data sources, objectives and evaluators"),
    "embed": ("embed", "embed a data set into sharded .npy + Parquet metadata (resumable)"),
    "index": ("index", "build a FAISS (and lexical) index from embeddings"),
    "search": ("search", "search an index by text, image, or image + text"),
    "serve": ("serve", "serve the search API and web page over an index"),
    "refine": ("refine", "CLIP-Refine a trained model: close the modality gap (hycd + rafa)"),
    "train": ("train", "train a model (YAML config, flags, key=value overrides)"),
    "bench": ("bench", "measure training speed: clipforge bench train --json"),
    "eval": ("eval", "evaluate a model: zero-shot classification or image-text retrieval"),
    "convert": ("convert", "convert between clipforge and Hugging Face CLIP directories"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipforge", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"clipforge.cli.{module_name}")
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def reexec_with_tcmalloc() -> None:
    """Restart this command with tcmalloc preloaded, when installed (``CLIPFORGE_NO_TCMALLOC=1``
    turns it off). glibc's malloc hands large activation buffers back to the OS and page-faults
    them in again every step; tcmalloc keeps them. Measured in benchmarks/README.md."""
    import os
    preload = os.environ.get("LD_PRELOAD", "")
    launched_as_cli = os.path.basename(sys.argv[0]) in ("clipforge", "__main__.py")
    if (not launched_as_cli or os.environ.get("CLIPFORGE_NO_TCMALLOC") == "1"
            or "libtcmalloc" in preload or not os.path.exists(TCMALLOC)):
        return
    env = dict(os.environ, LD_PRELOAD=":".join(p for p in (TCMALLOC, preload) if p))
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))  # no >1 GB notices
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        pass                     # run on with the default allocator


def main(argv: list[str] | None = None) -> int:
    if argv is None:            # a real command line (not a call from Python code)
        reexec_with_tcmalloc()
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"clipforge {args.verb}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
