"""``clipforge refine``: CLIP-Refine post-pre-training of a trained model (closes the modality gap)."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..training.precision import PRECISIONS
    parser.add_argument("--model", required=True, help="run or model directory to refine")
    parser.add_argument("--data", required=True, help="training data spec (image-text pairs)")
    parser.add_argument("--out", required=True, help="run directory for the refined model")
    parser.add_argument("--val", help="data spec for the modality gap and metrics "
                                      "(default: --data)")
    parser.add_argument("--lr", type=float,
                        help="learning rate (default: the paper's 1e-6)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.5, help="HyCD blend (identity share)")
    parser.add_argument("--temperature", type=float, default=1.0, help="HyCD temperature")
    parser.add_argument("--similarity", choices=["scaled_cosine", "dot"],
                        help="HyCD logits: s·cos (default) or the reference's unnormalised dot "
                             "products")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--no-eval", action="store_true",
                        help="measure only the gap, not zero-shot / retrieval metrics")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..training.refine import RefineConfig, refine
    chosen = {"lr": args.lr, "similarity": args.similarity}      # None: the dataclass default
    config = RefineConfig(model=args.model, data=args.data, out=args.out, val=args.val,
                          **{k: v for k, v in chosen.items() if v is not None},
                          epochs=args.epochs, batch_size=args.batch_size,
                          workers=args.workers, alpha=args.alpha, temperature=args.temperature,
                          seed=args.seed, precision=args.precision, evaluate=not args.no_eval,
                          progress=not args.no_progress)
    report = refine(config)
    print(json.dumps({"gap_before": report["gap_before"], "gap_after": report["gap_after"],
                      "steps": report["steps"], "out": args.out}, indent=2))
    return 0
