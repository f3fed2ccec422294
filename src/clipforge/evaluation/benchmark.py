"""``clipforge benchmark``: every model × every (task, data set) entry, in CLIP_benchmark's files.

For each model and suite entry (:mod:`.suite_file`) one result JSON in CLIP_benchmark's schema
(:mod:`.runner`) is written to ``out``, named by CLIP_benchmark's default ``--output`` template
``{dataset}_{pretrained}_{model}_{language}_{task}.json``. As there, ``dataset`` has ``/`` made
``_`` and ``pretrained`` is the basename of the weights (CLIP_benchmark takes a checkpoint
file's); clipforge's models and data specs are paths, so every field is made file-name safe
(runs of characters other than letters, digits, ``.``, ``-``, ``=`` and ``@`` become ``_``).
``skip_existing`` skips a cell whose file exists (CLIP_benchmark's ``--skip_existing``: resume a
grid that stopped; files are written atomically, so an existing one is complete). Finally
``benchmark.csv`` aggregates every result JSON in ``out``, as ``clip_benchmark build out`` does
(:mod:`.aggregate`), so a resumed grid's CSV still has every row, and ``report.html`` compares
the models side by side from the same files (:mod:`.report_html`).

Everything is checked before the first model loads: each entry's task resolves to an evaluator,
its data opens, its options fit the evaluator's config, each model exists, and no two cells
would write the same file. Data sources are opened once; each model is loaded once for all its
cells (and not at all when every one of its cells is skipped).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.sources.base import MapSource, StreamSource
from .aggregate import CSV_NAME, collect_rows, write_csv
from .embedding import EncodeConfig
from .report_html import write_report
from .runner import (
    LANGUAGE,
    Evaluator,
    dataset_key,
    open_classification_data,
    open_data,
    package_result,
    pretrained_of,
    write_json,
)
from .suite_file import AUTO, DEFAULT_SUITE, SuiteEntry

OUTPUT_TEMPLATE = "{dataset}_{pretrained}_{model}_{language}_{task}.json"


@dataclass
class BenchmarkConfig:
    models: tuple[str, ...]  # run dirs, checkpoints, model dirs, HF CLIP dirs
    suite: tuple[SuiteEntry, ...] = DEFAULT_SUITE
    out: Path = Path("benchmark")
    skip_existing: bool = False  # skip cells whose JSON exists
    output: str = OUTPUT_TEMPLATE  # file name template, CLIP_benchmark's fields
    device: str = "cpu"
    encode: EncodeConfig = field(default_factory=EncodeConfig)


@dataclass
class BenchmarkSummary:
    written: list[Path]
    skipped: list[Path]
    csv: Path
    rows: int  # rows in the CSV: every result JSON in ``out``
    report: Path  # report.html


@dataclass
class _Entry:
    """A suite entry made ready: its evaluator, opened data and config."""

    evaluator: Evaluator
    source: MapSource | StreamSource
    config: Any
    dataset: str  # the "dataset" written
    task: str  # the CLIP_benchmark task written


def slug(text: str) -> str:
    """A file-name-safe form: ``runs/demo`` → ``runs_demo``, ``builtin:emoji?split=val`` →
    ``builtin_emoji_split=val``."""
    return re.sub(r"[^A-Za-z0-9.=@-]+", "_", text).strip("_.") or "_"


def resolve_task(task: str) -> str | None:
    """The evaluator a task names (its own name or the CLIP_benchmark task it writes);
    None for ``auto``. Raises naming the task when it is neither."""
    from . import EVALUATORS

    if task == AUTO:
        return None
    if task in EVALUATORS:
        return task
    for name, evaluator in EVALUATORS.items():
        if evaluator.task_name == task:
            return name
    known = sorted(
        {*EVALUATORS.names(), *(e.task_name for _, e in EVALUATORS.items() if e.task_name)}
    )
    raise ValueError(f"unknown task {task!r}; known: {', '.join(known)}, {AUTO}")


def _open(entry: SuiteEntry) -> tuple[str, MapSource | StreamSource]:
    """(evaluator name, opened data); ``auto`` picks zero-shot when the data names classes."""
    from . import EVALUATORS

    name = resolve_task(entry.task)
    if name is not None:
        return name, EVALUATORS.get(name).open_data(entry.data)
    try:
        return "zeroshot", open_classification_data(entry.data)
    except ValueError:  # opens, but names no classes
        return "retrieval", open_data(entry.data)


def prepare_entry(entry: SuiteEntry, encode: EncodeConfig, where: str) -> _Entry:
    from . import EVALUATORS

    try:
        name, source = _open(entry)
        evaluator = EVALUATORS.get(name)
        config = evaluator.config_from_options(entry.options, encode)
    except (ValueError, KeyError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise type(error)(f"{where} ({entry.task} on {entry.data}): {message}") from None
    dataset = entry.name or dataset_key(source) or entry.data
    return _Entry(evaluator, source, config, dataset, evaluator.task_name or name)


def _check_model(model: str) -> str:
    """The model's ``pretrained`` (weights path); a missing local model fails here, early."""
    from ..models.io import resolve_model_dir

    if Path(model).exists():
        return str(resolve_model_dir(model))
    if ":" not in model:  # not a hub-style name either
        raise FileNotFoundError(f"{model}: no such model (run directory, checkpoint or model dir)")
    return pretrained_of(model)


def output_path(config: BenchmarkConfig, entry: _Entry, model: str, pretrained: str) -> Path:
    """``out / template`` filled; CLIP_benchmark's fields, ``pretrained_full_path`` too."""
    fields = {
        "dataset": slug(entry.dataset),
        "pretrained": slug(Path(pretrained).name or pretrained),
        "pretrained_full_path": slug(pretrained),
        "model": slug(model),
        "language": LANGUAGE,
        "task": entry.task,
    }
    try:
        name = config.output.format(**fields)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"output template {config.output!r}: {type(error).__name__} {error}; "
            f"its fields are {', '.join('{' + f + '}' for f in fields)}"
        ) from None
    return config.out / name


def run_benchmark(config: BenchmarkConfig, log: Callable[[str], None] = print) -> BenchmarkSummary:
    """Run the grid (see the module docstring); returns what was written and skipped."""
    from ..loading import load

    if not config.models:
        raise ValueError("no models to benchmark")
    if not config.suite:
        raise ValueError("the suite has no entries")
    entries = [
        prepare_entry(entry, config.encode, f"suite entry {index}")
        for index, entry in enumerate(config.suite)
    ]
    models = list(dict.fromkeys(config.models))  # a model given twice runs once
    pretrained = {model: _check_model(model) for model in models}
    cells: dict[Path, tuple[str, _Entry]] = {}
    for model in models:
        for entry in entries:
            path = output_path(config, entry, model, pretrained[model])
            if path in cells:
                raise ValueError(
                    f"two cells would write {path.name} ({entry.task} on {entry.dataset}); "
                    f"give the suite entries distinct names"
                )
            cells[path] = (model, entry)
    written: list[Path] = []
    skipped: list[Path] = []
    total = len(cells)
    for model in models:
        todo = [(p, e) for p, (m, e) in cells.items() if m == model]
        if config.skip_existing:
            for path in (p for p, _ in todo if p.exists()):
                skipped.append(path)
                log(f"skip {path} (exists)")
            todo = [(p, e) for p, e in todo if p not in skipped]
        if not todo:
            continue
        loaded, preprocess, tokenizer = load(model, device=config.device)
        if tokenizer is None:
            raise ValueError(f"{model}: the model has no tokenizer files (tokenizer.json)")
        for path, entry in todo:
            position = len(written) + len(skipped) + 1
            log(f"[{position}/{total}] {entry.task} on {entry.dataset} with {model}")
            result = entry.evaluator.run(loaded, preprocess, tokenizer, entry.source, entry.config)
            result = package_result(result, model, entry.dataset, pretrained[model])
            written.append(write_json(result, path))
            log(f"wrote {path}")
    rows = collect_rows([config.out])
    csv_path = write_csv(rows, config.out / CSV_NAME)
    log(f"wrote {csv_path} ({len(rows)} rows)")
    report = write_report(config.out)
    log(f"wrote {report}")
    return BenchmarkSummary(written, skipped, csv_path, len(rows), report)
