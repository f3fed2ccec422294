"""The one precision type of every config and flag that has one (train, bench, refine).

Kept free of torch so that building the CLI's parsers (``clipforge --help``) imports no torch;
:mod:`clipforge.training.precision` chooses what ``auto`` means on the hardware at hand.
"""

from __future__ import annotations

from typing import Literal, get_args

# auto = bf16 where the hardware runs it fast, else fp32
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
