"""Write the README's config reference table from the training config dataclasses.

Rows come from the sections of :class:`clipforge.training.config.TrainConfig` (every field, its
default, and the comment written beside it in ``training/config.py``); list fields show the keys
of their entries. The table goes between the ``config-table`` markers of README.md;
``tests/test_config_hygiene.py`` fails when the README's table is not what this script writes.

    python scripts/config_table.py          # rewrite README.md
    python scripts/config_table.py --check  # exit 1 if README.md is stale
"""

from __future__ import annotations

import ast
import dataclasses
import io
import sys
import tokenize
import typing
from pathlib import Path

from clipforge.evaluation.scheduled import EvalSpec
from clipforge.models.grow import GrowStage
from clipforge.training import config as config_module
from clipforge.training.config import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"
ENTRY_CLASSES = {"grow": GrowStage, "evals": EvalSpec}  # objectives: see their comment


def field_comments(source: str) -> dict[tuple[str, str], str]:
    """(class, field) → the comment beside the field, with its comment-only continuation lines."""
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(token.start[0])
    docs = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                line, parts = item.end_lineno, []
                if line in comments:
                    parts.append(comments[line])
                line += 1
                while line in comments and line not in code_lines:
                    parts.append(comments[line])
                    line += 1
                docs[(node.name, item.target.id)] = " ".join(parts)
    return docs


def yaml_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def default_of(field: dataclasses.Field) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    value = field.default_factory()  # type: ignore[misc]
    if isinstance(value, list):
        return [
            {key: item for key, item in dataclasses.asdict(v).items() if item != {}}
            if dataclasses.is_dataclass(v)
            else v
            for v in value
        ]
    return value


def escape(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    docs = {}
    for module in {
        config_module,
        sys.modules[GrowStage.__module__],
        sys.modules[EvalSpec.__module__],
    }:
        docs.update(field_comments(Path(module.__file__).read_text()))
    # the TYPE_CHECKING-only names of training/config.py (imported lazily there)
    hints = typing.get_type_hints(
        TrainConfig, localns={"GrowStage": GrowStage, "EvalSpec": EvalSpec}
    )
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for section in dataclasses.fields(TrainConfig):
        section_class = hints[section.name]
        if dataclasses.is_dataclass(section_class):
            field_types = typing.get_type_hints(section_class)
            for field in dataclasses.fields(section_class):
                meaning = docs.get((section_class.__name__, field.name), "")
                if typing.get_origin(field_types[field.name]) is typing.Literal:
                    meaning += f" (one of {', '.join(typing.get_args(field_types[field.name]))})"
                rows.append(
                    f"| `{section.name}.{field.name}` | "
                    f"`{escape(yaml_value(default_of(field)))}` | {escape(meaning)} |"
                )
        else:
            meaning = docs.get(("TrainConfig", section.name), "")
            if section.name in ENTRY_CLASSES:
                keys = ", ".join(f.name for f in dataclasses.fields(ENTRY_CLASSES[section.name]))
                meaning += f"; entries `{{{keys}}}`"
            rows.append(
                f"| `{section.name}` | `{escape(yaml_value(default_of(section)))}` | "
                f"{escape(meaning)} |"
            )
    return "\n".join(rows)


def updated_readme(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README}: missing the {BEGIN} … {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    text = README.read_text()
    new = updated_readme(text)
    if "--check" in argv:
        if new != text:
            print(f"{README}: config table is stale; run python scripts/config_table.py")
            return 1
        return 0
    README.write_text(new)
    print(f"wrote the config table of {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
