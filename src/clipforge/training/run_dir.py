"""The run directory's lifecycle: start a new run, replace an old one, or continue one.

``--out`` must be absent or empty for a new run. A non-empty ``--out`` needs ``--resume``
(continue it, with the configuration saved in ``OUT/config.yaml``) or ``--overwrite`` (replace
it), and ``--overwrite`` only ever deletes a clipforge run: a folder whose every entry is a file
a run writes (:data:`RUN_FILES`). Anything else there is named and left alone.

On resume, the saved configuration is the run: a config that differs from it in what shapes
training (data, batch size, objectives, optimiser, schedule, model) is an error naming each
difference. The run-length fields (``steps``, ``epochs``, ``time_budget``) may change: that
extends the run, and the learning-rate schedule is re-planned over the new length. Fields that
only say how the run is watched (logging, checkpoint cadence, workers, progress) may change too.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..common.files import atomic_write_text
from ..common.yaml_files import load_yaml_mapping, merge
from .checkpoint import checkpoint_problem
from .config import TrainConfig

CONFIG_FILE = "config.yaml"
# Every name a training run (or ``refine``) writes into its directory.
RUN_FILES = frozenset(
    {
        CONFIG_FILE,
        "checkpoints",
        "metrics.jsonl",
        "metrics.json",
        "eval.jsonl",
        "loss_curve.png",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "objectives.safetensors",
        "refine.json",
        "train.log",
        "metrics.csv",
        "tensorboard",
        "wandb",
    }
)
RUN_MARKERS = (CONFIG_FILE, "checkpoints", "metrics.jsonl")  # at least one: it is a run
LENGTH_KEYS = ("run.steps", "run.epochs", "run.time_budget")
# May differ on resume: where the run is and how it is watched, not what it computes.
FREE_KEYS = frozenset(
    {
        "run.out",
        "run.resume",
        "run.overwrite",
        "run.progress",
        "run.report_to",
        "run.log_every",
        "run.save_every",
        "run.eval_every",
        "run.keep_checkpoints",
        "data.workers",
        "data.strict",
        *LENGTH_KEYS,
    }
)


@dataclass
class Resume:
    """Where a resumed run continues from, and whether its length changed."""

    checkpoint: Path
    extends: bool = False


def foreign_entries(out: Path) -> list[str]:
    """Names in ``out`` that no clipforge run writes (a ``.tmp-*`` file is a run's write cut
    short: :func:`clipforge.common.files.atomic_write` names its temporaries so)."""
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in out.iterdir()
        if p.name not in RUN_FILES and not p.name.startswith(".tmp-")
    )


def check_out_dir(config: TrainConfig, announce: bool = True) -> Resume | None:
    """Read-only checks of ``config.run.out`` before anything is built or written.

    Returns where to resume from (``run.resume``), else None for a new run."""
    run = config.run
    out = Path(run.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if run.resume:
        return _check_resume(config, out, announce)
    if not out.exists() or not any(out.iterdir()):
        return None
    foreign = foreign_entries(out)
    is_run = any((out / marker).exists() for marker in RUN_MARKERS)
    if run.overwrite:
        if foreign or not is_run:
            listed = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
            raise ValueError(
                f"--overwrite replaces only a clipforge run, and {out} holds other "
                f"files ({listed}); choose another --out or move them"
            )
        return None
    present = ", ".join(sorted(p.name for p in out.iterdir())[:5])
    if is_run and not foreign:
        raise ValueError(
            f"--out {out} already holds a run ({present}); pass --resume to "
            f"continue it or --overwrite to replace it"
        )
    raise ValueError(f"--out {out} is not empty ({present}); choose an empty or new directory")


def start_run_dir(config: TrainConfig, resume: Resume | None) -> Path:
    """Create ``out`` (clearing an earlier run when overwriting) and save the config, which a
    later ``--resume`` continues with. Called once everything has been checked."""
    out = Path(config.run.out)
    if resume is None and out.is_dir():
        if foreign_entries(out):  # checked before; re-checked as this deletes files
            raise ValueError(f"{out}: refusing to clear a folder holding other files")
        for entry in out.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    saved = config.to_dict()
    saved["run"].update(resume=False, overwrite=False)
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(_plain(saved), sort_keys=False))
    return out


def saved_config(out: str | Path) -> dict[str, Any] | None:
    """The configuration a run in ``out`` was started with: ``config.yaml``, or for runs made
    before it was written, the ``config`` a finished run kept in ``metrics.json``."""
    out = Path(out)
    if (out / CONFIG_FILE).is_file():
        return load_yaml_mapping(out / CONFIG_FILE)
    summary = out / "metrics.json"
    if summary.is_file():
        try:
            return json.loads(summary.read_text()).get("config")
        except (ValueError, AttributeError):
            return None
    return None


def merge_saved(saved: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` (config file, flags, overrides) laid over the saved config; a run-length key
    given replaces the saved one (``--epochs`` on a run saved with ``steps``)."""
    given = dict(given)
    if isinstance(given.get("model"), str):
        given["model"] = {"name": given["model"]}
    merged = merge(saved, given)
    given_run = given.get("run") or {}
    if any(given_run.get(key.split(".")[1]) is not None for key in LENGTH_KEYS):
        for key in LENGTH_KEYS:
            name = key.split(".")[1]
            merged["run"][name] = given_run.get(name)
    return merged


def extended_total(total_steps: int | None, done: int) -> int | None:
    """The new step count of a run whose length changed on resume (None: a time budget
    re-plans it); shorter than what is already trained is an error."""
    if total_steps is not None and total_steps < done:
        raise ValueError(
            f"the run already trained {done} steps; the new length gives only "
            f"{total_steps}: give a longer --steps, --epochs or --time-budget"
        )
    return total_steps


def _check_resume(config: TrainConfig, out: Path, announce: bool) -> Resume:
    if not out.is_dir():
        raise ValueError(f"--resume: {out} does not exist; drop --resume to start a new run")
    checkpoint = newest_intact_checkpoint(out, announce)
    if checkpoint is None:
        raise ValueError(
            f"--resume: {out} has no complete checkpoint (checkpoints/step-*); "
            f"use --overwrite to start a new run there"
        )
    saved = saved_config(out)
    if saved is None:
        if announce:
            print(
                f"note: {out} has no {CONFIG_FILE} (made by an older clipforge); resuming with "
                f"the configuration given",
                file=sys.stderr,
            )
        return Resume(checkpoint)
    before = _flatten(TrainConfig.from_dict(saved).to_dict())
    after = _flatten(config.to_dict())
    differ = [
        key
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key) and key not in FREE_KEYS
    ]
    if differ:
        listed = "; ".join(
            f"{key} (saved {before.get(key)!r}, given {after.get(key)!r})" for key in differ
        )
        raise ValueError(
            f"--resume continues the run as saved in {out / CONFIG_FILE}, but "
            f"these differ: {listed}; drop them (or start a new run)"
        )
    changed = [key for key in LENGTH_KEYS if before.get(key) != after.get(key)]
    if changed and announce:
        given = ", ".join(
            f"{key.split('.')[1]}={after[key]}" for key in LENGTH_KEYS if after.get(key) is not None
        )
        was = ", ".join(
            f"{key.split('.')[1]}={before[key]}"
            for key in LENGTH_KEYS
            if before.get(key) is not None
        )
        print(
            f"resume: the run length changes from {was} to {given}; the learning-rate "
            f"schedule is re-planned over the new length",
            file=sys.stderr,
        )
    return Resume(checkpoint, extends=bool(changed))


def newest_intact_checkpoint(out: Path, announce: bool = True) -> Path | None:
    """The newest checkpoint whose files are all present and whole; a damaged newer one is
    skipped, saying why and which one is used instead."""
    damaged: list[str] = []
    for candidate in sorted((out / "checkpoints").glob("step-*"), reverse=True):
        problem = checkpoint_problem(candidate)
        if problem is None:
            if damaged and announce:
                print(
                    f"resume: skipping damaged checkpoint(s) {'; '.join(damaged)}; resuming "
                    f"from {candidate.name}",
                    file=sys.stderr,
                )
            return candidate
        damaged.append(f"{candidate.name} ({problem})")
    if damaged and announce:
        print(f"resume: every checkpoint is damaged: {'; '.join(damaged)}", file=sys.stderr)
    return None


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and key != "params" and key != "overrides":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _plain(value)
    return flat


def _plain(value: Any) -> Any:
    """Tuples as lists, so YAML can write them and saved/given compare equal."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
