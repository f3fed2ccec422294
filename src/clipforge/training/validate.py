"""Value checks for the typed config sections, run when a section is built (``__post_init__``)
and again when ``train()`` starts (a config may be edited in between).

Each check raises a one-line ``ValueError`` naming the dotted key and the value, so
``data.batch_size=abc`` or ``--steps 0`` fails when parsed, before anything is written.
"""

from __future__ import annotations

import math
from typing import Any


def check_number(
    key: str,
    value: Any,
    kind: type,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive: bool = False,
    optional: bool = False,
) -> None:
    """``value`` is an ``int`` (``kind=int``) or a real number (``kind=float``, ints allowed)
    within ``[minimum, maximum]`` (``(minimum, …`` with ``exclusive``); None only if optional."""
    if value is None and optional:
        return
    number_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, number_types):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{key} must be {what}, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        bound = f"greater than {minimum:g}" if exclusive else f"at least {minimum:g}"
        raise ValueError(f"{key} must be {bound}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{key} must be at most {maximum:g}, got {value!r}")


def check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def check_pair(key: str, value: Any, low: float, high: float, ordered: bool = True) -> None:
    """Two numbers in ``[low, high]``, the first not above the second when ``ordered``."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
    ):
        raise ValueError(f"{key} must be two numbers, got {value!r}")
    if not all(low <= v <= high for v in value) or (ordered and value[0] > value[1]):
        order = ", the first not above the second" if ordered else ""
        raise ValueError(f"{key} must be two numbers in [{low:g}, {high:g}]{order}; got {value!r}")


def to_float(key: str, value: Any) -> Any:
    """YAML reads ``1e-3`` as a string (it wants ``1.0e-3``): accept numeric strings for float
    fields, and name the key when the string is not a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
