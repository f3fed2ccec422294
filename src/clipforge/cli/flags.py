"""Flags that several verbs share, declared once so their names and help stay the same."""

from __future__ import annotations

import argparse

from ..common.precision import PRECISIONS


def add_run_length_flags(parser: argparse.ArgumentParser, epochs_help: str) -> None:
    """``--epochs`` | ``--steps`` | ``--time-budget MINUTES``: at most one (train, refine)."""
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help=epochs_help)
    length.add_argument("--steps", type=int, help="optimizer steps")
    length.add_argument(
        "--time-budget",
        type=float,
        metavar="MINUTES",
        help="train for this many minutes; the schedule is planned to fit",
    )


def add_precision_flag(parser: argparse.ArgumentParser) -> None:
    """``--precision auto|fp32|bf16`` (train, refine, bench)."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto: bf16 autocast where the hardware runs it fast (CUDA, AVX-512-BF16/AMX "
        "CPUs), else fp32; $CLIPFORGE_PRECISION replaces what auto picks (default: auto)",
    )
