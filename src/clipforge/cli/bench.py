"""``clipforge bench train``: time the trainer's optimizer step on synthetic data."""

from __future__ import annotations

import argparse
import json

from .flags import add_precision_flag

EPILOG = """examples:
  clipforge bench train --model tiny --batch-size 64 --steps 20 --json
  clipforge bench train --objective clip --objective filip:0.5 --precision fp32
  clipforge bench train --config configs/dreamlip.yaml --steps 5
  clipforge bench train optim.gradcache_chunk=16 --objective siglip --batch-size 256

KEY=VALUE overrides come right after "train". Progress goes to stderr, the result to stdout
(one JSON object with --json)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:

    parser.epilog = EPILOG
    parser.add_argument(
        "what",
        choices=["train"],
        help="what to measure: train (one optimizer step: forward, objectives, backward, AdamW)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="train-config overrides by dotted path, e.g. optim.accumulation=2",
    )
    parser.add_argument(
        "--config",
        help="train YAML whose model, objectives, optim and grow "
        "sections are benchmarked (e.g. configs/tcl.yaml)",
    )
    parser.add_argument(
        "--model",
        help="model size (clipforge list models) or model dir "
        "(default tiny; replaces the config's model)",
    )
    parser.add_argument("--batch-size", type=int, help="samples per micro-batch (default 64)")
    parser.add_argument("--steps", type=int, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3)")
    add_precision_flag(parser)
    parser.add_argument(
        "--objective",
        action="append",
        metavar="NAME[:WEIGHT]",
        help="objective (repeatable; default clip, or the config's; given "
        "with --config, replaces the config's objectives)",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..machine import describe
    from ..training.bench import BenchConfig, bench_train
    from .defaults import given

    config = BenchConfig(
        overrides=list(args.overrides),
        **given(
            model=args.model,
            batch_size=args.batch_size,
            steps=args.steps,
            warmup=args.warmup,
            precision=args.precision,
            threads=args.threads,
            config=args.config,
            objectives=tuple(args.objective) if args.objective else None,
        ),
    )
    result = bench_train(config)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['model']} ({', '.join(result['objectives'])}) batch "
            f"{result['batch_size']} {result['precision']}: {result['samples_per_s']} "
            f"samples/s, step {result['step_ms_median']} ms (median of {result['steps']}); "
            f"{describe(result['machine'])}"
        )
    return 0
