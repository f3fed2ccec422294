"""Train every objective (and a few combinations) on builtin:emoji with the same budget and seed,
evaluate on the held-out split, and write the comparison table into docs/objectives.md.

    python benchmarks/compare_objectives.py                  # 10 minutes per method (issue 4)
    python benchmarks/compare_objectives.py --jobs 2         # two runs at a time, 1 core each
    python benchmarks/compare_objectives.py --budget 2 --only clip,siglip,filip
    python benchmarks/compare_objectives.py --jobs 2 --budget 5 --second-seed-top 3

Each entry runs ``clipforge train --config configs/<name>.yaml`` with the budget, seed and output
directory overridden, so the table measures exactly what a user gets from the shipped configs.
Two entries start from the trained ``clip`` run: ``distill`` (it is the teacher) and ``refine``
(``clipforge refine`` post-pre-training, one epoch, outside the budget like in the paper).
With ``--jobs N`` runs go N at a time, each limited to cores/N torch threads, so every method
gets the same compute; the budget is counted in CPU time (``run.budget_clock=cpu``), so other
work on the machine slows a run down but does not shorten it. ``--second-seed-top N`` reruns
the N best from-scratch methods with the next seed so the table shows run-to-run noise. The
table says which setting produced it. ``--reuse`` keeps finished runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE_START, TABLE_END = "<!-- comparison-table:start -->", "<!-- comparison-table:end -->"
VAL = "builtin:emoji?split=val"


@dataclass
class Method:
    config: str  # configs/*.yaml it trains from
    overrides: list[str] = field(default_factory=list)  # key=value; $AFTER = that run's dir
    after: str | None = None  # label of a run it starts from
    refine: bool = False  # `clipforge refine` instead of `train`


METHODS: dict[str, Method] = {
    "clip": Method("configs/demo.yaml"),
    "siglip": Method("configs/demo.yaml", ["objectives=[{name: siglip}]"]),
    "filip": Method("configs/filip.yaml"),
    "tcl": Method("configs/tcl.yaml"),
    "lightclip": Method("configs/lightclip.yaml"),
    "dreamlip": Method("configs/dreamlip.yaml"),
    "alip": Method("configs/alip.yaml"),
    "lexlip": Method("configs/lexlip.yaml"),
    "mlcd": Method("configs/mlcd.yaml"),
    "cep": Method("configs/cep.yaml"),
    "hcl": Method("configs/hcl.yaml"),
    "unime": Method("configs/unime.yaml"),
    "clip-improved": Method("configs/clip-improved.yaml"),
    "grow": Method("configs/grow.yaml"),
    "lit": Method("configs/lit.yaml"),
    "clip+filip": Method(
        "configs/demo.yaml", ["objectives=[{name: clip}, {name: filip, weight: 0.5}]"]
    ),
    "cep+hcl": Method("configs/demo.yaml", ["objectives=[{name: cep}, {name: hcl, weight: 0.5}]"]),
    "distill": Method(
        "configs/distill.yaml",
        [
            "objectives=[{name: clip, weight: 1.0}, {name: distill, weight: 1.0, "
            "teacher: $AFTER, temperature: 1.0, use_logit_scale: true}]"
        ],
        after="clip",
    ),
    "refine": Method("configs/refine.yaml", after="clip", refine=True),
}
NOTES = {
    "lit": "text tower = frozen all-MiniLM-L6-v2",
    "distill": "3+3-layer student, teacher = the `clip` row",
    "refine": "`clipforge refine` of the `clip` row: +1 epoch, lr 1e-6 (the paper's)",
    "grow": "2 layers × 128 wide → 4 × 128 at 30 % → 4 × 256 at 60 % (tiny: 6 × 256)",
}
COLUMNS = [
    ("acc1", "zero-shot acc1"),
    ("mean_per_class_recall", "per-class recall"),
    ("image_retrieval_recall@1", "T→I R@1"),
    ("image_retrieval_recall@5", "T→I R@5"),
    ("text_retrieval_recall@1", "I→T R@1"),
    ("text_retrieval_recall@5", "I→T R@5"),
    ("modality_gap", "modality gap"),
]


def train_command(
    label: str, method: Method, budget: float, seed: int, out_root: Path
) -> list[str]:
    out = out_root / label
    if method.refine:
        return [
            sys.executable,
            "-m",
            "clipforge",
            "refine",
            "--model",
            str(out_root / method.after),
            "--data",
            "builtin:emoji",
            "--val",
            VAL,
            "--out",
            str(out),
            "--seed",
            str(seed),
            "--no-progress",
        ]
    after = str(out_root / method.after) if method.after else ""
    extra = [override.replace("$AFTER", after) for override in method.overrides]
    return [
        sys.executable,
        "-m",
        "clipforge",
        "train",
        "--config",
        str(ROOT / method.config),
        "--time-budget",
        str(budget),
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--no-progress",
        "--overwrite",
        "run.save_every=null",
        "run.budget_clock=cpu",  # the same compute per method, however busy the machine
        *extra,
    ]


def collect(label: str, out: Path, wall: float | None) -> dict:
    """The row for one finished run, read from the files it wrote."""
    summary = json.loads((out / "metrics.json").read_text())
    row = {
        "label": label,
        "wall_s": None if wall is None else round(wall, 1),
        "steps": summary["steps"],
        "samples": summary["samples_seen"],
        "train_seconds": round(summary.get("train_seconds", 0.0), 1),
        "precision": summary.get("precision"),
        **summary.get("eval", {}),
    }
    refined = out / "refine.json"
    if refined.exists():  # refine evaluates itself before and after
        report = json.loads(refined.read_text())
        row.update(report["after"].get("metrics", {}))
        row["modality_gap"] = report["gap_after"]
        row["gap_before"] = report["gap_before"]
    return row


def run_method(
    label: str, budget: float, seed: int, out_root: Path, threads: int, reuse: bool
) -> dict:
    out = out_root / label
    if reuse and (out / "metrics.json").exists():
        return {**collect(label, out, None), "seed": seed}
    command = train_command(label, METHODS[label], budget, seed, out_root)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    out_root.mkdir(parents=True, exist_ok=True)  # beside the run: --overwrite clears
    (out_root / f"{label}.log").write_text(done.stdout + done.stderr)  # only a run's files
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"label": label, "error": last, "wall_s": round(wall, 1), "seed": seed}
    return {**collect(label, out, wall), "seed": seed}


def top_labels(rows: list[dict], count: int) -> list[str]:
    """The ``count`` best rows by zero-shot acc1 that train from scratch (a second seed of a
    run that starts from another would need that one's second seed too)."""
    ranked = [
        row
        for row in rows
        if "error" not in row and row.get("acc1") is not None and not METHODS[row["label"]].after
    ]
    ranked.sort(key=lambda row: row["acc1"], reverse=True)
    return [row["label"] for row in ranked[:count]]


def run_all(chosen: list[str], jobs: int, **kwargs) -> dict[str, dict]:
    """Run the chosen methods ``jobs`` at a time, each after the run it starts from."""
    rows: dict[str, dict] = {}
    pending = list(chosen)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running: dict[Future, str] = {}
        while pending or running:
            for label in list(pending):
                parent = METHODS[label].after
                blocked = parent in pending or parent in running.values()
                if len(running) < jobs and not blocked:
                    pending.remove(label)
                    print(f"start {label}", flush=True)
                    running[pool.submit(run_method, label, **kwargs)] = label
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                label = running.pop(future)
                rows[label] = future.result()
                print(json.dumps(rows[label]), flush=True)
    return rows


def format_table(
    rows: list[dict], budget: float, seed: int, jobs: int, threads: int, machine: dict
) -> str:
    from clipforge.machine import describe

    header = (
        "| method | steps | train s | " + " | ".join(name for _, name in COLUMNS) + " | notes |"
    )
    lines = [header, "|" + "---|" * (len(COLUMNS) + 4)]
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['label']} (seed {row.get('seed', seed)}) | failed: {row['error']} |"
            )
            continue
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key)
            cells.append(
                "–"
                if value is None
                else (f"{value:.3f}" if key == "modality_gap" else f"{100 * value:.1f}")
            )
        note = NOTES.get(row["label"], "")
        if "gap_before" in row:
            note += f"; gap {row['gap_before']:.3f} → {row['modality_gap']:.3f}"
        name = row["label"] + (f" (seed {row['seed']})" if row.get("seed", seed) != seed else "")
        lines.append(
            f"| {name} | {row['steps']} | {row.get('train_seconds', 0):.0f} | "
            + " | ".join(cells)
            + f" | {note} |"
        )
    setting = (
        f"{jobs} runs at a time, {threads} torch thread(s) each"
        if jobs > 1
        else f"one run at a time, {threads} torch thread(s)"
    )
    seeds = sorted({row.get("seed", seed) for row in rows})
    again = [row["label"] for row in rows if row.get("seed", seed) != seed]
    seed_text = f"seed {seed}" + (
        f"; the top rows again with seed {', '.join(str(s) for s in seeds if s != seed)} "
        f"({', '.join(again)}) to show the run-to-run spread"
        if again
        else ""
    )
    flags = f"--budget {budget:g} --jobs {jobs}" + (
        f" --second-seed-for {','.join(again)}" if again else ""
    )
    return (
        f"Budget {budget:g} CPU-minutes of training per method ({setting}; the budget counts "
        f"the CPU time of each run and its loader workers, so every method gets the same compute "
        f"however busy the machine), {seed_text}, `tiny` model, batch 64, `builtin:emoji` train "
        f"split, evaluated on the held-out split (accuracy and recalls in %). Produced by "
        f"`python benchmarks/compare_objectives.py {flags}`, {describe(machine)}.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def write_table(path: Path, table: str) -> None:
    """Replace the table between the markers in ``path`` (the prose around it is kept)."""
    block = f"{TABLE_START}\n{table}{TABLE_END}"
    text = path.read_text() if path.exists() else ""
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        text = head + block + rest.split(TABLE_END, 1)[1]
    else:
        text = (text + "\n\n" if text else "# Objectives compared\n\n") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=10.0, help="training minutes per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma-separated labels (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (cores are split)")
    parser.add_argument("--reuse", action="store_true", help="keep runs that already finished")
    parser.add_argument(
        "--second-seed-top",
        type=int,
        default=0,
        metavar="N",
        help="rerun the N best from-scratch methods with seed+1 (rows beside the first seed's)",
    )
    parser.add_argument(
        "--second-seed-for",
        metavar="LABELS",
        help="rerun these methods (comma-separated) with seed+1 instead of the N best",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compare")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "objectives.md")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(METHODS)
    unknown = [c for c in chosen if c not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {list(METHODS)}")
    if args.second_seed_for and set(args.second_seed_for.split(",")) - set(chosen):
        parser.error(f"--second-seed-for names methods not run: {args.second_seed_for}")
    missing = {METHODS[c].after for c in chosen} - set(chosen) - {None}
    missing = {m for m in missing if not (args.out / m / "metrics.json").exists()}
    if missing:
        parser.error(f"{sorted(missing)} must run first (add to --only or train into {args.out})")
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    rows = run_all(
        chosen,
        args.jobs,
        budget=args.budget,
        seed=args.seed,
        out_root=args.out,
        threads=threads,
        reuse=args.reuse,
    )
    ordered = [rows[label] for label in chosen]
    again = (
        args.second_seed_for.split(",")
        if args.second_seed_for
        else top_labels(ordered, args.second_seed_top)
    )
    if again:
        print(f"second seed for {again}", flush=True)
        second = run_all(
            again,
            args.jobs,
            budget=args.budget,
            seed=args.seed + 1,
            out_root=args.out / f"seed{args.seed + 1}",
            threads=threads,
            reuse=args.reuse,
        )
        by_label: dict[str, list[dict]] = {}
        for row in ordered:
            by_label.setdefault(row["label"], []).append(row)
        for label in again:
            by_label[label].append(second[label])
        ordered = [row for label in chosen for row in by_label[label]]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = ROOT / "benchmarks" / "results" / f"objectives-{stamp}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    from clipforge.machine import machine_info

    # the precision the runs resolved (auto: bf16 only on AVX-512 BF16 / AMX / CUDA)
    precisions = sorted({row["precision"] for row in ordered if row.get("precision")})
    machine = machine_info(",".join(precisions) or None)
    results.write_text(
        json.dumps(
            {
                "budget_min": args.budget,
                "seed": args.seed,
                "jobs": args.jobs,
                "threads": threads,
                "machine": machine,
                "rows": ordered,
            },
            indent=2,
        )
    )
    table = format_table(ordered, args.budget, args.seed, args.jobs, threads, machine)
    write_table(args.doc, table)
    print(table)
    return 0 if all("error" not in row for row in ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
