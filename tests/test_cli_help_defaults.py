"""Every verb's ``--help``: a line of help per flag, the defaults shown, an example per verb,
walked over the whole parser (every verb and sub-verb of cli/main.py's table)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from clipforge import __version__
from clipforge.cli.main import COMMANDS, HelpFormatter, build_parser

SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._VersionAction)


def leaf_parsers() -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """``{"eval zeroshot": ("eval", parser), "train": ("train", parser), …}``."""

    def walk(parser, name, verb):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield name, (verb, parser)
            return
        for task, sub in subs[0].choices.items():
            yield from walk(sub, f"{name} {task}", verb)

    root = build_parser()
    verbs = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    found: dict[str, tuple[str, argparse.ArgumentParser]] = {}
    for verb, parser in verbs.choices.items():
        found.update(walk(parser, verb, verb))
    return found


LEAVES = leaf_parsers()


def test_the_walk_covers_every_verb():
    assert {verb for verb, _ in LEAVES.values()} == set(COMMANDS)


def rendered_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    return " ".join(formatter._expand_help(action).split()) if action.help else ""


@pytest.mark.parametrize("name", list(LEAVES))
def test_every_flag_has_help_and_shows_its_default(name):
    verb, parser = LEAVES[name]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        label = action.option_strings or action.dest
        assert action.help and len(action.help) > 8, f"{name}: {label} has no help"
        if not action.option_strings or isinstance(action, SWITCHES):
            continue
        default = action.default
        if default is None or default == argparse.SUPPRESS or action.required:
            continue  # not given: the library's default, written into the help by hand
        shown = rendered_help(parser, action)
        assert "default" in shown, f"{name}: {label} hides its default {default!r}"
        if "(default: " in shown and not isinstance(default, list | tuple):
            assert f"(default: {default}" in shown or "default: " in shown


@pytest.mark.parametrize("name", list(LEAVES))
def test_every_verb_has_an_example(name):
    verb, parser = LEAVES[name]
    assert parser.epilog and f"clipforge {verb}" in parser.epilog, f"{name}: no example"
    assert "%(" not in parser.format_help()


def test_the_formatter_adds_a_default_only_where_it_says_something():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--k", type=int, default=3, help="neighbours to return")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: 3e-4)")
    parser.add_argument("--name", help="a name, not given by default")
    parser.add_argument("--fast", action="store_true", help="go fast")
    text = " ".join(parser.format_help().split())
    assert "neighbours to return (default: 3)" in text
    assert "(default: 3e-4) (default" not in text and "(default: None)" not in text
    assert "(default: False)" not in text


def test_version_from_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "clipforge", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == f"clipforge {__version__}"
