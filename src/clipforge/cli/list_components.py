"""``clipforge list``: what the registries hold."""

from __future__ import annotations

import argparse

DESCRIPTION = """List the registered components: model sizes (--model), data-source kinds (the
KIND of a KIND:LOCATION data spec), training objectives (--objective), evaluators (clipforge
eval NAME, or an evals: entry of a training config) and experiment trackers (--report-to)."""
EXAMPLES = """examples:
  clipforge list
  clipforge list objectives"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind",
        nargs="?",
        choices=["models", "data", "objectives", "evaluators", "reporters"],
        help="only this registry (default: all of them)",
    )


def run(args: argparse.Namespace) -> int:
    from ..data.sources import DATA_SOURCES
    from ..evaluation import EVALUATORS
    from ..models import MODELS
    from ..objectives import OBJECTIVES
    from ..training.reporters import REPORTERS

    tables = {
        "models": MODELS,
        "data": DATA_SOURCES,
        "objectives": OBJECTIVES,
        "evaluators": EVALUATORS,
        "reporters": REPORTERS,
    }
    for kind, registry in tables.items():
        if args.kind in (None, kind):
            print(f"{kind}: {', '.join(registry.names())}")
    return 0
