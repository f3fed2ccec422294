"""``clipforge adapt prompt``: CoOp context vectors, GRAM-regulated, from k shots per class."""

from __future__ import annotations

import argparse

from .defaults import given, shows_default

TUNING = "clipforge.evaluation.prompt_learning.tuning:PromptTuningConfig"
DESCRIPTION = """Adapt a model to a labelled data set without touching its weights.
prompt: learn M context vectors placed before every class name (CoOp), with the prompt's gradient
regulated as in GRAM (--regulation none: plain CoOp), from k images per class for each k of
--shots; compare each with zero-shot on the hand templates on held-out data. Writes curve.json,
curve.png and prompt-Kshot.safetensors/.json per k into --out; use one with
`clipforge eval zeroshot --prompt FILE`."""
EXAMPLES = """examples:
  clipforge adapt prompt --model runs/demo --data builtin:emoji --shots 1,2,4 --out runs/prompt
  clipforge eval zeroshot --model runs/demo --data "builtin:emoji?split=val" \\
      --prompt runs/prompt/prompt-4shot.safetensors
  clipforge adapt prompt --model runs/demo --data train_folders --eval-data test_folders \\
      --class-specific --regulation none --out runs/csc"""

# flag → PromptTuningConfig field; a flag left out keeps the dataclass default
FIELDS = ("n_ctx", "ctx_init", "steps", "lr", "regulation", "inner_lr", "views", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    methods = parser.add_subparsers(dest="method", required=True, metavar="METHOD")
    prompt = methods.add_parser(
        "prompt",
        help="CoOp context vectors with GRAM gradient regulation; few-shot curves",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=parser.formatter_class,
    )
    prompt.add_argument("--model", required=True, help="run directory, checkpoint or model dir")
    prompt.add_argument(
        "--data",
        required=True,
        help="labelled training data with class names; shots are drawn from it, "
        "e.g. builtin:emoji (its train split)",
    )
    prompt.add_argument(
        "--eval-data",
        help="held-out labelled data, same classes (default for builtin: sets: the same set "
        "with ?split=val)",
    )
    prompt.add_argument("--out", required=True, help="folder for curve.json, curve.png, prompts")
    prompt.add_argument(
        "--shots",
        default="1,2,4,8,16",
        help="shots per class, one prompt each (default: %(default)s)",
    )
    add = prompt.add_argument
    shows_default(add("--n-ctx", type=int, help="context vectors M"), f"{TUNING}.n_ctx")
    add("--ctx-init", help="start the context from these words, e.g. 'a photo of a' (sets M)")
    add("--class-specific", action="store_true", help="one context per class (CoOp's CSC)")
    add(
        "--template",
        action="append",
        help="prompt template with {c}; the context goes before {c}; repeat for an ensemble "
        "(default: CoOp's '{c}.')",
    )
    shows_default(
        add("--steps", type=int, help="optimiser steps per shot count"), f"{TUNING}.steps"
    )
    shows_default(add("--lr", type=float, help="Adam learning rate (cosine decay)"), f"{TUNING}.lr")
    shows_default(
        add("--regulation", choices=["gram", "none"], help="gradient regulation"),
        f"{TUNING}.regulation",
    )
    shows_default(
        add("--inner-lr", type=float, help="GRAM's inner step size α"), f"{TUNING}.inner_lr"
    )
    shows_default(
        add("--views", type=int, help="cached views per shot (1 plain + augmented)"),
        f"{TUNING}.views",
    )
    shows_default(add("--seed", type=int, help="shots, init and augmentation"), f"{TUNING}.seed")
    add("--batch-size", type=int, help="images per forward when encoding (default: 256)")
    add("--workers", type=int, help="data-loading processes (default: 2)")
    add("--device", default="auto", help="cpu, cuda … (default: %(default)s = cuda if any)")
    add("--no-progress", action="store_true", help="no progress bars")


def held_out_spec(data: str, eval_data: str | None) -> str:
    """``--eval-data``, else the ``val`` split of a built-in set; never the training data."""
    from ..data.sources.base import spec_with_options

    if eval_data is None:
        if not data.startswith("builtin:"):
            raise ValueError(
                f"--data {data}: give --eval-data, the held-out images to measure the prompt on"
            )
        eval_data = spec_with_options(data, {"split": "val"})
    if eval_data == data:
        raise ValueError(f"--eval-data {eval_data}: is the training data; give a held-out split")
    return eval_data


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from ..evaluation import EncodeConfig
    from ..evaluation.prompt_learning import (
        AdaptConfig,
        PromptTuningConfig,
        adapt_prompt,
        parse_shots,
        plot_curve,
    )
    from ..evaluation.runner import open_classification_data, write_json
    from ..loading import load

    shots = parse_shots(args.shots)
    tuning = PromptTuningConfig(
        **given(**{name: getattr(args, name) for name in FIELDS}),
        **given(templates=tuple(args.template) if args.template else None),
        class_specific=args.class_specific,
    )
    encode = EncodeConfig(
        **given(batch_size=args.batch_size, workers=args.workers), progress=not args.no_progress
    )
    config = AdaptConfig(shots, tuning, encode)
    eval_spec = held_out_spec(args.data, args.eval_data)
    train_source = open_classification_data(args.data)
    eval_source = open_classification_data(eval_spec)
    device = (
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    model, preprocess, tokenizer = load(args.model, device=device)
    if tokenizer is None:
        raise ValueError(f"{args.model}: the model has no tokenizer files (tokenizer.json)")
    out = Path(args.out)
    result = adapt_prompt(
        model,
        preprocess,
        tokenizer,
        train_source,
        eval_source,
        config,
        out,
        (args.model, args.data, eval_spec),
    )
    base = result["baseline"]["metrics"]["acc1"]
    print(f"hand templates (zero-shot): acc1 {100 * base:.2f}  on {eval_spec}")
    for point in result["curve"]:
        print(
            f"{point['shots']:>3}-shot {result['method']}: acc1 "
            f"{100 * point['metrics']['acc1']:.2f}  ({point['num_train']} images, "
            f"prompt {out / point['prompt']})"
        )
    curve_json = write_json(result, out / "curve.json")
    print(f"wrote {curve_json} and {plot_curve(result, out / 'curve.png')}")
    return 0
