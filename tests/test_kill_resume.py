"""A run killed with SIGKILL and resumed logs exactly the losses of an uninterrupted run.

The real thing, not a simulation: ``python -m clipforge train`` in a subprocess with two
data-loader worker processes, killed (SIGKILL, no cleanup) as soon as its first checkpoint
appears, then started again with ``--resume``. Weights, optimizer, RNG, schedule and data
position all come from the checkpoint, so every logged loss must be bit-identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from synthetic import ShapesSource, micro_model_overrides

STEPS, SAVE_EVERY = 24, 4


def write_data(root: Path, count: int = 48) -> Path:
    source = ShapesSource(count)
    root.mkdir(parents=True)
    for index in range(count):
        record = source[index]
        record.image.save(root / f"{index:03d}.png")
        (root / f"{index:03d}.txt").write_text("\n".join(record.captions))
    return root


def command(tmp_path: Path, out: str, *extra: str) -> list[str]:
    config = tmp_path / "config.yaml"
    if not config.exists():
        config.write_text(
            yaml.safe_dump(
                {
                    "model": {
                        "name": "tiny",
                        "overrides": micro_model_overrides(),
                        "tokenizer_vocab_size": 300,
                    },
                    "data": {"batch_size": 8, "workers": 2, "val": None},
                    "run": {
                        "steps": STEPS,
                        "log_every": 1,
                        "keep_checkpoints": 3,
                        "progress": False,
                    },
                }
            )
        )
    return [
        sys.executable,
        "-m",
        "clipforge",
        "train",
        "--config",
        str(config),
        "--data",
        f"folder:{tmp_path / 'data'}",
        "--out",
        str(tmp_path / out),
        "--save-every",
        str(SAVE_EVERY),
        *extra,
    ]


def environment() -> dict:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )


def losses(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(row["step"], row["loss"]) for row in rows]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    write_data(tmp_path / "data")
    env = environment()
    victim = subprocess.Popen(
        command(tmp_path, "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 240
    while not any(checkpoints.glob("step-*")):
        assert victim.poll() is None, victim.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL
    survived = sorted(p.name for p in checkpoints.glob("step-*"))
    assert survived and survived[-1] != f"step-{STEPS:08d}", "the run ended before the kill"

    full = subprocess.run(
        command(tmp_path, "full"), env=env, capture_output=True, text=True, timeout=240
    )
    assert full.returncode == 0, full.stderr[-3000:]
    resumed = subprocess.run(
        command(tmp_path, "killed", "--resume"),
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = losses(tmp_path / "full")
    assert [step for step, _ in expected] == list(range(1, STEPS + 1))
    assert losses(tmp_path / "killed") == expected  # exact float equality
