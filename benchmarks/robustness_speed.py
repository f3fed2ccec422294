"""Cost of a PGD-10 attack against clean zero-shot evaluation, on the same images.

    python benchmarks/robustness_speed.py --model runs/demo --limit 128

Target (issue 13): a PGD-10 attack at most 12× the cost of clean evaluation. Both sides are the
library calls the CLI makes, on the first ``--limit`` images of ``--data``:

- clean: :func:`clipforge.evaluation.zeroshot_classification` (class prompts → classifier, images
  decoded and encoded once);
- attack: :func:`clipforge.evaluation.robustness.robustness` with PGD-10 on zero-shot (the same
  classifier, the clean pass, 10 forward + input-gradient backward passes, the adversarial pass).

``ratio`` = attack / clean, in wall time and in CPU time (``time.process_time``: meaningful when
other jobs share the machine). ``image_ratio`` leaves out what both share (the text classifier):
(attack − clean + clean images) / clean images, the attack's cost per image against one clean
image pass. The clean pass is timed before and after the attack; the mean is used. Results go to
``benchmarks/results/robustness-<time>.json`` with :func:`clipforge.machine.machine_info`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/demo")
    parser.add_argument("--data", default="builtin:emoji?split=val")
    parser.add_argument("--limit", type=int, default=128, help="images (default: 128)")
    parser.add_argument("--eps", default="4/255")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, help="results JSON (default: benchmarks/results/…)")
    args = parser.parse_args(argv)

    import torch

    import clipforge
    from clipforge.data.sources.base import MapSource
    from clipforge.evaluation import (
        EncodeConfig,
        ZeroShotConfig,
        encode_images,
        zeroshot_classification,
    )
    from clipforge.evaluation.robustness import RobustnessConfig, open_robustness_data, robustness
    from clipforge.machine import describe, machine_info

    class FirstN(MapSource):
        """The first ``count`` records of ``source`` (same classes and templates)."""

        def __init__(self, source, count):
            self.source, self.count = source, min(count, len(source))
            self.name = getattr(source, "name", "data")

        def __len__(self):
            return self.count

        def __getitem__(self, index):
            return self.source[index]

        def class_names(self):
            return self.source.class_names()

        def templates(self):
            return self.source.templates()

    model, preprocess, tokenizer = clipforge.load(args.model)
    source = FirstN(open_robustness_data(args.data), args.limit)
    encode = EncodeConfig(batch_size=args.batch_size, workers=0, progress=False)
    zeroshot_classification(
        model, preprocess, tokenizer, FirstN(source, 8), ZeroShotConfig(encode=encode)
    )  # warm-up
    clean_runs = []
    images_runs = []
    attack = None
    for phase in ("clean", "attack", "clean"):
        if phase == "clean":
            clean, wall, cpu = timed(
                lambda: zeroshot_classification(
                    model, preprocess, tokenizer, source, ZeroShotConfig(encode=encode)
                )
            )
            clean_runs.append((wall, cpu))
            _, image_wall, image_cpu = timed(
                lambda: encode_images(model, preprocess, source, encode)
            )
            images_runs.append((image_wall, image_cpu))
        else:
            config = RobustnessConfig(
                attack="pgd", eps=(args.eps,), steps=args.steps, on="zeroshot", encode=encode
            )
            result, wall, cpu = timed(
                lambda config=config: robustness(model, preprocess, tokenizer, source, config)
            )
            attack = (wall, cpu, result)
    clean_wall = sum(w for w, _ in clean_runs) / 2
    clean_cpu = sum(c for _, c in clean_runs) / 2
    image_wall = sum(w for w, _ in images_runs) / 2
    image_cpu = sum(c for _, c in images_runs) / 2
    attack_wall, attack_cpu, result = attack
    report = {
        "benchmark": "robustness_speed",
        "model": str(args.model),
        "data": args.data,
        "images": len(source),
        "eps": args.eps,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "clean_s": {
            "wall": round(clean_wall, 2),
            "cpu": round(clean_cpu, 2),
            "runs": [[round(w, 2), round(c, 2)] for w, c in clean_runs],
        },
        "clean_images_only_s": {"wall": round(image_wall, 2), "cpu": round(image_cpu, 2)},
        "pgd_s": {"wall": round(attack_wall, 2), "cpu": round(attack_cpu, 2)},
        "ratio": {
            "wall": round(attack_wall / clean_wall, 2),
            "cpu": round(attack_cpu / clean_cpu, 2),
        },
        "image_ratio": {
            "wall": round((attack_wall - clean_wall + image_wall) / image_wall, 2),
            "cpu": round((attack_cpu - clean_cpu + image_cpu) / image_cpu, 2),
        },
        "target_ratio": 12,
        "clean_acc1": result["metrics"]["clean_acc1"],
        "adv_acc1": result["metrics"]["adv_acc1"],
        "zeroshot_acc1_check": clean["metrics"]["acc1"],
        "machine": machine_info(),
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or HERE / "results" / f"robustness-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(describe(report["machine"]))
    print(
        f"{len(source)} images, PGD-{args.steps} eps={args.eps}: clean {clean_wall:.1f} s wall "
        f"/ {clean_cpu:.1f} s CPU, attack {attack_wall:.1f} s / {attack_cpu:.1f} s; "
        f"ratio {report['ratio']['wall']}× wall, {report['ratio']['cpu']}× CPU (target ≤ 12×); "
        f"per image vs one clean image pass {report['image_ratio']['wall']}× wall, "
        f"{report['image_ratio']['cpu']}× CPU"
    )
    metrics = result["metrics"]
    print(f"clean_acc1 {metrics['clean_acc1']:.4f} adv_acc1 {metrics['adv_acc1']:.4f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
