"""``clipforge train``: YAML config, then flags, then ``key=value`` overrides, then train()."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from .flags import DATA_KEY_FLAGS, add_data_key_flags, add_precision_flag, add_run_length_flags

# flag → dotted config path
FLAG_PATHS = {
    "data": "data.train",
    "val": "data.val",
    "batch_size": "data.batch_size",
    "workers": "data.workers",
    "model": "model.name",
    "out": "run.out",
    "lr": "optim.lr",
    "seed": "run.seed",
    "log_every": "run.log_every",
    "save_every": "run.save_every",
    "eval_every": "run.eval_every",
    "precision": "run.precision",
    "accumulation": "optim.accumulation",
    "report_to": "run.report_to",
    **{name: f"data.{name}" for name in DATA_KEY_FLAGS},
}
LENGTH_FLAGS = {"epochs": "run.epochs", "steps": "run.steps", "time_budget": "run.time_budget"}


DESCRIPTION = """Train a CLIP-family model. The configuration is built in layers: the defaults,
then a YAML --config, then flags, then KEY=VALUE overrides by dotted path. The run directory
(--out) receives config.yaml, checkpoints, metrics and the final model; --resume continues it."""

EXAMPLES = """examples:
  clipforge train --time-budget 5 --out runs/first           # tiny model on the built-in emoji set
  clipforge train --data "csv:pairs.csv?image_column=path&caption_column=text" --val none \\
      --epochs 3 --out runs/mine
  clipforge train --data train.csv --csv-img-key filepath --csv-caption-key title \\
      --csv-separator tab --out runs/openclip-csv      # open_clip_train's CSV flags
  clipforge train --data "shards/{00000..00099}.tar" --wds-caption-key json:captions \\
      --val none --out runs/coco-wds                   # captions from a .json field
  clipforge train --config configs/filip.yaml optim.lr=3e-4 --out runs/filip
  clipforge train --out runs/mine --resume                   # continue from the latest checkpoint
  clipforge train --out runs/mine --resume --steps 2000      # ... and extend it to 2000 steps
  clipforge train --steps 200 --report-to tensorboard,csv --out runs/tracked
                                                    # then: tensorboard --logdir runs/tracked"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..training.config import DataSection, ModelSection, OptimSection, RunSection

    data, model, optim, run = DataSection(), ModelSection(), OptimSection(), RunSection()

    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides by dotted path, e.g. optim.weight_decay=0.1 "
        "(see --print-config for every key)",
    )
    parser.add_argument("--config", type=Path, help="YAML config file (default: none)")
    parser.add_argument("--data", help=f"training data spec (default: {data.train})")
    parser.add_argument("--val", help=f"validation data spec, or 'none' (default: {data.val})")
    add_data_key_flags(parser)
    parser.add_argument(
        "--model",
        help=f"model size (clipforge list models) or a model "
        f"directory to start from (default: {model.name})",
    )
    parser.add_argument("--out", help=f"run directory (default: {run.out})")
    add_run_length_flags(parser, "passes over the training data (default: 1 when no length given)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help=f"samples per micro-batch and process (default: {data.batch_size})",
    )
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default: {optim.lr:g})")
    parser.add_argument("--seed", type=int, help=f"random seed (default: {run.seed})")
    parser.add_argument(
        "--workers", type=int, help=f"data-loader worker processes (default: {data.workers})"
    )
    parser.add_argument(
        "--accumulation",
        type=int,
        help=f"micro-batches per optimizer step (default: {optim.accumulation})",
    )
    parser.add_argument(
        "--objective",
        action="append",
        metavar="NAME[:WEIGHT]",
        help="objective to add (repeatable), e.g. --objective filip:0.5 "
        "(default: clip; clipforge list objectives)",
    )
    add_precision_flag(parser)
    parser.add_argument(
        "--log-every", type=int, help=f"log metrics every N steps (default: {run.log_every})"
    )
    parser.add_argument(
        "--save-every", type=int, help="checkpoint every N steps (default: at the end only)"
    )
    parser.add_argument(
        "--eval-every", type=int, help="evaluate on --val every N steps (default: at the end only)"
    )
    lifecycle = parser.add_mutually_exclusive_group()
    lifecycle.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest intact checkpoint, "
        "with the configuration saved there",
    )
    lifecycle.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the earlier run in --out (only ever a clipforge run)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first bad record (default: skip and count it)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="periodic log lines instead of a progress bar"
    )
    parser.add_argument(
        "--report-to",
        metavar="LIST",
        help="experiment trackers, comma-separated: tensorboard, wandb (offline unless "
        "$WANDB_MODE says otherwise), csv; metrics.jsonl and train.log are always written "
        "(default: none)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )


def config_from_args(args: argparse.Namespace):
    """The layered config; with ``--resume``, the layers go over the run's saved config."""
    from ..common.yaml_files import load_yaml_mapping
    from ..training.config import TrainConfig, apply_override

    data: dict = load_yaml_mapping(args.config) if args.config else {}
    for flag, dotted in FLAG_PATHS.items():
        value = getattr(args, flag)
        if value is not None:
            if flag == "val" and value.lower() == "none":
                value = None
            apply_override(data, f"{dotted}={json.dumps(value)}")
    given = [flag for flag in LENGTH_FLAGS if getattr(args, flag) is not None]
    if given:
        run = data.setdefault("run", {})
        for dotted in LENGTH_FLAGS.values():
            run.pop(dotted.split(".")[1], None)
        apply_override(data, f"{LENGTH_FLAGS[given[0]]}={getattr(args, given[0])}")
    if args.objective:
        data["objectives"] = list(args.objective)
    for flag, dotted in (
        ("resume", "run.resume"),
        ("overwrite", "run.overwrite"),
        ("strict", "data.strict"),
    ):
        if getattr(args, flag):
            apply_override(data, f"{dotted}=true")
    if args.no_progress:
        apply_override(data, "run.progress=false")
    for override in args.overrides:
        apply_override(data, override)
    run = data.setdefault("run", {})
    if run.get("resume"):
        from ..training.config import RunSection
        from ..training.run_dir import merge_saved, saved_config

        saved = saved_config(run.get("out") or RunSection().out)
        if saved is not None:
            data = merge_saved(saved, data)
            run = data["run"]
    if not any(run.get(k) is not None for k in ("epochs", "steps", "time_budget")):
        run["epochs"] = 1.0
    try:
        return TrainConfig.from_dict(data)
    except ValueError as error:
        raise ValueError(name_the_flag(str(error), args)) from None


def name_the_flag(message: str, args: argparse.Namespace) -> str:
    """``run.steps must be …`` → ``--steps (run.steps) must be …`` when the flag set it."""
    for flag, dotted in {**FLAG_PATHS, **LENGTH_FLAGS}.items():
        if message.startswith(dotted + " ") and getattr(args, flag) is not None:
            return f"--{flag.replace('_', '-')} ({dotted}){message[len(dotted) :]}"
    return message


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
