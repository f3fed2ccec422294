"""``clipforge VERB …``: a table from verb to a small module with ``add_arguments`` and ``run``.

Each verb module parses its flags, builds a typed config and calls one library function.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Collection

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
    "eval": ("eval", "evaluate a model: zero-shot, retrieval, linear probe, geometry, grounding"),
    "adapt": ("adapt", "adapt a model without changing it: learnt prompts (CoOp + GRAM)"),
    "explain": ("explain", "show where a model finds a text in an image: score map + box"),
    "benchmark": ("benchmark", "run models × data sets × tasks; CLIP_benchmark JSONs and CSV"),
    "convert": (
        "convert",
        "convert between clipforge, Hugging Face CLIP/SigLIP and OpenCLIP formats",
    ),
    "data": ("data", "data-set chores: clipforge data prepare openclipart"),
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``clipforge train: error: …``), not the usage block;
    ``--help`` still shows it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the hand-written examples of each verb's epilog as laid out, and appends
    ``(default: X)`` to a flag's help unless it already says its default. A flag left at
    ``None`` (its default is the config dataclass's, written into the help by hand) or a
    switch (``store_true``) gets nothing appended: "(default: None)" would say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS, []):
            return text
        return super()._get_help_string(action)


def build_parser(verbs_to_build: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole CLI parser; with ``verbs_to_build``, only those verbs get their flags (the
    others a one-line entry), so ``clipforge --help`` and ``clipforge train …`` never import
    what another verb's flags need (``eval`` lists its evaluators, which imports torch)."""
    from .. import __version__

    parser = Parser(
        prog="clipforge",
        description="Train, evaluate and search CLIP-family "
        "image-text models: clipforge VERB [flags].",
        formatter_class=HelpFormatter,
        epilog="example: clipforge train --time-budget 5 --out runs/first\n"
        "         clipforge VERB --help   (flags and an example per verb)",
    )
    parser.add_argument("--version", action="version", version=f"clipforge {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error (default: one line)",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=Parser)
    for verb, (module_name, help_text) in COMMANDS.items():
        if verbs_to_build is not None and verb not in verbs_to_build:
            verbs.add_parser(verb, help=help_text)
            continue
        module = importlib.import_module(f"clipforge.cli.{module_name}")
        sub = verbs.add_parser(
            verb,
            help=help_text,
            formatter_class=HelpFormatter,
            description=getattr(module, "DESCRIPTION", help_text),
            epilog=getattr(module, "EXAMPLES", None),
        )
        module.add_arguments(sub)
        sub.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the full traceback of an error",
        )
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
    if (
        not launched_as_cli
        or os.environ.get("CLIPFORGE_NO_TCMALLOC") == "1"
        or "libtcmalloc" in preload
        or not os.path.exists(TCMALLOC)
    ):
        return
    env = dict(os.environ, LD_PRELOAD=":".join(p for p in (TCMALLOC, preload) if p))
    env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))  # no >1 GB notices
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        pass  # run on with the default allocator


# Errors a user causes (bad input, missing files, a diverging loss, a missing extra): one line.
USER_ERRORS = (ValueError, KeyError, OSError, ImportError, FloatingPointError)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # a real command line (not a call from Python code)
        reexec_with_tcmalloc()
    words = sys.argv[1:] if argv is None else argv
    args = build_parser([w for w in words if w in COMMANDS][:1]).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"clipforge {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # every error: one line unless --debug
        if args.debug:
            raise
        known = isinstance(error, USER_ERRORS)
        message = one_line(error)
        if not known:
            message = (
                f"{type(error).__name__}: {message} (an internal error: run with "
                f"--debug for the traceback and please report it)"
            )
        print(f"clipforge {args.verb}: error: {message}", file=sys.stderr)
        return 2 if known else 1


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line. An exception re-raised by a DataLoader worker
    carries the worker's whole traceback ("Caught X in DataLoader worker process 0 …"): keep
    only its last line, the original ``Type: message``."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if lines[0].startswith("Caught ") and "worker" in lines[0]:
        original = re.match(r"[\w.]+: (.*)", lines[-1])  # "pkg.BadRecordError: bad …"
        return original.group(1) if original else lines[-1]
    return " ".join(lines)


if __name__ == "__main__":
    sys.exit(main())
