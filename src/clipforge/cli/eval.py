"""``clipforge eval TASK --model M --data D [--json FILE]``: TASK is a registered evaluator."""

from __future__ import annotations

import argparse

from .defaults import given
from .flags import add_encode_flags

AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
DESCRIPTION = """Evaluate a model. zeroshot: classify images by their class names through prompt
templates (acc1, acc5, mean per-class recall). retrieval: image→text and text→image recall@k.
grounding: pointing game and box IoU of patch-text maps on region captions.
linear-probe: logistic regression on cached image features (lp_acc1, lp_acc5, …). geometry:
modality gap, alignment, uniformity, effective rank (and a 2-D plot).
Metric names follow CLIP_benchmark; --json writes them with the model and data used."""
EXAMPLES = """examples:
  clipforge eval zeroshot  --model runs/demo --data "builtin:emoji?split=val"
  clipforge eval zeroshot  --model runs/demo --data path/to/class_folders --templates prompts.txt
  clipforge eval retrieval --model runs/demo --data "builtin:emoji?split=val" --json ret.json
  clipforge eval grounding --model runs/demo --data "builtin:emoji-scenes?split=val"
  clipforge eval linear-probe --model runs/demo --train "builtin:emoji?split=train" \
      --test "builtin:emoji?split=val" --k-shot 1
  clipforge eval geometry --model runs/demo --data "builtin:emoji?split=val" --plot gap.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model",
        required=True,
        help="run directory, checkpoint, model directory or Hugging Face CLIP dir",
    )
    common.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    add_encode_flags(common)
    common.add_argument(
        "--precision",
        choices=list(AUTOCAST),
        default="fp32",
        help="autocast dtype for encoding; fp32: none (default: %(default)s)",
    )
    from ..evaluation import EVALUATORS  # this verb's parser only: imports torch

    tasks = parser.add_subparsers(
        dest="task", required=True, metavar="TASK", parser_class=type(parser)
    )
    for name, evaluator in EVALUATORS.items():  # each evaluator brings its own flags
        task = tasks.add_parser(
            name,
            parents=[common],
            epilog=EXAMPLES,
            formatter_class=parser.formatter_class,
            help=evaluator.description,
            description=evaluator.description[:1].upper() + evaluator.description[1:] + ".",
        )
        task.add_argument(evaluator.data_flag, dest="data", required=True, help=evaluator.data_help)
        evaluator.add_arguments(task)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..evaluation import EVALUATORS, EncodeConfig, run_evaluation
    from ..evaluation.report import format_result
    from ..evaluation.runner import write_json

    dtype = AUTOCAST[args.precision]
    encode = EncodeConfig(
        **given(batch_size=args.batch_size, workers=args.workers),
        autocast_dtype=getattr(torch, dtype) if dtype else None,
        progress=not args.no_progress,
    )
    config = EVALUATORS.get(args.task).config_from_cli(args, encode)
    device = (
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    result = run_evaluation(args.task, args.model, args.data, config, device)
    print(format_result(result))
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    return 0
