"""``clipforge bench train``: time training steps; ``--json`` prints one JSON object."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["train"], help="what to measure")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--objective", action="append", help="objectives (default clip)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..machine import describe
    from ..training.bench import BenchConfig, bench_train
    result = bench_train(BenchConfig(args.model, args.batch_size, args.steps, args.warmup,
                                     args.precision, tuple(args.objective or ["clip"]),
                                     args.threads))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} batch {result['batch_size']} {result['precision']}: "
              f"{result['samples_per_s']} samples/s, step {result['step_ms_median']} ms "
              f"(median of {result['steps']}); {describe(result['machine'])}")
    return 0
