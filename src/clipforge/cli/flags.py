"""Flags that several verbs share, declared once so their names and help stay the same."""

from __future__ import annotations

import argparse

from ..common.precision import PRECISIONS
from .defaults import shows_default

ENCODE = "clipforge.evaluation.embedding:EncodeConfig"  # where the encoding defaults live


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


# flag (underscored) → help; each sets data.<flag> (DataSection), for train and val data
DATA_KEY_FLAGS = {
    "csv_img_key": "table column of the image paths, as open_clip_train's "
    "(default: image, else filepath)",
    "csv_caption_key": "table column of the captions (default: caption, else title)",
    "csv_separator": "table delimiter, e.g. tab or ';' (default: by suffix, header line)",
    "wds_caption_key": "WebDataset caption: txt, another member, or json:FIELD whose string or "
    "list of strings are the captions (default: txt)",
    "wds_caption_lines": "every line of a WebDataset caption is a caption of its own, as in "
    "CLIP_benchmark's retrieval shards (default: the whole text is one caption)",
}


def add_data_key_flags(parser: argparse.ArgumentParser) -> None:
    """OpenCLIP-style ``--csv-img-key`` … and ``--wds-caption-key`` / ``--wds-caption-lines``
    (train); they override the same options in the data spec's query."""
    group = parser.add_argument_group("reading the data (OpenCLIP's names)")
    for name, help_text in DATA_KEY_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        if name == "wds_caption_lines":
            group.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            metavar = "SEP" if name == "csv_separator" else "KEY"
            group.add_argument(flag, metavar=metavar, help=help_text)


def add_encode_flags(parser: argparse.ArgumentParser) -> None:
    """``--batch-size``, ``--workers``, ``--device``, ``--no-progress``: how a model encodes a
    data set (eval, benchmark); the defaults shown are :class:`EncodeConfig`'s."""
    shows_default(
        parser.add_argument("--batch-size", type=int, help="images per forward"),
        f"{ENCODE}.batch_size",
    )
    shows_default(
        parser.add_argument("--workers", type=int, help="data-loading processes"),
        f"{ENCODE}.workers",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1 … (default: %(default)s = cuda if any)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: bars on stderr)"
    )
