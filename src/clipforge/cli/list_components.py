"""``clipforge list``: what the registries hold."""

from __future__ import annotations

import argparse

DESCRIPTION = """List the registered components: model sizes (--model), data-source kinds (the
KIND of a KIND:LOCATION data spec), training objectives (--objective) and evaluators (clipforge
eval NAME, or an evals: entry of a training config)."""
EXAMPLES = """examples:
  clipforge list
  clipforge list objectives"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind",
        nargs="?",
        choices=["models", "data", "objectives", "evaluators"],
        help="only this registry (default: all four)",
    )


def run(args: argparse.Namespace) -> int:
    from ..data.sources import DATA_SOURCES
    from ..evaluation import EVALUATORS
    from ..models import MODELS
    from ..objectives import OBJECTIVES

    tables = {
        "models": MODELS,
        "data": DATA_SOURCES,
        "objectives": OBJECTIVES,
        "evaluators": EVALUATORS,
    }
    for kind, registry in tables.items():
        if args.kind in (None, kind):
            print(f"{kind}: {', '.join(registry.names())}")
    return 0
