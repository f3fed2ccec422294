"""``clipforge train``: YAML config, then flags, then ``key=value`` overrides, then train()."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

# flag → dotted config path
FLAG_PATHS = {
    "data": "data.train", "val": "data.val", "batch_size": "data.batch_size",
    "workers": "data.workers", "model": "model.name", "out": "run.out", "lr": "optim.lr",
    "seed": "run.seed", "log_every": "run.log_every", "save_every": "run.save_every",
    "eval_every": "run.eval_every", "precision": "run.precision",
    "accumulation": "optim.accumulation",
}
LENGTH_FLAGS = {"epochs": "run.epochs", "steps": "run.steps", "time_budget": "run.time_budget"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..training.precision import PRECISIONS
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides by dotted path, e.g. optim.weight_decay=0.1")
    parser.add_argument("--config", type=Path, help="YAML config file")
    parser.add_argument("--data", help="training data spec (default builtin:emoji)")
    parser.add_argument("--val", help="validation data spec, or 'none'")
    parser.add_argument("--model", help="model size (clipforge list models) or a run to continue")
    parser.add_argument("--out", help="run directory")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float)
    length.add_argument("--steps", type=int)
    length.add_argument("--time-budget", type=float, metavar="MINUTES",
                        help="train for this many minutes; the schedule is planned to fit")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int, help="data-loader worker processes")
    parser.add_argument("--accumulation", type=int, help="micro-batches per optimizer step")
    parser.add_argument("--objective", action="append", metavar="NAME[:WEIGHT]",
                        help="objective to add (repeatable), e.g. --objective filip:0.5")
    parser.add_argument("--precision", choices=PRECISIONS)
    parser.add_argument("--log-every", type=int)
    parser.add_argument("--save-every", type=int, help="checkpoint every N steps")
    parser.add_argument("--eval-every", type=int, help="evaluate on --val every N steps")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad record")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-config", action="store_true", help="print the config and exit")


def config_from_args(args: argparse.Namespace):
    from ..training.config import TrainConfig, apply_override
    data: dict = {}
    if args.config:
        from ..common.yaml_files import load_yaml_mapping
        data = load_yaml_mapping(args.config)
    for flag, dotted in FLAG_PATHS.items():
        value = getattr(args, flag)
        if value is not None:
            if flag == "val" and value.lower() == "none":
                value = None
            apply_override(data, f"{dotted}={json.dumps(value)}")
    given = [flag for flag in LENGTH_FLAGS if getattr(args, flag) is not None]
    if given:
        run = data.setdefault("run", {})
        for flag, dotted in LENGTH_FLAGS.items():
            run.pop(dotted.split(".")[1], None)
        apply_override(data, f"{LENGTH_FLAGS[given[0]]}={getattr(args, given[0])}")
    if args.objective:
        data["objectives"] = list(args.objective)
    for flag, dotted in (("resume", "run.resume"), ("strict", "data.strict")):
        if getattr(args, flag):
            apply_override(data, f"{dotted}=true")
    if args.no_progress:
        apply_override(data, "run.progress=false")
    for override in args.overrides:
        apply_override(data, override)
    run = data.setdefault("run", {})
    if not any(run.get(k) is not None for k in ("epochs", "steps", "time_budget")):
        run["epochs"] = 1.0
    return TrainConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return 0
    from ..training import train
    result = train(config)
    if result.summary:
        from ..training.report import print_summary
        print_summary(result.summary, result.out)
    return 0
