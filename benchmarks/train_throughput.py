"""Training-step throughput of clipforge vs Hugging Face CLIP and OpenCLIP, in one run.

Every contender trains the same architecture (identical parameter counts, checked) on the same
random batch: both towers forward, the symmetric InfoNCE loss, backward, an AdamW step. No
gradient clipping anywhere. Reported per contender: samples/s, step-time median / IQR / min /
max, and MFU = analytic model FLOPs per second ÷ this machine's GEMM peak for the precision,
measured in the same run.

    python benchmarks/train_throughput.py               # tiny (batch 64) and ViT-B-32 (batch 16)
    python benchmarks/train_throughput.py --quick       # tiny only, fewer rounds (~2 min idle)
    python benchmarks/train_throughput.py --precisions fp32 --contenders clipforge,clipforge+foreach

Contenders are ``system[+lever…]``: system ``clipforge`` | ``hf`` | ``openclip``; levers
``fused`` / ``foreach`` / ``forloop`` (AdamW implementation; clipforge's own default is fused, the
peers' is PyTorch's default, the for-loop on CPU), ``tcmalloc``, ``threads1``, ``bind``
(OMP_PROC_BIND=close), ``compile`` (torch.compile, compile time reported), ``eager``
(HF: eager attention), ``manual_attn`` / ``conv_patch`` / ``linear_patch`` / ``nomkldnn`` /
``channels_last`` / ``one_group`` / ``no_trim`` (clipforge model-internal alternatives, see
``_peers``).

Timing is robust to a shared machine: contenders with different process-level settings
(allocator, threads) live in separate long-lived worker processes, and one round times every
contender in turn, so load changes hit all of them alike; besides the median, the fastest step
of each contender is reported (the least disturbed one), and CPU-seconds per step, a work
measure that load hardly changes when run with ``--threads 1``. Results go to
``benchmarks/results/train-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
PROCESS_LEVERS = ("tcmalloc", "threads1", "bind", "nomkldnn")  # need their own worker process
DEFAULT_CONTENDERS = (
    "clipforge",
    "clipforge+tcmalloc",
    "hf",
    "hf+fused+tcmalloc",
    "openclip",
    "openclip+fused+tcmalloc",
)
BATCH = {"tiny": 64, "ViT-B-32": 16}


# -- FLOPs -----------------------------------------------------------------------------------


def tower_forward_flops(width: int, layers: int, mlp_ratio: float, tokens: int) -> float:
    """Forward FLOPs of a pre-norm Transformer over ``tokens`` tokens (matmuls + attention).

    Per layer and token: QKV 3W², out W², MLP 2·W·rW multiply-adds; attention scores and the
    weighted sum 2·T·W multiply-adds (full T², causal masking not discounted). FLOPs = 2 · MACs.
    """
    linear = 4 * width * width + 2 * width * int(width * mlp_ratio)
    return 2.0 * tokens * layers * (linear + 2 * tokens * width)


def image_forward_flops(config) -> float:
    v = config.vision
    patches = v.num_patches
    return (
        tower_forward_flops(v.width, v.layers, v.mlp_ratio, patches + 1)
        + 2.0 * patches * 3 * v.patch_size**2 * v.width  # patch embedding
        + 2.0 * v.width * config.embed_dim
    )  # projection of CLS


def train_flops_per_sample(config, caption_lengths) -> float:
    """6·N·T-style count: backward costs twice the forward.

    The text counts each caption up to its EOS (averaged over the benchmark's uniformly drawn
    ``caption_lengths``): the FLOPs the model *needs*, as MFU is defined (PaLM, Chowdhery et
    al. 2022: required work, not work done). Under causal attention the padding after EOS
    cannot change the pooled output; clipforge skips most of it, the peers compute all of it
    (their hardware utilisation is then higher than their MFU).
    """
    t = config.text
    text = (
        statistics.mean(
            tower_forward_flops(t.width, t.layers, t.mlp_ratio, length)
            for length in caption_lengths
        )
        + 2.0 * t.width * config.embed_dim
    )
    return 3.0 * (image_forward_flops(config) + text)


# -- worker: builds contenders and times them on request --------------------------------------


class Worker:
    """The in-process side: holds built contenders of one model and answers commands."""

    def __init__(self):
        import torch

        self.torch = torch
        self.contenders: dict = {}
        if os.environ.get("BENCH_THREADS"):
            torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
        if os.environ.get("BENCH_NOMKLDNN"):
            torch.backends.mkldnn.enabled = False

    def setup(
        self, model: str, batch: int, precision: str, contenders: list[str], warmup: int
    ) -> dict:
        sys.path.insert(0, str(HERE))
        import _peers

        self.contenders = {}
        built = {}
        for spec in contenders:
            started = time.perf_counter()
            contender = _peers.build(spec, model, batch, precision)
            first = time.perf_counter()
            for _ in range(warmup):
                contender.step()
            built[spec] = {
                "parameters": contender.parameters,
                "build_s": round(first - started, 2),
                "warmup_s": round(time.perf_counter() - first, 2),
            }
            self.contenders[spec] = contender
        return {"built": built, "threads": self.torch.get_num_threads()}

    def time(self, contender: str, steps: int) -> dict:
        run = self.contenders[contender]
        wall, cpu = [], []
        for _ in range(steps):
            started, cpu_started = time.perf_counter(), time.process_time()
            run.step()
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        return {"wall": wall, "cpu": cpu}

    def infer(self, contender: str, steps: int) -> dict:
        run = self.contenders[contender]
        wall = []
        for _ in range(steps):
            started = time.perf_counter()
            run.infer()
            wall.append(time.perf_counter() - started)
        return {"wall": wall}

    def peak(self, precision: str) -> dict:
        """Best GEMM rate of a few square sizes (the denominator of MFU)."""
        torch = self.torch
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        # bf16 without AVX512-BF16/AMX: oneDNN emulates it; small shapes fall to slow kernels
        sizes, reps = ((1024, 1536), 3) if dtype == torch.float32 else ((512, 1024), 1)
        best = 0.0
        for n in sizes:  # x @ Wᵀ: the layout of nn.Linear (bf16 kernels differ by layout)
            a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
            a @ b.T
            started = time.perf_counter()
            for _ in range(reps):
                a @ b.T
            best = max(best, 2 * n**3 * reps / (time.perf_counter() - started))
        return {"flops": best}

    def clear(self) -> dict:
        self.contenders = {}
        import gc

        gc.collect()
        return {}


def worker_main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library prints and warnings go to stderr
    sys.stdout = sys.stderr
    worker = Worker()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "exit":
            break
        try:
            reply = getattr(worker, op)(**command)
        except Exception:  # report, keep serving
            reply = {"error": traceback.format_exc()}
        protocol.write(json.dumps(reply) + "\n")


class WorkerProcess:
    """The parent's handle on one worker process with its own env (allocator, threads)."""

    def __init__(self, levers: frozenset[str], threads: int | None = None):
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            TOKENIZERS_PARALLELISM="false",
            CLIPFORGE_NO_TCMALLOC="1",
        )
        if threads:
            env["BENCH_THREADS"] = str(threads)
        if "tcmalloc" in levers:
            env["LD_PRELOAD"] = TCMALLOC
        if "threads1" in levers:
            env["BENCH_THREADS"] = "1"
        if "nomkldnn" in levers:
            env["BENCH_NOMKLDNN"] = "1"
        if "bind" in levers:
            env.update(OMP_PROC_BIND="close", OMP_PLACES="cores")
        self.levers = levers
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, op: str, **kwargs) -> dict:
        self.process.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {sorted(self.levers)} died")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"worker {sorted(self.levers)}: {op} failed:\n{reply['error']}")
        return reply

    def close(self) -> None:
        self.process.stdin.write('{"op": "exit"}\n')
        self.process.stdin.close()
        self.process.wait(timeout=60)


# -- the parent: rounds over contenders --------------------------------------------------------


def summarise(times: list[float], cpu: list[float], batch: int) -> dict:
    times = sorted(times)
    quartiles = (
        statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    )
    median = statistics.median(times)
    return {
        "samples_per_s": round(batch / median, 3),
        "samples_per_s_best": round(batch / times[0], 3),  # least disturbed by other load
        "step_ms_median": round(1e3 * median, 1),
        "step_ms_p25": round(1e3 * quartiles[0], 1),
        "step_ms_p75": round(1e3 * quartiles[2], 1),
        "step_ms_min": round(1e3 * times[0], 1),
        "step_ms_max": round(1e3 * times[-1], 1),
        "cpu_ms_median": round(1e3 * statistics.median(cpu), 1),
        "steps_timed": len(times),
    }


def process_levers(spec: str) -> frozenset[str]:
    return frozenset(part for part in spec.split("+")[1:] if part in PROCESS_LEVERS)


def bench_case(
    workers: dict,
    model: str,
    precision: str,
    batch: int,
    contenders: list[str],
    rounds: int,
    steps: int,
    warmup: int,
    infer: bool,
    log,
) -> dict:
    from clipforge.models import model_config

    config = model_config(model)
    from _peers import caption_lengths

    flops = train_flops_per_sample(config, caption_lengths(config))
    owner = {spec: workers[process_levers(spec)] for spec in contenders}
    default = workers[frozenset()]
    setup = {}
    for worker in workers.values():
        mine = [s for s in contenders if owner[s] is worker]
        if mine:
            setup.update(
                worker.call(
                    "setup",
                    model=model,
                    batch=batch,
                    precision=precision,
                    contenders=mine,
                    warmup=warmup,
                )["built"]
            )
    counts = {setup[s]["parameters"] for s in contenders}
    if len(counts) != 1:
        raise RuntimeError(f"contenders differ in parameter count: {counts}")
    times = {s: [] for s in contenders}
    cpu = {s: [] for s in contenders}
    per_round: list[dict[str, float]] = []
    peaks = []
    round_mfu = {s: [] for s in contenders}
    for round_index in range(rounds):
        peaks.append(default.call("peak", precision=precision)["flops"])
        fastest = {}
        order = contenders if round_index % 2 == 0 else contenders[::-1]
        for spec in order:
            timed = owner[spec].call("time", contender=spec, steps=steps)
            times[spec].extend(timed["wall"])
            cpu[spec].extend(timed["cpu"])
            fastest[spec] = min(timed["wall"])
            round_mfu[spec].append(batch * flops / fastest[spec] / peaks[-1])
        per_round.append(fastest)
        log(
            f"  {model} {precision} round {round_index + 1}/{rounds}: "
            + ", ".join(f"{s} {batch / m:.1f}/s" for s, m in fastest.items())
            + f"  (load {os.getloadavg()[0]:.1f})"
        )
    results = {}
    for spec in contenders:
        entry = summarise(times[spec], cpu[spec], batch)
        # MFU: required FLOPs/s over the GEMM peak measured in the same round (median of
        # rounds), and the fastest step over the best peak of the run
        entry["mfu"] = round(statistics.median(round_mfu[spec]), 4)
        entry["mfu_best"] = round(entry["samples_per_s_best"] * flops / max(peaks), 4)
        entry.update(setup[spec])
        results[spec] = entry
    inference = {}
    if infer:
        inference = bench_inference(
            default, [s for s in contenders if "+" not in s], config, batch, rounds, steps
        )
    for worker in workers.values():
        worker.call("clear")
    return {
        "model": model,
        "precision": precision,
        "batch_size": batch,
        "parameters": counts.pop(),
        "train_gflop_per_sample": round(flops / 1e9, 3),
        "caption_tokens": [caption_lengths(config)[0], caption_lengths(config)[-1]],
        "context_length": config.text.context_length,
        "peak_gflops": round(max(peaks) / 1e9, 2),
        "peak_gflops_rounds": [round(p / 1e9, 2) for p in peaks],
        "contenders": results,
        "ratios": ratios(per_round, results, contenders),
        "inference": inference,
    }


def bench_inference(worker, contenders, config, batch, rounds, steps) -> dict:
    """Images/s of the image encoder alone, under ``torch.inference_mode``."""
    times = {s: [] for s in contenders}
    for _ in range(rounds):
        for spec in contenders:
            times[spec].extend(worker.call("infer", contender=spec, steps=steps)["wall"])
    flops = image_forward_flops(config)
    out = {}
    for spec, wall in times.items():
        median = statistics.median(wall)
        out[spec] = {
            "images_per_s": round(batch / median, 2),
            "ms_median": round(1e3 * median, 1),
            "ms_min": round(1e3 * min(wall), 1),
            "ms_max": round(1e3 * max(wall), 1),
            "gflops": round(batch * flops / median / 1e9, 1),
        }
    if "clipforge" in out:
        for peer in [s for s in out if s != "clipforge"]:
            out[f"clipforge/{peer}"] = round(
                out["clipforge"]["images_per_s"] / out[peer]["images_per_s"], 3
            )
    return out


def ratios(per_round: list[dict[str, float]], results: dict, contenders: list[str]) -> dict:
    """Speed of clipforge (its fastest configuration, and its plain one) over each peer
    configuration, three ways:

    - ``rounds``: the median over rounds of the ratio of the two contenders' fastest step in
      that round (a round times every contender back to back, so it cancels slow load changes);
    - ``best``: ratio of the fastest step of the whole run (the least disturbed measurement);
    - ``cpu``: ratio of median CPU-seconds per step (user + system, all threads; meaningful as
      a work measure with one thread, where no thread spins waiting for another).
    """
    ours = [s for s in contenders if s.split("+")[0] == "clipforge"]
    peers = [s for s in contenders if s.split("+")[0] != "clipforge"]
    if not ours or not peers:
        return {}

    def best_time(spec):
        return results[spec]["step_ms_min"]

    best_ours = min(ours, key=best_time)
    fastest_peer = min(peers, key=best_time)
    out = {"clipforge_best": best_ours, "fastest_peer": fastest_peer}
    for mine in dict.fromkeys([best_ours, ours[0]]):
        for peer in peers:
            values = [r[peer] / r[mine] for r in per_round]
            out[f"{mine} / {peer}"] = {
                "rounds": round(statistics.median(values), 3),
                "rounds_min": round(min(values), 3),
                "rounds_max": round(max(values), 3),
                "best": round(best_time(peer) / best_time(mine), 3),
                "cpu": round(results[peer]["cpu_ms_median"] / results[mine]["cpu_ms_median"], 3),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="tiny,ViT-B-32")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per contender per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, help="override the per-model batch")
    parser.add_argument(
        "--bf16-batch",
        type=int,
        default=4,
        help="bf16 batch (bf16 runs reference kernels on CPUs without AVX512-BF16)",
    )
    parser.add_argument("--bf16-models", default="tiny,ViT-B-32")
    parser.add_argument("--no-inference", action="store_true")
    parser.add_argument(
        "--caption-tokens",
        type=int,
        help="longest caption incl. EOS; lengths are drawn uniformly from 4 "
        "to it (default: the context length)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads in every worker (default: "
        "all cores); 1 makes CPU time a load-independent work measure",
    )
    parser.add_argument("--quick", action="store_true", help="tiny only, fp32, 3 rounds")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    if args.quick:
        args.models, args.precisions, args.rounds = "tiny", "fp32", 3
    contenders = [c for c in args.contenders.split(",") if c]
    if args.caption_tokens:
        os.environ["BENCH_CAPTION_TOKENS"] = str(args.caption_tokens)
    sys.path.insert(0, str(HERE))

    def log(message):
        print(message, file=sys.stderr, flush=True)

    from clipforge.machine import machine_info

    started = time.time()
    # each case also names its precision; bf16 on CPUs without avx512_bf16/amx is emulated
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(args.precisions),
        "load_avg_start": os.getloadavg(),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "threads": args.threads,
        "contenders_requested": contenders,
        "cases": [],
    }
    levers = {process_levers(s) for s in contenders} | {frozenset()}
    workers = {key: WorkerProcess(key, args.threads) for key in levers}
    try:
        for precision in args.precisions.split(","):
            for model in args.models.split(","):
                if precision == "bf16":
                    if model not in args.bf16_models.split(","):
                        log(f"skip {model} bf16 (not in --bf16-models)")
                        continue
                    case = bench_case(
                        workers,
                        model,
                        "bf16",
                        args.bf16_batch,
                        [c for c in contenders if not process_levers(c)],
                        rounds=1,
                        steps=1,
                        warmup=0,
                        infer=False,
                        log=log,
                    )
                else:
                    case = bench_case(
                        workers,
                        model,
                        "fp32",
                        args.batch_size or BATCH.get(model, 16),
                        contenders,
                        args.rounds,
                        args.steps,
                        args.warmup,
                        not args.no_inference,
                        log,
                    )
                report["cases"].append(case)
                print_case(case)
    finally:
        for worker in workers.values():
            worker.close()
    report["load_avg_end"] = os.getloadavg()
    report["seconds"] = round(time.time() - started, 1)
    out = args.out or HERE / "results" / f"train-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    log(f"wrote {out}")
    return 0


def print_case(case: dict) -> None:
    print(
        f"\n{case['model']} {case['precision']} batch {case['batch_size']} "
        f"({case['parameters'] / 1e6:.1f}M params, {case['train_gflop_per_sample']} GFLOP/sample"
        f", GEMM peak {case['peak_gflops']} GFLOP/s)"
    )
    print(
        f"  {'contender':26s} {'samples/s':>9s} {'best':>7s} "
        f"{'step ms med [p25-p75] (min-max)':>36s} {'cpu ms':>8s} {'MFU':>6s} {'best':>6s}"
    )
    for spec, r in case["contenders"].items():
        spread = (
            f"{r['step_ms_median']:.0f} [{r['step_ms_p25']:.0f}-{r['step_ms_p75']:.0f}]"
            f" ({r['step_ms_min']:.0f}-{r['step_ms_max']:.0f})"
        )
        print(
            f"  {spec:26s} {r['samples_per_s']:9.2f} {r['samples_per_s_best']:7.2f} "
            f"{spread:>36s} {r['cpu_ms_median']:8.0f} {100 * r['mfu']:5.1f}% "
            f"{100 * r['mfu_best']:5.1f}%"
        )
    for key, value in case["ratios"].items():
        print(f"  {key}: {value}")
    for key, value in case["inference"].items():
        print(f"  inference {key}: {value}")


if __name__ == "__main__":
    sys.exit(main())
