"""What a run tells the person watching it (stderr; stdout stays for results such as ``--json``).

A header first (data, samples, model, planned steps, budget), a line for every long phase, and
progress: a tqdm bar on a terminal, and when stderr is a file or a pipe (a log, CI, ``nohup``)
one plain line every ``log_every`` steps instead of thousands of carriage-return updates.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


def say(message: str) -> None:
    """One line on stderr, flushed at once (a log file shows it while the phase runs)."""
    print(f"[clipforge] {message}", file=sys.stderr, flush=True)


def is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def count(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,}"


class Progress:
    """Step progress: a bar on a terminal, else a plain line per logged step."""

    def __init__(self, enabled: bool, total: int | None, initial: int, name: str):
        self.enabled, self.total = enabled, total
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="step",
            dynamic_ncols=True,
            desc=f"train {name}",
            disable=not (enabled and is_terminal()),
        )

    def set_total(self, total: int | None) -> None:
        self.total = self.bar.total = total

    def advance(self) -> None:
        self.bar.update(1)

    def logged(self, row: dict[str, Any]) -> None:
        """A logged step's numbers: bar postfix, or one plain line when not on a terminal."""
        if not self.bar.disable:
            self.bar.set_postfix(loss=f"{row['loss']:.3f}", sps=f"{row['samples_per_s']:.0f}")
        elif self.enabled:
            total = "?" if self.total is None else self.total
            say(
                f"step {row['step']}/{total}  loss {row['loss']:.4f}  lr {row['lr']:.3g}  "
                f"{row['samples_per_s']:.0f} samples/s"
            )

    def close(self) -> None:
        self.bar.close()
