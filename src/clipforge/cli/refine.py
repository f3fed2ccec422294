"""``clipforge refine``: CLIP-Refine post-pre-training that closes a model's modality gap."""

from __future__ import annotations

import argparse
import json

from .flags import add_precision_flag, add_run_length_flags

EPILOG = """examples:
  clipforge refine --model runs/demo --data builtin:emoji --out runs/refined
  clipforge refine --model runs/demo --data 'csv:pairs.csv?image_column=path' \\
      --out runs/r --steps 200
  clipforge refine --model runs/demo --data builtin:emoji --out runs/r --time-budget 5 --no-eval

Prints the modality gap before and after; refine.json in --out holds the full report."""

# flag → RefineConfig field; a flag left out keeps the dataclass default
FIELDS = {
    "val": "val",
    "lr": "lr",
    "epochs": "epochs",
    "steps": "steps",
    "time_budget": "time_budget",
    "batch_size": "batch_size",
    "workers": "workers",
    "alpha": "alpha",
    "temperature": "temperature",
    "seed": "seed",
    "precision": "precision",
    "similarity": "similarity",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:

    parser.epilog = EPILOG
    parser.add_argument("--model", required=True, help="run or model directory to refine")
    parser.add_argument("--data", required=True, help="training data spec (image-text pairs)")
    parser.add_argument("--out", required=True, help="run directory for the refined model")
    parser.add_argument(
        "--val", help="data spec for the modality gap and metrics (default: --data)"
    )
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the paper's 1e-6)")
    add_run_length_flags(parser, "passes over --data (default 1)")
    parser.add_argument("--batch-size", type=int, help="samples per step (default 64)")
    parser.add_argument("--workers", type=int, help="data-loader worker processes (default 2)")
    parser.add_argument(
        "--alpha", type=float, help="HyCD blend: share of the identity target (default 0.5)"
    )
    parser.add_argument("--temperature", type=float, help="HyCD temperature (default 1.0)")
    parser.add_argument(
        "--similarity",
        choices=["scaled_cosine", "dot"],
        help="HyCD logits: s·cos (default) or the reference's unnormalised dot products",
    )
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    add_precision_flag(parser)
    parser.add_argument(
        "--no-eval",
        action="store_true",
        help="measure only the gap, not zero-shot / retrieval metrics",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar or progress lines"
    )


def run(args: argparse.Namespace) -> int:
    from ..training.refine import RefineConfig, refine
    from .defaults import given

    config = RefineConfig(
        model=args.model,
        data=args.data,
        out=args.out,
        evaluate=not args.no_eval,
        progress=not args.no_progress,
        **given(**{field: getattr(args, flag) for flag, field in FIELDS.items()}),
    )
    report = refine(config)
    print(
        json.dumps(
            {
                "gap_before": report["gap_before"],
                "gap_after": report["gap_after"],
                "steps": report["steps"],
                "out": args.out,
            },
            indent=2,
        )
    )
    return 0
