"""README.md's commands run as written, in a fresh directory, after the two set-up commands.

Every command of a ```bash / ```sh block runs (one ``bash -c`` each, ``clipforge`` being this
checkout's ``python -m clipforge``), and so does every ```python block, except those in
:data:`NOT_RUN`: the slow ones (marked ``# slow`` in the README itself, so a reader knows too)
and those that name the reader's own files. The list is checked both ways — a README command
marked slow must be listed, a listed command must still be in the README — so neither can drift.
``make demo`` is stood in for by a 2-step run into ``runs/demo``: the commands that use the demo
model then run for real on a model of the same size.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# commands not run, by how they start (whitespace-normalised), with the reason
NOT_RUN = {
    "make demo": "slow: installs, then trains 6 minutes (stood in for by a 2-step runs/demo)",
    "make test": "slow: this suite",
    "source .venv/bin/activate": "the test calls this checkout's `python -m clipforge`",
    "clipforge train --data my_pairs.csv": "the reader's own data",
    'clipforge train --data "csv:pairs.csv': "the reader's own data",
    "clipforge train --config configs/filip.yaml": "slow: a 10-minute recipe",
    "clipforge train --out runs/mine --resume": "continues the reader's run",
    "clipforge eval zeroshot --model runs/mine --data path/to/class_folders": "the reader's data",
    "clipforge convert --from-hf path/to/hf_clip_dir": "the reader's Hugging Face model",
    "clipforge refine": "slow: one epoch",
    "clipforge serve": "slow: serves until Ctrl-C",
    "clipforge bench train": "slow: times real training steps (tests/test_bench.py covers it)",
    "clipforge convert --from-openclip logs/my-run": "the reader's OpenCLIP checkpoint",
    "clipforge train --data train.csv": "the reader's own table",
    "clipforge index --embeddings cr_emb": "the reader's clip-retrieval output",
    "tensorboard --logdir": "slow: serves until Ctrl-C",
    "clipforge eval linear-probe": "slow: encodes all 3,655 emoji, then ~12 L-BFGS fits",
    "clipforge benchmark --models runs/demo": "slow: the default suite",
    "WANDB_MODE=offline clipforge train": "slow: W&B's start-up (tests/test_tracking.py covers it)",
}
STAND_IN_FOR_DEMO = (
    "clipforge train --model tiny --steps 2 --batch-size 8 --val none "
    "--workers 0 --no-progress --out runs/demo"
)


def split_comment(line: str) -> tuple[str, str]:
    """(command, trailing comment) of one shell line, honouring quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].strip(), line[index + 1 :].strip()
    return line.strip(), ""


def unquoted(command: str) -> str:
    """The characters of ``command`` outside quotes (what bash interprets)."""
    kept, quote = [], None
    for char in command:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        else:
            kept.append(char)
    return "".join(kept)


def readme_blocks(language: tuple[str, ...]) -> list[str]:
    pattern = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
    return [body for lang, body in pattern.findall(README.read_text()) if lang in language]


def shell_commands() -> list[tuple[str, str]]:
    """(command, comment) for every command line of the README's shell blocks."""
    commands = []
    for block in readme_blocks(("bash", "sh", "shell")):
        for line in block.replace("\\\n", " ").splitlines():
            command, comment = split_comment(line)
            if command:
                commands.append((" ".join(command.split()), comment))
    return commands


def not_run_reason(command: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if command.startswith(start)), None)


def test_every_data_spec_with_query_characters_is_quoted():
    """bash reads an unquoted ``&`` as "run in the background" and ``?`` as a glob."""
    for command, _ in shell_commands():
        assert not set("?&*") & set(unquoted(command)), f"quote the data spec in: {command}"


def test_the_not_run_list_and_the_slow_marks_agree():
    commands = shell_commands()
    for start in NOT_RUN:
        assert any(c.startswith(start) for c, _ in commands), f"not in README.md: {start}"
    for command, comment in commands:
        if comment.startswith("slow"):
            assert (not_run_reason(command) or "").startswith("slow"), (
                f"marked slow in README.md but run by this test: {command}"
            )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A fresh directory holding what a clone has next to README.md (configs, examples)."""
    work = tmp_path_factory.mktemp("readme")
    for name in ("configs", "examples", "scripts"):
        shutil.copytree(ROOT / name, work / name)
    return work


def run(command: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def as_bash(command: str) -> list[str]:
    prelude = f'clipforge() {{ "{sys.executable}" -m clipforge "$@"; }}\n'
    return ["bash", "-c", prelude + command]


def test_readme_commands_run_as_written(workdir):
    demo = run(as_bash(STAND_IN_FOR_DEMO), workdir)
    assert demo.returncode == 0, demo.stderr[-2000:]
    ran = []
    for command, _ in shell_commands():
        if not_run_reason(command):
            continue
        started = time.perf_counter()
        done = run(as_bash(command), workdir)
        assert done.returncode == 0, f"README.md command failed: {command}\n{done.stderr[-2000:]}"
        print(f"{time.perf_counter() - started:6.1f} s  {command}")  # shown with -s
        ran.append(command)
    for block in readme_blocks(("python",)):
        done = run([sys.executable, "-c", block], workdir)
        assert done.returncode == 0, f"README.md python block failed:\n{done.stderr[-2000:]}"
    # the first hour's checks all ran: help, list, a short train, eval, embed → index → search
    for start in (
        "clipforge --help",
        "clipforge list",
        "clipforge train --model tiny --steps 2",
        "clipforge eval zeroshot",
        "clipforge eval retrieval",
        "clipforge embed",
        "clipforge index",
        "clipforge search --index idx --image examples/apple.png",
    ):
        assert any(c.startswith(start) for c in ran), f"no README command ran: {start}"


def test_shipped_example_image_is_the_builtin_apple():
    """``examples/apple.png`` is what ``scripts/example_images.py`` renders (pixels, not bytes:
    PNG encoders differ by Pillow version) and stays a few KB."""
    import importlib.util
    import io

    import numpy as np
    from PIL import Image

    spec = importlib.util.spec_from_file_location(
        "example_images", ROOT / "scripts" / "example_images.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped = ROOT / "examples" / script.file_name("red apple")
    assert shipped.name == "apple.png" and shipped.stat().st_size < 8 * 1024
    fresh = Image.open(io.BytesIO(script.render("red apple")))
    assert np.array_equal(np.asarray(Image.open(shipped)), np.asarray(fresh))
    with pytest.raises(ValueError, match="no emoji named 'blue apple'"):
        script.render("blue apple")
