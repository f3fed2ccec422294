"""``clipforge explain --model M --image X --text "…" --out PNG``: the text's score map and box."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """Show where a model finds a text in an image: the cosine of each patch token with
the text embedding (DenseCLIP score map) overlaid on the image, and the box of the region around
the map's peak (GroundVLP: threshold at a fraction of the maximum, connected component). Prints
the box, peak and largest patch cosine as JSON (pixels of the original image, x1/y1 exclusive)."""
EXAMPLES = """examples:
  clipforge explain --model runs/demo --image photo.jpg --text "a red apple" --out apple.png
  clipforge explain --model runs/demo --image scene.png --text "the cat" --out cat.png \\
      --threshold 0.6"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="run directory, checkpoint, model directory or Hugging Face CLIP dir",
    )
    parser.add_argument("--image", required=True, help="the image file")
    parser.add_argument("--text", required=True, help="the phrase to find")
    parser.add_argument("--out", required=True, help="the overlay PNG to write")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="box: keep the map ≥ this fraction of its maximum (default: %(default)s)",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1 … (default: %(default)s = cuda if any)"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ..evaluation.explain import ExplainConfig, explain

    device = (
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    config = ExplainConfig(threshold=args.threshold, device=device)
    print(json.dumps(explain(args.model, args.image, args.text, args.out, config)))
    return 0
