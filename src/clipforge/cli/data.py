"""``clipforge data SUB-VERB``: data-set chores, one sub-verb each.

``prepare NAME`` readies a built-in set that is not shipped with the package (for
``builtin:openclipart``: install Debian's ``openclipart-png`` as root, then build the cached
index). Reading data never installs anything; this command is the one explicit step that does.

Example::

    sudo clipforge data prepare openclipart
"""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  sudo clipforge data prepare openclipart        # apt-get openclipart-png, then index it
  clipforge data prepare openclipart --no-install --root /usr/share/openclipart/png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_verb", required=True, metavar="SUB-VERB")
    prepare = actions.add_parser(
        "prepare",
        help="install and index a built-in data set that is not shipped",
        description="Install and index a built-in data set, e.g. "
        "`clipforge data prepare openclipart` (needs root for apt-get).",
        epilog=EXAMPLES,
        formatter_class=parser.formatter_class,
    )
    prepare.add_argument("name", help="built-in data set, e.g. openclipart")
    prepare.add_argument(
        "--root", help="where the set's files are (default: where Debian installs them)"
    )
    prepare.add_argument(
        "--no-install",
        action="store_true",
        help="only index files already there; never run apt-get",
    )
    prepare.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default: a bar on stderr)"
    )
    prepare.set_defaults(_data_run=run_prepare)


def run(args: argparse.Namespace) -> int:
    return args._data_run(args)


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.builtin import BUILTIN_SETS

    source_class = BUILTIN_SETS.get(args.name)
    prepare = getattr(source_class, "prepare", None)
    if prepare is None:
        print(f"builtin:{args.name} ships with clipforge; nothing to prepare")
        return 0
    options = {"install": not args.no_install, "progress": not args.no_progress}
    if args.root:
        options["root"] = args.root
    print(prepare(**options))
    return 0
