"""``clipforge convert --from-hf HF_DIR --out RUN_DIR`` / ``--to-hf RUN_DIR --out HF_DIR``."""

from __future__ import annotations

import argparse

DESCRIPTION = """Convert between clipforge model directories and Hugging Face transformers
CLIPModel directories (save_pretrained format), weights checked to match; --from-hf also reads
SiglipModel directories. Needs the `hf` extra (pip install 'clipforge[hf]')."""
EXAMPLES = """examples:
  clipforge convert --to-hf runs/demo --out hf_demo  # then CLIPModel.from_pretrained("hf_demo")
  clipforge convert --from-hf path/to/hf_clip --out runs/converted"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    direction = parser.add_mutually_exclusive_group(required=True)
    direction.add_argument(
        "--from-hf",
        metavar="HF_DIR",
        help="a transformers CLIPModel or SiglipModel directory (save_pretrained) to import",
    )
    direction.add_argument(
        "--to-hf",
        metavar="RUN_DIR",
        help="a clipforge run directory, checkpoint or model directory to export",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory (must be empty or absent unless --force)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty --out, replacing files of the same name (default: refuse)",
    )


def run(args: argparse.Namespace) -> int:
    from ..interop.hf import convert_from_hf, convert_to_hf

    convert = convert_from_hf if args.from_hf else convert_to_hf
    out = convert(args.from_hf or args.to_hf, args.out, overwrite=args.force)
    print(f"wrote {out}")
    return 0
