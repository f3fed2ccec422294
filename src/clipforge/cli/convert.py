"""``clipforge convert``: clipforge model directories ⇄ Hugging Face CLIP and OpenCLIP formats."""

from __future__ import annotations

import argparse

DESCRIPTION = """Convert between clipforge model directories and Hugging Face transformers
CLIPModel directories (save_pretrained format; --from-hf also reads SiglipModel directories;
needs the `hf` extra: pip install 'clipforge[hf]') or OpenCLIP models (hub directories with
open_clip_config.json, hf-hub:ORG/NAME from the local Hugging Face cache, open_clip_train
checkpoints such as epoch_N.pt), weights checked to match."""
EXAMPLES = """examples:
  clipforge convert --to-hf runs/demo --out hf_demo  # then CLIPModel.from_pretrained("hf_demo")
  clipforge convert --from-hf path/to/hf_clip --out runs/converted
  clipforge convert --from-openclip logs/run/checkpoints/epoch_32.pt --model-name ViT-B-32 --out m
  clipforge convert --from-openclip hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K --out m
  clipforge convert --to-openclip runs/demo --out oc  # open_clip.create_model("local-dir:oc")"""


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
    direction.add_argument(
        "--from-openclip",
        metavar="SRC",
        help="an OpenCLIP hub directory (open_clip_config.json + weights), hf-hub:ORG/NAME "
        "(local cache only) or open_clip_train checkpoint (epoch_N.pt) to import",
    )
    direction.add_argument(
        "--to-openclip",
        metavar="RUN_DIR",
        help="a clipforge run directory, checkpoint or model directory to write in OpenCLIP's "
        "hub layout (open_clip_config.json + open_clip_model.safetensors)",
    )
    architecture = parser.add_mutually_exclusive_group()
    architecture.add_argument(
        "--model-name",
        metavar="NAME",
        help="--from-openclip checkpoint: its OpenCLIP architecture, e.g. ViT-B-32 (default: the "
        "`model:` line of the run's params.txt)",
    )
    architecture.add_argument(
        "--model-config",
        metavar="JSON",
        help="--from-openclip checkpoint: its OpenCLIP model-config JSON instead of a name",
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
    if (args.model_name or args.model_config) and not args.from_openclip:
        raise ValueError("--model-name / --model-config go with --from-openclip")
    if args.from_openclip or args.to_openclip:
        from ..interop.openclip import convert_from_openclip, convert_to_openclip

        if args.from_openclip:
            out = convert_from_openclip(
                args.from_openclip, args.out, args.model_name, args.model_config, args.force
            )
        else:
            out = convert_to_openclip(args.to_openclip, args.out, overwrite=args.force)
    else:
        from ..interop.hf import convert_from_hf, convert_to_hf

        convert = convert_from_hf if args.from_hf else convert_to_hf
        out = convert(args.from_hf or args.to_hf, args.out, overwrite=args.force)
    print(f"wrote {out}")
    return 0
