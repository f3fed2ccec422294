"""``clipforge eval TASK --model M --data D [--json FILE]``: TASK is a registered evaluator."""

from __future__ import annotations

import argparse

AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True,
                        help="run directory, checkpoint, model directory or Hugging Face CLIP dir")
    common.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    common.add_argument("--batch-size", type=int, default=256)
    common.add_argument("--workers", type=int, default=2, help="data-loading processes")
    common.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (auto: cuda if any)")
    common.add_argument("--precision", choices=list(AUTOCAST), default="fp32",
                        help="autocast dtype for encoding (fp32: none)")
    common.add_argument("--no-progress", action="store_true", help="no progress bars")
    from ..evaluation import EVALUATORS
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, evaluator in EVALUATORS.items():          # each evaluator brings its own flags
        task = tasks.add_parser(name, parents=[common], help=evaluator.description,
                                description=evaluator.description)
        task.add_argument("--data", required=True, help=evaluator.data_help)
        evaluator.add_arguments(task)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..evaluation import EVALUATORS, EncodeConfig, run_evaluation
    from ..evaluation.report import format_result
    from ..evaluation.runner import write_json
    dtype = AUTOCAST[args.precision]
    encode = EncodeConfig(batch_size=args.batch_size, workers=args.workers,
                          autocast_dtype=getattr(torch, dtype) if dtype else None,
                          progress=not args.no_progress)
    config = EVALUATORS.get(args.task).config_from_cli(args, encode)
    device = args.device if args.device != "auto" else (
        "cuda" if torch.cuda.is_available() else "cpu")
    result = run_evaluation(args.task, args.model, args.data, config, device)
    print(format_result(result))
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    return 0
