"""``clipforge benchmark --models A,B --suite default|FILE --out DIR [--skip-existing]``;
``clipforge benchmark --report-only --out DIR`` rebuilds DIR/report.html from its JSONs."""

from __future__ import annotations

import argparse

from .defaults import given
from .flags import add_encode_flags

DESCRIPTION = """Run a model × (task, data set) grid, like CLIP_benchmark's `clip_benchmark eval`
over several models and data sets: one result JSON per (model, task, data set) in OUT, in
CLIP_benchmark's schema and file naming ({dataset}_{pretrained}_{model}_{language}_{task}.json),
then OUT/benchmark.csv with every result JSON in OUT, as `clip_benchmark build` makes it, and
OUT/report.html, a self-contained page comparing the models side by side (tables and plots)."""
EXAMPLES = """examples:
  clipforge benchmark --models runs/demo --out bench              # default suite, built-in data
  clipforge benchmark --models runs/a,runs/b --datasets /data/wds_cifar10 \\
      "wds/flickr30k=clip_benchmark:/data/wds_flickr30k" --out bench --skip-existing
  clipforge benchmark --models runs/demo --suite my-suite.yaml --out bench
  clipforge benchmark --report-only --out bench                   # rebuild bench/report.html
A suite YAML: entries: [{task: zeroshot_classification, data: SPEC, name: N, options: {…}}]"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        help="models, comma- or space-separated: run dirs, checkpoints, model dirs "
        "(required unless --report-only)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rebuild OUT/report.html from the result JSONs in OUT",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--suite",
        default="default",
        help="default (built-in data: zero-shot and retrieval on builtin:emoji?split=val) "
        "or a suite YAML file (default: %(default)s)",
    )
    which.add_argument(
        "--datasets",
        nargs="+",
        metavar="[NAME=]SPEC",
        help="data specs instead of a suite, space-separated (a CLIP_benchmark wds_* folder, "
        "an image folder, csv:…); NAME= sets the dataset name written",
    )
    parser.add_argument(
        "--task",
        default="auto",
        help="task for --datasets: auto (zero-shot when the data names classes, else "
        "retrieval), zeroshot_classification, zeroshot_retrieval, or an evaluator name "
        "(default: %(default)s)",
    )
    parser.add_argument("--out", required=True, help="folder for the result JSONs and the CSV")
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip a cell whose result JSON exists (resume a grid; default: rerun it)",
    )
    parser.add_argument(
        "--output",
        metavar="TEMPLATE",
        help="result file name template with CLIP_benchmark's fields "
        "(default: {dataset}_{pretrained}_{model}_{language}_{task}.json)",
    )
    add_encode_flags(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from ..evaluation.benchmark import OUTPUT_TEMPLATE, BenchmarkConfig, run_benchmark
    from ..evaluation.embedding import EncodeConfig
    from ..evaluation.report_html import write_report
    from ..evaluation.suite_file import entries_from_datasets, load_suite

    if args.report_only:
        if args.models:
            raise ValueError("--report-only runs no model: leave out --models")
        print(f"wrote {write_report(Path(args.out))}")
        return 0
    if not args.models:
        raise ValueError("--models is required (unless --report-only)")
    models = tuple(part for item in args.models for part in item.split(",") if part)
    suite = (
        entries_from_datasets(args.datasets, args.task) if args.datasets else load_suite(args.suite)
    )
    device = (
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    config = BenchmarkConfig(
        models=models,
        suite=suite,
        out=Path(args.out),
        skip_existing=args.skip_existing,
        output=args.output or OUTPUT_TEMPLATE,
        device=device,
        encode=EncodeConfig(
            **given(batch_size=args.batch_size, workers=args.workers),
            progress=not args.no_progress,
        ),
    )
    summary = run_benchmark(config)
    print(
        f"{len(summary.written)} results written, {len(summary.skipped)} skipped (existing); "
        f"{summary.csv}: {summary.rows} rows; {summary.report}"
    )
    return 0
