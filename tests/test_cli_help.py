"""The CLI as a newcomer first meets it: --version, a fast --help, and help for every flag."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from clipforge import __version__
from clipforge.cli.main import build_parser, main

OWNED_VERBS = ("train", "eval", "embed", "search", "convert", "list")


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {}
    for name in OWNED_VERBS:
        sub = verbs.choices[name]
        tasks = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if tasks:  # eval zeroshot / eval retrieval
            parsers.update({f"{name} {task}": p for task, p in tasks[0].choices.items()})
        else:
            parsers[name] = sub
    return parsers


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"clipforge {__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]])
def test_help_does_not_import_torch(argv):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "clipforge", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "usage: clipforge" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "torch" not in imported and "numpy" not in imported


@pytest.mark.parametrize("verb", list(verb_parsers()))
def test_every_flag_has_help_and_every_verb_an_example(verb):
    parser = verb_parsers()[verb]
    command = f"clipforge {verb.split()[0]}"
    assert parser.epilog and command in parser.epilog, "no example"
    assert parser.description and len(parser.description) > 40
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{verb}: {action.option_strings or action.dest} has no help"
    text = parser.format_help()  # lazily resolved defaults render
    assert "%(" not in text
    if verb in ("embed", "eval retrieval", "search"):
        assert "(default: " in text


def test_library_defaults_are_the_ones_shown():
    from clipforge.search.embed import EmbedConfig

    text = verb_parsers()["embed"].format_help()
    assert f"(default: {EmbedConfig.shard_size})" in " ".join(text.split())


def test_a_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--steps", "many"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--steps" in error and "many" in error
