"""The CPU Dockerfile, checked without a Docker daemon: what it installs exists (extras, the
torch pin of the Makefile, the CPU wheel index), what it copies is there and not ignored, and
its default command is a real ``clipforge`` command line that parses."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import sys
from pathlib import Path

from clipforge.cli.main import COMMANDS, build_parser

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest's own dependency before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments)]`` with continuation lines joined and comments dropped."""
    lines = [
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.startswith("#")
    ]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def run_lines() -> list[str]:
    return [args for word, args in instructions() if word == "RUN"]


def test_a_slim_python_base():
    bases = [args for word, args in instructions() if word == "FROM"]
    assert len(bases) == 1 and re.fullmatch(r"python:3\.1\d-slim", bases[0])


def test_torch_is_the_makefile_pin_from_the_cpu_index():
    pinned = re.search(r"torch==([\d.]+)", (ROOT / "Makefile").read_text()).group(1)
    torch_lines = [line for line in run_lines() if "torch==" in line]
    assert len(torch_lines) == 1
    words = shlex.split(torch_lines[0])
    assert f"torch=={pinned}" in words
    assert words[words.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"


def test_the_package_install_names_extras_that_exist():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installs = [
        word
        for line in run_lines()
        for word in shlex.split(line)
        if re.fullmatch(r"\.?/?\.\[[\w,-]+\]", word)
    ]
    assert len(installs) == 1, run_lines()
    extras = set(installs[0].split("[")[1].rstrip("]").split(","))
    assert "search" in extras
    assert extras <= set(project["optional-dependencies"])
    assert all(not dep.startswith("torch") for dep in project["optional-dependencies"]["search"])


def ignored(path: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns
    )


def test_every_copied_path_exists_and_is_not_dockerignored():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [shlex.split(args) for word, args in instructions() if word == "COPY"]
    sources = [source for words in copies for source in words[:-1]]
    assert {"pyproject.toml", "src", "configs"} <= set(sources)
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in sources  # pip reads it while building the package
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), f"{source} is in .dockerignore"
    for heavy in (".venv", "runs", ".git"):
        assert ignored(heavy, patterns)


def test_the_default_command_is_a_clipforge_command_that_parses():
    commands = [args for word, args in instructions() if word == "CMD"]
    assert len(commands) == 1
    argv = json.loads(commands[0])  # exec form: signals reach clipforge, not a shell
    assert argv[0] == "clipforge" and argv[1] in COMMANDS
    args = build_parser([argv[1]]).parse_args(argv[1:])
    assert args.verb == "train" and (ROOT / args.config).is_file()
    assert "8000" in [args for word, args in instructions() if word == "EXPOSE"]
