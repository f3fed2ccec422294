"""Prompt templates for zero-shot classification (CLIP's prompt ensembling).

Radford et al. 2021 (§3.1.4): a class name alone is ambiguous and rarely looks like a training
caption, so each class is embedded through several prompts ("a photo of a {c}.", "a drawing of a
{c}.", …) and the class embedding is the normalised mean of the normalised prompt embeddings.

A templates file holds one template per line with ``{c}`` where the class name goes; blank lines
and lines starting with ``#`` are ignored. The built-in list is ``templates.txt`` beside this file.
"""

from __future__ import annotations

from pathlib import Path

PLACEHOLDER = "{c}"
DEFAULT_TEMPLATES_FILE = Path(__file__).with_name("templates.txt")


def load_templates(path: str | Path | None = None) -> tuple[str, ...]:
    """Templates from ``path`` (the built-in list when None); every one must contain ``{c}``."""
    path = Path(path) if path is not None else DEFAULT_TEMPLATES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: templates file not found")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    templates = tuple(line for line in lines if line and not line.startswith("#"))
    check_templates(templates, str(path))
    return templates


def check_templates(templates: tuple[str, ...] | list[str], origin: str = "templates") -> None:
    if not templates:
        raise ValueError(f"{origin}: no templates (one per line, each with {PLACEHOLDER})")
    missing = [t for t in templates if PLACEHOLDER not in t]
    if missing:
        raise ValueError(
            f"{origin}: template {missing[0]!r} has no {PLACEHOLDER} placeholder "
            f"for the class name ({len(missing)} of {len(templates)} lack it)"
        )


def fill(template: str, class_name: str) -> str:
    """``fill("a photo of a {c}.", "cat") == "a photo of a cat."`` (other braces are kept)."""
    return template.replace(PLACEHOLDER, class_name)
